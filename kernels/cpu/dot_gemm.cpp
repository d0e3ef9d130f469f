// The batch-invariant GEMM of dot_gemm.h. Blocking, from the outside in:
//   threads: each takes a contiguous range of panels (4 weight rows) and its own scratch slot;
//   M blocks: up to kBlockBytes of x rows (mostly L2- and L3-resident) that every panel streams past;
//   panels of 4 weight rows, and along k chunks of kChunk columns: the chunk of the panel is converted to
//     float into the slot (F32 is read in place), then every group of up to 3 x rows of the M block runs
//     a 3x4 register tile over it. The 8-lane accumulators of the (M block x panel) live in a buffer
//     between chunks; they are reduced to y with the fixed tree after the last chunk.
//   decode-sized M blocks (up to kFusedRows rows, one register tile, so every weight value is used once) of
//     BF16 and FP8 weights skip the slot: the panel's chunk is converted in registers right before its fmas
//     (fused_avx2), 2x faster at M = 1-2 than converting through the slot (bench/dot_gemm_bench). With
//     AVX-512VL compiled in (-march=native on such a CPU) the 32 vector registers hold tiles of up to 6 rows
//     (24 accumulators), 1.3-2x faster at M = 4-5 than the two-pass way; with AVX2's 16, up to 3.
// Chunks start at multiples of 8 and lanes are carried over, so splitting k changes nothing in the order.
// The partial last 8 columns are loaded with zeros in the unused lanes, and those lanes' sums are then put
// back (a blend): fma(0, 0, acc) is not always acc, since a lane that underflowed to -0 would become +0.
#include "kernels/cpu/dot_gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <utility>

#include "common/error.h"
#include "common/float_formats.h"
#include "common/thread_pool.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ECF8_DOT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define ECF8_HAVE_DOT_AVX2 1
#endif

namespace ecf8::cpu {

namespace {

constexpr int kLanes = 8;
constexpr int kTileRows = 3;  // x rows per register tile of the two-pass way
#if defined(__AVX512VL__)
constexpr int kFusedRows = 6;  // x rows of the fused way's one tile: 24 accumulators need 32 registers
#else
constexpr int kFusedRows = kTileRows;
#endif
constexpr int kPanelRows = 4;                     // weight rows per panel (and per register tile)
constexpr int kTileFloats = kPanelRows * kLanes;  // accumulator floats per x row of a tile
constexpr int64_t kChunk = 512;                   // columns per chunk (a multiple of kLanes)
// x bytes per M block. Each M block converts the whole weight again, so bigger is better until the block
// falls out of the caches: measured at M = 512 on a 1 MiB L2, 4 MiB (up to kMaxBlockRows rows) beat 0.5 MiB
// by 10-30%, most at k = 7168.
constexpr int64_t kBlockBytes = 4 << 20;
constexpr int64_t kMaxBlockRows = 120;  // bounds the accumulator buffer (15 KiB on the stack)

std::atomic<bool> g_force_scalar{false};

// The fixed lane tree of the contract, shared by both paths.
inline float reduce_lanes(const float* a) { return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])); }

// The 256 values of an e4m3fn byte.
struct Fp8Table {
    float v[256];
    Fp8Table() {
        for (int b = 0; b < 256; ++b) v[b] = fp8_e4m3_to_float(static_cast<uint8_t>(b));
    }
};
const Fp8Table kFp8;

const float* fp8_scale_row(const DotWeight& w, int64_t k, int64_t row) {
    return w.scale_inv + (row / w.block) * ((k + w.block - 1) / w.block);
}

// ---------------------------------------------------------------------------------------------------
// Portable scalar path

// acc[r][c][lane] += x[r][i] * w[c][i] for i in [0, len), lane = i % 8, len from a chunk start.
template <int R>
void tile_scalar(const float* const* x, const float* const* w, int64_t len, float* acc) {
    for (int r = 0; r < R; ++r) {
        for (int c = 0; c < kPanelRows; ++c) {
            float* a = acc + r * kTileFloats + c * kLanes;
            for (int64_t i = 0; i < len; ++i) a[i & 7] = std::fma(x[r][i], w[c][i], a[i & 7]);
        }
    }
}

void fp8_scalar(const uint8_t* b, const float* srow, int64_t block, int64_t c0, int64_t len, float* out) {
    for (int64_t i = 0; i < len; ++i) out[i] = kFp8.v[b[i]] * srow[(c0 + i) / block];
}

