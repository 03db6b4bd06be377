/* grammar_schema.c — JSON Schema (the subset grammar.h lists) compiled into the node graph that the
 * byte automaton in grammar.c walks. $ref targets are compiled once and may be recursive: a node is
 * reserved before its target is compiled, and the automaton expands nodes only as bytes arrive. */
#include "sample/grammar_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            size_t nc_ = (cap) ? (cap) * 2 : 16;                                                   \
            void *p_ = realloc((arr), nc_ * sizeof *(arr));                                        \
            if (!p_)                                                                               \
                return -1;                                                                         \
            (arr) = p_;                                                                            \
            (cap) = nc_;                                                                           \
        }                                                                                          \
    } while (0)

struct refmemo {
    const json_t *target;
    uint32_t node;
};

struct compiler {
    struct gschema *s;
    const json_t *doc;
    struct refmemo *refs;
    size_t n_refs, cap_refs;
    unsigned depth;
    struct err *e;
};

static int64_t new_node(struct gschema *s, uint8_t kind)
{
    GROW(s->nodes, s->n_nodes, s->cap_nodes);
    struct gnode *n = &s->nodes[s->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->last_required = -1;
    n->child = G_NO_NODE;
    n->max = G_UNBOUNDED;
    n->key = GN_STR;
    return (int64_t)s->n_nodes++;
}

static int64_t new_lit(struct gschema *s, const char *text, size_t len)
{
    GROW(s->lits, s->n_lits, s->cap_lits);
    char *c = malloc(len + 1);
    if (!c)
        return -1;
    memcpy(c, text, len);
    c[len] = 0;
    s->lits[s->n_lits].s = c;
    s->lits[s->n_lits].len = len;
    return (int64_t)s->n_lits++;
}

static int64_t lit_node(struct gschema *s, const char *text, size_t len)
{
    int64_t l = new_lit(s, text, len);
    if (l < 0)
        return -1;
    int64_t n = new_node(s, G_LIT);
    if (n < 0)
        return -1;
    s->nodes[n].child = (uint32_t)l;
    return n;
}

/* The JSON text of a value as the automaton must produce it: compact, non-ASCII kept as UTF-8. */
static int64_t value_lit_node(struct compiler *c, const json_t *v, const char *path)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text)
        return err_set(c->e, ERR_INVALID, "JSON schema %s: value cannot be serialised", path);
    int64_t n = lit_node(c->s, text, strlen(text));
    free(text);
    return n < 0 ? err_set(c->e, ERR_NOMEM, "out of memory compiling the JSON schema") : n;
}

static int64_t compile(struct compiler *c, const json_t *sch, const char *path);

static int64_t nomem(struct compiler *c)
{
    return err_set(c->e, ERR_NOMEM, "out of memory compiling the JSON schema");
}

/* Builds an anyOf node from alternatives compiled into tmp[0..n). */
static int64_t anyof_node(struct compiler *c, const uint32_t *tmp, size_t n)
{
    if (n == 1)
        return tmp[0];
    struct gschema *s = c->s;
    int64_t node = new_node(s, G_ANYOF);
    if (node < 0)
        return nomem(c);
    s->nodes[node].off = (uint32_t)s->n_alts;
    for (size_t i = 0; i < n; i++) {
        if (s->n_alts == s->cap_alts) {
            size_t nc = s->cap_alts ? s->cap_alts * 2 : 16;
            uint32_t *p = realloc(s->alts, nc * sizeof *p);
            if (!p)
                return nomem(c);
            s->alts = p;
            s->cap_alts = nc;
        }
        s->alts[s->n_alts++] = tmp[i];
    }
    s->nodes[node].n = (uint32_t)n;
    return node;
}

