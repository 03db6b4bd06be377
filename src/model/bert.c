/* bert.c — the BERT encoder (see bert.h):
 *   x = LayerNorm(tok_embd[t] + token_types[0] + position_embd[i])
 *   per layer (post-norm):  x = LayerNorm(x + (softmax(q k^T / sqrt(hd)) v) Wo + bo)     all positions see all
 *                           x = LayerNorm(x + gelu(x Wup + bup) Wdown + bdown)
 *   out = pool(x)  (mean, first token [CLS], or last token)
 * Matrix products, the attention's included, go through a CPU backend's matmul, n_batch rows at a
 * time; LayerNorm, GELU and softmax are plain loops over float rows. */
#include "model/bert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

struct bert_layer {
    struct bweight wq, bq, wk, bk, wv, bv, wo, bo;
    struct bweight attn_norm, attn_norm_b;
    struct bweight up, up_b, down, down_b;
    struct bweight out_norm, out_norm_b;
};

struct bert_weights {
    struct backend *be;  /* a CPU backend: the model's own, or `own` */
    struct backend *own; /* made here when the model runs on another backend */
    struct bweight tok_embd, type_embd, pos_embd, embd_norm, embd_norm_b;
    bool has_types;
    int n_pos;
    struct bert_layer *layers;
};

/* Binds tensor `name` of [rows, cols]. Matrices that go through matmul are prepared on the backend;
 * lookup tables only need to be readable row by row. */
static int bind(struct model *m, struct bweight *w, const char *name, int64_t rows, int64_t cols, bool matrix,
                bool optional, struct err *e)
{
    const struct gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (optional)
            return 0;
        return err_set(e, ERR_FORMAT, "%s: missing tensor '%s' (a BERT model needs it)", m->path, name);
    }
    int64_t t_rows = t->n_dims >= 2 ? t->ne[1] : 1;
    for (uint32_t d = 2; d < t->n_dims; d++)
        t_rows *= t->ne[d];
    if (t->ne[0] != cols || (rows > 0 && t_rows != rows))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] from the metadata",
                       m->path, name, (long long)t->ne[0], (long long)t_rows, (long long)cols, (long long)rows);
    const struct dtype_info *d = dtype_get(t->type);
    if (!d || !d->can_dequantize)
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which hearth cannot run", m->path, name,
                       dtype_name(t->type));
    if (rows == 1 && t->type != DT_F32)
        return err_set(e, ERR_UNSUPPORTED, "%s: vector tensor '%s' has type %s (expected F32)", m->path, name,
                       dtype_name(t->type));
    *w = (struct bweight){.name = t->name, .type = t->type, .rows = t_rows, .cols = cols, .host = t->data};
    if (matrix) {
        struct backend *be = m->bert->be;
        if (be->ops->prepare_weight(be, w, e))
            return err_prefix(e, "%s", m->path);
    }
    return 0;
}

static int bind_layer(struct model *m, int il, struct err *e)
{
    const int64_t d = m->hp.n_embd, ff = m->hp.n_ff;
    struct bert_layer *l = &m->bert->layers[il];
    char name[96];
    int rc;
#define BIND(field, suffix, rows, cols, matrix)                                                                   \
    do {                                                                                                          \
        snprintf(name, sizeof name, "blk.%d.%s", il, suffix);                                                     \
        if ((rc = bind(m, &l->field, name, rows, cols, matrix, false, e)))                                        \
            return rc;                                                                                            \
    } while (0)
    BIND(wq, "attn_q.weight", d, d, true);
    BIND(bq, "attn_q.bias", 1, d, false);
    BIND(wk, "attn_k.weight", d, d, true);
    BIND(bk, "attn_k.bias", 1, d, false);
    BIND(wv, "attn_v.weight", d, d, true);
    BIND(bv, "attn_v.bias", 1, d, false);
    BIND(wo, "attn_output.weight", d, d, true);
    BIND(bo, "attn_output.bias", 1, d, false);
    BIND(attn_norm, "attn_output_norm.weight", 1, d, false);
    BIND(attn_norm_b, "attn_output_norm.bias", 1, d, false);
    BIND(up, "ffn_up.weight", ff, d, true);
    BIND(up_b, "ffn_up.bias", 1, ff, false);
    BIND(down, "ffn_down.weight", d, ff, true);
    BIND(down_b, "ffn_down.bias", 1, d, false);
    BIND(out_norm, "layer_output_norm.weight", 1, d, false);
    BIND(out_norm_b, "layer_output_norm.bias", 1, d, false);
#undef BIND
    return 0;
}

