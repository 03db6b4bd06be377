/* embed.h — sentence embeddings from a decoder model: the final hidden states (after the output
 * norm) mean-pooled over the input tokens and L2-normalised. */
#ifndef HEARTH_MODEL_EMBED_H
#define HEARTH_MODEL_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model_ctx;

/* Runs tokens[0..n) from an empty cache and writes n_embd floats to out. ERR_RANGE when n is 0 or
 * does not fit the context. Not thread-safe against other users of the model's backend. */
int model_embed(struct model_ctx *c, const int32_t *tokens, int n, float *out, struct err *e);

#endif
