/* select.h — choosing a model's prompt template the way Ollama does and rendering chat messages
 * through it, whichever engine it needs; and turning OpenAI-style messages into Ollama's.
 *
 * Selection (tmpl_select): a Modelfile TEMPLATE (Go text/template) when there is one, else the
 * GGUF's tokenizer.chat_template (Jinja), else the fallback "{{ .Prompt }}" (a Go template run the
 * legacy way: each user turn's text, assistant replies between them, no markup), as Ollama does
 * for a model without a template. Ollama's exceptions (its own per-family renderers, preferring a
 * richer Jinja template over an older Go one) are not reproduced.
 *
 * Messages are Ollama's: {role, content, images?, thinking?, tool_calls?: [{id?, function: {index?,
 * name, arguments: {...}}}], tool_name?, tool_call_id?}; tools are Ollama's/OpenAI's
 * [{type: "function", function: {name, description, parameters}}].
 *
 * Go templates get Ollama's data: System (every system message joined by blank lines), Messages
 * (consecutive messages of one role merged with a blank line, except tool results; every field
 * present, zero when absent), Tools (in Ollama's struct field order), Think, ThinkLevel,
 * IsThinkSet, Response "". A template that names neither .Messages nor .Response is run once per
 * user/assistant turn with .System/.Prompt/.Response and the last turn is cut at .Response, as
 * Ollama's legacy path does. add_generation_prompt does not apply: a Go template decides itself.
 *
 * Jinja templates get: messages (each as given, plus reasoning_content from thinking and name from
 * tool_name when those are absent), tools (when non-empty), add_generation_prompt, bos_token,
 * eos_token, enable_thinking (when think is set), reasoning_effort (when think_level is set), and
 * any extra variables the caller passes.
 *
 * A struct tmpl is immutable once made: threads may render it at once. */
#ifndef HEARTH_TEMPLATE_SELECT_H
#define HEARTH_TEMPLATE_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

enum tmpl_kind {
    TMPL_GO,       /* a Modelfile TEMPLATE */
    TMPL_JINJA,    /* tokenizer.chat_template */
    TMPL_FALLBACK, /* neither: "{{ .Prompt }}" */
};

struct tmpl;

/* Picks and compiles a template (see above). go_text: the Modelfile TEMPLATE or NULL; jinja_text:
 * the GGUF's tokenizer.chat_template or NULL (empty strings count as absent). bos/eos: the texts
 * of the model's BOS/EOS tokens for Jinja's bos_token/eos_token (NULL: ""). Errors: ERR_FORMAT
 * naming which template failed to compile and where. */
int tmpl_select(const char *go_text, const char *jinja_text, const char *bos, const char *eos, struct tmpl **out,
                struct err *e);
/* Compiles text as the given kind (TMPL_FALLBACK ignores text). */
int tmpl_new(enum tmpl_kind kind, const char *text, const char *bos, const char *eos, struct tmpl **out,
             struct err *e);
void tmpl_free(struct tmpl *t);

enum tmpl_kind tmpl_kind(const struct tmpl *t);
/* The template's source ("{{ .Prompt }}" for the fallback). */
const char *tmpl_source(const struct tmpl *t);
/* Whether a Go template can fill in the middle: it names .Suffix (Ollama's "insert" capability).
 * False for Jinja and the fallback. */
bool tmpl_supports_insert(const struct tmpl *t);
/* Whether text reads as a Go template rather than Jinja: it uses {{ .Field }}-style data
 * ({{ .Messages, {{ .Prompt, {{- range .Messages ...) and no Jinja statements ({% ... %}). */
bool tmpl_text_is_go(const char *text);

/* Bounds for one render, for both engines; 0 takes the engine's default (Jinja 20M steps, Go 10M
 * steps; 16 MiB of output). Exceeding one fails the render with ERR_RANGE. */
struct tmpl_limits {
    uint64_t max_steps;
    size_t max_output;
};

struct tmpl_input {
    const json_t *messages;     /* array of Ollama messages (required) */
    const json_t *tools;        /* array of tools, or NULL */
    int think;                  /* -1 not set, 0 off, 1 on */
    const char *think_level;    /* "low"/"medium"/"high" or NULL */
    bool add_generation_prompt; /* Jinja only */
    const json_t *extra;        /* Jinja only: more variables (an object), or NULL */
    struct tmpl_limits limits;
    int64_t now;                /* Jinja's strftime_now clock, seconds since the epoch; 0: real time */
    /* Fill-in-the-middle (Go templates only): when non-NULL the template runs once with just
     * .Prompt (prompt, NULL: ""), .Suffix, .Response "" and the think fields, as Ollama does for
     * /api/generate with a suffix; messages and tools are then not used (messages may be NULL). */
    const char *prompt;
    const char *suffix;
};

/* Renders the prompt text. *out is malloc'd and NUL-terminated; *out_len (if not NULL) its length.
 * Errors: ERR_INVALID for messages/tools of the wrong shape (naming the index and field) or a
 * template that failed on them (raise_exception's message, or "line L: ..."), ERR_RANGE for a
 * limit, ERR_NOMEM. */
int tmpl_render(const struct tmpl *t, const struct tmpl_input *in, char **out, size_t *out_len, struct err *e);

/* OpenAI chat messages (/v1/chat/completions) to Ollama's, as Ollama's compatibility layer does:
 * content as a string or an array of parts ({type: "text", text} and {type: "image_url",
 * image_url: "data:image/...;base64,..." or {url: ...}}), each part its own message; assistant
 * reasoning / reasoning_content -> thinking; tool_calls[].function.arguments, a JSON string, decoded
 * into an object; role "tool" gets tool_name from name, or from the earlier call whose id is
 * tool_call_id. *out is a new array. Errors (ERR_INVALID, message for an HTTP 400): an empty list
 * ("[] is too short - 'messages'"), a malformed message (index and field), invalid tool call
 * arguments, an image URL that is not base64 data. */
int tmpl_messages_from_openai(const json_t *messages, json_t **out, struct err *e);

#endif
