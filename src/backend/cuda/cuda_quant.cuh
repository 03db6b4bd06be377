/* cuda_quant.cuh — device-side decoding of GGUF weight formats for the CUDA backend's kernels.
 *
 * Every kernel that reads weights (matrix-vector products, dequantisation to half for cuBLAS, embedding
 * rows) works in "chunks" of 32 consecutive elements of a row: the legacy formats have exactly one block
 * per chunk, the K-quants eight chunks per 256-element super-block, and the plain float formats are read
 * 32 at a time. dequant32<T>(row, c, w) writes chunk c of a row as 32 floats into registers; the unrolled
 * loops keep w[] in registers (compile-time indices only). Block layouts follow tensor/quant.h. */
#ifndef HEARTH_BACKEND_CUDA_QUANT_CUH
#define HEARTH_BACKEND_CUDA_QUANT_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

extern "C" {
#include "tensor/tensor.h"
}

#include "backend/cuda/cuda_internal.h"

__device__ __forceinline__ float cq_h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t cq_ld16(const uint8_t *p) { return *(const uint16_t *)p; }
__device__ __forceinline__ uint32_t cq_ld32_2(const uint8_t *p)
{
    /* 4 bytes at a 2-byte aligned address (quant blocks of 18/22/34/210 bytes are only 2-aligned). */
    return (uint32_t)cq_ld16(p) | (uint32_t)cq_ld16(p + 2) << 16;
}

/* Scale and min of sub-block j of a Q4_K / Q5_K super-block (6-bit values packed in 12 bytes). */
__device__ __forceinline__ void cq_scale_min_k4(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

template <int T> __device__ __forceinline__ void dequant32(const uint8_t *row, int c, float *w);

template <> __device__ __forceinline__ void dequant32<DT_F32>(const uint8_t *row, int c, float *w)
{
    const float4 *p = (const float4 *)(row + (size_t)c * 128);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float4 v = p[i];
        w[4 * i] = v.x;
        w[4 * i + 1] = v.y;
        w[4 * i + 2] = v.z;
        w[4 * i + 3] = v.w;
    }
}

template <> __device__ __forceinline__ void dequant32<DT_F16>(const uint8_t *row, int c, float *w)
{
    const uint4 *p = (const uint4 *)(row + (size_t)c * 64);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint4 v = p[i];
        uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            w[8 * i + 2 * k] = cq_h2f((uint16_t)(u[k] & 0xffff));
            w[8 * i + 2 * k + 1] = cq_h2f((uint16_t)(u[k] >> 16));
        }
    }
}

template <> __device__ __forceinline__ void dequant32<DT_BF16>(const uint8_t *row, int c, float *w)
{
    const uint4 *p = (const uint4 *)(row + (size_t)c * 64);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint4 v = p[i];
        uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            w[8 * i + 2 * k] = __uint_as_float(u[k] << 16);
            w[8 * i + 2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
        }
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q4_0>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)c * 18;
    const float d = cq_h2f(cq_ld16(b));
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const uint16_t q = cq_ld16(b + 2 + 2 * j);
        const int q0 = q & 0xff, q1 = q >> 8;
        w[2 * j] = d * (float)((q0 & 15) - 8);
        w[2 * j + 16] = d * (float)((q0 >> 4) - 8);
        w[2 * j + 1] = d * (float)((q1 & 15) - 8);
        w[2 * j + 17] = d * (float)((q1 >> 4) - 8);
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q4_1>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)c * 20;
    const float d = cq_h2f(cq_ld16(b)), m = cq_h2f(cq_ld16(b + 2));
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const uint16_t q = cq_ld16(b + 4 + 2 * j);
        const int q0 = q & 0xff, q1 = q >> 8;
        w[2 * j] = d * (float)(q0 & 15) + m;
        w[2 * j + 16] = d * (float)(q0 >> 4) + m;
        w[2 * j + 1] = d * (float)(q1 & 15) + m;
        w[2 * j + 17] = d * (float)(q1 >> 4) + m;
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q5_0>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)c * 22;
    const float d = cq_h2f(cq_ld16(b));
    /* qh is unsigned: the quant is cast to int before the offset is taken off. */
    const uint32_t qh = cq_ld32_2(b + 2);
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const uint16_t q = cq_ld16(b + 6 + 2 * j);
        const int q0 = q & 0xff, q1 = q >> 8;
        const int e0 = 2 * j, e1 = 2 * j + 1;
        w[e0] = d * (float)((int)((q0 & 15) | ((qh >> e0) & 1) << 4) - 16);
        w[e0 + 16] = d * (float)((int)((q0 >> 4) | ((qh >> (e0 + 16)) & 1) << 4) - 16);
        w[e1] = d * (float)((int)((q1 & 15) | ((qh >> e1) & 1) << 4) - 16);
        w[e1 + 16] = d * (float)((int)((q1 >> 4) | ((qh >> (e1 + 16)) & 1) << 4) - 16);
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q5_1>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)c * 24;
    const float d = cq_h2f(cq_ld16(b)), m = cq_h2f(cq_ld16(b + 2));
    const uint32_t qh = cq_ld32_2(b + 4);
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const uint16_t q = cq_ld16(b + 8 + 2 * j);
        const int q0 = q & 0xff, q1 = q >> 8;
        const int e0 = 2 * j, e1 = 2 * j + 1;
        w[e0] = d * (float)((q0 & 15) | ((qh >> e0) & 1) << 4) + m;
        w[e0 + 16] = d * (float)((q0 >> 4) | ((qh >> (e0 + 16)) & 1) << 4) + m;
        w[e1] = d * (float)((q1 & 15) | ((qh >> e1) & 1) << 4) + m;
        w[e1 + 16] = d * (float)((q1 >> 4) | ((qh >> (e1 + 16)) & 1) << 4) + m;
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q8_0>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)c * 34;
    const float d = cq_h2f(cq_ld16(b));
