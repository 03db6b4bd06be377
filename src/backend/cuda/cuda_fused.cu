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
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_q8.cuh"
#include "backend/cuda/cuda_rope.cuh"

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

/* x (+)= y when y is given; out = x * rsqrt(mean(x^2) + eps) * g; and, when xq is given, out quantised
 * to int8 per 32 values. y and out may be the same buffer (the add of one layer's FFN output followed
 * by the next layer's norm into the same scratch): every y of the row is read before the barrier in
 * nf_block_sum, every out written after it.
 * Rows of up to NORM_PER * blockDim.x values stay in registers: thread t holds values t, t + blockDim.x,
 * ..., so a warp holds whole 32-value blocks and quantises them without reloading anything; all loads
 * are issued before the one barrier. Longer rows take a second pass over memory. */
#define NORM_PER 8

__global__ void __launch_bounds__(NORM_THREADS)
    k_norm_fused(float *x, const float *y, const float *__restrict__ g, float *out, int8_t *__restrict__ xq,
                 float2 *__restrict__ xds, int dim, float eps)
{
    __shared__ float sh[32];
    pdl_trigger();
    float *xr = x + (size_t)blockIdx.x * dim;
    const float *yr = y ? y + (size_t)blockIdx.x * dim : NULL;
    float *o = out + (size_t)blockIdx.x * dim;
    const int nt = (int)blockDim.x, t = (int)threadIdx.x;
    const int lane = t & 31, nch = dim >> 5;
    if (dim <= NORM_PER * nt) {
        float v[NORM_PER], gv[NORM_PER];
        float ss = 0.0f;
        /* The weights are not the kernel before's output: load them while it finishes. */
#pragma unroll
        for (int k = 0; k < NORM_PER; k++) {
            const int i = t + k * nt;
            gv[k] = i < dim ? g[i] : 0.0f;
        }
        pdl_wait();
#pragma unroll
        for (int k = 0; k < NORM_PER; k++) {
            const int i = t + k * nt;
            v[k] = i < dim ? xr[i] + (yr ? yr[i] : 0.0f) : 0.0f;
        }
#pragma unroll
        for (int k = 0; k < NORM_PER; k++) {
            const int i = t + k * nt;
            if (i < dim) {
                if (yr)
                    xr[i] = v[k];
                ss += v[k] * v[k];
            }
        }
        ss = nf_block_sum(ss, sh);
        const float scale = 1.0f / sqrtf(ss / (float)dim + eps);
#pragma unroll
        for (int k = 0; k < NORM_PER; k++) {
            const int i = t + k * nt; /* whole warps in or out of the row when dim % 32 == 0 */
            if (i < dim) {
                const float r = v[k] * scale * gv[k];
                o[i] = r;
                if (xq)
                    q8_quant32(r, xq + (size_t)blockIdx.x * dim + (i - lane), xds + (size_t)blockIdx.x * nch + (i >> 5),
                               lane);
            }
        }
        return;
    }
    pdl_wait();
    float ss = 0.0f;
    for (int i = t; i < dim; i += nt) {
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
        for (int i = t; i < dim; i += nt)
            o[i] = xr[i] * scale * g[i];
        return;
    }
    /* Warp per 32-value block; the x written above by other threads is visible after the barrier. */
    const int warp = t >> 5, nw = nt >> 5;
    for (int c = warp; c < nch; c += nw) {
        const int i = c * 32 + lane;
        const float v = xr[i] * scale * g[i];
        o[i] = v;
        q8_quant32(v, xq + (size_t)blockIdx.x * dim + (size_t)c * 32, xds + (size_t)blockIdx.x * nch + c, lane);
    }
}

void cuda_launch_norm_fused(float *x, const float *y, const float *g, float *out, void *xq, void *xds, int n_rows,
                            int dim, float eps, cudaStream_t s)
{
    /* Four values a thread for the usual widths (2048: 512 threads, 4096: 1024); at least one warp. */
    int threads = (dim / 4 + 31) & ~31;
    threads = threads > NORM_THREADS ? NORM_THREADS : threads < 32 ? 32 : threads;
    pdl_launch(k_norm_fused, dim3((unsigned)n_rows), dim3(threads), 0, s, x, y, g, out, (int8_t *)xq, (float2 *)xds, dim,
               eps);
}

