/* grammar_internal.h — the compiled form of a JSON Schema shared by the schema compiler
 * (grammar_schema.c) and the byte automaton (grammar.c). Not part of the public API. */
#ifndef HEARTH_SAMPLE_GRAMMAR_INTERNAL_H
#define HEARTH_SAMPLE_GRAMMAR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

enum gkind { G_ANY, G_OBJECT, G_ARRAY, G_STRING, G_NUMBER, G_INTEGER, G_LIT, G_ANYOF };

/* Nodes every schema has, at fixed indices: the "any value" machinery and the keys of free objects. */
enum {
    GN_ANY = 0,     /* any JSON value */
    GN_ANY_OBJ = 1, /* object with any keys and values */
    GN_ANY_ARR = 2, /* array of any values */
    GN_STR = 3,     /* any string (also object keys) */
    GN_NUM = 4,
    GN_TRUE = 5,
    GN_FALSE = 6,
    GN_NULL = 7,
    GN_FIXED = 8
};

#define G_NO_NODE UINT32_MAX
#define G_UNBOUNDED UINT32_MAX

struct gnode {
    uint8_t kind;
    uint32_t off, n;      /* object: props[off..off+n); anyof: alts[off..off+n) */
    int32_t last_required; /* object: index of the last required property, -1 if none */
    uint32_t child;        /* object: additional-property value node (G_NO_NODE: none);
                              array: items node; literal: index into lits */
    uint32_t min, max;     /* array: item count; string: length in characters; object: properties */
    uint32_t key;          /* object: the string node of additional property names */
};

struct gprop {
    uint32_t key_lit; /* literal: the JSON-escaped name after its opening quote, closing quote included */
    uint32_t node;
    uint8_t required;
};

struct glit {
    char *s;
    size_t len;
};

struct gschema {
    struct gnode *nodes;
    size_t n_nodes, cap_nodes;
    struct gprop *props;
    size_t n_props, cap_props;
    uint32_t *alts;
    size_t n_alts, cap_alts;
    struct glit *lits;
    size_t n_lits, cap_lits;
    uint32_t root;
};

/* Compiles schema (NULL: any value) into s. ERR_INVALID names the schema location it cannot use. */
int gschema_compile(struct gschema *s, const json_t *schema, struct err *e);
void gschema_free(struct gschema *s);

#endif
