/* quant_k.c — scalar reference conversions of the K-quant super-block formats: dequantization of
 * Q2_K..Q6_K and Q8_K, quantization of Q4_K, Q5_K, Q6_K (weights) and Q8_K (activations).
 * Layouts are documented in quant.h.
 *
 * Quantizing a K-quant is a two-level problem: every sub-block wants its own scale (and min), but
 * those are stored as small integers times one fp16 super-scale. We first find, per sub-block, the
 * scale/min pair that minimises a weighted squared error (trying a fan of candidate scales around
 * the naive range/levels, solving the least-squares fit for each rounding, and polishing the best
 * with a few re-round/re-fit passes), then quantize those scales, and finally pick each quant —
 * and nudge each integer scale by one step either way — against the values actually stored. */
#include "tensor/quant.h"

#include <math.h>
#include <string.h>

/* ---- the packed 6-bit scales and mins of Q4_K and Q5_K ---- */

static void get_scale_min(int j, const uint8_t *s, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void put_scales_mins(uint8_t s[12], const uint8_t sc[8], const uint8_t m[8])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)((m[j] & 63) | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | (m[j + 4] & 0x0f) << 4);
    }
}

/* The sixteen signed 6-bit scales of Q3_K (biased by 32 in storage). */
static int q3k_scale(const uint8_t *s, int i)
{
    int lo = i < 8 ? s[i] & 0x0f : s[i - 8] >> 4;
    int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* ---- dequantization ---- */

void quant_dequantize_q2_k(const struct block_q2_k *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        const float d = fp16_to_f32(x[b].d);
        const float dmin = fp16_to_f32(x[b].dmin);
        for (int e = 0; e < QUANT_QKK; e++) {
            const int half = e / 128, k = (e % 128) / 32, l = e % 32;
            const int q = (x[b].qs[32 * half + l] >> (2 * k)) & 3;
            const uint8_t s = x[b].scales[e / 16];
            y[e] = d * (float)(s & 0x0f) * (float)q - dmin * (float)(s >> 4);
        }
        y += QUANT_QKK;
    }
}

void quant_dequantize_q3_k(const struct block_q3_k *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        const float d = fp16_to_f32(x[b].d);
        for (int i = 0; i < QUANT_QKK / 16; i++) {
            const float dl = d * (float)q3k_scale(x[b].scales, i);
            for (int e = 16 * i; e < 16 * i + 16; e++) {
                const int half = e / 128, k = (e % 128) / 32, l = e % 32;
                int q = (x[b].qs[32 * half + l] >> (2 * k)) & 3;
                if (!(x[b].hmask[l] & (1u << (e / 32))))
                    q -= 4;
                y[e] = dl * (float)q;
            }
        }
        y += QUANT_QKK;
    }
}

/* One Q4_K or Q5_K super-block: eight 32-value sub-blocks, each d * scale * q - dmin * min, with q the
 * 4-bit quant and, for Q5_K (qh given), bit j of qh[l] as its fifth bit. */
static void dequantize_q45_k_block(uint16_t d16, uint16_t dmin16, const uint8_t *scales, const uint8_t *qs,
                                   const uint8_t *qh, float *y)
{
    const float d = fp16_to_f32(d16);
    const float dmin = fp16_to_f32(dmin16);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        get_scale_min(j, scales, &sc, &m);
        const float dl = d * (float)sc, ml = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) {
            const int v = ((q[l] >> shift) & 0x0f) | (qh ? ((qh[l] >> j) & 1) << 4 : 0);
            y[32 * j + l] = dl * (float)v - ml;
        }
    }
}

void quant_dequantize_q4_k(const struct block_q4_k *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QKK; b++)
        dequantize_q45_k_block(x[b].d, x[b].dmin, x[b].scales, x[b].qs, NULL, y + b * QUANT_QKK);
}

void quant_dequantize_q5_k(const struct block_q5_k *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QKK; b++)
        dequantize_q45_k_block(x[b].d, x[b].dmin, x[b].scales, x[b].qs, x[b].qh, y + b * QUANT_QKK);
}

void quant_dequantize_q6_k(const struct block_q6_k *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        const float d = fp16_to_f32(x[b].d);
        for (int e = 0; e < QUANT_QKK; e++) {
            const int half = e / 128, k = (e % 128) / 32, l = e % 32;
            const uint8_t lo = x[b].ql[64 * half + 32 * (k & 1) + l];
            const int low4 = (k < 2 ? lo : lo >> 4) & 0x0f;
            const int high2 = (x[b].qh[32 * half + l] >> (2 * k)) & 3;
            y[e] = d * (float)x[b].scales[e / 16] * (float)((low4 | high2 << 4) - 32);
        }
        y += QUANT_QKK;
    }
}

