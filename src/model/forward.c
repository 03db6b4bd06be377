/* forward.c — the forward pass of every supported architecture, written once against backend.h:
 *   x = embed(tokens)
 *   per layer: h = rmsnorm(x); q,k,v = h.Wq,Wk,Wv (+bias); [q/k rmsnorm per head]; rope(q,k);
 *              store k,v; x += attention(q, cache).Wo; h = rmsnorm(x); x += (silu(h.Wg) * h.Wu).Wd
 *   logits = rmsnorm(x).Wout
 * A prompt is run in chunks of n_batch tokens, each as matrix x matrix products. Each block runs on its
 * own backend (model.h, struct placement); where the next block's backend differs, the hidden state
 * moves: read to the host, then written to the other backend. */
#include <math.h>
#include <string.h>

#include "model/model.h"

/* Hands the chunk's hidden state (n rows) from backend a's x to backend b's. */
static void move_hidden(struct model_ctx *c, int a, int b, int n)
{
    struct backend *from = c->m->bes[a], *to = c->m->bes[b];
    const size_t count = (size_t)n * (size_t)c->m->hp.n_embd;
    from->ops->read(from, c->host, c->s[a].x, count);
    to->ops->write(to, c->s[b].x, c->host, count);
}

/* Runs one chunk; the last row's logits go to logits (all rows' when all_logits), or, with best, only
 * the index of the last row's largest logit is taken back; ahead: the backend may start the next step
 * with that pick (model_forward_greedy). */
static void forward_chunk(struct model_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
                          int32_t *best, bool ahead)
{
    struct model *m = c->m;
    const struct hparams *hp = &m->hp;
    const int d = hp->n_embd, hd = hp->head_dim;
    const float scale = 1.0f / sqrtf((float)hd);

    for (int i = 0; i < n; i++)
        c->pos_buf[i] = c->n_past + i;
    for (int b = 0; b < m->n_be; b++)
        m->bes[b]->ops->set_batch(m->bes[b], tokens, c->pos_buf, n);
    int cur = m->embd_be;
    m->bes[cur]->ops->get_rows(m->bes[cur], &m->tok_embd, c->s[cur].x);

    for (int il = 0; il < hp->n_layer; il++) {
        if (m->layer_be[il] != cur) {
            move_hidden(c, cur, m->layer_be[il], n);
            cur = m->layer_be[il];
        }
        struct backend *be = m->bes[cur];
        const struct backend_ops *op = be->ops;
        const struct model_scratch *s = &c->s[cur];
        const struct rope_params rp = {
            .n_rot = hp->n_rot,
            .neox = hp->rope_neox,
            .freq_base = hp->rope_base,
            .freq_scale = hp->rope_scale,
            .freq_factors = m->has_rope_freqs ? &m->rope_freqs[cur] : NULL,
        };
        const struct layer_weights *l = &m->layers[il];
        op->rmsnorm(be, s->x, &l->attn_norm, s->xb, n, d, hp->norm_eps);
        op->matmul(be, &l->wq, hp->qkv_bias ? &l->bq : NULL, s->xb, s->q, n);
        op->matmul(be, &l->wk, hp->qkv_bias ? &l->bk : NULL, s->xb, s->k, n);
        op->matmul(be, &l->wv, hp->qkv_bias ? &l->bv : NULL, s->xb, s->v, n);
        if (hp->qk_norm) {
            op->rmsnorm(be, s->q, &l->q_norm, s->q, n * hp->n_head, hd, hp->norm_eps);
            op->rmsnorm(be, s->k, &l->k_norm, s->k, n * hp->n_head_kv, hd, hp->norm_eps);
        }
        op->rope(be, s->q, hp->n_head, hd, &rp);
        op->rope(be, s->k, hp->n_head_kv, hd, &rp);
        op->kv_store(be, c->k_cache[il], c->v_cache[il], c->kv_type, s->k, s->v, hp->n_head_kv, hd);
        op->attention(be, s->q, c->k_cache[il], c->v_cache[il], c->kv_type, s->att, hp->n_head, hp->n_head_kv,
                      hd, scale);
        op->matmul(be, &l->wo, NULL, s->att, s->xb, n);
        op->add(be, s->x, s->xb, (size_t)n * d);

        op->rmsnorm(be, s->x, &l->ffn_norm, s->xb, n, d, hp->norm_eps);
        op->matmul(be, &l->w_gate, NULL, s->xb, s->gate, n);
        op->matmul(be, &l->w_up, NULL, s->xb, s->up, n);
        op->swiglu(be, s->gate, s->up, s->gate, (size_t)n * hp->n_ff);
        op->matmul(be, &l->w_down, NULL, s->gate, s->xb, n);
        op->add(be, s->x, s->xb, (size_t)n * d);
    }
    if (m->out_be != cur)
        move_hidden(c, cur, m->out_be, n);

    /* Only the rows whose logits are wanted go through the (large) output matrix. */
    struct backend *be = m->be;
    const struct backend_ops *op = be->ops;
    const int first = all_logits ? 0 : n - 1;
    const int rows = n - first;
    float *xs = c->x + (size_t)first * d;
    op->rmsnorm(be, xs, &m->output_norm, c->xb, rows, d, hp->norm_eps);
    for (int r0 = 0; r0 < rows; r0 += MODEL_LOGITS_ROWS) {
        const int nr = rows - r0 < MODEL_LOGITS_ROWS ? rows - r0 : MODEL_LOGITS_ROWS;
        op->matmul(be, &m->output, NULL, c->xb + (size_t)r0 * d, c->logits, nr);
        if (logits)
            op->read(be, logits + (size_t)r0 * hp->n_vocab, c->logits, (size_t)nr * hp->n_vocab);
        if (best && r0 + nr == rows) {
            /* The next step's position must lie in the cache, and the whole step on this backend. */
            if (ahead && op->greedy_ahead && m->n_be == 1 && c->n_past + n < c->n_ctx)
                op->greedy_ahead(be);
            op->argmax(be, c->logits + (size_t)(nr - 1) * hp->n_vocab, hp->n_vocab, best);
        }
    }
    c->n_past += n;
}