#pragma unroll
    for (int j = 0; j < 16; j++) {
        const uint16_t q = cq_ld16(b + 2 + 2 * j);
        w[2 * j] = d * (float)(int8_t)(q & 0xff);
        w[2 * j + 1] = d * (float)(int8_t)(q >> 8);
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q4_K>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)(c >> 3) * 144;
    const int j = c & 7;
    const float d = cq_h2f(cq_ld16(b)), dmin = cq_h2f(cq_ld16(b + 2));
    int sc, m;
    cq_scale_min_k4(b + 4, j, &sc, &m);
    const float ds = d * (float)sc, dm = dmin * (float)m;
    const uint32_t *qs = (const uint32_t *)(b + 16 + 32 * (j >> 1)); /* 16-byte aligned in the block */
    const int shift = 4 * (j & 1);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const uint32_t q = qs[i] >> shift;
#pragma unroll
        for (int k = 0; k < 4; k++)
            w[4 * i + k] = ds * (float)((q >> (8 * k)) & 15) - dm;
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q5_K>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)(c >> 3) * 176;
    const int j = c & 7;
    const float d = cq_h2f(cq_ld16(b)), dmin = cq_h2f(cq_ld16(b + 2));
    int sc, m;
    cq_scale_min_k4(b + 4, j, &sc, &m);
    const float ds = d * (float)sc, dm = dmin * (float)m;
    const uint32_t *qh = (const uint32_t *)(b + 16);
    const uint32_t *qs = (const uint32_t *)(b + 48 + 32 * (j >> 1));
    const int shift = 4 * (j & 1);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const uint32_t q = qs[i] >> shift, h = qh[i] >> j;
#pragma unroll
        for (int k = 0; k < 4; k++)
            w[4 * i + k] = ds * (float)(((q >> (8 * k)) & 15) | ((h >> (8 * k)) & 1) << 4) - dm;
    }
}

template <> __device__ __forceinline__ void dequant32<DT_Q6_K>(const uint8_t *row, int c, float *w)
{
    const uint8_t *b = row + (size_t)(c >> 3) * 210;
    const int j = c & 7, half = j >> 2, jj = j & 3;
    const uint8_t *ql = b + 64 * half + 32 * (jj & 1);
    const uint8_t *qh = b + 128 + 32 * half;
    const int8_t *scales = (const int8_t *)(b + 192);
    const float d = cq_h2f(cq_ld16(b + 208));
    const float d0 = d * (float)scales[2 * j], d1 = d * (float)scales[2 * j + 1];
    const int lshift = 4 * (jj >> 1), hshift = 2 * jj;
#pragma unroll
    for (int i = 0; i < 16; i++) {
        const uint16_t l = cq_ld16(ql + 2 * i), h = cq_ld16(qh + 2 * i);
#pragma unroll
        for (int k = 0; k < 2; k++) {
            const int q = (((l >> (8 * k)) >> lshift) & 15) | ((((h >> (8 * k)) >> hshift) & 3) << 4);
            const int e = 2 * i + k;
            w[e] = (e < 16 ? d0 : d1) * (float)(q - 32);
        }
    }
}

