/* load.c — binds a GGUF's tensors to a model's weights: looks each one up by its GGUF name, checks
 * its shape against the hyper-parameters and its type against what the backend can run, and hands
 * it to the backend its part runs on (a split model's blocks are prepared on their own backend only:
 * CPU blocks stay in the map, GPU blocks are uploaded). Nothing is copied on the CPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/bert.h"
#include "model/model.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

/* Binds tensor `name` expecting [rows, cols] (rows 1 and n_dims 1 for vectors). */
static int bind(struct model *m, struct backend *be, struct bweight *w, const char *name, int64_t rows,
                int64_t cols, bool optional, bool *found, struct err *e)
{
    const struct gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (found)
        *found = t != NULL;
    if (!t) {
        if (optional)
            return 0;
        return err_set(e, ERR_FORMAT, "%s: missing tensor '%s'", m->path, name);
    }
    int64_t t_rows = t->n_dims >= 2 ? t->ne[1] : 1;
    for (uint32_t d = 2; d < t->n_dims; d++)
        t_rows *= t->ne[d];
    if (t->ne[0] != cols || t_rows != rows)
        return err_set(e, ERR_FORMAT,
                       "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] from the metadata",
                       m->path, name, (long long)t->ne[0], (long long)t_rows, (long long)cols,
                       (long long)rows);
    const struct dtype_info *d = dtype_get(t->type);
    if (!d || !d->can_dequantize)
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which hearth cannot run", m->path,
                       name, dtype_name(t->type));
    if (rows == 1 && t->type != DT_F32)
        return err_set(e, ERR_UNSUPPORTED, "%s: vector tensor '%s' has type %s (expected F32)", m->path,
                       name, dtype_name(t->type));
    w->name = t->name;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->host = t->data;
    w->dev = NULL;
    w->extra = NULL;
    int rc = be->ops->prepare_weight(be, w, e);
    if (rc)
        return err_prefix(e, "%s", m->path);
    return 0;
}

static int bind_layer(struct model *m, int il, struct err *e)
{
    const struct hparams *hp = &m->hp;
    struct layer_weights *l = &m->layers[il];
    struct backend *be = m->bes[m->layer_be[il]];
    const int64_t d = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim,
                  kvd = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    char name[96];
    int rc;
#define BIND(field, suffix, rows, cols)                                                            \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s", il, suffix);                                      \
        if ((rc = bind(m, be, &l->field, name, rows, cols, false, NULL, e)))                       \
            return rc;                                                                             \
    } while (0)
    BIND(attn_norm, "attn_norm.weight", 1, d);
    BIND(wq, "attn_q.weight", qd, d);
    BIND(wk, "attn_k.weight", kvd, d);
    BIND(wv, "attn_v.weight", kvd, d);
    BIND(wo, "attn_output.weight", d, qd);
    if (hp->qkv_bias) {
        BIND(bq, "attn_q.bias", 1, qd);
        BIND(bk, "attn_k.bias", 1, kvd);
        BIND(bv, "attn_v.bias", 1, kvd);
    }
    if (hp->qk_norm) {
        BIND(q_norm, "attn_q_norm.weight", 1, hp->head_dim);
        BIND(k_norm, "attn_k_norm.weight", 1, hp->head_dim);
    }
    BIND(ffn_norm, "ffn_norm.weight", 1, d);
    BIND(w_gate, "ffn_gate.weight", ff, d);
    BIND(w_up, "ffn_up.weight", ff, d);
    BIND(w_down, "ffn_down.weight", d, ff);
#undef BIND
    return 0;
}

/* The most common matrix type: what "Q4_0 model" means to a user. */
static uint32_t dominant_type(const struct gguf_file *f)
{
    uint64_t bytes[DT_MAX] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].n_dims >= 2 && f->tensors[i].type < DT_MAX)
            bytes[f->tensors[i].type] += f->tensors[i].size;
    uint32_t best = DT_F32;
    for (uint32_t t = 0; t < DT_MAX; t++)
        if (bytes[t] > bytes[best])
            best = t;
    return best;
}

int model_load(const char *path, struct backend *be, struct model **out, struct err *e)
{
    const struct placement pl = {.lo = be};
    return model_load_placed(path, &pl, out, e);
}

