/* kernels_avx512.c — the x86 kernels (kernels_x86.h) built with AVX-512 VNNI for the byte products. */
#define X86_NAME(x) avx512_##x
#include "backend/cpu/kernels_x86.h"

const struct cpu_kernel *cpu_kernels_avx512(uint32_t weight_type)
{
    if (weight_type >= DT_MAX || !avx512_kernels[weight_type].vec_dot)
        return NULL;
    return &avx512_kernels[weight_type];
}

const struct cpu_attn_kernels *cpu_attn_kernels_avx512(void) { return &avx512_attn_kernels; }

const struct cpu_vec_kernels *cpu_vec_kernels_avx512(void) { return &avx512_vec_kernels; }
