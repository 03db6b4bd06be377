/* cuda_gemv_half.cu — decode-sized matrix-vector products for F16 and BF16 weights against float32
 * activations (the products of unquantised models). Bound by reading the weights once, like the int8
 * products (cuda_gemv_q8.cu): a block works on four rows so that each activation load serves all four,
 * a lane takes eight values of a row (one 16-byte load) at a time, and each lane's first groups of weights
 * (all of them for 4096-wide rows) are loaded before the kernel waits for the one before it. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_gemv_set.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_reduce.cuh"

extern "C" {
#include "tensor/tensor.h"
}

#define GH_ROWS 4
#define GH_WARPS 8

/* Eight weights of one row as floats: halves, or bfloat16 (the high half of a float). */
template <bool BF16> __device__ __forceinline__ void gh_unpack(const uint4 &q, float (&w)[8])
{
    const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        if (BF16) {
            w[2 * k] = __uint_as_float(u[k] << 16);
            w[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
        } else {
            const float2 f = __half22float2(*(const __half2 *)&u[k]);
            w[2 * k] = f.x;
            w[2 * k + 1] = f.y;
        }
    }
}

/* The products of one 8-value group g of the block's rows (q) with NB tokens' activations, added to acc. */
template <int NB>
__device__ __forceinline__ void gh_fma(const float (&w)[GH_ROWS][8], const float *__restrict__ x, int cols, int g,
                                       float (&acc)[GH_ROWS][NB])
{
#pragma unroll
    for (int b = 0; b < NB; b++) {
        const float4 *xv = (const float4 *)(x + (size_t)b * cols + (size_t)g * 8);
        const float4 a = __ldg(xv), c = __ldg(xv + 1);
#pragma unroll
        for (int k = 0; k < GH_ROWS; k++)
            acc[k][b] += w[k][0] * a.x + w[k][1] * a.y + w[k][2] * a.z + w[k][3] * a.w + w[k][4] * c.x +
                         w[k][5] * c.y + w[k][6] * c.z + w[k][7] * c.w;
    }
}

/* Block b: rows GH_ROWS * (b - the matrix's first block).. of its matrix for NB tokens; lane steps over the
 * row's 8-value groups g = warp*32 + lane, + GH_WARPS*32, ...; its first PRE groups of every row are loaded
 * before the wait (for 4096-wide rows, two groups: all of the lane's weights). */
template <bool BF16, int NB, int PRE>
__global__ void __launch_bounds__(GH_WARPS * 32)
    k_gemv_half(const gemv_blocks set, size_t row_bytes, int cols, const float *__restrict__ x)
{
    constexpr int STEP = GH_WARPS * 32;
    __shared__ float part[GH_WARPS][GH_ROWS * NB];
    const int warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    /* The block's matrix and rows, selected inline as in k_gemv_q8. */
    const int bx = (int)blockIdx.x;
    const int m = bx >= set.blk_end[0] ? (bx >= set.blk_end[1] ? 2 : 1) : 0;
    const int b0 = m == 0 ? 0 : m == 1 ? set.blk_end[0] : set.blk_end[1];
    const int rows = m == 0 ? set.rows[0] : m == 1 ? set.rows[1] : set.rows[2];
    const uint8_t *W = m == 0 ? set.W[0] : m == 1 ? set.W[1] : set.W[2];
    const float *bias = m == 0 ? set.bias[0] : m == 1 ? set.bias[1] : set.bias[2];
    float *y = m == 0 ? set.y[0] : m == 1 ? set.y[1] : set.y[2];
    const int r0 = (bx - b0) * GH_ROWS, ng = cols / 8;
    const uint4 *rp[GH_ROWS];
#pragma unroll
    for (int k = 0; k < GH_ROWS; k++)
        rp[k] = (const uint4 *)(W + (size_t)(r0 + k < rows ? r0 + k : r0) * row_bytes);
    const int g0 = warp * 32 + lane;
    /* The weights are not the kernel before's output: they are loaded meanwhile. */
    uint4 first[PRE][GH_ROWS];
#pragma unroll
    for (int p = 0; p < PRE; p++)
        if (g0 + p * STEP < ng)
#pragma unroll
            for (int k = 0; k < GH_ROWS; k++)
                first[p][k] = __ldg(rp[k] + g0 + p * STEP);
    pdl_trigger();
    pdl_wait();
    float acc[GH_ROWS][NB];
#pragma unroll
    for (int k = 0; k < GH_ROWS; k++)
#pragma unroll
        for (int b = 0; b < NB; b++)
            acc[k][b] = 0.0f;
    float w[GH_ROWS][8];
#pragma unroll
    for (int p = 0; p < PRE; p++)
        if (g0 + p * STEP < ng) {
#pragma unroll
            for (int k = 0; k < GH_ROWS; k++)
                gh_unpack<BF16>(first[p][k], w[k]);
            gh_fma<NB>(w, x, cols, g0 + p * STEP, acc);
        }
#pragma unroll 2
    for (int g = g0 + PRE * STEP; g < ng; g += STEP) {
        uint4 q[GH_ROWS];
#pragma unroll
        for (int k = 0; k < GH_ROWS; k++)
            q[k] = __ldg(rp[k] + g);
#pragma unroll
        for (int k = 0; k < GH_ROWS; k++)
            gh_unpack<BF16>(q[k], w[k]);
        gh_fma<NB>(w, x, cols, g, acc);
    }
    gemv_warp_sums<GH_ROWS, NB, GH_WARPS>(acc, part);
    if (threadIdx.x >= GH_ROWS * NB)
        return;
    const int k = (int)threadIdx.x / NB, b = (int)threadIdx.x - k * NB;
    if (r0 + k >= rows)
        return;
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < GH_WARPS; w++)
        v += part[w][threadIdx.x];
    y[(size_t)b * rows + r0 + k] = v + (bias ? bias[r0 + k] : 0.0f);
}