// out[i] = wf[row][c0 + i]; F32 is never converted by the GEMM but is handled for dot_weight_to_float.
void convert_scalar(const DotWeight& w, int64_t k, int64_t row, int64_t c0, int64_t len, float* out) {
    const int64_t at = row * k + c0;
    if (w.type == DotWeightType::F32) {
        std::memcpy(out, static_cast<const float*>(w.data) + at, static_cast<size_t>(len) * sizeof(float));
    } else if (w.type == DotWeightType::BF16) {
        const uint16_t* src = static_cast<const uint16_t*>(w.data) + at;
        for (int64_t i = 0; i < len; ++i) out[i] = bf16_to_float(src[i]);
    } else {
        fp8_scalar(static_cast<const uint8_t*>(w.data) + at, fp8_scale_row(w, k, row), w.block, c0, len, out);
    }
}

// ---------------------------------------------------------------------------------------------------
// AVX2 path

#ifdef ECF8_HAVE_DOT_AVX2

bool avx2_supported() {
    static const bool ok =
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok;
}

ECF8_DOT_AVX2 inline __m256i tail_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// A value the compiler must keep in a register: without this GCC folds the loads into the fmas as memory
// operands and loads every weight vector R times (15 loads per 12 fmas instead of 7, measurably slower).
ECF8_DOT_AVX2 inline __m256 pinned(__m256 v) {
    __asm__("" : "+x"(v));
    return v;
}

template <int R>
ECF8_DOT_AVX2 inline void tile_step(__m256 (&a)[R][kPanelRows], const __m256 (&xv)[R], __m256 w, int c) {
    w = pinned(w);
    for (int r = 0; r < R; ++r) a[r][c] = _mm256_fmadd_ps(xv[r], w, a[r][c]);
}

// As tile_scalar: lane l of a[r][c] takes the columns i = l (mod 8).
template <int R>
ECF8_DOT_AVX2 void tile_avx2(const float* const* x, const float* const* w, int64_t len, float* acc) {
    __m256 a[R][kPanelRows];
    const float* xr[R];
    for (int r = 0; r < R; ++r) {
        xr[r] = x[r];
        for (int c = 0; c < kPanelRows; ++c) a[r][c] = _mm256_loadu_ps(acc + r * kTileFloats + c * kLanes);
    }
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) {
        __m256 xv[R];
        for (int r = 0; r < R; ++r) xv[r] = pinned(_mm256_loadu_ps(xr[r] + i));
        tile_step<R>(a, xv, _mm256_loadu_ps(w0 + i), 0);
        tile_step<R>(a, xv, _mm256_loadu_ps(w1 + i), 1);
        tile_step<R>(a, xv, _mm256_loadu_ps(w2 + i), 2);
        tile_step<R>(a, xv, _mm256_loadu_ps(w3 + i), 3);
    }
    if (i < len) {  // the last len - i < 8 columns; the other lanes keep their sums
        const __m256i m = tail_mask(len - i);
        __m256 before[R][kPanelRows];
        std::memcpy(before, a, sizeof(a));
        __m256 xv[R];
        for (int r = 0; r < R; ++r) xv[r] = _mm256_maskload_ps(xr[r] + i, m);
        tile_step<R>(a, xv, _mm256_maskload_ps(w0 + i, m), 0);
        tile_step<R>(a, xv, _mm256_maskload_ps(w1 + i, m), 1);
        tile_step<R>(a, xv, _mm256_maskload_ps(w2 + i, m), 2);
        tile_step<R>(a, xv, _mm256_maskload_ps(w3 + i, m), 3);
        for (int r = 0; r < R; ++r) {
            for (int c = 0; c < kPanelRows; ++c)
                a[r][c] = _mm256_blendv_ps(before[r][c], a[r][c], _mm256_castsi256_ps(m));
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int c = 0; c < kPanelRows; ++c) _mm256_storeu_ps(acc + r * kTileFloats + c * kLanes, a[r][c]);
    }
}

