/* gotmpl.c — parser and evaluator for the Go text/template subset in gotmpl.h.
 *
 * The source is cut into text and actions (trim markers applied to the neighbouring text), each
 * action is tokenised and parsed into a pipeline, and control actions (if/range/with/else/end)
 * build a tree. Every allocation of a parsed template is recorded in one list and freed together.
 * Evaluation works on jansson values: results are new references, released as soon as used. */
#include "template/gotmpl.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { K_TEXT, K_ACTION, K_IF, K_RANGE, K_WITH };
enum { A_DOT, A_FIELD, A_VAR, A_STR, A_NUM, A_BOOL, A_NIL, A_FUNC, A_PIPE };

struct pipe;

struct arg {
    int kind;
    const char *s;       /* string value, variable or function name */
    const char **fields; /* field chain after the operand */
    int n_fields;
    json_t *lit; /* number/string literal */
    struct pipe *sub;
};

struct cmd {
    struct arg *args;
    int n;
};

struct pipe {
    const char *vars[2];
    int n_vars;
    bool declare; /* := (else =) */
    struct cmd *cmds;
    int n_cmds;
};

struct node {
    int kind;
    int line;
    const char *text;
    size_t len;
    struct pipe *pipe;
    struct node *body, *els;
    struct node *next;
    int ord; /* position in a pre-order walk (node, body, else), for cutting at .Response */
};

struct gotmpl {
    void **allocs;
    size_t n_allocs, cap_allocs;
    json_t **lits;
    size_t n_lits, cap_lits;
    struct node *root;
    int cut_ord; /* ord of the first action printing .Response in walk order; -1: none */
};

static void *al(struct gotmpl *t, size_t n)
{
    if (t->n_allocs == t->cap_allocs) {
        size_t nc = t->cap_allocs ? t->cap_allocs * 2 : 64;
        void **p = realloc(t->allocs, nc * sizeof *p);
        if (!p)
            return NULL;
        t->allocs = p;
        t->cap_allocs = nc;
    }
    void *m = calloc(1, n ? n : 1);
    if (m)
        t->allocs[t->n_allocs++] = m;
    return m;
}

void gotmpl_free(struct gotmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_allocs; i++)
        free(t->allocs[i]);
    for (size_t i = 0; i < t->n_lits; i++)
        json_decref(t->lits[i]);
    free(t->allocs);
    free(t->lits);
    free(t);
}

/* ---- parsing ---- */

struct parser {
    struct gotmpl *t;
    const char *src;
    size_t len, pos;
    int line;
    struct err *e;
    /* current action's tokens */
    const char *a;
    size_t alen, apos;
};

static int perr(struct parser *p, const char *msg, const char *detail)
{
    return err_set(p->e, ERR_FORMAT, "template: line %d: %s%s%s", p->line, msg, detail ? ": " : "",
                   detail ? detail : "");
}

static void skip_sp(struct parser *p)
{
    while (p->apos < p->alen && isspace((unsigned char)p->a[p->apos]))
        p->apos++;
}

static char *dup_n(struct parser *p, const char *s, size_t n)
{
    char *c = al(p->t, n + 1);
    if (c)
        memcpy(c, s, n);
    return c;
}

static bool keep_lit(struct gotmpl *t, json_t *v)
{
    if (!v)
        return false;
    if (t->n_lits == t->cap_lits) {
        size_t nc = t->cap_lits ? t->cap_lits * 2 : 16;
        json_t **q = realloc(t->lits, nc * sizeof *q);
        if (!q) {
            json_decref(v);
            return false;
        }
        t->lits = q;
        t->cap_lits = nc;
    }
    t->lits[t->n_lits++] = v;
    return true;
}

static bool is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static int parse_pipe(struct parser *p, struct pipe **out, bool in_paren);

/* Field chain ".A.B" at the current position (after an operand). */
static int parse_fields(struct parser *p, struct arg *a)
{
    const char *names[32];
    int n = 0;
    while (p->apos < p->alen && p->a[p->apos] == '.' && p->apos + 1 < p->alen && is_ident(p->a[p->apos + 1])) {
        size_t st = ++p->apos;
        while (p->apos < p->alen && is_ident(p->a[p->apos]))
            p->apos++;
        if (n == 32)
            return perr(p, "field chain too long", NULL);
        names[n++] = dup_n(p, p->a + st, p->apos - st);
    }
    if (n) {
        a->fields = al(p->t, (size_t)n * sizeof *a->fields);
        if (!a->fields)
            return ERR_NOMEM;
        memcpy(a->fields, names, (size_t)n * sizeof *names);
        a->n_fields = n;
    }
    return 0;
}

static int parse_string(struct parser *p, struct arg *a)
{
    char q = p->a[p->apos++];
    size_t cap = p->alen - p->apos + 1, n = 0;
    char *buf = al(p->t, cap);
    if (!buf)
        return ERR_NOMEM;
    while (p->apos < p->alen && p->a[p->apos] != q) {
        char c = p->a[p->apos++];
        if (q == '"' && c == '\\' && p->apos < p->alen) {
            char x = p->a[p->apos++];
            c = x == 'n' ? '\n' : x == 't' ? '\t' : x == 'r' ? '\r' : x;
        }
        buf[n++] = c;
    }
    if (p->apos >= p->alen)
        return perr(p, "unterminated string", NULL);
    p->apos++;
    a->kind = A_STR;
    a->lit = json_stringn(buf, n);
    return keep_lit(p->t, a->lit) ? 0 : ERR_NOMEM;
}

