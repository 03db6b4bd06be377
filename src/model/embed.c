/* embed.c — pooled, L2-normalised sentence embeddings for decoders and BERT encoders (see embed.h). */
#include "model/embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/bert.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

int model_embed_max_tokens(const struct model_ctx *c)
{
    return c->m->hp.arch == ARCH_BERT ? bert_max_tokens(c) : c->n_ctx;
}

/* Decoder: runs the tokens through model_forward chunk by chunk and pools the output-normed rows. */
static int decoder_pool(struct model_ctx *c, const int32_t *tokens, int n, float *out, struct err *e)
{
    struct model *m = c->m;
    struct backend *be = m->be;
    const int d = m->hp.n_embd, pool = m->hp.pooling;
    double *acc = calloc((size_t)d, sizeof *acc);
    float *rows = malloc((size_t)c->n_batch * d * sizeof *rows);
    if (!acc || !rows) {
        free(acc);
        free(rows);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    c->n_past = 0;
    int rc = 0;
    for (int done = 0; done < n;) {
        int chunk = n - done < c->n_batch ? n - done : c->n_batch;
        rc = model_forward(c, tokens + done, chunk, NULL, false, e);
        if (rc)
            break;
        /* model_forward leaves the chunk's residual stream in c->x; the final norm turns it into
         * the hidden state the output layer would see. */
        be->ops->rmsnorm(be, c->x, &m->output_norm, c->xb, chunk, d, m->hp.norm_eps);
        be->ops->read(be, rows, c->xb, (size_t)chunk * d);
        for (int i = 0; i < chunk; i++) {
            const int at = done + i;
            if ((pool == POOL_CLS && at != 0) || (pool == POOL_LAST && at != n - 1))
                continue;
            for (int j = 0; j < d; j++)
                acc[j] += rows[(size_t)i * d + j];
        }
        done += chunk;
    }
    if (!rc) {
        const double div = pool == POOL_CLS || pool == POOL_LAST ? 1.0 : (double)n;
        for (int j = 0; j < d; j++)
            out[j] = (float)(acc[j] / div);
    }
    c->n_past = 0;
    free(acc);
    free(rows);
    return rc;
}

int model_embed_ex(struct model_ctx *c, const int32_t *tokens, int n, bool truncate, float *out, int *n_used,
                   struct err *e)
{
    struct model *m = c->m;
    const int d = m->hp.n_embd, limit = model_embed_max_tokens(c);
    const bool bert = m->hp.arch == ARCH_BERT;
    if (n_used)
        *n_used = 0;
    if (n <= 0)
        return err_set(e, ERR_RANGE, "nothing to embed: the input has no tokens");
    if (n > limit && !truncate)
        return err_set(e, ERR_RANGE,
                       "the input has %d tokens but at most %d fit (the %s); shorten it or allow truncation", n,
                       limit, bert && limit < c->n_ctx ? "model's position limit" : "context length");
    int32_t *cut = NULL;
    if (n > limit) {
        /* BERT was trained on [CLS] ... [SEP]: a cut input keeps its closing [SEP], as Hugging Face's
         * truncation does. */
        const int32_t sep = tokenizer_eos(m->tok);
        if (bert && limit >= 2 && sep >= 0 && tokens[n - 1] == sep) {
            cut = malloc((size_t)limit * sizeof *cut);
            if (!cut)
                return err_set(e, ERR_NOMEM, "out of memory");
            memcpy(cut, tokens, (size_t)(limit - 1) * sizeof *cut);
            cut[limit - 1] = sep;
            tokens = cut;
        }
        n = limit;
    }
    float *vec = malloc((size_t)d * sizeof *vec);
    int rc = vec ? 0 : err_set(e, ERR_NOMEM, "out of memory");
    if (!rc)
        rc = bert ? bert_embed(c, tokens, n, vec, e) : decoder_pool(c, tokens, n, vec, e);
    if (!rc) {
        double norm = 0;
        for (int j = 0; j < d; j++)
            norm += (double)vec[j] * vec[j];
        norm = sqrt(norm);
        if (!(norm > 0) || !isfinite(norm))
            rc = err_set(e, ERR_RANGE, "the embedding is zero or not finite");
        else
            for (int j = 0; j < d; j++)
                out[j] = (float)(vec[j] / norm);
    }
    if (!rc && n_used)
        *n_used = n;
    free(vec);
    free(cut);
    return rc;
}

int model_embed(struct model_ctx *c, const int32_t *tokens, int n, float *out, struct err *e)
{
    return model_embed_ex(c, tokens, n, false, out, NULL, e);
}
