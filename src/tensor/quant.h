/* quant.h — the GGUF block formats, byte for byte, and their scalar reference conversions.
 *
 * Each struct below is the exact on-disk layout of one block as GGUF (and ggml) stores it; a
 * static assertion pins its size to the type table in dtype.c. Half-precision fields are raw
 * IEEE binary16 bits (convert with fp16_to_f32). Multi-byte fields are little-endian, which is
 * what every machine hearth targets uses natively.
 *
 * The row functions convert n elements (a multiple of the block size) between float32 and a
 * packed row. They trust their arguments and assume the blocks are suitably aligned; the checked
 * entry points with error reporting (and a path for unaligned data) are dtype_dequantize and
 * dtype_quantize in tensor.h. Quantizers are pure functions of their input: no state, no
 * allocation, safe to call from many threads at once. */
#ifndef HEARTH_TENSOR_QUANT_H
#define HEARTH_TENSOR_QUANT_H

#include <stdint.h>

#include "tensor/tensor.h"

#define QUANT_QK 32   /* elements per block of the legacy formats */
#define QUANT_QKK 256 /* elements per super-block of the K-quants */

/* ---- legacy formats: blocks of 32, one scale each ---- */

/* Q4_0 (18 bytes): symmetric 4-bit.
 *   d      scale (fp16)
 *   qs[j]  low nibble = quant of element j, high nibble = quant of element j+16 (j < 16)
 * value = d * (q - 8), q in 0..15. */
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QUANT_QK / 2];
};

/* Q4_1 (20 bytes): 4-bit with an offset.
 *   d, m   scale and minimum (fp16)
 *   qs[j]  nibbles as in Q4_0
 * value = d * q + m, q in 0..15. */
struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QUANT_QK / 2];
};

/* Q5_0 (22 bytes): symmetric 5-bit.
 *   d      scale (fp16)
 *   qh     32 fifth bits, read as a little-endian uint32: bit j is bit 4 of element j's quant
 *   qs[j]  low 4 bits of element j (low nibble) and of element j+16 (high nibble)
 * value = d * (q - 16), q in 0..31. */
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK / 2];
};

/* Q5_1 (24 bytes): 5-bit with an offset; d, m as in Q4_1, qh and qs as in Q5_0.
 * value = d * q + m, q in 0..31. */
struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK / 2];
};

/* Q8_0 (34 bytes): symmetric 8-bit.  value = d * qs[j], qs signed. */
struct block_q8_0 {
    uint16_t d;
    int8_t qs[QUANT_QK];
};

/* Q8_1 (36 bytes): Q8_0 plus s = d * sum(qs), which lets a dot product with Q4_1/Q5_1 weights
 * fold their offsets in with one multiply. Used for activations, not stored weights. */
struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[QUANT_QK];
};

/* ---- K-quants: super-blocks of 256 made of 16 or 32-element sub-blocks whose scales are
 * themselves quantized against one or two fp16 super-scales ---- */

/* Q2_K (84 bytes): 16 sub-blocks of 16, 2-bit quants, 4-bit scale and 4-bit min per sub-block.
 *   scales[i]  low nibble = scale, high nibble = min, of sub-block i
 *   qs         64 bytes in two halves of 32 (elements 0..127 and 128..255). Within a half, byte l
 *              holds four 2-bit quants at shifts 0,2,4,6 for elements l, l+32, l+64, l+96.
 *   d, dmin    super-scales (fp16)
 * value = d * scale_i * q - dmin * min_i, q in 0..3, i = element / 16. */
struct block_q2_k {
    uint8_t scales[QUANT_QKK / 16];
    uint8_t qs[QUANT_QKK / 4];
    uint16_t d;
    uint16_t dmin;
};

/* Q3_K (110 bytes): 16 sub-blocks of 16, 3-bit quants, signed 6-bit scales.
 *   hmask      32 bytes; bit k of hmask[l] is the high bit of element 32*k + l. A SET bit adds
 *              nothing, a clear one subtracts 4 (so q ranges over -4..3).
 *   qs         the low two bits, packed as in Q2_K
 *   scales     twelve bytes holding sixteen 6-bit values s_i: the low 4 bits of s_i are the low
 *              nibble of scales[i] (i < 8) or the high nibble of scales[i-8] (i >= 8); its high
 *              2 bits are bits 2*(i/4)..2*(i/4)+1 of scales[8 + i%4]
 *   d          super-scale (fp16)
 * value = d * (s_i - 32) * (low2 - (high ? 0 : 4)), i = element / 16. */
struct block_q3_k {
    uint8_t hmask[QUANT_QKK / 8];
    uint8_t qs[QUANT_QKK / 4];
    uint8_t scales[12];
    uint16_t d;
};

/* Q4_K (144 bytes): 8 sub-blocks of 32, 4-bit quants, 6-bit scale and 6-bit min per sub-block.
 *   d, dmin    super-scales (fp16)
 *   scales     twelve bytes holding eight 6-bit scales sc_j and eight 6-bit mins m_j:
 *              j < 4:  sc_j = scales[j] & 63, m_j = scales[j+4] & 63
 *              j >= 4: sc_j = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4
 *                      m_j  = (scales[j+4] >> 4) | (scales[j]   >> 6) << 4
 *   qs         128 bytes in four runs of 32: byte l of run r holds element 64r+l in its low
 *              nibble and element 64r+32+l in its high nibble
 * value = d * sc_j * q - dmin * m_j, q in 0..15, j = element / 32. */
struct block_q4_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[QUANT_QKK / 2];
};