static int parse_arg(struct parser *p, struct arg *a, bool *end)
{
    skip_sp(p);
    *end = false;
    if (p->apos >= p->alen || p->a[p->apos] == '|' || p->a[p->apos] == ')') {
        *end = true;
        return 0;
    }
    char c = p->a[p->apos];
    int rc = 0;
    if (c == '(') {
        p->apos++;
        a->kind = A_PIPE;
        if ((rc = parse_pipe(p, &a->sub, true)))
            return rc;
        skip_sp(p);
        if (p->apos >= p->alen || p->a[p->apos] != ')')
            return perr(p, "unclosed parenthesis", NULL);
        p->apos++;
        return parse_fields(p, a);
    }
    if (c == '"' || c == '`')
        return parse_string(p, a);
    if (c == '.') {
        if (p->apos + 1 < p->alen && is_ident(p->a[p->apos + 1])) {
            a->kind = A_FIELD;
            return parse_fields(p, a);
        }
        p->apos++;
        a->kind = A_DOT;
        return 0;
    }
    if (c == '$') {
        size_t st = p->apos++;
        while (p->apos < p->alen && is_ident(p->a[p->apos]))
            p->apos++;
        a->kind = A_VAR;
        a->s = dup_n(p, p->a + st, p->apos - st);
        return parse_fields(p, a);
    }
    if (c == '-' || c == '+' || isdigit((unsigned char)c)) {
        char *endp;
        size_t st = p->apos;
        while (p->apos < p->alen && (isalnum((unsigned char)p->a[p->apos]) || strchr("+-.", p->a[p->apos])))
            p->apos++;
        char *txt = dup_n(p, p->a + st, p->apos - st);
        long long iv = strtoll(txt, &endp, 0);
        if (*endp == 0) {
            a->lit = json_integer(iv);
        } else {
            double dv = strtod(txt, &endp);
            if (*endp)
                return perr(p, "bad number", txt);
            a->lit = json_real(dv);
        }
        a->kind = A_NUM;
        return keep_lit(p->t, a->lit) ? 0 : ERR_NOMEM;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        size_t st = p->apos;
        while (p->apos < p->alen && is_ident(p->a[p->apos]))
            p->apos++;
        const char *w = dup_n(p, p->a + st, p->apos - st);
        if (strcmp(w, "true") == 0 || strcmp(w, "false") == 0) {
            a->kind = A_BOOL;
            a->lit = json_boolean(w[0] == 't');
            return keep_lit(p->t, a->lit) ? 0 : ERR_NOMEM;
        }
        if (strcmp(w, "nil") == 0) {
            a->kind = A_NIL;
            return 0;
        }
        static const char *const funcs[] = {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge",
                                            "len", "index", "slice", "json", "print", "println", "printf"};
        for (size_t i = 0; i < sizeof funcs / sizeof *funcs; i++)
            if (strcmp(w, funcs[i]) == 0) {
                a->kind = A_FUNC;
                a->s = w;
                return 0;
            }
        return perr(p, "function not defined", w);
    }
    char bad[2] = {c, 0};
    return perr(p, "unexpected character in action", bad);
}

static int parse_pipe(struct parser *p, struct pipe **out, bool in_paren)
{
    struct pipe *pp = al(p->t, sizeof *pp);
    if (!pp)
        return ERR_NOMEM;
    *out = pp;
    /* Declarations: $x := / $x = / $i, $v := */
    skip_sp(p);
    size_t save = p->apos;
    if (!in_paren && p->apos < p->alen && p->a[p->apos] == '$') {
        const char *vars[2];
        int nv = 0;
        for (;;) {
            skip_sp(p);
            if (p->apos >= p->alen || p->a[p->apos] != '$' || nv == 2)
                break;
            size_t st = p->apos++;
            while (p->apos < p->alen && is_ident(p->a[p->apos]))
                p->apos++;
            vars[nv++] = dup_n(p, p->a + st, p->apos - st);
            skip_sp(p);
            if (p->apos < p->alen && p->a[p->apos] == ',') {
                p->apos++;
                continue;
            }
            break;
        }
        skip_sp(p);
        if (nv && p->apos + 1 < p->alen && p->a[p->apos] == ':' && p->a[p->apos + 1] == '=') {
            p->apos += 2;
            pp->declare = true;
            pp->n_vars = nv;
            memcpy(pp->vars, vars, sizeof vars);
        } else if (nv == 1 && p->apos < p->alen && p->a[p->apos] == '=' &&
                   (p->apos + 1 >= p->alen || p->a[p->apos + 1] != '=')) {
            p->apos++;
            pp->n_vars = 1;
            pp->vars[0] = vars[0];
        } else {
            p->apos = save;
        }
    }
    struct cmd cmds[32];
    int nc = 0;
    for (;;) {
        struct arg args[32];
        int na = 0;
        for (;;) {
            bool end;
            if (na == 32)
                return perr(p, "too many arguments", NULL);
            memset(&args[na], 0, sizeof args[na]);
            int rc = parse_arg(p, &args[na], &end);
            if (rc)
                return rc;
            if (end)
                break;
            na++;
        }
        if (na == 0)
            return perr(p, "missing value for command", NULL);
        if (nc == 32)
            return perr(p, "pipeline too long", NULL);
        cmds[nc].args = al(p->t, (size_t)na * sizeof *args);
        if (!cmds[nc].args)
            return ERR_NOMEM;
        memcpy(cmds[nc].args, args, (size_t)na * sizeof *args);
        cmds[nc++].n = na;
        if (p->apos < p->alen && p->a[p->apos] == '|') {
            p->apos++;
            continue;
        }
        break;
    }
    pp->cmds = al(p->t, (size_t)nc * sizeof *cmds);
    if (!pp->cmds)
        return ERR_NOMEM;
    memcpy(pp->cmds, cmds, (size_t)nc * sizeof *cmds);
    pp->n_cmds = nc;
    return 0;
}

