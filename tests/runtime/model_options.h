// Model options for the runtime tests: room for `seqs` whole sequences of max_seq_len in the KV pool, and
// steps as large as all of them at once with every row's logits (tests compare all positions).
#pragma once

#include "runtime/model.h"

namespace ecf8::test {

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

}  // namespace ecf8::test
