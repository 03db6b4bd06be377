/* jinja.h — hearth's Jinja subset for chat templates (tokenizer.chat_template in GGUF metadata or
 * tokenizer_config.json).
 *
 * The renderer aims to produce byte-for-byte what @huggingface/jinja (the renderer used by
 * transformers.js and the Hugging Face hub) produces for the same template and context, quirks
 * included: trim_blocks and lstrip_blocks are on, `none` and undefined values print nothing,
 * booleans print as `true`/`false`, tojson keeps non-ASCII characters, and str.strip() ignores its
 * argument. Where that renderer rejects something that Python's Jinja accepts (a few filters and
 * tests such as `reject`, `select`, `map('upper')`, `round`, `wordcount`, `is divisibleby(n)`),
 * hearth follows Python's Jinja instead of failing.
 *
 * A compiled template is immutable: several threads may render it at once. */
#ifndef HEARTH_TEMPLATE_JINJA_H
#define HEARTH_TEMPLATE_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

struct jinja_template;

/* Bounds on one render, so that no template can loop or grow without end. A zero field takes the
 * default given beside it. Exceeding a bound fails the render with ERR_RANGE and a message that
 * names the bound. */
struct jinja_limits {
    uint64_t max_steps;  /* evaluation steps (nodes evaluated, loop iterations); 20,000,000 */
    size_t max_output;   /* bytes of output, and of any one string built on the way; 16 MiB */
    size_t max_memory;   /* bytes the render may allocate in all; 256 MiB */
    unsigned max_depth;  /* nested macro calls; 256 */
    /* The clock seen by strftime_now(), in seconds since the Unix epoch, shown in local time;
     * 0 means the real clock. Tests pin it to get reproducible dates. */
    int64_t now;
};

/* Compiles a template. Syntax errors fail with ERR_FORMAT and a message "line L:C: ...". */
int jinja_compile(const char *src, size_t len, struct jinja_template **out, struct err *e);

/* Renders t over a JSON object whose members become the template's variables (messages, tools,
 * add_generation_prompt, bos_token, eos_token, enable_thinking, ...). lim may be NULL for the
 * defaults. On success *out is a malloc'd NUL-terminated string (the caller frees it) and, when
 * out_len is not NULL, *out_len its length. Errors:
 *   ERR_INVALID  the template called raise_exception(msg) (the message contains msg), or an
 *                operation failed on the given data ("line L:C: ...")
 *   ERR_RANGE    a limit was exceeded
 *   ERR_NOMEM    allocation failed */
int jinja_render(const struct jinja_template *t, const json_t *context, const struct jinja_limits *lim,
                 char **out, size_t *out_len, struct err *e);

void jinja_free(struct jinja_template *t);

#endif
