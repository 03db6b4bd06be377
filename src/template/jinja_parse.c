/* jinja_parse.c — builds the syntax tree from tokens with the reference's grammar and operator
 * precedence (which differ from Python's Jinja in places: `not` binds looser than comparisons,
 * a unary sign binds tighter than a filter). Nodes live in the template's arena. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja_internal.h"

#define MAX_NESTING 200 /* deeper than any real template; keeps the C stack bounded */

struct parser {
    struct jinja_template *t;
    struct jtoken *tk;
    size_t n, i;
    unsigned depth;
    struct err *e;
};

/* growable node list during parsing */
struct nlist {
    struct jnode **v;
    size_t n, cap;
};

static const char *tok_name(enum jtok t)
{
    switch (t) {
    case T_TEXT: return "text";
    case T_NUM: return "number";
    case T_STR: return "string";
    case T_IDENT: return "identifier";
    case T_EQUALS: return "'='";
    case T_LPAREN: return "'('";
    case T_RPAREN: return "')'";
    case T_OPEN_STMT: return "'{%'";
    case T_CLOSE_STMT: return "'%}'";
    case T_OPEN_EXPR: return "'{{'";
    case T_CLOSE_EXPR: return "'}}'";
    case T_LBRACKET: return "'['";
    case T_RBRACKET: return "']'";
    case T_LBRACE: return "'{'";
    case T_RBRACE: return "'}'";
    case T_COMMA: return "','";
    case T_DOT: return "'.'";
    case T_COLON: return "':'";
    case T_PIPE: return "'|'";
    case T_ADD: return "an additive operator";
    case T_MUL: return "a multiplicative operator";
    case T_POW: return "'**'";
    case T_CMP: return "a comparison operator";
    case T_UNARY: return "a sign";
    case T_COMMENT: return "a comment";
    }
    return "token";
}