/* Repacked layouts (made at upload, see cuda_internal.h): a row holds its blocks' quants first, each
 * block's 16 (Q4_0) or 32 (Q8_0) bytes 16-byte aligned, then the nch half scales. The kernels need
 * the row's chunk count nch to find the scales, so every weight reader goes through dequant_chunk. */
template <int T> __device__ __forceinline__ void dequant_chunk(const uint8_t *row, int nch, int c, float *w)
{
    (void)nch;
    dequant32<T>(row, c, w);
}

template <> __device__ __forceinline__ void dequant_chunk<CUDA_T_Q4_0R>(const uint8_t *row, int nch, int c, float *w)
{
    const uint4 v = *(const uint4 *)(row + (size_t)c * 16);
    const float d = cq_h2f(cq_ld16(row + (size_t)nch * 16 + 2 * (size_t)c));
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 16; k++) {
        const int b = (u[k >> 2] >> (8 * (k & 3))) & 0xff;
        w[k] = d * (float)((b & 15) - 8);
        w[k + 16] = d * (float)((b >> 4) - 8);
    }
}

template <> __device__ __forceinline__ void dequant_chunk<CUDA_T_Q8_0R>(const uint8_t *row, int nch, int c, float *w)
{
    const uint4 *p = (const uint4 *)(row + (size_t)c * 32);
    const float d = cq_h2f(cq_ld16(row + (size_t)nch * 32 + 2 * (size_t)c));
    const uint4 v0 = p[0], v1 = p[1];
    const uint32_t u[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
#pragma unroll
    for (int k = 0; k < 32; k++)
        w[k] = d * (float)(int8_t)((u[k >> 2] >> (8 * (k & 3))) & 0xff);
}

template <> __device__ __forceinline__ void dequant_chunk<CUDA_T_Q4_KR>(const uint8_t *row, int nch, int c, float *w)
{
    const uint4 v = *(const uint4 *)(row + (size_t)c * 16);
    const int sm = cq_ld16(row + (size_t)nch * 16 + 2 * (size_t)c);
    const uint8_t *dd = row + (size_t)nch * 18 + 4 * (size_t)(c >> 3);
    /* Same float operations as dequant32<DT_Q4_K> and the CPU decoder, so the values are identical. */
    const float ds = cq_h2f(cq_ld16(dd)) * (float)(sm & 0xff), dm = cq_h2f(cq_ld16(dd + 2)) * (float)(sm >> 8);
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 16; k++) {
        const int b = (u[k >> 2] >> (8 * (k & 3))) & 0xff;
        w[k] = ds * (float)(b & 15) - dm;
        w[k + 16] = ds * (float)(b >> 4) - dm;
    }
}

template <> __device__ __forceinline__ void dequant_chunk<CUDA_T_Q6_KR>(const uint8_t *row, int nch, int c, float *w)
{
    const uint4 v = *(const uint4 *)(row + (size_t)c * 16);
    const uint2 h = *(const uint2 *)(row + (size_t)nch * 16 + 8 * (size_t)c);
    const int sc = cq_ld16(row + (size_t)nch * 24 + 2 * (size_t)c);
    const float d = cq_h2f(cq_ld16(row + (size_t)nch * 26 + 2 * (size_t)(c >> 3)));
    const float d0 = d * (float)(int8_t)(sc & 0xff), d1 = d * (float)(int8_t)(sc >> 8);
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 16; k++) {
        const int b = (u[k >> 2] >> (8 * (k & 3))) & 0xff, i = k >> 2, bb = k & 3;
        const int h0 = (h.x >> (8 * bb + 2 * i)) & 3, h1 = (h.y >> (8 * bb + 2 * i)) & 3;
        w[k] = d0 * (float)(((b & 15) | h0 << 4) - 32);
        w[k + 16] = d1 * (float)(((b >> 4) | h1 << 4) - 32);
    }
}

/* The formats the kernels are instantiated for, as one list for the dispatch switches. */
#define CUDA_FOR_EACH_TYPE(X)                                                                      \
    X(DT_F32) X(DT_F16) X(DT_BF16) X(DT_Q4_0) X(DT_Q4_1) X(DT_Q5_0) X(DT_Q5_1) X(DT_Q8_0)          \
    X(DT_Q4_K) X(DT_Q5_K) X(DT_Q6_K) X(CUDA_T_Q4_0R) X(CUDA_T_Q8_0R) X(CUDA_T_Q4_KR) X(CUDA_T_Q6_KR)

#endif
