/* jinja_value.c — the runtime value model of the Jinja renderer (none, undefined, bool, int,
 * float, string, list, dict, namespace, function) and everything about values that must match the
 * reference byte for byte: how each prints, JavaScript's number formatting and == equality,
 * tojson, conversion from JSON (with JavaScript's object key order), and ordering for sort.
 * Also the arena and byte buffers the renderer allocates from, and UTF-8 helpers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja_internal.h"

/* ---------------------------------------------------------------- arena */

struct jchunk {
    struct jchunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *ja_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    struct jchunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 48 * 1024 ? n : 64 * 1024 - sizeof *c;
        if (a->limit && a->total + cap + sizeof *c > a->limit) {
            a->over = true;
            return NULL;
        }
        struct jchunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        a->total += sizeof *nc + cap;
        if (c && cap == n && c->cap - c->used >= 1024) {
            /* a big block goes behind the current chunk so its free space stays usable */
            nc->next = c->next;
            c->next = nc;
            nc->used = n;
            memset(nc->data, 0, n);
            return nc->data;
        }
        nc->next = c;
        a->head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void ja_release(struct jarena *a)
{
    struct jchunk *c = a->head;
    while (c) {
        struct jchunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

char *ja_strndup(struct jarena *a, const char *s, size_t n)
{
    char *p = ja_alloc(a, n + 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

/* ---------------------------------------------------------------- byte buffer */

int jbuf_put(struct jbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int jbuf_putc(struct jbuf *b, char c) { return jbuf_put(b, &c, 1); }

int jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof tmp)
        return jbuf_put(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = jbuf_put(b, big, (size_t)n);
    free(big);
    return rc;
}

void jbuf_free(struct jbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- UTF-8 */

uint32_t ju_decode(const char *s, size_t n, size_t *adv)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) {
        *adv = 0;
        return 0;
    }
    if (u[0] < 0x80) {
        *adv = 1;
        return u[0];
    }
    int len = u[0] >= 0xF0 && u[0] <= 0xF4 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC2 && u[0] <= 0xDF ? 2 : 0;
    if (len == 0 || (size_t)len > n || (len == 3 && u[0] > 0xEF)) {
        *adv = 1;
        return 0xFFFD;
    }
    uint32_t cp = u[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *adv = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        *adv = 1;
        return 0xFFFD;
    }
    *adv = (size_t)len;
    return cp;
}

size_t ju_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool ju_is_space(uint32_t cp)
{
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

size_t ju_utf16_len(const char *s, size_t n)
{
    size_t units = 0;
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t cp = ju_decode(s + i, n - i, &adv);
        units += cp >= 0x10000 ? 2 : 1;
        i += adv;
    }
    return units;
}

size_t ju_trim_start(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t adv;
        uint32_t cp = ju_decode(s + i, n - i, &adv);
        if (!ju_is_space(cp))
            break;
        i += adv;
    }
    return i;
}

size_t ju_trim_end(const char *s, size_t n)
{
    while (n > 0) {
        size_t start = n - 1;
        while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80 && n - start < 4)
            start--;
        size_t adv;
        uint32_t cp = ju_decode(s + start, n - start, &adv);
        if (start + adv != n) { /* not a whole character: treat the last byte alone */
            start = n - 1;
            cp = 0xFFFD;
        }
        if (!ju_is_space(cp))
            break;
        n = start;
    }
    return n;
}

/* ---------------------------------------------------------------- render errors and budget */

int jr_fail(struct jrender *r, int code, const char *fmt, ...)
{
    char where[64], msg[900];
    jpos_format(r->t->src, r->t->len, r->pos, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(r->e, code, "%s: %s", where, msg);
}

int jr_nomem(struct jrender *r)
{
    if (r->arena->over)
        return err_set(r->e, ERR_RANGE, "template render used more than max_memory (%zu bytes)", r->arena->limit);
    return err_set(r->e, ERR_NOMEM, "out of memory rendering the template");
}

int jr_step(struct jrender *r, uint64_t n)
{
    r->steps += n;
    if (r->steps > r->max_steps)
        return err_set(r->e, ERR_RANGE, "template render exceeded max_steps (%llu evaluation steps)",
                       (unsigned long long)r->max_steps);
    return 0;
}

int jr_check_len(struct jrender *r, size_t n)
{
    if (n > r->max_output)
        return err_set(r->e, ERR_RANGE, "template render exceeded max_output (%zu bytes)", r->max_output);
    return 0;
}

/* ---------------------------------------------------------------- constructors */

struct jv jv_undef(void) { return (struct jv){.kind = JV_UNDEF}; }
struct jv jv_none(void) { return (struct jv){.kind = JV_NONE}; }
struct jv jv_bool(bool b) { return (struct jv){.kind = JV_BOOL, .u.b = b}; }
struct jv jv_int(int64_t i) { return (struct jv){.kind = JV_INT, .u.i = i}; }
struct jv jv_float(double f) { return (struct jv){.kind = JV_FLOAT, .u.f = f}; }
struct jv jv_list(struct jlist *l) { return (struct jv){.kind = JV_LIST, .u.l = l}; }
struct jv jv_dict(struct jdict *d) { return (struct jv){.kind = JV_DICT, .u.d = d}; }

const struct jstr *jstr_new(struct jrender *r, const char *s, size_t n)
{
    if (jr_check_len(r, n) != 0)
        return NULL;
    struct jstr *x = ja_alloc(r->arena, sizeof *x + n + 1);
    if (!x) {
        jr_nomem(r);
        return NULL;
    }
    x->len = n;
    if (n)
        memcpy(x->s, s, n);
    return x;
}

int jv_str(struct jrender *r, const char *s, size_t n, struct jv *out)
{
    const struct jstr *x = jstr_new(r, s, n);
    if (!x)
        return r->e->code ? r->e->code : ERR_NOMEM;
    *out = (struct jv){.kind = JV_STR, .u.s = x};
    return 0;
}

struct jlist *jlist_new(struct jrender *r, size_t cap)
{
    struct jlist *l = ja_alloc(r->arena, sizeof *l);
    if (!l) {
        jr_nomem(r);
        return NULL;
    }
    if (cap) {
        l->v = ja_alloc(r->arena, cap * sizeof *l->v);
        if (!l->v) {
            jr_nomem(r);
            return NULL;
        }
        l->cap = cap;
    }
    return l;
}

int jlist_push(struct jrender *r, struct jlist *l, struct jv v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct jv *nv = ja_alloc(r->arena, cap * sizeof *nv);
        if (!nv)
            return jr_nomem(r);
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

struct jdict *jdict_new(struct jrender *r, size_t cap)
{
    struct jdict *d = ja_alloc(r->arena, sizeof *d);
    if (!d) {
        jr_nomem(r);
        return NULL;
    }
    (void)cap;
    return d;
}

struct jv *jdict_get(const struct jdict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i]->len == n && memcmp(d->k[i]->s, k, n) == 0)
            return &d->v[i];
    return NULL;
}

int jdict_set(struct jrender *r, struct jdict *d, const struct jstr *k, struct jv v)
{
    struct jv *slot = jdict_get(d, k->s, k->len);
    if (slot) {
        *slot = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        const struct jstr **nk = ja_alloc(r->arena, cap * sizeof *nk);
        struct jv *nv = ja_alloc(r->arena, cap * sizeof *nv);
        if (!nk || !nv)
            return jr_nomem(r);
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

int jdict_setc(struct jrender *r, struct jdict *d, const char *k, struct jv v)
{
    const struct jstr *s = jstr_new(r, k, strlen(k));
    if (!s)
        return r->e->code;
    return jdict_set(r, d, s, v);
}

/* ---------------------------------------------------------------- predicates */

const char *jv_type_name(const struct jv *v)
{
    switch (v->kind) {
    case JV_UNDEF: return "UndefinedValue";
    case JV_NONE: return "NullValue";
    case JV_BOOL: return "BooleanValue";
    case JV_INT: return "IntegerValue";
    case JV_FLOAT: return "FloatValue";
    case JV_STR: return "StringValue";
    case JV_LIST: return v->u.l->tuple ? "TupleValue" : "ArrayValue";
    case JV_DICT: return "ObjectValue";
    case JV_NS: return "NamespaceValue";
    case JV_FUNC: return "FunctionValue";
    }
    return "Value";
}

bool jv_truthy(const struct jv *v)
{
    switch (v->kind) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v->u.b;
    case JV_INT: return v->u.i != 0;
    case JV_FLOAT: return v->u.f != 0 && !isnan(v->u.f);
    case JV_STR: return v->u.s->len > 0;
    case JV_LIST: return v->u.l->n > 0;
    case JV_DICT: return v->u.d->n > 0;
    case JV_NS:   /* the reference never overrides a namespace's truth: always true */
    case JV_FUNC: return true;
    }
    return false;
}

bool jv_is_num(const struct jv *v) { return v->kind == JV_INT || v->kind == JV_FLOAT; }
double jv_num(const struct jv *v) { return v->kind == JV_INT ? (double)v->u.i : v->kind == JV_FLOAT ? v->u.f : v->kind == JV_BOOL ? (double)v->u.b : NAN; }

/* JavaScript's ToNumber on a string: whitespace-trimmed decimal, hex/octal/binary, Infinity. */
static double js_to_number(const char *s, size_t n)
{
    size_t a = ju_trim_start(s, n);
    size_t b = ju_trim_end(s, n);
    if (b <= a)
        return 0;
    s += a;
    n = b - a;
    char buf[128];
    if (n >= sizeof buf)
        return NAN;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (n > 2 && buf[0] == '0' && strchr("xXoObB", buf[1])) {
        int base = buf[1] == 'x' || buf[1] == 'X' ? 16 : buf[1] == 'o' || buf[1] == 'O' ? 8 : 2;
        double v = 0;
        for (size_t i = 2; i < n; i++) {
            int d = buf[i] >= '0' && buf[i] <= '9' ? buf[i] - '0'
                    : buf[i] >= 'a' && buf[i] <= 'f' ? buf[i] - 'a' + 10
                    : buf[i] >= 'A' && buf[i] <= 'F' ? buf[i] - 'A' + 10 : 99;
            if (d >= base)
                return NAN;
            v = v * base + d;
        }
        return v;
    }
    const char *p = buf;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (strcmp(p, "Infinity") == 0)
        return neg ? -INFINITY : INFINITY;
    /* digits [. digits] [e[+-]digits], at least one digit in the mantissa */
    const char *q = p;
    size_t digits = 0;
    while (*q >= '0' && *q <= '9')
        q++, digits++;
    if (*q == '.') {
        q++;
        while (*q >= '0' && *q <= '9')
            q++, digits++;
    }
    if (digits == 0)
        return NAN;
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-')
            q++;
        if (!(*q >= '0' && *q <= '9'))
            return NAN;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    if (*q)
        return NAN;
    return strtod(buf, NULL);
}

/* which JavaScript type a value's .value has */
enum jstype { JS_UNDEF, JS_NULL, JS_BOOL, JS_NUM, JS_STR, JS_OBJ };
static enum jstype js_type(const struct jv *v)
{
    switch (v->kind) {
    case JV_UNDEF: return JS_UNDEF;
    case JV_NONE: return JS_NULL;
    case JV_BOOL: return JS_BOOL;
    case JV_INT:
    case JV_FLOAT: return JS_NUM;
    case JV_STR: return JS_STR;
    default: return JS_OBJ;
    }
}

static bool same_object(const struct jv *a, const struct jv *b)
{
    if (a->kind != b->kind && !((a->kind == JV_DICT || a->kind == JV_NS) && (b->kind == JV_DICT || b->kind == JV_NS)))
        return false;
    switch (a->kind) {
    case JV_LIST: return a->u.l == b->u.l;
    case JV_DICT:
    case JV_NS: return a->u.d == b->u.d;
    case JV_FUNC: return a->u.fn == b->u.fn;
    default: return false;
    }
}

bool jv_strict_eq(const struct jv *a, const struct jv *b)
{
    enum jstype ta = js_type(a), tb = js_type(b);
    if (ta != tb)
        return false;
    switch (ta) {
    case JS_UNDEF:
    case JS_NULL: return true;
    case JS_BOOL: return a->u.b == b->u.b;
    case JS_NUM: return jv_num(a) == jv_num(b);
    case JS_STR: return a->u.s->len == b->u.s->len && memcmp(a->u.s->s, b->u.s->s, a->u.s->len) == 0;
    case JS_OBJ: return same_object(a, b);
    }
    return false;
}

/* ToPrimitive of an object operand, as a string value in the arena (scratch: no budget). */
static bool object_primitive(const struct jv *v, struct jbuf *b);

static bool loose_eq_num_str(double d, const struct jv *s)
{
    return d == js_to_number(s->u.s->s, s->u.s->len);
}

bool jv_loose_eq(const struct jv *a, const struct jv *b)
{
    enum jstype ta = js_type(a), tb = js_type(b);
    if (ta == tb)
        return jv_strict_eq(a, b);
    bool na = ta == JS_UNDEF || ta == JS_NULL, nb = tb == JS_UNDEF || tb == JS_NULL;
    if (na || nb)
        return na && nb;
    if (ta == JS_BOOL) {
        struct jv x = jv_float(a->u.b ? 1 : 0);
        return jv_loose_eq(&x, b);
    }
    if (tb == JS_BOOL) {
        struct jv x = jv_float(b->u.b ? 1 : 0);
        return jv_loose_eq(a, &x);
    }
    if (ta == JS_NUM && tb == JS_STR)
        return loose_eq_num_str(jv_num(a), b);
    if (ta == JS_STR && tb == JS_NUM)
        return loose_eq_num_str(jv_num(b), a);
    /* an object against a number or string: compare its string form */
    const struct jv *obj = ta == JS_OBJ ? a : b, *prim = ta == JS_OBJ ? b : a;
    struct jbuf buf = {0};
    if (!object_primitive(obj, &buf)) {
        jbuf_free(&buf);
        return false;
    }
    bool eq;
    if (js_type(prim) == JS_STR)
        eq = buf.len == prim->u.s->len && memcmp(buf.p ? buf.p : "", prim->u.s->s, buf.len) == 0;
    else
        eq = js_to_number(buf.p ? buf.p : "", buf.len) == jv_num(prim);
    jbuf_free(&buf);
    return eq;
}

/* ---------------------------------------------------------------- number formatting */

void js_number(double d, char buf[40])
{
    if (isnan(d)) {
        strcpy(buf, "NaN");
        return;
    }
    if (isinf(d)) {
        strcpy(buf, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (d == 0) {
        strcpy(buf, "0");
        return;
    }
    char tmp[40];
    bool neg = d < 0;
    double x = fabs(d);
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    /* tmp is d[.ddd]e[+-]XX: split into digits and exponent */
    char digits[24];
    int k = 0;
    const char *q = tmp;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[k++] = *q;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    int e = atoi(q + 1);
    int n = e + 1; /* position of the decimal point */
    char *o = buf;
    if (neg)
        *o++ = '-';
    if (k <= n && n <= 21) {
        memcpy(o, digits, (size_t)k);
        o += k;
        for (int i = 0; i < n - k; i++)
            *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, digits, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -n; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)k);
        o += k;
    } else {
        *o++ = digits[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    *o = '\0';
}

/* FloatValue.toString: integral values keep one decimal ("3.0"), -0 prints "-0.0". */
static void float_repr(double f, char buf[64])
{
    if (f == 0 && signbit(f)) {
        strcpy(buf, "-0.0");
    } else if (isfinite(f) && floor(f) == f && fabs(f) < 1e21) {
        snprintf(buf, 64, "%.1f", f);
    } else {
        js_number(f, buf);
    }
}

/* ---------------------------------------------------------------- text forms */

static int put(struct jrender *r, struct jbuf *b, const char *s, size_t n)
{
    if (r && jr_check_len(r, b->len + n) != 0)
        return r->e->code;
    if (jbuf_put(b, s, n) != 0)
        return r ? jr_nomem(r) : ERR_NOMEM;
    return 0;
}
static int puts_(struct jrender *r, struct jbuf *b, const char *s) { return put(r, b, s, strlen(s)); }

static int write_depth(struct jrender *r, struct jbuf *b, const struct jv *v, bool raw, int depth);

static int write_json(struct jrender *r, struct jbuf *b, const struct jv *v, const struct jjson_opts *o, int depth);

static int write_depth(struct jrender *r, struct jbuf *b, const struct jv *v, bool raw, int depth)
{
    char num[64];
    if (depth > 500)
        return r ? jr_fail(r, ERR_INVALID, "value nested too deeply to print") : ERR_INVALID;
    switch (v->kind) {
    case JV_UNDEF: return puts_(r, b, "undefined");
    case JV_NONE: return puts_(r, b, "null");
    case JV_BOOL: return puts_(r, b, v->u.b ? "true" : "false");
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v->u.i); return puts_(r, b, num);
    case JV_FLOAT:
        if (raw)
            js_number(v->u.f, num);
        else
            float_repr(v->u.f, num);
        return puts_(r, b, num);
    case JV_STR: return put(r, b, v->u.s->s, v->u.s->len);
    case JV_LIST:
        if (raw) { /* Array.prototype.toString: elements' own toString, comma-joined */
            for (size_t i = 0; i < v->u.l->n; i++) {
                int rc;
                if (i && (rc = puts_(r, b, ",")) != 0)
                    return rc;
                if ((rc = write_depth(r, b, &v->u.l->v[i], false, depth + 1)) != 0)
                    return rc;
            }
            return 0;
        }
        /* fallthrough */
    case JV_NS:
    case JV_DICT:
        if (raw)
            return puts_(r, b, "[object Map]");
        {
            struct jjson_opts o = {0};
            return write_json(r, b, v, &o, depth);
        }
    case JV_FUNC: return puts_(r, b, "[function]");
    }
    return 0;
}

int jv_write(struct jrender *r, struct jbuf *b, const struct jv *v) { return write_depth(r, b, v, false, 0); }
int jv_write_raw(struct jrender *r, struct jbuf *b, const struct jv *v) { return write_depth(r, b, v, true, 0); }

static bool object_primitive(const struct jv *v, struct jbuf *b)
{
    return write_depth(NULL, b, v, true, 0) == 0;
}

/* ---------------------------------------------------------------- JSON */

static int json_str_out(struct jrender *r, struct jbuf *b, const char *s, size_t n, bool ascii)
{
    int rc;
    if ((rc = put(r, b, "\"", 1)) != 0)
        return rc;
    size_t run = 0; /* bytes copied verbatim are batched */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[16];
        size_t adv = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            esc = tmp;
        } else if (ascii && c >= 0x7F) {
            uint32_t cp = ju_decode(s + i, n - i, &adv);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            }
            esc = tmp;
        }
        if (esc) {
            if (run && (rc = put(r, b, s + i - run, run)) != 0)
                return rc;
            run = 0;
            if ((rc = puts_(r, b, esc)) != 0)
                return rc;
            i += adv;
        } else {
            run++;
            i++;
        }
    }
    if (run && (rc = put(r, b, s + n - run, run)) != 0)
        return rc;
    return put(r, b, "\"", 1);
}

/* An approximation of ICU's root collation (what localeCompare uses) for sort_keys: punctuation
 * before digits before letters, letters case-insensitively with lowercase first on ties. */
static int coll_class(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 3;
    if (c >= '0' && c <= '9')
        return 2;
    if (c >= 0x80)
        return 4;
    return 1;
}

static int locale_compare(const struct jstr *a, const struct jstr *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a->s[i], y = (unsigned char)b->s[i];
        int cx = coll_class(x), cy = coll_class(y);
        if (cx != cy)
            return cx < cy ? -1 : 1;
        unsigned char lx = (x >= 'A' && x <= 'Z') ? (unsigned char)(x + 32) : x;
        unsigned char ly = (y >= 'A' && y <= 'Z') ? (unsigned char)(y + 32) : y;
        if (lx != ly)
            return lx < ly ? -1 : 1;
    }
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a->s[i], y = (unsigned char)b->s[i];
        if (x != y) /* lowercase sorts first */
            return x > y ? -1 : 1;
    }
    return 0;
}

