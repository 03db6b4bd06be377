/* cuda_gemv_set.cuh — the matrices of one decode-product launch (up to CUDA_GEMV_MULTI of the same input:
 * Q, K, V; gate, up), shared by the int8 (cuda_gemv_q8.cu) and half (cuda_gemv_half.cu) products. The
 * launch's blocks are numbered across the matrices: block b works on matrix k for
 * blk_end[k-1] <= b < blk_end[k], on consecutive rows of it (each kernel selects its matrix inline). */
#ifndef HEARTH_BACKEND_CUDA_GEMV_SET_CUH
#define HEARTH_BACKEND_CUDA_GEMV_SET_CUH

#include <stdint.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

/* A set of one matrix (the single-product entry points). */
static inline cuda_gemv_set gemv_set_one(const void *W, const float *bias, float *y, int rows)
{
    cuda_gemv_set set;
    memset(&set, 0, sizeof set);
    set.nm = 1;
    set.W[0] = W;
    set.bias[0] = bias;
    set.y[0] = y;
    set.rows[0] = rows;
    return set;
}

struct gemv_blocks {
    const uint8_t *W[CUDA_GEMV_MULTI];
    const float *bias[CUDA_GEMV_MULTI];
    float *y[CUDA_GEMV_MULTI];
    int rows[CUDA_GEMV_MULTI];
    int blk_end[CUDA_GEMV_MULTI];
};

/* Numbers the blocks of rows_per_block rows over in's matrices; returns how many there are. */
static inline int gemv_blocks_make(const struct cuda_gemv_set *in, int rows_per_block, gemv_blocks *set)
{
    int nblk = 0;
    for (int k = 0; k < CUDA_GEMV_MULTI; k++) {
        const bool used = k < in->nm;
        set->W[k] = used ? (const uint8_t *)in->W[k] : NULL;
        set->bias[k] = used ? in->bias[k] : NULL;
        set->y[k] = used ? in->y[k] : NULL;
        set->rows[k] = used ? in->rows[k] : 0;
        nblk += used ? (in->rows[k] + rows_per_block - 1) / rows_per_block : 0;
        set->blk_end[k] = nblk;
    }
    return nblk;
}

/* The same matrices with the outputs of token rows done.. (a launch over the next tokens of a batch). */
static inline gemv_blocks gemv_blocks_from(const gemv_blocks &set, int done)
{
    gemv_blocks cur = set;
    for (int k = 0; k < CUDA_GEMV_MULTI; k++)
        cur.y[k] = set.y[k] ? set.y[k] + (size_t)done * set.rows[k] : NULL;
    return cur;
}

#endif
