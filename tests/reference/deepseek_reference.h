// An independent float64 reference forward pass of DeepSeek-V3 for tests: plain loops in double that follow
// the public reference implementation, deepseek-ai/DeepSeek-V3 inference/model.py, read straight from a
// Hugging Face checkpoint directory. It shares no code with the runtime kernels (kernels/).
//
// What mirrors what in model.py / kernel.py:
//   load_matrix          kernel.py weight_dequant: FP8 e4m3 value * weight_scale_inv of its 128x128 block
//   linear               linear() / F.linear without bias (y = W x, W stored [out, in])
//   rms_norm             RMSNorm.forward (F.rms_norm)
//   yarn_inv_freq        precompute_freqs_cis (the per-pair frequencies; angle = pos * freq)
//   apply_rotary         apply_rotary_emb (interleaved pairs (x[2i], x[2i+1]) as complex numbers)
//   attention_softmax_scale  MLA.__init__ softmax_scale with the YaRN mscale
//   route                Gate.forward
//   ReferenceModel::mlp / expert / shared_experts / moe / forward
//                        MLP / Expert / MoE.forward / Transformer.forward with MLA's attn_impl = "naive"
//                        (k and v expanded from the latent with wkv_b and cached per head)
//
// Precision: everything is double and nothing is rounded in between. The PyTorch reference runs with default
// dtype bf16 and rounds to bf16 at: the embedding output, every linear output (dequantized weights are bf16
// too), every RMSNorm output, the residual stream after each block, q/k after rotary (computed in float32),
// the k/v caches, the attention probabilities (softmax in float32, then .type_as(x)), the gate logits and
// their sigmoid (the correction bias is float32) and the routing weights, the expert outputs, and the logits.
// Its rope frequencies and angles are float32 too, and with gemm_impl = "fp8" it also quantizes activations
// to FP8 per 128 values (act_quant). We do none of that, so this is the exact math of the model; an
// implementation in float32 should land within ~1e-4 relative of it.
//
// Where model.py leaves a choice open, we take the Hugging Face config's meaning:
//   - the gate's e_score_correction_bias (and the top-2-sum group score) is used when topk_method is noaux_tc
//     (model.py creates Gate.bias only when dim == 7168); masked groups get -inf as in model.py (HF's
//     modeling_deepseek fills 0.0, which differs only when biased scores go negative);
//   - RMSNorm eps is config.rms_norm_eps (model.py hard-codes its 1e-6 default);
//   - the causal mask also covers a multi-token forward with start_pos > 0 (model.py's mask assumes 0);
//   - softmax_scale's mscale is rope_scaling.mscale_all_dim, required equal to rope_scaling.mscale.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sharding/model_config.h"

namespace ecf8::reference {

// A dense row-major matrix of doubles; linear weights keep the checkpoint layout [out, in].
struct Matrix {
    int64_t rows = 0, cols = 0;
    std::vector<double> data;

    const double* row(int64_t r) const { return data.data() + r * cols; }
    double at(int64_t r, int64_t c) const { return data[r * cols + c]; }
};

// ---------------------------------------------------------------------------------------------------------------
// Components (free functions so that tests can check each one)

// y[o] = sum_i w[o, i] * x[i].
std::vector<double> linear(const Matrix& w, std::span<const double> x);

// x * weight / sqrt(mean(x^2) + eps).
std::vector<double> rms_norm(std::span<const double> x, std::span<const double> weight, double eps);

double silu(double x);

// Rotary parameters as model.py's ModelArgs holds them.
struct RopeParams {
    int64_t dim = 64;            // qk_rope_head_dim
    int64_t max_seq_len = 4096;  // ModelArgs.max_seq_len
    double theta = 10000.0;      // rope_theta
    bool has_scaling = true;     // config.json has rope_scaling (YaRN); without it, plain rope
    double factor = 40.0;        // rope_factor
    int64_t original_seq_len = 4096;
    double beta_fast = 32.0;
    double beta_slow = 1.0;
    double mscale = 1.0;  // ModelArgs.mscale (config.json's rope_scaling.mscale_all_dim)

