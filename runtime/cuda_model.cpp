// CudaModel: DeepSeek-V3's forward stages as CUDA work on the pipeline's compute stream (see cuda_model.h).
// The stage bodies follow Model's (runtime/model.cpp) line by line, with the CUDA twins of its kernels.
#include "runtime/cuda_model.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "kernels/cpu/mla_attention.h"
#include "kernels/cpu/moe_gate.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/fp8_gemm.cuh"
#include "kernels/cuda/ops.cuh"
#include "runtime/backend.h"

namespace ecf8 {
namespace {

// A device array that grows on demand. Growing frees the old memory (cudaFree waits for the device), so it
// happens only while buffers first reach their working size.
template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    ~DeviceArray() { cudaFree(ptr_); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    T* reserve(size_t n) {
        if (n > size_) {
            CUDA_CHECK(cudaFree(ptr_));
            ptr_ = nullptr;
            size_ = 0;
            CUDA_CHECK(cudaMalloc(&ptr_, std::max<size_t>(n, 1) * sizeof(T)));
            size_ = n;
        }
        return ptr_;
    }
    T* get() const { return ptr_; }

private:
    T* ptr_ = nullptr;
    size_t size_ = 0;
};

// Pinned host memory for uploads and read-backs; same growth rule.
template <class T>
class PinnedArray {
public:
    PinnedArray() = default;
    ~PinnedArray() { cudaFreeHost(ptr_); }
    PinnedArray(const PinnedArray&) = delete;
    PinnedArray& operator=(const PinnedArray&) = delete;
    T* reserve(size_t n) {
        if (n > size_) {
            CUDA_CHECK(cudaDeviceSynchronize());  // no copy still reads the old memory
            CUDA_CHECK(cudaFreeHost(ptr_));
            ptr_ = nullptr;
            size_ = 0;
            CUDA_CHECK(cudaHostAlloc(&ptr_, std::max<size_t>(n, 1) * sizeof(T), cudaHostAllocDefault));
            size_ = n;
        }
        return ptr_;
    }

private:
    T* ptr_ = nullptr;
    size_t size_ = 0;
};

// One sequence's latent cache in device memory: per layer [max_seq_len, kv_lora_rank] and
// [max_seq_len, qk_rope_head_dim], in one backend allocation (tag "kv_cache").
struct DeviceKvCache {
    Buffer memory;
    std::vector<float*> kv, pe;
};

DeviceKvCache& device_cache(KvCache* c) {
    ECF8_CHECK(c != nullptr && c->device != nullptr, "the GPU forward needs caches made by CudaModel::new_cache");
    return *static_cast<DeviceKvCache*>(c->device.get());
}

}  // namespace

struct CudaModel::Impl {
    ModelConfig config;
    WorldConfig world;
    Communicator* comm;
    cudaStream_t collective = nullptr;  // the communicator's stream
    int64_t max_seq_len;
    Backend& backend;
    cpu::GateParams gate;
    float softmax_scale;
    cudaStream_t compute = nullptr, comm_stream = nullptr;
    cudaEvent_t to_collective = nullptr, from_collective = nullptr;
    cuda::Sgemm gemm;
    std::unique_ptr<cuda::Fp8BlockGemm> fp8_gemm;  // set by use_fp8_gemm(true)
    DeviceArray<uint8_t> act_q;
    DeviceArray<float> act_scales;

    DeviceArray<float> rope_cos, rope_sin;
    // Step inputs.
    PinnedArray<int32_t> host_ints;
    PinnedArray<int64_t> host_positions;
    DeviceArray<int32_t> tokens, out_rows;
    DeviceArray<int64_t> positions;
    // Activations and scratch (one step at a time: the pipeline synchronizes at the end of each).
    DeviceArray<float> x, h, block, qa, q, kv, attn, mla_scratch, gate_buf, up_buf, route_logits;
    DeviceArray<float> weight, expert_x, expert_y, last, local_logits, gathered;
    DeviceArray<float> route_weights;
    DeviceArray<int32_t> route_experts, expert_index;
    DeviceArray<float> expert_scale;
    PinnedArray<float> host_route_weights, host_expert_scale;
    PinnedArray<int32_t> host_route_experts, host_expert_index;

