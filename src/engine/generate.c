/* generate.c — the prefill/decode loop behind every completion (see generate.h). */
#include "engine/generate.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "model/model.h"
#include "sample/grammar.h"
#include "tokenizer/tokenizer.h"

#define TEXT_CAP 4096

/* One forward pass under the request's lock: the last token's logits into logits, or, with best, just
 * the greedy pick (model_forward_greedy; more: the pick may be wanted as the next token, so the backend
 * may start that step at once). */
static int locked_forward(struct model_ctx *c, const struct gen_request *r, const int32_t *toks, int n,
                          float *logits, int32_t *best, bool more, struct err *e)
{
    if (r->forward_lock)
        pthread_mutex_lock(r->forward_lock);
    int rc = best ? model_forward_greedy(c, toks, n, best, more, e) : model_forward(c, toks, n, logits, false, e);
    if (r->forward_lock)
        pthread_mutex_unlock(r->forward_lock);
    return rc;
}

int generate(struct model_ctx *c, const struct gen_request *r, gen_emit_fn emit, void *user,
             struct gen_stats *st, struct err *e)
{
    struct model *m = c->m;
    const int n_vocab = m->hp.n_vocab;
    memset(st, 0, sizeof *st);
    st->done_reason = "stop";
    const int64_t t0 = clock_ns();
    if (r->n_prompt == 0)
        return err_set(e, ERR_INVALID, "the prompt is empty (not even a BOS token)");
    if ((int)r->n_prompt >= c->n_ctx)
        return err_set(e, ERR_RANGE, "the prompt has %zu tokens but the context holds %d", r->n_prompt,
                       c->n_ctx);

    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    /* The stop matcher may release a piece plus held-back text: room for a piece and twice the longest
     * stop string (the final push and flush), however long the stop strings are. */
    size_t longest_stop = 0;
    for (size_t i = 0; i < r->n_stops; i++)
        if (strlen(r->stops[i]) > longest_stop)
            longest_stop = strlen(r->stops[i]);
    char *piece = malloc(TEXT_CAP), *safe = malloc(TEXT_CAP + 2 * longest_stop + 1);
    struct sampler *smp = NULL;
    struct stop_matcher *stop = NULL;
    int rc = 0;
    if (!logits || !piece || !safe)
        rc = err_set(e, ERR_NOMEM, "out of memory");
    if (!rc)
        rc = sampler_new(&r->sampling, n_vocab, c->n_ctx, &smp, e);
    if (!rc)
        rc = stop_matcher_new(r->stops, r->n_stops, &stop, e);
    if (rc)
        goto out;

    /* Reuse the cached prefix, but always evaluate at least the last prompt token: its logits
     * are what the first sample needs. */
    size_t reuse = 0;
    if (r->kv_tokens && r->n_kv_tokens && *r->n_kv_tokens == (size_t)c->n_past) {
        size_t lim = *r->n_kv_tokens < r->n_prompt - 1 ? *r->n_kv_tokens : r->n_prompt - 1;
        while (reuse < lim && r->kv_tokens[reuse] == r->prompt[reuse])
            reuse++;
    }
    model_ctx_truncate(c, (int)reuse);
    if (r->n_kv_tokens)
        *r->n_kv_tokens = reuse;
    st->cached_tokens = (int)reuse;
    for (size_t i = 0; i < r->n_prompt; i++)
        sampler_accept(smp, r->prompt[i]);
    /* Plain greedy decoding (no penalties, no grammar) lets the backend pick the token where the logits
     * are, so they are never copied out: at GPU speeds that copy and the scan cost ~0.1 ms a token. */
    int32_t picked = 0;
    int32_t *pick = !r->grammar && sampler_is_plain_greedy(smp) ? &picked : NULL;
    rc = locked_forward(c, r, r->prompt + reuse, (int)(r->n_prompt - reuse), logits, pick, r->max_tokens != 0, e);
    if (rc)
        goto out;
    if (r->kv_tokens && r->n_kv_tokens) {
        memcpy(r->kv_tokens + reuse, r->prompt + reuse, (r->n_prompt - reuse) * sizeof *r->prompt);
        *r->n_kv_tokens = r->n_prompt;
    }
    const int64_t t_prefilled = clock_ns();
    st->prompt_ns = t_prefilled - t0;
    st->prompt_tokens = (int)r->n_prompt;

    struct detok dt;
    detok_init(&dt, m->tok, false);
    bool stopped = false, cancelled = false;
    for (;;) {
        if (r->max_tokens >= 0 && st->eval_tokens >= r->max_tokens) {
            st->done_reason = "length";
            break;
        }
        /* The grammar masks first, so penalties and truncation only ever pick among allowed tokens. */
        if (r->grammar && grammar_apply(r->grammar, logits) == 0)
            break;
        int32_t tok = pick ? picked : sampler_sample(smp, logits);
        if (tokenizer_is_eog(m->tok, tok))
            break;
        if (r->grammar && (rc = grammar_accept(r->grammar, tok, e)) != 0)
            goto out;
        st->eval_tokens++;
        sampler_accept(smp, tok);
        if (r->out_tokens && (size_t)st->eval_tokens <= r->out_cap)
            r->out_tokens[st->eval_tokens - 1] = tok;
        size_t n = detok_push(&dt, tok, piece, TEXT_CAP);
        size_t out_n = stop_matcher_push(stop, piece, n, safe, &stopped);
        if (out_n) {
            if (!st->first_token_ns)
                st->first_token_ns = clock_ns() - t0;
            if (emit(user, safe, out_n)) {
                cancelled = true;
                break;
            }
        }
        if (stopped)
            break;
        if (c->n_past >= c->n_ctx) {
            st->done_reason = "length";
            break;
        }
        rc = locked_forward(c, r, &tok, 1, logits, pick, r->max_tokens < 0 || st->eval_tokens < r->max_tokens, e);
        if (rc)
            goto out;
        if (r->kv_tokens && r->n_kv_tokens && *r->n_kv_tokens < (size_t)c->n_ctx)
            r->kv_tokens[(*r->n_kv_tokens)++] = tok;
    }
    if (cancelled) {
        st->done_reason = "cancel";
    } else if (!stopped) {
        size_t n = detok_flush(&dt, piece, TEXT_CAP);
        size_t out_n = stop_matcher_push(stop, piece, n, safe, &stopped);
        if (!stopped)
            out_n += stop_matcher_flush(stop, safe + out_n);
        if (out_n)
            emit(user, safe, out_n);
    }
    st->eval_ns = clock_ns() - t_prefilled;
    st->total_ns = clock_ns() - t0;
    if (!st->first_token_ns)
        st->first_token_ns = st->total_ns;
out:
    if (rc && r->n_kv_tokens)
        *r->n_kv_tokens = 0; /* the cache's contents are unknown after a failed pass */
    stop_matcher_free(stop);
    sampler_free(smp);
    free(logits);
    free(piece);
    free(safe);
    return rc;
}