static int write_json(struct jrender *r, struct jbuf *b, const struct jv *v, const struct jjson_opts *o, int depth)
{
    int rc;
    char num[64];
    if (depth > 500)
        return r ? jr_fail(r, ERR_INVALID, "value nested too deeply for tojson") : ERR_INVALID;
    switch (v->kind) {
    case JV_NONE: return puts_(r, b, "null");
    case JV_UNDEF: return puts_(r, b, o->undef_is_null ? "null" : "undefined");
    case JV_BOOL: return puts_(r, b, v->u.b ? "true" : "false");
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v->u.i); return puts_(r, b, num);
    case JV_FLOAT:
        if (!isfinite(v->u.f))
            return puts_(r, b, "null");
        js_number(v->u.f, num);
        return puts_(r, b, num);
    case JV_STR: return json_str_out(r, b, v->u.s->s, v->u.s->len, o->ensure_ascii);
    case JV_FUNC: return r ? jr_fail(r, ERR_INVALID, "cannot convert a function to JSON") : ERR_INVALID;
    case JV_LIST:
        if (v->u.l->tuple) /* the reference cannot serialize its TupleValue either */
            return r ? jr_fail(r, ERR_INVALID, "cannot convert a tuple to JSON") : ERR_INVALID;
        break;
    case JV_DICT:
    case JV_NS: break;
    }
    const char *item_sep = o->item_sep ? o->item_sep : o->indent ? "," : ", ";
    const char *key_sep = o->key_sep ? o->key_sep : ": ";
    bool is_list = v->kind == JV_LIST;
    size_t n = is_list ? v->u.l->n : v->u.d->n;
    if ((rc = puts_(r, b, is_list ? "[" : "{")) != 0)
        return rc;
    size_t *order = NULL;
    if (!is_list && o->sort_keys && n > 1) {
        order = malloc(n * sizeof *order);
        if (!order)
            return r ? jr_nomem(r) : ERR_NOMEM;
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        for (size_t i = 1; i < n; i++) { /* insertion sort: stable, and objects are small */
            size_t x = order[i], j = i;
            while (j > 0 && locale_compare(v->u.d->k[order[j - 1]], v->u.d->k[x]) > 0) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = x;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i && (rc = puts_(r, b, item_sep)) != 0)
            break;
        if (o->indent) {
            if ((rc = puts_(r, b, "\n")) != 0)
                break;
            for (int d = 0; d < (depth + 1) * o->indent && rc == 0; d++)
                rc = puts_(r, b, " ");
            if (rc)
                break;
        }
        if (is_list) {
            rc = write_json(r, b, &v->u.l->v[i], o, depth + 1);
        } else {
            size_t k = order ? order[i] : i;
            if ((rc = json_str_out(r, b, v->u.d->k[k]->s, v->u.d->k[k]->len, o->ensure_ascii)) != 0 ||
                (rc = puts_(r, b, key_sep)) != 0)
                break;
            rc = write_json(r, b, &v->u.d->v[k], o, depth + 1);
        }
    }
    free(order);
    if (rc)
        return rc;
    if (o->indent && n > 0) {
        if ((rc = puts_(r, b, "\n")) != 0)
            return rc;
        for (int d = 0; d < depth * o->indent; d++)
            if ((rc = puts_(r, b, " ")) != 0)
                return rc;
    }
    return puts_(r, b, is_list ? "]" : "}");
}

