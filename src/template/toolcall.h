/* toolcall.h — splitting streamed model output into visible content, reasoning ("thinking") and
 * tool calls, for the formats of the model families hearth serves:
 *   TOOLCALL_LLAMA3   <|python_tag|>{"name": ..., "parameters": {...}}, or a bare JSON object of that
 *                     shape as the whole reply (calls may be separated by ';')
 *   TOOLCALL_QWEN     <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen 2.5 / 3, Hermes)
 *   TOOLCALL_MISTRAL  [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] or
 *                     [TOOL_CALLS]name[ARGS]{...} (newer Mistral templates)
 * and, when thinking is on, <think>...</think> (Qwen 3, DeepSeek-R1) into a separate channel.
 *
 * Text is pushed as it is generated, in chunks of any size. A call is reported only once it is
 * complete, in exactly one push, and text that might still be the start of a tag is held back until
 * it is known; text that looked like a call but does not parse is returned as content at the end, so
 * nothing is lost. */
#ifndef HEARTH_TEMPLATE_TOOLCALL_H
#define HEARTH_TEMPLATE_TOOLCALL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/err.h"

enum toolcall_format { TOOLCALL_NONE, TOOLCALL_LLAMA3, TOOLCALL_QWEN, TOOLCALL_MISTRAL };

/* Guesses the format from a chat template's text (Jinja or Go): the tags it writes. */
enum toolcall_format toolcall_format_detect(const char *template_text);
/* True when the template writes <think> tags (the model may reason before answering). */
bool toolcall_template_thinks(const char *template_text);

struct toolcall_parser;

/* thinking: extract <think>...</think>. starts_thinking: the prompt already opened the block (the
 * template ended with "<think>\n"), so output is reasoning until </think>. */
int toolcall_parser_new(enum toolcall_format fmt, bool thinking, bool starts_thinking,
                        struct toolcall_parser **out, struct err *e);
void toolcall_parser_free(struct toolcall_parser *p);

/* What one push (or the finish) produced. The strings and the array belong to the parser and stay
 * valid until its next push, finish or free. */
struct toolcall_delta {
    const char *content; /* visible text, NUL-terminated */
    size_t content_len;
    const char *thinking; /* reasoning text */
    size_t thinking_len;
    /* Completed calls: an array of {"name": string, "arguments": object}, the shape of Ollama's
     * message.tool_calls[].function. Empty when none completed. */
    const json_t *calls;
};

int toolcall_push(struct toolcall_parser *p, const char *text, size_t len, struct toolcall_delta *d,
                  struct err *e);
/* End of output: releases anything held back (an unfinished call comes back as content). */
int toolcall_finish(struct toolcall_parser *p, struct toolcall_delta *d, struct err *e);

#endif