void quant_dequantize_q8_k(const struct block_q8_k *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        for (int e = 0; e < QUANT_QKK; e++)
            y[e] = x[b].d * (float)x[b].qs[e];
        y += QUANT_QKK;
    }
}

/* ---- per-sub-block scale searches ---- */

/* Weighted squared error of x against scale * L - mn. */
static float affine_error(int n, const float *x, const float *w, const uint8_t *L, float scale, float mn)
{
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        float diff = scale * (float)L[i] - mn - x[i];
        err += w[i] * diff * diff;
    }
    return err;
}

/* Rounds every element to its level under (scale, mn); a zero scale puts everything at 0. */
static void affine_levels(int n, int nmax, const float *x, float scale, float mn, uint8_t *L)
{
    const float is = scale > 0.0f ? 1.0f / scale : 0.0f;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)quant_round_clamp((x[i] + mn) * is, 0, nmax);
}

/* Least-squares (scale, mn) for fixed levels L, with mn >= 0 enforced: the formats store the
 * offset as a subtracted unsigned quantity, so a block that is all positive must start at zero.
 * Returns 0 when the levels do not determine a fit (all equal). */
static int affine_fit(int n, const float *x, const float *w, const uint8_t *L, float *scale, float *mn)
{
    float sw = 0, sx = 0, sl = 0, sl2 = 0, sxl = 0;
    for (int i = 0; i < n; i++) {
        const float l = (float)L[i];
        sw += w[i];
        sx += w[i] * x[i];
        sl += w[i] * l;
        sl2 += w[i] * l * l;
        sxl += w[i] * x[i] * l;
    }
    const float det = sw * sl2 - sl * sl;
    if (!(det > 0.0f))
        return 0;
    float s = (sw * sxl - sx * sl) / det;
    float off = (sl2 * sx - sl * sxl) / det; /* the fitted intercept: x ~ s*l + off */
    if (off > 0.0f) {
        off = 0.0f;
        s = sxl / sl2;
    }
    *scale = s;
    *mn = -off;
    return 1;
}

/* Best x ~ scale * l - mn for l in 0..nmax under weights w. Candidate scales fan out around
 * nmax / range (nstep steps of rdelta levels starting at rmin); each candidate's rounding gets its
 * own least-squares fit, and the winner is re-rounded and re-fit until that stops helping.
 * L receives the levels; aux is scratch of n bytes. */
static float search_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, uint8_t *aux,
                           float *mn_out, float rmin, float rdelta, int nstep)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (lo > 0.0f)
        lo = 0.0f;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *mn_out = -lo;
        return 0.0f;
    }
    float best_scale = (hi - lo) / (float)nmax, best_mn = -lo;
    affine_levels(n, nmax, x, best_scale, best_mn, L);
    float best = affine_error(n, x, w, L, best_scale, best_mn);

    for (int step = 0; step <= nstep; step++) {
        const float iscale = ((float)nmax + rmin + rdelta * (float)step) / (hi - lo);
        for (int i = 0; i < n; i++)
            aux[i] = (uint8_t)quant_round_clamp(iscale * (x[i] - lo), 0, nmax);
        float s, mn;
        if (!affine_fit(n, x, w, aux, &s, &mn))
            continue;
        const float err = affine_error(n, x, w, aux, s, mn);
        if (err < best) {
            memcpy(L, aux, (size_t)n);
            best = err;
            best_scale = s;
            best_mn = mn;
        }
    }
    /* Polish: the fit moved the scale, so some elements may now round to a better level. */
    for (int iter = 0; iter < 4; iter++) {
        affine_levels(n, nmax, x, best_scale, best_mn, aux);
        float s, mn;
        if (!affine_fit(n, x, w, aux, &s, &mn))
            break;
        const float err = affine_error(n, x, w, aux, s, mn);
        if (!(err < best))
            break;
        memcpy(L, aux, (size_t)n);
        best = err;
        best_scale = s;
        best_mn = mn;
    }
    *mn_out = best_mn;
    return best_scale;
}

/* Best symmetric x ~ scale * l for l in -nmax..nmax-1 under weights w: the extreme element maps
 * to -nmax (the level without a positive twin), and candidate scales a tenth of a level apart
 * either side are tried, keeping the one whose least-squares fit explains most of x. */