/* ---- SwiGLU + int8 quantisation: one warp per 32-value block ---- */

__global__ void k_swiglu_q8(const float *gate, const float *__restrict__ up, float *out, int8_t *__restrict__ xq,
                            float2 *__restrict__ xds, int64_t n_chunks)
{
    pdl_trigger();
    pdl_wait();
    const int64_t chunk = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (chunk >= n_chunks)
        return;
    const int64_t i = chunk * 32 + lane;
    const float gv = gate[i];
    const float v = gv / (1.0f + expf(-gv)) * up[i];
    out[i] = v;
    q8_quant32(v, xq + chunk * 32, xds + chunk, lane);
}

void cuda_launch_swiglu_q8(const float *gate, const float *up, float *out, void *xq, void *xds, size_t n,
                           cudaStream_t s)
{
    const int64_t chunks = (int64_t)(n / 32);
    pdl_launch(k_swiglu_q8, dim3((unsigned)((chunks + 7) / 8)), dim3(256), 0, s, gate, up, out, (int8_t *)xq,
               (float2 *)xds, chunks);
}

/* ---- RoPE on Q and K + K and V into the cache: one thread per (token, head slot, value pair) ----
 * Head slots 0..n_heads-1 are Q heads (rotated in place), the next n_kv_heads K heads (rotated in place
 * and stored), the last n_kv_heads V heads (stored). Pair j < n_rot / 2 of a Q or K head is the rotated
 * pair (j, j + n_rot / 2) (NeoX) or (2j, 2j + 1); the pairs after it carry the unrotated values
 * n_rot + 2 (j - n_rot / 2) and the one after. */
__global__ void k_rope_kv(float *q, float *k, const float *__restrict__ v, void *kc, void *vc, int f16,
                          const int32_t *__restrict__ pos, int n_heads, int n_kv_heads, int head_dim, int n_rot, int neox,
                          float freq_base, float freq_scale, const float *__restrict__ factors, int64_t total)
{
    pdl_trigger();
    pdl_wait();
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total)
        return;
    const int hd2 = head_dim / 2, slots = n_heads + 2 * n_kv_heads, half = n_rot / 2;
    const int j = (int)(idx % hd2);
    const int slot = (int)((idx / hd2) % slots);
    const int i = (int)(idx / ((int64_t)hd2 * slots));
    const int kv_dim = n_kv_heads * head_dim;
    const int32_t p = pos[i];
    int a, b;
    if (j < half) {
        a = neox ? j : 2 * j;
        b = neox ? j + half : 2 * j + 1;
    } else {
        a = n_rot + 2 * (j - half);
        b = a + 1;
    }
    float x0, x1;
    size_t dst;
    if (slot < n_heads + n_kv_heads) {
        const bool is_q = slot < n_heads;
        float *hv = is_q ? q + ((size_t)i * n_heads + slot) * head_dim
                         : k + ((size_t)i * n_kv_heads + (slot - n_heads)) * head_dim;
        x0 = hv[a];
        x1 = hv[b];
        if (j < half) {
            float cs, sn;
            rope_cos_sin(j, n_rot, p, freq_base, freq_scale, factors, &cs, &sn);
            const float r0 = x0 * cs - x1 * sn, r1 = x0 * sn + x1 * cs;
            x0 = r0;
            x1 = r1;
            hv[a] = x0;
            hv[b] = x1;
        }
        if (is_q)
            return;
        dst = (size_t)p * kv_dim + (size_t)(slot - n_heads) * head_dim;
        if (f16) {
            ((__half *)kc)[dst + a] = __float2half_rn(x0);
            ((__half *)kc)[dst + b] = __float2half_rn(x1);
        } else {
            ((float *)kc)[dst + a] = x0;
            ((float *)kc)[dst + b] = x1;
        }
        return;
    }
    const int vh = slot - n_heads - n_kv_heads;
    const float *vr = v + ((size_t)i * n_kv_heads + vh) * head_dim;
    dst = (size_t)p * kv_dim + (size_t)vh * head_dim;
    x0 = vr[2 * j];
    x1 = vr[2 * j + 1];
    if (f16) {
        ((__half *)vc)[dst + 2 * j] = __float2half_rn(x0);
        ((__half *)vc)[dst + 2 * j + 1] = __float2half_rn(x1);
    } else {
        ((float *)vc)[dst + 2 * j] = x0;
        ((float *)vc)[dst + 2 * j + 1] = x1;
    }
}

