// Rotary position embedding with YaRN on the CPU: mirrors precompute_freqs_cis, apply_rotary_emb and the
// softmax_scale rule of MLA.__init__ in DeepSeek-V3's inference/model.py.
#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.h"
#include "kernels/core/elementwise_core.h"
#include "sharding/model_config.h"

namespace ecf8::cpu {

namespace {

// One float32 operation of the reference, correctly rounded: computed in double (exact or rounded once,
// and double rounding is harmless for + - * / since 53 >= 2 * 24 + 2), then rounded to float. Going
// through double also keeps the compiler from fusing operations into FMAs, which the reference does not do.
float f32_div(double a, double b) { return static_cast<float>(a / b); }
float f32_mul(double a, double b) { return static_cast<float>(a * b); }
float f32_add(double a, double b) { return static_cast<float>(a + b); }
float f32_sub(double a, double b) { return static_cast<float>(a - b); }

// find_correction_dim of the reference (Python float math).
double correction_dim(double num_rotations, double dim, double base, double max_seq_len) {
    return dim * std::log(max_seq_len / (num_rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}

void check_rope_args(const ModelConfig& cfg) {
    ECF8_CHECK(cfg.qk_rope_head_dim > 0 && cfg.qk_rope_head_dim % 2 == 0,
               "rope: qk_rope_head_dim " << cfg.qk_rope_head_dim << " must be positive and even");
    ECF8_CHECK(cfg.rope_theta > 1.0, "rope: rope_theta " << cfg.rope_theta << " must be > 1");
}

}  // namespace

bool yarn_active(const ModelConfig& cfg) { return cfg.has_rope_scaling; }

std::vector<float> rope_frequencies(const ModelConfig& cfg) {
    check_rope_args(cfg);
    const int64_t dim = cfg.qk_rope_head_dim, half = dim / 2;
    const float base = static_cast<float>(cfg.rope_theta);
    std::vector<float> freqs(static_cast<size_t>(half));
    // freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    for (int64_t i = 0; i < half; ++i) {
        const float e = f32_div(static_cast<double>(2 * i), static_cast<double>(dim));
        const float p = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(e)));
        freqs[static_cast<size_t>(i)] = f32_div(1.0, p);
    }
    if (!yarn_active(cfg)) return freqs;

    const RopeScaling& rs = cfg.rope_scaling;
    ECF8_CHECK(rs.factor >= 1.0, "rope: rope_scaling.factor " << rs.factor << " must be >= 1");
    ECF8_CHECK(rs.beta_fast > 0 && rs.beta_slow > 0, "rope: rope_scaling.beta_fast and beta_slow must be > 0");
    // find_correction_range(beta_fast, beta_slow, dim, base, original_seq_len); note the reference clamps
    // high to dim - 1 although the ramp has only dim / 2 entries, so it is kept that way.
    const double orig = static_cast<double>(rs.original_max_position_embeddings);
    const double dbase = static_cast<double>(cfg.rope_theta);
    const double low_d = std::floor(correction_dim(rs.beta_fast, static_cast<double>(dim), dbase, orig));
    const double high_d = std::ceil(correction_dim(rs.beta_slow, static_cast<double>(dim), dbase, orig));
    const double low = std::max(low_d, 0.0);
    double high = std::min(high_d, static_cast<double>(dim - 1));
    // linear_ramp_factor(low, high, dim // 2)
    if (low == high) high += 0.001;
    const float range = static_cast<float>(high - low);  // the Python scalar becomes a float32 operand
    const float factor = static_cast<float>(rs.factor);
    for (int64_t i = 0; i < half; ++i) {
        const float lin = f32_div(f32_sub(static_cast<double>(i), low), range);
        const float ramp = std::clamp(lin, 0.0f, 1.0f);
        const float smooth = f32_sub(1.0, ramp);
        // freqs = freqs / factor * (1 - smooth) + freqs * smooth
        const float f = freqs[static_cast<size_t>(i)];
        const float a = f32_mul(f32_div(f, factor), f32_sub(1.0, smooth));
        const float b = f32_mul(f, smooth);
        freqs[static_cast<size_t>(i)] = f32_add(a, b);
    }
    return freqs;
}

