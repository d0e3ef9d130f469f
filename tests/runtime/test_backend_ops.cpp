// test_backend_ops: every op of the op table (runtime/ops.h) on every backend present, in the style of ggml's
// tests/test-backend-ops.cpp. Each case draws seeded random inputs once and runs one op on backend memory:
//   BackendOpsCpu.*  CpuBackend's ops() against a float64 scalar reference written here (not kernels/cpu);
//   BackendOpsGpu.*  CudaBackend's ops() against CpuBackend's ops() on the same inputs (CUDA builds only;
//                    skipped without a device).
// Both sides use one bound per op, kTolerances below. Shapes: DeepSeek-V3's (hidden 7168, q_lora_rank 1536,
// kv_lora_rank 512, 16 local heads = 128 at tp 8, 256 experts, top-8 of 4 of 8 groups, ...) where the float64
// reference is cheap, small random ones and edges (one token, one row, odd sizes such as 129).
// The collectives run on OneRankCommunicator below, a one-rank group on backend memory (MPI and NCCL need
// their own launchers; tests/runtime/test_mpi_communicator.cpp and test_nccl_communicator.cpp cover them).
//
// Adding an op: add its row to kTolerances, write a make_<op>() that draws the inputs and returns an OpCase
//
// The harness, the tolerances and the cases: backend_ops_harness.h.
#include "tests/runtime/backend_ops_harness.h"
#if defined(ECF8_HAVE_CUDA)
#include "runtime/cuda_backend.h"
#endif

namespace ecf8::opstest {
namespace {

// ---------------------------------------------------------------------------------------------------
// CPU: CpuBackend's ops() against the float64 reference

class BackendOpsCpu : public ::testing::TestWithParam<CaseSpec> {
protected:
    static void SetUpTestSuite() { cpu_ = new Device(std::make_unique<CpuBackend>()); }
    static void TearDownTestSuite() {
        delete cpu_;
        cpu_ = nullptr;
    }
    static Device* cpu_;
};
Device* BackendOpsCpu::cpu_ = nullptr;

TEST_P(BackendOpsCpu, MatchesFloat64Reference) {
    std::mt19937 rng = case_rng(GetParam().name);
    const OpCase c = GetParam().make(rng);
    expect_matches(c.op, c.reference(), c.run(*cpu_), Against::Float64);
}

INSTANTIATE_TEST_SUITE_P(Ops, BackendOpsCpu, ::testing::ValuesIn(cases(false)), case_name);

TEST(BackendOpsCpuOnly, RefusesTheFp8Gemm) {
    CpuBackend b;
    EXPECT_THROW(b.ops().use_fp8_gemm(true), Error);
    EXPECT_NO_THROW(b.ops().use_fp8_gemm(false));
}

// The linear's scratch is sized on the host beforehand (a work item must not allocate): a weight larger
// than what was reserved is an error, not an overflow; the scratch is the backend's, tagged.
TEST(BackendOpsCpuOnly, LinearStaysWithinItsReservedScratch) {
    CpuBackend b;
    Stream& s = b.create_stream("compute");
    std::vector<uint16_t> w(16, 0x3f80);  // 1.0 in BF16
    std::vector<float> x(4, 1.0f), y(4, 0.0f);
    LinearWeight lw;
    lw.data = reinterpret_cast<const uint8_t*>(w.data());
    lw.dtype = DType::BF16;
    lw.rows = lw.cols = 4;
    b.ops().reserve_linear_scratch(8);
    EXPECT_EQ(b.live_bytes_by_tag(MemoryKind::Device).at("gemm_scratch"), 8 * sizeof(float));
    EXPECT_THROW(b.ops().linear(lw, x.data(), 1, y.data(), s), Error);
    b.ops().reserve_linear_scratch(16);
    b.ops().linear(lw, x.data(), 1, y.data(), s);
    EXPECT_EQ(y, std::vector<float>(4, 4.0f));
}

// ---------------------------------------------------------------------------------------------------
// GPU: CudaBackend's ops() against CpuBackend's ops(), same inputs, the gpu_rel bounds (magnitudes from float64)

#if defined(ECF8_HAVE_CUDA)

class BackendOpsGpu : public ::testing::TestWithParam<CaseSpec> {
protected:
    static void SetUpTestSuite() {
        if (CudaBackend::device_count() == 0) return;
        cpu_ = new Device(std::make_unique<CpuBackend>());
        gpu_ = new Device(std::make_unique<CudaBackend>(0));
    }
    static void TearDownTestSuite() {
        delete gpu_;
        delete cpu_;
        gpu_ = cpu_ = nullptr;
    }
    void SetUp() override {
        if (gpu_ == nullptr) GTEST_SKIP() << "no CUDA device";
    }
    static Device *cpu_, *gpu_;
};
Device* BackendOpsGpu::cpu_ = nullptr;
Device* BackendOpsGpu::gpu_ = nullptr;

TEST_P(BackendOpsGpu, MatchesCpu) {
    std::mt19937 rng = case_rng(GetParam().name);
    const OpCase c = GetParam().make(rng);
    const Output cpu = c.run(*cpu_);
    Reference want = c.reference();
    want.f.assign(cpu.f.begin(), cpu.f.end());
    want.i = cpu.i;
    expect_matches(c.op, want, c.run(*gpu_), Against::Cpu);
}

INSTANTIATE_TEST_SUITE_P(Ops, BackendOpsGpu, ::testing::ValuesIn(cases(true)), case_name);

#endif  // ECF8_HAVE_CUDA

}  // namespace
}  // namespace ecf8::opstest
