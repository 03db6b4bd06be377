/* cpu.h — internals shared by the CPU backend's files: the backend state and its scratch memory. */
#ifndef HEARTH_BACKEND_CPU_CPU_H
#define HEARTH_BACKEND_CPU_CPU_H

#include "backend/backend.h"
#include "base/threadpool.h"

struct cpu_backend {
    struct backend base;
    struct threadpool *pool;
    /* The current batch (set_batch copies it, so callers may reuse their arrays). */
    int n_batch;
    int cap_batch;
    int32_t *tokens;
    int32_t *pos;
    /* Scratch reused across calls; grown (outside the hot loop) only when a larger shape arrives. */
    void *act_scratch; /* quantized activations for matmul */
    size_t act_scratch_size;
    float *attn_scratch; /* per-slot attention blocks (attention.c) */
    size_t attn_scratch_per_thread;
    void *pack_scratch; /* per-slot packed weight panels for prefill (kernels.h pack8) */
    size_t pack_scratch_per_slot;
};

/* Bytes of packed weight panel per pool slot: with a panel's activations it stays in L2. */
#define CPU_PACK_SCRATCH_BYTES (192 * 1024)

/* Grows *buf to at least size bytes (64-byte aligned); returns 0 or ERR_NOMEM. */
int cpu_scratch_reserve(void **buf, size_t *cur, size_t size);

void cpu_matmul(struct backend *be, const struct bweight *w, const struct bweight *bias, const float *x,
                float *y, int n);
/* Element offset of (position, KV head) in a CPU KV cache. The cache is a run of blocks of
 * BACKEND_KV_BLOCK positions; a block holds KV head 0's rows for its positions, then head 1's, and
 * so on, so that one head's rows of a block lie together (attention reads them a block at a time). */
static inline size_t cpu_kv_offset(int pos, int kvh, int n_kv_heads, int head_dim)
{
    const size_t block = (size_t)(pos / BACKEND_KV_BLOCK);
    return ((block * (size_t)n_kv_heads + (size_t)kvh) * BACKEND_KV_BLOCK + (size_t)(pos % BACKEND_KV_BLOCK)) *
           (size_t)head_dim;
}

/* Floats of attention scratch one pool slot needs for heads of head_dim (attention.c). */
size_t cpu_attn_scratch_floats(int head_dim);
void cpu_attention(struct backend *be, const float *q, const void *k_cache, const void *v_cache,
                   enum kv_type type, float *out, int n_heads, int n_kv_heads, int head_dim, float scale);

#endif