static int get_count(struct compiler *c, const json_t *sch, const char *key, const char *path,
                     uint32_t *out)
{
    const json_t *v = json_object_get(sch, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return err_set(c->e, ERR_INVALID, "JSON schema %s: \"%s\" must be a non-negative integer", path, key);
    json_int_t x = json_integer_value(v);
    *out = x >= (json_int_t)G_UNBOUNDED ? G_UNBOUNDED - 1 : (uint32_t)x;
    return 0;
}

static int add_prop(struct compiler *c, const char *name, uint32_t node, int required)
{
    struct gschema *s = c->s;
    json_t *str = json_string(name);
    char *text = str ? json_dumps(str, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(str);
    if (!text)
        return -1;
    int64_t l = new_lit(s, text + 1, strlen(text + 1)); /* the opening quote is matched separately */
    free(text);
    if (l < 0)
        return -1;
    GROW(s->props, s->n_props, s->cap_props);
    s->props[s->n_props].key_lit = (uint32_t)l;
    s->props[s->n_props].node = node;
    s->props[s->n_props].required = (uint8_t)required;
    s->n_props++;
    return 0;
}

static int64_t compile_object(struct compiler *c, const json_t *sch, const char *path)
{
    struct gschema *s = c->s;
    const json_t *props = json_object_get(sch, "properties");
    const json_t *req = json_object_get(sch, "required");
    const json_t *addl = json_object_get(sch, "additionalProperties");
    if (props && !json_is_object(props))
        return err_set(c->e, ERR_INVALID, "JSON schema %s: \"properties\" must be an object", path);
    if (req && !json_is_array(req))
        return err_set(c->e, ERR_INVALID, "JSON schema %s: \"required\" must be an array of names", path);
    size_t np = props ? json_object_size(props) : 0;
    size_t nr = req ? json_array_size(req) : 0;
    /* Compile the property schemas first: they add props of their own to s->props. */
    uint32_t *pn = calloc(np + nr + 1, sizeof *pn);
    const char **names = calloc(np + nr + 1, sizeof *names);
    char *isreq = calloc(np + nr + 1, 1);
    if (!pn || !names || !isreq) {
        free(pn), free(names), free(isreq);
        return nomem(c);
    }
    int64_t rc = 0;
    size_t k = 0;
    const char *key;
    json_t *val;
    if (props) {
        json_object_foreach((json_t *)props, key, val) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s/properties/%s", path, key);
            int64_t n = compile(c, val, sub);
            if (n < 0) {
                rc = n;
                goto out;
            }
            names[k] = key;
            pn[k++] = (uint32_t)n;
        }
    }
    for (size_t i = 0; i < nr; i++) {
        const char *r = json_string_value(json_array_get(req, i));
        if (!r) {
            rc = err_set(c->e, ERR_INVALID, "JSON schema %s: \"required\"[%zu] is not a string", path, i);
            goto out;
        }
        size_t j = 0;
        while (j < k && strcmp(names[j], r) != 0)
            j++;
        if (j == k) { /* required but not described: any value */
            names[k] = r;
            pn[k++] = GN_ANY;
        }
        isreq[j] = 1;
    }
    int64_t node = new_node(s, G_OBJECT);
    if (node < 0) {
        rc = nomem(c);
        goto out;
    }
    s->nodes[node].off = (uint32_t)s->n_props;
    s->nodes[node].n = (uint32_t)k;
    for (size_t i = 0; i < k; i++) {
        if (add_prop(c, names[i], pn[i], isreq[i]) != 0) {
            rc = nomem(c);
            goto out;
        }
        if (isreq[i])
            s->nodes[node].last_required = (int32_t)i;
    }
    uint32_t an;
    if (!addl)
        an = np + nr > 0 ? G_NO_NODE : GN_ANY;
    else if (json_is_false(addl))
        an = G_NO_NODE;
    else {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/additionalProperties", path);
        int64_t n = compile(c, addl, sub);
        if (n < 0) {
            rc = n;
            goto out;
        }
        an = (uint32_t)n;
    }
    s->nodes[node].child = an;
    const json_t *pnames = json_object_get(sch, "propertyNames");
    if (pnames) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/propertyNames", path);
        int64_t kn = compile(c, pnames, sub);
        if (kn < 0) {
            rc = kn;
            goto out;
        }
        if (s->nodes[kn].kind != G_STRING) {
            rc = err_set(c->e, ERR_INVALID, "JSON schema %s: propertyNames must be a string schema", sub);
            goto out;
        }
        s->nodes[node].key = (uint32_t)kn;
    }
    s->nodes[node].min = 0;
    if (get_count(c, sch, "minProperties", path, &s->nodes[node].min) ||
        get_count(c, sch, "maxProperties", path, &s->nodes[node].max)) {
        rc = c->e->code;
        goto out;
    }
    if (s->nodes[node].max > UINT8_MAX - 1)
        s->nodes[node].max = G_UNBOUNDED; /* the automaton counts properties up to 254 */
    if (s->nodes[node].min > UINT8_MAX - 1) {
        rc = err_set(c->e, ERR_INVALID, "JSON schema %s: minProperties above 254 is not supported", path);
        goto out;
    }
    rc = node;
out:
    free(pn), free(names), free(isreq);
    return rc;
}