    // YaRN whenever config.json has rope_scaling, as Hugging Face transformers, vLLM and SGLang (model.py's
    // precompute_freqs_cis also asks max_seq_len > original_seq_len; ecf8 follows the serving engines, so a
    // checkpoint's logits do not depend on the deployment's max_model_len).
    bool yarn_active() const { return has_scaling; }
};

// The dim/2 frequencies of precompute_freqs_cis: freq_i = theta^(-2i/dim), and under yarn_active() the YaRN
// blend freq_i / factor * ramp_i + freq_i * (1 - ramp_i), ramp_i = clamp((i - low) / (high - low), 0, 1) with
// low = max(floor(d(beta_fast)), 0), high = min(ceil(d(beta_slow)), dim - 1),
// d(r) = dim * ln(original_seq_len / (2 pi r)) / (2 ln theta). Computed in double (PyTorch: float32).
std::vector<double> yarn_inv_freq(const RopeParams& p);

// The YaRN correction range (low, high) above, exposed for tests.
std::pair<int64_t, int64_t> yarn_correction_range(const RopeParams& p);

// MLA.__init__: qk_head_dim^-0.5, times mscale^2 with mscale = 0.1 * p.mscale * ln(factor) + 1 when
// yarn_active() (the same condition as the YaRN frequencies).
double attention_softmax_scale(int64_t qk_head_dim, const RopeParams& p);

// Rotates interleaved pairs (x[2i], x[2i+1]) by angle pos * inv_freq[i]:
// (a, b) -> (a cos - b sin, a sin + b cos). x.size() == 2 * inv_freq.size().
void apply_rotary(std::span<double> x, std::span<const double> inv_freq, int64_t pos);

// Gate parameters (model.py's Gate from the HF config).
struct GateParams {
    int64_t n_experts = 0;
    int64_t top_k = 0;       // num_experts_per_tok
    int64_t n_group = 1;     // groups are limited when > 1
    int64_t topk_group = 1;  // groups kept
    bool sigmoid = true;     // scoring_func: sigmoid, else softmax
    bool use_bias = true;    // e_score_correction_bias (topk_method noaux_tc); group score = sum of top-2
    double route_scale = 1.0;
};

struct Routing {
    std::vector<int64_t> experts;  // top_k expert indices, by descending selection score (ties: lower index)
    std::vector<double> weights;   // routing weight of each, routed_scaling_factor included
};

// Gate.forward for one token from its gate logits (gate.weight x): scores = sigmoid (or softmax) of the logits;
// selection scores = scores + bias (when use_bias); with n_group > 1 the topk_group groups with the highest
// group score (sum of the group's top-2 selection scores with bias, else its max) are kept and the others set
// to -inf; the top_k experts by selection score are chosen; their weights are the original scores, divided by
// their sum for sigmoid, times route_scale. Ties (groups and experts): larger first, lower index on equality.
Routing route(std::span<const double> logits, std::span<const double> bias, const GateParams& p);

// ---------------------------------------------------------------------------------------------------------------
// The model

// Per-sequence KV cache of the naive formulation: for each layer, k [pos][head][qk_head_dim] (nope then rope)
// and v [pos][head][v_head_dim]. Positions [0, length) are valid.
struct KVCache {
    int64_t length = 0;
    std::vector<std::vector<double>> k, v;  // per layer
};

class ReferenceModel {
public:
    // Reads config.json and every tensor the forward pass needs (MTP layers are ignored, as model.py does);
    // throws ecf8::Error naming the tensor for a missing or misshaped tensor, or naming the field for an
    // unsupported config. max_seq_len plays ModelArgs.max_seq_len (the rope table's length).
    static ReferenceModel load(const std::string& checkpoint_dir, int64_t max_seq_len);
    ReferenceModel(ReferenceModel&&) = default;  // weights_ nodes move with it, so layers_' pointers stay valid
    ReferenceModel& operator=(ReferenceModel&&) = default;
    ReferenceModel(const ReferenceModel&) = delete;
    ReferenceModel& operator=(const ReferenceModel&) = delete;

