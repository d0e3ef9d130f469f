// Helpers of the runtime tests: model options, and bit-for-bit comparison of logits.
#pragma once

#include <cstring>
#include <vector>

#include "runtime/model.h"

namespace ecf8::test {

// Room for `seqs` whole sequences of max_seq_len in the KV pool, and steps as large as all of them at once
// with every row's logits (tests compare all positions).
inline ModelOptions model_options(int64_t max_seq_len, int64_t seqs = 4, core::KvDType dtype = core::KvDType::F32,
                                  int64_t block_tokens = 16) {
    ModelOptions o;
    o.max_seq_len = max_seq_len;
    o.max_step_tokens = seqs * max_seq_len;
    o.max_step_seqs = seqs;
    o.max_logit_rows = o.max_step_tokens;
    o.kv = {dtype, block_tokens, seqs * ((max_seq_len + block_tokens - 1) / block_tokens)};
    return o;
}

// Every step's logits equal, bit for bit.
inline bool same_bits(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].size() != b[i].size() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
            return false;
    return true;
}

}  // namespace ecf8::test
