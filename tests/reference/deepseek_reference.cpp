// The float64 DeepSeek-V3 reference forward pass (see deepseek_reference.h for what mirrors which part of
// deepseek-ai/DeepSeek-V3 inference/model.py). Straight loops, no blocking, no threads: obviously correct first.
#include "tests/reference/deepseek_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numbers>
#include <numeric>

#include "codec/safetensors.h"
#include "common/error.h"
#include "common/float_formats.h"

namespace ecf8::reference {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// Element i of a tensor as double. Tensor data in safetensors need not be aligned, hence memcpy.
double element(const uint8_t* p, DType dtype, uint64_t i) {
    switch (dtype) {
        case DType::F8_E4M3:
            return fp8_e4m3_to_float(p[i]);
        case DType::BF16: {
            uint16_t u;
            std::memcpy(&u, p + 2 * i, 2);
            return bf16_to_float(u);
        }
        case DType::F16: {
            uint16_t u;
            std::memcpy(&u, p + 2 * i, 2);
            return f16_to_float(u);
        }
        case DType::F32: {
            float f;
            std::memcpy(&f, p + 4 * i, 4);
            return f;
        }
        case DType::F64: {
            double d;
            std::memcpy(&d, p + 8 * i, 8);
            return d;
        }
        default:
            ECF8_FAIL("unsupported dtype " << dtype_name(dtype));
    }
}

// Reads tensor `name` of shape `shape` (1-D or 2-D) into a Matrix (1-D: 1 x n). An F8_E4M3 weight is
// dequantized as kernel.py's weight_dequant: element (r, c) times scale_inv[r / bs0, c / bs1].
Matrix load_matrix(const SafetensorsCheckpoint& ck, const ModelConfig& cfg, const std::string& name,
                   const std::vector<int64_t>& shape) {
    ECF8_CHECK(ck.has(name), ck.dir() << ": missing tensor '" << name << "' (shape " << shape_str(shape) << ")");
    const TensorInfo& info = ck.info(name);
    ECF8_CHECK(info.shape == shape, ck.dir() << ": tensor '" << name << "' has shape " << shape_str(info.shape)
                                             << ", expected " << shape_str(shape));
    Matrix m;
    m.rows = shape.size() == 2 ? shape[0] : 1;
    m.cols = shape.back();
    m.data.resize(static_cast<size_t>(m.rows * m.cols));
    const uint8_t* p = ck.data(name);
    if (info.dtype != DType::F8_E4M3) {
        for (size_t i = 0; i < m.data.size(); ++i) m.data[i] = element(p, info.dtype, i);
        return m;
    }
    ECF8_CHECK(shape.size() == 2, ck.dir() << ": FP8 tensor '" << name << "' must be 2-D");
    ECF8_CHECK(cfg.quantized,
               ck.dir() << ": tensor '" << name << "' is F8_E4M3 but config.json has no quantization_config");
    const int64_t bs0 = cfg.quantization.weight_block_size[0], bs1 = cfg.quantization.weight_block_size[1];
    const std::string scale_name = name + "_scale_inv";
    const std::vector<int64_t> scale_shape = {ceil_div(m.rows, bs0), ceil_div(m.cols, bs1)};
    ECF8_CHECK(ck.has(scale_name), ck.dir() << ": missing tensor '" << scale_name << "' (block scales of '" << name
                                            << "', shape " << shape_str(scale_shape) << ")");
    const TensorInfo& sinfo = ck.info(scale_name);
    ECF8_CHECK(sinfo.shape == scale_shape && sinfo.dtype == DType::F32,
               ck.dir() << ": tensor '" << scale_name << "' is " << dtype_name(sinfo.dtype) << " "
                        << shape_str(sinfo.shape) << ", expected F32 " << shape_str(scale_shape));
    const uint8_t* s = ck.data(scale_name);
    for (int64_t r = 0; r < m.rows; ++r) {
        for (int64_t c = 0; c < m.cols; ++c) {
            const double scale = element(s, DType::F32, static_cast<uint64_t>((r / bs0) * scale_shape[1] + c / bs1));
            m.data[r * m.cols + c] = element(p, DType::F8_E4M3, static_cast<uint64_t>(r * m.cols + c)) * scale;
        }
    }
    return m;
}

std::span<const double> as_vector(const Matrix* m) { return {m->data.data(), m->data.size()}; }

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Components

std::vector<double> linear(const Matrix& w, std::span<const double> x) {
    ECF8_CHECK(static_cast<int64_t>(x.size()) == w.cols,
               "linear: input has " << x.size() << " features, the weight expects " << w.cols);
    std::vector<double> y(static_cast<size_t>(w.rows));
    for (int64_t o = 0; o < w.rows; ++o) {
        const double* row = w.row(o);
        double acc = 0.0;
        for (int64_t i = 0; i < w.cols; ++i) acc += row[i] * x[i];
        y[o] = acc;
    }
    return y;
}

std::vector<double> rms_norm(std::span<const double> x, std::span<const double> weight, double eps) {
    ECF8_CHECK(x.size() == weight.size(), "rms_norm: input size " << x.size() << " != weight size " << weight.size());
    double sum_sq = 0.0;
    for (double v : x) sum_sq += v * v;
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(x.size()) + eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv_rms * weight[i];
    return y;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

std::pair<int64_t, int64_t> yarn_correction_range(const RopeParams& p) {
    // find_correction_dim: the dimension whose wavelength fits num_rotations times into original_seq_len.
    const auto correction_dim = [&](double num_rotations) {
        return static_cast<double>(p.dim) *
               std::log(static_cast<double>(p.original_seq_len) / (num_rotations * 2.0 * std::numbers::pi)) /
               (2.0 * std::log(p.theta));
    };
    const auto low = static_cast<int64_t>(std::floor(correction_dim(p.beta_fast)));
    const auto high = static_cast<int64_t>(std::ceil(correction_dim(p.beta_slow)));
    return {std::max<int64_t>(low, 0), std::min<int64_t>(high, p.dim - 1)};
}

std::vector<double> yarn_inv_freq(const RopeParams& p) {
    ECF8_CHECK(p.dim > 0 && p.dim % 2 == 0, "rope dim " << p.dim << " must be even and positive");
    const int64_t half = p.dim / 2;
    std::vector<double> freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        freq[i] = 1.0 / std::pow(p.theta, static_cast<double>(2 * i) / static_cast<double>(p.dim));
    }
    if (!p.yarn_active()) return freq;
    const auto [low_i, high_i] = yarn_correction_range(p);
    const double low = static_cast<double>(low_i);
    double high = static_cast<double>(high_i);
    if (low == high) high += 0.001;  // linear_ramp_factor's guard against a zero-width ramp
    for (int64_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
        const double smooth = 1.0 - ramp;
        freq[i] = freq[i] / p.factor * (1.0 - smooth) + freq[i] * smooth;
    }
    return freq;
}

double attention_softmax_scale(int64_t qk_head_dim, const RopeParams& p) {
    double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim));
    if (p.yarn_active()) {
        const double mscale = 0.1 * p.mscale * std::log(p.factor) + 1.0;
        scale *= mscale * mscale;
    }
    return scale;
}