/* Next piece: text (kind K_TEXT) or an action (its content in p->a). Returns 1 at the end. */
struct piece {
    bool action;
    const char *s;
    size_t len;
    int line;
};

static int lex_all(struct parser *p, struct piece **out, size_t *n_out)
{
    size_t cap = 64, n = 0;
    struct piece *v = malloc(cap * sizeof *v);
    if (!v)
        return ERR_NOMEM;
    bool trim_next = false;
    size_t i = 0;
    int line = 1;
    while (i <= p->len) {
        const char *o = NULL;
        for (size_t k = i; k + 1 < p->len; k++)
            if (p->src[k] == '{' && p->src[k + 1] == '{') {
                o = p->src + k;
                break;
            }
        size_t tend = o ? (size_t)(o - p->src) : p->len;
        const char *ts = p->src + i;
        size_t tl = tend - i;
        if (trim_next)
            while (tl && isspace((unsigned char)*ts))
                ts++, tl--;
        bool trim_prev = o && tend + 2 < p->len && p->src[tend + 2] == '-' && tend + 3 < p->len &&
                         isspace((unsigned char)p->src[tend + 3]);
        if (trim_prev)
            while (tl && isspace((unsigned char)ts[tl - 1]))
                tl--;
        if (n + 2 > cap) {
            cap *= 2;
            struct piece *q = realloc(v, cap * sizeof *q);
            if (!q) {
                free(v);
                return ERR_NOMEM;
            }
            v = q;
        }
        for (size_t k = i; k < tend; k++)
            line += p->src[k] == '\n';
        if (tl)
            v[n++] = (struct piece){false, ts, tl, line};
        if (!o)
            break;
        /* the action: up to "}}" outside quotes */
        size_t a = tend + 2 + (trim_prev ? 2 : 0), k = a;
        char q = 0;
        for (; k + 1 < p->len; k++) {
            char c = p->src[k];
            if (q) {
                if (c == '\\' && q == '"')
                    k++;
                else if (c == q)
                    q = 0;
            } else if (c == '"' || c == '`') {
                q = c;
            } else if (c == '}' && p->src[k + 1] == '}') {
                break;
            }
        }
        if (k + 1 >= p->len) {
            free(v);
            p->line = line;
            return perr(p, "unclosed action", NULL);
        }
        size_t aend = k;
        trim_next = aend >= 2 && p->src[aend - 1] == '-' && isspace((unsigned char)p->src[aend - 2]);
        size_t ae = trim_next ? aend - 1 : aend;
        v[n++] = (struct piece){true, p->src + a, ae - a, line};
        for (size_t m = tend; m < aend + 2; m++)
            line += p->src[m] == '\n';
        i = aend + 2;
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* Parses pieces[*i..] into a node list until {{end}} / {{else}} (reported in *stop). */
static int parse_list(struct parser *p, struct piece *pc, size_t n, size_t *i, struct node **out,
                      const char **stop, struct piece **stop_piece)
{
    struct node *head = NULL, **tail = &head;
    *stop = NULL;
    while (*i < n) {
        struct piece *x = &pc[(*i)++];
        p->line = x->line;
        struct node *nd = al(p->t, sizeof *nd);
        if (!nd)
            return ERR_NOMEM;
        nd->line = x->line;
        if (!x->action) {
            nd->kind = K_TEXT;
            nd->text = x->s;
            nd->len = x->len;
            *tail = nd;
            tail = &nd->next;
            continue;
        }
        p->a = x->s;
        p->alen = x->len;
        p->apos = 0;
        skip_sp(p);
        if (p->apos + 1 < p->alen && p->a[p->apos] == '/' && p->a[p->apos + 1] == '*')
            continue; /* comment */
        size_t ws = p->apos;
        while (p->apos < p->alen && is_ident(p->a[p->apos]))
            p->apos++;
        size_t wl = p->apos - ws;
        const char *w = p->a + ws;
#define IS(kw) (wl == strlen(kw) && memcmp(w, kw, wl) == 0)
        if (IS("end") || IS("else")) {
            *stop = IS("end") ? "end" : "else";
            *stop_piece = x;
            *out = head;
            return 0;
        }
        int kind = IS("if") ? K_IF : IS("range") ? K_RANGE : IS("with") ? K_WITH : K_ACTION;
        if (IS("define") || IS("template") || IS("block") || IS("break") || IS("continue"))
            return perr(p, "unsupported action", dup_n(p, w, wl));
        if (kind == K_ACTION)
            p->apos = ws;
        nd->kind = kind;
        int rc = parse_pipe(p, &nd->pipe, false);
        if (rc)
            return rc;
        skip_sp(p);
        if (p->apos < p->alen)
            return perr(p, "unexpected text in action", dup_n(p, p->a + p->apos, p->alen - p->apos));
        if (kind != K_ACTION) {
            const char *st;
            struct piece *sp;
            if ((rc = parse_list(p, pc, n, i, &nd->body, &st, &sp)))
                return rc;
            if (!st)
                return perr(p, "missing {{end}}", NULL);
            if (strcmp(st, "else") == 0) {
                /* "else if ..." / "else with ...": a nested node that shares our {{end}} */
                p->a = sp->s;
                p->alen = sp->len;
                p->apos = 0;
                skip_sp(p);
                p->apos += 4;
                skip_sp(p);
                size_t rest = p->apos;
                if (p->alen - rest >= 2 && (memcmp(p->a + rest, "if", 2) == 0 || memcmp(p->a + rest, "with", 4) == 0) &&
                    p->alen > rest + 2) {
                    bool is_if = memcmp(p->a + rest, "if", 2) == 0;
                    struct node *el = al(p->t, sizeof *el);
                    if (!el)
                        return ERR_NOMEM;
                    el->kind = is_if ? K_IF : K_WITH;
                    el->line = sp->line;
                    p->apos = rest + (is_if ? 2 : 4);
                    if ((rc = parse_pipe(p, &el->pipe, false)))
                        return rc;
                    /* Re-enter as if the else-if were its own block: reuse this loop's logic. */
                    if ((rc = parse_list(p, pc, n, i, &el->body, &st, &sp)))
                        return rc;
                    nd->els = el;
                    struct node *cur = el;
                    while (st && strcmp(st, "else") == 0) {
                        p->a = sp->s;
                        p->alen = sp->len;
                        p->apos = 0;
                        skip_sp(p);
                        p->apos += 4;
                        skip_sp(p);
                        rest = p->apos;
                        if (p->alen - rest >= 2 && memcmp(p->a + rest, "if", 2) == 0) {
                            struct node *e2 = al(p->t, sizeof *e2);
                            if (!e2)
                                return ERR_NOMEM;
                            e2->kind = K_IF;
                            e2->line = sp->line;
                            p->apos = rest + 2;
                            if ((rc = parse_pipe(p, &e2->pipe, false)))
                                return rc;
                            if ((rc = parse_list(p, pc, n, i, &e2->body, &st, &sp)))
                                return rc;
                            cur->els = e2;
                            cur = e2;
                        } else {
                            if ((rc = parse_list(p, pc, n, i, &cur->els, &st, &sp)))
                                return rc;
                            if (st && strcmp(st, "end") != 0)
                                return perr(p, "{{else}} after {{else}}", NULL);
                            break;
                        }
                    }
                } else {
                    if ((rc = parse_list(p, pc, n, i, &nd->els, &st, &sp)))
                        return rc;
                    if (st && strcmp(st, "end") != 0)
                        return perr(p, "{{else}} after {{else}}", NULL);
                }
                if (!st)
                    return perr(p, "missing {{end}}", NULL);
            }
        }
        *tail = nd;
        tail = &nd->next;
#undef IS
    }
    *out = head;
    return 0;
}

/* Whether an action prints a pipeline that names the field .Response (Ollama's test for the node
 * where a legacy template's last turn is cut). */
static bool prints_response(const struct node *n)
{
    if (n->kind != K_ACTION)
        return false;
    for (int c = 0; c < n->pipe->n_cmds; c++)
        for (int i = 0; i < n->pipe->cmds[c].n; i++) {
            const struct arg *a = &n->pipe->cmds[c].args[i];
            if (a->kind == A_FIELD)
                for (int f = 0; f < a->n_fields; f++)
                    if (strcmp(a->fields[f], "Response") == 0)
                        return true;
        }
    return false;
}

/* Numbers nodes in the order Ollama walks a parse tree (each node, then its body, then its else
 * branch) and records the first .Response action: with GOTMPL_CUT_AT_RESPONSE every node after it
 * is dropped, as Ollama deletes them before executing the final turn. */
static void number_nodes(struct gotmpl *t, struct node *n, int *ord)
{
    for (; n; n = n->next) {
        n->ord = (*ord)++;
        if (t->cut_ord < 0 && prints_response(n))
            t->cut_ord = n->ord;
        number_nodes(t, n->body, ord);
        number_nodes(t, n->els, ord);
    }
}

int gotmpl_parse(const char *src, size_t len, struct gotmpl **out, struct err *e)
{
    *out = NULL;
    struct gotmpl *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(e, ERR_NOMEM, "out of memory parsing a template");
    struct parser p = {.t = t, .src = src, .len = len, .line = 1, .e = e};
    struct piece *pc = NULL;
    size_t n = 0, i = 0;
    int rc = lex_all(&p, &pc, &n);
    if (rc == 0) {
        const char *st;
        struct piece *sp;
        rc = parse_list(&p, pc, n, &i, &t->root, &st, &sp);
        if (rc == 0 && st) {
            p.line = sp->line;
            rc = perr(&p, "unexpected", st);
        }
    }
    free(pc);
    if (rc == 0) {
        int ord = 0;
        t->cut_ord = -1;
        number_nodes(t, t->root, &ord);
    }
    if (rc) {
        if (rc == ERR_NOMEM)
            err_set(e, ERR_NOMEM, "out of memory parsing a template");
        gotmpl_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- evaluation ---- */

struct var {
    const char *name;
    json_t *v;
};

struct ev {
    const json_t *root;
    char *out;
    size_t len, cap;
    uint64_t steps, max_steps;
    size_t max_output;
    struct var vars[256];
    int n_vars;
    int line;
    struct err *e;
    int cut_ord; /* skip nodes after this one (INT_MAX: render everything) */
};

static int put(struct ev *v, const char *s, size_t n)
{
    if (v->len + n > v->max_output)
        return err_set(v->e, ERR_RANGE, "template: output exceeds %zu bytes", v->max_output);
    if (v->len + n + 1 > v->cap) {
        size_t nc = v->cap ? v->cap : 1024;
        while (nc < v->len + n + 1)
            nc *= 2;
        char *q = realloc(v->out, nc);
        if (!q)
            return err_set(v->e, ERR_NOMEM, "out of memory rendering a template");
        v->out = q;
        v->cap = nc;
    }
    memcpy(v->out + v->len, s, n);
    v->len += n;
    v->out[v->len] = 0;
    return 0;
}

static int everr(struct ev *v, const char *fmt, const char *a)
{
    return err_set(v->e, ERR_INVALID, "template: line %d: %s%s", v->line, fmt, a ? a : "");
}

static bool truth(const json_t *x)
{
    if (!x || json_is_null(x) || json_is_false(x))
        return false;
    if (json_is_string(x))
        return json_string_length(x) > 0;
    if (json_is_integer(x))
        return json_integer_value(x) != 0;
    if (json_is_real(x))
        return json_real_value(x) != 0;
    if (json_is_array(x))
        return json_array_size(x) > 0;
    if (json_is_object(x))
        return json_object_size(x) > 0;
    return true;
}

/* Go's json.Marshal with <>& escaped. Keys keep the data's order: Ollama's tool and argument types
 * are ordered (struct fields, ordered maps), and the caller builds the data in that order. */
static char *go_json(const json_t *x)
{
    char *s = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        return NULL;
    size_t n = strlen(s), extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += (s[i] == '<' || s[i] == '>' || s[i] == '&') * 5;
    char *r = malloc(n + extra + 1);
    if (!r) {
        free(s);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '<' || s[i] == '>' || s[i] == '&') {
            o += (size_t)sprintf(r + o, "\\u%04x", (unsigned)s[i]);
        } else {
            r[o++] = s[i];
        }
    }
    r[o] = 0;
    free(s);
    return r;
}

/* Go's %v of a float64: shortest representation ('g' with exponent beyond 21 digits). */
static void fmt_float(double d, char *buf, size_t cap)
{
    if (d == floor(d) && fabs(d) < 1e21) {
        snprintf(buf, cap, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    char *ex = strchr(buf, 'e'); /* Go writes e+06 as e+06 too: keep two digits */
    (void)ex;
}

/* Appends the printed form of x (fmt.Sprint) to v. */
static int print_val(struct ev *v, const json_t *x, bool missing)
{
    char buf[64];
    if (missing)
        return put(v, "<no value>", 10);
    if (!x || json_is_null(x))
        return put(v, "<nil>", 5);
    if (json_is_string(x))
        return put(v, json_string_value(x), json_string_length(x));
    if (json_is_true(x))
        return put(v, "true", 4);
    if (json_is_false(x))
        return put(v, "false", 5);
    if (json_is_integer(x)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(x));
        return put(v, buf, strlen(buf));
    }
    if (json_is_real(x)) {
        fmt_float(json_real_value(x), buf, sizeof buf);
        return put(v, buf, strlen(buf));
    }
    char *s = go_json(x);
    if (!s)
        return err_set(v->e, ERR_NOMEM, "out of memory rendering a template");
    int rc = put(v, s, strlen(s));
    free(s);
    return rc;
}

static int eval_pipe(struct ev *v, const json_t *dot, const struct pipe *p, json_t **res, bool *missing);

/* The JSON name Ollama's API types give a Go field: ToolCalls -> tool_calls, ToolCallID ->
 * tool_call_id, Defs -> $defs. It lets templates read Ollama's JSON messages and tools directly
 * (.Role finds "role") while objects still print with their JSON names, as the Go structs do. */
static bool go_json_name(const char *f, char *buf, size_t cap)
{
    if (strcmp(f, "Defs") == 0) {
        snprintf(buf, cap, "$defs");
        return true;
    }
    size_t o = 0, n = strlen(f);
    if (!isupper((unsigned char)f[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        bool up = isupper((unsigned char)f[i]);
        bool split = up && i > 0 &&
                     (islower((unsigned char)f[i - 1]) || (i + 1 < n && islower((unsigned char)f[i + 1]) &&
                                                           isupper((unsigned char)f[i - 1])));
        if (o + 3 > cap)
            return false;
        if (split)
            buf[o++] = '_';
        buf[o++] = (char)tolower((unsigned char)f[i]);
    }
    buf[o] = 0;
    return true;
}

/* Follows a field chain from x (borrowed); result is a new reference (NULL = missing). */
static json_t *fields(const json_t *x, const char *const *f, int n, bool *missing)
{
    *missing = false;
    for (int i = 0; i < n; i++) {
        if (!json_is_object(x)) {
            *missing = i == n - 1 && x == NULL;
            return NULL;
        }
        const json_t *y = json_object_get(x, f[i]);
        if (!y) {
            char alias[64];
            if (go_json_name(f[i], alias, sizeof alias))
                y = json_object_get(x, alias);
        }
        x = y;
        if (!x) {
            *missing = true;
            return NULL;
        }
    }
    return json_incref((json_t *)x);
}

static json_t *lookup_var(struct ev *v, const char *name)
{
    if (strcmp(name, "$") == 0)
        return (json_t *)v->root;
    for (int i = v->n_vars - 1; i >= 0; i--)
        if (strcmp(v->vars[i].name, name) == 0)
            return v->vars[i].v;
    return NULL;
}

static int cmp_vals(const json_t *a, const json_t *b, int *out)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        *out = x < y ? -1 : x > y;
        return 0;
    }
    if (json_is_string(a) && json_is_string(b)) {
        int c = strcmp(json_string_value(a), json_string_value(b));
        *out = c < 0 ? -1 : c > 0;
        return 0;
    }
    return -1;
}

static bool eq_vals(const json_t *a, const json_t *b)
{
    int c;
    if (cmp_vals(a, b, &c) == 0)
        return c == 0;
    if ((!a || json_is_null(a)) && (!b || json_is_null(b)))
        return true;
    if (json_is_boolean(a) && json_is_boolean(b))
        return json_is_true(a) == json_is_true(b);
    return false;
}

static int call_func(struct ev *v, const char *name, json_t **a, int n, json_t **res)
{
    *res = NULL;
    if (strcmp(name, "and") == 0 || strcmp(name, "or") == 0) {
        bool is_and = name[0] == 'a';
        int k = 0;
        for (; k < n - 1; k++)
            if (truth(a[k]) != is_and)
                break;
        *res = json_incref(a[k]);
        if (!*res)
            *res = json_null();
        return 0;
    }
    if (strcmp(name, "not") == 0) {
        if (n != 1)
            return everr(v, "wrong number of args for not", NULL);
        *res = json_boolean(!truth(a[0]));
        return 0;
    }
    if (strcmp(name, "eq") == 0 || strcmp(name, "ne") == 0) {
        if (n < 2)
            return everr(v, "missing arguments for ", name);
        bool eq = false;
        for (int k = 1; k < n; k++)
            eq = eq || eq_vals(a[0], a[k]);
        *res = json_boolean(name[0] == 'e' ? eq : !eq);
        return 0;
    }
    if (strcmp(name, "lt") == 0 || strcmp(name, "le") == 0 || strcmp(name, "gt") == 0 || strcmp(name, "ge") == 0) {
        int c;
        if (n != 2 || cmp_vals(a[0], a[1], &c))
            return everr(v, "incompatible types for comparison in ", name);
        bool r = name[0] == 'l' ? (name[1] == 't' ? c < 0 : c <= 0) : (name[1] == 't' ? c > 0 : c >= 0);
        *res = json_boolean(r);
        return 0;
    }
    if (strcmp(name, "len") == 0) {
        if (n != 1)
            return everr(v, "wrong number of args for len", NULL);
        if (json_is_string(a[0]))
            *res = json_integer((json_int_t)json_string_length(a[0]));
        else if (json_is_array(a[0]))
            *res = json_integer((json_int_t)json_array_size(a[0]));
        else if (json_is_object(a[0]))
            *res = json_integer((json_int_t)json_object_size(a[0]));
        else
            return everr(v, "len of a value that has no length", NULL);
        return 0;
    }
    if (strcmp(name, "index") == 0) {
        if (n < 1)
            return everr(v, "wrong number of args for index", NULL);
        json_t *x = a[0];
        for (int k = 1; k < n; k++) {
            if (json_is_array(x) && json_is_integer(a[k])) {
                json_int_t i = json_integer_value(a[k]);
                if (i < 0 || (size_t)i >= json_array_size(x))
                    return everr(v, "index out of range", NULL);
                x = json_array_get(x, (size_t)i);
            } else if (json_is_object(x) && json_is_string(a[k])) {
                x = json_object_get(x, json_string_value(a[k]));
            } else {
                return everr(v, "cannot index this value", NULL);
            }
        }
        *res = x ? json_incref(x) : json_null();
        return 0;
    }
    if (strcmp(name, "slice") == 0) {
        if (n < 1 || n > 3)
            return everr(v, "wrong number of args for slice", NULL);
        size_t size = json_is_array(a[0]) ? json_array_size(a[0]) : json_is_string(a[0]) ? json_string_length(a[0]) : (size_t)-1;
        if (size == (size_t)-1)
            return everr(v, "can't slice this value", NULL);
        json_int_t lo = 0, hi = (json_int_t)size;
        if (n > 1 && json_is_integer(a[1]))
            lo = json_integer_value(a[1]);
        if (n > 2 && json_is_integer(a[2]))
            hi = json_integer_value(a[2]);
        if (lo < 0 || hi < lo || (size_t)hi > size)
            return everr(v, "slice index out of range", NULL);
        if (json_is_string(a[0])) {
            *res = json_stringn(json_string_value(a[0]) + lo, (size_t)(hi - lo));
        } else {
            *res = json_array();
            for (json_int_t i = lo; i < hi; i++)
                json_array_append(*res, json_array_get(a[0], (size_t)i));
        }
        return 0;
    }
    if (strcmp(name, "json") == 0) {
        if (n != 1)
            return everr(v, "wrong number of args for json", NULL);
        char *s = go_json(a[0] ? a[0] : json_null());
        *res = s ? json_string(s) : NULL;
        free(s);
        return *res ? 0 : err_set(v->e, ERR_NOMEM, "out of memory rendering a template");
    }
    /* print, println, printf: format into a temporary evaluator buffer */
    struct ev tmp = *v;
    tmp.out = NULL;
    tmp.len = tmp.cap = 0;
    int rc = put(&tmp, "", 0);
    if (strcmp(name, "printf") == 0) {
        if (n < 1 || !json_is_string(a[0]))
            return everr(v, "printf needs a format string", NULL);
        const char *f = json_string_value(a[0]);
        int k = 1;
        for (; *f && rc == 0; f++) {
            if (*f != '%') {
                rc = put(&tmp, f, 1);
                continue;
            }
            f++;
            if (*f == '%') {
                rc = put(&tmp, "%", 1);
                continue;
            }
            if (!*f)
                break;
            json_t *x = k < n ? a[k++] : NULL;
            if (*f == 'q' && json_is_string(x)) {
                char *s = go_json(x);
                rc = s ? put(&tmp, s, strlen(s)) : ERR_NOMEM;
                free(s);
            } else if (*f == 'f' && json_is_number(x)) {
                char b[64];
                snprintf(b, sizeof b, "%f", json_number_value(x));
                rc = put(&tmp, b, strlen(b));
            } else {
                rc = print_val(&tmp, x, false);
            }
        }
    } else {
        bool ln = strcmp(name, "println") == 0;
        for (int k = 0; k < n && rc == 0; k++) {
            /* Sprint adds a space between operands when neither is a string; Sprintln always */
            if (k > 0 && (ln || (!json_is_string(a[k - 1]) && !json_is_string(a[k]))))
                rc = put(&tmp, " ", 1);
            if (rc == 0)
                rc = print_val(&tmp, a[k], false);
        }
        if (ln && rc == 0)
            rc = put(&tmp, "\n", 1);
    }
    if (rc == 0)
        *res = json_stringn(tmp.out, tmp.len);
    free(tmp.out);
    return rc;
}

static int eval_arg(struct ev *v, const json_t *dot, const struct arg *a, json_t **res, bool *missing)
{
    *missing = false;
    *res = NULL;
    switch (a->kind) {
    case A_DOT:
        *res = json_incref((json_t *)dot);
        return 0;
    case A_FIELD:
        *res = fields(dot, a->fields, a->n_fields, missing);
        return 0;
    case A_VAR: {
        json_t *x = lookup_var(v, a->s);
        if (!x && strcmp(a->s, "$") != 0) {
            bool found = false;
            for (int i = 0; i < v->n_vars; i++)
                found = found || strcmp(v->vars[i].name, a->s) == 0;
            if (!found)
                return everr(v, "undefined variable ", a->s);
        }
        *res = fields(x, a->fields, a->n_fields, missing);
        return 0;
    }
    case A_STR:
    case A_NUM:
    case A_BOOL:
        *res = json_incref(a->lit);
        return 0;
    case A_NIL:
        return 0;
    case A_PIPE: {
        json_t *x;
        int rc = eval_pipe(v, dot, a->sub, &x, missing);
        if (rc)
            return rc;
        *res = a->n_fields ? fields(x, a->fields, a->n_fields, missing) : json_incref(x);
        json_decref(x);
        return 0;
    }
    default:
        return everr(v, "a function name is not a value", NULL);
    }
}

static int eval_cmd(struct ev *v, const json_t *dot, const struct cmd *c, json_t *piped, bool has_piped,
                    json_t **res, bool *missing)
{
    *missing = false;
    if (c->args[0].kind != A_FUNC) {
        if (c->n > 1 || has_piped)
            return everr(v, "can't give arguments to a non-function", NULL);
        return eval_arg(v, dot, &c->args[0], res, missing);
    }
    json_t *av[33];
    int n = 0, rc = 0;
    for (int k = 1; k < c->n && rc == 0; k++) {
        bool m;
        rc = eval_arg(v, dot, &c->args[k], &av[n], &m);
        if (rc == 0)
            n++;
    }
    if (rc == 0 && has_piped)
        av[n++] = json_incref(piped);
    if (rc == 0)
        rc = call_func(v, c->args[0].s, av, n, res);
    for (int k = 0; k < n; k++)
        json_decref(av[k]);
    return rc;
}

static int set_var(struct ev *v, const char *name, json_t *x, bool declare)
{
    if (!declare) {
        for (int i = v->n_vars - 1; i >= 0; i--)
            if (strcmp(v->vars[i].name, name) == 0) {
                json_decref(v->vars[i].v);
                v->vars[i].v = json_incref(x);
                return 0;
            }
        return everr(v, "undefined variable ", name);
    }
    if (v->n_vars == 256)
        return everr(v, "too many variables", NULL);
    v->vars[v->n_vars].name = name;
    v->vars[v->n_vars++].v = json_incref(x);
    return 0;
}

static void pop_vars(struct ev *v, int to)
{
    while (v->n_vars > to)
        json_decref(v->vars[--v->n_vars].v);
}

static int eval_pipe(struct ev *v, const json_t *dot, const struct pipe *p, json_t **res, bool *missing)
{
    json_t *cur = NULL;
    *missing = false;
    for (int i = 0; i < p->n_cmds; i++) {
        json_t *r;
        int rc = eval_cmd(v, dot, &p->cmds[i], cur, i > 0, &r, missing);
        json_decref(cur);
        if (rc)
            return rc;
        cur = r;
    }
    *res = cur;
    return 0;
}

static int exec_list(struct ev *v, const json_t *dot, const struct node *n);

static int exec_node(struct ev *v, const json_t *dot, const struct node *n)
{
    if (++v->steps > v->max_steps)
        return err_set(v->e, ERR_RANGE, "template: more than %llu evaluation steps",
                       (unsigned long long)v->max_steps);
    v->line = n->line;
    if (n->ord > v->cut_ord)
        return 0;
    if (n->kind == K_TEXT)
        return put(v, n->text, n->len);
    json_t *x = NULL;
    bool missing;
    int base = v->n_vars;
    int rc = 0;
    if (n->kind == K_RANGE && n->pipe->n_vars) {
        /* range $i, $v := pipeline: the variables are set per element */
        struct pipe q = *n->pipe;
        q.n_vars = 0;
        rc = eval_pipe(v, dot, &q, &x, &missing);
    } else {
        rc = eval_pipe(v, dot, n->pipe, &x, &missing);
    }
    if (rc)
        return rc;
    if (n->kind != K_RANGE)
        for (int i = 0; i < n->pipe->n_vars && rc == 0; i++)
            rc = set_var(v, n->pipe->vars[i], x ? x : json_null(), n->pipe->declare);
    if (rc == 0) {
        switch (n->kind) {
        case K_ACTION:
            if (n->pipe->n_vars == 0)
                rc = print_val(v, x, missing);
            break;
        case K_IF:
            rc = exec_list(v, dot, truth(x) ? n->body : n->els);
            break;
        case K_WITH:
            rc = truth(x) ? exec_list(v, x, n->body) : exec_list(v, dot, n->els);
            break;
        case K_RANGE: {
            size_t cnt = json_is_array(x) ? json_array_size(x) : json_is_object(x) ? json_object_size(x) : 0;
            if (x && !json_is_null(x) && !json_is_array(x) && !json_is_object(x)) {
                rc = everr(v, "range can't iterate over this value", NULL);
                break;
            }
            if (cnt == 0) {
                rc = exec_list(v, dot, n->els);
                break;
            }
            const char **keys = NULL;
            if (json_is_object(x)) { /* Go ranges over map keys in sorted order */
                keys = malloc(cnt * sizeof *keys);
                if (!keys) {
                    rc = err_set(v->e, ERR_NOMEM, "out of memory rendering a template");
                    break;
                }
                size_t k = 0;
                const char *key;
                json_t *val;
                json_object_foreach(x, key, val) keys[k++] = key;
                for (size_t a = 1; a < cnt; a++)
                    for (size_t b = a; b > 0 && strcmp(keys[b - 1], keys[b]) > 0; b--) {
                        const char *t = keys[b];
                        keys[b] = keys[b - 1];
                        keys[b - 1] = t;
                    }
            }
            for (size_t i = 0; i < cnt && rc == 0; i++) {
                if (++v->steps > v->max_steps) {
                    rc = err_set(v->e, ERR_RANGE, "template: more than %llu evaluation steps",
                                 (unsigned long long)v->max_steps);
                    break;
                }
                json_t *elem = keys ? json_object_get(x, keys[i]) : json_array_get(x, i);
                json_t *idx = keys ? json_string(keys[i]) : json_integer((json_int_t)i);
                int vb = v->n_vars;
                if (n->pipe->n_vars == 1)
                    rc = set_var(v, n->pipe->vars[0], elem, true);
                else if (n->pipe->n_vars == 2) {
                    rc = set_var(v, n->pipe->vars[0], idx, true);
                    if (rc == 0)
                        rc = set_var(v, n->pipe->vars[1], elem, true);
                }
                json_decref(idx);
                if (rc == 0)
                    rc = exec_list(v, elem, n->body);
                pop_vars(v, vb);
            }
            free(keys);
            break;
        }
        }
    }
    json_decref(x);
    /* Variables declared in an action live to the end of the enclosing block; control nodes pop. */
    if (n->kind != K_ACTION)
        pop_vars(v, base);
    return rc;
}

static int exec_list(struct ev *v, const json_t *dot, const struct node *n)
{
    int base = v->n_vars;
    int rc = 0;
    for (; n && rc == 0; n = n->next)
        rc = exec_node(v, dot, n);
    pop_vars(v, base);
    return rc;
}

int gotmpl_render_ex(const struct gotmpl *t, const json_t *data, const struct gotmpl_limits *lim, unsigned flags,
                     char **out, size_t *out_len, struct err *e)
{
    *out = NULL;
    struct ev v = {.root = data, .e = e, .max_steps = lim && lim->max_steps ? lim->max_steps : 10000000,
                   .max_output = lim && lim->max_output ? lim->max_output : 16u << 20,
                   .cut_ord = (flags & GOTMPL_CUT_AT_RESPONSE) && t->cut_ord >= 0 ? t->cut_ord : INT_MAX};
    int rc = put(&v, "", 0);
    if (rc == 0)
        rc = exec_list(&v, data, t->root);
    pop_vars(&v, 0);
    if (rc) {
        free(v.out);
        return rc;
    }
    *out = v.out;
    if (out_len)
        *out_len = v.len;
    return 0;
}

int gotmpl_render(const struct gotmpl *t, const json_t *data, const struct gotmpl_limits *lim, char **out,
                  size_t *out_len, struct err *e)
{
    return gotmpl_render_ex(t, data, lim, 0, out, out_len, e);
}

static bool ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

static bool pipe_uses(const struct pipe *p, const char *name)
{
    if (!p)
        return false;
    for (int c = 0; c < p->n_cmds; c++)
        for (int i = 0; i < p->cmds[c].n; i++) {
            const struct arg *a = &p->cmds[c].args[i];
            if (a->kind == A_VAR && ieq(a->s[0] == '$' ? a->s + 1 : a->s, name))
                return true;
            if (a->kind == A_FIELD || a->kind == A_VAR)
                for (int f = 0; f < a->n_fields; f++)
                    if (ieq(a->fields[f], name))
                        return true;
            if (a->kind == A_PIPE && pipe_uses(a->sub, name))
                return true;
        }
    return false;
}

static bool list_uses(const struct node *n, const char *name)
{
    for (; n; n = n->next)
        if (pipe_uses(n->pipe, name) || list_uses(n->body, name) || list_uses(n->els, name))
            return true;
    return false;
}

bool gotmpl_uses(const struct gotmpl *t, const char *name)
{
    return list_uses(t->root, name);
}
