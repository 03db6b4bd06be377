/* forward.c — the forward pass of every supported architecture, written once against backend.h:
 *   x = embed(tokens)
 *   per layer: h = rmsnorm(x); q,k,v = h.Wq,Wk,Wv (+bias); [q/k rmsnorm per head]; rope(q,k);
 *              store k,v; x += attention(q, cache).Wo; h = rmsnorm(x); x += (silu(h.Wg) * h.Wu).Wd
 *   logits = rmsnorm(x).Wout
 * A prompt is run in chunks of n_batch tokens, each as matrix x matrix products. */
#include <math.h>
#include <string.h>

#include "model/model.h"

static void forward_chunk(struct model_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits)
{
    struct model *m = c->m;
    const struct hparams *hp = &m->hp;
    struct backend *be = m->be;
    const struct backend_ops *op = be->ops;
    const int d = hp->n_embd, hd = hp->head_dim;
    const int kvd = hp->n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const struct rope_params rp = {
        .n_rot = hp->n_rot,
        .neox = hp->rope_neox,
        .freq_base = hp->rope_base,
        .freq_scale = hp->rope_scale,
        .freq_factors = m->has_rope_freqs ? &m->rope_freqs : NULL,
    };

    for (int i = 0; i < n; i++)
        c->pos_buf[i] = c->n_past + i;
    op->set_batch(be, tokens, c->pos_buf, n);
    op->get_rows(be, &m->tok_embd, c->x);

    for (int il = 0; il < hp->n_layer; il++) {
        const struct layer_weights *l = &m->layers[il];
        op->rmsnorm(be, c->x, &l->attn_norm, c->xb, n, d, hp->norm_eps);
        op->matmul(be, &l->wq, hp->qkv_bias ? &l->bq : NULL, c->xb, c->q, n);
        op->matmul(be, &l->wk, hp->qkv_bias ? &l->bk : NULL, c->xb, c->k, n);
        op->matmul(be, &l->wv, hp->qkv_bias ? &l->bv : NULL, c->xb, c->v, n);
        if (hp->qk_norm) {
            op->rmsnorm(be, c->q, &l->q_norm, c->q, n * hp->n_head, hd, hp->norm_eps);
            op->rmsnorm(be, c->k, &l->k_norm, c->k, n * hp->n_head_kv, hd, hp->norm_eps);
        }
        op->rope(be, c->q, hp->n_head, hd, &rp);
        op->rope(be, c->k, hp->n_head_kv, hd, &rp);
        op->kv_store(be, c->k_cache[il], c->v_cache[il], c->kv_type, c->k, c->v, kvd);
        op->attention(be, c->q, c->k_cache[il], c->v_cache[il], c->kv_type, c->att, hp->n_head, hp->n_head_kv,
                      hd, scale);
        op->matmul(be, &l->wo, NULL, c->att, c->xb, n);
        op->add(be, c->x, c->xb, (size_t)n * d);

        op->rmsnorm(be, c->x, &l->ffn_norm, c->xb, n, d, hp->norm_eps);
        op->matmul(be, &l->w_gate, NULL, c->xb, c->gate, n);
        op->matmul(be, &l->w_up, NULL, c->xb, c->up, n);
        op->swiglu(be, c->gate, c->up, c->gate, (size_t)n * hp->n_ff);
        op->matmul(be, &l->w_down, NULL, c->gate, c->xb, n);
        op->add(be, c->x, c->xb, (size_t)n * d);
    }

    /* Only the rows whose logits are wanted go through the (large) output matrix. */
    const int first = all_logits ? 0 : n - 1;
    const int rows = n - first;
    float *xs = c->x + (size_t)first * d;
    op->rmsnorm(be, xs, &m->output_norm, c->xb, rows, d, hp->norm_eps);
    for (int r0 = 0; r0 < rows; r0 += MODEL_LOGITS_ROWS) {
        const int nr = rows - r0 < MODEL_LOGITS_ROWS ? rows - r0 : MODEL_LOGITS_ROWS;
        op->matmul(be, &m->output, NULL, c->xb + (size_t)r0 * d, c->logits, nr);
        if (logits)
            op->read(be, logits + (size_t)r0 * hp->n_vocab, c->logits, (size_t)nr * hp->n_vocab);
    }
    c->n_past += n;
}

int model_forward(struct model_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
                  struct err *e)
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
        forward_chunk(c, tokens + done, chunk, out, all_logits);
        done += chunk;
    }
    return 0;
}