void apply_rotary(std::span<double> x, std::span<const double> inv_freq, int64_t pos) {
    ECF8_CHECK(x.size() == 2 * inv_freq.size(),
               "apply_rotary: " << x.size() << " values for " << inv_freq.size() << " frequencies");
    for (size_t i = 0; i < inv_freq.size(); ++i) {
        const double angle = static_cast<double>(pos) * inv_freq[i];
        const double c = std::cos(angle), s = std::sin(angle);
        const double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * s;  // (a + ib) * (c + is)
        x[2 * i + 1] = a * s + b * c;
    }
}

Routing route(std::span<const double> logits, std::span<const double> bias, const GateParams& p) {
    const int64_t n = p.n_experts;
    ECF8_CHECK(static_cast<int64_t>(logits.size()) == n,
               "route: " << logits.size() << " logits for " << n << " experts");
    ECF8_CHECK(!p.use_bias || static_cast<int64_t>(bias.size()) == n,
               "route: " << bias.size() << " bias values for " << n << " experts");
    ECF8_CHECK(p.n_group >= 1 && n % p.n_group == 0 && p.topk_group >= 1 && p.topk_group <= p.n_group,
               "route: bad groups (n_group " << p.n_group << ", topk_group " << p.topk_group << ")");
    ECF8_CHECK(p.top_k >= 1 && p.top_k <= p.topk_group * (n / p.n_group),
               "route: top_k " << p.top_k << " exceeds the experts of the kept groups");

    std::vector<double> scores(static_cast<size_t>(n));
    if (p.sigmoid) {
        for (int64_t e = 0; e < n; ++e) scores[e] = 1.0 / (1.0 + std::exp(-logits[e]));
    } else {
        const double mx = *std::max_element(logits.begin(), logits.end());
        double sum = 0.0;
        for (int64_t e = 0; e < n; ++e) sum += scores[e] = std::exp(logits[e] - mx);
        for (double& s : scores) s /= sum;
    }
    // The bias steers the choice only; weights come from the original scores.
    std::vector<double> choice = scores;
    if (p.use_bias) {
        for (int64_t e = 0; e < n; ++e) choice[e] += bias[e];
    }

    // Indices 0..count-1 ordered by value descending, lower index first on equal values (stable sort).
    const auto ranked = [](const std::vector<double>& v) {
        std::vector<int64_t> idx(v.size());
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
        return idx;
    };

    if (p.n_group > 1) {
        const int64_t per = n / p.n_group;
        ECF8_CHECK(!p.use_bias || per >= 2, "route: the group score (sum of the top-2) needs >= 2 experts per group");
        std::vector<double> group_score(static_cast<size_t>(p.n_group));
        for (int64_t g = 0; g < p.n_group; ++g) {
            std::vector<double> members(choice.begin() + g * per, choice.begin() + (g + 1) * per);
            std::sort(members.begin(), members.end(), std::greater<>());
            group_score[g] = p.use_bias ? members[0] + members[1] : members[0];
        }
        const std::vector<int64_t> groups = ranked(group_score);
        std::vector<bool> keep(static_cast<size_t>(p.n_group), false);
        for (int64_t k = 0; k < p.topk_group; ++k) keep[groups[k]] = true;
        for (int64_t e = 0; e < n; ++e) {
            if (!keep[e / per]) choice[e] = -std::numeric_limits<double>::infinity();
        }
    }

    const std::vector<int64_t> order = ranked(choice);
    Routing r;
    r.experts.assign(order.begin(), order.begin() + p.top_k);
    double sum = 0.0;
    for (int64_t e : r.experts) sum += scores[e];
    for (int64_t e : r.experts) {
        double w = scores[e];
        if (p.sigmoid) w /= sum;
        r.weights.push_back(w * p.route_scale);
    }
    return r;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

ReferenceModel ReferenceModel::load(const std::string& checkpoint_dir, int64_t max_seq_len) {
    ReferenceModel m;
    m.config_ = ModelConfig::load(checkpoint_dir + "/config.json");
    const ModelConfig& c = m.config_;
    ECF8_CHECK(max_seq_len >= 1, "max_seq_len must be >= 1, got " << max_seq_len);

    // Rope and the softmax scale (ModelArgs from config.json as model.py's configs carry them).
    RopeParams& rp = m.rope_;
    rp.dim = c.qk_rope_head_dim;
    rp.max_seq_len = max_seq_len;
    rp.theta = c.rope_theta;
    rp.has_scaling = c.has_rope_scaling;
    if (c.has_rope_scaling) {
        const RopeScaling& s = c.rope_scaling;
        // Hugging Face multiplies cos/sin by mscale(mscale) / mscale(mscale_all_dim); model.py has one mscale,
        // so only configs where the two agree (DeepSeek-V3: both 1) have a single meaning.
        ECF8_CHECK(s.mscale == s.mscale_all_dim, c.source << ": rope_scaling.mscale (" << s.mscale
                                                          << ") != rope_scaling.mscale_all_dim (" << s.mscale_all_dim
                                                          << ") is not supported by the reference");
        rp.factor = s.factor;
        rp.original_seq_len = s.original_max_position_embeddings;
        rp.beta_fast = s.beta_fast;
        rp.beta_slow = s.beta_slow;
        rp.mscale = s.mscale_all_dim;
    }
    m.inv_freq_ = yarn_inv_freq(rp);
    m.softmax_scale_ = attention_softmax_scale(c.qk_head_dim(), rp);

    // Gate. model.py normalises the top-k weights exactly for sigmoid scoring; HF does when norm_topk_prob.
    GateParams& gp = m.gate_;
    gp.n_experts = c.n_routed_experts;
    gp.top_k = c.num_experts_per_tok;
    gp.sigmoid = c.scoring_func == "sigmoid";
    gp.use_bias = c.topk_method == "noaux_tc";
    gp.n_group = c.topk_method == "greedy" ? 1 : c.n_group;  // HF's greedy ignores groups
    gp.topk_group = c.topk_method == "greedy" ? 1 : c.topk_group;
    gp.route_scale = c.routed_scaling_factor;
    if (c.n_routed_experts > 0) {
        ECF8_CHECK(c.norm_topk_prob == gp.sigmoid,
                   c.source << ": norm_topk_prob = " << c.norm_topk_prob << " with scoring_func '" << c.scoring_func
                            << "' is not supported (model.py normalises exactly the sigmoid scores)");
        ECF8_CHECK(!gp.use_bias || gp.n_group <= 1 || c.n_routed_experts / gp.n_group >= 2,
                   c.source << ": noaux_tc needs >= 2 experts per group (group score = sum of the top-2)");
    }

    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(checkpoint_dir);
    const int64_t hid = c.hidden_size, heads = c.num_attention_heads;
    const auto take = [&](const std::string& name, std::vector<int64_t> shape) -> const Matrix* {
        auto [it, inserted] = m.weights_.emplace(name, load_matrix(ck, c, name, shape));
        ECF8_CHECK(inserted, "tensor '" << name << "' loaded twice");
        return &it->second;
    };
    const auto load_mlp = [&](const std::string& prefix, int64_t inter) {
        Mlp mlp;
        mlp.w1 = take(prefix + ".gate_proj.weight", {inter, hid});
        mlp.w3 = take(prefix + ".up_proj.weight", {inter, hid});
        mlp.w2 = take(prefix + ".down_proj.weight", {hid, inter});
        return mlp;
    };

    m.embed_ = take("model.embed_tokens.weight", {c.vocab_size, hid});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        const std::string a = p + "self_attn.";
        Layer l;
        l.attn_norm = take(p + "input_layernorm.weight", {hid});
        l.ffn_norm = take(p + "post_attention_layernorm.weight", {hid});
        if (c.q_lora_rank > 0) {
            l.wq_a = take(a + "q_a_proj.weight", {c.q_lora_rank, hid});
            l.q_norm = take(a + "q_a_layernorm.weight", {c.q_lora_rank});
            l.wq_b = take(a + "q_b_proj.weight", {heads * c.qk_head_dim(), c.q_lora_rank});
        } else {
            l.wq = take(a + "q_proj.weight", {heads * c.qk_head_dim(), hid});
        }
        l.wkv_a = take(a + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, hid});
        l.kv_norm = take(a + "kv_a_layernorm.weight", {c.kv_lora_rank});
        l.wkv_b = take(a + "kv_b_proj.weight", {heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
        l.wo = take(a + "o_proj.weight", {hid, heads * c.v_head_dim});
        l.is_moe = c.is_moe_layer(i);
        if (!l.is_moe) {
            l.dense = load_mlp(p + "mlp", c.intermediate_size);
        } else {
            l.gate = take(p + "mlp.gate.weight", {c.n_routed_experts, hid});
            if (gp.use_bias) l.gate_bias = take(p + "mlp.gate.e_score_correction_bias", {c.n_routed_experts});
            for (int64_t e = 0; e < c.n_routed_experts; ++e) {
                l.experts.push_back(load_mlp(p + "mlp.experts." + std::to_string(e), c.moe_intermediate_size));
            }
            if (c.n_shared_experts > 0) {
                l.shared = load_mlp(p + "mlp.shared_experts", c.n_shared_experts * c.moe_intermediate_size);
            }
        }
        m.layers_.push_back(l);
    }
    m.final_norm_ = take("model.norm.weight", {hid});
    m.head_ = c.tie_word_embeddings ? m.embed_ : take("lm_head.weight", {c.vocab_size, hid});
    return m;
}

const Matrix& ReferenceModel::weight(const std::string& hf_name) const {
    auto it = weights_.find(hf_name);
    ECF8_CHECK(it != weights_.end(), "reference model: no loaded tensor '" << hf_name << "'");
    return it->second;
}

KVCache ReferenceModel::new_cache() const {
    KVCache cache;
    cache.k.resize(layers_.size());
    cache.v.resize(layers_.size());
    return cache;
}

const ReferenceModel::Layer& ReferenceModel::layer_at(int64_t layer) const {
    ECF8_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers_.size()),
               "layer " << layer << " out of range [0, " << layers_.size() << ")");
    return layers_[layer];
}

