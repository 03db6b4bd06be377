/* cuda_reduce.cuh — the end of a decode product's dot products, shared by the int8 (cuda_gemv_q8.cu) and
 * half (cuda_gemv_half.cu) kernels: each warp's per-lane partial sums of ROWS rows for NB tokens are
 * summed over the warp and left in part[warp][row * NB + token] for the block to add up. */
#ifndef HEARTH_BACKEND_CUDA_REDUCE_CUH
#define HEARTH_BACKEND_CUDA_REDUCE_CUH

template <int ROWS, int NB, int WARPS>
__device__ __forceinline__ void gemv_warp_sums(const float (&acc)[ROWS][NB], float (&part)[WARPS][ROWS * NB])
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int k = 0; k < ROWS; k++)
#pragma unroll
        for (int b = 0; b < NB; b++) {
            float v = acc[k][b];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0)
                part[warp][k * NB + b] = v;
        }
    __syncthreads();
}

#endif
