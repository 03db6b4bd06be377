/* test_quant.c — the tensor block formats: the type table against GGUF's sizes, fp16/bf16
 * conversions, dequantization against llama.cpp's files (../shared/reference/quant), the quality
 * of hearth's quantizers against llama.cpp's, and round-trip bounds on synthetic data. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"

/* ---- helpers ---- */

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A small deterministic generator (xorshift64*) so failures reproduce. */
static uint64_t rng_state;

static double rng_uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static float rng_normal(void)
{
    double u = rng_uniform(), v = rng_uniform();
    if (u < 1e-300)
        u = 1e-300;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Weight-like data: N(0, sigma) with 1% outliers eight times larger. */
static void fill_weights(float *x, int64_t n, float sigma, uint64_t seed)
{
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        float v = rng_normal() * sigma;
        if (rng_uniform() < 0.01)
            v *= 8.0f;
        x[i] = v;
    }
}

static double rmse(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return sqrt(s / (double)n);
}

/* Quantizes and dequantizes n elements through type; returns the reconstruction in out. */
static void round_trip(uint32_t type, const float *x, float *out, int64_t n)
{
    struct err e = {0};
    size_t bytes = dtype_row_bytes(type, n);
    assert_true(bytes > 0);
    void *buf = malloc(bytes);
    assert_non_null(buf);
    if (dtype_quantize(type, x, buf, n, &e) != 0)
        fail_msg("%s", e.msg);
    if (dtype_dequantize(type, buf, out, n, &e) != 0)
        fail_msg("%s", e.msg);
    free(buf);
}

static const uint32_t quantizable[] = {DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_Q8_0, DT_Q4_K, DT_Q5_K, DT_Q6_K};
#define N_QUANTIZABLE (sizeof quantizable / sizeof quantizable[0])

/* ---- the type table ---- */

