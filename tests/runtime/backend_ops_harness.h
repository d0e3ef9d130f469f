// The op harness of test_backend_ops (tests/runtime/test_backend_ops.cpp, in the style of ggml's
// tests/test-backend-ops.cpp): tolerances, results and the float64 references they are checked against, a
// device (one backend, a stream, a one-rank communicator), the OpCase every make_<op>() returns, and input
// helpers. Cases: backend_ops_cases_basic.cpp (memory, rows, elementwise, rmsnorm, rope),
// backend_ops_cases_experts.cpp (moe_dispatch, routed_experts_mlp), backend_ops_cases_decode.cpp (the ECF8
// blob decoder), backend_ops_cases_attention.cpp (the paged KV cache and MLA attention) and
// backend_ops_cases_model.cpp (linear, dequantize, MoE routing, and the list of all cases).
//
// Adding an op: add its row to kTolerances (backend_ops_harness.cpp), write a make_<op>() that draws the
// inputs and returns an OpCase (run: the op on a backend, read back; reference: float64, with the magnitude
// its bound is relative to), and list its shapes in all_cases(). The seed is ECF8_TEST_SEED (default
// 20250101), printed once.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/float_formats.h"
#include "runtime/backend.h"
#include "runtime/communicator.h"
#include "runtime/cpu_backend.h"
#include "runtime/ops.h"

namespace ecf8::opstest {

// What a result is checked against: BackendOpsCpu checks the CPU against float64 with `rel`;
// BackendOpsGpu checks CUDA against the CPU with `gpu_rel`, 0 where both run the same kernels/core code in
// the same order (bit-identical by construction).
enum class Against { Float64, Cpu };

struct Output {
    std::vector<float> f;
    std::vector<int32_t> i;
};

struct Reference {
    std::vector<double> f, mag;  // values and what their bound is relative to
    std::vector<int32_t> i;      // compared exactly
};

uint64_t test_seed();
void expect_matches(const std::string& op, const Reference& want, const Output& got, Against against);

// A one-rank group on backend memory: all_reduce_sum leaves the buffer, all_gather copies. On CUDA it copies
// on its own stream (native_stream), as NCCL does; on the CPU at once, as MPI does.
// on its own stream (native_stream), as NCCL does; on the CPU at once, as MPI does.
class OneRankCommunicator final : public Communicator {
public:
    explicit OneRankCommunicator(Backend& b)
        : backend_(b), stream_(b.kind() == BackendKind::Cpu ? nullptr : &b.create_stream("comm")) {}
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void all_reduce_sum(void*, size_t, ElemType) override {}
    void all_gather(const void* send, void* recv, size_t n, ElemType t) override { copy(recv, send, n * elem_size(t)); }
    void all_to_all(const void* send, void* recv, size_t n, ElemType t) override { copy(recv, send, n * elem_size(t)); }
    void all_to_allv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv, const size_t*,
                     const size_t* recv_displs, ElemType t) override {
        const size_t e = elem_size(t);
        copy(static_cast<char*>(recv) + recv_displs[0] * e, static_cast<const char*>(send) + send_displs[0] * e,
             send_counts[0] * e);
    }
    void broadcast(void*, size_t, ElemType, int) override {}
    void barrier() override {}
    void* native_stream() const override { return stream_ ? stream_->native_handle() : nullptr; }

private:
    void copy(void* dst, const void* src, size_t bytes) {
        if (dst == src || bytes == 0) return;
        if (stream_) return backend_.memcpy_async(dst, src, bytes, *stream_);
        std::memcpy(dst, src, bytes);
    }
    Backend& backend_;
    Stream* stream_;
};

// One backend with a stream and a one-rank communicator; up() and down() copy through its ops.
struct Device {
    std::unique_ptr<Backend> backend;
    Stream* stream = nullptr;
    std::unique_ptr<OneRankCommunicator> comm;

    explicit Device(std::unique_ptr<Backend> b) : backend(std::move(b)) {
        stream = &backend->create_stream("compute");
        comm = std::make_unique<OneRankCommunicator>(*backend);
    }
    Ops& ops() const { return backend->ops(); }
    Stream& s() const { return *stream; }
    template <class T>
    Buffer up(const std::vector<T>& v) const {
        Buffer b = backend->buffer(std::max<size_t>(v.size() * sizeof(T), 16), MemoryKind::Device, "test");
        ops().to_device(b.data(), v.data(), v.size() * sizeof(T), s());
        return b;
    }
    Buffer alloc(int64_t floats) const { return backend->buffer(floats * sizeof(float), MemoryKind::Device, "test"); }
    template <class T>
    std::vector<T> down(const Buffer& b, size_t n) const {
        std::vector<T> v(n);
        ops().to_host(v.data(), b.data(), n * sizeof(T), s());
        return v;
    }
};

struct OpCase {
    std::string op;  // its row of kTolerances
    std::function<Output(const Device&)> run;
    std::function<Reference()> reference;
};

struct CaseSpec {
    std::string name;
    std::function<OpCase(std::mt19937&)> make;
    bool cuda_only = false;
};

void PrintTo(const CaseSpec& c, std::ostream* os);

// Inputs and scalar decodes (independent of common/ and kernels/ on the reference side).
std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi);
std::vector<uint16_t> bf16_uniform(std::mt19937& rng, size_t n, float lo, float hi);
double bf16_value(uint16_t b);
double e4m3_value(uint8_t b);
Reference exact(const std::vector<float>& v);
int64_t blocks(int64_t n, int64_t block);

