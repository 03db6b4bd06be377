/* embed.h — sentence embeddings: one L2-normalised vector per input. Decoder models give their final
 * hidden states (after the output norm); BERT encoders (bert.h) their last layer's. Either is
 * pooled as the GGUF's <arch>.pooling_type says: mean over the tokens (the default), the first
 * token ([CLS]) or the last one. */
#ifndef HEARTH_MODEL_EMBED_H
#define HEARTH_MODEL_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model_ctx;

/* Most tokens one input may have on c: the context length, and for BERT also its position table. */
int model_embed_max_tokens(const struct model_ctx *c);

/* Runs tokens[0..n) from an empty cache and writes n_embd floats to out. An input longer than
 * model_embed_max_tokens is an ERR_RANGE naming both lengths unless truncate: then its first tokens
 * are embedded, and a BERT input keeps its closing [SEP] as the last one. *n_used (may be NULL)
 * gets the number of tokens embedded. ERR_RANGE when n is 0. Not thread-safe against other users of
 * the model's backend. */
int model_embed_ex(struct model_ctx *c, const int32_t *tokens, int n, bool truncate, float *out, int *n_used,
                   struct err *e);

/* model_embed_ex without truncation. */
int model_embed(struct model_ctx *c, const int32_t *tokens, int n, float *out, struct err *e);

#endif
