/* jinja_internal.h — what the Jinja lexer, parser, value model, evaluator and filters share:
 * the arena, tokens, the syntax tree, runtime values and the render state. Not a public API. */
#ifndef HEARTH_TEMPLATE_JINJA_INTERNAL_H
#define HEARTH_TEMPLATE_JINJA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "template/jinja.h"

/* ---- arena: every token, node and runtime value lives in one, freed at once ---- */
struct jchunk;
struct jarena {
    struct jchunk *head;
    size_t total;  /* bytes obtained from malloc so far */
    size_t limit;  /* 0 = unlimited */
    bool over;     /* set when an allocation failed because of limit */
};
void *ja_alloc(struct jarena *a, size_t n); /* zeroed, 16-aligned; NULL on OOM or over limit */
void ja_release(struct jarena *a);
char *ja_strndup(struct jarena *a, const char *s, size_t n);

/* ---- growable byte buffer on malloc ---- */
struct jbuf {
    char *p;
    size_t len, cap;
};
int jbuf_put(struct jbuf *b, const char *s, size_t n); /* 0, or -1 on OOM */
int jbuf_putc(struct jbuf *b, char c);
int jbuf_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jbuf_free(struct jbuf *b);

/* ---- UTF-8 helpers; JavaScript string semantics where the reference relies on them ---- */
uint32_t ju_decode(const char *s, size_t n, size_t *adv); /* invalid byte -> U+FFFD, adv 1 */
size_t ju_encode(uint32_t cp, char out[4]);
bool ju_is_space(uint32_t cp);                     /* JavaScript's \s */
size_t ju_utf16_len(const char *s, size_t n);      /* JavaScript's String.length */
size_t ju_trim_start(const char *s, size_t n);     /* bytes of leading \s */
size_t ju_trim_end(const char *s, size_t n);       /* bytes kept after dropping trailing \s */

/* ---- tokens ---- */
enum jtok {
    T_TEXT, T_NUM, T_STR, T_IDENT, T_EQUALS, T_LPAREN, T_RPAREN, T_OPEN_STMT, T_CLOSE_STMT,
    T_OPEN_EXPR, T_CLOSE_EXPR, T_LBRACKET, T_RBRACKET, T_LBRACE, T_RBRACE, T_COMMA, T_DOT,
    T_COLON, T_PIPE, T_ADD, T_MUL, T_POW, T_CMP, T_UNARY, T_COMMENT,
};
struct jtoken {
    enum jtok type;
    const char *s; /* value (unescaped for strings), in the template's arena */
    size_t n;
    size_t pos;    /* byte offset in the original source */
};

/* Tokenizes src the way the reference does with trim_blocks and lstrip_blocks on. */
int jlex(struct jarena *a, const char *src, size_t len, struct jtoken **toks, size_t *ntoks,
         struct err *e);
/* "line L:C" for a byte offset of src. */
void jpos_format(const char *src, size_t len, size_t pos, char *buf, size_t size);

/* ---- syntax tree ---- */
enum jnode_kind {
    /* statements */
    N_IF, N_FOR, N_SET, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK, N_BREAK, N_CONTINUE,
    /* expressions (an expression in a body is printed) */
    N_INT, N_FLOAT, N_STR, N_IDENT, N_LIST, N_TUPLE, N_DICT, N_MEMBER, N_SLICE, N_CALL, N_UNARY,
    N_BINARY, N_FILTER, N_TEST, N_SELECT, N_TERNARY, N_KWARG, N_SPREAD, N_KWSPREAD,
};
enum jop {
    OP_AND = 1, OP_OR, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_IN, OP_NOTIN, OP_ADD, OP_SUB,
    OP_CONCAT, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_NOT, OP_NEG, OP_POS,
};
struct jstr;
struct jnode {
    enum jnode_kind kind;
    int op;          /* enum jop; N_MEMBER: computed; N_TEST: negated; N_FILTER: has (args) */
    size_t pos;      /* offset in the source, for messages */
    const char *str; /* literal text, identifier, filter/test/macro/keyword name */
    size_t len;
    const struct jstr *lit; /* N_STR and N_IDENT: str as a ready runtime string */
    int64_t ival;
    double fval;
    struct jnode *a, *b, *c;
    struct jnode **items; /* body, elements, arguments, dict keys */
    size_t nitems;
    struct jnode **alt;   /* else-body, dict values, macro/caller parameters */
    size_t nalt;
    bool uses_kwargs, uses_varargs; /* N_MACRO, N_CALLBLOCK */
};

struct jinja_template {
    struct jarena arena;
    char *src; /* copy of the source, for line numbers */
    size_t len;
    struct jnode **body;
    size_t nbody;
};

int jparse(struct jinja_template *t, struct jtoken *toks, size_t ntoks, struct err *e);

/* ---- runtime values ---- */
enum jv_kind { JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC };

struct jstr {
    size_t len;
    char s[]; /* NUL-terminated */
};
struct jv;
struct jlist {
    struct jv *v;
    size_t n, cap;
    bool tuple;
};
struct jdict {
    const struct jstr **k;
    struct jv *v;
    size_t n, cap;
};
struct jfunc;
struct jv {
    enum jv_kind kind;
    union {
        bool b;
        int64_t i;
        double f;
        const struct jstr *s;
        struct jlist *l;
        struct jdict *d; /* JV_DICT and JV_NS */
        const struct jfunc *fn;
    } u;
};