static int pfail(struct parser *P, size_t tokidx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pfail(struct parser *P, size_t tokidx, const char *fmt, ...)
{
    char where[64], msg[700];
    size_t pos = tokidx < P->n ? P->tk[tokidx].pos : P->t->len;
    jpos_format(P->t->src, P->t->len, pos, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(P->e, ERR_FORMAT, "%s: %s", where, msg);
}

/* "found X" for the token at i, with its text when short */
static void describe(struct parser *P, size_t i, char *buf, size_t size)
{
    if (i >= P->n) {
        snprintf(buf, size, "the end of the template");
        return;
    }
    const struct jtoken *t = &P->tk[i];
    if (t->type == T_IDENT || t->type == T_NUM)
        snprintf(buf, size, "%s '%.*s'", tok_name(t->type), (int)(t->n < 40 ? t->n : 40), t->s);
    else
        snprintf(buf, size, "%s", tok_name(t->type));
}

static int expect(struct parser *P, enum jtok type, const char *what)
{
    if (P->i < P->n && P->tk[P->i].type == type) {
        P->i++;
        return 0;
    }
    char found[96];
    describe(P, P->i, found, sizeof found);
    return pfail(P, P->i, "expected %s %s, found %s", tok_name(type), what, found);
}

static bool is(struct parser *P, enum jtok type) { return P->i < P->n && P->tk[P->i].type == type; }

static bool is_ident_at(struct parser *P, size_t i, const char *name)
{
    return i < P->n && P->tk[i].type == T_IDENT && P->tk[i].n == strlen(name) &&
           memcmp(P->tk[i].s, name, P->tk[i].n) == 0;
}
static bool is_ident(struct parser *P, const char *name) { return is_ident_at(P, P->i, name); }

/* {% name ... at the cursor, for any of the names (NULL-terminated) */
static bool is_statement(struct parser *P, const char *const *names)
{
    if (!is(P, T_OPEN_STMT))
        return false;
    for (; *names; names++)
        if (is_ident_at(P, P->i + 1, *names))
            return true;
    return false;
}

static struct jnode *node(struct parser *P, enum jnode_kind kind, size_t tokidx)
{
    struct jnode *nd = ja_alloc(&P->t->arena, sizeof *nd);
    if (!nd) {
        err_set(P->e, ERR_NOMEM, "out of memory parsing the template");
        return NULL;
    }
    nd->kind = kind;
    nd->pos = tokidx < P->n ? P->tk[tokidx].pos : P->t->len;
    return nd;
}

/* Gives N_STR and N_IDENT nodes their text as a runtime string, built once at compile time. */
static int set_lit(struct parser *P, struct jnode *nd)
{
    struct jstr *x = ja_alloc(&P->t->arena, sizeof *x + nd->len + 1);
    if (!x)
        return err_set(P->e, ERR_NOMEM, "out of memory parsing the template");
    x->len = nd->len;
    if (nd->len)
        memcpy(x->s, nd->str, nd->len);
    nd->lit = x;
    return 0;
}

static int nl_push(struct parser *P, struct nlist *l, struct jnode *nd)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct jnode **v = ja_alloc(&P->t->arena, cap * sizeof *v);
        if (!v)
            return err_set(P->e, ERR_NOMEM, "out of memory parsing the template");
        if (l->n)
            memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = nd;
    return 0;
}

static struct jnode *parse_expression(struct parser *P);
static struct jnode *parse_primary(struct parser *P);
static int parse_any(struct parser *P, struct nlist *body);

#define ENTER(P)                                                                                   \
    do {                                                                                           \
        if (++(P)->depth > MAX_NESTING) {                                                          \
            pfail(P, (P)->i, "template nested more than %d levels deep", MAX_NESTING);             \
            (P)->depth--;                                                                          \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)
#define LEAVE(P, v)                                                                                \
    do {                                                                                           \
        (P)->depth--;                                                                              \
        return (v);                                                                                \
    } while (0)

/* expr, expr, ... -> a tuple when there is a comma */
static struct jnode *parse_sequence(struct parser *P, bool primary)
{
    size_t start = P->i;
    struct jnode *first = primary ? parse_primary(P) : parse_expression(P);
    if (!first || !is(P, T_COMMA))
        return first;
    struct nlist l = {0};
    if (nl_push(P, &l, first) != 0)
        return NULL;
    while (is(P, T_COMMA)) {
        P->i++;
        struct jnode *x = primary ? parse_primary(P) : parse_expression(P);
        if (!x || nl_push(P, &l, x) != 0)
            return NULL;
    }
    struct jnode *t = node(P, N_TUPLE, start);
    if (!t)
        return NULL;
    t->items = l.v;
    t->nitems = l.n;
    return t;
}

/* (args) of a call, or parameters of a macro when params */
static int parse_args(struct parser *P, bool params, struct nlist *out)
{
    if (expect(P, T_LPAREN, "to open the argument list") != 0)
        return -1;
    bool saw_kw = false, saw_spread = false;
    while (!is(P, T_RPAREN)) {
        if (P->i >= P->n)
            return pfail(P, P->i, "unterminated argument list");
        size_t at = P->i;
        bool kwspread = is(P, T_POW);
        bool spread = is(P, T_MUL) && P->tk[P->i].n == 1 && P->tk[P->i].s[0] == '*';
        if (params && (kwspread || spread))
            return pfail(P, at, "argument unpacking is not allowed in parameter declarations");
        if (kwspread) {
            P->i++;
            struct jnode *x = node(P, N_KWSPREAD, at);
            if (!x || !(x->a = parse_expression(P)) || nl_push(P, out, x) != 0)
                return -1;
            if (is(P, T_COMMA))
                P->i++;
            if (!is(P, T_RPAREN))
                return pfail(P, P->i, "'**' must be applied to the last argument");
            break;
        }
        struct jnode *arg;
        if (spread) {
            if (saw_spread)
                return pfail(P, at, "only one '*' argument unpacking is allowed");
            saw_spread = true;
            P->i++;
            arg = node(P, N_SPREAD, at);
            if (!arg || !(arg->a = parse_expression(P)))
                return -1;
        } else {
            arg = parse_expression(P);
            if (!arg)
                return -1;
            if (is(P, T_EQUALS)) {
                P->i++;
                if (arg->kind != N_IDENT)
                    return pfail(P, at, params ? "expected an identifier for a parameter declaration"
                                               : "expected an identifier for a keyword argument");
                struct jnode *kw = node(P, N_KWARG, at);
                if (!kw)
                    return -1;
                kw->str = arg->str;
                kw->len = arg->len;
                kw->lit = arg->lit;
                if (!(kw->a = parse_expression(P)))
                    return -1;
                arg = kw;
            }
            if (params) {
                if (arg->kind != N_IDENT && arg->kind != N_KWARG)
                    return pfail(P, at, "expected an identifier for a parameter declaration");
                for (size_t k = 0; k < out->n; k++)
                    if (out->v[k]->len == arg->len && memcmp(out->v[k]->str, arg->str, arg->len) == 0)
                        return pfail(P, at, "duplicate parameter name '%.*s'", (int)arg->len, arg->str);
            }
            if (arg->kind == N_KWARG)
                saw_kw = true;
            else if (saw_kw)
                return pfail(P, at, params ? "a parameter without default follows one with a default"
                                           : "positional arguments must come before keyword arguments");
            else if (saw_spread)
                return pfail(P, at, "positional arguments must not follow '*' argument unpacking");
        }
        if (nl_push(P, out, arg) != 0)
            return -1;
        if (is(P, T_COMMA))
            P->i++;
    }
    P->i++; /* ) */
    return 0;
}

/* [index] or [a:b:c] after the opening bracket */
static struct jnode *parse_subscript(struct parser *P)
{
    size_t start = P->i;
    struct jnode *parts[4] = {0};
    size_t np = 0;
    bool slice = false;
    while (!is(P, T_RBRACKET)) {
        if (P->i >= P->n) {
            pfail(P, start, "unterminated '['");
            return NULL;
        }
        if (np == 4) {
            pfail(P, start, "expected 0-3 arguments for a slice");
            return NULL;
        }
        if (is(P, T_COLON)) {
            parts[np++] = NULL;
            P->i++;
            slice = true;
        } else {
            if (!(parts[np++] = parse_expression(P)))
                return NULL;
            if (is(P, T_COLON)) {
                P->i++;
                slice = true;
            }
        }
    }
    if (np == 0) {
        pfail(P, start, "expected an index or a slice inside '[]'");
        return NULL;
    }
    if (!slice)
        return parts[0];
    if (np > 3) {
        pfail(P, start, "expected 0-3 arguments for a slice");
        return NULL;
    }
    struct jnode *s = node(P, N_SLICE, start);
    if (!s)
        return NULL;
    s->a = parts[0];
    s->b = np > 1 ? parts[1] : NULL;
    s->c = np > 2 ? parts[2] : NULL;
    return s;
}

static struct jnode *parse_member(struct parser *P, struct jnode *obj)
{
    while (obj && (is(P, T_DOT) || is(P, T_LBRACKET))) {
        size_t at = P->i;
        bool computed = P->tk[P->i].type == T_LBRACKET;
        P->i++;
        struct jnode *m = node(P, N_MEMBER, at);
        if (!m)
            return NULL;
        m->a = obj;
        m->op = computed;
        if (computed) {
            if (!(m->b = parse_subscript(P)) || expect(P, T_RBRACKET, "to close the subscript") != 0)
                return NULL;
        } else {
            struct jnode *prop = parse_primary(P);
            if (!prop)
                return NULL;
            if (prop->kind != N_IDENT && prop->kind != N_INT) {
                pfail(P, at, "expected an identifier or an integer after '.'");
                return NULL;
            }
            m->b = prop;
        }
        obj = m;
    }
    return obj;
}

static struct jnode *parse_call(struct parser *P, struct jnode *callee)
{
    ENTER(P);
    size_t at = P->i;
    struct jnode *c = node(P, N_CALL, at);
    if (!c)
        LEAVE(P, NULL);
    c->a = callee;
    struct nlist args = {0};
    if (parse_args(P, false, &args) != 0)
        LEAVE(P, NULL);
    c->items = args.v;
    c->nitems = args.n;
    struct jnode *x = parse_member(P, c);
    if (x && is(P, T_LPAREN))
        x = parse_call(P, x);
    LEAVE(P, x);
}

static struct jnode *parse_call_member(struct parser *P)
{
    struct jnode *m = parse_member(P, parse_primary(P));
    if (m && is(P, T_LPAREN))
        return parse_call(P, m);
    return m;
}

static struct jnode *parse_unary_sign(struct parser *P)
{
    ENTER(P);
    if (P->i < P->n && (P->tk[P->i].type == T_UNARY || P->tk[P->i].type == T_ADD) && P->tk[P->i].n == 1 &&
        (P->tk[P->i].s[0] == '-' || P->tk[P->i].s[0] == '+')) {
        struct jnode *u = node(P, N_UNARY, P->i);
        if (!u)
            LEAVE(P, NULL);
        u->op = P->tk[P->i].s[0] == '-' ? OP_NEG : OP_POS;
        P->i++;
        if (!(u->a = parse_unary_sign(P)))
            LEAVE(P, NULL);
        LEAVE(P, u);
    }
    LEAVE(P, parse_call_member(P));
}

/* The name after '|' or 'is' and its optional (args): a node of kind (N_FILTER or N_TEST) at the
 * source position at, applied to operand. *called says whether an argument list was given; missing
 * names the construct in the error when no name follows. */
static struct jnode *parse_named_call(struct parser *P, enum jnode_kind kind, size_t at, struct jnode *operand,
                                      const char *missing, bool *called)
{
    struct jnode *name = parse_primary(P);
    if (!name)
        return NULL;
    if (name->kind != N_IDENT) {
        pfail(P, at, "%s", missing);
        return NULL;
    }
    struct jnode *c = node(P, kind, at);
    if (!c)
        return NULL;
    c->a = operand;
    c->str = name->str;
    c->len = name->len;
    *called = is(P, T_LPAREN);
    if (*called) {
        struct nlist args = {0};
        if (parse_args(P, false, &args) != 0)
            return NULL;
        c->items = args.v;
        c->nitems = args.n;
    }
    return c;
}

/* | name or | name(args) */
static struct jnode *parse_filter_spec(struct parser *P, struct jnode *operand)
{
    bool called;
    struct jnode *f = parse_named_call(P, N_FILTER, P->i, operand, "expected a filter name after '|'", &called);
    if (!f)
        return NULL;
    if (called) {
        f->op = 1;
        if (is(P, T_DOT) || is(P, T_LBRACKET) || is(P, T_LPAREN)) {
            pfail(P, P->i, "a filter call cannot be followed by '.', '[' or '('; use parentheses");
            return NULL;
        }
    }
    return f;
}

static struct jnode *parse_filter(struct parser *P)
{
    struct jnode *x = parse_unary_sign(P);
    while (x && is(P, T_PIPE)) {
        P->i++;
        x = parse_filter_spec(P, x);
    }
    return x;
}

static struct jnode *parse_test(struct parser *P)
{
    struct jnode *x = parse_filter(P);
    while (x && is_ident(P, "is")) {
        size_t at = P->i++;
        bool neg = is_ident(P, "not");
        if (neg)
            P->i++;
        bool called; /* Python Jinja's test arguments: is divisibleby(3) */
        struct jnode *t = parse_named_call(P, N_TEST, at, x, "expected a test name after 'is'", &called);
        if (!t)
            return NULL;
        t->op = neg;
        t->ival = called;
        x = t;
    }
    return x;
}

static struct jnode *binary(struct parser *P, size_t at, int op, struct jnode *l, struct jnode *r)
{
    if (!l || !r)
        return NULL;
    struct jnode *b = node(P, N_BINARY, at);
    if (!b)
        return NULL;
    b->op = op;
    b->a = l;
    b->b = r;
    return b;
}

static int op_of(const struct jtoken *t)
{
    const char *s = t->s;
    size_t n = t->n;
#define IS(x) (n == sizeof(x) - 1 && memcmp(s, x, n) == 0)
    if (IS("+")) return OP_ADD;
    if (IS("-")) return OP_SUB;
    if (IS("~")) return OP_CONCAT;
    if (IS("*")) return OP_MUL;
    if (IS("/")) return OP_DIV;
    if (IS("//")) return OP_FLOORDIV;
    if (IS("%")) return OP_MOD;
    if (IS("**")) return OP_POW;
    if (IS("==")) return OP_EQ;
    if (IS("!=")) return OP_NE;
    if (IS("<")) return OP_LT;
    if (IS(">")) return OP_GT;
    if (IS("<=")) return OP_LE;
    if (IS(">=")) return OP_GE;
#undef IS
    return 0;
}

/* One left-associative level of binary operators over operands of the next tighter level. The operator
 * is a token of type tok, or the keyword word when that is set; op is the operation it means, or 0 when
 * the token's text says which (+ or -, * or /, ...). */
static struct jnode *left_assoc(struct parser *P, enum jtok tok, const char *word, int op,
                                struct jnode *(*operand)(struct parser *))
{
    struct jnode *x = operand(P);
    while (x && (word ? is_ident(P, word) : is(P, tok))) {
        size_t at = P->i++;
        x = binary(P, at, op ? op : op_of(&P->tk[at]), x, operand(P));
    }
    return x;
}

static struct jnode *parse_power(struct parser *P) { return left_assoc(P, T_POW, NULL, OP_POW, parse_test); }

static struct jnode *parse_multiplicative(struct parser *P)
{
    return left_assoc(P, T_MUL, NULL, 0, parse_power);
}

static struct jnode *parse_additive(struct parser *P)
{
    return left_assoc(P, T_ADD, NULL, 0, parse_multiplicative);
}

static struct jnode *parse_comparison(struct parser *P)
{
    struct jnode *x = parse_additive(P);
    while (x) {
        size_t at = P->i;
        int op;
        if (is_ident(P, "not") && is_ident_at(P, P->i + 1, "in")) {
            op = OP_NOTIN;
            P->i += 2;
        } else if (is_ident(P, "in")) {
            op = OP_IN;
            P->i++;
        } else if (is(P, T_CMP)) {
            op = op_of(&P->tk[P->i]);
            P->i++;
        } else {
            break;
        }
        x = binary(P, at, op, x, parse_additive(P));
    }
    return x;
}

static struct jnode *parse_not(struct parser *P)
{
    ENTER(P);
    if (is_ident(P, "not")) {
        struct jnode *u = node(P, N_UNARY, P->i);
        if (!u)
            LEAVE(P, NULL);
        u->op = OP_NOT;
        P->i++;
        if (!(u->a = parse_not(P)))
            LEAVE(P, NULL);
        LEAVE(P, u);
    }
    LEAVE(P, parse_comparison(P));
}

static struct jnode *parse_and(struct parser *P) { return left_assoc(P, T_IDENT, "and", OP_AND, parse_not); }

static struct jnode *parse_or(struct parser *P) { return left_assoc(P, T_IDENT, "or", OP_OR, parse_and); }

static struct jnode *parse_if_expr(struct parser *P)
{
    ENTER(P);
    struct jnode *a = parse_or(P);
    if (a && is_ident(P, "if")) {
        size_t at = P->i++;
        struct jnode *test = parse_or(P);
        if (!test)
            LEAVE(P, NULL);
        if (is_ident(P, "else")) {
            P->i++;
            struct jnode *t = node(P, N_TERNARY, at);
            if (!t)
                LEAVE(P, NULL);
            t->a = test;
            t->b = a;
            if (!(t->c = parse_if_expr(P)))
                LEAVE(P, NULL);
            LEAVE(P, t);
        }
        struct jnode *s = node(P, N_SELECT, at);
        if (!s)
            LEAVE(P, NULL);
        s->a = a;
        s->b = test;
        LEAVE(P, s);
    }
    LEAVE(P, a);
}

static struct jnode *parse_expression(struct parser *P) { return parse_if_expr(P); }

static struct jnode *parse_primary(struct parser *P)
{
    ENTER(P);
    if (P->i >= P->n) {
        pfail(P, P->i, "unexpected end of template in an expression");
        LEAVE(P, NULL);
    }
    size_t at = P->i;
    const struct jtoken *t = &P->tk[P->i++];
    switch (t->type) {
    case T_NUM: {
        bool is_float = memchr(t->s, '.', t->n) != NULL;
        char buf[64];
        size_t n = t->n < sizeof buf - 1 ? t->n : sizeof buf - 1;
        memcpy(buf, t->s, n);
        buf[n] = '\0';
        struct jnode *x = node(P, is_float ? N_FLOAT : N_INT, at);
        if (!x)
            LEAVE(P, NULL);
        if (!is_float) {
            errno = 0;
            long long v = strtoll(buf, NULL, 10);
            if (errno == ERANGE) { /* too big for an integer: keep it as a number */
                x->kind = N_FLOAT;
                x->fval = strtod(buf, NULL);
            } else {
                x->ival = v;
            }
        } else {
            x->fval = strtod(buf, NULL);
        }
        LEAVE(P, x);
    }
    case T_STR: {
        struct jnode *x = node(P, N_STR, at);
        if (!x)
            LEAVE(P, NULL);
        x->str = t->s;
        x->len = t->n;
        if (is(P, T_STR)) { /* adjacent literals concatenate */
            struct jbuf b = {0};
            int rc = jbuf_put(&b, t->s, t->n);
            while (rc == 0 && is(P, T_STR)) {
                rc = jbuf_put(&b, P->tk[P->i].s, P->tk[P->i].n);
                P->i++;
            }
            char *s = rc == 0 ? ja_strndup(&P->t->arena, b.p, b.len) : NULL;
            size_t len = b.len;
            jbuf_free(&b);
            if (!s) {
                err_set(P->e, ERR_NOMEM, "out of memory parsing the template");
                LEAVE(P, NULL);
            }
            x->str = s;
            x->len = len;
        }
        if (set_lit(P, x) != 0)
            LEAVE(P, NULL);
        LEAVE(P, x);
    }
    case T_IDENT: {
        struct jnode *x = node(P, N_IDENT, at);
        if (!x)
            LEAVE(P, NULL);
        x->str = t->s;
        x->len = t->n;
        if (set_lit(P, x) != 0)
            LEAVE(P, NULL);
        LEAVE(P, x);
    }
    case T_LPAREN: {
        struct jnode *x = parse_sequence(P, false);
        if (!x || expect(P, T_RPAREN, "to close the parenthesis") != 0)
            LEAVE(P, NULL);
        LEAVE(P, x);
    }
    case T_LBRACKET: {
        struct nlist l = {0};
        while (!is(P, T_RBRACKET)) {
            if (P->i >= P->n) {
                pfail(P, at, "unterminated list literal");
                LEAVE(P, NULL);
            }
            struct jnode *x = parse_expression(P);
            if (!x || nl_push(P, &l, x) != 0)
                LEAVE(P, NULL);
            if (is(P, T_COMMA))
                P->i++;
        }
        P->i++;
        struct jnode *x = node(P, N_LIST, at);
        if (!x)
            LEAVE(P, NULL);
        x->items = l.v;
        x->nitems = l.n;
        LEAVE(P, x);
    }
    case T_LBRACE: {
        struct nlist keys = {0}, vals = {0};
        while (!is(P, T_RBRACE)) {
            if (P->i >= P->n) {
                pfail(P, at, "unterminated dict literal");
                LEAVE(P, NULL);
            }
            struct jnode *k = parse_expression(P);
            if (!k || expect(P, T_COLON, "between key and value in a dict literal") != 0)
                LEAVE(P, NULL);
            struct jnode *v = parse_expression(P);
            if (!v || nl_push(P, &keys, k) != 0 || nl_push(P, &vals, v) != 0)
                LEAVE(P, NULL);
            if (is(P, T_COMMA))
                P->i++;
        }
        P->i++;
        struct jnode *x = node(P, N_DICT, at);
        if (!x)
            LEAVE(P, NULL);
        x->items = keys.v;
        x->nitems = keys.n;
        x->alt = vals.v;
        x->nalt = vals.n;
        LEAVE(P, x);
    }
    default: {
        char found[96];
        describe(P, at, found, sizeof found);
        pfail(P, at, "unexpected %s in an expression", found);
        LEAVE(P, NULL);
    }
    }
}

/* Parses statements into body until one of the stop statements (not consumed). */
static int parse_until(struct parser *P, struct nlist *body, const char *const *stops, const char *what,
                       size_t open_at)
{
    while (!is_statement(P, stops)) {
        if (P->i >= P->n)
            return pfail(P, open_at, "unexpected end of template: %s is never closed", what);
        if (parse_any(P, body) != 0)
            return -1;
    }
    return 0;
}

static int expect_end(struct parser *P, const char *name)
{
    if (expect(P, T_OPEN_STMT, "") != 0)
        return -1;
    if (!is_ident(P, name)) {
        char found[96];
        describe(P, P->i, found, sizeof found);
        return pfail(P, P->i, "expected '%s', found %s", name, found);
    }
    P->i++;
    return expect(P, T_CLOSE_STMT, "to close the statement");
}

static struct jnode *parse_if(struct parser *P, size_t at)
{
    ENTER(P);
    static const char *const stops[] = {"elif", "else", "endif", NULL};
    static const char *const endif[] = {"endif", NULL};
    struct jnode *x = node(P, N_IF, at);
    if (!x || !(x->a = parse_expression(P)) || expect(P, T_CLOSE_STMT, "to close the if") != 0)
        LEAVE(P, NULL);
    struct nlist body = {0}, alt = {0};
    if (parse_until(P, &body, stops, "{% if %}", at) != 0)
        LEAVE(P, NULL);
    if (is_statement(P, (const char *const[]){"elif", NULL})) {
        size_t eat = P->i;
        P->i += 2;
        struct jnode *nested = parse_if(P, eat);
        if (!nested || nl_push(P, &alt, nested) != 0)
            LEAVE(P, NULL);
    } else if (is_statement(P, (const char *const[]){"else", NULL})) {
        P->i += 2;
        if (expect(P, T_CLOSE_STMT, "after else") != 0 || parse_until(P, &alt, endif, "{% if %}", at) != 0)
            LEAVE(P, NULL);
    }
    x->items = body.v;
    x->nitems = body.n;
    x->alt = alt.v;
    x->nalt = alt.n;
    LEAVE(P, x);
}

/* Does the subtree mention the identifier? (macros bind kwargs/varargs only when they do) */
static bool mentions(const struct jnode *n, const char *name)
{
    if (!n)
        return false;
    if (n->kind == N_IDENT && n->len == strlen(name) && memcmp(n->str, name, n->len) == 0)
        return true;
    if (mentions(n->a, name) || mentions(n->b, name) || mentions(n->c, name))
        return true;
    for (size_t i = 0; i < n->nitems; i++)
        if (mentions(n->items[i], name))
            return true;
    for (size_t i = 0; i < n->nalt; i++)
        if (mentions(n->alt[i], name))
            return true;
    return false;
}

static bool body_mentions(struct jnode **body, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (mentions(body[i], name))
            return true;
    return false;
}

static int parse_statement(struct parser *P, struct nlist *out)
{
    size_t at = P->i;
    if (expect(P, T_OPEN_STMT, "") != 0)
        return -1;
    if (!is(P, T_IDENT)) {
        char found[96];
        describe(P, P->i, found, sizeof found);
        return pfail(P, P->i, "expected a statement name after '{%%', found %s", found);
    }
    const struct jtoken *name = &P->tk[P->i];
    struct jnode *x = NULL;
#define NAME(lit_) (name->n == sizeof(lit_) - 1 && memcmp(name->s, lit_, name->n) == 0)
    if (NAME("set")) {
        P->i++;
        x = node(P, N_SET, at);
        if (!x || !(x->a = parse_sequence(P, false)))
            return -1;
        if (is(P, T_EQUALS)) {
            P->i++;
            if (!(x->b = parse_sequence(P, false)))
                return -1;
        } else {
            struct nlist body = {0};
            if (expect(P, T_CLOSE_STMT, "to close the set") != 0 ||
                parse_until(P, &body, (const char *const[]){"endset", NULL}, "{% set %}", at) != 0)
                return -1;
            P->i++;
            P->i++; /* {% endset */
            x->items = body.v;
            x->nitems = body.n;
        }
        if (expect(P, T_CLOSE_STMT, "to close the set") != 0)
            return -1;
    } else if (NAME("if")) {
        P->i++;
        if (!(x = parse_if(P, at)) || expect_end(P, "endif") != 0)
            return -1;
    } else if (NAME("for")) {
        P->i++;
        x = node(P, N_FOR, at);
        if (!x || !(x->a = parse_sequence(P, true)))
            return -1;
        if (x->a->kind != N_IDENT && x->a->kind != N_TUPLE)
            return pfail(P, at, "expected a name or names for the loop variable");
        if (!is_ident(P, "in"))
            return pfail(P, P->i, "expected 'in' after the loop variable");
        P->i++;
        struct jnode *it = parse_expression(P);
        if (!it)
            return -1;
        if (it->kind == N_SELECT) { /* for x in xs if cond */
            x->b = it->a;
            x->c = it->b;
        } else {
            x->b = it;
        }
        if (expect(P, T_CLOSE_STMT, "to close the for") != 0)
            return -1;
        struct nlist body = {0}, alt = {0};
        if (parse_until(P, &body, (const char *const[]){"endfor", "else", NULL}, "{% for %}", at) != 0)
            return -1;
        if (is_statement(P, (const char *const[]){"else", NULL})) {
            P->i += 2;
            if (expect(P, T_CLOSE_STMT, "after else") != 0 ||
                parse_until(P, &alt, (const char *const[]){"endfor", NULL}, "{% for %}", at) != 0)
                return -1;
        }
        x->items = body.v;
        x->nitems = body.n;
        x->alt = alt.v;
        x->nalt = alt.n;
        if (expect_end(P, "endfor") != 0)
            return -1;
    } else if (NAME("macro")) {
        P->i++;
        x = node(P, N_MACRO, at);
        struct jnode *nm = x ? parse_primary(P) : NULL;
        if (!nm)
            return -1;
        if (nm->kind != N_IDENT)
            return pfail(P, at, "expected a name after 'macro'");
        x->str = nm->str;
        x->len = nm->len;
        x->lit = nm->lit;
        struct nlist params = {0}, body = {0};
        if (parse_args(P, true, &params) != 0 || expect(P, T_CLOSE_STMT, "to close the macro") != 0 ||
            parse_until(P, &body, (const char *const[]){"endmacro", NULL}, "{% macro %}", at) != 0 ||
            expect_end(P, "endmacro") != 0)
            return -1;
        x->alt = params.v;
        x->nalt = params.n;
        x->items = body.v;
        x->nitems = body.n;
        x->uses_kwargs = body_mentions(x->items, x->nitems, "kwargs");
        x->uses_varargs = body_mentions(x->items, x->nitems, "varargs");
    } else if (NAME("call")) {
        P->i++;
        x = node(P, N_CALLBLOCK, at);
        if (!x)
            return -1;
        struct nlist params = {0}, body = {0};
        if (is(P, T_LPAREN) && parse_args(P, true, &params) != 0)
            return -1;
        size_t cat = P->i;
        struct jnode *callee = parse_primary(P);
        if (!callee)
            return -1;
        if (callee->kind != N_IDENT)
            return pfail(P, cat, "expected a macro name after 'call'");
        struct jnode *call = node(P, N_CALL, cat);
        struct nlist args = {0};
        if (!call || parse_args(P, false, &args) != 0)
            return -1;
        call->a = callee;
        call->items = args.v;
        call->nitems = args.n;
        if (expect(P, T_CLOSE_STMT, "to close the call") != 0 ||
            parse_until(P, &body, (const char *const[]){"endcall", NULL}, "{% call %}", at) != 0 ||
            expect_end(P, "endcall") != 0)
            return -1;
        x->a = call;
        x->alt = params.v;
        x->nalt = params.n;
        x->items = body.v;
        x->nitems = body.n;
        x->uses_kwargs = body_mentions(x->items, x->nitems, "kwargs");
        x->uses_varargs = body_mentions(x->items, x->nitems, "varargs");
    } else if (NAME("filter")) {
        P->i++;
        x = node(P, N_FILTERBLOCK, at);
        if (!x || !(x->a = parse_filter_spec(P, NULL)))
            return -1;
        struct nlist body = {0};
        if (expect(P, T_CLOSE_STMT, "to close the filter") != 0 ||
            parse_until(P, &body, (const char *const[]){"endfilter", NULL}, "{% filter %}", at) != 0 ||
            expect_end(P, "endfilter") != 0)
            return -1;
        x->items = body.v;
        x->nitems = body.n;
    } else if (NAME("break") || NAME("continue")) {
        P->i++;
        x = node(P, NAME("break") ? N_BREAK : N_CONTINUE, at);
        if (!x || expect(P, T_CLOSE_STMT, "to close the statement") != 0)
            return -1;
    } else {
        return pfail(P, P->i, "unknown statement '%.*s'", (int)(name->n < 40 ? name->n : 40), name->s);
    }
#undef NAME
    return nl_push(P, out, x);
}

static int parse_any(struct parser *P, struct nlist *body)
{
    if (++P->depth > MAX_NESTING) {
        P->depth--;
        return pfail(P, P->i, "template nested more than %d levels deep", MAX_NESTING);
    }
    int rc = 0;
    const struct jtoken *t = &P->tk[P->i];
    switch (t->type) {
    case T_COMMENT:
        P->i++;
        break;
    case T_TEXT: {
        struct jnode *x = node(P, N_STR, P->i);
        if (!x) {
            rc = -1;
            break;
        }
        x->str = t->s;
        x->len = t->n;
        P->i++;
        rc = set_lit(P, x) != 0 ? -1 : nl_push(P, body, x);
        break;
    }
    case T_OPEN_STMT:
        rc = parse_statement(P, body);
        break;
    case T_OPEN_EXPR: {
        P->i++;
        struct jnode *x = parse_expression(P);
        if (!x || expect(P, T_CLOSE_EXPR, "to close the expression") != 0 || nl_push(P, body, x) != 0)
            rc = -1;
        break;
    }
    default: {
        char found[96];
        describe(P, P->i, found, sizeof found);
        rc = pfail(P, P->i, "unexpected %s", found);
    }
    }
    P->depth--;
    return rc < 0 ? -1 : 0;
}

int jparse(struct jinja_template *t, struct jtoken *toks, size_t ntoks, struct err *e)
{
    struct parser P = {.t = t, .tk = toks, .n = ntoks, .e = e};
    struct nlist body = {0};
    while (P.i < P.n) {
        if (parse_any(&P, &body) != 0)
            return e && e->code ? e->code : ERR_FORMAT;
    }
    t->body = body.v;
    t->nbody = body.n;
    return 0;
}
