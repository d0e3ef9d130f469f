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
// (run: the op on a backend, read back; reference: float64, with the magnitude its bound is relative to), and
// list its shapes in all_cases(). The seed is ECF8_TEST_SEED (default kDefaultSeed), printed once.
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
#if defined(ECF8_HAVE_CUDA)
#include "runtime/cuda_backend.h"
#endif

namespace ecf8 {
namespace {

// ---------------------------------------------------------------------------------------------------
// Tolerances: |got - want| <= rel * mag, mag per element as each row says; rel == 0 means bit-identical
// (want rounded to float). The same row bounds CPU vs float64 and GPU vs CPU.

struct Tolerance {
    const char* op;
    double rel;
};

constexpr Tolerance kTolerances[] = {
    {"memory", 0.0},                      // to_device, to_host, fill_zero, copy_rows: bytes
    {"embedding", 0.0},                   // BF16 rows widened, zero rows outside the vocabulary part
    {"gather_rows", 0.0},                 // copies
    {"collectives", 0.0},                 // all_reduce_sum, all_gather on one rank
    {"dequantize", 0.0},                  // e4m3 * scale is exact in double: rounded once
    {"add", 0.0},                         // the correctly rounded float sum
    {"rope", 2.5e-7},                     // of |a cos| + |b sin|: one rounding (2 ulps)
    {"silu_mul", 2.5e-7},                 // of |y|: silu rounded, then the product (2 ulps)
    {"scatter_add_scaled_rows", 2.5e-7},  // of |out| + |s y|: product rounded, then the sum (2 ulps)
    {"rmsnorm", 1e-6},                    // of |y|: mean, rsqrt and two products rounded (8 ulps)
    {"moe_route", 1e-6},                  // weights, of |w|; experts exact (inputs have no near-ties)
    {"linear", 1e-5},                     // of sum_k |x_k w_k|: float sums in any order
    {"mla_attention", 1e-5},              // of max |out|: float GEMMs and softmax in any order
    {"linear_fp8_gemm", 1e-2},            // CUDA only, of max |y|: cuBLASLt FP8 GEMM, e4m3 activations
};

double tolerance_of(const std::string& op) {
    for (const Tolerance& t : kTolerances) {
        if (op == t.op) return t.rel;
    }
    ADD_FAILURE() << "op " << op << " has no row in kTolerances";
    return 0.0;
}

constexpr uint64_t kDefaultSeed = 20250101;

uint64_t test_seed() {
    static const uint64_t seed = [] {
        const char* env = std::getenv("ECF8_TEST_SEED");
        const uint64_t s = env ? std::stoull(env) : kDefaultSeed;
        std::printf("ECF8_TEST_SEED=%llu (set it to reproduce)\n", static_cast<unsigned long long>(s));
        return s;
    }();
    return seed;
}

// ---------------------------------------------------------------------------------------------------
// Results, references and cases

struct Output {
    std::vector<float> f;
    std::vector<int32_t> i;
};

struct Reference {
    std::vector<double> f, mag;  // values and what their bound is relative to
    std::vector<int32_t> i;      // compared exactly
};

uint32_t bits(float v) {
    uint32_t u;
    std::memcpy(&u, &v, sizeof(u));
    return u;
}

void expect_matches(const std::string& op, const Reference& want, const Output& got) {
    const double rel = tolerance_of(op);
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

// A one-rank group on backend memory: all_reduce_sum leaves the buffer, all_gather copies. On CUDA it copies
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

void PrintTo(const CaseSpec& c, std::ostream* os) { *os << c.name; }

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

// ---------------------------------------------------------------------------------------------------
// Memory: to_device / to_host (a partial last word), fill_zero (byte offsets), copy_rows (strides)

OpCase make_to_device(std::mt19937& rng, size_t bytes) {
    const size_t n = (bytes + 3) / 4;
    auto x = std::make_shared<std::vector<float>>(uniform(rng, n, -1, 1));
    auto y = std::make_shared<std::vector<float>>(uniform(rng, n, -1, 1));
    return {"memory",
            [=](const Device& d) {
                Buffer b = d.up(*x);
                d.ops().to_device(b.data(), y->data(), bytes, d.s());
                return Output{d.down<float>(b, n), {}};
            },
            [=] {
                auto v = *x;
                std::memcpy(v.data(), y->data(), bytes);
                return exact(v);
            }};
}

OpCase make_fill_zero(std::mt19937& rng, size_t n, size_t offset, size_t bytes) {
    auto x = std::make_shared<std::vector<float>>(uniform(rng, n, -1, 1));
    return {"memory",
            [=](const Device& d) {
                Buffer b = d.up(*x);
                d.ops().fill_zero(b.as<char>() + offset, bytes, d.s());
                return Output{d.down<float>(b, n), {}};
            },
            [=] {
                auto v = *x;
                std::memset(reinterpret_cast<char*>(v.data()) + offset, 0, bytes);
                return exact(v);
            }};
}

OpCase make_copy_rows(std::mt19937& rng, int64_t rows, int64_t cols, int64_t src_stride, int64_t dst_stride) {
    auto src = std::make_shared<std::vector<float>>(uniform(rng, rows * src_stride, -1, 1));
    auto dst = std::make_shared<std::vector<float>>(uniform(rng, rows * dst_stride, -1, 1));
    return {"memory",
            [=](const Device& d) {
                Buffer s = d.up(*src), o = d.up(*dst);
                d.ops().copy_rows(s.as<float>(), src_stride, rows, cols, o.as<float>(), dst_stride, d.s());
                return Output{d.down<float>(o, dst->size()), {}};
            },
            [=] {
                auto v = *dst;
                for (int64_t r = 0; r < rows; ++r) {
                    for (int64_t c = 0; c < cols; ++c) v[r * dst_stride + c] = (*src)[r * src_stride + c];
                }
                return exact(v);
            }};
}

// ---------------------------------------------------------------------------------------------------
// embedding, gather_rows, scatter_add_scaled_rows, add, silu_mul, collectives

OpCase make_embedding(std::mt19937& rng, int64_t vocab, int64_t begin, int64_t end, int64_t dim, int64_t n_tokens) {
    auto table = std::make_shared<std::vector<uint16_t>>(bf16_uniform(rng, (end - begin) * dim, -1, 1));
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
    auto tokens = std::make_shared<std::vector<int32_t>>(n_tokens);
    for (int32_t& t : *tokens) t = id(rng);
    auto garbage = std::make_shared<std::vector<float>>(uniform(rng, n_tokens * dim, -9, 9));  // to overwrite
    const int64_t edges[] = {begin, end - 1, end};  // first and last rows of the part, first row past it
    for (int64_t k = 0; k < std::min<int64_t>(3, n_tokens); ++k) {
        if (edges[k] >= 0 && edges[k] < vocab) (*tokens)[k] = static_cast<int32_t>(edges[k]);
    }
    return {"embedding",
            [=](const Device& d) {
                Buffer t = d.up(*tokens), w = d.up(*table);
                Buffer o = d.up(*garbage);
                d.ops().embedding(t.as<int32_t>(), n_tokens, w.as<uint16_t>(), begin, end, dim, o.as<float>(), d.s());
                return Output{d.down<float>(o, n_tokens * dim), {}};
            },
            [=] {
                std::vector<float> v(n_tokens * dim, 0.0f);
                for (int64_t t = 0; t < n_tokens; ++t) {
                    const int64_t row = (*tokens)[t];
                    if (row < begin || row >= end) continue;
                    for (int64_t i = 0; i < dim; ++i) v[t * dim + i] = bf16_value((*table)[(row - begin) * dim + i]);
                }
                return exact(v);
            }};
}

OpCase make_gather(std::mt19937& rng, int64_t n_src, int64_t dim, int64_t n_rows) {
    auto src = std::make_shared<std::vector<float>>(uniform(rng, n_src * dim, -1, 1));
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(n_src - 1));
    auto rows = std::make_shared<std::vector<int32_t>>(n_rows);
    for (int32_t& r : *rows) r = pick(rng);
    return {"gather_rows",
            [=](const Device& d) {
                Buffer s = d.up(*src), r = d.up(*rows), o = d.alloc(n_rows * dim);
                d.ops().gather_rows(s.as<float>(), r.as<int32_t>(), n_rows, dim, o.as<float>(), d.s());
                return Output{d.down<float>(o, n_rows * dim), {}};
            },
            [=] {
                std::vector<float> v(n_rows * dim);
                for (int64_t r = 0; r < n_rows; ++r) {
                    for (int64_t i = 0; i < dim; ++i) v[r * dim + i] = (*src)[(*rows)[r] * dim + i];
                }
                return exact(v);
            }};
}

OpCase make_scatter(std::mt19937& rng, int64_t n_out, int64_t dim, int64_t n_rows) {
    auto out = std::make_shared<std::vector<float>>(uniform(rng, n_out * dim, -1, 1));
    auto y = std::make_shared<std::vector<float>>(uniform(rng, n_rows * dim, -1, 1));
    auto scales = std::make_shared<std::vector<float>>(uniform(rng, n_rows, 0, 2.5f));
    auto rows = std::make_shared<std::vector<int32_t>>(n_out);
    std::iota(rows->begin(), rows->end(), 0);
    std::shuffle(rows->begin(), rows->end(), rng);
    rows->resize(n_rows);  // distinct
    return {"scatter_add_scaled_rows",
            [=](const Device& d) {
                Buffer o = d.up(*out), yb = d.up(*y), s = d.up(*scales), r = d.up(*rows);
                d.ops().scatter_add_scaled_rows(yb.as<float>(), r.as<int32_t>(), s.as<float>(), n_rows, dim,
                                                o.as<float>(), d.s());
                return Output{d.down<float>(o, out->size()), {}};
            },
            [=] {
                Reference ref = exact(*out);
                for (size_t k = 0; k < out->size(); ++k) ref.mag[k] = std::fabs(ref.f[k]);
                for (int64_t r = 0; r < n_rows; ++r) {
                    for (int64_t i = 0; i < dim; ++i) {
                        const double p = static_cast<double>((*scales)[r]) * (*y)[r * dim + i];
                        ref.f[(*rows)[r] * dim + i] += p;
                        ref.mag[(*rows)[r] * dim + i] += std::fabs(p);
                    }
                }
                return ref;
            }};
}

// add (silu == false) or silu_mul (silu == true) of n elements.
OpCase make_elementwise(std::mt19937& rng, int64_t n, bool silu) {
    auto a = std::make_shared<std::vector<float>>(uniform(rng, n, -8, 8));
    auto b = std::make_shared<std::vector<float>>(uniform(rng, n, -2, 2));
    return {silu ? "silu_mul" : "add",
            [=](const Device& d) {
                Buffer x = d.up(*a), y = d.up(*b), o = d.alloc(n);
                if (silu) d.ops().silu_mul(x.as<float>(), y.as<float>(), n, o.as<float>(), d.s());
                if (!silu) d.ops().add(x.as<float>(), y.as<float>(), n, o.as<float>(), d.s());
                return Output{d.down<float>(o, n), {}};
            },
            [=] {
                Reference r;
                for (int64_t k = 0; k < n; ++k) {
                    const double g = (*a)[k], u = (*b)[k];
                    r.f.push_back(silu ? g / (1.0 + std::exp(-g)) * u : g + u);
                    r.mag.push_back(std::fabs(r.f.back()));
                }
                return r;
            }};
}

// all_gather (gather == true) or all_reduce_sum of count floats on a one-rank group.
OpCase make_collective(std::mt19937& rng, int64_t count, bool gather) {
    auto x = std::make_shared<std::vector<float>>(uniform(rng, count, -1, 1));
    auto garbage = std::make_shared<std::vector<float>>(uniform(rng, count, -9, 9));
    return {"collectives",
            [=](const Device& d) {
                Buffer b = d.up(*x), recv = d.up(*garbage);
                if (gather) d.ops().all_gather(*d.comm, b.as<float>(), recv.as<float>(), count, d.s());
                if (!gather) d.ops().all_reduce_sum(*d.comm, b.as<float>(), count, d.s());
                return Output{d.down<float>(gather ? recv : b, count), {}};
            },
            [=] { return exact(*x); }};
}

// ---------------------------------------------------------------------------------------------------
// rmsnorm (rows at strides; out keeps its gaps), rope (in place, the rest of the rows untouched)

OpCase make_rmsnorm(std::mt19937& rng, int64_t rows, int64_t dim, int64_t x_stride, int64_t out_stride) {
    auto x = std::make_shared<std::vector<float>>(uniform(rng, rows * x_stride, -3, 3));
    auto w = std::make_shared<std::vector<uint16_t>>(bf16_uniform(rng, dim, -2, 2));
    auto out = std::make_shared<std::vector<float>>(uniform(rng, rows * out_stride, -1, 1));
    constexpr float kEps = 1e-6f;
    return {"rmsnorm",
            [=](const Device& d) {
                Buffer xb = d.up(*x), wb = d.up(*w), o = d.up(*out);
                d.ops().rmsnorm(xb.as<float>(), x_stride, wb.as<uint16_t>(), rows, dim, kEps, o.as<float>(), out_stride,
                                d.s());
                return Output{d.down<float>(o, out->size()), {}};
            },
            [=] {
                Reference r = exact(*out);
                for (int64_t t = 0; t < rows; ++t) {
                    const float* xr = x->data() + t * x_stride;
                    double ss = 0.0;
                    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
                    const double inv = 1.0 / std::sqrt(ss / dim + kEps);
                    for (int64_t i = 0; i < dim; ++i) r.f[t * out_stride + i] = xr[i] * inv * bf16_value((*w)[i]);
                }
                for (size_t k = 0; k < r.f.size(); ++k) r.mag[k] = std::fabs(r.f[k]);
                return r;
            }};
}

struct RopeShape {
    int64_t n_tokens, n_heads, head_stride, token_stride, offset, rope_dim, max_seq_len;
};

OpCase make_rope(std::mt19937& rng, RopeShape sh) {
    const int64_t pairs = sh.rope_dim / 2;
    auto cos = std::make_shared<std::vector<float>>(sh.max_seq_len * pairs);
    auto sin = std::make_shared<std::vector<float>>(cos->size());
    for (int64_t p = 0; p < sh.max_seq_len; ++p) {
        for (int64_t i = 0; i < pairs; ++i) {
            const float freq = static_cast<float>(std::pow(10000.0, -2.0 * i / sh.rope_dim));
            const double angle = static_cast<float>(p) * freq;
            (*cos)[p * pairs + i] = static_cast<float>(std::cos(angle));
            (*sin)[p * pairs + i] = static_cast<float>(std::sin(angle));
        }
    }
    std::uniform_int_distribution<int64_t> pos(0, sh.max_seq_len - 1);
    auto positions = std::make_shared<std::vector<int64_t>>(sh.n_tokens);
    for (int64_t& p : *positions) p = pos(rng);
    (*positions)[0] = sh.max_seq_len - 1;
    if (sh.n_tokens > 1) (*positions)[1] = 0;
    auto x = std::make_shared<std::vector<float>>(uniform(rng, sh.n_tokens * sh.token_stride, -2, 2));
    return {"rope",
            [=](const Device& d) {
                Buffer xb = d.up(*x), pb = d.up(*positions), cb = d.up(*cos), sb = d.up(*sin);
                const RopeTables t{cb.as<float>(), sb.as<float>(), sh.max_seq_len, sh.rope_dim};
                d.ops().rope(xb.as<float>() + sh.offset, sh.n_tokens, sh.token_stride, sh.n_heads, sh.head_stride,
                             pb.as<int64_t>(), t, d.s());
                return Output{d.down<float>(xb, x->size()), {}};
            },
            [=] {
                Reference r = exact(*x);
                for (size_t k = 0; k < r.f.size(); ++k) r.mag[k] = std::fabs(r.f[k]);
                for (int64_t t = 0; t < sh.n_tokens; ++t) {
                    for (int64_t h = 0; h < sh.n_heads; ++h) {
                        const int64_t base = t * sh.token_stride + h * sh.head_stride + sh.offset;
                        for (int64_t i = 0; i < pairs; ++i) {
                            const double a = (*x)[base + 2 * i], b = (*x)[base + 2 * i + 1];
                            const double c = (*cos)[(*positions)[t] * pairs + i],
                                         s = (*sin)[(*positions)[t] * pairs + i];
                            r.f[base + 2 * i] = a * c - b * s;
                            r.f[base + 2 * i + 1] = a * s + b * c;
                            r.mag[base + 2 * i] = std::fabs(a * c) + std::fabs(b * s);
                            r.mag[base + 2 * i + 1] = std::fabs(a * s) + std::fabs(b * c);
                        }
                    }
                }
                return r;
            }};
}

// ---------------------------------------------------------------------------------------------------
// linear and dequantize: FP8 e4m3 with [ceil(rows / block), ceil(cols / block)] scales, or BF16

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

std::shared_ptr<HostWeight> random_weight(std::mt19937& rng, DType dtype, int64_t rows, int64_t cols, int64_t block) {
    auto w = std::make_shared<HostWeight>(HostWeight{dtype, rows, cols, block, {}, {}});
    if (dtype == DType::BF16) {
        const auto v = bf16_uniform(rng, rows * cols, -0.1f, 0.1f);
        w->data.resize(v.size() * 2);
        std::memcpy(w->data.data(), v.data(), w->data.size());
        return w;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    w->data.resize(rows * cols);
    for (uint8_t& b : w->data) {
        do b = static_cast<uint8_t>(byte(rng));
        while ((b & 0x7F) == 0x7F);  // e4m3 NaN
    }
    std::uniform_real_distribution<float> e(-14.0f, -6.0f);
    w->scale_inv.resize(blocks(rows, block) * blocks(cols, block));
    for (float& s : w->scale_inv) s = std::exp2(e(rng));
    return w;
}

// The weight in backend memory; the buffers live in `keep`.
LinearWeight upload(const Device& d, const HostWeight& w, std::vector<Buffer>& keep) {
    keep.push_back(d.up(w.data));
    LinearWeight lw{keep.back().as<uint8_t>(), w.dtype, w.rows, w.cols, nullptr, w.block};
    if (w.dtype == DType::F8_E4M3) {
        keep.push_back(d.up(w.scale_inv));
        lw.scale_inv = keep.back().as<float>();
    }
    return lw;
}

// fp8_gemm: the CUDA side runs through use_fp8_gemm(true) (op "linear_fp8_gemm", bounded by max |y|).
OpCase make_linear(std::mt19937& rng, DType dtype, int64_t n_tokens, int64_t rows, int64_t cols, int64_t block,
                   bool fp8_gemm = false) {
    auto w = random_weight(rng, dtype, rows, cols, block);
    auto x = std::make_shared<std::vector<float>>(uniform(rng, n_tokens * cols, -1, 1));
    return {fp8_gemm ? "linear_fp8_gemm" : "linear",
            [=](const Device& d) {
                std::vector<Buffer> keep;
                const LinearWeight lw = upload(d, *w, keep);
                Buffer xb = d.up(*x), y = d.alloc(n_tokens * rows);
                const bool gemm = fp8_gemm && d.backend->kind() != BackendKind::Cpu;
                if (gemm) d.ops().use_fp8_gemm(true);
                d.ops().reserve_linear_scratch(rows * cols);
                d.ops().linear(lw, xb.as<float>(), n_tokens, y.as<float>(), d.s());
                auto out = d.down<float>(y, n_tokens * rows);
                if (gemm) d.ops().use_fp8_gemm(false);
                return Output{out, {}};
            },
            [=] {
                Reference r;
                for (int64_t t = 0; t < n_tokens; ++t) {
                    for (int64_t o = 0; o < rows; ++o) {
                        double s = 0.0, m = 0.0;
                        for (int64_t k = 0; k < cols; ++k) {
                            const double p = (*x)[t * cols + k] * w->at(o, k);
                            s += p;
                            m += std::fabs(p);
                        }
                        r.f.push_back(s);
                        r.mag.push_back(m);
                    }
                }
                if (fp8_gemm) {
                    double top = 0.0;
                    for (double v : r.f) top = std::max(top, std::fabs(v));
                    r.mag.assign(r.f.size(), top);
                }
                return r;
            }};
}

OpCase make_dequantize(std::mt19937& rng, DType dtype, int64_t rows, int64_t cols, int64_t block) {
    auto w = random_weight(rng, dtype, rows, cols, block);
    return {"dequantize",
            [=](const Device& d) {
                std::vector<Buffer> keep;
                const LinearWeight lw = upload(d, *w, keep);
                Buffer o = d.alloc(rows * cols);
                d.ops().dequantize(lw, o.as<float>(), d.s());
                return Output{d.down<float>(o, rows * cols), {}};
            },
            [=] {
                Reference r;
                for (int64_t k = 0; k < rows * cols; ++k) r.f.push_back(w->at(k / cols, k % cols));
                r.mag.assign(r.f.size(), 0.0);
                return r;
            }};
}

// ---------------------------------------------------------------------------------------------------
// mla_attention: the absorbed path in float64, causal over cache rows [0, start_pos + t]

struct MlaInputs {
    cpu::MlaDims d;
    int64_t n_tokens, start_pos;
    float scale;
    std::vector<float> q, kv, pe, wkv_b;
};

std::vector<double> mla_reference(const MlaInputs& in) {
    const auto& d = in.d;
    const int64_t H = d.n_heads, C = d.kv_lora_rank, N = d.qk_nope_head_dim, R = d.qk_rope_head_dim;
    const int64_t V = d.v_head_dim, QK = d.qk_head_dim();
    std::vector<double> out(in.n_tokens * H * V);
    std::vector<double> lat(C), olat(C);
    for (int64_t t = 0; t < in.n_tokens; ++t) {
        for (int64_t h = 0; h < H; ++h) {
            const float* q = in.q.data() + (t * H + h) * QK;
            const float* wk = in.wkv_b.data() + h * (N + V) * C;
            const float* wv = wk + N * C;
            std::fill(lat.begin(), lat.end(), 0.0);
            for (int64_t i = 0; i < N; ++i) {
                for (int64_t c = 0; c < C; ++c) lat[c] += static_cast<double>(q[i]) * wk[i * C + c];
            }
            const int64_t keys = in.start_pos + t + 1;
            std::vector<double> p(keys);
            for (int64_t s = 0; s < keys; ++s) {
                double a = 0.0;
                for (int64_t c = 0; c < C; ++c) a += lat[c] * in.kv[s * C + c];
                for (int64_t i = 0; i < R; ++i) a += static_cast<double>(q[N + i]) * in.pe[s * R + i];
                p[s] = a * in.scale;
            }
            const double m = *std::max_element(p.begin(), p.end());
            double sum = 0.0;
            for (double& e : p) sum += (e = std::exp(e - m));
            std::fill(olat.begin(), olat.end(), 0.0);
            for (int64_t s = 0; s < keys; ++s) {
                for (int64_t c = 0; c < C; ++c) olat[c] += p[s] / sum * in.kv[s * C + c];
            }
            for (int64_t v = 0; v < V; ++v) {
                double a = 0.0;
                for (int64_t c = 0; c < C; ++c) a += wv[v * C + c] * olat[c];
                out[(t * H + h) * V + v] = a;
            }
        }
    }
    return out;
}

OpCase make_mla(std::mt19937& rng, cpu::MlaDims d, int64_t n_tokens, int64_t start_pos) {
    const int64_t cache_rows = start_pos + n_tokens + 2;  // rows past the last token are never read
    auto in = std::make_shared<MlaInputs>(MlaInputs{d, n_tokens, start_pos, 0.0f, {}, {}, {}, {}});
    in->scale = static_cast<float>(1.3 / std::sqrt(static_cast<double>(d.qk_head_dim())));  // a YaRN-like mscale
    in->q = uniform(rng, n_tokens * d.n_heads * d.qk_head_dim(), -1, 1);
    in->kv = uniform(rng, cache_rows * d.kv_lora_rank, -1, 1);
    in->pe = uniform(rng, cache_rows * d.qk_rope_head_dim, -1, 1);
    in->wkv_b = uniform(rng, d.n_heads * (d.qk_nope_head_dim + d.v_head_dim) * d.kv_lora_rank, -0.3f, 0.3f);
    return {"mla_attention",
            [=](const Device& dev) {
                Buffer q = dev.up(in->q), kv = dev.up(in->kv), pe = dev.up(in->pe), w = dev.up(in->wkv_b);
                const int64_t scratch_floats = dev.ops().mla_scratch_floats(d, n_tokens, start_pos);
                Buffer scratch = dev.alloc(scratch_floats);
                const int64_t n_out = n_tokens * d.n_heads * d.v_head_dim;
                Buffer out = dev.alloc(n_out);
                dev.ops().mla_attention(q.as<float>(), kv.as<float>(), pe.as<float>(), w.as<float>(), d, n_tokens,
                                        start_pos, in->scale, scratch.as<float>(), out.as<float>(), dev.s());
                return Output{dev.down<float>(out, n_out), {}};
            },
            [=] {
                Reference r;
                r.f = mla_reference(*in);
                double top = 0.0;
                for (double v : r.f) top = std::max(top, std::fabs(v));
                r.mag.assign(r.f.size(), top);
                return r;
            }};
}

// ---------------------------------------------------------------------------------------------------
// moe_route: sigmoid scores, group-limited top-k (DeepSeek-V3's Gate.forward) in float64

// Routes one token; false where a decision (the group cut, the expert order up to the cut) is within
// `margin` of a tie, so the inputs can be redrawn.
bool route_token(const float* logits, const float* bias, const cpu::GateParams& p, double margin, int32_t* experts,
                 double* weights) {
    const int64_t E = p.n_experts, G = p.n_group, per = E / G;
    std::vector<double> score(E), choice(E);
    for (int64_t e = 0; e < E; ++e) {
        score[e] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[e])));
        choice[e] = score[e] + (bias ? bias[e] : 0.0);
    }
    std::vector<std::pair<double, int64_t>> groups;
    for (int64_t g = 0; g < G; ++g) {
        std::vector<double> c(choice.begin() + g * per, choice.begin() + (g + 1) * per);
        std::sort(c.rbegin(), c.rend());
        groups.push_back({bias && G > 1 ? c[0] + c[1] : c[0], g});
    }
    std::sort(groups.rbegin(), groups.rend());
    if (p.topk_group < G && groups[p.topk_group - 1].first - groups[p.topk_group].first < margin) return false;
    std::vector<std::pair<double, int64_t>> cand;
    for (int64_t k = 0; k < p.topk_group; ++k) {
        const int64_t g = groups[k].second;
        for (int64_t e = g * per; e < (g + 1) * per; ++e) cand.push_back({choice[e], -e});  // lower index first
    }
    std::sort(cand.rbegin(), cand.rend());
    for (size_t k = 1; k < std::min<size_t>(p.topk + 1, cand.size()); ++k) {
        if (cand[k - 1].first - cand[k].first < margin) return false;
    }
    double sum = 0.0;
    for (int64_t k = 0; k < p.topk; ++k) sum += score[-cand[k].second];
    for (int64_t k = 0; k < p.topk; ++k) {
        experts[k] = static_cast<int32_t>(-cand[k].second);
        weights[k] = score[experts[k]] / (p.norm_topk_prob ? sum : 1.0) * p.routed_scaling_factor;
    }
    return true;
}

