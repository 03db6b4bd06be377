/* embed.c — mean-pooled, L2-normalised final hidden states (see embed.h). */
#include "model/embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int model_embed(struct model_ctx *c, const int32_t *tokens, int n, float *out, struct err *e)
{
    struct model *m = c->m;
    struct backend *be = m->be;
    const int d = m->hp.n_embd;
    if (n <= 0)
        return err_set(e, ERR_RANGE, "nothing to embed: the input has no tokens");
    if (n > c->n_ctx)
        return err_set(e, ERR_RANGE, "the input length (%d tokens) exceeds the context length (%d)", n,
                       c->n_ctx);
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
        for (int i = 0; i < chunk; i++)
            for (int j = 0; j < d; j++)
                acc[j] += rows[(size_t)i * d + j];
        done += chunk;
    }
    if (!rc) {
        double norm = 0;
        for (int j = 0; j < d; j++) {
            acc[j] /= n;
            norm += acc[j] * acc[j];
        }
        norm = sqrt(norm);
        if (!(norm > 0) || !isfinite(norm))
            rc = err_set(e, ERR_RANGE, "the embedding is zero or not finite");
        else
            for (int j = 0; j < d; j++)
                out[j] = (float)(acc[j] / norm);
    }
    c->n_past = 0;
    free(acc);
    free(rows);
    return rc;
}