// ---------------------------------------------------------------------------------------------------------------
// FFN

std::vector<double> ReferenceModel::mlp(const Mlp& m, std::span<const double> x) const {
    const std::vector<double> gate = linear(*m.w1, x);
    const std::vector<double> up = linear(*m.w3, x);
    std::vector<double> act(gate.size());
    for (size_t i = 0; i < gate.size(); ++i) act[i] = silu(gate[i]) * up[i];
    return linear(*m.w2, act);
}

Routing ReferenceModel::route_token(int64_t layer, std::span<const double> x) const {
    const Layer& l = layer_at(layer);
    ECF8_CHECK(l.is_moe, "layer " << layer << " is dense; it has no gate");
    const std::vector<double> logits = linear(*l.gate, x);
    const std::span<const double> bias = l.gate_bias ? as_vector(l.gate_bias) : std::span<const double>();
    return route(logits, bias, gate_);
}

std::vector<double> ReferenceModel::expert(int64_t layer, int64_t e, std::span<const double> x) const {
    const Layer& l = layer_at(layer);
    ECF8_CHECK(l.is_moe && e >= 0 && e < static_cast<int64_t>(l.experts.size()),
               "layer " << layer << " has no routed expert " << e);
    return mlp(l.experts[e], x);
}

std::vector<double> ReferenceModel::shared_experts(int64_t layer, std::span<const double> x) const {
    const Layer& l = layer_at(layer);
    ECF8_CHECK(l.is_moe, "layer " << layer << " is dense; it has no shared experts");
    if (!l.shared.w1) return std::vector<double>(x.size(), 0.0);
    return mlp(l.shared, x);
}

