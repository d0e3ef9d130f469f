// Linear layers on the CPU: y = x W^T, mirroring linear() of DeepSeek-V3's inference/model.py (gemm_impl
// "bf16") and weight_dequant of inference/kernel.py, through OpenBLAS cblas_sgemm.
#include "kernels/cpu/linear.h"

#include <cblas.h>

#include <atomic>
#include <mutex>

#include "common/error.h"
#include "common/float_formats.h"

namespace ecf8::cpu {

namespace {

std::atomic<bool> g_blas_initialized{false};
std::mutex g_blas_mutex;

void check_linear_args(const char* fn, const float* x, const void* w, const float* y, int64_t n_tokens,
                       int64_t in_features, int64_t out_features) {
    ECF8_CHECK(n_tokens >= 0, fn << ": n_tokens " << n_tokens << " is negative");
    ECF8_CHECK(in_features > 0, fn << ": in_features " << in_features << " must be positive");
    ECF8_CHECK(out_features > 0, fn << ": out_features " << out_features << " must be positive");
    // cblas takes int dimensions.
    ECF8_CHECK(n_tokens <= INT32_MAX && in_features <= INT32_MAX && out_features <= INT32_MAX,
               fn << ": a dimension exceeds the BLAS int range");
    ECF8_CHECK(w != nullptr, fn << ": null weight");
    ECF8_CHECK(n_tokens == 0 || (x != nullptr && y != nullptr), fn << ": null x or y");
}

}  // namespace

void cpu_blas_init(int threads) {
    ECF8_CHECK(threads >= 1, "cpu_blas_init: threads " << threads << " must be >= 1");
    std::lock_guard<std::mutex> lock(g_blas_mutex);
    openblas_set_num_threads(threads);
    g_blas_initialized.store(true, std::memory_order_release);
}

void cpu_blas_ensure_init() {
    if (g_blas_initialized.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(g_blas_mutex);
    if (g_blas_initialized.load(std::memory_order_relaxed)) return;
    openblas_set_num_threads(1);
    g_blas_initialized.store(true, std::memory_order_release);
}

void dequantize_fp8_block_to_float(const uint8_t* w, const float* scale_inv, int64_t rows, int64_t cols, float* out,
                                   int64_t block) {
    ECF8_CHECK(rows >= 0 && cols >= 0,
               "dequantize_fp8_block_to_float: rows " << rows << " or cols " << cols << " is negative");
    ECF8_CHECK(block > 0, "dequantize_fp8_block_to_float: block " << block << " must be positive");
    if (rows == 0 || cols == 0) return;
    ECF8_CHECK(w != nullptr && scale_inv != nullptr && out != nullptr,
               "dequantize_fp8_block_to_float: null w, scale_inv or out");
    // The 256 possible values of an e4m3 byte, decoded once.
    float lut[256];
    for (int v = 0; v < 256; ++v) lut[v] = fp8_e4m3_to_float(static_cast<uint8_t>(v));
    const int64_t scols = scale_blocks(cols, block);
    for (int64_t r = 0; r < rows; ++r) {
        const float* srow = scale_inv + (r / block) * scols;
        const uint8_t* wr = w + r * cols;
        float* orow = out + r * cols;
        for (int64_t c = 0; c < cols; ++c) orow[c] = lut[wr[c]] * srow[c / block];
    }
}

void bf16_to_float_array(const uint16_t* w, int64_t n, float* out) {
    ECF8_CHECK(n >= 0, "bf16_to_float_array: n " << n << " is negative");
    if (n == 0) return;
    ECF8_CHECK(w != nullptr && out != nullptr, "bf16_to_float_array: null w or out");
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(w[i]);
}

void linear_f32(const float* x, const float* w, float* y, int64_t n_tokens, int64_t in_features, int64_t out_features) {
    check_linear_args("linear_f32", x, w, y, n_tokens, in_features, out_features);
    if (n_tokens == 0) return;
    cpu_blas_ensure_init();
    const int m = static_cast<int>(n_tokens), n = static_cast<int>(out_features), k = static_cast<int>(in_features);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
}

void linear_bf16(const float* x, const uint16_t* w, float* w_scratch, float* y, int64_t n_tokens, int64_t in_features,
                 int64_t out_features) {
    check_linear_args("linear_bf16", x, w, y, n_tokens, in_features, out_features);
    ECF8_CHECK(w_scratch != nullptr, "linear_bf16: null w_scratch");
    if (n_tokens == 0) return;
    bf16_to_float_array(w, out_features * in_features, w_scratch);
    linear_f32(x, w_scratch, y, n_tokens, in_features, out_features);
}

void linear_fp8(const float* x, const uint8_t* w, const float* scale_inv, float* w_scratch, float* y, int64_t n_tokens,
                int64_t in_features, int64_t out_features, int64_t block) {
    check_linear_args("linear_fp8", x, w, y, n_tokens, in_features, out_features);
    ECF8_CHECK(scale_inv != nullptr && w_scratch != nullptr, "linear_fp8: null scale_inv or w_scratch");
    if (n_tokens == 0) return;
    dequantize_fp8_block_to_float(w, scale_inv, out_features, in_features, w_scratch, block);
    linear_f32(x, w_scratch, y, n_tokens, in_features, out_features);
}

}  // namespace ecf8::cpu