static int64_t compile_type(struct compiler *c, const json_t *sch, const char *type, const char *path)
{
    struct gschema *s = c->s;
    if (strcmp(type, "object") == 0)
        return compile_object(c, sch, path);
    if (strcmp(type, "array") == 0) {
        uint32_t items = GN_ANY;
        const json_t *it = json_object_get(sch, "items");
        if (it) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s/items", path);
            int64_t n = compile(c, it, sub);
            if (n < 0)
                return n;
            items = (uint32_t)n;
        }
        int64_t node = new_node(s, G_ARRAY);
        if (node < 0)
            return nomem(c);
        s->nodes[node].child = items;
        s->nodes[node].min = 0;
        if (get_count(c, sch, "minItems", path, &s->nodes[node].min) ||
            get_count(c, sch, "maxItems", path, &s->nodes[node].max))
            return c->e->code;
        if (s->nodes[node].min > s->nodes[node].max)
            return err_set(c->e, ERR_INVALID, "JSON schema %s: minItems exceeds maxItems", path);
        return node;
    }
    if (strcmp(type, "string") == 0) {
        if (!json_object_get(sch, "minLength") && !json_object_get(sch, "maxLength"))
            return GN_STR;
        int64_t node = new_node(s, G_STRING);
        if (node < 0)
            return nomem(c);
        s->nodes[node].min = 0;
        if (get_count(c, sch, "minLength", path, &s->nodes[node].min) ||
            get_count(c, sch, "maxLength", path, &s->nodes[node].max))
            return c->e->code;
        if (s->nodes[node].min > s->nodes[node].max)
            return err_set(c->e, ERR_INVALID, "JSON schema %s: minLength exceeds maxLength", path);
        return node;
    }
    if (strcmp(type, "number") == 0)
        return GN_NUM;
    if (strcmp(type, "integer") == 0) {
        int64_t node = new_node(s, G_INTEGER);
        return node < 0 ? nomem(c) : node;
    }
    if (strcmp(type, "boolean") == 0) {
        uint32_t tf[2] = {GN_TRUE, GN_FALSE};
        return anyof_node(c, tf, 2);
    }
    if (strcmp(type, "null") == 0)
        return GN_NULL;
    return err_set(c->e, ERR_INVALID,
                   "JSON schema %s: unknown type \"%s\" (expected object, array, string, number, "
                   "integer, boolean or null)", path, type);
}

