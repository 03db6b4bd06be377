/* kernels_scalar.c — portable reference kernels: float dot products, the generic path that
 * dequantizes each weight block and multiplies it in float32, and the integer dot products of the
 * quantized formats with 8-bit activations (Q8_0, Q8_1, Q8_K). The integer kernels define the exact
 * result the SIMD kernels must reproduce: integer sums per block are exact, only the float
 * accumulation order may differ. */
#include "backend/cpu/kernels.h"

#include <math.h>

#include "tensor/quant.h"
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

/* ---- integer kernels: legacy formats against Q8_0 / Q8_1 activations ---- */

static inline uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The integer dot of one 32-weight Q4_0/Q4_1/Q5_0/Q5_1 block with its activation quants: weight j's
 * low nibble meets activation j, its high nibble activation j + 16; the 5-bit formats add bit j
 * (and j + 16) of qh as the fifth bit (qh 0 for the 4-bit ones); the symmetric formats subtract
 * their zero point (8 or 16; 0 for the affine ones, whose offset is applied per block). */
static int legacy_block_isum(const uint8_t *qs, uint32_t qh, int zero, const int8_t *y)
{
    int sum = 0;
    for (int j = 0; j < QUANT_QK / 2; j++) {
        const int q0 = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        const int q1 = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        sum += (q0 - zero) * y[j] + (q1 - zero) * y[j + 16];
    }
    return sum;
}

float cpu_dot_q4_0_q8_0_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q4_0 *x = w;
    const struct block_q8_0 *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QK; b++)
        s += fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) * (float)legacy_block_isum(x[b].qs, 0, 8, y[b].qs);
    return s;
}

/* The affine formats' offset m multiplies every activation: y.s already holds d_y * sum(q_y). */
float cpu_dot_q4_1_q8_1_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q4_1 *x = w;
    const struct block_q8_1 *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QK; b++)
        s += fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) * (float)legacy_block_isum(x[b].qs, 0, 0, y[b].qs) +
             fp16_to_f32(x[b].m) * fp16_to_f32(y[b].s);
    return s;
}

float cpu_dot_q5_0_q8_0_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q5_0 *x = w;
    const struct block_q8_0 *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QK; b++)
        s += fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) *
             (float)legacy_block_isum(x[b].qs, load_u32(x[b].qh), 16, y[b].qs);
    return s;
}

float cpu_dot_q5_1_q8_1_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q5_1 *x = w;
    const struct block_q8_1 *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QK; b++)
        s += fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) *
                 (float)legacy_block_isum(x[b].qs, load_u32(x[b].qh), 0, y[b].qs) +
             fp16_to_f32(x[b].m) * fp16_to_f32(y[b].s);
    return s;
}

float cpu_dot_q8_0_q8_0_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q8_0 *x = w;
    const struct block_q8_0 *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QK; b++) {
        int sum = 0;
        for (int j = 0; j < QUANT_QK; j++)
            sum += x[b].qs[j] * y[b].qs[j];
        s += fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) * (float)sum;
    }
    return s;
}

/* ---- integer kernels: K-quants against Q8_K activations ---- */

void cpu_q4_k_scales(const uint8_t *scales, uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = scales[j] & 63;
        mn[j] = scales[j + 4] & 63;
        sc[j + 4] = (uint8_t)((scales[j + 8] & 15) | (scales[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((scales[j + 8] >> 4) | (scales[j + 4] >> 6) << 4);
    }
}

/* One Q4_K or Q5_K block against its Q8_K block: the two formats share scales, mins and the nibble
 * layout; Q5_K adds a fifth bit per weight from qh (NULL for Q4_K). */
static float dot_q45_k_block(uint16_t d, uint16_t dmin, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                             const struct block_q8_k *y)
{
    uint8_t sc[8], mn[8];
    cpu_q4_k_scales(scales, sc, mn);
    int sumi = 0, summ = 0;
    for (int r = 0; r < 4; r++) {
        int lo = 0, hi = 0;
        for (int l = 0; l < 32; l++) {
            const int q0 = (qs[32 * r + l] & 15) | (qh ? ((qh[l] >> (2 * r)) & 1) << 4 : 0);
            const int q1 = (qs[32 * r + l] >> 4) | (qh ? ((qh[l] >> (2 * r + 1)) & 1) << 4 : 0);
            lo += q0 * y->qs[64 * r + l];
            hi += q1 * y->qs[64 * r + 32 + l];
        }
        sumi += sc[2 * r] * lo + sc[2 * r + 1] * hi;
    }
    for (int j = 0; j < 8; j++)
        summ += mn[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    return y->d * (fp16_to_f32(d) * (float)sumi - fp16_to_f32(dmin) * (float)summ);
}

float cpu_dot_q4_k_q8_k_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q4_k *x = w;
    const struct block_q8_k *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QKK; b++)
        s += dot_q45_k_block(x[b].d, x[b].dmin, x[b].scales, x[b].qs, NULL, &y[b]);
    return s;
}

float cpu_dot_q5_k_q8_k_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q5_k *x = w;
    const struct block_q8_k *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QKK; b++)
        s += dot_q45_k_block(x[b].d, x[b].dmin, x[b].scales, x[b].qs, x[b].qh, &y[b]);
    return s;
}

