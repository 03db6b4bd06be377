/* cuda_argmax.cu — the greedy pick on the GPU: the index of the largest logit, by argmax_f32's rule (first
 * on ties, never a NaN), so a greedy decode step copies one integer to the host instead of the whole
 * vocabulary's logits. A fixed grid of blocks each reduces a stride of the values to one 64-bit key
 * (ordered float bits above the complemented index, so the larger key is the larger value and, among
 * equal values, the lower index); the last block to finish reduces the blocks' keys. */
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_launch.cuh"

#define AM_BLOCKS 128
#define AM_THREADS 512

/* 0 (below every real key) for a NaN; -0 counts as +0, as it compares equal on the host. */
__device__ __forceinline__ unsigned long long am_key(float v, unsigned i)
{
    if (v != v)
        return 0ull;
    unsigned b = v == 0.0f ? 0u : __float_as_uint(v);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((unsigned long long)b << 32) | (unsigned long long)(0xffffffffu - i);
}

__device__ __forceinline__ unsigned long long am_block_max(unsigned long long k, unsigned long long *sh)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xffffffffu, k, o);
        k = other > k ? other : k;
    }
    if (lane == 0)
        sh[warp] = k;
    __syncthreads();
    if (warp == 0) {
        k = lane < AM_THREADS / 32 ? sh[lane] : 0ull;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long other = __shfl_xor_sync(0xffffffffu, k, o);
            k = other > k ? other : k;
        }
    }
    return k; /* valid in thread 0 */
}

__global__ void __launch_bounds__(AM_THREADS)
    k_argmax(const float *__restrict__ x, int n, unsigned long long *__restrict__ keys, unsigned *__restrict__ counter,
             int32_t *__restrict__ best)
{
    __shared__ unsigned long long sh[AM_THREADS / 32];
    __shared__ bool last;
    pdl_trigger();
    pdl_wait();
    unsigned long long k = 0ull;
    for (int i = blockIdx.x * AM_THREADS + threadIdx.x; i < n; i += AM_BLOCKS * AM_THREADS) {
        const unsigned long long ki = am_key(x[i], (unsigned)i);
        k = ki > k ? ki : k;
    }
    k = am_block_max(k, sh);
    if (threadIdx.x == 0) {
        keys[blockIdx.x] = k;
        __threadfence();
        const unsigned done = atomicAdd(counter, 1u);
        last = done == AM_BLOCKS - 1;
        if (last)
            *counter = 0; /* ready for the next launch */
    }
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    __syncthreads();
    k = threadIdx.x < AM_BLOCKS ? __ldcg(keys + threadIdx.x) : 0ull;
    k = am_block_max(k, sh);
    if (threadIdx.x == 0)
        *best = k ? (int32_t)(0xffffffffu - (unsigned)(k & 0xffffffffu)) : 0;
}

size_t cuda_argmax_scratch_bytes(void) { return AM_BLOCKS * sizeof(unsigned long long) + 2 * sizeof(unsigned); }

void cuda_launch_argmax(const float *x, int n, void *scratch, int32_t *best, cudaStream_t s)
{
    unsigned long long *keys = (unsigned long long *)scratch;
    unsigned *counter = (unsigned *)(keys + AM_BLOCKS);
    pdl_launch(k_argmax, dim3(AM_BLOCKS), dim3(AM_THREADS), 0, s, x, n, keys, counter, best);
}

/* A greedy pick fed back as the next step's token, one position on (a step started ahead). */
__global__ void k_next_token(const int32_t *__restrict__ best, int32_t *__restrict__ tokens, int32_t *__restrict__ pos)
{
    tokens[0] = *best;
    pos[0] += 1;
}

void cuda_launch_next_token(const int32_t *best, int32_t *tokens, int32_t *pos, cudaStream_t s)
{
    k_next_token<<<1, 1, 0, s>>>(best, tokens, pos);
}
