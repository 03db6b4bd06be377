/* convert.c — dtype_dequantize and dtype_quantize: argument checks and dispatch to the per-format
 * row conversions of quant_legacy.c and quant_k.c, plus the plain F32/F16/BF16 cases.
 *
 * Tensor data usually sits in a memory map at an aligned offset, but nothing in the API promises
 * it; block structs hold 2- and 4-byte fields, so a misaligned pointer is staged one block at a
 * time through an aligned stack buffer rather than dereferenced in place. */
#include "tensor/quant.h"

#include <math.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

/* Block formats keep an fp16 scale, which cannot describe values beyond the half range. */
#define BLOCK_MAX_ABS 65504.0f

typedef void (*dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*quant_fn)(const float *src, void *dst, int64_t n);

static void deq_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void deq_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = fp16_to_f32(h[i]);
}

static void deq_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = bf16_to_f32(h[i]);
}

static void q_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void q_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = f32_to_fp16(src[i]);
}

static void q_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = f32_to_bf16(src[i]);
}

/* Adapters from the typed row functions to the generic signatures. */
#define DEQ(name, block)                                                                           \
    static void deq_##name(const void *src, float *dst, int64_t n)                                 \
    {                                                                                              \
        quant_dequantize_##name((const struct block *)src, dst, n);                                \
    }
#define QNT(name, block)                                                                           \
    static void q_##name(const float *src, void *dst, int64_t n)                                   \
    {                                                                                              \
        quant_quantize_##name(src, (struct block *)dst, n);                                        \
    }
DEQ(q4_0, block_q4_0)
DEQ(q4_1, block_q4_1)
DEQ(q5_0, block_q5_0)
DEQ(q5_1, block_q5_1)
DEQ(q8_0, block_q8_0)
DEQ(q2_k, block_q2_k)
DEQ(q3_k, block_q3_k)
DEQ(q4_k, block_q4_k)
DEQ(q5_k, block_q5_k)
DEQ(q6_k, block_q6_k)
QNT(q4_0, block_q4_0)
QNT(q4_1, block_q4_1)
QNT(q5_0, block_q5_0)
QNT(q5_1, block_q5_1)
QNT(q8_0, block_q8_0)
QNT(q4_k, block_q4_k)
QNT(q5_k, block_q5_k)
QNT(q6_k, block_q6_k)

struct conv {
    dequant_fn deq;
    quant_fn q;
    size_t align; /* alignment the block struct (or element) needs */
};

/* Must agree with can_dequantize / can_quantize in dtype.c's table (the tests check this). */
static const struct conv convs[DT_MAX] = {
    [DT_F32] = {deq_f32, q_f32, 1},
    [DT_F16] = {deq_f16, q_f16, alignof(uint16_t)},
    [DT_BF16] = {deq_bf16, q_bf16, alignof(uint16_t)},
    [DT_Q4_0] = {deq_q4_0, q_q4_0, alignof(struct block_q4_0)},
    [DT_Q4_1] = {deq_q4_1, q_q4_1, alignof(struct block_q4_1)},
    [DT_Q5_0] = {deq_q5_0, q_q5_0, alignof(struct block_q5_0)},
    [DT_Q5_1] = {deq_q5_1, q_q5_1, alignof(struct block_q5_1)},
    [DT_Q8_0] = {deq_q8_0, q_q8_0, alignof(struct block_q8_0)},
    [DT_Q2_K] = {deq_q2_k, NULL, alignof(struct block_q2_k)},
    [DT_Q3_K] = {deq_q3_k, NULL, alignof(struct block_q3_k)},
    [DT_Q4_K] = {deq_q4_k, q_q4_k, alignof(struct block_q4_k)},
    [DT_Q5_K] = {deq_q5_k, q_q5_k, alignof(struct block_q5_k)},
    [DT_Q6_K] = {deq_q6_k, q_q6_k, alignof(struct block_q6_k)},
};

static int check_args(const char *what, uint32_t type, const void *a, const void *b, int64_t n,
                      const struct dtype_info **info, struct err *e)
{
    const struct dtype_info *d = dtype_get(type);
    if (!d)
        return err_set(e, ERR_UNSUPPORTED, "%s: unknown tensor type id %u", what, type);
    if (n < 0 || n % d->block_size != 0)
        return err_set(e, ERR_INVALID, "%s %s: %lld elements is not a multiple of the block size %u", what,
                       d->name, (long long)n, d->block_size);
    if (n > 0 && (!a || !b))
        return err_set(e, ERR_INVALID, "%s %s: NULL buffer", what, d->name);
    if (dtype_row_bytes(type, n) == 0 && n > 0)
        return err_set(e, ERR_RANGE, "%s %s: %lld elements do not fit in memory", what, d->name, (long long)n);
    *info = d;
    return 0;
}

int dtype_dequantize(uint32_t type, const void *src, float *dst, int64_t n, struct err *e)
{
    const struct dtype_info *d;
    int rc = check_args("dequantize", type, src, dst, n, &d, e);
    if (rc)
        return rc;
    const struct conv *c = &convs[type];
    if (!d->can_dequantize || !c->deq)
        return err_set(e, ERR_UNSUPPORTED, "dequantize: hearth cannot convert %s tensors to F32", d->name);
    if ((uintptr_t)src % c->align == 0) {
        c->deq(src, dst, n);
        return 0;
    }
    alignas(max_align_t) unsigned char block[QUANT_MAX_BLOCK_BYTES];
    const unsigned char *p = src;
    for (int64_t i = 0; i < n; i += d->block_size, p += d->type_size) {
        memcpy(block, p, d->type_size);
        c->deq(block, dst + i, d->block_size);
    }
    return 0;
}

int dtype_quantize(uint32_t type, const float *src, void *dst, int64_t n, struct err *e)
{
    const struct dtype_info *d;
    int rc = check_args("quantize", type, src, dst, n, &d, e);
    if (rc)
        return rc;
    const struct conv *c = &convs[type];
    if (!d->can_quantize || !c->q)
        return err_set(e, ERR_UNSUPPORTED, "quantize: hearth has no quantizer for %s (it can read it, not write it)",
                       d->name);
    if (d->block_size > 1) {
        /* A non-finite or out-of-range value would silently become inf or NaN in every element
         * of its block; refuse it instead, naming where it is. */
        for (int64_t i = 0; i < n; i++) {
            if (!(fabsf(src[i]) <= BLOCK_MAX_ABS))
                return err_set(e, ERR_RANGE,
                               "quantize %s: element %lld is %g; block formats hold only finite values of "
                               "magnitude up to %g",
                               d->name, (long long)i, (double)src[i], (double)BLOCK_MAX_ABS);
        }
    }
    if ((uintptr_t)dst % c->align == 0) {
        c->q(src, dst, n);
        return 0;
    }
    alignas(max_align_t) unsigned char block[QUANT_MAX_BLOCK_BYTES];
    unsigned char *p = dst;
    for (int64_t i = 0; i < n; i += d->block_size, p += d->type_size) {
        c->q(src + i, block, d->block_size);
        memcpy(p, block, d->type_size);
    }
    return 0;
}
