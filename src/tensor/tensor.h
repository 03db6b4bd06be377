/* tensor.h — element and block data types of GGUF tensors: their sizes, and the scalar reference
 * conversions to and from float32 that every backend and test measures itself against.
 *
 * Type ids are GGUF's (they are stored in files). A "block" is the unit a quantized format packs
 * together: block_size elements stored in type_size bytes. Layouts are documented in quant.h. */
#ifndef HEARTH_TENSOR_TENSOR_H
#define HEARTH_TENSOR_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum dtype {
    DT_F32 = 0,
    DT_F16 = 1,
    DT_Q4_0 = 2,
    DT_Q4_1 = 3,
    DT_Q5_0 = 6,
    DT_Q5_1 = 7,
    DT_Q8_0 = 8,
    DT_Q8_1 = 9,
    DT_Q2_K = 10,
    DT_Q3_K = 11,
    DT_Q4_K = 12,
    DT_Q5_K = 13,
    DT_Q6_K = 14,
    DT_Q8_K = 15,
    DT_I8 = 24,
    DT_I16 = 25,
    DT_I32 = 26,
    DT_I64 = 27,
    DT_F64 = 28,
    DT_BF16 = 30,
    DT_MAX = 40 /* ids at or above this are unknown */
};

struct dtype_info {
    const char *name;   /* "Q4_K", as llama.cpp and Ollama print it */
    uint32_t block_size; /* elements per block (1 for plain types) */
    uint32_t type_size;  /* bytes per block */
    bool can_dequantize; /* hearth can turn it into float32 */
    bool can_quantize;   /* hearth has a reference quantizer for it */
};

/* NULL for an id hearth does not know (including GGUF ids of formats it does not implement). */
const struct dtype_info *dtype_get(uint32_t type);
const char *dtype_name(uint32_t type); /* "unknown(N)"-safe: never NULL */
/* Parses "q4_k", "Q4_K", "f16", ... ; returns -1 if unknown. */
int dtype_from_name(const char *name);

/* Bytes for n elements of type (n must be a multiple of the block size); 0 on overflow/misuse. */
size_t dtype_row_bytes(uint32_t type, int64_t n);

/* Reference conversions, one row of n elements (n a multiple of the block size). */
int dtype_dequantize(uint32_t type, const void *src, float *dst, int64_t n, struct err *e);
int dtype_quantize(uint32_t type, const float *src, void *dst, int64_t n, struct err *e);

/* Half and bfloat16 conversions, IEEE round-to-nearest-even. */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

#endif
