/* backend.h — the few operations a decoder-only transformer needs, behind one interface that the
 * CPU backend (backend/cpu) and the CUDA backend (backend/cuda) implement.
 *
 * The model's forward pass (model/forward.c) is a fixed sequence of these calls over buffers that the
 * backend allocated up front, so a backend may record a decode step once and replay it. Buffers are
 * float32 activations (or KV cache rows) in the backend's memory; pointer arithmetic on them (row
 * offsets) is allowed. Weights are described by struct bweight: the host copy is the GGUF map; a
 * backend that needs its own copy makes it in prepare_weight. The current batch's token ids and
 * positions are set once per forward call with set_batch; ops that need them read the backend's copy. */
#ifndef HEARTH_BACKEND_BACKEND_H
#define HEARTH_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct backend;

/* A weight matrix of rows x cols (cols is the contiguous, innermost dimension) or a vector (rows 1). */
struct bweight {
    const char *name;  /* the GGUF tensor name, for messages */
    uint32_t type;     /* enum dtype */
    int64_t rows, cols;
    const void *host;  /* in the GGUF map */
    void *dev;         /* backend copy (CUDA), or NULL */
    void *extra;       /* backend-private (e.g. a repacked layout) */
};

struct rope_params {
    int n_rot;                        /* rotated dimensions per head (<= head_dim) */
    bool neox;                        /* rotate (i, i + n_rot/2) pairs; else adjacent (2i, 2i+1) */
    float freq_base;                  /* theta base */
    float freq_scale;                 /* linear position scaling (1 = none) */
    const struct bweight *freq_factors; /* llama3-style per-pair divisors, or NULL */
};

enum kv_type { KV_F16 = 0, KV_F32 = 1 };

/* KV caches are allocated for a whole number of blocks of this many positions (a backend may lay a
 * block out as it likes: the CPU keeps each KV head's rows of a block together, long enough runs for
 * the hardware prefetchers to stream). */
#define BACKEND_KV_BLOCK 512

struct backend_ops {
    const char *name;
    void (*free)(struct backend *be);
    /* Makes a weight usable by this backend (upload, repack); validates its type. */
    int (*prepare_weight)(struct backend *be, struct bweight *w, struct err *e);
    void (*release_weight)(struct backend *be, struct bweight *w);
    /* Zeroed backend memory; NULL when out of memory. */
    void *(*alloc)(struct backend *be, size_t bytes);
    void (*dealloc)(struct backend *be, void *p);
    /* Copies n floats of backend memory to the host. */
    void (*read)(struct backend *be, float *dst, const float *src, size_t n);
    /* Copies n floats of host memory into backend memory (the inverse of read): how the forward pass
     * hands the hidden state to the next layer's backend when a model is split. A backend that records
     * a step records the copy too (the values are taken at the call). */
    void (*write)(struct backend *be, float *dst, const float *src, size_t n);

    /* Reserves the scratch memory for batches of up to max_batch tokens, matrix rows of up to max_cols,
     * and attention over up to max_ctx positions with heads of head_dim, so ops never allocate. */
    int (*reserve)(struct backend *be, int max_batch, int64_t max_cols, int max_ctx, int head_dim,
                   struct err *e);
    /* Sets the batch: token ids and their positions (n <= max_batch entries). */
    void (*set_batch)(struct backend *be, const int32_t *tokens, const int32_t *pos, int n);
    /* out[i] = row tokens[i] of the embedding table, as float32. */
    void (*get_rows)(struct backend *be, const struct bweight *table, float *out);
    /* out = x / rms(x) * w, row by row (n_rows rows of dim). out may equal x. */
    void (*rmsnorm)(struct backend *be, const float *x, const struct bweight *w, float *out, int n_rows,
                    int dim, float eps);
    /* y[n, w.rows] = x[n, w.cols] . w^T (+ bias). */
    void (*matmul)(struct backend *be, const struct bweight *w, const struct bweight *bias, const float *x,
                   float *y, int n);
    /* Rotates heads in place: x is [n, n_heads * head_dim], positions from the batch. */
    void (*rope)(struct backend *be, float *x, int n_heads, int head_dim, const struct rope_params *rp);
    /* Stores k and v rows ([n, n_kv_heads * head_dim]) into the cache at the batch positions, in the
     * backend's own layout (a cache holds its context length rounded up to BACKEND_KV_BLOCK positions). */
    void (*kv_store)(struct backend *be, void *k_cache, void *v_cache, enum kv_type type, const float *k,
                     const float *v, int n_kv_heads, int head_dim);
    /* Causal attention of q [n, n_heads*head_dim] over cache positions 0..pos[i] into out. */
    void (*attention)(struct backend *be, const float *q, const void *k_cache, const void *v_cache,
                      enum kv_type type, float *out, int n_heads, int n_kv_heads, int head_dim,
                      float scale);
    /* out = silu(gate) * up over n values. out may equal gate. */
    void (*swiglu)(struct backend *be, const float *gate, const float *up, float *out, size_t n);
    /* x += y over n values. */
    void (*add)(struct backend *be, float *x, const float *y, size_t n);
    /* *best (host memory) = the index of the largest of x[n] by argmax_f32's rule (first on ties, never
     * a NaN): a greedy pick made where the logits are, so that they need not be read. */
    void (*argmax)(struct backend *be, const float *x, int n, int32_t *best);
    /* Optional (NULL where not offered), called between set_batch and argmax: once this step's pick is
     * known on the device, start the next one-token step at once, fed with that pick at the next
     * position, while the host takes the pick back and the caller looks at it. A set_batch with exactly
     * that token and position then finds its step already running. Whatever else the caller does next
     * simply runs after it: that step writes only scratch and the KV cache rows of the next position,
     * which any step at that position writes again before reading them. The caller makes sure the next
     * position lies inside the KV cache. */
    void (*greedy_ahead)(struct backend *be);
};

struct backend {
    const struct backend_ops *ops;
    int n_threads;
};

/* Creates the CPU backend with n_threads workers (<= 0: physical cores). */
int backend_cpu_new(int n_threads, struct backend **out, struct err *e);

/* Instruction sets the CPU backend found and uses ("avx512", "avx2", "scalar"). */
const char *backend_cpu_isa(void);

#endif
