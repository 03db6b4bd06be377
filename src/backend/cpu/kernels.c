/* kernels.c — picks, once, the fastest kernel for each weight format on the running CPU. */
#include "backend/cpu/kernels.h"

#include "tensor/tensor.h"

enum cpu_isa cpu_isa_detect(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
            cached = CPU_ISA_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                 __builtin_cpu_supports("f16c"))
            cached = CPU_ISA_AVX2;
        else
            cached = CPU_ISA_SCALAR;
    }
    return (enum cpu_isa)cached;
}

const struct cpu_kernel *cpu_kernel_for(uint32_t weight_type)
{
    const struct cpu_kernel *k = NULL;
    switch (cpu_isa_detect()) {
    case CPU_ISA_AVX512:
        k = cpu_kernels_avx512(weight_type);
        break;
    case CPU_ISA_AVX2:
        k = cpu_kernels_avx2(weight_type);
        break;
    default:
        break;
    }
    return k ? k : cpu_kernel_scalar(weight_type);
}

const struct cpu_attn_kernels *cpu_attn_kernels_for(void)
{
    switch (cpu_isa_detect()) {
    case CPU_ISA_AVX512:
        return cpu_attn_kernels_avx512();
    case CPU_ISA_AVX2:
        return cpu_attn_kernels_avx2();
    default:
        return &cpu_attn_kernels_scalar;
    }
}

const struct cpu_vec_kernels *cpu_vec_kernels_for(void)
{
    switch (cpu_isa_detect()) {
    case CPU_ISA_AVX512:
        return cpu_vec_kernels_avx512();
    case CPU_ISA_AVX2:
        return cpu_vec_kernels_avx2();
    default:
        return &cpu_vec_kernels_scalar;
    }
}

size_t cpu_act_row_bytes(const struct cpu_kernel *k, int64_t n)
{
    const size_t base = dtype_row_bytes(k->act_type, n);
    if (!k->act_extra)
        return base;
    return (((base + 63) & ~(size_t)63) + (size_t)(n / 32) * k->act_extra + 63) & ~(size_t)63;
}