// Eight e4m3fn bytes as their values / 256 in fp16: sign to bit 15, exponent and mantissa shifted up by 7
// (fp16 has bias 15 = 7 + 8, so the exponent field is the same and normals and subnormals both come out
// divided by 2^8). The e4m3fn NaNs (magnitude 0x7F, which would read 0x3F80) become fp16 NaN 0x7E00,
// which widens to float's 0x7FC00000 as fp8_e4m3_to_float gives.
// fp8x8_half_bits: the fp16 bits without the NaN fix-up (what a chunk checked for NaN bytes takes).
ECF8_DOT_AVX2 inline __m128i fp8x8_half_bits(const uint8_t* b) {
    const __m128i s = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b)));
    // Sign extension puts 1s in bits 8-15; shifted by 7, bit 15 is the sign and bit 14 must be cleared.
    return _mm_and_si128(_mm_slli_epi16(s, 7), _mm_set1_epi16(static_cast<short>(0xBF80)));
}
ECF8_DOT_AVX2 inline __m256 fp8x8_div256(const uint8_t* b) {
    __m128i h = fp8x8_half_bits(b);
    const __m128i nan = _mm_cmpeq_epi16(_mm_or_si128(h, _mm_set1_epi16(static_cast<short>(0x8000))),
                                        _mm_set1_epi16(static_cast<short>(0xBF80)));
    h = _mm_xor_si128(h, _mm_and_si128(nan, _mm_set1_epi16(0x3F80 ^ 0x7E00)));
    return _mm256_cvtph_ps(h);
}

// (v / 256) * (s * 256) rounds like v * s because both products are the same real number, as long as
// s * 256 is exact: every scale but finite ones that overflow there, which take the table.
inline bool scale_x256_exact(float s) { return !(std::isfinite(s) && !std::isfinite(s * 256.0f)); }

ECF8_DOT_AVX2 inline __m256 bf16x8(const uint16_t* src) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

ECF8_DOT_AVX2 void fp8_avx2(const uint8_t* b, const float* srow, int64_t block, int64_t c0, int64_t len, float* out) {
    for (int64_t i = 0; i < len;) {
        const int64_t c = c0 + i;
        const int64_t seg = std::min(len - i, (c / block + 1) * block - c);  // up to the next scale block
        const float s = srow[c / block];
        int64_t j = 0;
        if (scale_x256_exact(s)) {
            const __m256 vs = _mm256_set1_ps(s * 256.0f);
            for (; j + kLanes <= seg; j += kLanes)
                _mm256_storeu_ps(out + i + j, _mm256_mul_ps(fp8x8_div256(b + i + j), vs));
        }
        for (; j < seg; ++j) out[i + j] = kFp8.v[b[i + j]] * s;
        i += seg;
    }
}

ECF8_DOT_AVX2 void bf16_avx2(const uint16_t* src, int64_t len, float* out) {
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) _mm256_storeu_ps(out + i, bf16x8(src + i));
    for (; i < len; ++i) out[i] = bf16_to_float(src[i]);
}

ECF8_DOT_AVX2 void convert_avx2(const DotWeight& w, int64_t k, int64_t row, int64_t c0, int64_t len, float* out) {
    const int64_t at = row * k + c0;
    if (w.type == DotWeightType::F32) {
        std::memcpy(out, static_cast<const float*>(w.data) + at, static_cast<size_t>(len) * sizeof(float));
    } else if (w.type == DotWeightType::BF16) {
        bf16_avx2(static_cast<const uint16_t*>(w.data) + at, len, out);
    } else {
        fp8_avx2(static_cast<const uint8_t*>(w.data) + at, fp8_scale_row(w, k, row), w.block, c0, len, out);
    }
}

// Fused conversion for decode-sized calls (at most one tile of x rows, so each weight value is used once):
// the panel's weight is converted in registers and multiplied at once instead of going through the slot.
// The values and the fma order are those of convert + tile_avx2, so the bits are too. Chunks the fast
// conversion cannot take as a whole (a length or scale block not a multiple of 8, an e4m3fn NaN byte, a
// scale whose x256 overflows) return false and take the two-pass path.

// Whether any of the n bytes is an e4m3fn NaN (magnitude 0x7F); n is a multiple of 8.
ECF8_DOT_AVX2 bool fp8_has_nan(const uint8_t* b, int64_t n) {
    const __m256i all = _mm256_set1_epi8(static_cast<char>(0xFF)), sign = _mm256_set1_epi8(static_cast<char>(0x80));
    __m256i hit = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i));
        hit = _mm256_or_si256(hit, _mm256_cmpeq_epi8(_mm256_or_si256(v, sign), all));
    }
    if (!_mm256_testz_si256(hit, hit)) return true;
    for (; i < n; ++i) {
        if ((b[i] & 0x7F) == 0x7F) return true;
    }
    return false;
}

