/* cuda_kernels.cu — the CUDA backend's kernels and their launchers: quantised matrix-vector products for
 * decode, weight dequantisation to half for cuBLAS, embedding rows, RMSNorm, RoPE, KV store, attention
 * over the cache, SwiGLU and add. Launchers take the stream and never allocate or synchronise. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_quant.cuh"
#include "backend/cuda/cuda_rope.cuh"

/* ---- matrix x few vectors: each warp takes two weight rows, lanes stride over 32-element chunks.
 * Two rows per warp put both rows' weight loads in flight together and let one load of an activation
 * chunk serve both rows, which halves the activation traffic through L1 (the limit of this kernel). ---- */

#define GEMV_WARPS 8
#define GEMV_ROWS 2 /* per warp */

template <int T, int NB>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    k_gemv(const uint8_t *__restrict__ W, size_t row_bytes, int rows, int cols, const float *__restrict__ x,
           const float *__restrict__ bias, float *__restrict__ y)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = (blockIdx.x * GEMV_WARPS + warp) * GEMV_ROWS;
    if (r0 >= rows)
        return;
    const bool two = r0 + 1 < rows;
    const uint8_t *w0p = W + (size_t)r0 * row_bytes;
    const uint8_t *w1p = two ? w0p + row_bytes : w0p;
    float acc0[NB], acc1[NB];
#pragma unroll
    for (int b = 0; b < NB; b++)
        acc0[b] = acc1[b] = 0.0f;
    const int nch = cols >> 5;
    for (int c = lane; c < nch; c += 32) {
        float w0[32], w1[32];
        dequant_chunk<T>(w0p, nch, c, w0);
        dequant_chunk<T>(w1p, nch, c, w1);
#pragma unroll
        for (int b = 0; b < NB; b++) {
            const float4 *xv = (const float4 *)(x + (size_t)b * cols + (size_t)c * 32);
            float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float4 v = __ldg(xv + i);
                s0 += w0[4 * i] * v.x + w0[4 * i + 1] * v.y + w0[4 * i + 2] * v.z + w0[4 * i + 3] * v.w;
                s1 += w1[4 * i] * v.x + w1[4 * i + 1] * v.y + w1[4 * i + 2] * v.z + w1[4 * i + 3] * v.w;
            }
            acc0[b] += s0;
            acc1[b] += s1;
        }
    }
#pragma unroll
    for (int b = 0; b < NB; b++) {
        float s0 = acc0[b], s1 = acc1[b];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            s0 += __shfl_xor_sync(0xffffffffu, s0, o);
            s1 += __shfl_xor_sync(0xffffffffu, s1, o);
        }
        if (lane == 0) {
            y[(size_t)b * rows + r0] = s0 + (bias ? bias[r0] : 0.0f);
            if (two)
                y[(size_t)b * rows + r0 + 1] = s1 + (bias ? bias[r0 + 1] : 0.0f);
        }
    }
}

template <int T>
static void launch_gemv(const uint8_t *W, size_t row_bytes, int rows, int cols, const float *x,
                        const float *bias, float *y, int n, cudaStream_t s)
{
    const int per_block = GEMV_WARPS * GEMV_ROWS;
    const dim3 grid((unsigned)((rows + per_block - 1) / per_block)), block(GEMV_WARPS * 32);
    /* Batches up to CUDA_GEMV_MAX_BATCH go in groups of 8, 4, 2, 1: each group reads the weights once. */
    for (int done = 0; done < n;) {
        const int rem = n - done;
        const float *xs = x + (size_t)done * cols;
        float *ys = y + (size_t)done * rows;
        if (rem >= 8) {
            k_gemv<T, 8><<<grid, block, 0, s>>>(W, row_bytes, rows, cols, xs, bias, ys);
            done += 8;
        } else if (rem >= 4) {
            k_gemv<T, 4><<<grid, block, 0, s>>>(W, row_bytes, rows, cols, xs, bias, ys);
            done += 4;
        } else if (rem >= 2) {
            k_gemv<T, 2><<<grid, block, 0, s>>>(W, row_bytes, rows, cols, xs, bias, ys);
            done += 2;
        } else {
            k_gemv<T, 1><<<grid, block, 0, s>>>(W, row_bytes, rows, cols, xs, bias, ys);
            done += 1;
        }
    }
}

