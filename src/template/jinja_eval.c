/* jinja_eval.c — compiles and renders templates: scopes, statements (if, for, set, macro, call,
 * filter blocks, break/continue), and expressions with the reference's operator semantics
 * (JavaScript equality, string + number concatenation, `in` on lists by identity), under the
 * step, output, memory and depth limits of struct jinja_limits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template/jinja_internal.h"

#define DEFAULT_MAX_STEPS 20000000ull
#define DEFAULT_MAX_OUTPUT (16u << 20)
#define DEFAULT_MAX_MEMORY (256u << 20)
#define DEFAULT_MAX_DEPTH 256u

/* ---------------------------------------------------------------- compile */

int jinja_compile(const char *src, size_t len, struct jinja_template **out, struct err *e)
{
    *out = NULL;
    if (!src && len)
        return err_set(e, ERR_INVALID, "jinja_compile: NULL source");
    struct jinja_template *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(e, ERR_NOMEM, "out of memory compiling the template");
    t->src = ja_strndup(&t->arena, src ? src : "", len);
    t->len = len;
    struct jtoken *toks = NULL;
    size_t ntoks = 0;
    int rc = t->src ? 0 : err_set(e, ERR_NOMEM, "out of memory compiling the template");
    if (rc == 0)
        rc = jlex(&t->arena, t->src, len, &toks, &ntoks, e);
    if (rc == 0)
        rc = jparse(t, toks, ntoks, e);
    free(toks);
    if (rc != 0) {
        jinja_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void jinja_free(struct jinja_template *t)
{
    if (!t)
        return;
    ja_release(&t->arena);
    free(t);
}

/* ---------------------------------------------------------------- scopes */

static struct jscope *scope_new(struct jrender *r, struct jscope *parent)
{
    struct jscope *s = ja_alloc(r->arena, sizeof *s);
    if (!s) {
        jr_nomem(r);
        return NULL;
    }
    s->parent = parent;
    return s;
}

static struct jv *scope_lookup(struct jscope *s, const char *name, size_t n)
{
    for (; s; s = s->parent) {
        struct jv *v = jdict_get(&s->vars, name, n);
        if (v)
            return v;
    }
    return NULL;
}

static int scope_set(struct jrender *r, struct jscope *s, const struct jstr *name, struct jv v)
{
    return jdict_set(r, &s->vars, name, v);
}

/* ---------------------------------------------------------------- helpers */

static int eval(struct jrender *r, const struct jnode *n, struct jscope *s, struct jv *out);
static int exec_block(struct jrender *r, struct jnode *const *body, size_t n, struct jscope *s, struct jbuf *out);

static const char *op_name(int op)
{
    switch (op) {
    case OP_AND: return "and";
    case OP_OR: return "or";
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    case OP_LT: return "<";
    case OP_GT: return ">";
    case OP_LE: return "<=";
    case OP_GE: return ">=";
    case OP_IN: return "in";
    case OP_NOTIN: return "not in";
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_CONCAT: return "~";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_FLOORDIV: return "//";
    case OP_MOD: return "%";
    case OP_POW: return "**";
    case OP_NOT: return "not";
    case OP_NEG: return "-";
    case OP_POS: return "+";
    }
    return "?";
}

/* Renders a block into a fresh string value (set blocks, macros, filter blocks). */
static int render_to_string(struct jrender *r, struct jnode *const *body, size_t n, struct jscope *s, struct jv *out)
{
    struct jbuf b = {0};
    int rc = exec_block(r, body, n, s, &b);
    if (rc == 0)
        rc = jv_str(r, b.p ? b.p : "", b.len, out);
    jbuf_free(&b);
    return rc;
}

/* Writes a statement's value the way the reference's evaluateBlock does: none and undefined
 * print nothing. */
static int emit(struct jrender *r, struct jbuf *out, const struct jv *v)
{
    if (v->kind == JV_NONE || v->kind == JV_UNDEF)
        return 0;
    return jv_write(r, out, v);
}

/* Evaluates call arguments: positional first (with *spread), then keywords (with **spread). */
static int eval_args(struct jrender *r, struct jnode *const *items, size_t n, struct jscope *s, struct jargs *a)
{
    struct jlist *pos = jlist_new(r, n);
    if (!pos)
        return r->e->code;
    a->kw = NULL;
    int rc;
    for (size_t i = 0; i < n; i++) {
        const struct jnode *x = items[i];
        if (x->kind == N_KWARG || x->kind == N_KWSPREAD)
            continue;
        struct jv v;
        if ((rc = eval(r, x->kind == N_SPREAD ? x->a : x, s, &v)) != 0)
            return rc;
        if (x->kind == N_SPREAD) {
            if (v.kind != JV_LIST) {
                r->pos = x->pos;
                return jr_fail(r, ERR_INVALID, "cannot unpack non-iterable type %s", jv_type_name(&v));
            }
            for (size_t k = 0; k < v.u.l->n; k++)
                if ((rc = jlist_push(r, pos, v.u.l->v[k])) != 0)
                    return rc;
        } else if ((rc = jlist_push(r, pos, v)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct jnode *x = items[i];
        if (x->kind != N_KWARG && x->kind != N_KWSPREAD)
            continue;
        if (!a->kw && !(a->kw = jdict_new(r, 4)))
            return r->e->code;
        struct jv v;
        if ((rc = eval(r, x->a, s, &v)) != 0)
            return rc;
        r->pos = x->pos;
        if (x->kind == N_KWARG) {
            if (jdict_get(a->kw, x->str, x->len))
                return jr_fail(r, ERR_INVALID, "got multiple values for keyword argument '%.*s'", (int)x->len, x->str);
            if ((rc = jdict_set(r, a->kw, x->lit, v)) != 0)
                return rc;
        } else {
            if (v.kind != JV_DICT)
                return jr_fail(r, ERR_INVALID, "argument after ** must be a mapping, not %s", jv_type_name(&v));
            for (size_t k = 0; k < v.u.d->n; k++) {
                if (jdict_get(a->kw, v.u.d->k[k]->s, v.u.d->k[k]->len))
                    return jr_fail(r, ERR_INVALID, "got multiple values for keyword argument '%s'", v.u.d->k[k]->s);
                if ((rc = jdict_set(r, a->kw, v.u.d->k[k], v.u.d->v[k])) != 0)
                    return rc;
            }
        }
    }
    a->pos = pos->v;
    a->npos = pos->n;
    return 0;
}

/* Binds a macro's or call block's parameters in scope, like Jinja: positionals, then keywords,
 * then defaults (evaluated in the new scope); kwargs/varargs only when the body uses them. */
static int bind_params(struct jrender *r, const struct jnode *def, const char *display, struct jargs *a,
                       struct jscope *scope)
{
    struct jnode *const *params = def->alt;
    size_t np = def->nalt;
    size_t nkw = a->kw ? a->kw->n : 0;
    bool used[64] = {0};
    if (nkw > 64)
        return jr_fail(r, ERR_INVALID, "too many keyword arguments for macro %s", display);
    int rc;
    for (size_t i = 0; i < np; i++) {
        const struct jnode *p = params[i];
        struct jv v = jv_undef();
        bool have = false;
        if (i < a->npos) {
            v = a->pos[i];
            have = true;
        } else if (a->kw) {
            for (size_t k = 0; k < nkw; k++)
                if (!used[k] && a->kw->k[k]->len == p->len && memcmp(a->kw->k[k]->s, p->str, p->len) == 0) {
                    v = a->kw->v[k];
                    used[k] = have = true;
                    break;
                }
        }
        (void)have;
        if ((rc = scope_set(r, scope, p->lit, v)) != 0)
            return rc;
    }
    struct jdict *rest = NULL;
    for (size_t k = 0; k < nkw; k++) {
        if (used[k])
            continue;
        if (!def->uses_kwargs)
            return jr_fail(r, ERR_INVALID, "macro %s takes no keyword argument '%s'", display, a->kw->k[k]->s);
        if (!rest && !(rest = jdict_new(r, 4)))
            return r->e->code;
        if ((rc = jdict_set(r, rest, a->kw->k[k], a->kw->v[k])) != 0)
            return rc;
    }
    if (def->uses_kwargs) {
        if (!rest && !(rest = jdict_new(r, 0)))
            return r->e->code;
        if ((rc = jdict_setc(r, &scope->vars, "kwargs", jv_dict(rest))) != 0)
            return rc;
    }
    if (def->uses_varargs) {
        struct jlist *l = jlist_new(r, 0);
        if (!l)
            return r->e->code;
        for (size_t i = np; i < a->npos; i++)
            if ((rc = jlist_push(r, l, a->pos[i])) != 0)
                return rc;
        if ((rc = jdict_setc(r, &scope->vars, "varargs", jv_list(l))) != 0)
            return rc;
    } else if (a->npos > np) {
        return jr_fail(r, ERR_INVALID, "macro %s takes not more than %zu argument(s)", display, np);
    }
    /* defaults, for parameters that got no value */
    for (size_t i = 0; i < np; i++) {
        const struct jnode *p = params[i];
        if (p->kind != N_KWARG)
            continue;
        bool given = i < a->npos;
        for (size_t k = 0; k < nkw && !given; k++)
            if (used[k] && a->kw->k[k]->len == p->len && memcmp(a->kw->k[k]->s, p->str, p->len) == 0)
                given = true;
        if (given)
            continue;
        struct jv v;
        if ((rc = eval(r, p->a, scope, &v)) != 0 || (rc = scope_set(r, scope, p->lit, v)) != 0)
            return rc;
    }
    return 0;
}

int jeval_call_value(struct jrender *r, struct jscope *s, const struct jv *fn, struct jargs *args, struct jv *out)
{
    if (fn->kind != JV_FUNC)
        return jr_fail(r, ERR_INVALID, "cannot call something that is not a function: got %s", jv_type_name(fn));
    const struct jfunc *f = fn->u.fn;
    if (f->kind == FN_BUILTIN)
        return jf_call_builtin(r, f, args, out);
    if (r->depth >= r->max_depth)
        return err_set(r->e, ERR_RANGE, "template render exceeded max_depth (%u nested macro calls)", r->max_depth);
    /* Macros see the scope of their caller (the reference scopes them dynamically); a call
     * block's caller() sees the scope around the call block. */
    struct jscope *scope = scope_new(r, f->kind == FN_MACRO ? s : f->scope);
    if (!scope)
        return r->e->code;
    char display[80];
    if (f->kind == FN_MACRO)
        snprintf(display, sizeof display, "'%.*s'", (int)(f->node->len < 60 ? f->node->len : 60), f->node->str);
    else
        snprintf(display, sizeof display, "None");
    r->depth++;
    int rc = bind_params(r, f->node, display, args, scope);
    if (rc == 0)
        rc = render_to_string(r, f->node->items, f->node->nitems, scope, out);
    r->depth--;
    if (rc > 0) /* break/continue escaping a macro body ends the render, as in the reference */
        rc = jr_fail(r, ERR_INVALID, "'break' or 'continue' outside of a loop");
    return rc;
}

/* obj[prop] / obj.prop */
static int member_get(struct jrender *r, const struct jv *obj, const struct jv *prop, struct jv *out)
{
    *out = jv_undef();
    switch (obj->kind) {
    case JV_DICT:
    case JV_NS: {
        if (prop->kind != JV_STR)
            return jr_fail(r, ERR_INVALID, "cannot access property with non-string: got %s", jv_type_name(prop));
        struct jv *v = jdict_get(obj->u.d, prop->u.s->s, prop->u.s->len);
        if (v) {
            *out = *v;
            return 0;
        }
        if (obj->kind == JV_DICT)
            return jf_member(r, obj, prop->u.s->s, prop->u.s->len, out);
        return 0;
    }
    case JV_LIST:
    case JV_STR:
        if (prop->kind == JV_INT) {
            int64_t i = prop->u.i;
            if (obj->kind == JV_LIST) {
                int64_t n = (int64_t)obj->u.l->n;
                if (i < 0)
                    i += n;
                if (i >= 0 && i < n)
                    *out = obj->u.l->v[i];
                return 0;
            }
            /* strings index by UTF-16 unit, like String.prototype.at */
            const char *s = obj->u.s->s;
            size_t n = obj->u.s->len;
            int64_t units = (int64_t)ju_utf16_len(s, n);
            if (i < 0)
                i += units;
            if (i < 0 || i >= units)
                return 0;
            int64_t u = 0;
            for (size_t k = 0; k < n;) {
                size_t adv;
                uint32_t cp = ju_decode(s + k, n - k, &adv);
                int w = cp >= 0x10000 ? 2 : 1;
                if (i < u + w) {
                    if (w == 2) /* half of a surrogate pair */
                        return jv_str(r, "\xEF\xBF\xBD", 3, out);
                    return jv_str(r, s + k, adv, out);
                }
                u += w;
                k += adv;
            }
            return 0;
        }
        if (prop->kind == JV_STR)
            return jf_member(r, obj, prop->u.s->s, prop->u.s->len, out);
        return jr_fail(r, ERR_INVALID, "cannot access property with non-string/non-number: got %s", jv_type_name(prop));
    default:
        if (prop->kind != JV_STR)
            return jr_fail(r, ERR_INVALID, "cannot access property with non-string: got %s", jv_type_name(prop));
        return jf_member(r, obj, prop->u.s->s, prop->u.s->len, out);
    }
}

/* Python-style slice bounds over n elements; fills the chosen indices' count and walks them. */
static void slice_bounds(int64_t n, const struct jv *a, const struct jv *b, int64_t step, int64_t *start, int64_t *stop)
{
    if (step > 0) {
        int64_t s = a->kind == JV_INT ? a->u.i : 0, e = b->kind == JV_INT ? b->u.i : n;
        *start = s < 0 ? (n + s > 0 ? n + s : 0) : (s < n ? s : n);
        *stop = e < 0 ? (n + e > 0 ? n + e : 0) : (e < n ? e : n);
    } else {
        int64_t s = a->kind == JV_INT ? a->u.i : n - 1, e = b->kind == JV_INT ? b->u.i : -1;
        *start = s < 0 ? (n + s > -1 ? n + s : -1) : (s < n - 1 ? s : n - 1);
        *stop = e < -1 ? (n + e > -1 ? n + e : -1) : (e < n - 1 ? e : n - 1);
    }
}

static int eval_slice(struct jrender *r, const struct jv *obj, const struct jnode *sl, struct jscope *s, struct jv *out)
{
    if (obj->kind != JV_LIST && obj->kind != JV_STR)
        return jr_fail(r, ERR_INVALID, "slice object must be an array or string, got %s", jv_type_name(obj));
    struct jv a = jv_undef(), b = jv_undef(), c = jv_undef();
    int rc;
    if ((sl->a && (rc = eval(r, sl->a, s, &a)) != 0) || (sl->b && (rc = eval(r, sl->b, s, &b)) != 0) ||
        (sl->c && (rc = eval(r, sl->c, s, &c)) != 0))
        return rc;
    r->pos = sl->pos;
    const char *what[3] = {"start", "stop", "step"};
    const struct jv *parts[3] = {&a, &b, &c};
    for (int i = 0; i < 3; i++)
        if (parts[i]->kind != JV_INT && parts[i]->kind != JV_UNDEF)
            return jr_fail(r, ERR_INVALID, "slice %s must be an integer or omitted, got %s", what[i],
                           jv_type_name(parts[i]));
    int64_t step = c.kind == JV_INT ? c.u.i : 1;
    if (step == 0)
        return jr_fail(r, ERR_INVALID, "slice step cannot be zero");
    if (obj->kind == JV_LIST) {
        int64_t start, stop;
        slice_bounds((int64_t)obj->u.l->n, &a, &b, step, &start, &stop);
        struct jlist *l = jlist_new(r, 0);
        if (!l)
            return r->e->code;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            if ((rc = jlist_push(r, l, obj->u.l->v[i])) != 0)
                return rc;
        *out = jv_list(l);
        return 0;
    }
    /* strings slice by code point (the reference uses Array.from) */
    const char *str = obj->u.s->s;
    size_t len = obj->u.s->len;
    size_t ncp = 0;
    for (size_t k = 0; k < len; ncp++) {
        size_t adv;
        ju_decode(str + k, len - k, &adv);
        k += adv;
    }
    size_t *off = malloc((ncp + 1) * sizeof *off);
    if (!off)
        return jr_nomem(r);
    size_t k = 0;
    for (size_t i = 0; i < ncp; i++) {
        off[i] = k;
        size_t adv;
        ju_decode(str + k, len - k, &adv);
        k += adv;
    }
    off[ncp] = len;
    int64_t start, stop;
    slice_bounds((int64_t)ncp, &a, &b, step, &start, &stop);
    struct jbuf buf = {0};
    rc = 0;
    for (int64_t i = start; rc == 0 && (step > 0 ? i < stop : i > stop); i += step)
        if (jbuf_put(&buf, str + off[i], off[i + 1] - off[i]) != 0)
            rc = jr_nomem(r);
    free(off);
    if (rc == 0)
        rc = jv_str(r, buf.p ? buf.p : "", buf.len, out);
    jbuf_free(&buf);
    return rc;
}

static bool numeric_like(const struct jv *v) { return v->kind == JV_INT || v->kind == JV_FLOAT || v->kind == JV_BOOL; }

static int concat_raw(struct jrender *r, const struct jv *a, const struct jv *b, struct jv *out)
{
    struct jbuf buf = {0};
    int rc = jv_write_raw(r, &buf, a);
    if (rc == 0)
        rc = jv_write_raw(r, &buf, b);
    if (rc == 0)
        rc = jv_str(r, buf.p ? buf.p : "", buf.len, out);
    jbuf_free(&buf);
    return rc;
}

static bool str_contains(const struct jstr *hay, const struct jstr *needle)
{
    if (needle->len == 0)
        return true;
    if (needle->len > hay->len)
        return false;
    for (size_t i = 0; i + needle->len <= hay->len; i++)
        if (memcmp(hay->s + i, needle->s, needle->len) == 0)
            return true;
    return false;
}

static int arith(struct jrender *r, int op, const struct jv *l, const struct jv *rt, struct jv *out, bool *done)
{
    bool isf = l->kind == JV_FLOAT || rt->kind == JV_FLOAT;
    double a = jv_num(l), b = jv_num(rt);
    *done = true;
    switch (op) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
        if (!isf) {
            int64_t x = l->u.i, y = rt->u.i, z;
            bool ovf = op == OP_ADD ? __builtin_add_overflow(x, y, &z)
                       : op == OP_SUB ? __builtin_sub_overflow(x, y, &z)
                                      : __builtin_mul_overflow(x, y, &z);
            if (!ovf) {
                *out = jv_int(z);
                return 0;
            }
        }
        *out = jv_float(op == OP_ADD ? a + b : op == OP_SUB ? a - b : a * b);
        return 0;
    case OP_DIV: *out = jv_float(a / b); return 0;
    case OP_FLOORDIV:
        if (!isf) {
            if (rt->u.i == 0)
                return jr_fail(r, ERR_INVALID, "integer division by zero");
            *out = jv_int((int64_t)floor(a / b));
            return 0;
        }
        *out = jv_float(floor(a / b));
        return 0;
    case OP_MOD:
        if (!isf) {
            if (rt->u.i == 0)
                return jr_fail(r, ERR_INVALID, "integer modulo by zero");
            *out = jv_int(rt->u.i == -1 ? 0 : l->u.i % rt->u.i); /* JavaScript's %: sign of the dividend */
            return 0;
        }
        *out = jv_float(fmod(a, b));
        return 0;
    case OP_LT: *out = jv_bool(isf ? a < b : l->u.i < rt->u.i); return 0;
    case OP_GT: *out = jv_bool(isf ? a > b : l->u.i > rt->u.i); return 0;
    case OP_LE: *out = jv_bool(isf ? a <= b : l->u.i <= rt->u.i); return 0;
    case OP_GE: *out = jv_bool(isf ? a >= b : l->u.i >= rt->u.i); return 0;
    }
    *done = false;
    return 0;
}

static int eval_binary(struct jrender *r, const struct jnode *n, struct jscope *s, struct jv *out)
{
    struct jv l, rt;
    int rc;
    if ((rc = eval(r, n->a, s, &l)) != 0)
        return rc;
    if (n->op == OP_AND) {
        if (!jv_truthy(&l)) {
            *out = l;
            return 0;
        }
        return eval(r, n->b, s, out);
    }
    if (n->op == OP_OR) {
        if (jv_truthy(&l)) {
            *out = l;
            return 0;
        }
        return eval(r, n->b, s, out);
    }
    if ((rc = eval(r, n->b, s, &rt)) != 0)
        return rc;
    r->pos = n->pos;
    int op = n->op;
    if (op == OP_EQ || op == OP_NE) {
        bool eq = jv_loose_eq(&l, &rt);
        *out = jv_bool(op == OP_EQ ? eq : !eq);
        return 0;
    }
    if (l.kind == JV_UNDEF || rt.kind == JV_UNDEF) {
        if (rt.kind == JV_UNDEF && (op == OP_IN || op == OP_NOTIN)) {
            *out = jv_bool(op == OP_NOTIN);
            return 0;
        }
        return jr_fail(r, ERR_INVALID, "cannot perform operation %s on undefined values", op_name(op));
    }
    if (l.kind == JV_NONE || rt.kind == JV_NONE)
        return jr_fail(r, ERR_INVALID, "cannot perform operation %s on null values", op_name(op));
    if (op == OP_CONCAT)
        return concat_raw(r, &l, &rt, out);
    if (op == OP_POW && numeric_like(&l) && numeric_like(&rt)) {
        double a = jv_num(&l), b = jv_num(&rt);
        if (a == 0 && b < 0)
            return jr_fail(r, ERR_INVALID, "0.0 cannot be raised to a negative power");
        double res = pow(a, b);
        if (!isfinite(res))
            return jr_fail(r, ERR_INVALID, "exponentiation result is not a finite real number");
        bool isf = l.kind == JV_FLOAT || rt.kind == JV_FLOAT || b < 0;
        *out = isf || fabs(res) >= 9.2e18 ? jv_float(res) : jv_int((int64_t)res);
        return 0;
    }
    if (jv_is_num(&l) && jv_is_num(&rt)) {
        bool done;
        if ((rc = arith(r, op, &l, &rt, out, &done)) != 0 || done)
            return rc;
    } else if (l.kind == JV_LIST && rt.kind == JV_LIST) {
        if (op == OP_ADD) {
            if ((rc = jr_step(r, l.u.l->n + rt.u.l->n)) != 0)
                return rc;
            struct jlist *nl = jlist_new(r, l.u.l->n + rt.u.l->n);
            if (!nl)
                return r->e->code;
            if (l.u.l->n)
                memcpy(nl->v, l.u.l->v, l.u.l->n * sizeof *nl->v);
            if (rt.u.l->n)
                memcpy(nl->v + l.u.l->n, rt.u.l->v, rt.u.l->n * sizeof *nl->v);
            nl->n = l.u.l->n + rt.u.l->n;
            *out = jv_list(nl);
            return 0;
        }
    } else if (rt.kind == JV_LIST) {
        if (op == OP_IN || op == OP_NOTIN) {
            bool found = false;
            for (size_t i = 0; i < rt.u.l->n && !found; i++)
                found = jv_strict_eq(&rt.u.l->v[i], &l);
            *out = jv_bool(op == OP_IN ? found : !found);
            return 0;
        }
    }
    if ((l.kind == JV_STR || rt.kind == JV_STR) && op == OP_ADD)
        return concat_raw(r, &l, &rt, out);
    if (l.kind == JV_STR && rt.kind == JV_STR && (op == OP_IN || op == OP_NOTIN)) {
        bool found = str_contains(rt.u.s, l.u.s);
        *out = jv_bool(op == OP_IN ? found : !found);
        return 0;
    }
    if (l.kind == JV_STR && rt.kind == JV_DICT && (op == OP_IN || op == OP_NOTIN)) {
        bool found = jdict_get(rt.u.d, l.u.s->s, l.u.s->len) != NULL;
        *out = jv_bool(op == OP_IN ? found : !found);
        return 0;
    }
    return jr_fail(r, ERR_INVALID, "unknown operator \"%s\" between %s and %s", op_name(op), jv_type_name(&l),
                   jv_type_name(&rt));
}

static int eval(struct jrender *r, const struct jnode *n, struct jscope *s, struct jv *out)
{
    int rc;
    r->pos = n->pos;
    if ((rc = jr_step(r, 1)) != 0)
        return rc;
    switch (n->kind) {
    case N_INT: *out = jv_int(n->ival); return 0;
    case N_FLOAT: *out = jv_float(n->fval); return 0;
    case N_STR:
        if ((rc = jr_check_len(r, n->lit->len)) != 0)
            return rc;
        *out = (struct jv){.kind = JV_STR, .u.s = n->lit};
        return 0;
    case N_IDENT: {
        struct jv *v = scope_lookup(s, n->str, n->len);
        *out = v ? *v : jv_undef();
        return 0;
    }
    case N_LIST:
    case N_TUPLE: {
        struct jlist *l = jlist_new(r, n->nitems);
        if (!l)
            return r->e->code;
        l->tuple = n->kind == N_TUPLE;
        for (size_t i = 0; i < n->nitems; i++)
            if ((rc = eval(r, n->items[i], s, &l->v[l->n++])) != 0)
                return rc;
        *out = jv_list(l);
        return 0;
    }
    case N_DICT: {
        struct jdict *d = jdict_new(r, n->nitems);
        if (!d)
            return r->e->code;
        for (size_t i = 0; i < n->nitems; i++) {
            struct jv k, v;
            if ((rc = eval(r, n->items[i], s, &k)) != 0)
                return rc;
            if (k.kind != JV_STR) {
                r->pos = n->items[i]->pos;
                return jr_fail(r, ERR_INVALID, "dict keys must be strings, got %s", jv_type_name(&k));
            }
            if ((rc = eval(r, n->alt[i], s, &v)) != 0 || (rc = jdict_set(r, d, k.u.s, v)) != 0)
                return rc;
        }
        *out = jv_dict(d);
        return 0;
    }
    case N_MEMBER: {
        struct jv obj, prop;
        if ((rc = eval(r, n->a, s, &obj)) != 0)
            return rc;
        if (n->op && n->b->kind == N_SLICE)
            return eval_slice(r, &obj, n->b, s, out);
        if (n->op) {
            if ((rc = eval(r, n->b, s, &prop)) != 0)
                return rc;
        } else if (n->b->kind == N_INT) {
            prop = jv_int(n->b->ival);
        } else {
            prop = (struct jv){.kind = JV_STR, .u.s = n->b->lit};
        }
        r->pos = n->pos;
        return member_get(r, &obj, &prop, out);
    }
    case N_CALL: {
        struct jargs args;
        struct jv fn;
        if ((rc = eval_args(r, n->items, n->nitems, s, &args)) != 0 || (rc = eval(r, n->a, s, &fn)) != 0)
            return rc;
        r->pos = n->pos;
        return jeval_call_value(r, s, &fn, &args, out);
    }
    case N_UNARY: {
        struct jv v;
        if ((rc = eval(r, n->a, s, &v)) != 0)
            return rc;
        r->pos = n->pos;
        if (n->op == OP_NOT) {
            *out = jv_bool(!jv_truthy(&v));
            return 0;
        }
        int sign = n->op == OP_NEG ? -1 : 1;
        if (v.kind == JV_FLOAT) {
            *out = jv_float(sign * v.u.f);
            return 0;
        }
        if (v.kind == JV_INT || v.kind == JV_BOOL) {
            int64_t x = v.kind == JV_BOOL ? v.u.b : v.u.i;
            *out = jv_int(sign < 0 ? -x : x);
            return 0;
        }
        return jr_fail(r, ERR_INVALID, "unknown operator \"%s\" for %s", op_name(n->op), jv_type_name(&v));
    }
    case N_BINARY: return eval_binary(r, n, s, out);
    case N_FILTER: {
        struct jv v;
        struct jargs args = {0};
        if ((rc = eval(r, n->a, s, &v)) != 0)
            return rc;
        if (n->op && (rc = eval_args(r, n->items, n->nitems, s, &args)) != 0)
            return rc;
        r->pos = n->pos;
        return jf_filter(r, s, &v, n->str, n->len, n->op != 0, n, &args, out);
    }
    case N_TEST: {
        struct jv v;
        struct jargs args = {0};
        if ((rc = eval(r, n->a, s, &v)) != 0)
            return rc;
        if (n->ival && (rc = eval_args(r, n->items, n->nitems, s, &args)) != 0)
            return rc;
        r->pos = n->pos;
        bool res;
        if ((rc = jf_test(r, n->str, n->len, &v, args.pos, args.npos, &res)) != 0)
            return rc;
        *out = jv_bool(n->op ? !res : res);
        return 0;
    }
    case N_SELECT: {
        struct jv t;
        if ((rc = eval(r, n->b, s, &t)) != 0)
            return rc;
        if (!jv_truthy(&t)) {
            *out = jv_undef();
            return 0;
        }
        return eval(r, n->a, s, out);
    }
    case N_TERNARY: {
        struct jv c;
        if ((rc = eval(r, n->a, s, &c)) != 0)
            return rc;
        return eval(r, jv_truthy(&c) ? n->b : n->c, s, out);
    }
    default: return jr_fail(r, ERR_INVALID, "this construct cannot be used as a value here");
    }
}

/* ---------------------------------------------------------------- statements */

static int assign(struct jrender *r, struct jscope *s, const struct jnode *target, struct jv v)
{
    r->pos = target->pos;
    if (target->kind == N_IDENT)
        return scope_set(r, s, target->lit, v);
    if (target->kind == N_TUPLE) {
        if (v.kind != JV_LIST)
            return jr_fail(r, ERR_INVALID, "cannot unpack non-iterable type in set: %s", jv_type_name(&v));
        if (v.u.l->n != target->nitems)
            return jr_fail(r, ERR_INVALID, "too %s items to unpack in set", target->nitems > v.u.l->n ? "few" : "many");
        for (size_t i = 0; i < target->nitems; i++) {
            if (target->items[i]->kind != N_IDENT)
                return jr_fail(r, ERR_INVALID, "cannot unpack to a non-identifier in set");
            int rc = scope_set(r, s, target->items[i]->lit, v.u.l->v[i]);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (target->kind == N_MEMBER) {
        struct jv obj;
        int rc = eval(r, target->a, s, &obj);
        if (rc)
            return rc;
        r->pos = target->pos;
        if (obj.kind != JV_NS)
            return jr_fail(r, ERR_INVALID, "cannot assign an attribute on a non-namespace object (%s)", jv_type_name(&obj));
        if (target->op || target->b->kind != N_IDENT)
            return jr_fail(r, ERR_INVALID, "cannot assign to a member with a non-identifier property");
        return jdict_set(r, obj.u.d, target->b->lit, v);
    }
    return jr_fail(r, ERR_INVALID, "invalid target for set");
}

/* Binds one loop element to the loop variable(s). */
static int bind_loopvar(struct jrender *r, struct jscope *s, const struct jnode *var, const struct jv *cur)
{
    if (var->kind == N_IDENT)
        return scope_set(r, s, var->lit, *cur);
    for (size_t j = 0; j < var->nitems; j++) {
        if (var->items[j]->kind != N_IDENT)
            return jr_fail(r, ERR_INVALID, "cannot unpack into a non-identifier");
        int rc = scope_set(r, s, var->items[j]->lit, cur->u.l->v[j]);
        if (rc)
            return rc;
    }
    return 0;
}

static const char *const LOOP_KEYS[] = {"index", "index0", "revindex", "revindex0", "first", "last", "length", "previtem", "nextitem"};

static int exec_for(struct jrender *r, const struct jnode *n, struct jscope *s, struct jbuf *out)
{
    int rc;
    struct jscope *scope = scope_new(r, s);
    if (!scope)
        return r->e->code;
    struct jv it;
    if ((rc = eval(r, n->b, scope, &it)) != 0)
        return rc;
    r->pos = n->pos;
    if (it.kind != JV_LIST && it.kind != JV_DICT)
        return jr_fail(r, ERR_INVALID, "expected an iterable or object in the for loop, got %s", jv_type_name(&it));
    struct jlist *src;
    if (it.kind == JV_DICT) { /* iterating a dict gives its keys */
        if (!(src = jlist_new(r, it.u.d->n)))
            return r->e->code;
        for (size_t i = 0; i < it.u.d->n; i++)
            src->v[src->n++] = (struct jv){.kind = JV_STR, .u.s = it.u.d->k[i]};
    } else {
        src = it.u.l;
    }
    /* keep the elements that pass the loop's `if`, checking unpacking for each */
    struct jlist *items = src;
    if (n->c || n->a->kind == N_TUPLE) {
        if (!(items = jlist_new(r, src->n)))
            return r->e->code;
        for (size_t i = 0; i < src->n; i++) {
            const struct jv *cur = &src->v[i];
            if (n->a->kind == N_TUPLE) {
                r->pos = n->pos;
                if (cur->kind != JV_LIST)
                    return jr_fail(r, ERR_INVALID, "cannot unpack non-iterable type %s", jv_type_name(cur));
                if (cur->u.l->n != n->a->nitems)
                    return jr_fail(r, ERR_INVALID, "too %s items to unpack", n->a->nitems > cur->u.l->n ? "few" : "many");
            }
            if (n->c) {
                struct jscope *ls = scope_new(r, scope);
                struct jv t;
                if (!ls)
                    return r->e->code;
                if ((rc = bind_loopvar(r, ls, n->a, cur)) != 0 || (rc = eval(r, n->c, ls, &t)) != 0)
                    return rc;
                if (!jv_truthy(&t))
                    continue;
            }
            items->v[items->n++] = *cur;
        }
    }
    const struct jstr *keys[9];
    for (int k = 0; k < 9; k++)
        if (!(keys[k] = jstr_new(r, LOOP_KEYS[k], strlen(LOOP_KEYS[k]))))
            return r->e->code;
    const struct jstr *loopname = jstr_new(r, "loop", 4);
    if (!loopname)
        return r->e->code;
    bool none = true;
    size_t len = items->n;
    for (size_t i = 0; i < len; i++) {
        if ((rc = jr_step(r, 1)) != 0)
            return rc;
        struct jdict *loop = jdict_new(r, 9);
        if (!loop)
            return r->e->code;
        struct jv vals[9] = {
            jv_int((int64_t)i + 1), jv_int((int64_t)i), jv_int((int64_t)(len - i)), jv_int((int64_t)(len - i - 1)),
            jv_bool(i == 0), jv_bool(i == len - 1), jv_int((int64_t)len),
            i > 0 ? items->v[i - 1] : jv_undef(), i + 1 < len ? items->v[i + 1] : jv_undef(),
        };
        for (int k = 0; k < 9; k++)
            if ((rc = jdict_set(r, loop, keys[k], vals[k])) != 0)
                return rc;
        if ((rc = scope_set(r, scope, loopname, jv_dict(loop))) != 0 ||
            (rc = bind_loopvar(r, scope, n->a, &items->v[i])) != 0)
            return rc;
        size_t mark = out->len;
        rc = exec_block(r, n->items, n->nitems, scope, out);
        if (rc == JR_CONTINUE || rc == JR_BREAK) {
            /* the reference drops what the interrupted iteration had written */
            out->len = mark;
            if (out->p)
                out->p[mark] = '\0';
            if (rc == JR_BREAK)
                break;
            continue;
        }
        if (rc)
            return rc;
        none = false;
    }
    if (none)
        return exec_block(r, n->alt, n->nalt, scope, out);
    return 0;
}

static int exec_node(struct jrender *r, const struct jnode *n, struct jscope *s, struct jbuf *out)
{
    int rc;
    r->pos = n->pos;
    switch (n->kind) {
    case N_IF: {
        struct jv t;
        if ((rc = eval(r, n->a, s, &t)) != 0)
            return rc;
        return jv_truthy(&t) ? exec_block(r, n->items, n->nitems, s, out) : exec_block(r, n->alt, n->nalt, s, out);
    }
    case N_FOR: return exec_for(r, n, s, out);
    case N_SET: {
        struct jv v;
        if (n->b)
            rc = eval(r, n->b, s, &v);
        else
            rc = render_to_string(r, n->items, n->nitems, s, &v);
        if (rc)
            return rc;
        return assign(r, s, n->a, v);
    }
    case N_MACRO: {
        struct jfunc *f = ja_alloc(r->arena, sizeof *f);
        if (!f)
            return jr_nomem(r);
        f->kind = FN_MACRO;
        f->node = n;
        return scope_set(r, s, n->lit, (struct jv){.kind = JV_FUNC, .u.fn = f});
    }
    case N_CALLBLOCK: {
        struct jfunc *f = ja_alloc(r->arena, sizeof *f);
        if (!f)
            return jr_nomem(r);
        f->kind = FN_CALLER;
        f->node = n;
        f->scope = s;
        struct jargs args;
        struct jv fn, res;
        const struct jnode *call = n->a;
        if ((rc = eval_args(r, call->items, call->nitems, s, &args)) != 0)
            return rc;
        if (!args.kw && !(args.kw = jdict_new(r, 0)))
            return r->e->code;
        if ((rc = eval(r, call->a, s, &fn)) != 0)
            return rc;
        struct jscope *env = scope_new(r, s);
        if (!env)
            return r->e->code;
        if ((rc = jdict_setc(r, &env->vars, "caller", (struct jv){.kind = JV_FUNC, .u.fn = f})) != 0)
            return rc;
        r->pos = n->pos;
        if ((rc = jeval_call_value(r, env, &fn, &args, &res)) != 0)
            return rc;
        return emit(r, out, &res);
    }
    case N_FILTERBLOCK: {
        struct jv body, res;
        struct jargs args = {0};
        const struct jnode *f = n->a;
        if ((rc = render_to_string(r, n->items, n->nitems, s, &body)) != 0)
            return rc;
        if (f->op && (rc = eval_args(r, f->items, f->nitems, s, &args)) != 0)
            return rc;
        r->pos = f->pos;
        if ((rc = jf_filter(r, s, &body, f->str, f->len, f->op != 0, f, &args, &res)) != 0)
            return rc;
        return emit(r, out, &res);
    }
    case N_BREAK: return JR_BREAK;
    case N_CONTINUE: return JR_CONTINUE;
    default: {
        struct jv v;
        if ((rc = eval(r, n, s, &v)) != 0)
            return rc;
        return emit(r, out, &v);
    }
    }
}

static int exec_block(struct jrender *r, struct jnode *const *body, size_t n, struct jscope *s, struct jbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        int rc = exec_node(r, body[i], s, out);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- render */

int jinja_render(const struct jinja_template *t, const json_t *context, const struct jinja_limits *lim, char **out,
                 size_t *out_len, struct err *e)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (context && !json_is_object(context))
        return err_set(e, ERR_INVALID, "template context must be a JSON object");
    struct jarena arena = {0};
    struct jrender r = {.arena = &arena, .t = t, .e = e};
    struct err scratch = {0};
    if (!e)
        r.e = &scratch;
    r.max_steps = lim && lim->max_steps ? lim->max_steps : DEFAULT_MAX_STEPS;
    r.max_output = lim && lim->max_output ? lim->max_output : DEFAULT_MAX_OUTPUT;
    arena.limit = lim && lim->max_memory ? lim->max_memory : DEFAULT_MAX_MEMORY;
    r.max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
    r.now = lim && lim->now ? lim->now : (int64_t)time(NULL);

    struct jbuf buf = {0};
    int rc;
    struct jscope *global = scope_new(&r, NULL);
    if (!global) {
        rc = r.e->code;
        goto done;
    }
    if ((rc = jf_install_globals(&r, global)) != 0)
        goto done;
    if (context) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)context, key, val)
        {
            if (jdict_get(&global->vars, key, strlen(key))) {
                rc = err_set(r.e, ERR_INVALID, "template context: '%s' is already a built-in global of the template", key);
                goto done;
            }
            struct jv v;
            const struct jstr *k = jstr_new(&r, key, strlen(key));
            if (!k) {
                rc = r.e->code;
                goto done;
            }
            if ((rc = jv_from_json(&r, val, &v)) != 0 || (rc = scope_set(&r, global, k, v)) != 0)
                goto done;
        }
    }
    rc = exec_block(&r, t->body, t->nbody, global, &buf);
    if (rc > 0)
        rc = jr_fail(&r, ERR_INVALID, "'break' or 'continue' outside of a loop");
done:
    ja_release(&arena);
    if (rc != 0) {
        jbuf_free(&buf);
        return rc;
    }
    if (!buf.p && jbuf_put(&buf, "", 0) != 0)
        return err_set(r.e, ERR_NOMEM, "out of memory rendering the template");
    *out = buf.p;
    if (out_len)
        *out_len = buf.len;
    return 0;
}