    const ModelConfig& config() const { return config_; }
    const RopeParams& rope() const { return rope_; }
    const GateParams& gate_params() const { return gate_; }
    const std::vector<double>& inv_freq() const { return inv_freq_; }
    double softmax_scale() const { return softmax_scale_; }
    int64_t max_seq_len() const { return rope_.max_seq_len; }
    int64_t vocab_size() const { return config_.vocab_size; }

    // A loaded weight by its Hugging Face name, e.g. "model.layers.1.mlp.experts.3.up_proj.weight" (dequantized;
    // norms and biases are 1 x n). Throws for a name that was not loaded.
    const Matrix& weight(const std::string& hf_name) const;

    KVCache new_cache() const;

    // Transformer.forward over tokens at positions [start_pos, start_pos + T), with a causal mask (token t sees
    // positions <= start_pos + t). Requires start_pos <= cache.length; afterwards cache.length = start_pos + T
    // (anything cached beyond start_pos is overwritten or dropped). Returns logits [T, vocab] row-major for every
    // position (model.py returns only the last row; see forward_last).
    std::vector<double> forward(const std::vector<int32_t>& tokens, int64_t start_pos, KVCache& cache) const;
    // The last position's logits [vocab], which is what model.py's Transformer.forward returns.
    std::vector<double> forward_last(const std::vector<int32_t>& tokens, int64_t start_pos, KVCache& cache) const;

    // Pieces of a layer's FFN for one token x (the ffn_norm output), for tests.
    Routing route_token(int64_t layer, std::span<const double> x) const;                    // Gate.forward
    std::vector<double> expert(int64_t layer, int64_t e, std::span<const double> x) const;  // routed expert e
    std::vector<double> shared_experts(int64_t layer, std::span<const double> x) const;     // zeros when none
    std::vector<double> moe(int64_t layer, std::span<const double> x) const;                // MoE.forward
    std::vector<double> ffn(int64_t layer, std::span<const double> x) const;                // dense MLP or MoE

private:
    struct Mlp {
        const Matrix *w1 = nullptr, *w2 = nullptr, *w3 = nullptr;  // gate_proj, down_proj, up_proj
    };
    struct Layer {
        const Matrix* attn_norm = nullptr;
        const Matrix* ffn_norm = nullptr;
        const Matrix *wq = nullptr, *wq_a = nullptr, *q_norm = nullptr, *wq_b = nullptr;  // wq iff q_lora_rank 0
        const Matrix *wkv_a = nullptr, *kv_norm = nullptr, *wkv_b = nullptr, *wo = nullptr;
        bool is_moe = false;
        Mlp dense;                     // dense layers
        const Matrix* gate = nullptr;  // [n_routed_experts, hidden]
        const Matrix* gate_bias = nullptr;
        std::vector<Mlp> experts;
        Mlp shared;  // w1 null when n_shared_experts == 0
    };

    ReferenceModel() = default;
    const Layer& layer_at(int64_t layer) const;
    std::vector<double> mlp(const Mlp& m, std::span<const double> x) const;
    // MLA (naive) over T normed inputs x [T, hidden]; writes k/v of positions [start_pos, start_pos + T).
    std::vector<double> attention(const Layer& l, int64_t layer, const std::vector<double>& x, int64_t T,
                                  int64_t start_pos, KVCache& cache) const;

    ModelConfig config_;
    RopeParams rope_;
    GateParams gate_;
    std::vector<double> inv_freq_;
    double softmax_scale_ = 0;
    std::unordered_map<std::string, Matrix> weights_;  // node-based: the pointers in layers_ stay valid
    const Matrix* embed_ = nullptr;
    const Matrix* final_norm_ = nullptr;
    const Matrix* head_ = nullptr;
    std::vector<Layer> layers_;
};

}  // namespace ecf8::reference