// The weight vectors of the fused path: row c of the panel at column i, as float.
struct Bf16Rows {
    const uint16_t* const* h;
    ECF8_DOT_AVX2 __m256 operator()(int c, int64_t i) const { return bf16x8(h[c] + i); }
};
struct Fp8Rows {
    const uint8_t* const* b;
    const __m256* scale256;  // per row: the scale block's scale x 256
    ECF8_DOT_AVX2 __m256 operator()(int c, int64_t i) const {
        return _mm256_mul_ps(_mm256_cvtph_ps(fp8x8_half_bits(b[c] + i)), scale256[c]);
    }
};

// Columns [i, i + n) of every x row against the 4 weight rows, with W(c, i) the weight vector of row c at
// column i; a[r][c] are the accumulators.
template <int R, class W>
ECF8_DOT_AVX2 inline void fused_run(__m256 (&a)[R][kPanelRows], const float* const* x, int64_t i, int64_t n,
                                    const W& wv) {
    for (const int64_t end = i + n; i < end; i += kLanes) {
        __m256 xv[R];
        for (int r = 0; r < R; ++r) xv[r] = pinned(_mm256_loadu_ps(x[r] + i));
        tile_step<R>(a, xv, wv(0, i), 0);
        tile_step<R>(a, xv, wv(1, i), 1);
        tile_step<R>(a, xv, wv(2, i), 2);
        tile_step<R>(a, xv, wv(3, i), 3);
    }
}

// One chunk [c0, c0 + len) of the panel rows `rows` (4 weight row indices) against R x rows (already at c0).
template <int R>
ECF8_DOT_AVX2 bool fused_avx2(const DotWeight& w, int64_t k, const int64_t* rows, int64_t c0, int64_t len,
                              const float* const* x, float* acc) {
    if (len % kLanes != 0) return false;
    if (w.type == DotWeightType::FP8 && w.block % kLanes != 0 && (c0 / w.block != (c0 + len - 1) / w.block))
        return false;  // a scale block would change inside a group of 8 columns
    const uint8_t* b[kPanelRows] = {};
    const uint16_t* h[kPanelRows] = {};
    const float* srow[kPanelRows] = {};
    for (int c = 0; c < kPanelRows; ++c) {
        if (w.type == DotWeightType::BF16) {
            h[c] = static_cast<const uint16_t*>(w.data) + rows[c] * k + c0;
        } else {
            b[c] = static_cast<const uint8_t*>(w.data) + rows[c] * k + c0;
            srow[c] = fp8_scale_row(w, k, rows[c]);
            if (fp8_has_nan(b[c], len)) return false;
            for (int64_t s = c0 / w.block; s <= (c0 + len - 1) / w.block; ++s) {
                if (!scale_x256_exact(srow[c][s])) return false;
            }
        }
    }
    __m256 a[R][kPanelRows];
    for (int r = 0; r < R; ++r) {
        for (int c = 0; c < kPanelRows; ++c) a[r][c] = _mm256_loadu_ps(acc + r * kTileFloats + c * kLanes);
    }
    if (w.type == DotWeightType::BF16) {
        fused_run<R>(a, x, 0, len, Bf16Rows{h});
    } else {
        for (int64_t i = 0; i < len;) {  // segments of one scale block
            const int64_t col = c0 + i, seg = std::min(len - i, (col / w.block + 1) * w.block - col);
            __m256 vs[kPanelRows];
            for (int c = 0; c < kPanelRows; ++c) vs[c] = _mm256_set1_ps(srow[c][col / w.block] * 256.0f);
            fused_run<R>(a, x, i, seg, Fp8Rows{b, vs});
            i += seg;
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int c = 0; c < kPanelRows; ++c) _mm256_storeu_ps(acc + r * kTileFloats + c * kLanes, a[r][c]);
    }
    return true;
}

#endif  // ECF8_HAVE_DOT_AVX2

// ---------------------------------------------------------------------------------------------------
// Driver

using TileFn = void (*)(const float* const* x, const float* const* w, int64_t len, float* acc);
using ConvertFn = void (*)(const DotWeight& w, int64_t k, int64_t row, int64_t c0, int64_t len, float* out);
using FusedFn = bool (*)(const DotWeight& w, int64_t k, const int64_t* rows, int64_t c0, int64_t len,
                         const float* const* x, float* acc);

// One implementation of the order: tiles of 1, 2 and 3 x rows, the weight conversion, and optionally the
// fused tiles (BF16 and FP8 weights, up to kFusedRows x rows).
struct Path {
    TileFn tile[kTileRows];
    ConvertFn convert;
    FusedFn fused[kFusedRows];
};