float cpu_dot_q6_k_q8_k_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q6_k *x = w;
    const struct block_q8_k *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        int sumi = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
            const int8_t *q8 = y[b].qs + 128 * h;
            const int8_t *sc = x[b].scales + 8 * h;
            int part[4] = {0}, part2[4] = {0};
            for (int l = 0; l < 32; l++) {
                const int q0 = (ql[l] & 15) | ((qh[l] >> 0) & 3) << 4;
                const int q1 = (ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4;
                const int q2 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                const int q3 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                int *p = l < 16 ? part : part2;
                p[0] += (q0 - 32) * q8[l];
                p[1] += (q1 - 32) * q8[l + 32];
                p[2] += (q2 - 32) * q8[l + 64];
                p[3] += (q3 - 32) * q8[l + 96];
            }
            for (int k = 0; k < 4; k++)
                sumi += sc[2 * k] * part[k] + sc[2 * k + 1] * part2[k];
        }
        s += y[b].d * fp16_to_f32(x[b].d) * (float)sumi;
    }
    return s;
}

float cpu_dot_q3_k_q8_k_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q3_k *x = w;
    const struct block_q8_k *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        int sc[16];
        for (int i = 0; i < 16; i++) {
            const int low = i < 8 ? (x[b].scales[i] & 15) : (x[b].scales[i - 8] >> 4);
            const int high = (x[b].scales[8 + i % 4] >> (2 * (i / 4))) & 3;
            sc[i] = (low | high << 4) - 32;
        }
        int sumi = 0;
        for (int e = 0; e < QUANT_QKK; e += 16) {
            int sub = 0;
            for (int k = e; k < e + 16; k++) {
                const int half = k / 128, kk = k % 128, shift = 2 * (kk / 32), l = kk % 32;
                const int low2 = (x[b].qs[32 * half + l] >> shift) & 3;
                const int hbit = (x[b].hmask[l] >> (k / 32)) & 1;
                sub += (low2 - (hbit ? 0 : 4)) * y[b].qs[k];
            }
            sumi += sc[e / 16] * sub;
        }
        s += y[b].d * fp16_to_f32(x[b].d) * (float)sumi;
    }
    return s;
}

float cpu_dot_q2_k_q8_k_scalar(int64_t n, const void *w, const void *a)
{
    const struct block_q2_k *x = w;
    const struct block_q8_k *y = a;
    float s = 0;
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        int sumi = 0, summ = 0;
        for (int e = 0; e < QUANT_QKK; e += 16) {
            int sub = 0;
            for (int k = e; k < e + 16; k++) {
                const int half = k / 128, kk = k % 128, shift = 2 * (kk / 32), l = kk % 32;
                sub += ((x[b].qs[32 * half + l] >> shift) & 3) * y[b].qs[k];
            }
            sumi += (x[b].scales[e / 16] & 15) * sub;
            summ += (x[b].scales[e / 16] >> 4) * y[b].bsums[e / 16];
        }
        s += y[b].d * (fp16_to_f32(x[b].d) * (float)sumi - fp16_to_f32(x[b].dmin) * (float)summ);
    }
    return s;
}

/* ---- activation converters ---- */

void cpu_quantize_q8_0(const float *x, void *dst, int64_t n) { quant_quantize_q8_0(x, dst, n); }
void cpu_quantize_q8_1(const float *x, void *dst, int64_t n) { quant_quantize_q8_1(x, dst, n); }
void cpu_quantize_q8_k(const float *x, void *dst, int64_t n) { quant_quantize_q8_k(x, dst, n); }

