/* quant_legacy.c — scalar reference conversions of the 32-element block formats (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0) and of the Q8_1 activation format. Layouts are documented in quant.h. */
#include "tensor/quant.h"

#include <math.h>

/* ---- dequantization ---- */

void quant_dequantize_q4_0(const struct block_q4_0 *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, y += QUANT_QK) {
        const float d = fp16_to_f32(x[b].d);
        for (int j = 0; j < QUANT_QK / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0x0f) - 8) * d;
            y[j + QUANT_QK / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void quant_dequantize_q4_1(const struct block_q4_1 *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, y += QUANT_QK) {
        const float d = fp16_to_f32(x[b].d);
        const float m = fp16_to_f32(x[b].m);
        for (int j = 0; j < QUANT_QK / 2; j++) {
            y[j] = (float)(x[b].qs[j] & 0x0f) * d + m;
            y[j + QUANT_QK / 2] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void store_qh(uint8_t qh[4], uint32_t v)
{
    for (int i = 0; i < 4; i++)
        qh[i] = (uint8_t)(v >> (8 * i));
}

void quant_dequantize_q5_0(const struct block_q5_0 *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, y += QUANT_QK) {
        const float d = fp16_to_f32(x[b].d);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < QUANT_QK / 2; j++) {
            int lo = (x[b].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (x[b].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(lo - 16) * d;
            y[j + QUANT_QK / 2] = (float)(hi - 16) * d;
        }
    }
}

void quant_dequantize_q5_1(const struct block_q5_1 *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, y += QUANT_QK) {
        const float d = fp16_to_f32(x[b].d);
        const float m = fp16_to_f32(x[b].m);
        const uint32_t qh = load_qh(x[b].qh);
        for (int j = 0; j < QUANT_QK / 2; j++) {
            int lo = (x[b].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (x[b].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)lo * d + m;
            y[j + QUANT_QK / 2] = (float)hi * d + m;
        }
    }
}

void quant_dequantize_q8_0(const struct block_q8_0 *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, y += QUANT_QK) {
        const float d = fp16_to_f32(x[b].d);
        for (int j = 0; j < QUANT_QK; j++)
            y[j] = (float)x[b].qs[j] * d;
    }
}

void quant_dequantize_q8_1(const struct block_q8_1 *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, y += QUANT_QK) {
        const float d = fp16_to_f32(x[b].d);
        for (int j = 0; j < QUANT_QK; j++)
            y[j] = (float)x[b].qs[j] * d;
    }
}

/* ---- quantization ---- */

/* The element of largest magnitude, with its sign: symmetric formats map it to the most negative
 * quant (-8 for 4 bits, -16 for 5), which has no positive twin, so the sign matters. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* Symmetric quantization to 2^bits levels: the extreme element becomes level 0 (value -half*d). */
static float quantize_sym(const float *x, int bits, uint8_t q[QUANT_QK])
{
    const int half = 1 << (bits - 1);
    const float max = signed_absmax(x, QUANT_QK);
    const float d = max / (float)-half;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QUANT_QK; j++) {
        /* Round half up by truncation after the shift to non-negative; the extreme's opposite
         * end (+half) does not exist and is clamped to the top level. */
        float v = x[j] * id + (float)half + 0.5f;
        int l = (int)(v > 0.0f ? v : 0.0f);
        q[j] = (uint8_t)(l > 2 * half - 1 ? 2 * half - 1 : l);
    }
    return d;
}

/* Quantization with an offset: the block's minimum becomes level 0, its maximum the top level. */
static void quantize_affine(const float *x, int bits, uint8_t q[QUANT_QK], float *d_out, float *m_out)
{
    const int top = (1 << bits) - 1;
    float min = x[0], max = x[0];
    for (int j = 1; j < QUANT_QK; j++) {
        min = x[j] < min ? x[j] : min;
        max = x[j] > max ? x[j] : max;
    }
    const float d = (max - min) / (float)top;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QUANT_QK; j++) {
        int l = (int)((x[j] - min) * id + 0.5f);
        q[j] = (uint8_t)(l > top ? top : l);
    }
    *d_out = d;
    *m_out = min;
}

static void pack_nibbles(const uint8_t q[QUANT_QK], uint8_t qs[QUANT_QK / 2])
{
    for (int j = 0; j < QUANT_QK / 2; j++)
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + QUANT_QK / 2] & 0x0f) << 4);
}

static uint32_t fifth_bits(const uint8_t q[QUANT_QK])
{
    uint32_t qh = 0;
    for (int j = 0; j < QUANT_QK; j++)
        qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    return qh;
}

void quant_quantize_q4_0(const float *x, struct block_q4_0 *y, int64_t n)
{
    uint8_t q[QUANT_QK];
    for (int64_t b = 0; b < n / QUANT_QK; b++, x += QUANT_QK) {
        y[b].d = f32_to_fp16(quantize_sym(x, 4, q));
        pack_nibbles(q, y[b].qs);
    }
}

void quant_quantize_q4_1(const float *x, struct block_q4_1 *y, int64_t n)
{
    uint8_t q[QUANT_QK];
    float d, m;
    for (int64_t b = 0; b < n / QUANT_QK; b++, x += QUANT_QK) {
        quantize_affine(x, 4, q, &d, &m);
        y[b].d = f32_to_fp16(d);
        y[b].m = f32_to_fp16(m);
        pack_nibbles(q, y[b].qs);
    }
}

void quant_quantize_q5_0(const float *x, struct block_q5_0 *y, int64_t n)
{
    uint8_t q[QUANT_QK];
    for (int64_t b = 0; b < n / QUANT_QK; b++, x += QUANT_QK) {
        y[b].d = f32_to_fp16(quantize_sym(x, 5, q));
        store_qh(y[b].qh, fifth_bits(q));
        pack_nibbles(q, y[b].qs);
    }
}

void quant_quantize_q5_1(const float *x, struct block_q5_1 *y, int64_t n)
{
    uint8_t q[QUANT_QK];
    float d, m;
    for (int64_t b = 0; b < n / QUANT_QK; b++, x += QUANT_QK) {
        quantize_affine(x, 5, q, &d, &m);
        y[b].d = f32_to_fp16(d);
        y[b].m = f32_to_fp16(m);
        store_qh(y[b].qh, fifth_bits(q));
        pack_nibbles(q, y[b].qs);
    }
}

/* Shared by Q8_0 and Q8_1: d = max|x| / 127, quants rounded to nearest. Returns d. */
static float quantize_q8(const float *x, int8_t qs[QUANT_QK])
{
    float amax = 0.0f;
    for (int j = 0; j < QUANT_QK; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QUANT_QK; j++)
        qs[j] = (int8_t)quant_round_clamp(x[j] * id, -127, 127);
    return d;
}

void quant_quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, x += QUANT_QK)
        y[b].d = f32_to_fp16(quantize_q8(x, y[b].qs));
}

void quant_quantize_q8_1(const float *x, struct block_q8_1 *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK; b++, x += QUANT_QK) {
        const float d = quantize_q8(x, y[b].qs);
        int sum = 0;
        for (int j = 0; j < QUANT_QK; j++)
            sum += y[b].qs[j];
        y[b].d = f32_to_fp16(d);
        y[b].s = f32_to_fp16((float)sum * d);
    }
}
