/* context.c — a model context: the KV cache (one K and one V buffer per layer, a row per position, on
 * the layer's backend) and the activation buffers of one forward chunk on each backend the model uses,
 * all allocated once. */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

void model_ctx_free(struct model_ctx *c)
{
    if (!c)
        return;
    const struct model *m = c->m;
    if (c->k_cache)
        for (int il = 0; il < m->hp.n_layer; il++) {
            struct backend *be = m->bes[m->layer_be[il]];
            be->ops->dealloc(be, c->k_cache[il]);
            be->ops->dealloc(be, c->v_cache[il]);
        }
    free(c->k_cache);
    free(c->v_cache);
    for (int b = 0; b < m->n_be; b++) {
        struct backend *be = m->bes[b];
        struct model_scratch *s = &c->s[b];
        float *bufs[] = {s->x, s->xb, s->q, s->k, s->v, s->att, s->gate, s->up};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            be->ops->dealloc(be, bufs[i]);
    }
    m->be->ops->dealloc(m->be, c->logits);
    free(c->host);
    free(c->pos_buf);
    free(c);
}

int model_ctx_new(struct model *m, const struct ctx_params *p, struct model_ctx **out, struct err *e)
{
    *out = NULL;
    const struct hparams *hp = &m->hp;
    struct model_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(e, ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_ctx = p->n_ctx > 0 ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    c->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    if (c->n_batch > c->n_ctx)
        c->n_batch = c->n_ctx;
    c->kv_type = p->kv_type;
    if (c->n_ctx < 1 || c->n_ctx > (1 << 24)) {
        free(c);
        return err_set(e, ERR_INVALID, "context length %d is out of range (1..16777216)", p->n_ctx);
    }
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t kv_positions = ((size_t)c->n_ctx + BACKEND_KV_BLOCK - 1) / BACKEND_KV_BLOCK * BACKEND_KV_BLOCK;
    const size_t kv_bytes = kv_positions * kv_dim * (c->kv_type == KV_F32 ? 4 : 2);
    c->k_cache = calloc((size_t)hp->n_layer, sizeof *c->k_cache);
    c->v_cache = calloc((size_t)hp->n_layer, sizeof *c->v_cache);
    if (!c->k_cache || !c->v_cache)
        goto oom;
    for (int il = 0; il < hp->n_layer; il++) {
        struct backend *be = m->bes[m->layer_be[il]];
        c->k_cache[il] = be->ops->alloc(be, kv_bytes);
        c->v_cache[il] = be->ops->alloc(be, kv_bytes);
        if (!c->k_cache[il] || !c->v_cache[il])
            goto oom;
    }
    const size_t nb = (size_t)c->n_batch;
    const size_t qd = (size_t)hp->n_head * hp->head_dim;
    const size_t wide = qd > (size_t)hp->n_embd ? qd : (size_t)hp->n_embd;
    bool runs_blocks[MODEL_MAX_BACKENDS] = {false};
    for (int il = 0; il < hp->n_layer; il++)
        runs_blocks[m->layer_be[il]] = true;
    for (int b = 0; b < m->n_be; b++) {
        struct backend *be = m->bes[b];
        struct model_scratch *s = &c->s[b];
        s->x = be->ops->alloc(be, nb * hp->n_embd * sizeof(float));
        s->xb = be->ops->alloc(be, nb * wide * sizeof(float));
        if (!s->x || !s->xb)
            goto oom;
        if (!runs_blocks[b])
            continue;
        s->q = be->ops->alloc(be, nb * qd * sizeof(float));
        s->k = be->ops->alloc(be, nb * kv_dim * sizeof(float));
        s->v = be->ops->alloc(be, nb * kv_dim * sizeof(float));
        s->att = be->ops->alloc(be, nb * qd * sizeof(float));
        s->gate = be->ops->alloc(be, nb * hp->n_ff * sizeof(float));
        s->up = be->ops->alloc(be, nb * hp->n_ff * sizeof(float));
        if (!s->q || !s->k || !s->v || !s->att || !s->gate || !s->up)
            goto oom;
    }
    c->x = c->s[m->out_be].x;
    c->xb = c->s[m->out_be].xb;
    const size_t logit_rows = nb < MODEL_LOGITS_ROWS ? nb : MODEL_LOGITS_ROWS;
    c->logits = m->be->ops->alloc(m->be, logit_rows * hp->n_vocab * sizeof(float));
    c->pos_buf = malloc(nb * sizeof *c->pos_buf);
    if (m->n_be > 1)
        c->host = malloc(nb * hp->n_embd * sizeof *c->host);
    if (!c->logits || !c->pos_buf || (m->n_be > 1 && !c->host))
        goto oom;
    int64_t max_cols = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if ((int64_t)qd > max_cols)
        max_cols = (int64_t)qd;
    for (int b = 0; b < m->n_be; b++) {
        int rc = m->bes[b]->ops->reserve(m->bes[b], c->n_batch, max_cols, c->n_ctx, hp->head_dim, e);
        if (rc) {
            model_ctx_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
oom:
    model_ctx_free(c);
    return err_set(e, ERR_NOMEM, "out of memory for a context of %d tokens (KV cache %zu MiB)", p->n_ctx,
                   2 * kv_bytes * (size_t)hp->n_layer >> 20);
}

void model_ctx_truncate(struct model_ctx *c, int pos)
{
    if (pos >= 0 && pos < c->n_past)
        c->n_past = pos;
}
