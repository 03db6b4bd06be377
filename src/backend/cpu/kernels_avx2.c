/* kernels_avx2.c — the x86 kernels (kernels_x86.h) built for AVX2 + FMA + F16C. */
#define X86_NAME(x) avx2_##x
#include "backend/cpu/kernels_x86.h"

const struct cpu_kernel *cpu_kernels_avx2(uint32_t weight_type)
{
    if (weight_type >= DT_MAX || !avx2_kernels[weight_type].vec_dot)
        return NULL;
    return &avx2_kernels[weight_type];
}

const struct cpu_attn_kernels *cpu_attn_kernels_avx2(void) { return &avx2_attn_kernels; }

const struct cpu_vec_kernels *cpu_vec_kernels_avx2(void) { return &avx2_vec_kernels; }
