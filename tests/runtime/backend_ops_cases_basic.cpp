// The op harness's cases for memory, row, elementwise and normalization ops (backend_ops_harness.h).
#include "tests/runtime/backend_ops_harness.h"

namespace ecf8::opstest {

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

// argmax_rows: rows x (blocks parts of block_len), with a tie across parts, a row whose largest entry is the
// very last, and rows with a NaN or an infinity (-1).
OpCase make_argmax_rows(std::mt19937& rng, int64_t rows, int64_t blocks, int64_t block_len) {
    auto x = std::make_shared<std::vector<float>>(uniform(rng, rows * blocks * block_len, -20, 20));
    auto at = [=](int64_t r, int64_t v) -> float& {
        return (*x)[((v / block_len) * rows + r) * block_len + v % block_len];
    };
    const int64_t n = blocks * block_len;
    if (rows > 0) at(0, n - 1) = 50.0f;
    if (rows > 1) at(1, n / 3) = at(1, n - 2) = 60.0f;
    if (rows > 2) at(2, n / 2) = NAN;
    if (rows > 3) at(3, 0) = -INFINITY;
    return {"argmax_rows",
            [=](const Device& d) {
                Buffer xb = d.up(*x), ids = d.alloc(rows);
                d.ops().argmax_rows(xb.as<float>(), rows, blocks, block_len, ids.as<int32_t>(), d.s());
                return Output{{}, d.down<int32_t>(ids, rows)};
            },
            [=] {
                Reference ref;
                for (int64_t r = 0; r < rows; ++r) {
                    int64_t best = 0;
                    bool finite = true;
                    for (int64_t v = 0; v < n; ++v) {
                        finite = finite && std::isfinite(at(r, v));
                        if (at(r, v) > at(r, best)) best = v;
                    }
                    ref.i.push_back(finite ? static_cast<int32_t>(best) : -1);
                }
                return ref;
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

}  // namespace ecf8::opstest