    Impl(const ModelConfig& c, const WorldConfig& w, Communicator* cm, void* coll, int64_t max_len, Backend& b)
        : config(c),
          world(w),
          comm(cm),
          collective(static_cast<cudaStream_t>(coll)),
          max_seq_len(max_len),
          backend(b),
          gate(cpu::gate_params(c)),
          softmax_scale(static_cast<float>(cpu::attention_softmax_scale(c))) {}

    cudaStream_t reduce_stream() const { return world.world_size > 1 ? comm_stream : compute; }

    // A weight part as float in the `weight` scratch (FP8 x block scales, or BF16 widened).
    const float* dequantize(const std::string& name, const WeightView& v, const WeightSource& w) {
        ECF8_CHECK(v.shape.size() == 2, "tensor " << name << " is not a matrix");
        const int64_t rows = v.shape[0], cols = v.shape[1];
        float* out = weight.reserve(rows * cols);
        if (v.dtype == DType::F8_E4M3) {
            const WeightView s = w.get(name + "_scale_inv");
            ECF8_CHECK(s.dtype == DType::F32, "tensor " << name << "_scale_inv is not F32");
            cuda::dequantize_fp8_block_to_float(v.data, reinterpret_cast<const float*>(s.data), rows, cols, out,
                                                config.quantization.weight_block_size.at(0), compute);
        } else {
            cuda::widen_bf16(bf16_of(v, name), rows * cols, out, compute);
        }
        return out;
    }

    void linear(const std::string& name, const float* in, int64_t n_tokens, const WeightSource& w, float* y) {
        const WeightView v = w.get(name);
        if (fp8_gemm && v.dtype == DType::F8_E4M3 && v.shape.size() == 2 &&
            config.quantization.weight_block_size.at(0) == 128 &&
            cuda::Fp8BlockGemm::supported(n_tokens, v.shape[1], v.shape[0])) {
            const int64_t in_features = v.shape[1], out_features = v.shape[0];
            const WeightView s = w.get(name + "_scale_inv");
            uint8_t* xq = act_q.reserve(n_tokens * in_features);
            float* xs = act_scales.reserve(n_tokens * (in_features / 128));
            cuda::quantize_activations_fp8(in, n_tokens, in_features, xq, xs, compute);
            fp8_gemm->linear(xq, xs, v.data, reinterpret_cast<const float*>(s.data), y, n_tokens, in_features,
                             out_features, compute);
            return;
        }
        const float* wf = dequantize(name, v, w);
        gemm.linear_f32(in, wf, y, n_tokens, v.shape[1], v.shape[0], compute);
    }

    void add_pending_block(ForwardState& s) {
        if (!s.block_pending) return;
        const int64_t n = s.n_tokens * config.hidden_size;
        cuda::add(x.get(), block.get(), n, x.get(), compute);
        s.block_pending = false;
    }

    void dense_mlp(const std::string& prefix, const float* in, int64_t n_tokens, const WeightSource& w, float* out) {
        const int64_t inter = w.get(prefix + "gate_proj.weight").shape[0];
        float* g = gate_buf.reserve(n_tokens * inter);
        float* u = up_buf.reserve(n_tokens * inter);
        linear(prefix + "gate_proj.weight", in, n_tokens, w, g);
        linear(prefix + "up_proj.weight", in, n_tokens, w, u);
        cuda::silu_mul(g, u, n_tokens * inter, g, compute);
        linear(prefix + "down_proj.weight", g, n_tokens, w, out);
    }

    // One all-reduce over the ranks (NCCL gives every rank the same sum), ordered with the comm stream.
    void reduce_sum(float* buf, int64_t count) {
        if (world.world_size == 1) return;
        on_collective_stream([&] { comm->all_reduce_sum(buf, count, ElemType::F32); });
    }

    void all_gather(const float* send, float* recv, int64_t count) {
        on_collective_stream([&] { comm->all_gather(send, recv, count, ElemType::F32); });
    }