/* Q5_K (176 bytes): Q4_K plus a fifth bit.
 *   d, dmin, scales  as in Q4_K
 *   qh         32 bytes; bit j of qh[l] is bit 4 of element 32*j + l
 *   qs         the low 4 bits, packed as in Q4_K
 * value = d * sc_j * q - dmin * m_j, q in 0..31. */
struct block_q5_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[QUANT_QKK / 8];
    uint8_t qs[QUANT_QKK / 2];
};

/* Q6_K (210 bytes): 16 sub-blocks of 16, 6-bit quants, signed 8-bit scales.
 *   ql         low 4 bits, two halves of 64 bytes (elements 0..127, 128..255). Within a half,
 *              byte l (l < 32) holds element l (low nibble) and l+64 (high nibble); byte 32+l
 *              holds element l+32 (low) and l+96 (high).
 *   qh         high 2 bits, two halves of 32 bytes; byte l of a half holds elements l, l+32,
 *              l+64, l+96 at shifts 0, 2, 4, 6
 *   scales[i]  signed scale of sub-block i
 *   d          super-scale (fp16)
 * value = d * scales[i] * (q - 32), q in 0..63, i = element / 16. */
struct block_q6_k {
    uint8_t ql[QUANT_QKK / 2];
    uint8_t qh[QUANT_QKK / 4];
    int8_t scales[QUANT_QKK / 16];
    uint16_t d;
};

/* Q8_K (292 bytes): the activation format K-quant dot products pair with.
 *   d          scale (float32, not fp16: activations need the range)
 *   qs         signed 8-bit quants
 *   bsums[i]   sum of qs over elements 16i..16i+15, precomputed for the weights' min terms
 * value = d * qs[j]. */
struct block_q8_k {
    float d;
    int8_t qs[QUANT_QKK];
    int16_t bsums[QUANT_QKK / 16];
};

_Static_assert(sizeof(struct block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(struct block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(struct block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(struct block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(struct block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(struct block_q8_1) == 36, "Q8_1 block is 36 bytes");
_Static_assert(sizeof(struct block_q2_k) == 84, "Q2_K block is 84 bytes");
_Static_assert(sizeof(struct block_q3_k) == 110, "Q3_K block is 110 bytes");
_Static_assert(sizeof(struct block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(struct block_q5_k) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(struct block_q6_k) == 210, "Q6_K block is 210 bytes");
_Static_assert(sizeof(struct block_q8_k) == 292, "Q8_K block is 292 bytes");

/* The largest block of any format, for callers that stage one block in a stack buffer. */
#define QUANT_MAX_BLOCK_BYTES 292

/* ---- row conversions (n a multiple of the block size) ---- */

void quant_dequantize_q4_0(const struct block_q4_0 *x, float *y, int64_t n);
void quant_dequantize_q4_1(const struct block_q4_1 *x, float *y, int64_t n);
void quant_dequantize_q5_0(const struct block_q5_0 *x, float *y, int64_t n);
void quant_dequantize_q5_1(const struct block_q5_1 *x, float *y, int64_t n);
void quant_dequantize_q8_0(const struct block_q8_0 *x, float *y, int64_t n);
void quant_dequantize_q8_1(const struct block_q8_1 *x, float *y, int64_t n);
void quant_dequantize_q2_k(const struct block_q2_k *x, float *y, int64_t n);
void quant_dequantize_q3_k(const struct block_q3_k *x, float *y, int64_t n);
void quant_dequantize_q4_k(const struct block_q4_k *x, float *y, int64_t n);
void quant_dequantize_q5_k(const struct block_q5_k *x, float *y, int64_t n);
void quant_dequantize_q6_k(const struct block_q6_k *x, float *y, int64_t n);
void quant_dequantize_q8_k(const struct block_q8_k *x, float *y, int64_t n);

/* Legacy formats: the scale comes from the largest magnitude (Q4_0, Q5_0, Q8_0) or the range
 * (Q4_1, Q5_1) of each block, rounded once; this is what llama.cpp writes without an
 * importance matrix. */
void quant_quantize_q4_0(const float *x, struct block_q4_0 *y, int64_t n);
void quant_quantize_q4_1(const float *x, struct block_q4_1 *y, int64_t n);
void quant_quantize_q5_0(const float *x, struct block_q5_0 *y, int64_t n);
void quant_quantize_q5_1(const float *x, struct block_q5_1 *y, int64_t n);
void quant_quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t n);
/* Activation formats (dot-product partners; not offered by dtype_quantize). */
void quant_quantize_q8_1(const float *x, struct block_q8_1 *y, int64_t n);
void quant_quantize_q8_k(const float *x, struct block_q8_k *y, int64_t n);

/* K-quants: each sub-block's scale (and min) come from a least-squares search over candidate
 * scales, then the sub-block scales are quantized and the quants re-rounded against them. */
void quant_quantize_q4_k(const float *x, struct block_q4_k *y, int64_t n);
void quant_quantize_q5_k(const float *x, struct block_q5_k *y, int64_t n);
void quant_quantize_q6_k(const float *x, struct block_q6_k *y, int64_t n);

/* Shared helper of the quantizers: round to nearest (ties to even) and clamp to [lo, hi]. Safe
 * for any input, NaN included (which goes to lo). */
static inline int quant_round_clamp(float v, int lo, int hi)
{
    if (!(v > (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    /* Adding 1.5 * 2^23 pushes the fraction out of the mantissa, so the FPU's default
     * round-to-nearest-even does the rounding; v is small here, so the trick is exact. */
    float t = v + 12582912.0f;
    union {
        float f;
        int32_t i;
    } u = {t};
    return (int)((u.i & 0x007fffff) - 0x00400000);
}

#endif
