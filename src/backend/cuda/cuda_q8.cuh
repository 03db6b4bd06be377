/* cuda_q8.cuh — the int8 activation format of the decode products (cuda_launch_quantize_q8): a warp turns
 * 32 float values into int8 q = round(x / d), d = max|x| / 127, and the pair (d, d * sum(q)). Shared by
 * the kernels that produce those activations as a side output (fused norm, SwiGLU, attention). */
#ifndef HEARTH_BACKEND_CUDA_Q8_CUH
#define HEARTH_BACKEND_CUDA_Q8_CUH

#include <stdint.h>

/* v: this lane's value of the 32-value block; all 32 lanes of the warp take part. */
__device__ __forceinline__ void q8_quant32(float v, int8_t *xq, float2 *xds, int lane)
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

#endif