int jv_tojson(struct jrender *r, struct jbuf *b, const struct jv *v, const struct jjson_opts *o)
{
    return write_json(r, b, v, o, 0);
}

/* JavaScript orders an object's "array index" keys ("0", "17"; below 2^32 - 1) first, ascending. */
static bool array_index_key(const char *k, uint64_t *idx)
{
    size_t n = strlen(k);
    if (n == 0 || n > 10 || (n > 1 && k[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    if (v >= 4294967295u)
        return false;
    *idx = v;
    return true;
}

static int from_json_depth(struct jrender *r, const json_t *j, struct jv *out, int depth)
{
    if (depth > 500)
        return jr_fail(r, ERR_INVALID, "context JSON nested too deeply");
    int rc;
    switch (json_typeof(j)) {
    case JSON_NULL: *out = jv_none(); return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_INTEGER: *out = jv_int(json_integer_value(j)); return 0;
    case JSON_REAL: {
        double d = json_real_value(j);
        /* JavaScript has one number type: 2.0 is the integer 2 there */
        if (floor(d) == d && fabs(d) < 9.2e18)
            *out = jv_int((int64_t)d);
        else
            *out = jv_float(d);
        return 0;
    }
    case JSON_STRING: return jv_str(r, json_string_value(j), json_string_length(j), out);
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        struct jlist *l = jlist_new(r, n);
        if (!l)
            return r->e->code;
        for (size_t i = 0; i < n; i++) {
            struct jv x;
            if ((rc = from_json_depth(r, json_array_get(j, i), &x, depth + 1)) != 0)
                return rc;
            l->v[l->n++] = x;
        }
        *out = jv_list(l);
        return 0;
    }
    case JSON_OBJECT: {
        struct jdict *d = jdict_new(r, json_object_size(j));
        if (!d)
            return r->e->code;
        const char *key;
        json_t *val;
        /* first the array-index keys in numeric order, then the rest in insertion order */
        size_t nidx = 0;
        json_object_foreach((json_t *)j, key, val)
        {
            uint64_t idx;
            if (array_index_key(key, &idx))
                nidx++;
        }
        if (nidx) {
            uint64_t last = 0;
            bool first = true;
            for (size_t done = 0; done < nidx; done++) {
                uint64_t best = UINT64_MAX;
                const char *bk = NULL;
                json_object_foreach((json_t *)j, key, val)
                {
                    uint64_t idx;
                    if (array_index_key(key, &idx) && (first || idx > last) && idx < best) {
                        best = idx;
                        bk = key;
                    }
                }
                first = false;
                last = best;
                struct jv x;
                if ((rc = from_json_depth(r, json_object_get(j, bk), &x, depth + 1)) != 0 ||
                    (rc = jdict_setc(r, d, bk, x)) != 0)
                    return rc;
            }
        }
        json_object_foreach((json_t *)j, key, val)
        {
            uint64_t idx;
            if (nidx && array_index_key(key, &idx))
                continue;
            struct jv x;
            const struct jstr *k = jstr_new(r, key, strlen(key));
            if (!k)
                return r->e->code;
            if ((rc = from_json_depth(r, val, &x, depth + 1)) != 0 || (rc = jdict_set(r, d, k, x)) != 0)
                return rc;
        }
        *out = jv_dict(d);
        return 0;
    }
    }
    *out = jv_undef();
    return 0;
}

int jv_from_json(struct jrender *r, const json_t *j, struct jv *out) { return from_json_depth(r, j, out, 0); }

/* ---------------------------------------------------------------- ordering */

static int ascii_lower_cmp(const struct jstr *a, const struct jstr *b, bool cs)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a->s[i], y = (unsigned char)b->s[i];
        if (!cs) {
            if (x >= 'A' && x <= 'Z')
                x += 32;
            if (y >= 'A' && y <= 'Z')
                y += 32;
        }
        if (x != y)
            return x < y ? -1 : 1;
    }
    return a->len == b->len ? 0 : a->len < b->len ? -1 : 1;
}

