/* model.h — a loaded decoder-only transformer (GGUF architectures llama, qwen2, qwen3): its
 * hyper-parameters from metadata, its weights bound in place in the GGUF map, its tokenizer, and
 * contexts (KV cache plus activation buffers) that run forward passes on a backend, or on two: a model
 * may be split by layers between the CPU and a GPU (struct placement, model_open and plan.h). */
#ifndef HEARTH_MODEL_MODEL_H
#define HEARTH_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/err.h"
#include "model/plan.h"

struct gguf_file;
struct tokenizer;
struct bert_weights;

enum arch { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3, ARCH_BERT /* encoder: embeddings only (bert.c) */ };

/* <arch>.pooling_type, as llama.cpp numbers it: how a sequence's hidden states become one vector. */
enum pooling { POOL_NONE = 0, POOL_MEAN = 1, POOL_CLS = 2, POOL_LAST = 3, POOL_RANK = 4 };

struct hparams {
    enum arch arch;
    char arch_name[32];
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_ff;
    int n_head;
    int n_head_kv;
    int head_dim; /* per-head size of q and k (and v) */
    int n_rot;
    int n_vocab;
    float norm_eps;
    float rope_base;
    float rope_scale; /* linear position scale factor (1 = none) */
    bool rope_neox;   /* qwen: rotate halves; llama GGUFs: adjacent pairs (Q/K rows permuted) */
    bool qkv_bias;
    bool qk_norm;
    bool tied_output; /* no output.weight: logits use token_embd.weight */
    int pooling;      /* enum pooling; POOL_MEAN when the metadata does not say */
};

struct layer_weights {
    struct bweight attn_norm, wq, wk, wv, wo;
    struct bweight bq, bk, bv;         /* qkv_bias */
    struct bweight q_norm, k_norm;     /* qk_norm */
    struct bweight ffn_norm, w_gate, w_up, w_down;
};

/* Backends one model runs on at most: the CPU and a GPU. */
#define MODEL_MAX_BACKENDS 2

/* Where a model's parts run (model_load_placed). Blocks [0, n_layer - n_hi) run on lo and the last n_hi
 * blocks on hi; the output head (final norm and output matrix) runs on hi when output_hi, the token
 * embedding lookup when embd_hi. hi NULL (or lo) puts everything on lo. BERT encoders ignore hi. */
struct placement {
    struct backend *lo, *hi;
    int n_hi;
    bool output_hi, embd_hi;
};

struct model {
    char *path;
    struct gguf_file *gguf;
    struct hparams hp;
    struct tokenizer *tok;
    struct backend *be; /* the output head's backend: the only one unless the model is split */
    /* The backends in use (bes[0] = the placement's lo; bes[1] = hi when something runs there), each
     * block's index into bes, and the embedding lookup's and output head's. */
    int n_be;
    struct backend *bes[MODEL_MAX_BACKENDS];
    uint8_t *layer_be;
    int embd_be, out_be;
    struct backend *owned[MODEL_MAX_BACKENDS]; /* backends model_free frees (model_open's) */
    struct mem_plan plan;                      /* filled by model_open; zero otherwise */
    /* output is the embedding table itself when tied and on the same backend, else its own binding;
     * rope_freqs is bound on every backend (index as bes). */
    struct bweight tok_embd, output_norm, output, rope_freqs[MODEL_MAX_BACKENDS];
    bool has_rope_freqs;
    struct layer_weights *layers;
    struct bert_weights *bert; /* ARCH_BERT: its own tensor set (bert.h); layers is then NULL */
    uint64_t weight_bytes; /* bytes of all tensors in the file */
    uint32_t file_type;    /* general.file_type, or the dominant matrix type */
};

/* Reads the hyper-parameters of an opened GGUF; ERR_UNSUPPORTED for architectures hearth does not run. */
int hparams_from_gguf(const struct gguf_file *f, struct hparams *hp, struct err *e);

