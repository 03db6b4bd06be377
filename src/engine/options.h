/* options.h — Ollama's per-request "options" object (also Modelfile PARAMETERs): the defaults,
 * precedence (request over Modelfile over built-in defaults) and validation that names the option. */
#ifndef HEARTH_ENGINE_OPTIONS_H
#define HEARTH_ENGINE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/err.h"
#include "sample/sample.h"

#define OPTIONS_MAX_STOPS 16

struct gen_options {
    struct sample_params sampling;
    int num_predict; /* -1: until the context is full */
    int num_ctx;     /* 0: the server default (HEARTH_CONTEXT_LENGTH, else 4096), clamped to training */
    int num_keep;    /* prompt tokens kept when a long prompt is truncated */
    int num_batch;
    int num_thread;  /* load-time; 0: automatic */
    int num_gpu;     /* load-time: layers on the GPU as Ollama counts them (model/plan.h); -1: as many as fit */
    char *stops[OPTIONS_MAX_STOPS];
    size_t n_stops;
};

/* Built-in defaults (Ollama's: temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.0, ...). */
void options_default(struct gen_options *o);
/* Applies a JSON object of options over o. Unknown keys and Ollama's removed options are ignored;
 * a wrong type or an absurd value fails with ERR_INVALID and a message naming the option, e.g.
 * `option "top_k" must be of type integer`. NULL or JSON null applies nothing. */
int options_apply_json(struct gen_options *o, const json_t *obj, struct err *e);
/* Sets the stop strings (replacing, not merging, as Ollama does). */
int options_set_stops(struct gen_options *o, const char *const *stops, size_t n, struct err *e);
void options_free(struct gen_options *o);

/* Parses an Ollama keep_alive value: a JSON number of seconds or a Go duration string ("5m",
 * "1h30m", "-1s"). Negative means forever (INT64_MAX). JSON null/absent leaves *ns unchanged. */
int options_parse_keep_alive(const json_t *v, long long *ns, struct err *e);
/* Parses a Go duration string or a plain number of seconds. */
int options_parse_duration(const char *s, long long *ns, struct err *e);

#endif