    template <class Fn>
    void on_collective_stream(Fn&& enqueue) {
        CUDA_CHECK(cudaEventRecord(to_collective, comm_stream));
        CUDA_CHECK(cudaStreamWaitEvent(collective, to_collective, 0));
        enqueue();
        CUDA_CHECK(cudaEventRecord(from_collective, collective));
        CUDA_CHECK(cudaStreamWaitEvent(comm_stream, from_collective, 0));
    }
};

CudaModel::CudaModel(const ModelConfig& config, const WorldConfig& world, Communicator* comm, void* collective_stream,
                     int64_t max_seq_len, Backend& backend)
    : impl_(std::make_unique<Impl>(config, world, comm, collective_stream, max_seq_len, backend)) {
    world.validate();
    ECF8_CHECK(backend.kind() == BackendKind::Cuda, "CudaModel needs the CUDA backend, got " << backend.name());
    ECF8_CHECK(world.world_size == 1 || (comm != nullptr && collective_stream != nullptr),
               "a world of " << world.world_size << " ranks needs a communicator and its stream");
    ECF8_CHECK(max_seq_len >= 1, "max_seq_len must be >= 1, got " << max_seq_len);
    ECF8_CHECK(config.q_lora_rank > 0, config.source << ": q_lora_rank 0 (q_proj) is not supported by the runtime yet");
    const cpu::RopeTable rope = cpu::make_rope_table(config, max_seq_len);
    CUDA_CHECK(cudaMemcpy(impl_->rope_cos.reserve(rope.cos.size()), rope.cos.data(), rope.cos.size() * sizeof(float),
                          cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(impl_->rope_sin.reserve(rope.sin.size()), rope.sin.data(), rope.sin.size() * sizeof(float),
                          cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaEventCreateWithFlags(&impl_->to_collective, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&impl_->from_collective, cudaEventDisableTiming));
}

CudaModel::~CudaModel() {
    cudaDeviceSynchronize();
    cudaEventDestroy(impl_->to_collective);
    cudaEventDestroy(impl_->from_collective);
}

void CudaModel::use_fp8_gemm(bool on) { impl_->fp8_gemm = on ? std::make_unique<cuda::Fp8BlockGemm>() : nullptr; }

const ModelConfig& CudaModel::config() const { return impl_->config; }
const WorldConfig& CudaModel::world() const { return impl_->world; }

KvCache CudaModel::new_cache() const {
    const ModelConfig& c = impl_->config;
    const int64_t layers = c.num_hidden_layers, len = impl_->max_seq_len;
    const int64_t per_layer = len * (c.kv_lora_rank + c.qk_rope_head_dim);
    auto d = std::make_shared<DeviceKvCache>();
    d->memory = impl_->backend.buffer(layers * per_layer * sizeof(float), MemoryKind::Device, "kv_cache");
    CUDA_CHECK(cudaMemset(d->memory.data(), 0, d->memory.size()));
    for (int64_t l = 0; l < layers; ++l) {
        float* base = d->memory.as<float>() + l * per_layer;
        d->kv.push_back(base);
        d->pe.push_back(base + len * c.kv_lora_rank);
    }
    KvCache cache;
    cache.device = std::move(d);
    return cache;
}

void CudaModel::bind_streams(Stream& compute, Stream& comm) {
    impl_->compute = static_cast<cudaStream_t>(compute.native_handle());
    impl_->comm_stream = static_cast<cudaStream_t>(comm.native_handle());
}

ForwardState CudaModel::prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                                bool all_positions) {
    Impl& m = *impl_;
    ECF8_CHECK(m.compute != nullptr, "CudaModel: no compute stream bound (run it through a Pipeline)");
    for (KvCache* c : caches) device_cache(c);
    ForwardState s = plan_forward_step(m.config, m.max_seq_len, tokens, caches, all_positions);
    const int64_t T = s.n_tokens, R = static_cast<int64_t>(s.out_rows.size());
    // Tokens, positions and the returned rows go up once; the pinned copies stay untouched until the step
    // ends (the pipeline synchronizes then), so the uploads stay asynchronous.
    int32_t* ints = m.host_ints.reserve(T + R);
    std::copy(s.tokens.begin(), s.tokens.end(), ints);
    for (int64_t r = 0; r < R; ++r) ints[T + r] = static_cast<int32_t>(s.out_rows[r]);
    int64_t* pos = m.host_positions.reserve(T);
    std::copy(s.positions.begin(), s.positions.end(), pos);
    CUDA_CHECK(cudaMemcpyAsync(m.tokens.reserve(T), ints, T * sizeof(int32_t), cudaMemcpyHostToDevice, m.compute));
    CUDA_CHECK(
        cudaMemcpyAsync(m.out_rows.reserve(R), ints + T, R * sizeof(int32_t), cudaMemcpyHostToDevice, m.compute));
    CUDA_CHECK(cudaMemcpyAsync(m.positions.reserve(T), pos, T * sizeof(int64_t), cudaMemcpyHostToDevice, m.compute));
    const int64_t act = T * m.config.hidden_size;
    m.x.reserve(act);
    m.h.reserve(act);
    m.block.reserve(act);
    return s;
}

void CudaModel::embed(ForwardState& s, const WeightSource& w) {
    Impl& m = *impl_;
    const WeightView emb = w.get("model.embed_tokens.weight");
    cuda::embedding_bf16(m.tokens.get(), s.n_tokens, bf16_of(emb, "model.embed_tokens.weight"), emb.begin,
                         emb.begin + emb.shape[0], m.config.hidden_size, m.x.get(), m.compute);
}

void CudaModel::reduce_embedding(ForwardState& s) {
    impl_->reduce_sum(impl_->x.get(), s.n_tokens * config().hidden_size);
}

void CudaModel::reduce_block(ForwardState& s) {
    impl_->reduce_sum(impl_->block.get(), s.n_tokens * config().hidden_size);
    s.block_pending = true;
}

void CudaModel::attention(int layer, ForwardState& s, const WeightSource& w) {
    Impl& m = *impl_;
    const ModelConfig& c = m.config;
    const std::string p = layer_prefix(layer) + "self_attn.";
    const int64_t n_tokens = s.n_tokens, dim = c.hidden_size;
    const int64_t heads = c.num_attention_heads / m.world.tp_size;
    const int64_t qk = c.qk_head_dim(), lora = c.kv_lora_rank, rope = c.qk_rope_head_dim;
    const float eps = static_cast<float>(c.rms_norm_eps);
    m.add_pending_block(s);
    const std::string norm = layer_prefix(layer) + "input_layernorm.weight";
    cuda::rmsnorm(m.x.get(), bf16_of(w.get(norm), norm), n_tokens, dim, eps, m.h.get(), m.compute);

    float* qa = m.qa.reserve(n_tokens * c.q_lora_rank);
    float* q = m.q.reserve(n_tokens * heads * qk);
    m.linear(p + "q_a_proj.weight", m.h.get(), n_tokens, w, qa);
    cuda::rmsnorm(qa, bf16_of(w.get(p + "q_a_layernorm.weight"), p + "q_a_layernorm.weight"), n_tokens, c.q_lora_rank,
                  eps, qa, m.compute);
    m.linear(p + "q_b_proj.weight", qa, n_tokens, w, q);
    cuda::apply_rope(q + c.qk_nope_head_dim, n_tokens, heads * qk, heads, qk, rope, m.positions.get(), m.rope_cos.get(),
                     m.rope_sin.get(), m.compute);

    float* kv = m.kv.reserve(n_tokens * (lora + rope));
    m.linear(p + "kv_a_proj_with_mqa.weight", m.h.get(), n_tokens, w, kv);
    cuda::apply_rope(kv + lora, n_tokens, lora + rope, 1, rope, rope, m.positions.get(), m.rope_cos.get(),
                     m.rope_sin.get(), m.compute);
    const uint16_t* kv_norm = bf16_of(w.get(p + "kv_a_layernorm.weight"), p + "kv_a_layernorm.weight");
    for (size_t q_idx = 0; q_idx < s.caches.size(); ++q_idx) {
        DeviceKvCache& cache = device_cache(s.caches[q_idx]);
        const int64_t t0 = s.seq_begin[q_idx], len = s.seq_begin[q_idx + 1] - t0, p0 = s.positions[t0];
        // The sequence's new rows are consecutive positions: one normed block and one strided copy.
        for (int64_t t = 0; t < len; ++t)
            cuda::rmsnorm(kv + (t0 + t) * (lora + rope), kv_norm, 1, lora, eps, cache.kv[layer] + (p0 + t) * lora,
                          m.compute);
        CUDA_CHECK(cudaMemcpy2DAsync(cache.pe[layer] + p0 * rope, rope * sizeof(float), kv + t0 * (lora + rope) + lora,
                                     (lora + rope) * sizeof(float), rope * sizeof(float), len, cudaMemcpyDeviceToDevice,
                                     m.compute));
    }

    // The local heads' wkv_b, dequantized once for all sequences (the scratch is not reused before o_proj).
    const std::string kvb = p + "kv_b_proj.weight";
    const float* wkv_b = m.dequantize(kvb, w.get(kvb), w);

    const cpu::MlaDims dims{heads, c.qk_nope_head_dim, rope, c.v_head_dim, lora};
    float* attn = m.attn.reserve(n_tokens * heads * c.v_head_dim);
    for (size_t q_idx = 0; q_idx < s.caches.size(); ++q_idx) {
        DeviceKvCache& cache = device_cache(s.caches[q_idx]);
        const int64_t t0 = s.seq_begin[q_idx], len = s.seq_begin[q_idx + 1] - t0;
        float* scratch = m.mla_scratch.reserve(cuda::mla_attention_scratch_floats(dims, len, s.positions[t0]));
        cuda::mla_attention(m.gemm, q + t0 * heads * qk, cache.kv[layer], cache.pe[layer], wkv_b, dims, len,
                            s.positions[t0], m.softmax_scale, scratch, attn + t0 * heads * c.v_head_dim, m.compute);
    }
    m.linear(p + "o_proj.weight", attn, n_tokens, w, m.block.get());
}

void CudaModel::ffn_norm(int layer, ForwardState& s, const WeightSource& w) {
    Impl& m = *impl_;
    const ModelConfig& c = m.config;
    m.add_pending_block(s);
    const std::string norm = layer_prefix(layer) + "post_attention_layernorm.weight";
    cuda::rmsnorm(m.x.get(), bf16_of(w.get(norm), norm), s.n_tokens, c.hidden_size, static_cast<float>(c.rms_norm_eps),
                  m.h.get(), m.compute);
    s.picked.clear();
    if (!c.is_moe_layer(layer)) return;

    const std::string p = layer_prefix(layer) + "mlp.";
    const int64_t n_tokens = s.n_tokens, k = m.gate.topk;
    float* logits = m.route_logits.reserve(n_tokens * c.n_routed_experts);
    m.linear(p + "gate.weight", m.h.get(), n_tokens, w, logits);
    const float* bias = nullptr;
    if (c.topk_method == "noaux_tc")
        bias = reinterpret_cast<const float*>(w.get(p + "gate.e_score_correction_bias").data);
    float* weights = m.route_weights.reserve(n_tokens * k);
    int32_t* experts = m.route_experts.reserve(n_tokens * k);
    cuda::moe_route(logits, bias, n_tokens, m.gate, weights, experts, m.compute);

    // The picks decide which experts to fetch and the expert GEMMs' sizes: bring them to the host.
    float* host_weights = m.host_route_weights.reserve(n_tokens * k);
    int32_t* host_experts = m.host_route_experts.reserve(n_tokens * k);
    CUDA_CHECK(cudaMemcpyAsync(host_weights, weights, n_tokens * k * sizeof(float), cudaMemcpyDeviceToHost, m.compute));
    CUDA_CHECK(
        cudaMemcpyAsync(host_experts, experts, n_tokens * k * sizeof(int32_t), cudaMemcpyDeviceToHost, m.compute));
    CUDA_CHECK(cudaStreamSynchronize(m.compute));
    s.route_weights.assign(host_weights, host_weights + n_tokens * k);
    s.route_experts.assign(host_experts, host_experts + n_tokens * k);
    assign_routed_experts(c, m.world, s.route_experts.data(), n_tokens, k, &s.expert_rows, &s.picked);
}

void CudaModel::ffn(int layer, ForwardState& s, const WeightSource& w) {
    Impl& m = *impl_;
    const ModelConfig& c = m.config;
    const std::string p = layer_prefix(layer) + "mlp.";
    if (!c.is_moe_layer(layer)) {
        m.dense_mlp(p, m.h.get(), s.n_tokens, w, m.block.get());
    } else if (c.n_shared_experts > 0) {
        m.dense_mlp(p + "shared_experts.", m.h.get(), s.n_tokens, w, m.block.get());
    } else {
        CUDA_CHECK(cudaMemsetAsync(m.block.get(), 0, s.n_tokens * c.hidden_size * sizeof(float), m.compute));
    }
}

void CudaModel::routed_experts(int layer, ForwardState& s, const WeightSource& w, size_t first, size_t last) {
    Impl& m = *impl_;
    const int64_t dim = m.config.hidden_size, k = m.gate.topk;
    const std::string p = layer_prefix(layer) + "mlp.experts.";
    last = std::min(last, s.picked.size());
    int64_t total = 0, widest = 0, offset = 0;  // offset: rows of the picks before `first`
    for (size_t i = 0; i < s.picked.size(); ++i) {
        const int64_t rows = static_cast<int64_t>(s.expert_rows[s.picked[i]].size());
        if (i < first) offset += rows;
        total += rows;
        widest = std::max(widest, rows);
    }
    if (first >= last || total == 0) return;
    int32_t* d_index = m.expert_index.reserve(total);
    float* d_scale = m.expert_scale.reserve(total);
    if (first == 0) {
        // Every picked expert's token rows and routing weights, uploaded once for the layer (by the first
        // group). The pinned lists are rewritten only at the next MoE layer, after its routing synchronized
        // the compute stream.
        int32_t* index = m.host_expert_index.reserve(total);
        float* scale = m.host_expert_scale.reserve(total);
        int64_t n = 0;
        for (int e : s.picked)
            for (int64_t row : s.expert_rows[e]) {
                index[n] = static_cast<int32_t>(row / k);
                scale[n] = s.route_weights[row];
                ++n;
            }
        CUDA_CHECK(cudaMemcpyAsync(d_index, index, total * sizeof(int32_t), cudaMemcpyHostToDevice, m.compute));
        CUDA_CHECK(cudaMemcpyAsync(d_scale, scale, total * sizeof(float), cudaMemcpyHostToDevice, m.compute));
    }
    float* xe = m.expert_x.reserve(widest * dim);
    float* ye = m.expert_y.reserve(widest * dim);
    for (size_t i = first; i < last; ++i) {
        const int e = s.picked[i];
        const int64_t rows = static_cast<int64_t>(s.expert_rows[e].size());
        cuda::gather_rows(m.h.get(), d_index + offset, rows, dim, xe, m.compute);
        m.dense_mlp(p + std::to_string(e) + ".", xe, rows, w, ye);
        cuda::scatter_add_scaled_rows(ye, d_index + offset, d_scale + offset, rows, dim, m.block.get(), m.compute);
        offset += rows;
    }
}

void CudaModel::head(ForwardState& s, const WeightSource& w) {
    Impl& m = *impl_;
    const int64_t dim = m.config.hidden_size;
    m.add_pending_block(s);
    const int64_t R = static_cast<int64_t>(s.out_rows.size());
    float* last = m.last.reserve(R * dim);
    cuda::gather_rows(m.x.get(), m.out_rows.get(), R, dim, last, m.compute);
    cuda::rmsnorm(last, bf16_of(w.get("model.norm.weight"), "model.norm.weight"), R, dim,
                  static_cast<float>(m.config.rms_norm_eps), last, m.compute);
    const int64_t part = w.get("lm_head.weight").shape[0];
    m.linear("lm_head.weight", last, R, w, m.local_logits.reserve(R * part));
    s.local_logits.assign(R * part, 0.0f);  // the host copy's size; filled by gather_logits
}

void CudaModel::gather_logits(ForwardState& s) {
    Impl& m = *impl_;
    const int n = m.world.world_size;
    const int64_t R = static_cast<int64_t>(s.out_rows.size());
    const int64_t part = static_cast<int64_t>(s.local_logits.size()) / R;
    const cudaStream_t stream = m.reduce_stream();
    std::vector<float> gathered(R * part * n);
    const float* source = m.local_logits.get();
    if (n > 1) {
        float* all = m.gathered.reserve(R * part * n);
        m.all_gather(m.local_logits.get(), all, R * part);
        source = all;
    }
    // A read-back into pageable memory returns once the stream has produced the logits: the step's end.
    CUDA_CHECK(
        cudaMemcpyAsync(gathered.data(), source, gathered.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    if (n == 1) {
        s.logits = std::move(gathered);
        return;
    }
    s.logits.assign(R * part * n, 0.0f);
    for (int r = 0; r < n; ++r)
        for (int64_t i = 0; i < R; ++i)
            std::memcpy(&s.logits[i * part * n + r * part], &gathered[(r * R + i) * part], part * sizeof(float));
}

}  // namespace ecf8