static int64_t compile_ref(struct compiler *c, const char *ref, const char *path)
{
    const json_t *target = NULL;
    if (strcmp(ref, "#") == 0)
        target = c->doc;
    else if (strncmp(ref, "#/$defs/", 8) == 0)
        target = json_object_get(json_object_get(c->doc, "$defs"), ref + 8);
    else if (strncmp(ref, "#/definitions/", 14) == 0)
        target = json_object_get(json_object_get(c->doc, "definitions"), ref + 14);
    if (!target)
        return err_set(c->e, ERR_INVALID,
                       "JSON schema %s: $ref \"%s\" does not resolve (hearth follows \"#\", "
                       "\"#/$defs/NAME\" and \"#/definitions/NAME\" within the schema)", path, ref);
    for (size_t i = 0; i < c->n_refs; i++)
        if (c->refs[i].target == target)
            return c->refs[i].node;
    /* Reserve an anyOf-of-one node, filled in once the target is compiled, so that recursive
     * references find it. */
    int64_t node = new_node(c->s, G_ANYOF);
    if (node < 0)
        return nomem(c);
    if (c->n_refs == c->cap_refs) {
        size_t nc = c->cap_refs ? c->cap_refs * 2 : 8;
        struct refmemo *p = realloc(c->refs, nc * sizeof *p);
        if (!p)
            return nomem(c);
        c->refs = p;
        c->cap_refs = nc;
    }
    c->refs[c->n_refs].target = target;
    c->refs[c->n_refs].node = (uint32_t)node;
    c->n_refs++;
    int64_t t = compile(c, target, ref);
    if (t < 0)
        return t;
    uint32_t one = (uint32_t)t;
    struct gschema *s = c->s;
    if (s->n_alts == s->cap_alts) {
        size_t nc = s->cap_alts ? s->cap_alts * 2 : 16;
        uint32_t *p = realloc(s->alts, nc * sizeof *p);
        if (!p)
            return nomem(c);
        s->alts = p;
        s->cap_alts = nc;
    }
    s->nodes[node].off = (uint32_t)s->n_alts;
    s->nodes[node].n = 1;
    s->alts[s->n_alts++] = one;
    return node;
}

/* Members of an alternation ("enum", "anyOf"/"oneOf", a list of "type" names): item i of the array,
 * in the schema sch at path. */
static int64_t alt_literal(struct compiler *c, const json_t *sch, const json_t *item, size_t i, const char *path)
{
    (void)sch;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/enum/%zu", path, i);
    return value_lit_node(c, item, sub);
}

static int64_t alt_schema(struct compiler *c, const json_t *sch, const json_t *item, size_t i, const char *path)
{
    (void)sch;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/anyOf/%zu", path, i);
    return compile(c, item, sub);
}

static int64_t alt_type(struct compiler *c, const json_t *sch, const json_t *item, size_t i, const char *path)
{
    const char *t = json_string_value(item);
    return t ? compile_type(c, sch, t, path)
             : err_set(c->e, ERR_INVALID, "JSON schema %s: type[%zu] is not a string", path, i);
}

/* Compiles every member of the non-empty array v with one and joins them into a single alternation. */
static int64_t alternatives(struct compiler *c, const json_t *sch, const json_t *v, const char *path,
                            int64_t (*one)(struct compiler *, const json_t *, const json_t *, size_t, const char *))
{
    size_t n = json_array_size(v);
    uint32_t *tmp = malloc(n * sizeof *tmp);
    int64_t rc = tmp ? 0 : nomem(c);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t x = one(c, sch, json_array_get(v, i), i, path);
        if (x < 0)
            rc = x;
        else
            tmp[i] = (uint32_t)x;
    }
    if (rc == 0)
        rc = anyof_node(c, tmp, n);
    free(tmp);
    return rc;
}