/* Opens path, validates it, binds the weights (no copy) and prepares them on be. The caller keeps be. */
int model_load(const char *path, struct backend *be, struct model **out, struct err *e);
/* The same with the layers spread over two backends as pl says; the caller keeps them (or hands them
 * to the model through m->owned). */
int model_load_placed(const char *path, const struct placement *pl, struct model **out, struct err *e);
void model_free(struct model *m);
/* Human-readable name of the model's weight type mix ("Q4_0", "F16", ...). */
const char *model_type_name(const struct model *m);

struct ctx_params {
    int n_ctx;       /* 0: min(training context, 4096) */
    int n_batch;     /* prompt tokens per forward chunk; 0: 512 */
    enum kv_type kv_type;
};

/* How model_open loads a model. */
struct load_params {
    int n_threads; /* CPU backend threads; <= 0: physical cores */
    int num_gpu;   /* layers on the GPU as Ollama counts them (plan.h): -1 as many as fit, 0 none */
    int n_slots;   /* contexts the plan leaves room for (server slots); <= 0: 1 */
    struct ctx_params ctx; /* their shape, for the KV cache and scratch in the plan */
};

/* Loads path on the CPU backend and, when num_gpu != 0, this build has the CUDA backend, a GPU is
 * usable and HEARTH_GPU is not 0, places the layers the memory plan chooses on the GPU (an automatic
 * plan that turns out not to fit is retried with fewer layers). The model owns the backends it made;
 * m->plan holds the plan, and m->plan.note says why no GPU is used where one was wanted. */
int model_open(const char *path, const struct load_params *lp, struct model **out, struct err *e);

/* Rows of logits computed per output-matrix call: bounds the logits buffer (a 128k vocabulary makes a
 * row 0.5 MiB) without costing speed, since each call still reads the output matrix once per 16 rows. */
#define MODEL_LOGITS_ROWS 16

/* One backend's activations, [n_batch, ...]: x and xb on every backend in use, the rest where blocks run. */
struct model_scratch {
    float *x, *xb, *q, *k, *v, *att, *gate, *up;
};

struct model_ctx {
    struct model *m;
    int n_ctx, n_batch;
    enum kv_type kv_type;
    void **k_cache, **v_cache; /* per layer, on its block's backend: [n_ctx, n_head_kv * head_dim] */
    struct model_scratch s[MODEL_MAX_BACKENDS]; /* index as m->bes */
    float *x, *xb; /* s[m->out_be].x and .xb: a forward pass leaves the last hidden states in x */
    float *logits; /* MODEL_LOGITS_ROWS rows: the output matrix runs over at most that many at once */
    float *host;   /* n_batch * n_embd floats where the hidden state passes between backends (split) */
    int32_t *pos_buf;
    int n_past; /* positions 0..n_past-1 hold valid KV */
};

int model_ctx_new(struct model *m, const struct ctx_params *p, struct model_ctx **out, struct err *e);
void model_ctx_free(struct model_ctx *c);

/* Runs tokens[0..n) at positions n_past.. and appends them to the cache. When all_logits, writes
 * n rows of n_vocab logits to logits; else only the last token's row. Prompts longer than n_batch are
 * run in chunks (matrix x matrix). ERR_RANGE if the context would overflow. */
int model_forward(struct model_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
                  struct err *e);
/* model_forward for greedy decoding: *best = the index of the last token's largest logit (argmax_f32's
 * rule), found by the backend that holds the logits, which are not copied to the host. ahead: the caller
 * will most likely pass *best back as the next one-token step, so a backend that can (CUDA, the whole
 * model on it) starts that step as soon as the pick exists, and the host's share of each step (taking
 * the pick back, the caller's work, recording the next step) overlaps the device's work. Any other next
 * call is just as correct: it runs after that step. */
int model_forward_greedy(struct model_ctx *c, const int32_t *tokens, int n, int32_t *best, bool ahead,
                         struct err *e);
/* Drops cache positions from pos on (pos <= n_past). */
void model_ctx_truncate(struct model_ctx *c, int pos);

#endif