int cuda_launch_gemv(uint32_t type, const void *W, size_t row_bytes, int rows, int cols, const float *x,
                     const float *bias, float *y, int n, cudaStream_t s)
{
    switch (type) {
#define GEMV_CASE(T)                                                                               \
    case T:                                                                                        \
        launch_gemv<T>((const uint8_t *)W, row_bytes, rows, cols, x, bias, y, n, s);               \
        return 0;
        CUDA_FOR_EACH_TYPE(GEMV_CASE)
#undef GEMV_CASE
    default:
        return -1;
    }
}

/* ---- weights to half (rows r0..r0+nrows) for the cuBLAS path; one thread per chunk ---- */

template <int T>
__global__ void k_dequant_f16(const uint8_t *__restrict__ W, size_t row_bytes, int nrows, int cols,
                              __half *__restrict__ out)
{
    const int nch = cols >> 5;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)nrows * nch)
        return;
    const int r = (int)(idx / nch), c = (int)(idx % nch);
    float w[32];
    dequant_chunk<T>(W + (size_t)r * row_bytes, nch, c, w);
    uint4 *o = (uint4 *)(out + (size_t)r * cols + (size_t)c * 32);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint32_t u[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const __half2 h = __floats2half2_rn(w[8 * i + 2 * k], w[8 * i + 2 * k + 1]);
            u[k] = *(const uint32_t *)&h;
        }
        o[i] = make_uint4(u[0], u[1], u[2], u[3]);
    }
}

int cuda_launch_dequant_f16(uint32_t type, const void *W, size_t row_bytes, int nrows, int cols, void *out,
                            cudaStream_t s)
{
    const int64_t total = (int64_t)nrows * (cols >> 5);
    const unsigned grid = (unsigned)((total + 255) / 256);
    switch (type) {
#define DQ_CASE(T)                                                                                 \
    case T:                                                                                        \
        k_dequant_f16<T><<<grid, 256, 0, s>>>((const uint8_t *)W, row_bytes, nrows, cols, (__half *)out); \
        return 0;
        CUDA_FOR_EACH_TYPE(DQ_CASE)
#undef DQ_CASE
    default:
        return -1;
    }
}

/* ---- embedding rows: out[i] = table row tokens[i], one thread per chunk ---- */

template <int T>
__global__ void k_get_rows(const uint8_t *__restrict__ table, size_t row_bytes, int cols,
                           const int32_t *__restrict__ tokens, int n, float *__restrict__ out)
{
    const int nch = cols >> 5;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)n * nch)
        return;
    const int i = (int)(idx / nch), c = (int)(idx % nch);
    float w[32];
    dequant_chunk<T>(table + (size_t)tokens[i] * row_bytes, nch, c, w);
    float4 *o = (float4 *)(out + (size_t)i * cols + (size_t)c * 32);
#pragma unroll
    for (int k = 0; k < 8; k++)
        o[k] = make_float4(w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]);
}

int cuda_launch_get_rows(uint32_t type, const void *table, size_t row_bytes, int cols, const int32_t *tokens,
                         int n, float *out, cudaStream_t s)
{
    const int64_t total = (int64_t)n * (cols >> 5);
    const unsigned grid = (unsigned)((total + 127) / 128);
    switch (type) {
#define GR_CASE(T)                                                                                 \
    case T:                                                                                        \
        k_get_rows<T><<<grid, 128, 0, s>>>((const uint8_t *)table, row_bytes, cols, tokens, n, out); \
        return 0;
        CUDA_FOR_EACH_TYPE(GR_CASE)
#undef GR_CASE
    default:
        return -1;
    }
}

/* ---- activations to half, split as hi + lo so that a half-precision GEMM of the two keeps nearly
 * float32 accuracy of the activations (the weights are exact or already rounded to half) ---- */

__global__ void k_split_f16(const float *__restrict__ x, __half *__restrict__ hi, __half *__restrict__ lo,
                            size_t n)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const float v = x[i];
    const __half h = __float2half_rn(v);
    hi[i] = h;
    if (lo)
        lo[i] = __float2half_rn(v - __half2float(h));
}

void cuda_launch_split_f16(const float *x, void *hi, void *lo, size_t n, cudaStream_t s)
{
    k_split_f16<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(x, (__half *)hi, (__half *)lo, n);
}

__global__ void k_add_bias(float *__restrict__ y, const float *__restrict__ bias, int rows, int n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (int64_t)rows * n)
        y[i] += bias[i % rows];
}