int bert_load(struct model *m, struct err *e)
{
    struct hparams *hp = &m->hp;
    if (hp->n_embd % hp->n_head != 0 || hp->n_head_kv != hp->n_head)
        return err_set(e, ERR_FORMAT, "%s: embedding length %d does not split into %d heads (KV heads %d)", m->path,
                       hp->n_embd, hp->n_head, hp->n_head_kv);
    struct bert_weights *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(e, ERR_NOMEM, "out of memory");
    m->bert = b;
    b->layers = calloc((size_t)hp->n_layer, sizeof *b->layers);
    if (!b->layers)
        return err_set(e, ERR_NOMEM, "out of memory");
    int rc;
    if (strcmp(m->be->ops->name, "cpu") == 0) {
        b->be = m->be;
    } else {
        if ((rc = backend_cpu_new(m->be->n_threads, &b->own, e)))
            return err_prefix(e, "%s: a CPU backend for the BERT encoder", m->path);
        b->be = b->own;
    }

    const struct gguf_tensor *emb = gguf_find_tensor(m->gguf, "token_embd.weight");
    const struct gguf_tensor *pos = gguf_find_tensor(m->gguf, "position_embd.weight");
    if (!emb || emb->n_dims != 2)
        return err_set(e, ERR_FORMAT, "%s: missing or malformed tensor 'token_embd.weight'", m->path);
    if (!pos || pos->n_dims != 2 || pos->ne[1] < 1 || pos->ne[1] > (1 << 24))
        return err_set(e, ERR_FORMAT, "%s: missing or malformed tensor 'position_embd.weight'", m->path);
    hp->n_vocab = (int)emb->ne[1];
    if (hp->n_vocab < tokenizer_n_vocab(m->tok))
        return err_set(e, ERR_FORMAT, "%s: embedding has %d rows but the vocabulary has %d tokens", m->path,
                       hp->n_vocab, tokenizer_n_vocab(m->tok));
    b->n_pos = (int)pos->ne[1];
    if (hp->n_ctx_train > b->n_pos)
        hp->n_ctx_train = b->n_pos;
    if ((rc = bind(m, &b->tok_embd, "token_embd.weight", hp->n_vocab, hp->n_embd, false, false, e)) ||
        (rc = bind(m, &b->pos_embd, "position_embd.weight", b->n_pos, hp->n_embd, false, false, e)) ||
        (rc = bind(m, &b->type_embd, "token_types.weight", 0, hp->n_embd, false, true, e)) ||
        (rc = bind(m, &b->embd_norm, "token_embd_norm.weight", 1, hp->n_embd, false, false, e)) ||
        (rc = bind(m, &b->embd_norm_b, "token_embd_norm.bias", 1, hp->n_embd, false, false, e)))
        return rc;
    b->has_types = b->type_embd.host != NULL;
    for (int il = 0; il < hp->n_layer; il++)
        if ((rc = bind_layer(m, il, e)))
            return rc;
    return 0;
}

void bert_free(struct model *m)
{
    struct bert_weights *b = m->bert;
    if (!b)
        return;
    if (b->layers && b->be && b->be->ops->release_weight)
        for (int il = 0; il < m->hp.n_layer; il++) {
            struct bert_layer *l = &b->layers[il];
            struct bweight *mats[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->up, &l->down};
            for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++)
                if (mats[k]->host)
                    b->be->ops->release_weight(b->be, mats[k]);
        }
    if (b->own)
        b->own->ops->free(b->own);
    free(b->layers);
    free(b);
    m->bert = NULL;
}

int bert_max_tokens(const struct model_ctx *c)
{
    const struct bert_weights *b = c->m->bert;
    int n = c->n_ctx;
    if (b && b->n_pos < n)
        n = b->n_pos;
    return n;
}

