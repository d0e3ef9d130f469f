// Linear layers on the CPU: y = x W^T, mirroring linear() of DeepSeek-V3's inference/model.py (gemm_impl
// "bf16") and weight_dequant of inference/kernel.py, through the batch-invariant dot_gemm.
#include "kernels/cpu/linear.h"

#include <cblas.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "common/error.h"
#include "common/float_formats.h"
#include "common/thread_pool.h"
#include "kernels/cpu/dot_gemm.h"

namespace ecf8::cpu {

namespace {

std::atomic<bool> g_blas_initialized{false};
std::mutex g_blas_mutex;
std::unique_ptr<ThreadPool> g_linear_pool;  // cpu_blas_init's threads when more than one

void check_linear_args(const char* fn, const float* x, const void* w, const float* y, int64_t n_tokens,
                       int64_t in_features, int64_t out_features) {
    ECF8_CHECK(n_tokens >= 0, fn << ": n_tokens " << n_tokens << " is negative");
    ECF8_CHECK(in_features > 0, fn << ": in_features " << in_features << " must be positive");
    ECF8_CHECK(out_features > 0, fn << ": out_features " << out_features << " must be positive");
    ECF8_CHECK(w != nullptr, fn << ": null weight");
    ECF8_CHECK(n_tokens == 0 || (x != nullptr && y != nullptr), fn << ": null x or y");
}

}  // namespace

void cpu_blas_init(int threads) {
    ECF8_CHECK(threads >= 1, "cpu_blas_init: threads " << threads << " must be >= 1");
    std::lock_guard<std::mutex> lock(g_blas_mutex);
    openblas_set_num_threads(threads);
    const int now = g_linear_pool ? g_linear_pool->size() : 1;
    if (threads != now) g_linear_pool = threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr;
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
    // Row by row with dot_gemm's own conversion, so a dequantized weight holds exactly the values it uses.
    const DotWeight dw{DotWeightType::FP8, w, scale_inv, block};
    for (int64_t r = 0; r < rows; ++r) dot_weight_to_float(dw, rows, cols, r, 0, cols, out + r * cols);
}

void bf16_to_float_array(const uint16_t* w, int64_t n, float* out) {
    ECF8_CHECK(n >= 0, "bf16_to_float_array: n " << n << " is negative");
    if (n == 0) return;
    ECF8_CHECK(w != nullptr && out != nullptr, "bf16_to_float_array: null w or out");
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(w[i]);
}

namespace {

void linear(const float* x, const DotWeight& w, float* scratch, float* y, int64_t n_tokens, int64_t in_features,
            int64_t out_features) {
    cpu_blas_ensure_init();  // the pool of cpu_blas_init's threads, if any
    dot_gemm(x, n_tokens, in_features, w, out_features, y, scratch, g_linear_pool.get());
}

}  // namespace

void linear_f32(const float* x, const float* w, float* y, int64_t n_tokens, int64_t in_features, int64_t out_features) {
    check_linear_args("linear_f32", x, w, y, n_tokens, in_features, out_features);
    if (n_tokens == 0) return;
    linear(x, {DotWeightType::F32, w}, nullptr, y, n_tokens, in_features, out_features);
}

void linear_bf16(const float* x, const uint16_t* w, float* w_scratch, float* y, int64_t n_tokens, int64_t in_features,
                 int64_t out_features) {
    check_linear_args("linear_bf16", x, w, y, n_tokens, in_features, out_features);
    ECF8_CHECK(w_scratch != nullptr, "linear_bf16: null w_scratch");
    if (n_tokens == 0) return;
    linear(x, {DotWeightType::BF16, w}, w_scratch, y, n_tokens, in_features, out_features);
}

void linear_fp8(const float* x, const uint8_t* w, const float* scale_inv, float* w_scratch, float* y, int64_t n_tokens,
                int64_t in_features, int64_t out_features, int64_t block) {
    check_linear_args("linear_fp8", x, w, y, n_tokens, in_features, out_features);
    ECF8_CHECK(scale_inv != nullptr && w_scratch != nullptr, "linear_fp8: null scale_inv or w_scratch");
    ECF8_CHECK(block > 0, "linear_fp8: block " << block << " must be positive");
    if (n_tokens == 0) return;
    linear(x, {DotWeightType::FP8, w, scale_inv, block}, w_scratch, y, n_tokens, in_features, out_features);
}

}  // namespace ecf8::cpu