void cuda_launch_add_bias(float *y, const float *bias, int rows, int n, cudaStream_t s)
{
    const int64_t total = (int64_t)rows * n;
    k_add_bias<<<(unsigned)((total + 255) / 256), 256, 0, s>>>(y, bias, rows, n);
}

/* ---- RMSNorm: one block per row ---- */

__device__ __forceinline__ float block_sum(float v, float *sh)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < nw; w++)
        t += sh[w];
    return t;
}

__global__ void k_rmsnorm(const float *x, const float *__restrict__ g, float *out, int dim, float eps)
{
    __shared__ float sh[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *o = out + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = block_sum(ss, sh);
    const float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        o[i] = xr[i] * scale * g[i];
}

void cuda_launch_rmsnorm(const float *x, const float *g, float *out, int n_rows, int dim, float eps,
                         cudaStream_t s)
{
    const int threads = dim >= 1024 ? 1024 : (dim >= 256 ? 256 : 32);
    k_rmsnorm<<<(unsigned)n_rows, threads, 0, s>>>(x, g, out, dim, eps);
}

/* ---- RoPE: one thread per (token, head, rotated pair) ---- */

__global__ void k_rope(float *x, const int32_t *__restrict__ pos, int n, int n_heads, int head_dim, int n_rot,
                       int neox, float freq_base, float freq_scale, const float *__restrict__ factors)
{
    const int half = n_rot / 2;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)n * n_heads * half)
        return;
    const int k = (int)(idx % half);
    const int h = (int)((idx / half) % n_heads);
    const int i = (int)(idx / ((int64_t)half * n_heads));
    float cs, sn;
    rope_cos_sin(k, n_rot, pos[i], freq_base, freq_scale, factors, &cs, &sn);
    float *v = x + ((size_t)i * n_heads + h) * head_dim;
    const int a = neox ? k : 2 * k, b = neox ? k + half : 2 * k + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * cs - x1 * sn;
    v[b] = x0 * sn + x1 * cs;
}

void cuda_launch_rope(float *x, const int32_t *pos, int n, int n_heads, int head_dim, int n_rot, int neox,
                      float freq_base, float freq_scale, const float *factors, cudaStream_t s)
{
    const int64_t total = (int64_t)n * n_heads * (n_rot / 2);
    if (total == 0)
        return;
    k_rope<<<(unsigned)((total + 127) / 128), 128, 0, s>>>(x, pos, n, n_heads, head_dim, n_rot, neox, freq_base,
                                                          freq_scale, factors);
}

/* ---- KV store: rows of k and v into the cache at the batch positions ---- */

__global__ void k_kv_store(void *kc, void *vc, int f16, const float *__restrict__ k, const float *__restrict__ v,
                           const int32_t *__restrict__ pos, int n, int kv_dim)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)n * kv_dim)
        return;
    const int i = (int)(idx / kv_dim), j = (int)(idx % kv_dim);
    const size_t dst = (size_t)pos[i] * kv_dim + j;
    if (f16) {
        ((__half *)kc)[dst] = __float2half_rn(k[idx]);
        ((__half *)vc)[dst] = __float2half_rn(v[idx]);
    } else {
        ((float *)kc)[dst] = k[idx];
        ((float *)vc)[dst] = v[idx];
    }
}

void cuda_launch_kv_store(void *kc, void *vc, int f16, const float *k, const float *v, const int32_t *pos, int n,
                          int kv_dim, cudaStream_t s)
{
    const int64_t total = (int64_t)n * kv_dim;
    k_kv_store<<<(unsigned)((total + 255) / 256), 256, 0, s>>>(kc, vc, f16, k, v, pos, n, kv_dim);
}

/* ---- attention: one block per (head, token); its warps take interleaved cache positions with an
 * online softmax each (running max, sum and weighted V), then the warps' partial results merge. Any
 * context length works without scratch memory. Lane l holds dimensions l, l+32, ... of the head. ---- */

#define ATT_WARPS 16 /* many short online-softmax chains: decode has only n_heads blocks */
#define ATT_MAX_T 8 /* head_dim <= 256 */

template <int F16> __device__ __forceinline__ float att_load(const void *c, size_t i)
{
    if (F16)
        return __half2float(((const __half *)c)[i]);
    return ((const float *)c)[i];
}

