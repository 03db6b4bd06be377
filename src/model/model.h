/* model.h — a loaded decoder-only transformer (GGUF architectures llama, qwen2, qwen3): its
 * hyper-parameters from metadata, its weights bound in place in the GGUF map, its tokenizer, and
 * contexts (KV cache plus activation buffers) that run forward passes on a backend. */
#ifndef HEARTH_MODEL_MODEL_H
#define HEARTH_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/err.h"

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

struct model {
    char *path;
    struct gguf_file *gguf;
    struct hparams hp;
    struct tokenizer *tok;
    struct backend *be;
    struct bweight tok_embd, output_norm, output, rope_freqs;
    bool has_rope_freqs;
    struct layer_weights *layers;
    struct bert_weights *bert; /* ARCH_BERT: its own tensor set (bert.h); layers is then NULL */
    uint64_t weight_bytes; /* bytes of all tensors in the file */
    uint32_t file_type;    /* general.file_type, or the dominant matrix type */
};

/* Reads the hyper-parameters of an opened GGUF; ERR_UNSUPPORTED for architectures hearth does not run. */
int hparams_from_gguf(const struct gguf_file *f, struct hparams *hp, struct err *e);

/* Opens path, validates it, binds the weights (no copy) and prepares them on be. */
int model_load(const char *path, struct backend *be, struct model **out, struct err *e);
void model_free(struct model *m);
/* Human-readable name of the model's weight type mix ("Q4_0", "F16", ...). */
const char *model_type_name(const struct model *m);

struct ctx_params {
    int n_ctx;       /* 0: min(training context, 4096) */
    int n_batch;     /* prompt tokens per forward chunk; 0: 512 */
    enum kv_type kv_type;
};

/* Rows of logits computed per output-matrix call: bounds the logits buffer (a 128k vocabulary makes a
 * row 0.5 MiB) without costing speed, since each call still reads the output matrix once per 16 rows. */
#define MODEL_LOGITS_ROWS 16

struct model_ctx {
    struct model *m;
    int n_ctx, n_batch;
    enum kv_type kv_type;
    void **k_cache, **v_cache; /* per layer: [n_ctx, n_head_kv * head_dim] */
    /* activations, [n_batch, ...] */
    float *x, *xb, *q, *k, *v, *att, *gate, *up;
    float *logits; /* MODEL_LOGITS_ROWS rows: the output matrix runs over at most that many at once */
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
/* Drops cache positions from pos on (pos <= n_past). */
void model_ctx_truncate(struct model_ctx *c, int pos);

#endif
