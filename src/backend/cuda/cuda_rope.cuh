/* cuda_rope.cuh — the rotary-embedding angle shared by the RoPE kernels (cuda_kernels.cu) and the fused
 * RoPE + KV-store kernel (cuda_fused.cu), computed exactly as the CPU backend does so both agree. */
#ifndef HEARTH_BACKEND_CUDA_ROPE_CUH
#define HEARTH_BACKEND_CUDA_ROPE_CUH

#include <stdint.h>

/* cos and sin of pair k's angle at position p: powf rounded to float (computed in double, which rounds
 * the same way), then 1/x, the optional frequency divisor, p * freq_scale * inv_freq; cos/sin in double. */
__device__ __forceinline__ void rope_cos_sin(int k, int n_rot, int32_t p, float freq_base, float freq_scale,
                                             const float *__restrict__ factors, float *cs, float *sn)
{
    const float pw = (float)pow((double)freq_base, (double)((float)(2 * k) / (float)n_rot));
    float inv_freq = 1.0f / pw;
    if (factors)
        inv_freq /= factors[k];
    const float theta = (float)p * freq_scale * inv_freq;
    double sd, cd;
    sincos((double)theta, &sd, &cd);
    *cs = (float)cd;
    *sn = (float)sd;
}

#endif