const Path kScalarPath = {{tile_scalar<1>, tile_scalar<2>, tile_scalar<3>}, convert_scalar, {}};
#ifdef ECF8_HAVE_DOT_AVX2
template <int... R>
constexpr Path avx2_path(std::integer_sequence<int, R...>) {
    return {{tile_avx2<1>, tile_avx2<2>, tile_avx2<3>}, convert_avx2, {fused_avx2<R + 1>...}};
}
const Path kAvx2Path = avx2_path(std::make_integer_sequence<int, kFusedRows>{});
#endif

const Path& current_path() {
#ifdef ECF8_HAVE_DOT_AVX2
    if (avx2_supported() && !g_force_scalar.load(std::memory_order_relaxed)) return kAvx2Path;
#endif
    return kScalarPath;
}

// The shape of one call's work, a pure function of the sizes and the thread count.
struct Plan {
    int64_t chunk = 0;       // columns per chunk
    int64_t panel_rows = 0;  // weight rows a slot converts at a time: min(4, n_out)
    int64_t block_rows = 0;  // x rows per M block
    int64_t panels = 0;      // ceil(n_out / 4)
    int64_t slots = 1;       // threads used, each with panel_rows * chunk floats of scratch
};

Plan make_plan(int64_t m, int64_t k, int64_t n_out, int threads) {
    Plan p;
    p.chunk = std::min(kChunk, k);
    p.panel_rows = std::min<int64_t>(kPanelRows, n_out);
    const int64_t rows = kBlockBytes / (std::max<int64_t>(k, 1) * static_cast<int64_t>(sizeof(float)));
    p.block_rows = std::clamp(rows / kTileRows * kTileRows, int64_t{kTileRows}, kMaxBlockRows);
    p.panels = (n_out + kPanelRows - 1) / kPanelRows;
    // Whole panels per slot keep slots * panel_rows <= n_out, so the scratch never exceeds n_out * k.
    p.slots = std::max<int64_t>(1, std::min<int64_t>(threads, n_out / kPanelRows));
    return p;
}

struct Call {
    const float* x;
    int64_t m, k, n_out;
    const DotWeight* w;
    float* y;
    const Path* path;
    Plan plan;
};

// One M block [i0, i0 + rows) against panel p, with `panel` as the conversion buffer.
void run_panel(const Call& c, int64_t i0, int64_t rows, int64_t p, float* panel, float* acc) {
    const int64_t j0 = p * kPanelRows;
    const int64_t cols = std::min<int64_t>(kPanelRows, c.n_out - j0);
    std::fill(acc, acc + rows * kTileFloats, 0.0f);
    const FusedFn fused = rows <= kFusedRows && c.w->type != DotWeightType::F32 ? c.path->fused[rows - 1] : nullptr;
    int64_t row_ids[kPanelRows];
    for (int64_t j = 0; j < kPanelRows; ++j) row_ids[j] = j0 + (j < cols ? j : 0);
    for (int64_t c0 = 0; c0 < c.k; c0 += c.plan.chunk) {
        const int64_t len = std::min(c.plan.chunk, c.k - c0);
        const float* xr[kFusedRows];
        for (int64_t t = 0; t < std::min<int64_t>(rows, kFusedRows); ++t) xr[t] = c.x + (i0 + t) * c.k + c0;
        if (fused != nullptr && fused(*c.w, c.k, row_ids, c0, len, xr, acc)) continue;
        const float* wr[kPanelRows];
        for (int64_t j = 0; j < cols; ++j) {
            if (c.w->type == DotWeightType::F32) {
                wr[j] = static_cast<const float*>(c.w->data) + (j0 + j) * c.k + c0;
            } else {
                c.path->convert(*c.w, c.k, j0 + j, c0, len, panel + j * len);
                wr[j] = panel + j * len;
            }
        }
        for (int64_t j = cols; j < kPanelRows; ++j) wr[j] = wr[0];  // computed, then dropped
        for (int64_t r = 0, n = 0; r < rows; r += n) {
            // Groups of 3 rows; a last 3 + 1 becomes 2 + 2 (a little faster at M = 4, within noise elsewhere).
            n = rows - r == 4 ? 2 : std::min<int64_t>(kTileRows, rows - r);
            const float* xt[kTileRows];
            for (int64_t t = 0; t < n; ++t) xt[t] = c.x + (i0 + r + t) * c.k + c0;
            c.path->tile[n - 1](xt, wr, len, acc + r * kTileFloats);
        }
    }
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < cols; ++j)
            c.y[(i0 + r) * c.n_out + j0 + j] = reduce_lanes(acc + r * kTileFloats + j * kLanes);
    }
}