struct jscope {
    struct jscope *parent;
    struct jdict vars;
};

/* The state of one render. */
struct jrender {
    struct jarena *arena;
    const struct jinja_template *t;
    struct err *e;
    uint64_t steps, max_steps;
    size_t max_output;
    unsigned depth, max_depth;
    int64_t now;
    size_t pos; /* source offset of the node being evaluated, for messages */
};

/* Return codes inside the evaluator besides 0 and negative ERR_*: loop control. */
enum { JR_BREAK = 1, JR_CONTINUE = 2 };

/* errors: all return the negative code, with "line L:C: " prefixed from r->pos */
int jr_fail(struct jrender *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int jr_nomem(struct jrender *r);

/* constructors */
struct jv jv_undef(void);
struct jv jv_none(void);
struct jv jv_bool(bool b);
struct jv jv_int(int64_t i);
struct jv jv_float(double f);
const struct jstr *jstr_new(struct jrender *r, const char *s, size_t n); /* NULL: error set */
int jv_str(struct jrender *r, const char *s, size_t n, struct jv *out);
struct jlist *jlist_new(struct jrender *r, size_t cap);
int jlist_push(struct jrender *r, struct jlist *l, struct jv v);
struct jdict *jdict_new(struct jrender *r, size_t cap);
int jdict_set(struct jrender *r, struct jdict *d, const struct jstr *k, struct jv v);
int jdict_setc(struct jrender *r, struct jdict *d, const char *k, struct jv v);
struct jv *jdict_get(const struct jdict *d, const char *k, size_t n);
struct jv jv_list(struct jlist *l);
struct jv jv_dict(struct jdict *d);

const char *jv_type_name(const struct jv *v); /* the reference's names: "StringValue", ... */
bool jv_truthy(const struct jv *v);
bool jv_loose_eq(const struct jv *a, const struct jv *b);  /* JavaScript == on the values */
bool jv_strict_eq(const struct jv *a, const struct jv *b); /* JavaScript === on the values */
bool jv_is_num(const struct jv *v);
double jv_num(const struct jv *v);

/* Text forms. jv_write: how a value prints ({{ v }}, and inside an array's join). jv_write_raw:
 * JavaScript's String(v.value), used by + and ~ (1.0 -> "1", a dict -> "[object Map]"). */
int jv_write(struct jrender *r, struct jbuf *b, const struct jv *v);
int jv_write_raw(struct jrender *r, struct jbuf *b, const struct jv *v);
void js_number(double d, char buf[40]); /* JavaScript's Number.prototype.toString() */

struct jjson_opts {
    int indent;            /* 0 = none */
    bool ensure_ascii, sort_keys;
    const char *item_sep, *key_sep; /* NULL = defaults */
    bool undef_is_null;    /* tojson writes null for undefined; printing writes "undefined" */
};
int jv_tojson(struct jrender *r, struct jbuf *b, const struct jv *v, const struct jjson_opts *o);
int jv_from_json(struct jrender *r, const json_t *j, struct jv *out);
/* Orders like the reference's sort: numbers and booleans together, strings optionally by case;
 * mixed types are an error. *cmp gets -1, 0 or 1. */
int jv_compare(struct jrender *r, const struct jv *a, const struct jv *b, bool case_sensitive,
               int *cmp);
/* Stable merge sort of n values by jv_compare, descending when reverse. keys may equal items. */
int jv_sort(struct jrender *r, struct jv *items, const struct jv *keys, size_t n,
            bool case_sensitive, bool reverse);

/* ---- functions ---- */
enum jfn_kind { FN_BUILTIN, FN_MACRO, FN_CALLER };
struct jfunc {
    enum jfn_kind kind;
    int id;               /* FN_BUILTIN: which builtin */
    struct jv self;       /* bound receiver for methods */
    const struct jnode *node; /* FN_MACRO: the macro; FN_CALLER: the call block */
    struct jscope *scope; /* FN_CALLER: scope of the call block */
};
struct jargs {
    struct jv *pos;
    size_t npos;
    struct jdict *kw; /* may be NULL */
};

/* filters and methods, in jinja_filters.c */
void jf_globals_names(const char ***names, size_t *n);
int jf_install_globals(struct jrender *r, struct jscope *global);
/* Member lookup of a builtin method or property (str.upper, dict.items, list.length, ...).
 * *out is JV_UNDEF when there is none. */
int jf_member(struct jrender *r, const struct jv *obj, const char *name, size_t n, struct jv *out);
int jf_call_builtin(struct jrender *r, const struct jfunc *fn, struct jargs *args, struct jv *out);
/* Applies filter `name` to operand. has_call says whether it was written with parentheses. */
int jf_filter(struct jrender *r, struct jscope *s, const struct jv *operand, const char *name, size_t n,
              bool has_call, const struct jnode *argnode, struct jargs *args, struct jv *out);
/* Runs test `name`; args are the extra arguments (none in the reference's syntax). */
int jf_test(struct jrender *r, const char *name, size_t n, const struct jv *operand, const struct jv *args,
            size_t nargs, bool *result);

/* evaluator services for filters that call back (map with a filter name) */
int jeval_call_value(struct jrender *r, struct jscope *s, const struct jv *fn, struct jargs *args,
                     struct jv *out);

/* budget: one step; fails past max_steps */
int jr_step(struct jrender *r, uint64_t n);
/* fails when a string of n bytes would pass max_output */
int jr_check_len(struct jrender *r, size_t n);

#endif
