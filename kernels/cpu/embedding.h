// Token embedding on the CPU: mirrors ParallelEmbedding.forward of DeepSeek-V3's inference/model.py for one
// rank's vocabulary part, before the all-reduce.
#pragma once

#include <cstdint>

namespace ecf8::cpu {

// out[t, :] = table[tokens[t] - vocab_begin, :] as float when vocab_begin <= tokens[t] < vocab_end, zeros
// otherwise (another rank owns the token; the all-reduce over ranks fills the row in). table is the BF16
// part [vocab_end - vocab_begin, dim], row-major. Negative token ids are errors.
void embedding_bf16(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                    int64_t vocab_end, int64_t dim, float* out);

}  // namespace ecf8::cpu