template <int F16>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attention(const float *__restrict__ q, const void *__restrict__ kc, const void *__restrict__ vc,
                float *__restrict__ out, const int32_t *__restrict__ pos, int n_heads, int n_kv_heads,
                int head_dim, float scale)
{
    __shared__ float sh_m[ATT_WARPS], sh_l[ATT_WARPS];
    __shared__ float sh_acc[ATT_WARPS][ATT_MAX_T * 32];
    const int h = blockIdx.x, i = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int kvh = h / (n_heads / n_kv_heads);
    const int kv_dim = n_kv_heads * head_dim;
    const int n_pos = pos[i] + 1;
    const float *qr = q + ((size_t)i * n_heads + h) * head_dim;
    float qv[ATT_MAX_T], acc[ATT_MAX_T];
#pragma unroll
    for (int t = 0; t < ATT_MAX_T; t++) {
        const int d = lane + 32 * t;
        qv[t] = d < head_dim ? qr[d] : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int p = warp; p < n_pos; p += ATT_WARPS) {
        const size_t off = (size_t)p * kv_dim + (size_t)kvh * head_dim;
        float s = 0.0f;
#pragma unroll
        for (int t = 0; t < ATT_MAX_T; t++) {
            const int d = lane + 32 * t;
            if (d < head_dim)
                s += qv[t] * att_load<F16>(kc, off + d);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            s += __shfl_xor_sync(0xffffffffu, s, o);
        s *= scale;
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new), e = expf(s - m_new);
        l = l * corr + e;
#pragma unroll
        for (int t = 0; t < ATT_MAX_T; t++) {
            const int d = lane + 32 * t;
            if (d < head_dim)
                acc[t] = acc[t] * corr + e * att_load<F16>(vc, off + d);
        }
        m = m_new;
    }
    if (lane == 0) {
        sh_m[warp] = m;
        sh_l[warp] = l;
    }
#pragma unroll
    for (int t = 0; t < ATT_MAX_T; t++)
        sh_acc[warp][lane + 32 * t] = acc[t];
    __syncthreads();
    float M = sh_m[0];
    for (int w = 1; w < ATT_WARPS; w++)
        M = fmaxf(M, sh_m[w]);
    float L = 0.0f, f[ATT_WARPS];
    for (int w = 0; w < ATT_WARPS; w++) {
        f[w] = sh_l[w] > 0.0f ? expf(sh_m[w] - M) : 0.0f;
        L += sh_l[w] * f[w];
    }
    const float inv = 1.0f / L;
    float *o = out + ((size_t)i * n_heads + h) * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float v = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            v += sh_acc[w][d] * f[w];
        o[d] = v * inv;
    }
}

/* ---- attention with the scores in shared memory (contexts up to SMEM_ATT_MAX_CTX): one block per
 * (head, token) as above, but every thread scores whole cache rows at once (independent 16-byte
 * loads instead of a chain of warp reductions per position), then the softmax, then threads split
 * over (position group, dimension) to sum the V rows. Used for prompt batches, where there are
 * n_heads * n blocks to keep the GPU busy. ---- */

#define SATT_THREADS 256
#define SATT_FIXED (256 + 32 + SATT_THREADS) /* q, reduction slots, partial outputs */
#define SMEM_ATT_MAX_CTX (48 * 1024 / 4 - SATT_FIXED)

__device__ __forceinline__ float satt_reduce(float v, float *red, bool is_max)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    __syncthreads(); /* red may still be read from the previous reduction */
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = red[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
        t = is_max ? fmaxf(t, red[w]) : t + red[w];
    return t;
}