RopeTable make_rope_table(const ModelConfig& cfg, int64_t max_seq_len) {
    ECF8_CHECK(max_seq_len > 0, "rope: max_seq_len " << max_seq_len << " must be positive");
    RopeTable t;
    t.freqs = rope_frequencies(cfg);
    t.max_seq_len = max_seq_len;
    t.rope_dim = cfg.qk_rope_head_dim;
    const int64_t half = t.pairs();
    t.cos.resize(static_cast<size_t>(max_seq_len * half));
    t.sin.resize(t.cos.size());
    for (int64_t p = 0; p < max_seq_len; ++p) {
        for (int64_t i = 0; i < half; ++i) {
            // torch.outer(arange(seqlen), freqs) is a float32 product; polar() takes cos/sin of it.
            const double angle = f32_mul(static_cast<double>(static_cast<float>(p)), t.freqs[static_cast<size_t>(i)]);
            t.cos[static_cast<size_t>(p * half + i)] = static_cast<float>(std::cos(angle));
            t.sin[static_cast<size_t>(p * half + i)] = static_cast<float>(std::sin(angle));
        }
    }
    return t;
}

void apply_rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                int64_t rope_dim, const int64_t* positions, const RopeTable& table) {
    ECF8_CHECK(rope_dim == table.rope_dim,
               "apply_rope: rope_dim " << rope_dim << " differs from the table's " << table.rope_dim);
    apply_rope(x, n_tokens, token_stride, n_heads, head_stride, rope_dim, positions, table.cos.data(), table.sin.data(),
               table.max_seq_len);
}

void apply_rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                int64_t rope_dim, const int64_t* positions, const float* cos, const float* sin, int64_t max_seq_len) {
    ECF8_CHECK(n_tokens >= 0 && n_heads >= 0,
               "apply_rope: n_tokens " << n_tokens << " or n_heads " << n_heads << " is negative");
    ECF8_CHECK(rope_dim > 0 && rope_dim % 2 == 0, "apply_rope: rope_dim " << rope_dim << " must be positive and even");
    ECF8_CHECK(head_stride >= rope_dim || n_heads <= 1,
               "apply_rope: head_stride " << head_stride << " is smaller than rope_dim " << rope_dim);
    ECF8_CHECK(token_stride >= n_heads * head_stride || n_tokens <= 1 || n_heads == 0,
               "apply_rope: token_stride " << token_stride << " is smaller than n_heads * head_stride");
    if (n_tokens == 0 || n_heads == 0) return;
    ECF8_CHECK(x != nullptr && positions != nullptr, "apply_rope: null x or positions");
    const int64_t half = rope_dim / 2;
    for (int64_t t = 0; t < n_tokens; ++t) {
        const int64_t pos = positions[t];
        ECF8_CHECK(pos >= 0 && pos < max_seq_len,
                   "apply_rope: positions[" << t << "] = " << pos << " is outside [0, " << max_seq_len << ")");
        const float* c = cos + pos * half;
        const float* s = sin + pos * half;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x + t * token_stride + h * head_stride;
            for (int64_t i = 0; i < half; ++i) core::rotate_pair(v + 2 * i, c[i], s[i]);
        }
    }
}

double attention_softmax_scale(const ModelConfig& cfg) {
    const int64_t qk_head_dim = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim;
    ECF8_CHECK(qk_head_dim > 0, "attention_softmax_scale: qk head dim " << qk_head_dim << " must be positive");
    double scale = std::pow(static_cast<double>(qk_head_dim), -0.5);
    if (yarn_active(cfg)) {
        const double mscale = 0.1 * cfg.rope_scaling.mscale_all_dim * std::log(cfg.rope_scaling.factor) + 1.0;
        scale = scale * mscale * mscale;
    }
    return scale;
}

}  // namespace ecf8::cpu
