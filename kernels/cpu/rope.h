// Rotary position embedding with YaRN on the CPU: mirrors precompute_freqs_cis, apply_rotary_emb and the
// softmax_scale rule of MLA.__init__ in DeepSeek-V3's inference/model.py.
#pragma once

#include <cstdint>
#include <vector>

namespace ecf8 {
struct ModelConfig;
}

namespace ecf8::cpu {

// cos and sin of position * frequency for every position in [0, max_seq_len) and every rotated pair
// i in [0, rope_dim / 2): the reference's freqs_cis as two float tables, row-major [max_seq_len, rope_dim / 2].
struct RopeTable {
    int64_t max_seq_len = 0;
    int64_t rope_dim = 0;      // qk_rope_head_dim; pairs() values per position
    std::vector<float> freqs;  // [rope_dim / 2], after the YaRN correction when it applies
    std::vector<float> cos;
    std::vector<float> sin;

    int64_t pairs() const { return rope_dim / 2; }
    const float* cos_row(int64_t pos) const { return cos.data() + pos * pairs(); }
    const float* sin_row(int64_t pos) const { return sin.data() + pos * pairs(); }
};

// True when config.json has a (yarn) rope_scaling. YaRN is a property of the checkpoint, as in Hugging Face
// transformers, vLLM and SGLang: it applies whatever the deployment's max_model_len is. (DeepSeek's own
// inference/model.py applies it only when its max_seq_len exceeds original_max_position_embeddings; following
// that made one checkpoint's logits depend on max_model_len, so ecf8 follows the serving engines.)
bool yarn_active(const ModelConfig& cfg);

// The rope_dim / 2 rotation frequencies of precompute_freqs_cis, YaRN-corrected when yarn_active().
// The reference computes them in float32; each of its float32 operations is reproduced here as the
// correctly rounded float result, so the only differences left are the reference's own pow ulp errors.
std::vector<float> rope_frequencies(const ModelConfig& cfg);

// The whole table. As in the reference the angle is the float32 product float(pos) * freq (this rounding
// matters at large positions, so it is kept); cos and sin of that float angle are computed in double
// and rounded to float. Uses cfg.qk_rope_head_dim (must be even), cfg.rope_theta and cfg.rope_scaling.
RopeTable make_rope_table(const ModelConfig& cfg, int64_t max_seq_len);

// Rotates the rope part of n_heads heads of n_tokens tokens in place, pairs (x[2i], x[2i+1]) as the complex
// numbers of the reference's view_as_complex: (a + ib) * (cos + i sin). Token t, head h starts at
// x + t * token_stride + h * head_stride and has rope_dim floats; positions[t] < table.max_seq_len.
// Each output is a*cos - b*sin (resp. a*sin + b*cos) evaluated in double and rounded once to float.
//   q_pe:  x = q + qk_nope_head_dim, token_stride = n_heads * qk_head_dim, head_stride = qk_head_dim
//   k_pe:  x = kv + kv_lora_rank,   token_stride = kv_lora_rank + qk_rope_head_dim, n_heads = 1
void apply_rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                int64_t rope_dim, const int64_t* positions, const RopeTable& table);
// The same with the table's rows given as arrays: cos and sin [max_seq_len, rope_dim / 2] each.
void apply_rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                int64_t rope_dim, const int64_t* positions, const float* cos, const float* sin, int64_t max_seq_len);

// MLA's softmax scale: qk_head_dim^-0.5, times mscale^2 with mscale = 0.1 * m * ln(factor) + 1 when
// yarn_active(). m is rope_scaling.mscale_all_dim, the field Hugging Face uses for this factor (the
// reference's args.mscale; every public DeepSeek config has mscale == mscale_all_dim).
double attention_softmax_scale(const ModelConfig& cfg);

}  // namespace ecf8::cpu