std::vector<double> ReferenceModel::moe(int64_t layer, std::span<const double> x) const {
    const Routing r = route_token(layer, x);
    std::vector<double> y = shared_experts(layer, x);
    for (size_t k = 0; k < r.experts.size(); ++k) {
        const std::vector<double> out = expert(layer, r.experts[k], x);
        for (size_t i = 0; i < y.size(); ++i) y[i] += r.weights[k] * out[i];
    }
    return y;
}

std::vector<double> ReferenceModel::ffn(int64_t layer, std::span<const double> x) const {
    const Layer& l = layer_at(layer);
    return l.is_moe ? moe(layer, x) : mlp(l.dense, x);
}

// ---------------------------------------------------------------------------------------------------------------
// Attention (MLA, naive)

std::vector<double> ReferenceModel::attention(const Layer& l, int64_t layer, const std::vector<double>& x, int64_t T,
                                              int64_t start_pos, KVCache& cache) const {
    const ModelConfig& c = config_;
    const int64_t hid = c.hidden_size, heads = c.num_attention_heads;
    const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, qk = c.qk_head_dim(), vd = c.v_head_dim;
    const int64_t end_pos = start_pos + T;
    std::vector<double>& kc = cache.k[layer];
    std::vector<double>& vc = cache.v[layer];
    kc.resize(static_cast<size_t>(end_pos * heads * qk));
    vc.resize(static_cast<size_t>(end_pos * heads * vd));

    // Projections of every new token; k and v go into the cache at their positions.
    std::vector<std::vector<double>> q(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
        const int64_t pos = start_pos + t;
        const std::span<const double> xt(x.data() + t * hid, static_cast<size_t>(hid));
        if (l.wq) {
            q[t] = linear(*l.wq, xt);
        } else {
            q[t] = linear(*l.wq_b, rms_norm(linear(*l.wq_a, xt), as_vector(l.q_norm), c.rms_norm_eps));
        }
        for (int64_t h = 0; h < heads; ++h) {
            apply_rotary(std::span<double>(q[t].data() + h * qk + nope, static_cast<size_t>(rope)), inv_freq_, pos);
        }
        std::vector<double> kv = linear(*l.wkv_a, xt);  // [kv_lora_rank latent | rope k_pe shared by all heads]
        const std::span<const double> latent(kv.data(), static_cast<size_t>(c.kv_lora_rank));
        const std::span<double> k_pe(kv.data() + c.kv_lora_rank, static_cast<size_t>(rope));
        apply_rotary(k_pe, inv_freq_, pos);
        const std::vector<double> kvb = linear(*l.wkv_b, rms_norm(latent, as_vector(l.kv_norm), c.rms_norm_eps));
        for (int64_t h = 0; h < heads; ++h) {
            const double* src = kvb.data() + h * (nope + vd);  // per head: [k_nope | v]
            double* k = kc.data() + (pos * heads + h) * qk;
            double* v = vc.data() + (pos * heads + h) * vd;
            std::copy(src, src + nope, k);
            std::copy(k_pe.begin(), k_pe.end(), k + nope);
            std::copy(src + nope, src + nope + vd, v);
        }
    }

    // Causal softmax attention of each new token over positions [0, pos].
    std::vector<double> out(static_cast<size_t>(T * hid));
    std::vector<double> o(static_cast<size_t>(heads * vd));
    for (int64_t t = 0; t < T; ++t) {
        const int64_t pos = start_pos + t;
        std::fill(o.begin(), o.end(), 0.0);
        std::vector<double> scores(static_cast<size_t>(pos + 1));
        for (int64_t h = 0; h < heads; ++h) {
            const double* qh = q[t].data() + h * qk;
            double mx = -std::numeric_limits<double>::infinity();
            for (int64_t s = 0; s <= pos; ++s) {
                const double* k = kc.data() + (s * heads + h) * qk;
                double dot = 0.0;
                for (int64_t d = 0; d < qk; ++d) dot += qh[d] * k[d];
                scores[s] = dot * softmax_scale_;
                mx = std::max(mx, scores[s]);
            }
            double sum = 0.0;
            for (int64_t s = 0; s <= pos; ++s) sum += scores[s] = std::exp(scores[s] - mx);
            double* oh = o.data() + h * vd;
            for (int64_t s = 0; s <= pos; ++s) {
                const double p = scores[s] / sum;
                const double* v = vc.data() + (s * heads + h) * vd;
                for (int64_t d = 0; d < vd; ++d) oh[d] += p * v[d];
            }
        }
        const std::vector<double> y = linear(*l.wo, o);  // o is [heads][v_head_dim] flattened, as x.flatten(2)
        std::copy(y.begin(), y.end(), out.begin() + t * hid);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Transformer.forward

std::vector<double> ReferenceModel::forward(const std::vector<int32_t>& tokens, int64_t start_pos,
                                            KVCache& cache) const {
    const ModelConfig& c = config_;
    const int64_t T = static_cast<int64_t>(tokens.size()), hid = c.hidden_size, vocab = c.vocab_size;
    ECF8_CHECK(T >= 1, "forward: no tokens");
    ECF8_CHECK(cache.k.size() == layers_.size() && cache.v.size() == layers_.size(),
               "forward: the cache was not made by new_cache() of this model");
    ECF8_CHECK(start_pos >= 0 && start_pos <= cache.length,
               "forward: start_pos " << start_pos << " is beyond the cached length " << cache.length);
    ECF8_CHECK(start_pos + T <= rope_.max_seq_len,
               "forward: positions up to " << start_pos + T - 1 << " exceed max_seq_len " << rope_.max_seq_len);
    for (int32_t tok : tokens)
        ECF8_CHECK(tok >= 0 && tok < vocab, "forward: token " << tok << " not in [0, " << vocab << ")");

    std::vector<double> h(static_cast<size_t>(T * hid));
    for (int64_t t = 0; t < T; ++t) std::copy(embed_->row(tokens[t]), embed_->row(tokens[t]) + hid, &h[t * hid]);

    std::vector<double> xn(h.size());
    for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
        const Layer& l = layers_[i];
        // x = x + attn(attn_norm(x))
        for (int64_t t = 0; t < T; ++t) {
            const std::vector<double> n =
                rms_norm(std::span<const double>(&h[t * hid], hid), as_vector(l.attn_norm), c.rms_norm_eps);
            std::copy(n.begin(), n.end(), &xn[t * hid]);
        }
        const std::vector<double> a = attention(l, i, xn, T, start_pos, cache);
        for (size_t j = 0; j < h.size(); ++j) h[j] += a[j];
        // x = x + ffn(ffn_norm(x)), token by token
        for (int64_t t = 0; t < T; ++t) {
            const std::vector<double> n =
                rms_norm(std::span<const double>(&h[t * hid], hid), as_vector(l.ffn_norm), c.rms_norm_eps);
            const std::vector<double> f = ffn(i, n);
            for (int64_t j = 0; j < hid; ++j) h[t * hid + j] += f[j];
        }
    }
    cache.length = start_pos + T;

    std::vector<double> logits(static_cast<size_t>(T * vocab));
    for (int64_t t = 0; t < T; ++t) {
        const std::vector<double> n =
            rms_norm(std::span<const double>(&h[t * hid], hid), as_vector(final_norm_), c.rms_norm_eps);
        const std::vector<double> y = linear(*head_, n);
        std::copy(y.begin(), y.end(), &logits[t * vocab]);
    }
    return logits;
}

std::vector<double> ReferenceModel::forward_last(const std::vector<int32_t>& tokens, int64_t start_pos,
                                                 KVCache& cache) const {
    const std::vector<double> all = forward(tokens, start_pos, cache);
    return std::vector<double>(all.end() - config_.vocab_size, all.end());
}

}  // namespace ecf8::reference