#define GENERIC_DOT(T)                                                                             \
    static float dot_generic_##T(int64_t n, const void *w, const void *a)                         \
    {                                                                                              \
        return cpu_vec_dot_generic(DT_##T, n, w, a);                                               \
    }

static const struct cpu_kernel scalar_kernels[DT_MAX] = {
    [DT_F32] = {DT_F32, NULL, dot_f32},
    [DT_F16] = {DT_F32, NULL, dot_f16},
    [DT_BF16] = {DT_F32, NULL, dot_bf16},
    [DT_Q4_0] = {DT_Q8_0, cpu_quantize_q8_0, cpu_dot_q4_0_q8_0_scalar},
    [DT_Q4_1] = {DT_Q8_1, cpu_quantize_q8_1, cpu_dot_q4_1_q8_1_scalar},
    [DT_Q5_0] = {DT_Q8_0, cpu_quantize_q8_0, cpu_dot_q5_0_q8_0_scalar},
    [DT_Q5_1] = {DT_Q8_1, cpu_quantize_q8_1, cpu_dot_q5_1_q8_1_scalar},
    [DT_Q8_0] = {DT_Q8_0, cpu_quantize_q8_0, cpu_dot_q8_0_q8_0_scalar},
    [DT_Q2_K] = {DT_Q8_K, cpu_quantize_q8_k, cpu_dot_q2_k_q8_k_scalar},
    [DT_Q3_K] = {DT_Q8_K, cpu_quantize_q8_k, cpu_dot_q3_k_q8_k_scalar},
    [DT_Q4_K] = {DT_Q8_K, cpu_quantize_q8_k, cpu_dot_q4_k_q8_k_scalar},
    [DT_Q5_K] = {DT_Q8_K, cpu_quantize_q8_k, cpu_dot_q5_k_q8_k_scalar},
    [DT_Q6_K] = {DT_Q8_K, cpu_quantize_q8_k, cpu_dot_q6_k_q8_k_scalar},
};

/* Element i of an F16 (half) or float row. */
static float cache_elem(const void *row, size_t i, int half)
{
    return half ? fp16_to_f32(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

static void attn_qk(int hd, int nr, const float *q, int np, const void *k, int half, float *s)
{
    for (int r = 0; r < nr; r++)
        for (int p = 0; p < np; p++) {
            const float *qr = q + (size_t)r * hd;
            s[(size_t)r * np + p] = half ? dot_f16(hd, (const uint16_t *)k + (size_t)p * hd, qr)
                                         : dot_f32(hd, (const float *)k + (size_t)p * hd, qr);
        }
}

static void attn_pv(int hd, int nr, const float *w, int np, const void *v, int half, float *o)
{
    for (int r = 0; r < nr; r++)
        for (int p = 0; p < np; p++) {
            const float a = w[(size_t)r * np + p];
            for (int c = 0; c < hd; c++)
                o[(size_t)r * hd + c] += a * cache_elem(v, (size_t)p * hd + c, half);
        }
}

static float row_max(const float *s, int64_t n, float init)
{
    float m = init;
    for (int64_t i = 0; i < n; i++)
        if (s[i] > m)
            m = s[i];
    return m;
}

static float softmax_exp(float *s, int64_t n, float max)
{
    float sum = 0;
    for (int64_t i = 0; i < n; i++) {
        s[i] = expf(s[i] - max);
        sum += s[i];
    }
    return sum;
}

const struct cpu_attn_kernels cpu_attn_kernels_scalar = {attn_qk, attn_pv, row_max, softmax_exp};

const struct cpu_kernel *cpu_kernel_scalar(uint32_t weight_type)
{
    if (weight_type >= DT_MAX || !scalar_kernels[weight_type].vec_dot)
        return NULL;
    return &scalar_kernels[weight_type];
}

static float vec_sum_sq(int64_t n, const float *x)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    return (float)ss;
}

static void vec_scale_mul(int64_t n, const float *x, float s, const float *g, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * s * g[i];
}

static void vec_swiglu(int64_t n, const float *gate, const float *up, float *out)
{
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void vec_add(int64_t n, float *x, const float *y)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

const struct cpu_vec_kernels cpu_vec_kernels_scalar = {vec_sum_sq, vec_scale_mul, vec_swiglu, vec_add};

void cpu_q8_0_bias(void *blocks, int64_t n)
{
    struct block_q8_0 *y = blocks;
    for (int64_t b = 0; b < n / QUANT_QK; b++)
        for (int j = 0; j < QUANT_QK; j++)
            y[b].qs[j] = (int8_t)((uint8_t)y[b].qs[j] ^ 0x80);
}
