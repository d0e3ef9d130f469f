// Softmax and next-token sampling on the CPU. Greedy decoding mirrors generate.py of DeepSeek-V3's
// inference code (logits.argmax with temperature 0); the reference samples with an exponential race, which
// is replaced here by seeded, platform-independent temperature + top-p (nucleus) sampling.
#pragma once

#include <cstdint>

namespace ecf8::cpu {

// out[i] = exp(x[i] - max) / sum_j exp(x[j] - max) for i in [0, n) (softmax(dim=-1, dtype=float32)).
// x[i] - max is a float subtraction as in the reference; exp and the sum are taken in double and each
// result rounded once to float. -inf entries give 0; out may alias x. n must be positive and max finite.
void softmax(const float* x, int64_t n, float* out);

// Index of the largest of x[0..n): the lowest such index on ties; NaN entries are never chosen (all NaN: 0).
int64_t argmax(const float* x, int64_t n);

// Greedy tokens of `rows` rows of vocab-parallel logits: row r is the concatenation over b in [0, blocks) of
// x[(b * rows + r) * block_len, + block_len) (the all-gather of `blocks` ranks' vocabulary parts; blocks = 1:
// x is [rows, block_len]). ids[r] is the index of the row's first largest entry (argmax's rule, so the same
// as argmax of the row laid out whole), or -1 when the row holds a NaN or an infinity: the caller reports
// it, as it refuses any non-finite logit.
void argmax_rows(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* ids);

// The uniform double in [0, 1) that sample_top_p draws for (seed, counter): a std::mt19937_64 seeded with
// std::seed_seq{seed low 32 bits, seed high 32 bits, counter low 32 bits, counter high 32 bits} (both are
// fully specified by the C++ standard), one raw 64-bit output, top 53 bits times 2^-53.
double sampling_uniform(uint64_t seed, uint64_t counter);

// Samples a token from logits[0..n) with temperature and top-p:
//   temperature <= 0: argmax (greedy).
//   otherwise: weights w_i = exp((logits[i] - max) / temperature) in double, total = their sum in index
//   order, u = sampling_uniform(seed, counter), and
//     top_p = 1: the first token in index order whose running weight sum exceeds u * total;
//     top_p < 1: with tokens ordered by weight, larger first and lower index on ties, the nucleus is the
//     shortest prefix whose running sum (in that order) reaches top_p * total (all tokens if rounding
//     leaves the whole sum short), and the result is the first nucleus token whose running sum exceeds
//     u * (nucleus sum).
//   Where rounding leaves no running sum above the bound, the last token of nonzero weight of the walk.
// Only the tokens that can be in the nucleus are sorted, so a row of DeepSeek's 129K vocabulary takes about
// 1 ms (the exps) rather than the 17 ms of a full sort. The result depends only on the inputs, so a
// (seed, counter) pair reproduces a draw on every platform: use one seed per request and the
// generated-token index as counter. top_p must be in (0, 1]; NaN and +inf logits are errors, -inf logits
// are never sampled.
int64_t sample_top_p(const float* logits, int64_t n, float temperature, float top_p, uint64_t seed, uint64_t counter);

}  // namespace ecf8::cpu
