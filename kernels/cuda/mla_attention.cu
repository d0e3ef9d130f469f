// CUDA twin of kernels/cpu/mla_attention.h: MLA's absorb path over the latent cache of one sequence. The
// same products as the CPU, as cuBLAS SGEMMs (pedantic FP32), but every query token at once: the score
// matrix [n_tokens * n_heads, end_pos] is computed whole, then a causal softmax zeroes the keys a query may
// not see, so the latent-weighted sum is one GEMM too. Results match the CPU up to summation order.
#include <algorithm>

#include "common/error.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = 256;

// One block per (token, head) row of scores: scale, then the CPU's softmax (float max and subtraction, exp
// and sum in double, each result rounded once) over keys [0, start_pos + t]; later keys become 0.
__global__ void causal_softmax_kernel(float* scores, int64_t heads, int64_t end_pos, int64_t start_pos, float scale) {
    __shared__ float max_part[kThreads];
    __shared__ double sum_part[kThreads];
    const int64_t row = blockIdx.x, t = row / heads;
    const int64_t keys = start_pos + t + 1;
    float* s = scores + row * end_pos;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < keys; i += kThreads) m = fmaxf(m, s[i] * scale);
    max_part[threadIdx.x] = m;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) max_part[threadIdx.x] = fmaxf(max_part[threadIdx.x], max_part[threadIdx.x + half]);
        __syncthreads();
    }
    m = max_part[0];
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < keys; i += kThreads) sum += exp(static_cast<double>(s[i] * scale - m));
    sum_part[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) sum_part[threadIdx.x] += sum_part[threadIdx.x + half];
        __syncthreads();
    }
    sum = sum_part[0];
    for (int64_t i = threadIdx.x; i < end_pos; i += kThreads)
        s[i] = i < keys ? static_cast<float>(exp(static_cast<double>(s[i] * scale - m)) / sum) : 0.0f;
}

}  // namespace

int64_t mla_attention_scratch_floats(const cpu::MlaDims& d, int64_t n_tokens, int64_t start_pos) {
    return 2 * n_tokens * d.n_heads * d.kv_lora_rank + n_tokens * d.n_heads * (start_pos + n_tokens);
}

void mla_attention(Sgemm& gemm, const float* q, const float* kv_cache, const float* pe_cache, const float* wkv_b,
                   const cpu::MlaDims& d, int64_t n_tokens, int64_t start_pos, float softmax_scale, float* scratch,
                   float* out, cudaStream_t stream) {
    cpu::check_mla_dims(d);  // the CPU twin's checks, and its BLAS int range on every size below
    ECF8_CHECK(n_tokens >= 0 && start_pos >= 0,
               "mla_attention (CUDA): n_tokens " << n_tokens << " or start_pos " << start_pos << " is negative");
    if (n_tokens == 0) return;
    const int H = cpu::mla_blas_int(d.n_heads, "n_heads"), C = cpu::mla_blas_int(d.kv_lora_rank, "kv_lora_rank");
    const int R = cpu::mla_blas_int(d.qk_rope_head_dim, "qk_rope_head_dim");
    const int NOPE = cpu::mla_blas_int(d.qk_nope_head_dim, "qk_nope_head_dim");
    const int V = cpu::mla_blas_int(d.v_head_dim, "v_head_dim"), QK = cpu::mla_blas_int(d.qk_head_dim(), "qk_head_dim");
    const int T = cpu::mla_blas_int(n_tokens, "n_tokens");
    const int end_pos = cpu::mla_blas_int(start_pos + n_tokens, "start_pos + n_tokens");
    const int TH = cpu::mla_blas_int(n_tokens * d.n_heads, "n_tokens * n_heads");
    cpu::mla_blas_int(d.n_heads * d.qk_head_dim(), "n_heads * qk_head_dim");
    cpu::mla_blas_int(d.n_heads * std::max(d.kv_lora_rank, d.v_head_dim), "n_heads * kv_lora_rank");
    const long long wrows = NOPE + V;
    float* q_lat = scratch;                   // [T, H, C]
    float* o_lat = q_lat + int64_t{TH} * C;   // [T, H, C]
    float* scores = o_lat + int64_t{TH} * C;  // [T, H, end_pos]
    cublasHandle_t h = gemm.handle();
    CUBLAS_CHECK(cublasSetStream(h, stream));
    const float one = 1.0f, zero = 0.0f;
    // Row-major products through column-major cuBLAS: a row-major [m, n] matrix is its column-major transpose.
    // q_lat[t, h, :] = q_nope[t, h, :] . wkv_b_k[h]   (per head, batched)
    CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, C, T, NOPE, &one, wkv_b, C, wrows * C, q,
                                           H * QK, QK, &zero, q_lat, H * C, C, H));
    // scores[t, h, s] = q_lat[t, h] . kv[s] + q_pe[t, h] . pe[s]
    CUBLAS_CHECK(
        cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, end_pos, TH, C, &one, kv_cache, C, q_lat, C, &zero, scores, end_pos));
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, end_pos, TH, R, &one, pe_cache, R, q + NOPE, QK, &one, scores,
                             end_pos));
    causal_softmax_kernel<<<static_cast<unsigned>(TH), kThreads, 0, stream>>>(scores, H, end_pos, start_pos,
                                                                              softmax_scale);
    CUDA_CHECK(cudaGetLastError());
    // o_lat[t, h] = sum_s p[t, h, s] kv[s]
    CUBLAS_CHECK(
        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, C, TH, end_pos, &one, kv_cache, C, scores, end_pos, &zero, o_lat, C));
    // out[t, h, :] = o_lat[t, h] . wkv_b_v[h]^T   (per head, batched)
    CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, V, T, C, &one, wkv_b + NOPE * int64_t{C}, C,
                                           wrows * C, o_lat, H * C, C, &zero, out, H * V, V, H));
}

}  // namespace ecf8::cuda