int cuda_launch_rope_kv(float *q, float *k, const float *v, void *kc, void *vc, int f16, const int32_t *pos, int n,
                        int n_heads, int n_kv_heads, int head_dim, int n_rot, int neox, float freq_base,
                        float freq_scale, const float *factors, cudaStream_t s)
{
    if ((head_dim & 1) || (n_rot & 1) || n_rot > head_dim)
        return -1;
    const int64_t total = (int64_t)n * (n_heads + 2 * n_kv_heads) * (head_dim / 2);
    if (total == 0)
        return 0;
    pdl_launch(k_rope_kv, dim3((unsigned)((total + 127) / 128)), dim3(128), 0, s, q, k, v, kc, vc, f16, pos, n_heads,
               n_kv_heads, head_dim, n_rot, neox, freq_base, freq_scale, factors, total);
    return 0;
}

/* ---- the batch's RoPE angles, once a step: cos/sin of pair j at token i's position in
 * table[i * n_rot / 2 + j], for the products' RoPE epilogue ---- */

__global__ void k_rope_table(const int32_t *__restrict__ pos, int n, int n_rot, float freq_base, float freq_scale,
                             const float *__restrict__ factors, float2 *__restrict__ table)
{
    pdl_trigger();
    const int half = n_rot / 2;
    for (int t = threadIdx.x; t < n * half; t += blockDim.x) {
        float cs, sn;
        rope_cos_sin(t % half, n_rot, pos[t / half], freq_base, freq_scale, factors, &cs, &sn);
        table[t] = make_float2(cs, sn);
    }
    /* Nothing here reads what the kernel before wrote (the positions were copied before the step), but
     * kernels after this one count on every earlier kernel having finished once this one has. */
    pdl_wait();
}

int cuda_launch_rope_table(const int32_t *pos, int n, int n_rot, float freq_base, float freq_scale,
                           const float *factors, void *table, cudaStream_t s)
{
    if (n < 1 || n > CUDA_GEMV_MAX_BATCH || n_rot < 2 || n_rot > CUDA_ROPE_TABLE_ROT || (n_rot & 1))
        return -1;
    pdl_launch(k_rope_table, dim3(1), dim3(256), 0, s, pos, n, n_rot, freq_base, freq_scale, factors, (float2 *)table);
    return 0;
}

/* ---- split-context attention for decode batches ----
 * Block (split, kv head, token) takes an equal share of the token's cache positions (the share is
 * computed on the GPU from the token's position, so the launch shape never changes and a replayed graph
 * stays valid as the context grows). Its warps take the share's positions in turn, four at a time so
 * that eight K/V row loads are in flight; a lane holds head_dim / 32 dimensions, so each K or V row is
 * one coalesced read, scored against every query head of the group (the GQA heads share the row) with
 * an online softmax per warp and head. The warps merge in shared memory; a token whose positions fit
 * one split writes its result at once, otherwise each split leaves its partial result and the last
 * split to finish (counted with an atomic, which it resets) merges them. */

#define SPLIT_N 32       /* splits a token's context is cut into at most */
/* Warps a block: a share of 32 positions is then one pass of four positions a warp (HEARTH_CUDA_ATT_WARPS=4:
 * two passes). */
#define SPLIT_WARPS 8
#define SPLIT_MIN_POS 32 /* positions a split takes at least (HEARTH_CUDA_ATT_SPLIT_MIN overrides) */
#define SPLIT_MAX_G 8    /* query heads per KV head */
#define SPLIT_UNROLL 4 /* sp_reduce4 is written for four */

/* The scratch starts with one counter per (token, KV head) at a fixed place, whatever the shape, so that
 * launches of other batch sizes or models never write over them; the partial outputs and (max, sum)
 * pairs follow. */
#define SPLIT_MAX_KV 64
#define SPLIT_COUNTERS (CUDA_GEMV_MAX_BATCH * SPLIT_MAX_KV)