/* ---- the forward pass ---- */

/* out = (x - mean) / sqrt(var + eps) * w + b, row by row; out may equal x. */
static void layernorm(const float *x, const struct bweight *w, const struct bweight *b, float *out, int n, int d,
                      float eps)
{
    const float *g = w->host, *bias = b->host;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        double sum = 0, sq = 0;
        for (int i = 0; i < d; i++)
            sum += xr[i];
        const double mean = sum / d;
        for (int i = 0; i < d; i++)
            sq += (xr[i] - mean) * (xr[i] - mean);
        const float mu = (float)mean, inv = (float)(1.0 / sqrt(sq / d + eps));
        for (int i = 0; i < d; i++)
            o[i] = (xr[i] - mu) * inv * g[i] + bias[i];
    }
}

/* BERT's "gelu" is the exact one, x * Phi(x), not the tanh approximation. */
static void gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* y[n, w.rows] = x[n, w.cols] . w^T + bias, in slices of at most nb rows (the reserved batch). */
static void matmul(struct backend *be, const struct bweight *w, const struct bweight *bias, const float *x, float *y,
                   int n, int nb)
{
    for (int r = 0; r < n; r += nb) {
        const int k = n - r < nb ? n - r : nb;
        be->ops->matmul(be, w, bias, x + (size_t)r * w->cols, y + (size_t)r * w->rows, k);
    }
}

/* Bidirectional multi-head attention: every position attends to all n. Per head, the two products
 * (q k^T and p v) go through matmul with the head's keys, and its values transposed, standing in as
 * F32 weight matrices. s is scratch of n*n + 3*n*hd floats. */
static void attention(struct backend *be, const float *q, const float *k, const float *v, float *out, float *s,
                      int n, int n_head, int hd, int nb)
{
    const int d = n_head * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *p = s, *qh = p + (size_t)n * n, *kh = qh + (size_t)n * hd, *vt = kh + (size_t)n * hd;
    float *oh = kh; /* the head's output reuses the keys' space, free once p is computed */
    for (int h = 0; h < n_head; h++) {
        for (int i = 0; i < n; i++)
            for (int t = 0; t < hd; t++) {
                qh[(size_t)i * hd + t] = q[(size_t)i * d + (size_t)h * hd + t] * scale;
                kh[(size_t)i * hd + t] = k[(size_t)i * d + (size_t)h * hd + t];
                vt[(size_t)t * n + i] = v[(size_t)i * d + (size_t)h * hd + t];
            }
        const struct bweight kw = {.name = "attention keys", .type = DT_F32, .rows = n, .cols = hd, .host = kh};
        matmul(be, &kw, NULL, qh, p, n, nb);
        for (int i = 0; i < n; i++) {
            float *pr = p + (size_t)i * n, mx = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++)
                mx = pr[j] > mx ? pr[j] : mx;
            for (int j = 0; j < n; j++) {
                pr[j] = expf(pr[j] - mx);
                sum += pr[j];
            }
            const float inv = 1.0f / sum;
            for (int j = 0; j < n; j++)
                pr[j] *= inv;
        }
        const struct bweight vw = {.name = "attention values", .type = DT_F32, .rows = hd, .cols = n, .host = vt};
        matmul(be, &vw, NULL, p, oh, n, nb);
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * d + (size_t)h * hd, oh + (size_t)i * hd, (size_t)hd * sizeof *out);
    }
}

static void add_row(float *x, const float *y, int d)
{
    for (int i = 0; i < d; i++)
        x[i] += y[i];
}

