/* kernels_scalar.c — portable reference kernels: float dot products and the generic path that
 * dequantizes each weight block and multiplies it in float32. */
#include "backend/cpu/kernels.h"

#include "tensor/tensor.h"

float cpu_dot_f32_scalar(int64_t n, const float *a, const float *b)
{
    /* Eight partial sums keep the rounding close to a SIMD kernel's and let the compiler vectorise. */
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; i++)
        s += a[i] * b[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

float cpu_vec_dot_generic(uint32_t weight_type, int64_t n, const void *w, const float *a)
{
    const struct dtype_info *d = dtype_get(weight_type);
    float buf[256];
    const int64_t bs = d->block_size;
    const int64_t chunk = bs >= 256 ? bs : (256 / bs) * bs; /* whole blocks per chunk */
    const uint8_t *wb = w;
    float s = 0;
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t m = n - i < chunk ? n - i : chunk;
        dtype_dequantize(weight_type, wb + (size_t)(i / bs) * d->type_size, buf, m, NULL);
        s += cpu_dot_f32_scalar(m, buf, a + i);
    }
    return s;
}

static float dot_f32(int64_t n, const void *w, const void *a) { return cpu_dot_f32_scalar(n, w, a); }

static float dot_f16(int64_t n, const void *w, const void *a)
{
    return cpu_vec_dot_generic(DT_F16, n, w, a);
}
static float dot_bf16(int64_t n, const void *w, const void *a)
{
    return cpu_vec_dot_generic(DT_BF16, n, w, a);
}

#define GENERIC_DOT(T)                                                                             \
    static float dot_generic_##T(int64_t n, const void *w, const void *a)                         \
    {                                                                                              \
        return cpu_vec_dot_generic(DT_##T, n, w, a);                                               \
    }
GENERIC_DOT(Q4_0)
GENERIC_DOT(Q4_1)
GENERIC_DOT(Q5_0)
GENERIC_DOT(Q5_1)
GENERIC_DOT(Q8_0)
GENERIC_DOT(Q2_K)
GENERIC_DOT(Q3_K)
GENERIC_DOT(Q4_K)
GENERIC_DOT(Q5_K)
GENERIC_DOT(Q6_K)

static const struct cpu_kernel scalar_kernels[DT_MAX] = {
    [DT_F32] = {DT_F32, NULL, dot_f32},
    [DT_F16] = {DT_F32, NULL, dot_f16},
    [DT_BF16] = {DT_F32, NULL, dot_bf16},
    [DT_Q4_0] = {DT_F32, NULL, dot_generic_Q4_0},
    [DT_Q4_1] = {DT_F32, NULL, dot_generic_Q4_1},
    [DT_Q5_0] = {DT_F32, NULL, dot_generic_Q5_0},
    [DT_Q5_1] = {DT_F32, NULL, dot_generic_Q5_1},
    [DT_Q8_0] = {DT_F32, NULL, dot_generic_Q8_0},
    [DT_Q2_K] = {DT_F32, NULL, dot_generic_Q2_K},
    [DT_Q3_K] = {DT_F32, NULL, dot_generic_Q3_K},
    [DT_Q4_K] = {DT_F32, NULL, dot_generic_Q4_K},
    [DT_Q5_K] = {DT_F32, NULL, dot_generic_Q5_K},
    [DT_Q6_K] = {DT_F32, NULL, dot_generic_Q6_K},
};

const struct cpu_kernel *cpu_kernel_scalar(uint32_t weight_type)
{
    if (weight_type >= DT_MAX || !scalar_kernels[weight_type].vec_dot)
        return NULL;
    return &scalar_kernels[weight_type];
}