size_t cuda_attention_split_floats(int n, int n_heads, int n_kv_heads, int head_dim)
{
    (void)n_kv_heads;
    return SPLIT_COUNTERS + (size_t)n * n_heads * SPLIT_N * (size_t)(head_dim + 2);
}

template <int F16, int DPL> __device__ __forceinline__ void sp_row(const void *c, size_t off, int lane, float *v)
{
    if (F16) {
        const __half *p = (const __half *)c + off + (size_t)lane * DPL;
        if (DPL == 2) {
            const float2 f = __half22float2(*(const __half2 *)p);
            v[0] = f.x;
            v[1] = f.y;
        } else {
#pragma unroll
            for (int k = 0; k < DPL; k += 4) {
                const uint2 u = *(const uint2 *)(p + k);
                const float2 f0 = __half22float2(*(const __half2 *)&u.x), f1 = __half22float2(*(const __half2 *)&u.y);
                v[k] = f0.x;
                v[k + 1] = f0.y;
                v[k + 2] = f1.x;
                v[k + 3] = f1.y;
            }
        }
    } else {
        const float *p = (const float *)c + off + (size_t)lane * DPL;
#pragma unroll
        for (int k = 0; k < DPL; k += 2) {
            const float2 f = *(const float2 *)(p + k);
            v[k] = f.x;
            v[k + 1] = f.y;
        }
    }
}

/* Stores output value d of head row hi (token * n_heads + head) and, when xq is given, its int8 form as
 * cuda_launch_quantize_q8 makes it: the calling warp holds 32 consecutive values of one head. */
__device__ __forceinline__ void sp_store(float *out, int8_t *xq, float2 *xds, size_t hi, int hd, int d, float v,
                                         int lane)
{
    out[hi * hd + d] = v;
    if (xq)
        q8_quant32(v, xq + hi * hd + (d - lane), xds + (hi * hd + d) / 32, lane);
}

/* Sums each of four values over the warp, every lane ending with all four sums: a butterfly that halves
 * the values each lane carries (lane bit 4 picks positions 2-3 or 0-1, bit 3 one of the pair), three
 * plain steps, then the four sums gathered from lanes 0, 8, 16, 24 — 10 shuffles instead of 20. */
__device__ __forceinline__ void sp_reduce4(float sc[4], int lane)
{
    const bool b4 = lane & 16, b3 = lane & 8;
    float a0 = b4 ? sc[2] : sc[0], a1 = b4 ? sc[3] : sc[1];
    a0 += __shfl_xor_sync(0xffffffffu, b4 ? sc[0] : sc[2], 16);
    a1 += __shfl_xor_sync(0xffffffffu, b4 ? sc[1] : sc[3], 16);
    float v = b3 ? a1 : a0;
    v += __shfl_xor_sync(0xffffffffu, b3 ? a0 : a1, 8);
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    /* lane 8j now holds the sum of value j (j = 2 * bit 4 + bit 3) */
#pragma unroll
    for (int u = 0; u < 4; u++)
        sc[u] = __shfl_sync(0xffffffffu, v, 8 * u);
}

/* Splits in use for a token that attends to n_pos positions, and the positions each takes. */
__device__ __forceinline__ int sp_share(int n_pos, int min_pos, int *active)
{
    int len = (n_pos + SPLIT_N - 1) / SPLIT_N;
    len = len < min_pos ? min_pos : len;
    *active = (n_pos + len - 1) / len;
    return len;
}

/* MAX_G: query heads a KV head at most (4 or 8): the per-head registers are sized by it, and at 4 two
 * blocks fit an SM, so the usual grid of a Llama 8B step runs in one wave. FIXED: exactly MAX_G heads, so
 * the head loops have no exit and the heads' dependent chains (scores, warp sums, softmax) interleave. */
