// The op harness's tolerances, comparison and input helpers (backend_ops_harness.h).
#include "tests/runtime/backend_ops_harness.h"

namespace ecf8::opstest {
namespace {

// Tolerances: |got - want| <= rel * mag, mag per element as each row says; rel == 0 means bit-identical
// (want rounded to float). `rel` bounds the CPU against float64, `gpu_rel` CUDA against the CPU.

struct Tolerance {
    const char* op;
    double rel, gpu_rel;
};

constexpr Tolerance kTolerances[] = {
    {"memory", 0.0, 0.0},                         // to_device, to_host, fill_zero, copy_rows: bytes
    {"embedding", 0.0, 0.0},                      // BF16 rows widened, zero rows outside the vocabulary part
    {"gather_rows", 0.0, 0.0},                    // copies
    {"collectives", 0.0, 0.0},                    // all_reduce_sum, all_gather on one rank
    {"dequantize", 0.0, 0.0},                     // e4m3 * scale is exact in double: rounded once
    {"add", 0.0, 0.0},                            // the correctly rounded float sum
    {"rope", 2.5e-7, 2.5e-7},                     // of |a cos| + |b sin|: one rounding (2 ulps)
    {"silu_mul", 2.5e-7, 2.5e-7},                 // of |y|: silu rounded, then the product (2 ulps)
    {"scatter_add_scaled_rows", 2.5e-7, 2.5e-7},  // of |out| + |s y|: product rounded, then the sum (2 ulps)
    {"rmsnorm", 1e-6, 0.0},                       // of |y|: mean, rsqrt, two products (8 ulps); GPU: core's order
    {"moe_route", 1e-6, 1e-6},                    // weights, of |w|; experts exact (no near-ties)
    {"moe_dispatch", 0.0, 0.0},                   // offsets and rows exact, scales copied
    {"argmax_rows", 0.0, 0.0},                    // token ids, exact
    {"decode", 0.0, 0.0},                         // BlobDecoder::decode: bytes (skipped jobs' untouched)
    {"routed_experts_mlp", 1e-5, 1e-5},           // of sum |s| |a| |w_down|, a with its own bound: three linears
    {"routed_experts_tc", 1e-5, 1e-2},            // the same; CUDA: x and a rounded to BF16 (2^-8 each, 2^-7 in all)
    {"linear", 1e-5, 1e-5},                       // of sum_k |x_k w_k|: float sums in any order
    {"kv_cache_write", 0, 0},                     // exact: a copy, or BF16's round to nearest even
    {"paged_mla_attention", 1e-5, 1e-5},          // of max |out|: float GEMMs and online softmax in any order
    {"linear_fp8_gemm", 1e-2, 1e-2},              // CUDA only, of max |y|: cuBLASLt FP8 GEMM, e4m3 activations
};

double tolerance_of(const std::string& op, Against against) {
    for (const Tolerance& t : kTolerances) {
        if (op == t.op) return against == Against::Float64 ? t.rel : t.gpu_rel;
    }
    ADD_FAILURE() << "op " << op << " has no row in kTolerances";
    return 0.0;
}

constexpr uint64_t kDefaultSeed = 20250101;

uint32_t bits(float v) {
    uint32_t u;
    std::memcpy(&u, &v, sizeof(u));
    return u;
}

}  // namespace

uint64_t test_seed() {
    static const uint64_t seed = [] {
        const char* env = std::getenv("ECF8_TEST_SEED");
        const uint64_t s = env ? std::stoull(env) : kDefaultSeed;
        std::printf("ECF8_TEST_SEED=%llu (set it to reproduce)\n", static_cast<unsigned long long>(s));
        return s;
    }();
    return seed;
}

void expect_matches(const std::string& op, const Reference& want, const Output& got, Against against) {
    const double rel = tolerance_of(op, against);
    EXPECT_EQ(got.i, want.i) << op << ": integer outputs differ";
    ASSERT_EQ(got.f.size(), want.f.size()) << op;
    size_t bad = 0;
    for (size_t k = 0; k < got.f.size(); ++k) {
        const float w = static_cast<float>(want.f[k]);
        const double bound = rel * want.mag[k];
        const bool ok = rel == 0.0 ? bits(got.f[k]) == bits(w) : std::fabs(got.f[k] - want.f[k]) <= bound;
        if (!ok && ++bad <= 5) {
            ADD_FAILURE() << op << " element " << k << ": got " << got.f[k] << ", want " << want.f[k] << " (bound "
                          << bound << ")";
        }
    }
    EXPECT_EQ(bad, 0u) << op << ": " << bad << " of " << got.f.size() << " elements out of bound";
}

// ---------------------------------------------------------------------------------------------------
// Inputs and scalar decodes (independent of common/ and kernels/ on the reference side)

std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

std::vector<uint16_t> bf16_uniform(std::mt19937& rng, size_t n, float lo, float hi) {
    std::vector<uint16_t> v(n);
    std::uniform_real_distribution<float> d(lo, hi);
    for (uint16_t& b : v) b = float_to_bf16(d(rng));
    return v;
}

double bf16_value(uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
}

double e4m3_value(uint8_t b) {
    const int e = (b >> 3) & 0xF, m = b & 7;
    const double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
    return (b & 0x80) ? -mag : mag;
}

Reference exact(const std::vector<float>& v) {
    Reference r;
    r.f.assign(v.begin(), v.end());
    r.mag.assign(v.size(), 0.0);
    return r;
}

int64_t blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

void PrintTo(const CaseSpec& c, std::ostream* os) { *os << c.name; }

}  // namespace ecf8::opstest