// Slot s of the plan: panels [p0, p1) against every row of x.
void run_slot(const Call& c, int64_t s, float* scratch) {
    const Plan& pl = c.plan;
    const int64_t p0 = pl.panels * s / pl.slots, p1 = pl.panels * (s + 1) / pl.slots;
    float* panel = scratch == nullptr ? nullptr : scratch + s * pl.panel_rows * pl.chunk;
    alignas(32) float acc[kMaxBlockRows * kTileFloats];
    for (int64_t i0 = 0; i0 < c.m; i0 += pl.block_rows) {
        const int64_t rows = std::min(pl.block_rows, c.m - i0);
        for (int64_t p = p0; p < p1; ++p) run_panel(c, i0, rows, p, panel, acc);
    }
}

void check_weight(const char* fn, const DotWeight& w) {
    ECF8_CHECK(w.type == DotWeightType::F32 || w.type == DotWeightType::BF16 || w.type == DotWeightType::FP8,
               fn << ": unknown weight type " << static_cast<int>(w.type));
    ECF8_CHECK(w.data != nullptr, fn << ": null weight data");
    if (w.type == DotWeightType::FP8) {
        ECF8_CHECK(w.scale_inv != nullptr, fn << ": FP8 weight without scale_inv");
        ECF8_CHECK(w.block > 0, fn << ": FP8 block " << w.block << " must be positive");
    }
}

}  // namespace

size_t dot_gemm_scratch_floats(int64_t m, int64_t k, int64_t n_out, const ThreadPool* pool) {
    ECF8_CHECK(m >= 0 && k >= 0 && n_out >= 0,
               "dot_gemm_scratch_floats: negative size (m " << m << ", k " << k << ", n_out " << n_out << ")");
    if (k == 0 || n_out == 0) return 0;
    const Plan p = make_plan(m, k, n_out, pool == nullptr ? 1 : pool->size());
    return static_cast<size_t>(p.slots * p.panel_rows * p.chunk);
}

void dot_gemm(const float* x, int64_t m, int64_t k, const DotWeight& w, int64_t n_out, float* y, float* scratch,
              ThreadPool* pool) {
    ECF8_CHECK(m >= 0 && k >= 0 && n_out >= 0,
               "dot_gemm: negative size (m " << m << ", k " << k << ", n_out " << n_out << ")");
    if (m == 0 || n_out == 0) return;
    ECF8_CHECK(x != nullptr && y != nullptr, "dot_gemm: null x or y");
    if (k == 0) {  // empty sums
        std::fill(y, y + m * n_out, 0.0f);
        return;
    }
    check_weight("dot_gemm", w);
    ECF8_CHECK(w.type == DotWeightType::F32 || scratch != nullptr, "dot_gemm: null scratch for a converted weight");
    const int threads = pool == nullptr ? 1 : pool->size();
    const Call c{x, m, k, n_out, &w, y, &current_path(), make_plan(m, k, n_out, threads)};
    if (c.plan.slots == 1 || pool == nullptr) {
        run_slot(c, 0, scratch);
    } else {
        pool->parallel_for(static_cast<size_t>(c.plan.slots),
                           [&](size_t s) { run_slot(c, static_cast<int64_t>(s), scratch); });
    }
}

void dot_weight_to_float(const DotWeight& w, int64_t n_out, int64_t k, int64_t row, int64_t col0, int64_t len,
                         float* out) {
    ECF8_CHECK(n_out >= 0 && k >= 0, "dot_weight_to_float: negative size (n_out " << n_out << ", k " << k << ")");
    ECF8_CHECK(row >= 0 && row < n_out && col0 >= 0 && len >= 0 && col0 + len <= k,
               "dot_weight_to_float: row " << row << " or columns [" << col0 << ", " << col0 + len
                                           << ") outside the weight [" << n_out << ", " << k << "]");
    if (len == 0) return;
    check_weight("dot_weight_to_float", w);
    ECF8_CHECK(out != nullptr, "dot_weight_to_float: null out");
    current_path().convert(w, k, row, col0, len, out);
}

void dot_gemm_force_scalar(bool on) { g_force_scalar.store(on, std::memory_order_relaxed); }

bool dot_gemm_uses_avx2() { return &current_path() != &kScalarPath; }

}  // namespace ecf8::cpu