static float search_sym(int n, int nmax, const float *x, const float *w, int8_t *L)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float best_scale = 0.0f, best_gain = -1.0f;
    for (int step = -9; step <= 9; step++) {
        const float iscale = -((float)nmax + 0.1f * (float)step) / max;
        float sxl = 0.0f, sl2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = quant_round_clamp(iscale * x[i], -nmax, nmax - 1);
            sxl += w[i] * x[i] * (float)l;
            sl2 += w[i] * (float)(l * l);
        }
        /* With the optimal scale sxl/sl2, the error is sum(w x^2) - sxl^2/sl2: maximise the gain. */
        if (sl2 > 0.0f && sxl * sxl > best_gain * sl2) {
            best_gain = sxl * sxl / sl2;
            best_scale = sxl / sl2;
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)quant_round_clamp(iscale * x[i], -nmax, nmax - 1);
        }
    }
    return best_scale;
}

/* Weights for Q4_K/Q5_K sub-block searches: favour large-magnitude elements (they matter most
 * to a matrix product) on top of a floor at the block's RMS, so small values are not ignored. */
static void magnitude_weights(const float *x, float *w, int n)
{
    float sum_x2 = 0.0f;
    for (int i = 0; i < n; i++)
        sum_x2 += x[i] * x[i];
    const float av = sqrtf(sum_x2 / (float)n);
    for (int i = 0; i < n; i++)
        w[i] = av + fabsf(x[i]);
}

/* Weighted error of one 32-element sub-block reconstructed from stored integers (sc, m) and the
 * fp16 super-scales; fills L with the best level per element for those. */
static float subblock_error(const float *x, const float *w, int nmax, float d, float dmin, int sc, int m,
                            uint8_t *L)
{
    const float dl = d * (float)sc, ml = dmin * (float)m;
    if (dl == 0.0f) {
        memset(L, 0, 32);
        return affine_error(32, x, w, L, 0.0f, ml);
    }
    affine_levels(32, nmax, x, dl, ml, L);
    return affine_error(32, x, w, L, dl, ml);
}

/* The shared Q4_K/Q5_K quantizer of one super-block: fills d, dmin, scales and L (levels
 * 0..nmax, in element order). */
static void quantize_k_affine(const float *x, int nmax, float rmin, float rdelta, int nstep, uint16_t *d_out,
                              uint16_t *dmin_out, uint8_t scales[12], uint8_t L[QUANT_QKK])
{
    float w[32], sub_scale[8], sub_min[8];
    uint8_t aux[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        magnitude_weights(x + 32 * j, w, 32);
        sub_scale[j] = search_affine(32, nmax, x + 32 * j, w, L + 32 * j, aux, &sub_min[j], rmin, rdelta, nstep);
        max_scale = sub_scale[j] > max_scale ? sub_scale[j] : max_scale;
        max_min = sub_min[j] > max_min ? sub_min[j] : max_min;
    }
    /* The largest sub-block scale (and min) gets the top 6-bit code, 63. */
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    *d_out = f32_to_fp16(max_scale / 63.0f);
    *dmin_out = f32_to_fp16(max_min / 63.0f);
    const float d = fp16_to_f32(*d_out), dmin = fp16_to_f32(*dmin_out);

    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        magnitude_weights(xs, w, 32);
        const int sc0 = quant_round_clamp(inv_scale * sub_scale[j], 0, 63);
        const int m0 = quant_round_clamp(inv_min * sub_min[j], 0, 63);
        /* Rounding the scale and min independently is not always the best pair; one step either
         * way is cheap to check against the values actually stored. */
        int best_sc = sc0, best_m = m0;
        float best = subblock_error(xs, w, nmax, d, dmin, sc0, m0, L + 32 * j);
        for (int dsc = -1; dsc <= 1; dsc++) {
            for (int dm = -1; dm <= 1; dm++) {
                const int sc = sc0 + dsc, m = m0 + dm;
                if ((dsc == 0 && dm == 0) || sc < 0 || sc > 63 || m < 0 || m > 63)
                    continue;
                const float err = subblock_error(xs, w, nmax, d, dmin, sc, m, aux);
                if (err < best) {
                    best = err;
                    best_sc = sc;
                    best_m = m;
                    memcpy(L + 32 * j, aux, 32);
                }
            }
        }
        ls[j] = (uint8_t)best_sc;
        lm[j] = (uint8_t)best_m;
    }
    put_scales_mins(scales, ls, lm);
}

void quant_quantize_q4_k(const float *x, struct block_q4_k *y, int64_t n)
{
    uint8_t L[QUANT_QKK];
    for (int64_t b = 0; b < n / QUANT_QKK; b++, x += QUANT_QKK) {
        quantize_k_affine(x, 15, -1.0f, 0.1f, 20, &y[b].d, &y[b].dmin, y[b].scales, L);
        for (int r = 0; r < 4; r++)
            for (int l = 0; l < 32; l++)
                y[b].qs[32 * r + l] = (uint8_t)(L[64 * r + l] | L[64 * r + 32 + l] << 4);
    }
}

