/* cuda_fused.cu — decode-step kernels that do the work of several ops in one launch, and the
 * split-context ("flash-decoding") attention for decode batches.
 *
 * A decode step of a small model is bound by launches and by the few blocks its small ops make, not
 * by arithmetic: residual add + RMSNorm + int8 quantisation of the result become one kernel, SwiGLU +
 * quantisation another. Attention over the cache is split over many blocks (each a chunk of
 * positions for all query heads sharing one KV head) and merged by a second small kernel, instead
 * of n_heads blocks each walking the whole context. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"

/* ---- residual add + RMSNorm (+ int8 quantisation of the output): one block per row ---- */

#define NORM_THREADS 1024 /* one block per row: a decode step has one row, so the block must be wide */

__device__ __forceinline__ float nf_block_sum(float v, float *sh)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++)
        t += sh[w];
    return t;
}

/* Quantises v (lane's value of a 32-value block) as cuda_launch_quantize_q8 does. */
__device__ __forceinline__ void nf_quant32(float v, int8_t *xq, float2 *xds, int lane)
{
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int q = __float2int_rn(v * id);
    xq[lane] = (int8_t)q;
    int sum = q;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0)
        *xds = make_float2(d, d * (float)sum);
}

/* x (+)= y when y is given; out = x * rsqrt(mean(x^2) + eps) * g; and, when xq is given, out quantised
 * to int8 per 32 values. y and out may be the same buffer (the add of one layer's FFN output followed
 * by the next layer's norm into the same scratch): every y of the row is read before the barrier in
 * nf_block_sum, every out written after it. */
__global__ void __launch_bounds__(NORM_THREADS)
    k_norm_fused(float *x, const float *y, const float *__restrict__ g, float *out, int8_t *__restrict__ xq,
                 float2 *__restrict__ xds, int dim, float eps)
{
    __shared__ float sh[32];
    float *xr = x + (size_t)blockIdx.x * dim;
    const float *yr = y ? y + (size_t)blockIdx.x * dim : NULL;
    float *o = out + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xr[i];
        if (yr) {
            v += yr[i];
            xr[i] = v;
        }
        ss += v * v;
    }
    ss = nf_block_sum(ss, sh);
    const float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    if (!xq) {
        for (int i = threadIdx.x; i < dim; i += blockDim.x)
            o[i] = xr[i] * scale * g[i];
        return;
    }
    /* Warp per 32-value block; the x written above by other threads is visible after the barrier. */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5, nch = dim >> 5;
    for (int c = warp; c < nch; c += nw) {
        const int i = c * 32 + lane;
        const float v = xr[i] * scale * g[i];
        o[i] = v;
        nf_quant32(v, xq + (size_t)blockIdx.x * dim + (size_t)c * 32, xds + (size_t)blockIdx.x * nch + c, lane);
    }
}

void cuda_launch_norm_fused(float *x, const float *y, const float *g, float *out, void *xq, void *xds, int n_rows,
                            int dim, float eps, cudaStream_t s)
{
    const int threads = dim >= NORM_THREADS ? NORM_THREADS : dim >= 256 ? 256 : 32;
    k_norm_fused<<<(unsigned)n_rows, threads, 0, s>>>(x, y, g, out, (int8_t *)xq, (float2 *)xds, dim, eps);
}

/* ---- SwiGLU + int8 quantisation: one warp per 32-value block ---- */

__global__ void k_swiglu_q8(const float *gate, const float *__restrict__ up, float *out, int8_t *__restrict__ xq,
                            float2 *__restrict__ xds, int64_t n_chunks)
{
    const int64_t chunk = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (chunk >= n_chunks)
        return;
    const int64_t i = chunk * 32 + lane;
    const float gv = gate[i];
    const float v = gv / (1.0f + expf(-gv)) * up[i];
    out[i] = v;
    nf_quant32(v, xq + chunk * 32, xds + chunk, lane);
}

void cuda_launch_swiglu_q8(const float *gate, const float *up, float *out, void *xq, void *xds, size_t n,
                           cudaStream_t s)
{
    const int64_t chunks = (int64_t)(n / 32);
    k_swiglu_q8<<<(unsigned)((chunks + 7) / 8), 256, 0, s>>>(gate, up, out, (int8_t *)xq, (float2 *)xds, chunks);
}

