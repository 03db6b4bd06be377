/* plan.h — a model's memory plan: which of its layers run on the GPU and what each device holds.
 *
 * num_gpu counts offloaded layers as Ollama's option (and llama.cpp's -ngl) does: the transformer
 * blocks from the last one down, then the output head as one more layer, so a model of L blocks is
 * fully offloaded at num_gpu = L + 1. -1 (the default) asks for as many as fit in the GPU's free memory
 * after the KV cache, the scratch buffers and a safety margin; 0 keeps everything on the CPU. The token
 * embeddings stay on the CPU (each step looks up a few rows there and hands the hidden state to the
 * first GPU layer) unless the model is fully offloaded and they fit too.
 *
 * plan_choose is the arithmetic alone, so it is tested without a GPU; plan_sizes_from_gguf measures a
 * file and the contexts it will run. */
#ifndef HEARTH_MODEL_PLAN_H
#define HEARTH_MODEL_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/err.h"

struct gguf_file;

/* Planning margin kept free on the GPU (allocator rounding, the driver, cuBLAS's own buffers). */
#define PLAN_GPU_MARGIN ((uint64_t)512 << 20)

/* What a model needs, from its file and the contexts it must run. */
struct plan_sizes {
    int n_layer;
    uint64_t *layer_bytes;     /* [n_layer] weights of each block, as stored in the file */
    uint64_t layer_pad;        /* GPU allocation rounding per block (its tensors are separate allocations) */
    uint64_t output_bytes;     /* output norm and matrix (the embedding table again when tied) */
    uint64_t embd_bytes;       /* the token embedding table */
    uint64_t other_bytes;      /* the rest of the file's tensors (e.g. rope_freqs), on every device */
    bool tied;                 /* the output matrix is the embedding table */
    uint64_t kv_layer_bytes;   /* K and V cache of one block, over every context */
    uint64_t act_io_bytes;     /* hidden state and its normed copy, on every device used, all contexts */
    uint64_t act_layer_bytes;  /* per-block activations (q, k, v, attention, gate, up) on a device running blocks */
    uint64_t logits_bytes;     /* logits rows on the output head's device */
    uint64_t gpu_work_bytes;   /* the CUDA backend's own scratch (half activations, weight slab, int8 rows) */
};

/* Where the layers go and what each device holds. */
struct mem_plan {
    int n_layer;
    int num_gpu;          /* as asked: -1 automatic, 0 CPU only, N layers */
    int n_gpu_layers;     /* blocks on the GPU: [n_layer - n_gpu_layers, n_layer) */
    bool output_gpu;      /* output norm and matrix on the GPU */
    bool embd_gpu;        /* token embeddings on the GPU */
    char gpu[96];         /* the GPU's name, "" when none was available */
    uint64_t gpu_free, gpu_total; /* as the device reported before loading (0: no GPU) */
    uint64_t gpu_weights, gpu_kv, gpu_scratch;
    uint64_t cpu_weights, cpu_kv, cpu_scratch;
    char note[1100];      /* why the GPU is not used although wanted, or ""; set by the loader */
};

/* Measures the file's tensors and the contexts: n_slots contexts of n_ctx tokens, prompt chunks of
 * n_batch tokens, a KV cache of kv_type. ERR_FORMAT when the tensors do not match the metadata. */
int plan_sizes_from_gguf(const struct gguf_file *f, int n_ctx, int n_batch, enum kv_type kv_type, int n_slots,
                         struct plan_sizes *s, struct err *e);
void plan_sizes_free(struct plan_sizes *s);

/* Chooses the placement and fills in the bytes. gpu_avail is the GPU memory the plan may use (free
 * memory minus PLAN_GPU_MARGIN; 0 without a GPU, which puts everything on the CPU whatever num_gpu
 * says). num_gpu < 0: the most blocks (from the last) that fit, then the output head, then the
 * embeddings; N >= 0: min(N, n_layer) blocks, the output head (and embeddings) when N > n_layer,
 * whether or not they fit. p->gpu, gpu_free/total and note are left as they were. */
void plan_choose(const struct plan_sizes *s, int num_gpu, uint64_t gpu_avail, struct mem_plan *p);

/* Layers offloaded as Ollama counts them: blocks on the GPU, plus one for the output head. */
int plan_offloaded(const struct mem_plan *p);
uint64_t plan_gpu_bytes(const struct mem_plan *p);
uint64_t plan_cpu_bytes(const struct mem_plan *p);
/* "100% GPU", "48%/52% CPU/GPU" or "100% CPU", as `hearth ps` shows the share of the model's memory. */
void plan_processor(uint64_t size, uint64_t size_vram, char *buf, size_t cap);
/* The plan as a few lines of text (each ending in a newline) for --verbose. */
void plan_describe(const struct mem_plan *p, char *buf, size_t cap);

#endif
