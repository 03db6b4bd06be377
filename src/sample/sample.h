/* sample.h — turning logits into the next token: penalties, top-k, top-p, min-p, temperature and a
 * seeded random draw (or greedy argmax), plus stop-string matching on the streamed text. */
#ifndef HEARTH_SAMPLE_SAMPLE_H
#define HEARTH_SAMPLE_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Defaults are Ollama's (sample_params_default). temperature <= 0 means greedy. */
struct sample_params {
    float temperature;      /* 0.8 */
    int32_t top_k;          /* 40; <= 0 disables */
    float top_p;            /* 0.9; >= 1 disables */
    float min_p;            /* 0.0; <= 0 disables */
    float repeat_penalty;   /* 1.1; 1 disables */
    int32_t repeat_last_n;  /* 64; 0 disables, -1 = context size */
    float presence_penalty; /* 0 */
    float frequency_penalty;/* 0 */
    int64_t seed;           /* -1: random seed */
};

void sample_params_default(struct sample_params *p);
/* Checks ranges; ERR_INVALID naming the option otherwise. */
int sample_params_validate(const struct sample_params *p, struct err *e);

struct sampler;

/* n_ctx bounds the penalty history when repeat_last_n is -1. */
int sampler_new(const struct sample_params *p, int32_t n_vocab, int32_t n_ctx, struct sampler **out,
                struct err *e);
void sampler_free(struct sampler *s);
/* Forgets the history and re-seeds (same seed, same tokens). */
void sampler_reset(struct sampler *s);
/* Records a token (prompt or generated) in the penalty history. */
void sampler_accept(struct sampler *s, int32_t token);
/* Chooses the next token from logits[n_vocab]. logits may be modified. Allocates nothing. */
int32_t sampler_sample(struct sampler *s, float *logits);
/* Whether every pick is the largest logit and nothing else (temperature <= 0, no penalties): the
 * token can then be chosen where the logits are (backend argmax) without reading them. */
bool sampler_is_plain_greedy(const struct sampler *s);
/* The seed in use: the one given, or the one drawn when the seed option was -1 (to reproduce a run). */
int64_t sampler_seed(const struct sampler *s);
/* Applies the repeat, presence and frequency penalties of the current history to logits in place
 * (the first step of sampler_sample). */
void sampler_apply_penalties(struct sampler *s, float *logits);
/* The distribution sampler_sample would draw from: penalties, truncation and temperature applied.
 * Writes the surviving ids and their probabilities (summing to 1, best first unless no truncation
 * sorted them) into ids[n_vocab] and probs[n_vocab], returns their count. Greedy gives one token with
 * probability 1. logits may be modified. Allocates nothing and draws no random number. */
int32_t sampler_candidates(struct sampler *s, float *logits, int32_t *ids, float *probs);

/* Stop strings over streamed text: text that could still become a stop string is held back. */
struct stop_matcher;
int stop_matcher_new(const char *const *stops, size_t n, struct stop_matcher **out, struct err *e);
void stop_matcher_free(struct stop_matcher *m);
/* Feeds newly generated text. Writes the text that is now safe to emit into out (out has room for
 * at least len + the longest stop string) and returns its length; *stopped becomes true when a stop
 * string was found (the stop string and anything after it are never emitted). */
size_t stop_matcher_push(struct stop_matcher *m, const char *text, size_t len, char *out, bool *stopped);
/* At the end of generation: returns the held-back text. */
size_t stop_matcher_flush(struct stop_matcher *m, char *out);
/* Forgets held-back text and a found stop, for reuse on a new generation with the same stops. */
void stop_matcher_reset(struct stop_matcher *m);

#endif