/* ---- split-context attention for decode batches ----
 * Pass 1: block (split, kv head, token) scores its chunk of cache positions against every query head
 * of that KV head (the K and V rows are read once for the group), takes the chunk's softmax and the
 * weighted sum of V rows, and leaves the unnormalised sums with (max, sum of exps) per head and split.
 * Pass 2: block (head, token) merges the chunks that hold positions. The grid covers the context's
 * full size (a graph replayed at growing positions keeps its shape); chunks past the token's position
 * return at once. */

#define SPLIT_THREADS 128
#define SPLIT_MAX 256 /* chunks per context at most (the chunk grows for longer contexts) */

int cuda_attention_split_chunk(int max_ctx)
{
    int chunk = (max_ctx + SPLIT_MAX - 1) / SPLIT_MAX;
    chunk = (chunk + 31) & ~31;
    return chunk < 32 ? 32 : chunk;
}

size_t cuda_attention_split_floats(int n, int n_heads, int head_dim, int max_ctx)
{
    const int chunk = cuda_attention_split_chunk(max_ctx), n_splits = (max_ctx + chunk - 1) / chunk;
    return (size_t)n * n_heads * n_splits * (size_t)(head_dim + 2);
}

template <int F16> __device__ __forceinline__ float2 sp_load2(const void *c, size_t i)
{
    if (F16)
        return __half22float2(*(const __half2 *)((const __half *)c + i));
    return *(const float2 *)((const float *)c + i);
}