template <int F16, int DPL, int W, int MAX_G, bool FIXED>
__global__ void __launch_bounds__(W * 32, 2)
    k_att_split(const float *__restrict__ q, const void *__restrict__ kc, const void *__restrict__ vc,
                float *__restrict__ out, int8_t *__restrict__ xq, float2 *__restrict__ xds, float *__restrict__ part_o,
                float2 *__restrict__ part_ml, unsigned *__restrict__ counters, const int32_t *__restrict__ pos,
                int n_heads, int n_kv_heads, float scale, int min_pos)
{
    constexpr int HD = DPL * 32;
    __shared__ float sh_acc[W][MAX_G][HD];
    __shared__ float sh_ml[W][MAX_G][2];
    __shared__ unsigned sh_last;
    __shared__ float sh_f[MAX_G][SPLIT_N], sh_inv[MAX_G];
    const int split = blockIdx.x, kvh = blockIdx.y, i = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    pdl_trigger();
    /* The positions come from the batch copy made before the step's first kernel, and every cache row
     * but the newest was written by earlier steps: ask for this share's rows while the kernel before
     * (which stores the newest) finishes. */
    const int n_pos = pos[i] + 1;
    int active;
    const int len = sp_share(n_pos, min_pos, &active);
    const int p0 = split * len, p1 = min(p0 + len, n_pos);
    const int G = FIXED ? MAX_G : n_heads / n_kv_heads, h0 = kvh * G, kv_dim = n_kv_heads * HD;
    {
        constexpr int ROW_BYTES = HD * (F16 ? 2 : 4), LINES = ROW_BYTES / 128;
        const int old_end = min(p1, n_pos - 1);
        for (int t = threadIdx.x; t < (old_end - p0) * 2 * LINES; t += W * 32) {
            const int p = p0 + t / (2 * LINES), part = t % (2 * LINES);
            const char *base_row = (const char *)(part < LINES ? kc : vc) +
                                   ((size_t)p * kv_dim + (size_t)kvh * HD) * (F16 ? 2 : 4);
            asm volatile("prefetch.global.L2 [%0];" ::"l"(base_row + (part % LINES) * 128));
        }
    }
    if (split >= active)
        return;
    pdl_wait();
    float qv[MAX_G][DPL], acc[MAX_G][DPL], m[MAX_G], l[MAX_G];
#pragma unroll
    for (int g = 0; g < MAX_G; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
        const float *qr = q + ((size_t)i * n_heads + h0 + g) * HD + lane * DPL;
        float qq[DPL];
        if (g < G) {
            if (DPL == 4) {
                const float4 t = *(const float4 *)qr;
                qq[0] = t.x, qq[1] = t.y, qq[2] = t.z, qq[3] = t.w;
            } else {
#pragma unroll
                for (int d = 0; d < DPL; d += 2) {
                    const float2 t = *(const float2 *)(qr + d);
                    qq[d] = t.x, qq[d + 1] = t.y;
                }
            }
        }
#pragma unroll
        for (int d = 0; d < DPL; d++) {
            qv[g][d] = g < G ? qq[d] * scale : 0.0f;
            acc[g][d] = 0.0f;
        }
    }
    const size_t base = (size_t)kvh * HD;
    for (int pb = p0 + warp * SPLIT_UNROLL; pb < p1; pb += W * SPLIT_UNROLL) {
        float kr[SPLIT_UNROLL][DPL], vr[SPLIT_UNROLL][DPL];
#pragma unroll
        for (int u = 0; u < SPLIT_UNROLL; u++) {
            const int p = pb + u < p1 ? pb + u : pb; /* a repeated row is loaded but not counted */
            sp_row<F16, DPL>(kc, (size_t)p * kv_dim + base, lane, kr[u]);
            sp_row<F16, DPL>(vc, (size_t)p * kv_dim + base, lane, vr[u]);
        }
#pragma unroll
        for (int g = 0; g < MAX_G; g++) {
            if (g >= G)
                break;
            float sc[SPLIT_UNROLL];
#pragma unroll
            for (int u = 0; u < SPLIT_UNROLL; u++) {
                float t = 0.0f;
#pragma unroll
                for (int d = 0; d < DPL; d++)
                    t += qv[g][d] * kr[u][d];
                sc[u] = t;
            }
            sp_reduce4(sc, lane);
            float mx = m[g];
#pragma unroll
            for (int u = 0; u < SPLIT_UNROLL; u++)
                if (pb + u < p1)
                    mx = fmaxf(mx, sc[u]);
            const float corr = expf(m[g] - mx); /* 0 on the first positions (m = -inf) */
            l[g] *= corr;
#pragma unroll
            for (int d = 0; d < DPL; d++)
                acc[g][d] *= corr;
#pragma unroll
            for (int u = 0; u < SPLIT_UNROLL; u++) {
                if (pb + u < p1) {
                    const float e = expf(sc[u] - mx);
                    l[g] += e;
#pragma unroll
                    for (int d = 0; d < DPL; d++)
                        acc[g][d] += e * vr[u][d];
                }
            }
            m[g] = mx;
        }
    }
    /* The warps' results meet in shared memory. */
#pragma unroll
    for (int g = 0; g < MAX_G; g++) {
        if (g >= G)
            break;
#pragma unroll
        for (int d = 0; d < DPL; d++)
            sh_acc[warp][g][lane * DPL + d] = acc[g][d];
        if (lane == 0) {
            sh_ml[warp][g][0] = m[g];
            sh_ml[warp][g][1] = l[g];
        }
    }
    __syncthreads();
    const bool single = active == 1;
    for (int t = threadIdx.x; t < G * HD; t += W * 32) {
        const int g = t / HD, d = t - g * HD;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < W; w++)
            M = fmaxf(M, sh_ml[w][g][0]);
        float L = 0.0f, a = 0.0f;
#pragma unroll
        for (int w = 0; w < W; w++) {
            const float f = sh_ml[w][g][0] == -INFINITY ? 0.0f : expf(sh_ml[w][g][0] - M);
            L += f * sh_ml[w][g][1];
            a += f * sh_acc[w][g][d];
        }
        const size_t hi = (size_t)i * n_heads + h0 + g;
        if (single) {
            sp_store(out, xq, xds, hi, HD, d, a / L, lane);
        } else {
            part_o[(hi * SPLIT_N + split) * HD + d] = a;
            if (d == 0)
                part_ml[hi * SPLIT_N + split] = make_float2(M, L);
        }
    }
    if (single)
        return;
    /* The last split of this (token, kv head) to finish merges the partial results (the block's writes
     * are ordered before its count by the barrier and thread 0's fence). */
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        unsigned *cnt = counters + (size_t)i * n_kv_heads + kvh;
        const unsigned done = atomicAdd(cnt, 1u);
        sh_last = done == (unsigned)active - 1;
        if (sh_last)
            *cnt = 0; /* ready for the next launch */
    }
    __syncthreads();
    if (!sh_last)
        return;
    __threadfence();
    /* Per head: the splits' weights exp(m_s - M) (a lane a split) and 1 / sum, then a thread per output
     * value sums the splits' partial outputs (loads that bypass L1: other blocks wrote them). */
    for (int g = warp; g < G; g += W) {
        const size_t hi = (size_t)i * n_heads + h0 + g;
        const float2 ml = lane < active ? __ldcg(part_ml + hi * SPLIT_N + lane) : make_float2(-INFINITY, 0.0f);
        float M = ml.x;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
        const float f = lane < active ? expf(ml.x - M) : 0.0f;
        float L = f * ml.y;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            L += __shfl_xor_sync(0xffffffffu, L, o);
        sh_f[g][lane] = f;
        if (lane == 0)
            sh_inv[g] = 1.0f / L;
    }
    __syncthreads();
    for (int t = threadIdx.x; t < G * HD; t += W * 32) {
        const int g = t / HD, d = t - g * HD;
        const size_t hi = (size_t)i * n_heads + h0 + g;
        const float *po = part_o + hi * SPLIT_N * HD + d;
        float a = 0.0f; /* all the shares' loads in flight at once */
#pragma unroll
        for (int sp = 0; sp < SPLIT_N; sp++)
            if (sp < active)
                a += sh_f[g][sp] * __ldcg(po + (size_t)sp * HD);
        sp_store(out, xq, xds, hi, HD, d, a * sh_inv[g], lane);
    }
}

