/* chat.h — turning chat messages into a prompt with the model's own Jinja chat template
 * (tokenizer.chat_template in the GGUF), with a documented plain fallback for models without one. */
#ifndef HEARTH_ENGINE_CHAT_H
#define HEARTH_ENGINE_CHAT_H

#include <stdbool.h>

#include <jansson.h>

#include "base/err.h"

struct model;

struct tmpl;

struct chat_template {
    struct tmpl *tpl;           /* the compiled Jinja template; NULL: the model has none */
    char *source;               /* the template text (for /api/show), or NULL */
    char *bos, *eos;            /* token texts given to the template as bos_token/eos_token */
    bool add_bos;               /* the tokenizer adds BOS itself */
};

/* Reads and compiles the model's chat template. A model without one gets tpl NULL (not an error);
 * a template that does not compile fails with ERR_FORMAT naming the key. */
int chat_template_load(const struct model *m, struct chat_template *ct, struct err *e);
void chat_template_free(struct chat_template *ct);

/* What to render besides the messages. */
struct chat_render_opts {
    const json_t *tools;        /* array of tools, or NULL */
    int think;                  /* -1 not set, 0 off, 1 on (Jinja's enable_thinking, Go's .Think) */
    const char *think_level;    /* "low"/"medium"/"high" or NULL */
    const struct tmpl *override; /* a Modelfile TEMPLATE to use instead of the GGUF's, or NULL */
};

/* Renders messages (a JSON array of {role, content, ...}) with add_generation_prompt. Without a
 * template the prompt is the messages' contents in order joined by blank lines (a single user message
 * gives its text unchanged, like Ollama's "{{ .Prompt }}" fallback). When the template writes the BOS
 * text itself and the tokenizer also adds BOS, the leading BOS text is removed so BOS is not doubled.
 * *out is malloc'd. *templated tells whether special-token text should be parsed. o may be NULL. */
int chat_render(const struct chat_template *ct, const json_t *messages, const struct chat_render_opts *o,
                char **out, bool *templated, struct err *e);

/* Checks a messages array: objects with a string role (lower-cased in place) and string or null
 * content. ERR_INVALID names the index and field. */
int chat_validate_messages(json_t *messages, struct err *e);

#endif