template <int F16>
__global__ void __launch_bounds__(SPLIT_THREADS)
    k_att_split(const float *__restrict__ q, const void *__restrict__ kc, const void *__restrict__ vc,
                float *__restrict__ part_o, float2 *__restrict__ part_ml, const int32_t *__restrict__ pos,
                int n_heads, int n_kv_heads, int head_dim, float scale, int chunk, int n_splits)
{
    extern __shared__ float sm[];
    const int split = blockIdx.x, kvh = blockIdx.y, i = blockIdx.z, tid = threadIdx.x;
    const int n_pos = pos[i] + 1, p0 = split * chunk;
    if (p0 >= n_pos)
        return;
    const int np = min(chunk, n_pos - p0);
    const int G = n_heads / n_kv_heads, h0 = kvh * G, kv_dim = n_kv_heads * head_dim;
    float *qs = sm, *sc = sm + G * head_dim, *ml = sc + G * chunk;
    const float *qr = q + ((size_t)i * n_heads + h0) * head_dim; /* the group's heads are contiguous */
    for (int k = tid; k < G * head_dim; k += SPLIT_THREADS)
        qs[k] = qr[k];
    __syncthreads();
    const size_t kv0 = (size_t)p0 * kv_dim + (size_t)kvh * head_dim;
    /* Scores: one (head, position) pair per thread, the whole K row with wide loads. */
    for (int w = tid; w < G * np; w += SPLIT_THREADS) {
        const int g = w / np, p = w - g * np;
        const float *qg = qs + g * head_dim;
        const size_t off = kv0 + (size_t)p * kv_dim;
        float s = 0.0f;
        if (F16 && (head_dim & 7) == 0) {
            const uint4 *k8 = (const uint4 *)((const __half *)kc + off);
            for (int d8 = 0; d8 < head_dim / 8; d8++) {
                const uint4 u = __ldg(k8 + d8);
                const uint32_t wv[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float2 f = __half22float2(*(const __half2 *)&wv[k]);
                    s += qg[8 * d8 + 2 * k] * f.x + qg[8 * d8 + 2 * k + 1] * f.y;
                }
            }
        } else {
            for (int d = 0; d < head_dim; d += 2) {
                const float2 f = sp_load2<F16>(kc, off + d);
                s += qg[d] * f.x + qg[d + 1] * f.y;
            }
        }
        sc[g * chunk + p] = s * scale;
    }
    __syncthreads();
    /* The chunk's softmax per head: a warp per head. */
    const int warp = tid >> 5, lane = tid & 31;
    for (int g = warp; g < G; g += SPLIT_THREADS / 32) {
        float *sg = sc + g * chunk;
        float mx = -INFINITY;
        for (int p = lane; p < np; p += 32)
            mx = fmaxf(mx, sg[p]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float l = 0.0f;
        for (int p = lane; p < np; p += 32) {
            const float e = expf(sg[p] - mx);
            sg[p] = e;
            l += e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            l += __shfl_xor_sync(0xffffffffu, l, o);
        if (lane == 0) {
            ml[2 * g] = mx;
            ml[2 * g + 1] = l;
        }
    }
    __syncthreads();
    /* Weighted V rows: a pair of dimensions of one head per thread; neighbouring threads read
     * neighbouring dimensions of a row. */
    const int hd2 = head_dim / 2;
    for (int w = tid; w < G * hd2; w += SPLIT_THREADS) {
        const int g = w / hd2, d = 2 * (w - g * hd2);
        const float *sg = sc + g * chunk;
        float a0 = 0.0f, a1 = 0.0f;
#pragma unroll 8
        for (int p = 0; p < np; p++) {
            const float2 v = sp_load2<F16>(vc, kv0 + (size_t)p * kv_dim + d);
            a0 += sg[p] * v.x;
            a1 += sg[p] * v.y;
        }
        float *po = part_o + (((size_t)i * n_heads + h0 + g) * n_splits + split) * head_dim + d;
        po[0] = a0;
        po[1] = a1;
    }
    if (tid < G)
        part_ml[((size_t)i * n_heads + h0 + tid) * n_splits + split] = make_float2(ml[2 * tid], ml[2 * tid + 1]);
}

__global__ void k_att_merge(const float *__restrict__ part_o, const float2 *__restrict__ part_ml, float *out,
                            const int32_t *__restrict__ pos, int n_heads, int head_dim, int chunk, int n_splits)
{
    __shared__ float f[SPLIT_MAX];
    __shared__ float sh_m, sh_inv;
    const int h = blockIdx.x, i = blockIdx.y, tid = threadIdx.x;
    int n_act = (pos[i] + chunk) / chunk; /* chunks holding positions 0..pos[i] */
    if (n_act > n_splits)
        n_act = n_splits;
    const size_t base = ((size_t)i * n_heads + h) * n_splits;
    if (tid == 0) {
        float M = -INFINITY;
        for (int s = 0; s < n_act; s++)
            M = fmaxf(M, part_ml[base + s].x);
        sh_m = M;
    }
    __syncthreads();
    const float M = sh_m;
    for (int s = tid; s < n_act; s += blockDim.x)
        f[s] = expf(part_ml[base + s].x - M);
    __syncthreads();
    if (tid == 0) {
        float L = 0.0f;
        for (int s = 0; s < n_act; s++)
            L += f[s] * part_ml[base + s].y;
        sh_inv = 1.0f / L;
    }
    __syncthreads();
    const float inv = sh_inv;
    for (int d = tid; d < head_dim; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < n_act; s++)
            a += f[s] * part_o[(base + s) * head_dim + d];
        out[((size_t)i * n_heads + h) * head_dim + d] = a * inv;
    }
}

int cuda_launch_attention_split(const float *q, const void *kc, const void *vc, int f16, float *out,
                                const int32_t *pos, int n, int n_heads, int n_kv_heads, int head_dim, float scale,
                                int max_ctx, void *scratch, cudaStream_t s)
{
    if (max_ctx <= 0 || (head_dim & 1) || n_kv_heads <= 0 || n_heads % n_kv_heads)
        return -1;
    const int chunk = cuda_attention_split_chunk(max_ctx), n_splits = (max_ctx + chunk - 1) / chunk;
    const int G = n_heads / n_kv_heads;
    const size_t smem = (size_t)(G * head_dim + G * chunk + 2 * G) * sizeof(float);
    if (smem > 48 * 1024)
        return -1;
    float *part_o = (float *)scratch;
    float2 *part_ml = (float2 *)(part_o + (size_t)n * n_heads * n_splits * head_dim);
    const dim3 grid((unsigned)n_splits, (unsigned)n_kv_heads, (unsigned)n);
    if (f16)
        k_att_split<1><<<grid, SPLIT_THREADS, smem, s>>>(q, kc, vc, part_o, part_ml, pos, n_heads, n_kv_heads,
                                                         head_dim, scale, chunk, n_splits);
    else
        k_att_split<0><<<grid, SPLIT_THREADS, smem, s>>>(q, kc, vc, part_o, part_ml, pos, n_heads, n_kv_heads,
                                                         head_dim, scale, chunk, n_splits);
    const int mt = head_dim >= 128 ? 128 : 64;
    k_att_merge<<<dim3((unsigned)n_heads, (unsigned)n), mt, 0, s>>>(part_o, part_ml, out, pos, n_heads, head_dim,
                                                                    chunk, n_splits);
    return 0;
}