// backend_ops_cases_basic.cpp
OpCase make_to_device(std::mt19937& rng, size_t bytes);
OpCase make_fill_zero(std::mt19937& rng, size_t n, size_t offset, size_t bytes);
OpCase make_copy_rows(std::mt19937& rng, int64_t rows, int64_t cols, int64_t src_stride, int64_t dst_stride);
OpCase make_embedding(std::mt19937& rng, int64_t vocab, int64_t begin, int64_t end, int64_t dim, int64_t n_tokens);
OpCase make_gather(std::mt19937& rng, int64_t n_src, int64_t dim, int64_t n_rows);
OpCase make_scatter(std::mt19937& rng, int64_t n_out, int64_t dim, int64_t n_rows);
OpCase make_argmax_rows(std::mt19937& rng, int64_t rows, int64_t blocks, int64_t block_len);
OpCase make_elementwise(std::mt19937& rng, int64_t n, bool silu);
OpCase make_collective(std::mt19937& rng, int64_t count, bool gather);
OpCase make_rmsnorm(std::mt19937& rng, int64_t rows, int64_t dim, int64_t x_stride, int64_t out_stride);
struct RopeShape {
    int64_t n_tokens, n_heads, head_stride, token_stride, offset, rope_dim, max_seq_len;
};
OpCase make_rope(std::mt19937& rng, RopeShape sh);

// backend_ops_cases_model.cpp: weights of linear ops, FP8 e4m3 with [ceil(rows / block), ceil(cols / block)]
// scales, or BF16.
struct HostWeight {
    DType dtype;
    int64_t rows, cols, block;
    std::vector<uint8_t> data;  // e4m3 bytes, or BF16 as little-endian pairs
    std::vector<float> scale_inv;

    double at(int64_t r, int64_t c) const {
        if (dtype == DType::BF16) {
            uint16_t b;
            std::memcpy(&b, data.data() + 2 * (r * cols + c), 2);
            return bf16_value(b);
        }
        return e4m3_value(data[r * cols + c]) * scale_inv[(r / block) * blocks(cols, block) + c / block];
    }
};

std::shared_ptr<HostWeight> random_weight(std::mt19937& rng, DType dtype, int64_t rows, int64_t cols, int64_t block);
// The weight in backend memory; the buffers live in `keep`.
LinearWeight upload(const Device& d, const HostWeight& w, std::vector<Buffer>& keep);

// backend_ops_cases_experts.cpp: moe_dispatch of n_tokens x topk picks of n_experts to the local range
// [begin, begin + n_local) (none_local: no pick falls in it), and routed_experts_mlp after it.
OpCase make_moe_dispatch(std::mt19937& rng, int64_t n_tokens, int64_t topk, int64_t n_experts, int64_t begin,
                         int64_t n_local, bool none_local = false);
struct ExpertsShape {
    int64_t n_experts, topk, n_tokens, n_local, dim, inter;
    DType dtype;
    // The scratch holds every pick (n_tokens x topk rows, topk given), as the runtime's does in decode steps:
    // CUDA then runs the experts in groups (cuda::kMaxExpertGroup per launch) instead of one by one.
    bool room_for_all_picks = false;
    // CUDA runs with use_fp8_gemm(true) (compute.gemm fp8): steps of more than 64 tokens take the experts'
    // tensor-core kernel (op "routed_experts_tc"). The CPU multiplies in FP32 either way.
    bool tensor_cores = false;
};
OpCase make_routed_experts(std::mt19937& rng, ExpertsShape sh);

// backend_ops_cases_decode.cpp: one BlobDecoder::decode of a batch of jobs, each an ECF8 blob of gaussian
// values (encode_tensor's defaults) or a raw copy, gated by picks as routed experts' jobs are.
enum class PickRange { None, Empty, Picked };  // picks null (always runs); an empty range (skipped); a non-empty one
struct DecodeJobSpec {
    DType dtype;  // F8_E4M3 or BF16: an encoded blob; U8: a raw copy of numel bytes (BlobJob::tensor null)
    uint64_t numel;
    PickRange picks = PickRange::None;
    bool pinned = false;  // the blob (or copy source) in MemoryKind::PinnedHost memory, as host-tier experts'
};
OpCase make_blob_decode(std::mt19937& rng, std::vector<DecodeJobSpec> jobs);

// backend_ops_cases_attention.cpp: the paged KV cache's write and the batched MLA attention over a ragged
// batch; each sequence has `context` positions cached before the step and `fresh` new tokens in it. The
// attention's block tables are table_blocks wide when that is more than the sequences need (as the runtime's,
// max_model_len wide), and the batch gives its max_keys as the runtime does.
struct PagedSeq {
    int64_t context = 0, fresh = 1;
};
OpCase make_kv_cache_write(std::mt19937& rng, const cpu::MlaDims& d, core::KvDType dtype, int64_t block_tokens,
                           const std::vector<PagedSeq>& seqs);
OpCase make_paged_mla(std::mt19937& rng, const cpu::MlaDims& d, core::KvDType dtype, int64_t block_tokens,
                      const std::vector<PagedSeq>& seqs, int64_t table_blocks = 0);

// backend_ops_cases_model.cpp: every case, those that need CUDA (the FP8 GEMM) only when asked.
std::vector<CaseSpec> cases(bool with_cuda_only);
// Each case draws from its own generator, seeded by the test seed and its name.
std::mt19937 case_rng(const std::string& name);
std::string case_name(const ::testing::TestParamInfo<CaseSpec>& info);

}  // namespace ecf8::opstest