static int forward(struct model_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
                   int32_t *best, bool ahead, struct err *e)
{
    const int n_vocab = c->m->hp.n_vocab;
    if (c->m->hp.arch == ARCH_BERT)
        return err_set(e, ERR_UNSUPPORTED, "%s is an embedding model (bert): use it with the embedding endpoints",
                       c->m->path);
    if (n <= 0)
        return err_set(e, ERR_INVALID, "nothing to evaluate (0 tokens)");
    if (c->n_past + n > c->n_ctx)
        return err_set(e, ERR_RANGE, "%d tokens do not fit in the context: %d of %d positions are used", n,
                       c->n_past, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return err_set(e, ERR_RANGE, "token id %d at index %d is outside the vocabulary (0..%d)",
                           tokens[i], i, n_vocab - 1);
    for (int done = 0; done < n;) {
        int chunk = n - done < c->n_batch ? n - done : c->n_batch;
        const bool last = done + chunk == n;
        float *out = NULL;
        if (all_logits)
            out = logits + (size_t)done * n_vocab;
        else if (last)
            out = logits;
        forward_chunk(c, tokens + done, chunk, out, all_logits, last ? best : NULL, last && ahead);
        done += chunk;
    }
    return 0;
}

int model_forward(struct model_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
                  struct err *e)
{
    return forward(c, tokens, n, logits, all_logits, NULL, false, e);
}

int model_forward_greedy(struct model_ctx *c, const int32_t *tokens, int n, int32_t *best, bool ahead,
                         struct err *e)
{
    return forward(c, tokens, n, NULL, false, best, ahead, e);
}
