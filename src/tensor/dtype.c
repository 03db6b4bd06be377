/* dtype.c — the table of tensor data types (block sizes, bytes per block) and fp16/bf16 conversion. */
#include "tensor/tensor.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define QK 32  /* elements per block of the legacy formats */
#define QKK 256 /* elements per super-block of the K-quants */

static const struct dtype_info dtypes[DT_MAX] = {
    [DT_F32] = {"F32", 1, 4, true, true},
    [DT_F16] = {"F16", 1, 2, true, true},
    [DT_BF16] = {"BF16", 1, 2, true, true},
    [DT_Q4_0] = {"Q4_0", QK, 2 + QK / 2, true, true},
    [DT_Q4_1] = {"Q4_1", QK, 4 + QK / 2, true, true},
    [DT_Q5_0] = {"Q5_0", QK, 2 + 4 + QK / 2, true, true},
    [DT_Q5_1] = {"Q5_1", QK, 4 + 4 + QK / 2, true, true},
    [DT_Q8_0] = {"Q8_0", QK, 2 + QK, true, true},
    [DT_Q8_1] = {"Q8_1", QK, 4 + QK, false, false},
    [DT_Q2_K] = {"Q2_K", QKK, QKK / 16 + QKK / 4 + 4, true, false},
    [DT_Q3_K] = {"Q3_K", QKK, QKK / 8 + QKK / 4 + 12 + 2, true, false},
    [DT_Q4_K] = {"Q4_K", QKK, 4 + 12 + QKK / 2, true, true},
    [DT_Q5_K] = {"Q5_K", QKK, 4 + 12 + QKK / 8 + QKK / 2, true, true},
    [DT_Q6_K] = {"Q6_K", QKK, QKK / 2 + QKK / 4 + QKK / 16 + 2, true, true},
    [DT_Q8_K] = {"Q8_K", QKK, 4 + QKK + QKK / 16 * 2, false, false},
    [DT_I8] = {"I8", 1, 1, false, false},
    [DT_I16] = {"I16", 1, 2, false, false},
    [DT_I32] = {"I32", 1, 4, false, false},
    [DT_I64] = {"I64", 1, 8, false, false},
    [DT_F64] = {"F64", 1, 8, false, false},
};

const struct dtype_info *dtype_get(uint32_t type)
{
    if (type >= DT_MAX || dtypes[type].name == NULL)
        return NULL;
    return &dtypes[type];
}

const char *dtype_name(uint32_t type)
{
    const struct dtype_info *d = dtype_get(type);
    return d ? d->name : "unknown";
}

int dtype_from_name(const char *name)
{
    for (uint32_t t = 0; t < DT_MAX; t++)
        if (dtypes[t].name && strcasecmp(dtypes[t].name, name) == 0)
            return (int)t;
    return -1;
}

size_t dtype_row_bytes(uint32_t type, int64_t n)
{
    const struct dtype_info *d = dtype_get(type);
    if (!d || n < 0 || n % d->block_size != 0)
        return 0;
    uint64_t blocks = (uint64_t)n / d->block_size;
    if (blocks > SIZE_MAX / d->type_size)
        return 0;
    return (size_t)(blocks * d->type_size);
}

float fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx > 0x7f800000) /* NaN: keep it quiet */
        return (uint16_t)(sign | 0x7e00);
    if (absx >= 0x477ff000) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000) { /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000)
            return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t e = (absx >> 23) - 127 + 15;
    uint32_t m = absx & 0x7fffff;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is the right answer */
    return (uint16_t)(sign | h);
}

float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