void quant_quantize_q5_k(const float *x, struct block_q5_k *y, int64_t n)
{
    uint8_t L[QUANT_QKK];
    for (int64_t b = 0; b < n / QUANT_QKK; b++, x += QUANT_QKK) {
        quantize_k_affine(x, 31, -0.5f, 0.1f, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
        memset(y[b].qh, 0, sizeof y[b].qh);
        for (int r = 0; r < 4; r++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t a = L[64 * r + l], c = L[64 * r + 32 + l];
                y[b].qs[32 * r + l] = (uint8_t)((a & 0x0f) | (c & 0x0f) << 4);
                y[b].qh[l] |= (uint8_t)(((a >> 4) & 1) << (2 * r) | ((c >> 4) & 1) << (2 * r + 1));
            }
        }
    }
}

/* Weighted error of a 16-element Q6_K sub-block at effective scale dl; fills L (-32..31). */
static float sym_error(const float *x, const float *w, float dl, int8_t *L)
{
    float err = 0.0f;
    const float is = dl != 0.0f ? 1.0f / dl : 0.0f;
    for (int i = 0; i < 16; i++) {
        L[i] = (int8_t)(dl != 0.0f ? quant_round_clamp(x[i] * is, -32, 31) : 0);
        const float diff = dl * (float)L[i] - x[i];
        err += w[i] * diff * diff;
    }
    return err;
}

void quant_quantize_q6_k(const float *x, struct block_q6_k *y, int64_t n)
{
    int8_t L[QUANT_QKK], aux[16];
    float w[QUANT_QKK], sub_scale[16];
    for (int64_t b = 0; b < n / QUANT_QKK; b++, x += QUANT_QKK) {
        /* Squared-magnitude weights: Q6_K is accurate enough that the error budget is best spent
         * on the elements with the most energy. */
        for (int i = 0; i < QUANT_QKK; i++)
            w[i] = x[i] * x[i];
        float max_scale = 0.0f, amax = 0.0f;
        for (int i = 0; i < 16; i++) {
            sub_scale[i] = search_sym(16, 32, x + 16 * i, w + 16 * i, L + 16 * i);
            if (fabsf(sub_scale[i]) > amax) {
                amax = fabsf(sub_scale[i]);
                max_scale = sub_scale[i];
            }
        }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* The largest-magnitude scale gets code -128, the one without a positive twin. */
        const float iscale = -128.0f / max_scale;
        y[b].d = f32_to_fp16(1.0f / iscale);
        const float d = fp16_to_f32(y[b].d);
        for (int i = 0; i < 16; i++) {
            const float *xs = x + 16 * i;
            const int s0 = quant_round_clamp(iscale * sub_scale[i], -128, 127);
            int best_s = s0;
            float best = sym_error(xs, w + 16 * i, d * (float)s0, L + 16 * i);
            for (int ds = -1; ds <= 1; ds += 2) {
                const int s = s0 + ds;
                if (s < -128 || s > 127)
                    continue;
                const float err = sym_error(xs, w + 16 * i, d * (float)s, aux);
                if (err < best) {
                    best = err;
                    best_s = s;
                    memcpy(L + 16 * i, aux, 16);
                }
            }
            y[b].scales[i] = (int8_t)best_s;
        }
        for (int half = 0; half < 2; half++) {
            for (int l = 0; l < 32; l++) {
                uint8_t q[4];
                for (int k = 0; k < 4; k++)
                    q[k] = (uint8_t)(L[128 * half + 32 * k + l] + 32);
                y[b].ql[64 * half + l] = (uint8_t)((q[0] & 0x0f) | (q[2] & 0x0f) << 4);
                y[b].ql[64 * half + 32 + l] = (uint8_t)((q[1] & 0x0f) | (q[3] & 0x0f) << 4);
                y[b].qh[32 * half + l] = (uint8_t)((q[0] >> 4) | (q[1] >> 4) << 2 | (q[2] >> 4) << 4 | (q[3] >> 4) << 6);
            }
        }
    }
}

void quant_quantize_q8_k(const float *x, struct block_q8_k *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QKK; b++, x += QUANT_QKK) {
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < QUANT_QKK; i++) {
            if (fabsf(x[i]) > amax) {
                amax = fabsf(x[i]);
                max = x[i];
            }
        }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* The extreme element maps to -127 so that the sign of d carries the sign of max. */
        const float iscale = -127.0f / max;
        for (int i = 0; i < QUANT_QKK; i++)
            y[b].qs[i] = (int8_t)quant_round_clamp(iscale * x[i], -127, 127);
        for (int i = 0; i < QUANT_QKK / 16; i++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[b].qs[16 * i + l];
            y[b].bsums[i] = (int16_t)sum;
        }
        y[b].d = 1.0f / iscale;
    }
}
