/* gotmpl.h — the subset of Go's text/template that Ollama Modelfile TEMPLATEs use.
 *
 * Language: text and {{ actions }} with {{- / -}} whitespace trimming and comments (an action
 * holding only a slash-star comment);
 * pipelines with '|'; fields (.System, .Messages, .Function.Name, $.Tools, $var.Field); variables
 * ($x := ..., $x = ..., $i, $v := range ...); if / else if / else, range (arrays, objects in key
 * order) with else, with / else; literals (strings, raw strings, numbers, true, false, nil);
 * parenthesised pipelines; functions and, or, not, eq, ne, lt, le, gt, ge, len, index, slice, json,
 * print, println, printf (verbs %s %d %v %q %t %f %%).
 *
 * Data is JSON (jansson): an object's members are the template's fields, with Ollama's names:
 *   System, Prompt, Response (strings), Think (bool), ThinkLevel (string), Tools (array of
 *   {Type, Function: {Name, Description, Parameters}}), Messages (array of {Role, Content,
 *   Thinking, ToolName, ToolCalls: [{Function: {Name, Arguments}}]}).
 * A field not found under its Go name is looked up under the JSON name of Ollama's API types
 * (ToolCalls -> tool_calls, ToolCallID -> tool_call_id, Defs -> $defs), so Ollama's wire JSON can
 * be the data as is.
 * Printing follows Go: a missing field prints "<no value>" when its parent is an object, objects
 * and arrays print as JSON (as Ollama's tool types do through their String methods), and json
 * produces Go's encoding (keys in the data's order, as Ollama's struct fields and ordered maps give
 * them; <, > and & escaped as \u003c, \u003e, \u0026). */
#ifndef HEARTH_TEMPLATE_GOTMPL_H
#define HEARTH_TEMPLATE_GOTMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

struct gotmpl;

struct gotmpl_limits {
    uint64_t max_steps; /* actions and loop iterations evaluated; 0: 10,000,000 */
    size_t max_output;  /* bytes of output; 0: 16 MiB */
};

/* Parses a template. Errors: ERR_FORMAT "template: line L: ..." naming the problem. */
int gotmpl_parse(const char *src, size_t len, struct gotmpl **out, struct err *e);
/* Renders over data (see above). *out is malloc'd and NUL-terminated. Errors: ERR_INVALID for an
 * evaluation error (unknown function, wrong argument types, "line L: ..."), ERR_RANGE for a limit. */
int gotmpl_render(const struct gotmpl *t, const json_t *data, const struct gotmpl_limits *lim, char **out,
                  size_t *out_len, struct err *e);
void gotmpl_free(struct gotmpl *t);

/* Flags of gotmpl_render_ex. GOTMPL_CUT_AT_RESPONSE: stop after the first action that prints
 * .Response (in template order: a node, then its body, then its else branch), as Ollama does for the
 * last turn of a legacy .System/.Prompt/.Response template so that generation continues there. */
enum { GOTMPL_CUT_AT_RESPONSE = 1 };
int gotmpl_render_ex(const struct gotmpl *t, const json_t *data, const struct gotmpl_limits *lim, unsigned flags,
                     char **out, size_t *out_len, struct err *e);

/* Whether the template names an identifier (a field anywhere in a chain, or a variable), compared
 * case-insensitively as Ollama's Template.Vars does: "messages", "response", "tools", ... */
bool gotmpl_uses(const struct gotmpl *t, const char *name);

#endif