template <int F16>
__global__ void __launch_bounds__(SATT_THREADS)
    k_attention_smem(const float *__restrict__ q, const void *__restrict__ kc, const void *__restrict__ vc,
                     float *__restrict__ out, const int32_t *__restrict__ pos, int n_heads, int n_kv_heads,
                     int head_dim, float scale)
{
    extern __shared__ float sm[];
    float *qs = sm, *red = sm + 256, *part = sm + 288, *sc = sm + SATT_FIXED;
    const int h = blockIdx.x, i = blockIdx.y, tid = threadIdx.x;
    const int kvh = h / (n_heads / n_kv_heads);
    const int kv_dim = n_kv_heads * head_dim;
    const int n_pos = pos[i] + 1;
    const float *qr = q + ((size_t)i * n_heads + h) * head_dim;
    for (int d = tid; d < head_dim; d += SATT_THREADS)
        qs[d] = qr[d];
    __syncthreads();
    float mx = -INFINITY;
    for (int p = tid; p < n_pos; p += SATT_THREADS) {
        const size_t off = (size_t)p * kv_dim + (size_t)kvh * head_dim;
        float sum = 0.0f;
        if (F16 && (head_dim & 7) == 0) {
            const uint4 *k8 = (const uint4 *)((const __half *)kc + off);
            for (int d8 = 0; d8 < head_dim / 8; d8++) {
                const uint4 u = __ldg(k8 + d8);
                const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float2 f = __half22float2(*(const __half2 *)&w[k]);
                    sum += qs[8 * d8 + 2 * k] * f.x + qs[8 * d8 + 2 * k + 1] * f.y;
                }
            }
        } else {
            for (int d = 0; d < head_dim; d++)
                sum += qs[d] * att_load<F16>(kc, off + d);
        }
        sum *= scale;
        sc[p] = sum;
        mx = fmaxf(mx, sum);
    }
    mx = satt_reduce(mx, red, true);
    float l = 0.0f;
    for (int p = tid; p < n_pos; p += SATT_THREADS) {
        const float e = expf(sc[p] - mx);
        sc[p] = e;
        l += e;
    }
    l = satt_reduce(l, red, false); /* its barriers also publish sc[] */
    const int G = SATT_THREADS / head_dim, g = tid / head_dim, d = tid - g * head_dim;
    float acc = 0.0f;
    if (g < G)
        for (int p = g; p < n_pos; p += G)
            acc += sc[p] * att_load<F16>(vc, (size_t)p * kv_dim + (size_t)kvh * head_dim + d);
    if (g < G)
        part[tid] = acc;
    __syncthreads();
    if (tid < head_dim) {
        float v = 0.0f;
        for (int k = 0; k < G; k++)
            v += part[k * head_dim + tid];
        out[((size_t)i * n_heads + h) * head_dim + tid] = v / l;
    }
}

void cuda_launch_attention(const float *q, const void *kc, const void *vc, int f16, float *out, const int32_t *pos,
                           int n, int n_heads, int n_kv_heads, int head_dim, float scale, int max_ctx,
                           cudaStream_t s)
{
    /* Prompt batches: the tiled kernel (head sizes 64 and 128), which reads each cache row once per 64
     * query rows. */
    if (n > CUDA_GEMV_MAX_BATCH && cuda_launch_attention_prefill(q, kc, vc, f16, out, pos, n, n_heads, n_kv_heads,
                                                                 head_dim, scale, s) == 0)
        return;
    const dim3 grid((unsigned)n_heads, (unsigned)n);
    /* Prompt batches only: for a decode step (n_heads blocks) each thread's serial sum over V rows is
     * slower than the warp-per-position kernel below (measured on H200: 8B Q4_0 decode 129 vs 185 tok/s). */
    if (n > CUDA_GEMV_MAX_BATCH && max_ctx > 0 && max_ctx <= SMEM_ATT_MAX_CTX) {
        const size_t smem = (size_t)(SATT_FIXED + max_ctx) * sizeof(float);
        if (f16)
            k_attention_smem<1><<<grid, SATT_THREADS, smem, s>>>(q, kc, vc, out, pos, n_heads, n_kv_heads, head_dim,
                                                                 scale);
        else
            k_attention_smem<0><<<grid, SATT_THREADS, smem, s>>>(q, kc, vc, out, pos, n_heads, n_kv_heads, head_dim,
                                                                 scale);
        return;
    }
    if (f16)
        k_attention<1><<<grid, ATT_WARPS * 32, 0, s>>>(q, kc, vc, out, pos, n_heads, n_kv_heads, head_dim, scale);
    else
        k_attention<0><<<grid, ATT_WARPS * 32, 0, s>>>(q, kc, vc, out, pos, n_heads, n_kv_heads, head_dim, scale);
}

/* ---- elementwise ---- */

__global__ void k_swiglu(const float *gate, const float *__restrict__ up, float *out, size_t n)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void cuda_launch_swiglu(const float *gate, const float *up, float *out, size_t n, cudaStream_t s)
{
    k_swiglu<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(gate, up, out, n);
}

__global__ void k_add(float *x, const float *__restrict__ y, size_t n)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] += y[i];
}

void cuda_launch_add(float *x, const float *y, size_t n, cudaStream_t s)
{
    k_add<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(x, y, n);
}

/* One thread that spins for about ms milliseconds of the GPU's global timer (profiling only). */
__global__ void k_spin(unsigned long long ns)
{
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

void cuda_launch_spin(float ms, cudaStream_t s)
{
    k_spin<<<1, 1, 0, s>>>((unsigned long long)(ms * 1e6f));
}