int jv_compare(struct jrender *r, const struct jv *a, const struct jv *b, bool cs, int *cmp)
{
    if (a->kind == JV_NONE && b->kind == JV_NONE) {
        *cmp = 0;
        return 0;
    }
    if (a->kind == JV_NONE || b->kind == JV_NONE || a->kind == JV_UNDEF || b->kind == JV_UNDEF) {
        if (a->kind == JV_UNDEF && b->kind == JV_UNDEF) {
            *cmp = 0;
            return 0;
        }
        return jr_fail(r, ERR_INVALID, "cannot compare %s with %s", jv_type_name(a), jv_type_name(b));
    }
    bool numa = jv_is_num(a) || a->kind == JV_BOOL, numb = jv_is_num(b) || b->kind == JV_BOOL;
    if (numa && numb) {
        double x = jv_num(a), y = jv_num(b);
        *cmp = x < y ? -1 : x > y ? 1 : 0;
        return 0;
    }
    if (a->kind != b->kind)
        return jr_fail(r, ERR_INVALID, "cannot compare different types: %s and %s", jv_type_name(a), jv_type_name(b));
    if (a->kind == JV_STR) {
        *cmp = ascii_lower_cmp(a->u.s, b->u.s, cs);
        return 0;
    }
    return jr_fail(r, ERR_INVALID, "cannot compare values of type %s", jv_type_name(a));
}

int jv_sort(struct jrender *r, struct jv *items, const struct jv *keys, size_t n, bool cs, bool reverse)
{
    if (n < 2)
        return 0;
    size_t *idx = malloc(2 * n * sizeof *idx);
    struct jv *tmp = malloc(n * sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        return jr_nomem(r);
    }
    size_t *aux = idx + n;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    int rc = 0;
    /* bottom-up merge sort on indices: stable, like V8's TimSort */
    for (size_t w = 1; w < n && rc == 0; w *= 2) {
        for (size_t lo = 0; lo < n && rc == 0; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if ((rc = jv_compare(r, &keys[idx[i]], &keys[idx[j]], cs, &c)) != 0)
                    break;
                if (reverse)
                    c = -c;
                aux[k++] = c <= 0 ? idx[i++] : idx[j++];
            }
            if (rc)
                break;
            while (i < mid)
                aux[k++] = idx[i++];
            while (j < hi)
                aux[k++] = idx[j++];
            memcpy(idx + lo, aux + lo, (hi - lo) * sizeof *idx);
        }
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            tmp[i] = items[idx[i]];
        memcpy(items, tmp, n * sizeof *tmp);
    }
    free(idx);
    free(tmp);
    return rc;
}