static int64_t compile(struct compiler *c, const json_t *sch, const char *path)
{
    if (!sch || json_is_true(sch))
        return GN_ANY;
    if (json_is_false(sch))
        return err_set(c->e, ERR_INVALID, "JSON schema %s is false: no value can match it", path);
    if (!json_is_object(sch))
        return err_set(c->e, ERR_INVALID, "JSON schema %s: a schema must be an object or a boolean", path);
    if (++c->depth > 64) {
        c->depth--;
        return err_set(c->e, ERR_INVALID, "JSON schema %s: nested more than 64 levels deep", path);
    }
    int64_t rc;
    const json_t *v;
    if ((v = json_object_get(sch, "$ref"))) {
        rc = json_is_string(v) ? compile_ref(c, json_string_value(v), path)
                               : err_set(c->e, ERR_INVALID, "JSON schema %s: $ref must be a string", path);
    } else if ((v = json_object_get(sch, "const"))) {
        rc = value_lit_node(c, v, path);
    } else if ((v = json_object_get(sch, "enum"))) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            rc = err_set(c->e, ERR_INVALID, "JSON schema %s: \"enum\" must be a non-empty array", path);
        else
            rc = alternatives(c, sch, v, path, alt_literal);
    } else if ((v = json_object_get(sch, "anyOf")) || (v = json_object_get(sch, "oneOf")) ||
               ((v = json_object_get(sch, "allOf")) && json_array_size(v) == 1)) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            rc = err_set(c->e, ERR_INVALID, "JSON schema %s: anyOf/oneOf must be a non-empty array", path);
        else
            rc = alternatives(c, sch, v, path, alt_schema);
    } else if (json_object_get(sch, "allOf")) {
        rc = err_set(c->e, ERR_INVALID,
                     "JSON schema %s: allOf with several schemas is not supported (merge them into one)",
                     path);
    } else if ((v = json_object_get(sch, "type"))) {
        if (json_is_string(v)) {
            rc = compile_type(c, sch, json_string_value(v), path);
        } else if (json_is_array(v) && json_array_size(v) > 0) {
            rc = alternatives(c, sch, v, path, alt_type);
        } else {
            rc = err_set(c->e, ERR_INVALID, "JSON schema %s: \"type\" must be a name or a list of names",
                         path);
        }
    } else if (json_object_get(sch, "properties") || json_object_get(sch, "required") ||
               json_object_get(sch, "additionalProperties")) {
        rc = compile_type(c, sch, "object", path);
    } else if (json_object_get(sch, "items")) {
        rc = compile_type(c, sch, "array", path);
    } else {
        rc = GN_ANY;
    }
    c->depth--;
    return rc;
}

int gschema_compile(struct gschema *s, const json_t *schema, struct err *e)
{
    memset(s, 0, sizeof *s);
    struct compiler c = {.s = s, .doc = schema, .e = e};
    /* The fixed nodes (see grammar_internal.h), in order. */
    int ok = new_node(s, G_ANY) == GN_ANY && new_node(s, G_OBJECT) == GN_ANY_OBJ &&
             new_node(s, G_ARRAY) == GN_ANY_ARR && new_node(s, G_STRING) == GN_STR &&
             new_node(s, G_NUMBER) == GN_NUM && lit_node(s, "true", 4) == GN_TRUE &&
             lit_node(s, "false", 5) == GN_FALSE && lit_node(s, "null", 4) == GN_NULL;
    if (!ok) {
        gschema_free(s);
        return err_set(e, ERR_NOMEM, "out of memory compiling the JSON schema");
    }
    s->nodes[GN_ANY_OBJ].child = GN_ANY;
    s->nodes[GN_ANY_ARR].child = GN_ANY;
    s->nodes[GN_ANY_ARR].min = 0;
    s->nodes[GN_STR].min = 0;
    int64_t root = compile(&c, schema, "#");
    free(c.refs);
    if (root < 0) {
        gschema_free(s);
        return (int)root;
    }
    s->root = (uint32_t)root;
    return 0;
}

void gschema_free(struct gschema *s)
{
    for (size_t i = 0; i < s->n_lits; i++)
        free(s->lits[i].s);
    free(s->lits);
    free(s->nodes);
    free(s->props);
    free(s->alts);
    memset(s, 0, sizeof *s);
}