int bert_embed(struct model_ctx *c, const int32_t *tokens, int n, float *out, struct err *e)
{
    struct model *m = c->m;
    const struct hparams *hp = &m->hp;
    struct bert_weights *b = m->bert;
    if (!b)
        return err_set(e, ERR_INVALID, "%s is not a BERT model", m->path);
    const int limit = bert_max_tokens(c);
    if (n <= 0 || n > limit)
        return err_set(e, ERR_RANGE, "a BERT input must have 1 to %d tokens, this one has %d", limit, n);
    if (hp->pooling == POOL_RANK)
        return err_set(e, ERR_UNSUPPORTED, "%s is a reranker (rank pooling): it scores pairs and has no embedding",
                       m->path);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return err_set(e, ERR_RANGE, "token id %d at index %d is outside the vocabulary (0..%d)", tokens[i], i,
                           hp->n_vocab - 1);
    struct backend *be = b->be;
    const int d = hp->n_embd, ff = hp->n_ff, nb = c->n_batch;
    /* matmul columns: d, ff, and n for the attention's p v */
    int64_t max_cols = ff > d ? ff : d;
    if (max_cols < n)
        max_cols = n;
    int rc = be->ops->reserve(be, nb, max_cols, c->n_ctx, hp->head_dim, e);
    if (rc)
        return rc;

    /* x, q, k, v, att, tmp: [n, d]; up: [n, ff]; p: attention scratch; row: [d] (the token-type row). */
    const size_t nd = (size_t)n * d, n_p = (size_t)n * n + 3 * (size_t)n * (d / hp->n_head);
    float *mem = be->ops->alloc(be, (6 * nd + (size_t)n * ff + n_p + (size_t)d) * sizeof(float));
    if (!mem)
        return err_set(e, ERR_NOMEM, "out of memory for the activations of %d tokens", n);
    float *x = mem, *q = x + nd, *k = q + nd, *v = k + nd, *att = v + nd, *tmp = att + nd, *up = tmp + nd;
    float *p = up + (size_t)n * ff, *type_row = p + n_p;

    const size_t tok_bytes = dtype_row_bytes(b->tok_embd.type, d), pos_bytes = dtype_row_bytes(b->pos_embd.type, d);
    if (b->has_types && (rc = dtype_dequantize(b->type_embd.type, b->type_embd.host, type_row, d, e)))
        goto done;
    for (int i = 0; i < n; i++) {
        float *xr = x + (size_t)i * d;
        if ((rc = dtype_dequantize(b->tok_embd.type, (const uint8_t *)b->tok_embd.host + (size_t)tokens[i] * tok_bytes,
                                   xr, d, e)) ||
            (rc = dtype_dequantize(b->pos_embd.type, (const uint8_t *)b->pos_embd.host + (size_t)i * pos_bytes, tmp,
                                   d, e)))
            goto done;
        add_row(xr, tmp, d);
        if (b->has_types)
            add_row(xr, type_row, d); /* every token is segment 0 */
    }
    layernorm(x, &b->embd_norm, &b->embd_norm_b, x, n, d, hp->norm_eps);

    for (int il = 0; il < hp->n_layer; il++) {
        const struct bert_layer *l = &b->layers[il];
        matmul(be, &l->wq, &l->bq, x, q, n, nb);
        matmul(be, &l->wk, &l->bk, x, k, n, nb);
        matmul(be, &l->wv, &l->bv, x, v, n, nb);
        attention(be, q, k, v, att, p, n, hp->n_head, d / hp->n_head, nb);
        matmul(be, &l->wo, &l->bo, att, tmp, n, nb);
        for (size_t i = 0; i < nd; i++)
            x[i] += tmp[i];
        layernorm(x, &l->attn_norm, &l->attn_norm_b, x, n, d, hp->norm_eps);
        matmul(be, &l->up, &l->up_b, x, up, n, nb);
        gelu(up, (size_t)n * ff);
        matmul(be, &l->down, &l->down_b, up, tmp, n, nb);
        for (size_t i = 0; i < nd; i++)
            x[i] += tmp[i];
        layernorm(x, &l->out_norm, &l->out_norm_b, x, n, d, hp->norm_eps);
    }

    if (hp->pooling == POOL_CLS || hp->pooling == POOL_LAST) {
        memcpy(out, x + (size_t)(hp->pooling == POOL_CLS ? 0 : n - 1) * d, (size_t)d * sizeof *out);
    } else { /* mean, also for "none": a whole-input endpoint wants one vector */
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += x[(size_t)i * d + j];
            out[j] = (float)(s / n);
        }
    }
done:
    be->ops->dealloc(be, mem);
    return rc;
}
