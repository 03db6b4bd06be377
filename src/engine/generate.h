/* generate.h — one completion: prefill the prompt, then sample, detokenize and stream tokens until
 * an end-of-generation token, a stop string, the token limit or the context's end, timing each phase
 * with the figures Ollama reports. The CLI and the server both generate through this. */
#ifndef HEARTH_ENGINE_GENERATE_H
#define HEARTH_ENGINE_GENERATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "sample/sample.h"

struct model_ctx;
struct grammar;

struct gen_request {
    const int32_t *prompt;
    size_t n_prompt;
    int max_tokens; /* < 0: until the context is full */
    struct sample_params sampling;
    const char *const *stops;
    size_t n_stops;
    /* Optional (zero = unused): a lock held around each forward pass, so several contexts of one
     * model (server slots) can interleave their tokens on the model's single backend. */
    pthread_mutex_t *forward_lock;
    /* Optional: the generated token ids are stored here (up to out_cap of them). */
    int32_t *out_tokens;
    size_t out_cap;
    /* Optional prefix reuse: the tokens whose keys/values the context already holds (room for
     * n_ctx of them) and their count. The longest common prefix with the prompt is kept in the
     * cache and only the rest is evaluated; on return they describe the cache again. A context
     * used without these must have *n_kv_tokens reset to 0 by its owner. */
    int32_t *kv_tokens;
    size_t *n_kv_tokens;
    /* Optional: every sampled token must be allowed by this grammar (grammar.h), which masks the
     * logits before the draw and advances after it; generation ends once no token is allowed. The
     * caller makes it (fresh or reset) and frees it. */
    struct grammar *grammar;
};

struct gen_stats {
    int64_t prompt_ns;      /* prefill time */
    int64_t eval_ns;        /* decode time (first sampled token to the last) */
    int64_t first_token_ns; /* request start to the first streamed token */
    int64_t total_ns;
    int prompt_tokens;
    int eval_tokens;
    int cached_tokens; /* prompt tokens whose keys/values were reused from the previous request */
    const char *done_reason; /* "stop" or "length" (or "cancel") */
};

/* Receives streamed text; a nonzero return cancels generation (done_reason "cancel"). */
typedef int (*gen_emit_fn)(void *user, const char *text, size_t len);

int generate(struct model_ctx *c, const struct gen_request *r, gen_emit_fn emit, void *user,
             struct gen_stats *stats, struct err *e);

#endif