constexpr double kRouteMargin = 1e-5;  // far above float rounding of the choice values (~1e-7)

OpCase make_moe(std::mt19937& rng, cpu::GateParams p, int64_t n_tokens, bool with_bias) {
    const int64_t E = p.n_experts;
    auto bias = std::make_shared<std::vector<float>>(with_bias ? uniform(rng, E, -0.1f, 0.1f) : std::vector<float>());
    auto logits = std::make_shared<std::vector<float>>(n_tokens * E);
    std::vector<int32_t> ex(p.topk);
    std::vector<double> wt(p.topk);
    for (int64_t t = 0; t < n_tokens; ++t) {
        float* row = logits->data() + t * E;
        int tries = 0;
        do {
            const auto v = uniform(rng, E, -4, 4);
            std::copy(v.begin(), v.end(), row);
            ECF8_CHECK(++tries < 1000, "moe_route case: no tie-free logits drawn");
        } while (!route_token(row, with_bias ? bias->data() : nullptr, p, kRouteMargin, ex.data(), wt.data()));
    }
    return {"moe_route",
            [=](const Device& d) {
                Buffer l = d.up(*logits), b = d.up(*bias);
                Buffer w = d.alloc(n_tokens * p.topk);
                Buffer e = d.alloc(n_tokens * p.topk);
                d.ops().moe_route(l.as<float>(), with_bias ? b.as<float>() : nullptr, n_tokens, p, w.as<float>(),
                                  e.as<int32_t>(), d.s());
                return Output{d.down<float>(w, n_tokens * p.topk), d.down<int32_t>(e, n_tokens * p.topk)};
            },
            [=] {
                Reference r;
                r.f.resize(n_tokens * p.topk);
                r.i.resize(r.f.size());
                for (int64_t t = 0; t < n_tokens; ++t) {
                    route_token(logits->data() + t * E, with_bias ? bias->data() : nullptr, p, 0.0,
                                r.i.data() + t * p.topk, r.f.data() + t * p.topk);
                }
                for (double v : r.f) r.mag.push_back(std::fabs(v));
                return r;
            }};
}