int model_load_placed(const char *path, const struct placement *pl, struct model **out, struct err *e)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(e, ERR_NOMEM, "out of memory");
    m->be = pl->lo;
    m->bes[0] = pl->lo;
    m->n_be = 1;
    m->path = strdup(path);
    int rc = m->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
    if (!rc)
        rc = gguf_open(path, &m->gguf, e);
    if (!rc && (rc = hparams_from_gguf(m->gguf, &m->hp, e)))
        err_prefix(e, "%s", path);
    if (!rc && (rc = tokenizer_from_gguf(m->gguf, &m->tok, e)))
        err_prefix(e, "%s", path);
    if (rc) {
        model_free(m);
        return rc;
    }
    struct hparams *hp = &m->hp;
    m->layer_be = calloc((size_t)hp->n_layer, sizeof *m->layer_be); /* all on bes[0] until split below */
    if (!m->layer_be) {
        model_free(m);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (hp->arch == ARCH_BERT) {
        /* An encoder with its own tensor set and forward pass (bert.c). */
        if ((rc = bert_load(m, e))) {
            model_free(m);
            return rc;
        }
        for (uint64_t i = 0; i < m->gguf->n_tensors; i++)
            m->weight_bytes += m->gguf->tensors[i].size;
        m->file_type = dominant_type(m->gguf);
        *out = m;
        return 0;
    }
    const struct gguf_tensor *emb = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb || emb->n_dims != 2) {
        rc = err_set(e, ERR_FORMAT, "%s: missing or malformed tensor 'token_embd.weight'", path);
        model_free(m);
        return rc;
    }
    hp->n_vocab = (int)emb->ne[1];
    if (hp->n_vocab < tokenizer_n_vocab(m->tok)) {
        rc = err_set(e, ERR_FORMAT, "%s: embedding has %d rows but the vocabulary has %d tokens", path,
                     hp->n_vocab, tokenizer_n_vocab(m->tok));
        model_free(m);
        return rc;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        model_free(m);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    /* The split: hi takes the last n_hi blocks, and the head and the embeddings when asked. */
    int n_hi = pl->n_hi < 0 ? 0 : pl->n_hi > hp->n_layer ? hp->n_layer : pl->n_hi;
    const bool split = pl->hi && pl->hi != pl->lo && (n_hi > 0 || pl->output_hi || pl->embd_hi);
    if (split) {
        m->bes[1] = pl->hi;
        m->n_be = 2;
        for (int il = hp->n_layer - n_hi; il < hp->n_layer; il++)
            m->layer_be[il] = 1;
        m->out_be = pl->output_hi ? 1 : 0;
        m->embd_be = pl->embd_hi ? 1 : 0;
        m->be = m->bes[m->out_be];
    }
    struct backend *out_be = m->bes[m->out_be];
    bool has_output = false;
    rc = bind(m, m->bes[m->embd_be], &m->tok_embd, "token_embd.weight", hp->n_vocab, hp->n_embd, false, NULL, e);
    if (!rc)
        rc = bind(m, out_be, &m->output_norm, "output_norm.weight", 1, hp->n_embd, false, NULL, e);
    if (!rc)
        rc = bind(m, out_be, &m->output, "output.weight", hp->n_vocab, hp->n_embd, true, &has_output, e);
    if (!rc && !has_output) {
        hp->tied_output = true;
        /* The head multiplies by the embedding table: the same binding when both are on one backend. */
        if (m->out_be == m->embd_be)
            m->output = m->tok_embd;
        else
            rc = bind(m, out_be, &m->output, "token_embd.weight", hp->n_vocab, hp->n_embd, false, NULL, e);
    }
    for (int b = 0; !rc && b < m->n_be; b++)
        rc = bind(m, m->bes[b], &m->rope_freqs[b], "rope_freqs.weight", 1, hp->n_rot / 2, true, &m->has_rope_freqs,
                  e);
    for (int il = 0; !rc && il < hp->n_layer; il++)
        rc = bind_layer(m, il, e);
    if (rc) {
        model_free(m);
        return rc;
    }
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++)
        m->weight_bytes += m->gguf->tensors[i].size;
    m->file_type = dominant_type(m->gguf);
    *out = m;
    return 0;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    bert_free(m);
    if (m->layers && m->layer_be && m->bes[0]) {
        for (int il = 0; il < m->hp.n_layer; il++) {
            struct backend *be = m->bes[m->layer_be[il]];
            struct bweight *ws = (struct bweight *)&m->layers[il];
            for (size_t k = 0; k < sizeof(struct layer_weights) / sizeof(struct bweight); k++)
                if (ws[k].host)
                    be->ops->release_weight(be, &ws[k]);
        }
        struct backend *eb = m->bes[m->embd_be], *ob = m->bes[m->out_be];
        if (m->tok_embd.host)
            eb->ops->release_weight(eb, &m->tok_embd);
        if (m->output_norm.host)
            ob->ops->release_weight(ob, &m->output_norm);
        if (m->output.host && (!m->hp.tied_output || m->out_be != m->embd_be))
            ob->ops->release_weight(ob, &m->output);
        for (int b = 0; b < m->n_be; b++)
            if (m->rope_freqs[b].host)
                m->bes[b]->ops->release_weight(m->bes[b], &m->rope_freqs[b]);
    }
    free(m->layers);
    free(m->layer_be);
    tokenizer_free(m->tok);
    gguf_close(m->gguf);
    free(m->path);
    for (int b = 0; b < MODEL_MAX_BACKENDS; b++)
        if (m->owned[b])
            m->owned[b]->ops->free(m->owned[b]);
    free(m);
}

const char *model_type_name(const struct model *m) { return dtype_name(m->file_type); }