template <int F16, int W, int MAX_G, bool FIXED>
static int att_split_launch(int head_dim, dim3 grid, const float *q, const void *kc, const void *vc, float *out,
                            int8_t *xq, float2 *xds, float *part_o, float2 *part_ml, unsigned *counters,
                            const int32_t *pos, int n_heads, int n_kv_heads, float scale, int min_pos, cudaStream_t s)
{
    switch (head_dim) {
    case 64:
        pdl_launch(k_att_split<F16, 2, W, MAX_G, FIXED>, grid, dim3(W * 32), 0, s, q, kc, vc, out, xq, xds, part_o, part_ml,
                   counters, pos, n_heads, n_kv_heads, scale, min_pos);
        return 0;
    case 128:
        pdl_launch(k_att_split<F16, 4, W, MAX_G, FIXED>, grid, dim3(W * 32), 0, s, q, kc, vc, out, xq, xds, part_o, part_ml,
                   counters, pos, n_heads, n_kv_heads, scale, min_pos);
        return 0;
    default:
        return -1;
    }
}

template <int F16, int W>
static int att_split_group(int head_dim, dim3 grid, const float *q, const void *kc, const void *vc, float *out,
                           int8_t *xq, float2 *xds, float *part_o, float2 *part_ml, unsigned *counters,
                           const int32_t *pos, int n_heads, int n_kv_heads, float scale, int min_pos, cudaStream_t s)
{
    if (n_heads / n_kv_heads == 4)
        return att_split_launch<F16, W, 4, true>(head_dim, grid, q, kc, vc, out, xq, xds, part_o, part_ml, counters,
                                                 pos, n_heads, n_kv_heads, scale, min_pos, s);
    if (n_heads / n_kv_heads < 4)
        return att_split_launch<F16, W, 4, false>(head_dim, grid, q, kc, vc, out, xq, xds, part_o, part_ml, counters,
                                                  pos, n_heads, n_kv_heads, scale, min_pos, s);
    return att_split_launch<F16, W, SPLIT_MAX_G, false>(head_dim, grid, q, kc, vc, out, xq, xds, part_o, part_ml,
                                                        counters, pos, n_heads, n_kv_heads, scale, min_pos, s);
}

