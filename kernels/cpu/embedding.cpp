// Token embedding on the CPU: mirrors ParallelEmbedding.forward of DeepSeek-V3's inference/model.py for one
// rank's vocabulary part, before the all-reduce.
#include "kernels/cpu/embedding.h"

#include <algorithm>

#include "common/error.h"
#include "common/float_formats.h"

namespace ecf8::cpu {

void embedding_bf16(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                    int64_t vocab_end, int64_t dim, float* out) {
    ECF8_CHECK(n_tokens >= 0, "embedding_bf16: n_tokens " << n_tokens << " is negative");
    ECF8_CHECK(dim > 0, "embedding_bf16: dim " << dim << " must be positive");
    ECF8_CHECK(0 <= vocab_begin && vocab_begin <= vocab_end,
               "embedding_bf16: vocabulary part [" << vocab_begin << ", " << vocab_end << ") is invalid");
    if (n_tokens == 0) return;
    ECF8_CHECK(tokens != nullptr && out != nullptr, "embedding_bf16: null tokens or out");
    ECF8_CHECK(table != nullptr || vocab_begin == vocab_end, "embedding_bf16: null table");
    for (int64_t t = 0; t < n_tokens; ++t) {
        const int64_t id = tokens[t];
        ECF8_CHECK(id >= 0, "embedding_bf16: tokens[" << t << "] = " << id << " is negative");
        float* row = out + t * dim;
        if (id < vocab_begin || id >= vocab_end) {
            std::fill_n(row, dim, 0.0f);
            continue;
        }
        const uint16_t* src = table + (id - vocab_begin) * dim;
        for (int64_t i = 0; i < dim; ++i) row[i] = bf16_to_float(src[i]);
    }
}

}  // namespace ecf8::cpu
