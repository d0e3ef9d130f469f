// The tensors of a model checkpoint (names, dtypes, shapes, parallel roles) and parameter counts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codec/dtype.h"
#include "sharding/model_config.h"

namespace ecf8 {

// How a tensor is split under tensor/expert parallelism.
enum class TensorRole {
    ColumnParallel,  // split along rows (output features), e.g. q_b_proj, gate_proj, up_proj
    RowParallel,     // split along columns (input features), e.g. o_proj, down_proj
    VocabParallel,   // split along the vocabulary: embed_tokens, lm_head
    Replicated,      // whole on every rank: norms, q_a_proj, kv_a_proj_with_mqa, the MoE gate and its bias
    RoutedExpert,    // one routed expert's matrix; placed whole by expert parallelism (expert index set)
    BlockScale,      // F32 weight_scale_inv of an FP8 weight; follows the weight named in scale_of
};

const char* tensor_role_name(TensorRole role);

struct TensorSpec {
    std::string name;            // as in the Hugging Face safetensors, e.g. "model.layers.3.mlp.gate.weight"
    DType dtype = DType::BF16;   // stored dtype
    std::vector<int64_t> shape;  // as stored: linear weights are [out, in]
    TensorRole role = TensorRole::Replicated;
    int layer = -1;        // decoder layer (MTP layers follow the main ones); -1 for model-level tensors
    int expert = -1;       // routed expert index; -1 otherwise
    std::string scale_of;  // BlockScale only: the weight it scales (the scale copies its layer and expert)

    int64_t numel() const;
    uint64_t nbytes() const { return static_cast<uint64_t>(numel()) * dtype_size(dtype); }
};

// Every tensor of the DeepSeek-V3 Hugging Face checkpoint in checkpoint layout. Each FP8 linear weight is
// immediately followed by its "<name>_scale_inv" (F32, [ceil(out/bs0), ceil(in/bs1)], BlockScale). With
// include_mtp the num_nextn_predict_layers MTP layers are appended (layer ids num_hidden_layers, ...); the
// checkpoint stores their embed_tokens and shared_head.head as separate copies, and so do we.
// Dense Llama/Qwen-style models would plug in as a sibling enumerator (e.g. llama_tensors()) selected by
// model_type, reusing the linear/norm helpers in model_tensors.cpp; the roles and ParamCounts carry over.
std::vector<TensorSpec> deepseek_v3_tensors(const ModelConfig& config, bool include_mtp = false);

// Parameter counts computed from deepseek_v3_tensors(). Block scales are not parameters; weights, norms,
// the MoE gate and its correction bias are.
//  attention_per_layer: the self_attn.* tensors of one layer (input/post-attention norms not included;
//                       they are in total).
//  dense_mlp_per_layer: the mlp.* tensors of one dense layer (0 when there is none).
//  moe_layer: the mlp.* tensors of one MoE layer: routed + shared experts, gate and bias.
//  routed_expert: one routed expert (gate, up and down projections).
//  active_per_token: total minus all routed experts plus num_experts_per_tok routed experts per MoE layer.
//                    The embedding and lm_head count as active in full (the convention of the DeepSeek-V3
//                    reports: ~37.5B for V3 without MTP; without the embedding it would be ~36.6B).
struct ParamCounts {
    uint64_t total = 0, active_per_token = 0, embedding = 0, lm_head = 0, attention_per_layer = 0,
             dense_mlp_per_layer = 0, moe_layer = 0, routed_expert = 0;
};

ParamCounts count_parameters(const ModelConfig& config, bool include_mtp = false);

}  // namespace ecf8