template <bool BF16, int PRE>
static void launch(const gemv_blocks &set, int nblk, size_t row_bytes, int cols, const float *x, int n,
                   cudaStream_t s)
{
    const dim3 grid((unsigned)nblk), block(GH_WARPS * 32);
    for (int done = 0; done < n;) {
        const int rem = n - done;
        const float *xs = x + (size_t)done * cols;
        const gemv_blocks cur = gemv_blocks_from(set, done);
        if (rem >= 8) {
            pdl_launch(k_gemv_half<BF16, 8, PRE>, grid, block, 0, s, cur, row_bytes, cols, xs);
            done += 8;
        } else if (rem >= 4) {
            pdl_launch(k_gemv_half<BF16, 4, PRE>, grid, block, 0, s, cur, row_bytes, cols, xs);
            done += 4;
        } else if (rem >= 2) {
            pdl_launch(k_gemv_half<BF16, 2, PRE>, grid, block, 0, s, cur, row_bytes, cols, xs);
            done += 2;
        } else {
            pdl_launch(k_gemv_half<BF16, 1, PRE>, grid, block, 0, s, cur, row_bytes, cols, xs);
            done += 1;
        }
    }
}

/* Groups a lane loads before the wait: all of a 4096-wide row's (two), else four. H100, 8B F16 decode
 * (hearth bench --backend gpu --repeat 3, previous build alternating): 154 -> 171 tok/s; one group
 * preloaded as before, in this kernel: 170. */
template <bool BF16>
static void launch_pre(const gemv_blocks &set, int nblk, size_t row_bytes, int cols, const float *x, int n,
                       cudaStream_t s)
{
    const int per_lane = (cols / 8 + GH_WARPS * 32 - 1) / (GH_WARPS * 32);
    if (per_lane <= 2)
        launch<BF16, 2>(set, nblk, row_bytes, cols, x, n, s);
    else
        launch<BF16, 4>(set, nblk, row_bytes, cols, x, n, s);
}

int cuda_launch_gemv_half_multi(uint32_t type, const struct cuda_gemv_set *in, size_t row_bytes, int cols,
                                const float *x, int n, cudaStream_t s)
{
    if ((type != DT_F16 && type != DT_BF16) || cols % 8 || row_bytes % 16 || in->nm < 1 || in->nm > CUDA_GEMV_MULTI)
        return -1;
    gemv_blocks set;
    const int nblk = gemv_blocks_make(in, GH_ROWS, &set);
    if (type == DT_BF16)
        launch_pre<true>(set, nblk, row_bytes, cols, x, n, s);
    else
        launch_pre<false>(set, nblk, row_bytes, cols, x, n, s);
    return 0;
}

int cuda_launch_gemv_half(uint32_t type, const void *W, size_t row_bytes, int rows, int cols, const float *x,
                          const float *bias, float *y, int n, cudaStream_t s)
{
    const cuda_gemv_set set = gemv_set_one(W, bias, y, rows);
    return cuda_launch_gemv_half_multi(type, &set, row_bytes, cols, x, n, s);
}