int cuda_launch_attention_split(const float *q, const void *kc, const void *vc, int f16, float *out, void *xq,
                                void *xds, const int32_t *pos, int n, int n_heads, int n_kv_heads, int head_dim,
                                float scale, void *scratch, cudaStream_t s)
{
    if (n_kv_heads <= 0 || n_kv_heads > SPLIT_MAX_KV || n < 1 || n > CUDA_GEMV_MAX_BATCH || n_heads % n_kv_heads ||
        n_heads / n_kv_heads > SPLIT_MAX_G || (head_dim != 64 && head_dim != 128))
        return -1;
    unsigned *counters = (unsigned *)scratch;
    float *part_o = (float *)scratch + SPLIT_COUNTERS;
    float2 *part_ml = (float2 *)(part_o + (size_t)n * n_heads * SPLIT_N * head_dim);
    const dim3 grid((unsigned)SPLIT_N, (unsigned)n_kv_heads, (unsigned)n);
    int8_t *q8 = (int8_t *)xq;
    float2 *d8 = (float2 *)xds;
    static int min_pos, warps;
    if (!min_pos) {
        const char *env = getenv("HEARTH_CUDA_ATT_SPLIT_MIN");
        min_pos = env && atoi(env) > 0 ? atoi(env) : SPLIT_MIN_POS;
        env = getenv("HEARTH_CUDA_ATT_WARPS");
        warps = env && atoi(env) == 4 ? 4 : SPLIT_WARPS;
    }
    if (f16)
        return warps == 4 ? att_split_group<1, 4>(head_dim, grid, q, kc, vc, out, q8, d8, part_o, part_ml, counters, pos,
                                                  n_heads, n_kv_heads, scale, min_pos, s)
                          : att_split_group<1, SPLIT_WARPS>(head_dim, grid, q, kc, vc, out, q8, d8, part_o, part_ml,
                                                            counters, pos, n_heads, n_kv_heads, scale, min_pos, s);
    return warps == 4 ? att_split_group<0, 4>(head_dim, grid, q, kc, vc, out, q8, d8, part_o, part_ml, counters, pos,
                                              n_heads, n_kv_heads, scale, min_pos, s)
                      : att_split_group<0, SPLIT_WARPS>(head_dim, grid, q, kc, vc, out, q8, d8, part_o, part_ml,
                                                        counters, pos, n_heads, n_kv_heads, scale, min_pos, s);
}