// ---------------------------------------------------------------------------------------------------
// The cases

cpu::GateParams gate(int64_t experts, int64_t topk, int64_t groups, int64_t topk_group, float factor, bool norm) {
    cpu::GateParams p;
    p.n_experts = experts;
    p.topk = topk;
    p.n_group = groups;
    p.topk_group = topk_group;
    p.scoring = cpu::ScoringFunc::Sigmoid;
    p.norm_topk_prob = norm;
    p.routed_scaling_factor = factor;
    return p;
}

std::vector<CaseSpec> all_cases() {
    using R = std::mt19937;
    const int64_t kHidden = 7168, kQLora = 1536, kKvLora = 512, kRope = 64, kMoeInter = 2048;
    const cpu::MlaDims kSmallMla{3, 16, 8, 12, 32}, kDeepSeekMla{16, 128, kRope, 128, kKvLora};
    const auto kDeepSeekGate = gate(256, 8, 8, 4, 2.5f, true);
    const DType F8 = DType::F8_E4M3, BF = DType::BF16;
    return {
        {"to_device_4001_bytes", [](R& r) { return make_to_device(r, 4001); }},
        {"to_device_4_tokens_hidden", [=](R& r) { return make_to_device(r, 4 * kHidden * 4); }},
        {"fill_zero_1_byte", [](R& r) { return make_fill_zero(r, 1, 0, 1); }},
        {"fill_zero_129_bytes_at_3", [](R& r) { return make_fill_zero(r, 64, 3, 129); }},
        {"copy_rows_1x1", [](R& r) { return make_copy_rows(r, 1, 1, 1, 1); }},
        {"copy_rows_7x129_strided", [](R& r) { return make_copy_rows(r, 7, 129, 131, 200); }},
        {"copy_rows_kv_to_cache", [=](R& r) { return make_copy_rows(r, 4, kKvLora, kKvLora + kRope, kKvLora); }},
        {"embedding_vocab_part_hidden", [=](R& r) { return make_embedding(r, 8000, 3000, 4000, kHidden, 5); }},
        {"embedding_1_token_129", [](R& r) { return make_embedding(r, 10, 0, 10, 129, 1); }},
        {"embedding_empty_part", [](R& r) { return make_embedding(r, 50, 20, 20, 3, 4); }},
        {"rmsnorm_4x7168", [=](R& r) { return make_rmsnorm(r, 4, kHidden, kHidden, kHidden); }},
        {"rmsnorm_1x129", [](R& r) { return make_rmsnorm(r, 1, 129, 129, 129); }},
        {"rmsnorm_3x1536", [=](R& r) { return make_rmsnorm(r, 3, kQLora, kQLora, kQLora); }},
        {"rmsnorm_strided_kv_norm", [=](R& r) { return make_rmsnorm(r, 3, kKvLora, kKvLora + kRope, kKvLora); }},
        {"rmsnorm_strided_129", [](R& r) { return make_rmsnorm(r, 2, 129, 130, 140); }},
        {"rope_q_pe_16_heads",
         [=](R& r) {
             return make_rope(r, {3, 16, 192, 16 * 192, 128, kRope, 4096});
         }},
        {"rope_k_pe",
         [=](R& r) {
             return make_rope(r, {5, 1, 576, kKvLora + kRope, kKvLora, kRope, 4096});
         }},
        {"rope_1_token_odd",
         [](R& r) {
             return make_rope(r, {1, 3, 7, 23, 1, 6, 10});
         }},
        {"add_1", [](R& r) { return make_elementwise(r, 1, false); }},
        {"add_4x7168", [=](R& r) { return make_elementwise(r, 4 * kHidden, false); }},
        {"silu_mul_129", [](R& r) { return make_elementwise(r, 129, true); }},
        {"silu_mul_4x2048", [=](R& r) { return make_elementwise(r, 4 * kMoeInter, true); }},
        {"linear_bf16_1x129x131", [=](R& r) { return make_linear(r, BF, 1, 131, 129, 128); }},
        {"linear_bf16_gate_4x7168x256", [=](R& r) { return make_linear(r, BF, 4, 256, kHidden, 128); }},
        {"linear_fp8_1x200x129", [=](R& r) { return make_linear(r, F8, 1, 129, 200, 128); }},
        {"linear_fp8_wq_a_4x7168x1536", [=](R& r) { return make_linear(r, F8, 4, kQLora, kHidden, 128); }},
        {"linear_fp8_wkv_a_1x7168x576", [=](R& r) { return make_linear(r, F8, 1, kKvLora + kRope, kHidden, 128); }},
        {"linear_fp8_wq_b_3x1536x3072", [=](R& r) { return make_linear(r, F8, 3, 16 * 192, kQLora, 128); }},
        {"linear_fp8_down_2x2048x7168", [=](R& r) { return make_linear(r, F8, 2, kHidden, kMoeInter, 128); }},
        {"dequantize_fp8_129x260", [=](R& r) { return make_dequantize(r, F8, 129, 260, 128); }},
        {"dequantize_fp8_block64", [=](R& r) { return make_dequantize(r, F8, 100, 70, 64); }},
        {"dequantize_fp8_576x7168", [=](R& r) { return make_dequantize(r, F8, kKvLora + kRope, kHidden, 128); }},
        {"dequantize_bf16_3x129", [=](R& r) { return make_dequantize(r, BF, 3, 129, 128); }},
        {"mla_small_3_tokens_at_4", [=](R& r) { return make_mla(r, kSmallMla, 3, 4); }},
        {"mla_small_1_token_at_0", [=](R& r) { return make_mla(r, kSmallMla, 1, 0); }},
        {"mla_deepseek_decode_at_31", [=](R& r) { return make_mla(r, kDeepSeekMla, 1, 31); }},
        {"mla_deepseek_prefill_4", [=](R& r) { return make_mla(r, kDeepSeekMla, 4, 0); }},
        {"mla_deepseek_3_tokens_at_60", [=](R& r) { return make_mla(r, kDeepSeekMla, 3, 60); }},
        {"moe_route_deepseek_bias_5", [=](R& r) { return make_moe(r, kDeepSeekGate, 5, true); }},
        {"moe_route_deepseek_no_bias_3", [=](R& r) { return make_moe(r, kDeepSeekGate, 3, false); }},
        {"moe_route_deepseek_bias_1", [=](R& r) { return make_moe(r, kDeepSeekGate, 1, true); }},
        {"moe_route_64_groups_4_bias", [](R& r) { return make_moe(r, gate(64, 6, 4, 2, 1.0f, true), 4, true); }},
        {"moe_route_16_no_groups_no_norm", [](R& r) { return make_moe(r, gate(16, 4, 1, 1, 1.5f, false), 3, false); }},
        {"gather_rows_8_of_32_hidden", [=](R& r) { return make_gather(r, 32, kHidden, 8); }},
        {"gather_rows_1x129", [](R& r) { return make_gather(r, 1, 129, 1); }},
        {"gather_rows_repeats", [](R& r) { return make_gather(r, 10, 3, 12); }},
        {"scatter_add_8_of_32_hidden", [=](R& r) { return make_scatter(r, 32, kHidden, 8); }},
        {"scatter_add_1x129", [](R& r) { return make_scatter(r, 1, 129, 1); }},
        {"scatter_add_5_of_10", [](R& r) { return make_scatter(r, 10, 3, 5); }},
        {"all_reduce_sum_1", [](R& r) { return make_collective(r, 1, false); }},
        {"all_reduce_sum_4x7168", [=](R& r) { return make_collective(r, 4 * kHidden, false); }},
        {"all_gather_1", [](R& r) { return make_collective(r, 1, true); }},
        {"all_gather_4x7168", [=](R& r) { return make_collective(r, 4 * kHidden, true); }},
        {"fp8_gemm_wq_a_4x7168x1536", [=](R& r) { return make_linear(r, F8, 4, kQLora, kHidden, 128, true); }, true},
        {"fp8_gemm_down_1x2048x7168", [=](R& r) { return make_linear(r, F8, 1, kHidden, kMoeInter, 128, true); }, true},
    };
}

std::vector<CaseSpec> cases(bool with_cuda_only) {
    std::vector<CaseSpec> out;
    for (auto& c : all_cases()) {
        if (with_cuda_only || !c.cuda_only) out.push_back(std::move(c));
    }
    return out;
}

// Each case draws from its own generator, seeded by the test seed and its name.
std::mt19937 case_rng(const std::string& name) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    const uint64_t s = test_seed();
    std::seed_seq seq{static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32), h};
    return std::mt19937(seq);
}

std::string case_name(const ::testing::TestParamInfo<CaseSpec>& info) { return info.param.name; }

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
    expect_matches(c.op, c.reference(), c.run(*cpu_));
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
// GPU: CudaBackend's ops() against CpuBackend's ops(), same inputs, same bounds (magnitudes from float64)

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
    expect_matches(c.op, want, c.run(*gpu_));
}

INSTANTIATE_TEST_SUITE_P(Ops, BackendOpsGpu, ::testing::ValuesIn(cases(true)), case_name);

#endif  // ECF8_HAVE_CUDA

}  // namespace
}  // namespace ecf8
