/* bert.h — BERT encoders (GGUF architecture "bert", as llama.cpp's converter writes it): their
 * tensors, and the bidirectional forward pass that turns a token sequence into one pooled vector.
 * The model's backend interface is built for decoders (causal attention, RMSNorm, SwiGLU), so BERT
 * runs its matrix products through a CPU backend's matmul and does LayerNorm, GELU and attention
 * itself on host rows. */
#ifndef HEARTH_MODEL_BERT_H
#define HEARTH_MODEL_BERT_H

#include <stdint.h>

#include "base/err.h"

struct model;
struct model_ctx;

/* Binds a BERT model's tensors (after hparams and tokenizer are read) and sets hp.n_vocab; when the
 * model's backend is not the CPU one, creates a CPU backend of its own for the matrix products. */
int bert_load(struct model *m, struct err *e);
/* Releases what bert_load made; does nothing for other models. */
void bert_free(struct model *m);

/* Most tokens one sequence may have on c: the context, and the learned position table. */
int bert_max_tokens(const struct model_ctx *c);

/* Runs tokens[0..n) through the encoder and writes the pooled final hidden state (n_embd floats,
 * pooled as hp.pooling says, not normalised) to out. ERR_RANGE for n out of 1..bert_max_tokens or a
 * token outside the vocabulary; ERR_UNSUPPORTED for rank pooling (a reranker has no embedding). */
int bert_embed(struct model_ctx *c, const int32_t *tokens, int n, float *out, struct err *e);

#endif
