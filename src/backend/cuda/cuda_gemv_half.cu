/* cuda_gemv_half.cu — decode-sized matrix-vector products for F16 and BF16 weights against float32
 * activations (the products of unquantised models). Bound by reading the weights once, like the int8
 * products (cuda_gemv_q8.cu): a block works on four rows so that each activation load serves all four,
 * a lane takes eight values of a row (one 16-byte load) at a time with its steps over the row unrolled,
 * and each lane's first weights are loaded before the kernel waits for the one before it. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"
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

/* Block b: rows b*GH_ROWS.. for NB tokens; lane steps over the row's 8-value groups g = warp*32 + lane,
 * + GH_WARPS*32, ... */
template <bool BF16, int NB>
__global__ void __launch_bounds__(GH_WARPS * 32)
    k_gemv_half(const uint8_t *__restrict__ W, size_t row_bytes, int rows, int cols, const float *__restrict__ x,
                const float *__restrict__ bias, float *__restrict__ y)
{
    __shared__ float part[GH_WARPS][GH_ROWS * NB];
    const int warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    const int r0 = (int)blockIdx.x * GH_ROWS, ng = cols / 8;
    const uint4 *rp[GH_ROWS];
#pragma unroll
    for (int k = 0; k < GH_ROWS; k++)
        rp[k] = (const uint4 *)(W + (size_t)(r0 + k < rows ? r0 + k : r0) * row_bytes);
    const int g0 = warp * 32 + lane;
    /* The weights are not the kernel before's output: the first group of each row is loaded meanwhile. */
    uint4 first[GH_ROWS];
    if (g0 < ng)
#pragma unroll
        for (int k = 0; k < GH_ROWS; k++)
            first[k] = __ldg(rp[k] + g0);
    pdl_trigger();
    pdl_wait();
    float acc[GH_ROWS][NB];
#pragma unroll
    for (int k = 0; k < GH_ROWS; k++)
#pragma unroll
        for (int b = 0; b < NB; b++)
            acc[k][b] = 0.0f;
#pragma unroll 4
    for (int g = g0; g < ng; g += GH_WARPS * 32) {
        uint4 q[GH_ROWS];
#pragma unroll
        for (int k = 0; k < GH_ROWS; k++)
            q[k] = g == g0 ? first[k] : __ldg(rp[k] + g);
        float w[GH_ROWS][8];
#pragma unroll
        for (int k = 0; k < GH_ROWS; k++)
            gh_unpack<BF16>(q[k], w[k]);
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

template <bool BF16>
static void launch(const uint8_t *W, size_t row_bytes, int rows, int cols, const float *x, const float *bias, float *y,
                   int n, cudaStream_t s)
{
    const dim3 grid((unsigned)((rows + GH_ROWS - 1) / GH_ROWS)), block(GH_WARPS * 32);
    for (int done = 0; done < n;) {
        const int rem = n - done;
        const float *xs = x + (size_t)done * cols;
        float *ys = y + (size_t)done * rows;
        if (rem >= 8) {
            pdl_launch(k_gemv_half<BF16, 8>, grid, block, 0, s, W, row_bytes, rows, cols, xs, bias, ys);
            done += 8;
        } else if (rem >= 4) {
            pdl_launch(k_gemv_half<BF16, 4>, grid, block, 0, s, W, row_bytes, rows, cols, xs, bias, ys);
            done += 4;
        } else if (rem >= 2) {
            pdl_launch(k_gemv_half<BF16, 2>, grid, block, 0, s, W, row_bytes, rows, cols, xs, bias, ys);
            done += 2;
        } else {
            pdl_launch(k_gemv_half<BF16, 1>, grid, block, 0, s, W, row_bytes, rows, cols, xs, bias, ys);
            done += 1;
        }
    }
}

int cuda_launch_gemv_half(uint32_t type, const void *W, size_t row_bytes, int rows, int cols, const float *x,
                          const float *bias, float *y, int n, cudaStream_t s)
{
    if ((type != DT_F16 && type != DT_BF16) || cols % 8 || row_bytes % 16)
        return -1;
    if (type == DT_BF16)
        launch<true>((const uint8_t *)W, row_bytes, rows, cols, x, bias, y, n, s);
    else
        launch<false>((const uint8_t *)W, row_bytes, rows, cols, x, bias, y, n, s);
    return 0;
}