static void test_type_table(void **state)
{
    (void)state;
    /* Block and byte sizes exactly as GGUF stores them. */
    static const struct {
        uint32_t type;
        const char *name;
        uint32_t block, bytes;
        bool deq, q;
    } want[] = {
        {DT_F32, "F32", 1, 4, true, true},       {DT_F16, "F16", 1, 2, true, true},
        {DT_BF16, "BF16", 1, 2, true, true},     {DT_Q4_0, "Q4_0", 32, 18, true, true},
        {DT_Q4_1, "Q4_1", 32, 20, true, true},   {DT_Q5_0, "Q5_0", 32, 22, true, true},
        {DT_Q5_1, "Q5_1", 32, 24, true, true},   {DT_Q8_0, "Q8_0", 32, 34, true, true},
        {DT_Q8_1, "Q8_1", 32, 36, false, false}, {DT_Q2_K, "Q2_K", 256, 84, true, false},
        {DT_Q3_K, "Q3_K", 256, 110, true, false}, {DT_Q4_K, "Q4_K", 256, 144, true, true},
        {DT_Q5_K, "Q5_K", 256, 176, true, true}, {DT_Q6_K, "Q6_K", 256, 210, true, true},
        {DT_Q8_K, "Q8_K", 256, 292, false, false}, {DT_I8, "I8", 1, 1, false, false},
        {DT_I16, "I16", 1, 2, false, false},     {DT_I32, "I32", 1, 4, false, false},
        {DT_I64, "I64", 1, 8, false, false},     {DT_F64, "F64", 1, 8, false, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct dtype_info *d = dtype_get(want[i].type);
        assert_non_null(d);
        assert_string_equal(d->name, want[i].name);
        assert_int_equal(d->block_size, want[i].block);
        assert_int_equal(d->type_size, want[i].bytes);
        assert_int_equal(d->can_dequantize, want[i].deq);
        assert_int_equal(d->can_quantize, want[i].q);
        assert_int_equal(dtype_from_name(want[i].name), (int)want[i].type);
    }
    assert_null(dtype_get(4)); /* Q4_2, removed from GGUF */
    assert_null(dtype_get(DT_MAX));
    assert_int_equal(dtype_from_name("q4_k"), DT_Q4_K);
    assert_int_equal(dtype_from_name("nonsense"), -1);
    assert_int_equal(dtype_row_bytes(DT_Q4_K, 512), 288);
    assert_int_equal(dtype_row_bytes(DT_Q4_K, 100), 0);

    /* Every type the table says converts does convert, and every other one is refused. */
    float src[256] = {0}, dst[256];
    unsigned char buf[2 * 256 * 4];
    for (uint32_t t = 0; t < DT_MAX; t++) {
        const struct dtype_info *d = dtype_get(t);
        if (!d)
            continue;
        struct err e = {0};
        memset(buf, 0, sizeof buf);
        int n = d->block_size == 1 ? 8 : (int)d->block_size;
        assert_int_equal(dtype_dequantize(t, buf, dst, n, &e) == 0, d->can_dequantize);
        if (!d->can_dequantize)
            assert_int_equal(e.code, ERR_UNSUPPORTED);
        assert_int_equal(dtype_quantize(t, src, buf, n, &e) == 0, d->can_quantize);
        if (!d->can_quantize)
            assert_int_equal(e.code, ERR_UNSUPPORTED);
    }
}

static void test_argument_errors(void **state)
{
    (void)state;
    float x[64] = {0}, y[64];
    unsigned char buf[512] = {0};
    struct err e = {0};
    assert_int_equal(dtype_dequantize(DT_Q4_0, buf, y, 33, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "Q4_0"));
    assert_int_equal(dtype_quantize(DT_Q4_K, x, buf, 64, &e), ERR_INVALID);
    assert_int_equal(dtype_dequantize(99, buf, y, 32, &e), ERR_UNSUPPORTED);
    assert_int_equal(dtype_quantize(DT_Q2_K, x, buf, 0, &e), ERR_UNSUPPORTED);
    assert_int_equal(dtype_dequantize(DT_Q8_0, NULL, y, 32, &e), ERR_INVALID);
    assert_int_equal(dtype_dequantize(DT_Q8_0, NULL, NULL, 0, &e), 0);

    /* Values a block's fp16 scale cannot carry are refused with the element named. */
    x[17] = NAN;
    assert_int_equal(dtype_quantize(DT_Q8_0, x, buf, 32, &e), ERR_RANGE);
    assert_non_null(strstr(e.msg, "element 17"));
    x[17] = INFINITY;
    assert_int_equal(dtype_quantize(DT_Q4_1, x, buf, 32, &e), ERR_RANGE);
    x[17] = 1e6f;
    assert_int_equal(dtype_quantize(DT_Q5_0, x, buf, 32, &e), ERR_RANGE);
    /* ...while F16 and BF16 represent them the IEEE way. */
    uint16_t h[64];
    assert_int_equal(dtype_quantize(DT_F16, x, h, 32, &e), 0);
    assert_int_equal(h[17], 0x7c00);
    x[17] = NAN;
    assert_int_equal(dtype_quantize(DT_BF16, x, h, 32, &e), 0);
    assert_true(isnan(bf16_to_f32(h[17])));
}

/* ---- fp16 / bf16 ---- */

static void test_fp16(void **state)
{
    (void)state;
    /* Every half survives a round trip through float32 (NaNs stay NaN). */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_f32((uint16_t)h);
        uint16_t back = f32_to_fp16(f);
        if (isnan(f))
            assert_true((back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0);
        else
            assert_int_equal(back, h);
    }
    assert_true(fp16_to_f32(0x3c00) == 1.0f);
    assert_true(fp16_to_f32(0x7bff) == 65504.0f);
    assert_true(fp16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    assert_true(fp16_to_f32(0x03ff) == ldexpf(1023.0f, -24)); /* largest subnormal */
    assert_true(fp16_to_f32(0x0400) == ldexpf(1.0f, -14));
    assert_true(isinf(fp16_to_f32(0xfc00)) && fp16_to_f32(0xfc00) < 0);
    assert_int_equal(f32_bits(fp16_to_f32(0x8000)), 0x80000000u); /* -0 */
    assert_int_equal(f32_to_fp16(-0.0f), 0x8000);

    /* Round to nearest, ties to even, in the normal and subnormal ranges. */
    assert_int_equal(f32_to_fp16(1.0f + ldexpf(1, -11)), 0x3c00);
    assert_int_equal(f32_to_fp16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    assert_int_equal(f32_to_fp16(nextafterf(1.0f + ldexpf(1, -11), 2.0f)), 0x3c01);
    assert_int_equal(f32_to_fp16(ldexpf(1, -25)), 0x0000);
    assert_int_equal(f32_to_fp16(nextafterf(ldexpf(1, -25), 1.0f)), 0x0001);
    assert_int_equal(f32_to_fp16(3 * ldexpf(1, -25)), 0x0002);
    assert_int_equal(f32_to_fp16(ldexpf(1, -14) - ldexpf(1, -25)), 0x0400); /* carries into normal */
    assert_int_equal(f32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(f32_to_fp16(65519.99f), 0x7bff);
    assert_int_equal(f32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(f32_to_fp16(-1e30f), 0xfc00);
    assert_int_equal(f32_to_fp16(INFINITY), 0x7c00);
    uint16_t nan = f32_to_fp16(bits_f32(0x7f800001)); /* payload only in the low bits */
    assert_true((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);

    /* Random floats convert to the nearest half (no neighbour is closer). */
    rng_state = 7;
    for (int i = 0; i < 200000; i++) {
        float f = (float)((rng_uniform() - 0.5) * ldexp(1.0, (int)(rng_uniform() * 44) - 26));
        uint16_t h = f32_to_fp16(f);
        double err = fabs((double)fp16_to_f32(h) - f);
        if ((h & 0x7fff) < 0x7bff) {
            double up = fabs((double)fp16_to_f32((uint16_t)(h + 1)) - f);
            assert_true(err <= up);
        }
        if ((h & 0x7fff) > 0) {
            double down = fabs((double)fp16_to_f32((uint16_t)(h - 1)) - f);
            assert_true(err <= down);
        }
    }
}

static void test_bf16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        uint16_t back = f32_to_bf16(f);
        if (isnan(f))
            assert_true(isnan(bf16_to_f32(back)));
        else
            assert_int_equal(back, h);
    }
    assert_int_equal(f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(f32_to_bf16(bits_f32(0x3f808000)), 0x3f80); /* tie, even stays */
    assert_int_equal(f32_to_bf16(bits_f32(0x3f818000)), 0x3f82); /* tie, odd rounds up */
    assert_int_equal(f32_to_bf16(bits_f32(0x3f808001)), 0x3f81);
    assert_int_equal(f32_to_bf16(bits_f32(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to inf */
    assert_int_equal(f32_to_bf16(bits_f32(0x00010000)), 0x0001); /* subnormal kept */
    assert_int_equal(f32_to_bf16(-INFINITY), 0xff80);
    assert_true(isnan(bf16_to_f32(f32_to_bf16(bits_f32(0x7f800001)))));
    assert_true(isnan(bf16_to_f32(f32_to_bf16(bits_f32(0xffc00000)))));
}

/* F16 and BF16 rows through dtype_quantize/dequantize: representable values are exact. */
static void test_f16_bf16_rows(void **state)
{
    (void)state;
    enum { N = 4096 };
    float x[N], y[N];
    uint16_t h[N];
    struct err e = {0};
    for (int i = 0; i < N; i++)
        x[i] = fp16_to_f32((uint16_t)((i * 7 + 3) | (i & 1) << 15)); /* finite, subnormals too */
    assert_int_equal(dtype_quantize(DT_F16, x, h, N, &e), 0);
    assert_int_equal(dtype_dequantize(DT_F16, h, y, N, &e), 0);
    assert_memory_equal(x, y, sizeof x);
    for (int i = 0; i < N; i++)
        x[i] = bf16_to_f32((uint16_t)(i * 13 + 1));
    assert_int_equal(dtype_quantize(DT_BF16, x, h, N, &e), 0);
    assert_int_equal(dtype_dequantize(DT_BF16, h, y, N, &e), 0);
    for (int i = 0; i < N; i++)
        assert_true(f32_bits(x[i]) == f32_bits(y[i]) || (isnan(x[i]) && isnan(y[i])));
    assert_int_equal(dtype_quantize(DT_F32, x, y, N, &e), 0);
    assert_memory_equal(x, y, sizeof x);
}

/* ---- synthetic round trips ---- */

/* Worst-case error of one element as a fraction of its block's largest magnitude (or range, for
 * formats with an offset): half a quantization step, plus a full step where the format clamps
 * the top level (symmetric formats), plus fp16 rounding of the scales. Measured maxima sit well
 * inside these; a packing bug lands far outside. */
static double step_bound(uint32_t type)
{
    switch (type) {
    case DT_Q4_0: return 1.0 / 8 + 1e-3;
    case DT_Q5_0: return 1.0 / 16 + 1e-3;
    case DT_Q8_0: return 0.5 / 127 + 1e-3;
    case DT_Q4_1: return 0.5 / 15 + 2e-3;
    case DT_Q5_1: return 0.5 / 31 + 2e-3;
    /* K-quants: sub-block scales are 6-bit fractions of the super-block's largest, so a block's
     * step can be larger than its own range suggests; bound against the super-block range. */
    case DT_Q4_K: return 1.0 / 15;
    case DT_Q5_K: return 1.0 / 31;
    case DT_Q6_K: return 1.0 / 32;
    }
    return 0;
}

/* Tiny blocks have fp16-subnormal scales, whose absolute rounding (half of 2^-24) is magnified
 * by the largest level times the largest scale code. */
static double abs_floor(uint32_t type)
{
    double levels = 0;
    switch (type) {
    case DT_Q8_0: levels = 127; break;
    case DT_Q4_0: levels = 8; break;
    case DT_Q5_0: levels = 16; break;
    case DT_Q4_1: levels = 16; break;
    case DT_Q5_1: levels = 32; break;
    case DT_Q4_K: levels = 2 * 63 * 16; break;
    case DT_Q5_K: levels = 2 * 63 * 32; break;
    case DT_Q6_K: levels = 128 * 32; break;
    }
    return levels * ldexp(1.0, -25);
}

static void check_block_bounds(uint32_t type, const float *x, const float *y, int64_t n)
{
    const struct dtype_info *d = dtype_get(type);
    const bool affine = type == DT_Q4_1 || type == DT_Q5_1 || type == DT_Q4_K || type == DT_Q5_K;
    for (int64_t b = 0; b < n; b += d->block_size) {
        float lo = 0, hi = 0, amax = 0;
        for (uint32_t i = 0; i < d->block_size; i++) {
            float v = x[b + i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            amax = fabsf(v) > amax ? fabsf(v) : amax;
        }
        double bound = step_bound(type) * (affine ? (double)(hi - lo) : (double)amax) + abs_floor(type);
        for (uint32_t i = 0; i < d->block_size; i++) {
            double err = fabs((double)x[b + i] - (double)y[b + i]);
            if (err > bound)
                fail_msg("%s: element %lld: %g became %g (error %g > bound %g)", d->name, (long long)(b + i),
                         (double)x[b + i], (double)y[b + i], err, bound);
        }
    }
}

static void test_round_trip_random(void **state)
{
    (void)state;
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_true(x && y);
    /* Ceiling on RMSE / sigma for N(0, sigma) data with 1% outliers at 8x: about 5% above what
     * these quantizers reach (and what llama.cpp's reach on the same kind of data), so a worse
     * rounding rule, a lost scale search or a misplaced bit fails. */
    static const struct {
        uint32_t type;
        double max_rel;
    } rel[] = {{DT_Q4_0, 0.181}, {DT_Q4_1, 0.116}, {DT_Q5_0, 0.093}, {DT_Q5_1, 0.068},
               {DT_Q8_0, 0.012}, {DT_Q4_K, 0.110}, {DT_Q5_K, 0.058}, {DT_Q6_K, 0.032}};
    for (size_t t = 0; t < sizeof rel / sizeof rel[0]; t++) {
        for (int scale_i = 0; scale_i < 3; scale_i++) {
            /* Typical weights, large values near the fp16 limit, and tiny ones. */
            const float sigma = scale_i == 0 ? 1.0f : scale_i == 1 ? 1000.0f : 1e-3f;
            fill_weights(x, N, sigma, 11 + t);
            round_trip(rel[t].type, x, y, N);
            check_block_bounds(rel[t].type, x, y, N);
            double r = rmse(x, y, N) / sigma;
            if (r > rel[t].max_rel)
                fail_msg("%s at sigma %g: relative RMSE %g > %g", dtype_name(rel[t].type), (double)sigma, r,
                         rel[t].max_rel);
        }
    }
    free(x);
    free(y);
}

static void test_zero_and_constant_blocks(void **state)
{
    (void)state;
    enum { N = 512 };
    float x[N], y[N];
    for (size_t t = 0; t < N_QUANTIZABLE; t++) {
        uint32_t type = quantizable[t];
        /* All zero: exactly zero out, no NaN from a zero scale. */
        memset(x, 0, sizeof x);
        round_trip(type, x, y, N);
        for (int i = 0; i < N; i++)
            assert_true(y[i] == 0.0f);
        /* Constant blocks of either sign, and a row of alternating constant blocks. Values are
         * exact in fp16 so only the format's own arithmetic can move them. */
        static const float consts[] = {0.5f, -0.5f, 3.0f, -1.25f};
        for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
            for (int i = 0; i < N; i++)
                x[i] = (i / 256) % 2 ? consts[c] : -consts[c];
            round_trip(type, x, y, N);
            for (int i = 0; i < N; i++) {
                double err = fabs((double)y[i] - x[i]);
                if (err > 2e-3 * fabs(x[i]))
                    fail_msg("%s: constant %g came back as %g", dtype_name(type), (double)x[i], (double)y[i]);
            }
        }
        /* A single spike in a zero block: the spike survives to within a step, the zeros stay
         * small. */
        memset(x, 0, sizeof x);
        x[37] = 2.5f;
        x[300] = -7.0f;
        round_trip(type, x, y, N);
        assert_true(fabs(y[37] - 2.5) <= 2.5 * 0.07);
        assert_true(fabs(y[300] + 7.0) <= 7.0 * 0.07);
        for (int i = 0; i < N; i++)
            if (i != 37 && i != 300)
                assert_true(fabs(y[i]) <= 7.0 * 0.07);
    }
}

/* Legacy formats pick their levels by a fixed rule; check it on a hand-made block. */
static void test_legacy_levels(void **state)
{
    (void)state;
    float x[32];
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16) * 0.5f; /* -8 .. 7.5 */
    struct block_q4_0 q4;
    quant_quantize_q4_0(x, &q4, 32);
    /* The extreme is -8, so d = -8 / -8 = 1, and level = round(x / 1) + 8. */
    assert_true(fp16_to_f32(q4.d) == 1.0f);
    for (int j = 0; j < 16; j++) {
        /* 7.5 would be level 16, which does not exist: the top is clamped to 15. */
        assert_int_equal(q4.qs[j] & 0x0f, (int)floorf(x[j] + 8.5f));
        assert_int_equal(q4.qs[j] >> 4, (int)fminf(15.0f, floorf(x[j + 16] + 8.5f)));
    }
    struct block_q8_0 q8;
    quant_quantize_q8_0(x, &q8, 32);
    assert_true(fabsf(fp16_to_f32(q8.d) - 8.0f / 127.0f) < 1e-5f);
    assert_int_equal(q8.qs[0], -127);
    struct block_q5_1 q51;
    quant_quantize_q5_1(x, &q51, 32);
    assert_true(fp16_to_f32(q51.m) == -8.0f);
    assert_true(fabsf(fp16_to_f32(q51.d) - 15.5f / 31.0f) < 1e-3f);
    float y[32];
    quant_dequantize_q5_1(&q51, y, 32);
    for (int i = 0; i < 32; i++)
        assert_true(fabsf(y[i] - x[i]) < 0.01f);
}

/* Unaligned source and destination buffers give the same bytes and values as aligned ones. */
static void test_unaligned(void **state)
{
    (void)state;
    enum { N = 512 };
    float x[N], y1[N], y2[N];
    fill_weights(x, N, 0.02f, 3);
    for (size_t t = 0; t < N_QUANTIZABLE; t++) {
        uint32_t type = quantizable[t];
        size_t bytes = dtype_row_bytes(type, N);
        unsigned char *a = malloc(bytes + 8), *b = malloc(bytes + 8);
        assert_true(a && b);
        struct err e = {0};
        assert_int_equal(dtype_quantize(type, x, a, N, &e), 0);
        assert_int_equal(dtype_quantize(type, x, b + 1, N, &e), 0);
        assert_memory_equal(a, b + 1, bytes);
        assert_int_equal(dtype_dequantize(type, a, y1, N, &e), 0);
        assert_int_equal(dtype_dequantize(type, b + 1, y2, N, &e), 0);
        assert_memory_equal(y1, y2, sizeof y1);
        free(a);
        free(b);
    }
}

/* Quantizers keep no state: concurrent calls give the bytes a lone call gives. */
struct par_job {
    uint32_t type;
    const float *x;
    unsigned char *out;
    int64_t n;
};

static void *par_run(void *arg)
{
    struct par_job *j = arg;
    struct err e = {0};
    for (int rep = 0; rep < 3; rep++)
        if (dtype_quantize(j->type, j->x, j->out, j->n, &e) != 0)
            return arg;
    return NULL;
}

static void test_thread_safety(void **state)
{
    (void)state;
    enum { N = 8192, T = 4 };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    fill_weights(x, N, 0.02f, 5);
    const uint32_t types[] = {DT_Q4_K, DT_Q6_K};
    for (size_t k = 0; k < 2; k++) {
        size_t bytes = dtype_row_bytes(types[k], N);
        unsigned char *want = malloc(bytes);
        struct err e = {0};
        assert_int_equal(dtype_quantize(types[k], x, want, N, &e), 0);
        pthread_t th[T];
        struct par_job jobs[T];
        for (int i = 0; i < T; i++) {
            jobs[i] = (struct par_job){types[k], x, malloc(bytes), N};
            assert_int_equal(pthread_create(&th[i], NULL, par_run, &jobs[i]), 0);
        }
        for (int i = 0; i < T; i++) {
            void *ret;
            pthread_join(th[i], &ret);
            assert_null(ret);
            assert_memory_equal(jobs[i].out, want, bytes);
            free(jobs[i].out);
        }
        free(want);
    }
    free(x);
}

/* Q8_1 and Q8_K (activation formats, reached through quant.h only). */
static void test_activation_formats(void **state)
{
    (void)state;
    enum { N = 512 };
    float x[N], y[N];
    fill_weights(x, N, 1.0f, 9);
    struct block_q8_1 q81[N / 32];
    quant_quantize_q8_1(x, q81, N);
    quant_dequantize_q8_1(q81, y, N);
    check_block_bounds(DT_Q8_0, x, y, N);
    for (int b = 0; b < N / 32; b++) {
        float sum = 0;
        for (int i = 0; i < 32; i++)
            sum += y[32 * b + i];
        assert_true(fabsf(fp16_to_f32(q81[b].s) - sum) <= 1e-3f * (1 + fabsf(sum)));
    }
    struct block_q8_k q8k[N / 256];
    quant_quantize_q8_k(x, q8k, N);
    quant_dequantize_q8_k(q8k, y, N);
    for (int b = 0; b < N / 256; b++) {
        float amax = 0;
        for (int i = 0; i < 256; i++)
            amax = fabsf(x[256 * b + i]) > amax ? fabsf(x[256 * b + i]) : amax;
        for (int i = 0; i < 256; i++)
            assert_true(fabsf(y[256 * b + i] - x[256 * b + i]) <= amax * (0.5f / 127 + 1e-6f));
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += q8k[b].qs[16 * g + i];
            assert_int_equal(q8k[b].bsums[g], s);
        }
    }
}

/* ---- llama.cpp reference files ---- */

static json_t *load_manifest(void)
{
    const char *path = tu_shared("reference/quant/manifest.json");
    if (!path)
        return NULL;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        fail_msg("%s:%d: %s", path, je.line, je.text);
    return root;
}

/* "quant-Q4_0.gguf.xz" -> "reference/quant/quant-Q4_0.gguf" */
static const char *unpacked(const char *xz_name)
{
    static char rel[256];
    snprintf(rel, sizeof rel, "reference/quant/%s", xz_name);
    size_t len = strlen(rel);
    if (len > 3 && strcmp(rel + len - 3, ".xz") == 0)
        rel[len - 3] = '\0';
    return tu_testdata(rel);
}

static int64_t tensor_elems(const struct gguf_tensor *t)
{
    int64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; i++)
        n *= t->ne[i];
    return n;
}

/* Whole tensor to float32, a row at a time as a caller of the API would. */
static float *dequantize_tensor(const struct gguf_tensor *t)
{
    int64_t n = tensor_elems(t), row = t->ne[0];
    float *out = malloc((size_t)n * sizeof *out);
    assert_non_null(out);
    size_t row_bytes = dtype_row_bytes(t->type, row);
    assert_true(row_bytes > 0);
    assert_int_equal(row_bytes * (size_t)(n / row), t->size);
    struct err e = {0};
    for (int64_t r = 0; r < n / row; r++)
        if (dtype_dequantize(t->type, (const char *)t->data + (size_t)r * row_bytes, out + r * row, row, &e) != 0)
            fail_msg("%s: %s", t->name, e.msg);
    return out;
}

static struct gguf_file *open_gguf(const char *path)
{
    struct gguf_file *f = NULL;
    struct err e = {0};
    if (gguf_open(path, &f, &e) != 0)
        fail_msg("%s", e.msg);
    return f;
}

/* Every tensor of every llama.cpp file: the two listed ones equal gguf-py's dequantized values,
 * and every one is as far from the F32 source as llama.cpp measured. */
static void test_reference_dequantize(void **state)
{
    (void)state;
    json_t *m = load_manifest();
    TU_REQUIRE(m);
    const char *src_path = unpacked(json_string_value(json_object_get(m, "source")));
    TU_REQUIRE(src_path);
    struct gguf_file *src = open_gguf(src_path);
    json_t *files = json_object_get(m, "files");
    assert_true(json_array_size(files) >= 10);
    size_t i;
    json_t *fe;
    int checked_expected = 0;
    json_array_foreach(files, i, fe) {
        const char *fname = json_string_value(json_object_get(fe, "file"));
        const char *path = unpacked(fname);
        const char *exp_path = unpacked(json_string_value(json_object_get(fe, "expected_file")));
        TU_REQUIRE(path);
        TU_REQUIRE(exp_path);
        size_t exp_size;
        float *expected = (float *)tu_read(exp_path, &exp_size);
        struct gguf_file *f = open_gguf(path);
        size_t k;
        json_t *te;
        json_array_foreach(json_object_get(fe, "tensors"), k, te) {
            const char *name = json_string_value(json_object_get(te, "name"));
            const struct gguf_tensor *t = gguf_find_tensor(f, name);
            const struct gguf_tensor *s = gguf_find_tensor(src, name);
            if (!t || !s)
                fail_msg("%s: tensor %s missing", fname, name);
            assert_string_equal(dtype_name(t->type), json_string_value(json_object_get(te, "type")));
            int64_t n = tensor_elems(t);
            assert_int_equal(n, json_integer_value(json_object_get(te, "n")));
            assert_int_equal(s->type, DT_F32);
            float *y = dequantize_tensor(t);

            json_t *off = json_object_get(te, "expected_offset_floats");
            if (off) {
                int64_t o = json_integer_value(off);
                assert_true((size_t)(o + n) * sizeof(float) <= exp_size);
                float amax = 0, maxdiff = 0;
                for (int64_t j = 0; j < n; j++) {
                    amax = fabsf(expected[o + j]) > amax ? fabsf(expected[o + j]) : amax;
                    float diff = fabsf(expected[o + j] - y[j]);
                    maxdiff = diff > maxdiff ? diff : maxdiff;
                }
                assert_true(amax > 0);
                if (maxdiff > 1e-6f * amax)
                    fail_msg("%s %s (%s): max diff %g vs gguf-py (max |value| %g)", fname, name,
                             dtype_name(t->type), (double)maxdiff, (double)amax);
                checked_expected++;
            }
            double r = rmse(y, (const float *)s->data, n);
            double want = json_real_value(json_object_get(te, "rmse_vs_source"));
            if (fabs(r - want) > 1e-4 * want + 1e-9)
                fail_msg("%s %s: RMSE vs source %.9g, llama.cpp measured %.9g", fname, name, r, want);
            free(y);
        }
        gguf_close(f);
        free(expected);
    }
    assert_int_equal(checked_expected, 2 * (int)json_array_size(files));
    gguf_close(src);
    json_decref(m);
}

/* hearth's quantizers on the F32 source: per tensor, no worse than 1.05x llama.cpp's RMSE. */
static void test_reference_quantize_quality(void **state)
{
    (void)state;
    json_t *m = load_manifest();
    TU_REQUIRE(m);
    const char *src_path = unpacked(json_string_value(json_object_get(m, "source")));
    TU_REQUIRE(src_path);
    struct gguf_file *src = open_gguf(src_path);
    size_t i;
    json_t *fe;
    int checked = 0;
    double worst = 0;
    json_array_foreach(json_object_get(m, "files"), i, fe) {
        size_t k;
        json_t *te;
        json_array_foreach(json_object_get(fe, "tensors"), k, te) {
            int type = dtype_from_name(json_string_value(json_object_get(te, "type")));
            assert_true(type >= 0);
            if (type == DT_F32 || !dtype_get((uint32_t)type)->can_quantize)
                continue;
            const char *name = json_string_value(json_object_get(te, "name"));
            const struct gguf_tensor *s = gguf_find_tensor(src, name);
            assert_non_null(s);
            int64_t n = tensor_elems(s), row = s->ne[0];
            const float *x = s->data;
            float *y = malloc((size_t)n * sizeof *y);
            void *q = malloc(dtype_row_bytes((uint32_t)type, n));
            assert_true(y && q);
            struct err e = {0};
            size_t rb = dtype_row_bytes((uint32_t)type, row);
            for (int64_t r = 0; r < n / row; r++) {
                if (dtype_quantize((uint32_t)type, x + r * row, (char *)q + r * rb, row, &e) != 0)
                    fail_msg("%s: %s", name, e.msg);
            }
            assert_int_equal(dtype_dequantize((uint32_t)type, q, y, n, &e), 0);
            double r = rmse(x, y, n);
            double want = json_real_value(json_object_get(te, "rmse_vs_source"));
            print_message("%-5s %-26s hearth %.6g  llama.cpp %.6g  ratio %.4f\n", dtype_name((uint32_t)type), name,
                          r, want, r / want);
            worst = r / want > worst ? r / want : worst;
            if (r > 1.05 * want)
                fail_msg("%s %s: RMSE %.6g > 1.05 x llama.cpp's %.6g", dtype_name((uint32_t)type), name, r, want);
            checked++;
            free(y);
            free(q);
        }
    }
    print_message("worst ratio %.4f over %d tensors\n", worst, checked);
    assert_int_equal(checked, 8 * 9);
    gguf_close(src);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_f16_bf16_rows),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_zero_and_constant_blocks),
        cmocka_unit_test(test_legacy_levels),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_thread_safety),
        cmocka_unit_test(test_activation_formats),
        cmocka_unit_test(test_reference_dequantize),
        cmocka_unit_test(test_reference_quantize_quality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
