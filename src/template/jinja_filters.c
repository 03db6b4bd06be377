/* jinja_filters.c — the library a template can call: global functions (namespace, range,
 * raise_exception, strftime_now), methods of strings and dicts, filters and tests. Each follows
 * the reference renderer's behaviour where it has one (including which argument types it
 * rejects); filters and tests it lacks but Python's Jinja has (reject, select, map by filter
 * name, round, wordcount, count, sum, divisibleby, ...) follow Python's Jinja. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template/jinja_internal.h"

enum builtin {
    BI_NAMESPACE, BI_RAISE, BI_RANGE, BI_STRFTIME,
    BI_S_UPPER, BI_S_LOWER, BI_S_STRIP, BI_S_TITLE, BI_S_CAPITALIZE, BI_S_RSTRIP, BI_S_LSTRIP,
    BI_S_STARTSWITH, BI_S_ENDSWITH, BI_S_SPLIT, BI_S_REPLACE, BI_S_FORMAT, BI_S_JOIN,
    BI_D_GET, BI_D_ITEMS, BI_D_KEYS, BI_D_VALUES, BI_D_DICTSORT,
};

static const struct {
    const char *name;
    int id;
} STR_METHODS[] = {
    {"upper", BI_S_UPPER}, {"lower", BI_S_LOWER}, {"strip", BI_S_STRIP}, {"title", BI_S_TITLE},
    {"capitalize", BI_S_CAPITALIZE}, {"rstrip", BI_S_RSTRIP}, {"lstrip", BI_S_LSTRIP},
    {"startswith", BI_S_STARTSWITH}, {"endswith", BI_S_ENDSWITH}, {"split", BI_S_SPLIT},
    {"replace", BI_S_REPLACE}, {"format", BI_S_FORMAT}, {"join", BI_S_JOIN},
}, DICT_METHODS[] = {
    {"get", BI_D_GET}, {"items", BI_D_ITEMS}, {"keys", BI_D_KEYS}, {"values", BI_D_VALUES},
    {"dictsort", BI_D_DICTSORT},
};

static bool eqs(const char *s, size_t n, const char *lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

static struct jv make_fn(struct jrender *r, int id, const struct jv *self)
{
    struct jfunc *f = ja_alloc(r->arena, sizeof *f);
    if (!f) {
        jr_nomem(r);
        return jv_undef();
    }
    f->kind = FN_BUILTIN;
    f->id = id;
    if (self)
        f->self = *self;
    return (struct jv){.kind = JV_FUNC, .u.fn = f};
}

int jf_install_globals(struct jrender *r, struct jscope *g)
{
    struct {
        const char *name;
        struct jv v;
    } vals[] = {
        {"false", jv_bool(false)}, {"true", jv_bool(true)}, {"none", jv_none()},
        {"True", jv_bool(true)}, {"False", jv_bool(false)}, {"None", jv_none()},
    };
    int rc;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if ((rc = jdict_setc(r, &g->vars, vals[i].name, vals[i].v)) != 0)
            return rc;
    const struct {
        const char *name;
        int id;
    } fns[] = {{"namespace", BI_NAMESPACE}, {"raise_exception", BI_RAISE}, {"range", BI_RANGE}, {"strftime_now", BI_STRFTIME}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        struct jv f = make_fn(r, fns[i].id, NULL);
        if (f.kind != JV_FUNC)
            return r->e->code;
        if ((rc = jdict_setc(r, &g->vars, fns[i].name, f)) != 0)
            return rc;
    }
    return 0;
}

int jf_member(struct jrender *r, const struct jv *obj, const char *name, size_t n, struct jv *out)
{
    *out = jv_undef();
    if (obj->kind == JV_STR) {
        if (eqs(name, n, "length")) {
            *out = jv_int((int64_t)ju_utf16_len(obj->u.s->s, obj->u.s->len));
            return 0;
        }
        for (size_t i = 0; i < sizeof STR_METHODS / sizeof STR_METHODS[0]; i++)
            if (eqs(name, n, STR_METHODS[i].name)) {
                *out = make_fn(r, STR_METHODS[i].id, obj);
                return out->kind == JV_FUNC ? 0 : r->e->code;
            }
    } else if (obj->kind == JV_DICT) {
        for (size_t i = 0; i < sizeof DICT_METHODS / sizeof DICT_METHODS[0]; i++)
            if (eqs(name, n, DICT_METHODS[i].name)) {
                *out = make_fn(r, DICT_METHODS[i].id, obj);
                return out->kind == JV_FUNC ? 0 : r->e->code;
            }
    } else if (obj->kind == JV_LIST && eqs(name, n, "length")) {
        *out = jv_int((int64_t)obj->u.l->n);
    }
    return 0;
}

/* ---------------------------------------------------------------- small helpers */

static int str_out(struct jrender *r, struct jbuf *b, struct jv *out)
{
    int rc = jv_str(r, b->p ? b->p : "", b->len, out);
    jbuf_free(b);
    return rc;
}

static int bput(struct jrender *r, struct jbuf *b, const char *s, size_t n)
{
    if (jr_check_len(r, b->len + n) != 0)
        return r->e->code;
    return jbuf_put(b, s, n) == 0 ? 0 : jr_nomem(r);
}

/* positional argument i, else keyword `name`, else NULL */
static const struct jv *arg(const struct jargs *a, size_t i, const char *name)
{
    if (a && i < a->npos)
        return &a->pos[i];
    if (a && a->kw && name)
        return jdict_get(a->kw, name, strlen(name));
    return NULL;
}

static struct jv *kwarg(const struct jargs *a, const char *name)
{
    return a && a->kw ? jdict_get(a->kw, name, strlen(name)) : NULL;
}

static int new_list_of(struct jrender *r, size_t cap, struct jlist **l)
{
    *l = jlist_new(r, cap);
    return *l ? 0 : r->e->code;
}

/* Simple case mapping for Latin-1, Latin Extended-A, Greek and Cyrillic (what chat text needs);
 * other scripts pass through unchanged. */
static uint32_t map_case(uint32_t c, bool upper)
{
    if (c < 0x80)
        return upper ? (c >= 'a' && c <= 'z' ? c - 32 : c) : (c >= 'A' && c <= 'Z' ? c + 32 : c);
    if (upper) {
        if ((c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) || (c >= 0x430 && c <= 0x44F))
            return c - 32;
        if (c == 0x3C2)
            return 0x3A3;
        if (c == 0xFF)
            return 0x178;
        if (c == 0xB5)
            return 0x39C;
        if (c == 0x131)
            return 'I';
        if (c == 0x3AC)
            return 0x386;
        if (c >= 0x3AD && c <= 0x3AF)
            return c - 37;
        if (c == 0x3CC)
            return 0x38C;
        if (c == 0x3CD || c == 0x3CE)
            return c - 63;
        if (c >= 0x450 && c <= 0x45F)
            return c - 80;
        if (c >= 0x100 && c <= 0x17F && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F)
            return ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) ? (c % 2 == 0 ? c - 1 : c) : (c % 2 ? c - 1 : c);
    } else {
        if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
            return c + 32;
        if (c >= 0x400 && c <= 0x40F)
            return c + 80;
        if (c == 0x178)
            return 0xFF;
        if (c == 0x386)
            return 0x3AC;
        if (c >= 0x388 && c <= 0x38A)
            return c + 37;
        if (c == 0x38C)
            return 0x3CC;
        if (c == 0x38E || c == 0x38F)
            return c + 63;
        if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x138 && c != 0x149 && c != 0x17F)
            return ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) ? (c % 2 ? c + 1 : c) : (c % 2 == 0 ? c + 1 : c);
    }
    return c;
}

static int ascii_case(struct jrender *r, const struct jstr *s, bool upper, struct jv *out)
{
    struct jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < s->len && rc == 0;) {
        size_t adv;
        uint32_t c = ju_decode(s->s + i, s->len - i, &adv);
        char enc[8];
        size_t n;
        if (c == 0xFFFD && adv == 1) { /* keep invalid bytes as they are */
            enc[0] = s->s[i];
            n = 1;
        } else if (upper && c == 0xDF) { /* German sharp s uppercases to two letters */
            memcpy(enc, "SS", 2);
            n = 2;
        } else {
            n = ju_encode(map_case(c, upper), enc);
        }
        rc = bput(r, &b, enc, n);
        i += adv;
    }
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    return str_out(r, &b, out);
}

static bool word_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* JavaScript's s.replace(/\b\w/g, upper): an ASCII word character after a non-word one. */
static int title_case(struct jrender *r, const struct jstr *s, struct jv *out)
{
    struct jbuf b = {0};
    int rc = bput(r, &b, s->s, s->len);
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    for (size_t i = 0; i < b.len; i++)
        if (word_byte(s->s[i]) && (i == 0 || !word_byte(s->s[i - 1])) && b.p[i] >= 'a' && b.p[i] <= 'z')
            b.p[i] = (char)(b.p[i] - 32);
    return str_out(r, &b, out);
}

static int sub_str(struct jrender *r, const char *s, size_t n, struct jv *out) { return jv_str(r, s, n, out); }

static bool starts_with(const struct jstr *s, const struct jstr *p)
{
    return p->len <= s->len && memcmp(s->s, p->s, p->len) == 0;
}
static bool ends_with(const struct jstr *s, const struct jstr *p)
{
    return p->len <= s->len && memcmp(s->s + s->len - p->len, p->s, p->len) == 0;
}

static const char *find(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, nd, nn) == 0)
            return h + i;
    return NULL;
}

/* Python's str.split as the reference implements it. */
static int str_split(struct jrender *r, const struct jstr *s, const struct jargs *a, struct jv *out)
{
    const struct jv *sep = arg(a, 0, "sep");
    const struct jv *maxv = arg(a, 1, "maxsplit");
    if (sep && sep->kind != JV_STR && sep->kind != JV_NONE)
        return jr_fail(r, ERR_INVALID, "split(): sep argument must be a string or none");
    if (maxv && maxv->kind != JV_INT)
        return jr_fail(r, ERR_INVALID, "split(): maxsplit argument must be an integer");
    int64_t maxsplit = maxv ? maxv->u.i : -1;
    struct jlist *l;
    int rc = new_list_of(r, 4, &l);
    if (rc)
        return rc;
    struct jv piece;
    if (!sep || sep->kind == JV_NONE) {
        size_t start = ju_trim_start(s->s, s->len);
        const char *t = s->s + start;
        size_t n = s->len - start;
        size_t i = 0;
        while (i < n) {
            size_t ws = ju_trim_start(t + i, n - i);
            i += ws;
            if (i >= n)
                break;
            size_t j = i;
            while (j < n) {
                size_t adv;
                uint32_t cp = ju_decode(t + j, n - j, &adv);
                if (ju_is_space(cp))
                    break;
                j += adv;
            }
            if (maxsplit != -1 && (int64_t)l->n >= maxsplit) {
                if ((rc = sub_str(r, t + i, n - i, &piece)) != 0 || (rc = jlist_push(r, l, piece)) != 0)
                    return rc;
                break;
            }
            if ((rc = sub_str(r, t + i, j - i, &piece)) != 0 || (rc = jlist_push(r, l, piece)) != 0)
                return rc;
            i = j;
        }
    } else {
        const struct jstr *p = sep->u.s;
        if (p->len == 0)
            return jr_fail(r, ERR_INVALID, "split(): empty separator");
        size_t i = 0;
        for (;;) {
            if ((rc = jr_step(r, 1)) != 0)
                return rc;
            const char *hit = (maxsplit == -1 || (int64_t)l->n < maxsplit) ? find(s->s + i, s->len - i, p->s, p->len) : NULL;
            if (!hit) {
                if ((rc = sub_str(r, s->s + i, s->len - i, &piece)) != 0 || (rc = jlist_push(r, l, piece)) != 0)
                    return rc;
                break;
            }
            size_t at = (size_t)(hit - s->s);
            if ((rc = sub_str(r, s->s + i, at - i, &piece)) != 0 || (rc = jlist_push(r, l, piece)) != 0)
                return rc;
            i = at + p->len;
        }
    }
    *out = jv_list(l);
    return 0;
}

static int str_replace(struct jrender *r, const struct jstr *s, const struct jv *oldv, const struct jv *newv,
                       const struct jv *countv, struct jv *out)
{
    if (!oldv || !newv)
        return jr_fail(r, ERR_INVALID, "replace() requires at least two arguments");
    if (oldv->kind != JV_STR || newv->kind != JV_STR)
        return jr_fail(r, ERR_INVALID, "replace() arguments must be strings");
    if (countv && countv->kind != JV_INT && countv->kind != JV_NONE)
        return jr_fail(r, ERR_INVALID, "replace() count argument must be a number or none");
    int64_t count = countv && countv->kind == JV_INT && countv->u.i >= 0 ? countv->u.i : -1;
    const struct jstr *o = oldv->u.s, *nw = newv->u.s;
    struct jbuf b = {0};
    int rc = 0;
    size_t i = 0;
    if (o->len == 0) { /* insert at every code point boundary */
        for (;;) {
            if (count != 0) {
                if ((rc = bput(r, &b, nw->s, nw->len)) != 0)
                    break;
                if (count > 0)
                    count--;
            }
            if (i >= s->len)
                break;
            size_t adv;
            ju_decode(s->s + i, s->len - i, &adv);
            if ((rc = bput(r, &b, s->s + i, adv)) != 0)
                break;
            i += adv;
        }
    } else {
        while (rc == 0) {
            const char *hit = count != 0 ? find(s->s + i, s->len - i, o->s, o->len) : NULL;
            if (!hit) {
                rc = bput(r, &b, s->s + i, s->len - i);
                break;
            }
            size_t at = (size_t)(hit - s->s);
            if ((rc = bput(r, &b, s->s + i, at - i)) != 0 || (rc = bput(r, &b, nw->s, nw->len)) != 0)
                break;
            i = at + o->len;
            if (count > 0)
                count--;
        }
    }
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    return str_out(r, &b, out);
}

/* Python's str.format with {}, {0} and {name} fields (no format specs). */
static int str_format(struct jrender *r, const struct jstr *s, const struct jargs *a, struct jv *out)
{
    struct jbuf b = {0};
    size_t next = 0;
    int rc = 0;
    for (size_t i = 0; i < s->len && rc == 0; i++) {
        char c = s->s[i];
        if ((c == '{' || c == '}') && i + 1 < s->len && s->s[i + 1] == c) {
            rc = bput(r, &b, &c, 1);
            i++;
            continue;
        }
        if (c != '{') {
            rc = bput(r, &b, &c, 1);
            continue;
        }
        size_t j = i + 1;
        while (j < s->len && s->s[j] != '}')
            j++;
        if (j >= s->len) {
            rc = jr_fail(r, ERR_INVALID, "format(): single '{' encountered in format string");
            break;
        }
        const char *f = s->s + i + 1;
        size_t fl = j - i - 1;
        const struct jv *v = NULL;
        if (fl == 0) {
            v = next < a->npos ? &a->pos[next] : NULL;
            next++;
        } else if (f[0] >= '0' && f[0] <= '9') {
            size_t idx = (size_t)strtoul(f, NULL, 10);
            v = idx < a->npos ? &a->pos[idx] : NULL;
        } else if (a->kw) {
            v = jdict_get(a->kw, f, fl);
        }
        if (!v) {
            rc = jr_fail(r, ERR_INVALID, "format(): no argument for field '{%.*s}'", (int)fl, f);
            break;
        }
        rc = jv_write(r, &b, v);
        i = j;
    }
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    return str_out(r, &b, out);
}

static int dict_items(struct jrender *r, const struct jdict *d, int what, struct jv *out)
{
    struct jlist *l;
    int rc = new_list_of(r, d->n, &l);
    if (rc)
        return rc;
    for (size_t i = 0; i < d->n; i++) {
        struct jv key = {.kind = JV_STR, .u.s = d->k[i]};
        if (what == BI_D_KEYS) {
            l->v[l->n++] = key;
        } else if (what == BI_D_VALUES) {
            l->v[l->n++] = d->v[i];
        } else {
            struct jlist *pair = jlist_new(r, 2);
            if (!pair)
                return r->e->code;
            pair->v[0] = key;
            pair->v[1] = d->v[i];
            pair->n = 2;
            l->v[l->n++] = jv_list(pair);
        }
    }
    *out = jv_list(l);
    return 0;
}

static int dictsort(struct jrender *r, const struct jdict *d, const struct jargs *a, struct jv *out)
{
    const struct jv *cs = arg(a, 0, "case_sensitive"), *by = arg(a, 1, "by"), *rev = arg(a, 2, "reverse");
    if (cs && cs->kind != JV_BOOL)
        return jr_fail(r, ERR_INVALID, "dictsort: case_sensitive must be a boolean");
    if (by && (by->kind != JV_STR || !(eqs(by->u.s->s, by->u.s->len, "key") || eqs(by->u.s->s, by->u.s->len, "value"))))
        return jr_fail(r, ERR_INVALID, "dictsort: by must be either 'key' or 'value'");
    if (rev && rev->kind != JV_BOOL)
        return jr_fail(r, ERR_INVALID, "dictsort: reverse must be a boolean");
    bool by_value = by && eqs(by->u.s->s, by->u.s->len, "value");
    struct jv items;
    int rc = dict_items(r, d, BI_D_ITEMS, &items);
    if (rc)
        return rc;
    size_t n = items.u.l->n;
    struct jv *keys = ja_alloc(r->arena, (n ? n : 1) * sizeof *keys);
    if (!keys)
        return jr_nomem(r);
    for (size_t i = 0; i < n; i++)
        keys[i] = items.u.l->v[i].u.l->v[by_value ? 1 : 0];
    /* sort pairs by their keys: sort an index permutation through a copy */
    struct jv *pairs = ja_alloc(r->arena, (n ? n : 1) * sizeof *pairs);
    if (!pairs)
        return jr_nomem(r);
    memcpy(pairs, items.u.l->v, n * sizeof *pairs);
    if ((rc = jv_sort(r, pairs, keys, n, cs && cs->u.b, rev && rev->u.b)) != 0)
        return rc;
    memcpy(items.u.l->v, pairs, n * sizeof *pairs);
    *out = items;
    return 0;
}

static int namespace_new(struct jrender *r, const struct jargs *a, struct jv *out)
{
    if (a->npos > 1)
        return jr_fail(r, ERR_INVALID, "namespace expected at most 1 argument, got %zu", a->npos);
    struct jdict *d = jdict_new(r, 4);
    if (!d)
        return r->e->code;
    int rc;
    if (a->npos == 1) {
        const struct jv *src = &a->pos[0];
        if (src->kind == JV_DICT) {
            for (size_t i = 0; i < src->u.d->n; i++)
                if ((rc = jdict_set(r, d, src->u.d->k[i], src->u.d->v[i])) != 0)
                    return rc;
        } else if (src->kind == JV_LIST) {
            for (size_t i = 0; i < src->u.l->n; i++) {
                const struct jv *p = &src->u.l->v[i];
                if (p->kind != JV_LIST || p->u.l->n != 2)
                    return jr_fail(r, ERR_INVALID, "namespace expected an object or an iterable of [key, value] pairs");
                if (p->u.l->v[0].kind != JV_STR)
                    return jr_fail(r, ERR_INVALID, "namespace keys must be strings");
                if ((rc = jdict_set(r, d, p->u.l->v[0].u.s, p->u.l->v[1])) != 0)
                    return rc;
            }
        } else {
            return jr_fail(r, ERR_INVALID, "'%s' object is not iterable", jv_type_name(src));
        }
    }
    if (a->kw)
        for (size_t i = 0; i < a->kw->n; i++)
            if ((rc = jdict_set(r, d, a->kw->k[i], a->kw->v[i])) != 0)
                return rc;
    *out = (struct jv){.kind = JV_NS, .u.d = d};
    return 0;
}

static int range_fn(struct jrender *r, const struct jargs *a, struct jv *out)
{
    if (a->npos < 1 || a->npos > 3 || a->kw)
        return jr_fail(r, ERR_INVALID, "range() takes 1 to 3 integer arguments");
    for (size_t i = 0; i < a->npos; i++)
        if (a->pos[i].kind != JV_INT)
            return jr_fail(r, ERR_INVALID, "range() arguments must be integers, got %s", jv_type_name(&a->pos[i]));
    int64_t start = 0, stop, step = 1;
    if (a->npos == 1) {
        stop = a->pos[0].u.i;
    } else {
        start = a->pos[0].u.i;
        stop = a->pos[1].u.i;
        if (a->npos == 3)
            step = a->pos[2].u.i;
    }
    if (step == 0)
        return jr_fail(r, ERR_INVALID, "range() step must not be zero");
    uint64_t count = 0;
    if (step > 0 && stop > start)
        count = (uint64_t)((stop - start - 1) / step) + 1;
    else if (step < 0 && stop < start)
        count = (uint64_t)((start - stop - 1) / -step) + 1;
    int rc = jr_step(r, count);
    if (rc)
        return rc;
    struct jlist *l;
    if ((rc = new_list_of(r, (size_t)count, &l)) != 0)
        return rc;
    for (uint64_t i = 0; i < count; i++)
        l->v[l->n++] = jv_int(start + (int64_t)i * step);
    *out = jv_list(l);
    return 0;
}

static int strftime_fn(struct jrender *r, const struct jargs *a, struct jv *out)
{
    static const char *const MON[] = {"January", "February", "March", "April", "May", "June", "July",
                                      "August", "September", "October", "November", "December"};
    if (a->npos < 1 || a->pos[0].kind != JV_STR)
        return jr_fail(r, ERR_INVALID, "strftime_now() needs a format string");
    time_t now = (time_t)r->now;
    struct tm tm;
    if (!localtime_r(&now, &tm))
        return jr_fail(r, ERR_INVALID, "strftime_now(): cannot convert the clock to local time");
    const struct jstr *f = a->pos[0].u.s;
    struct jbuf b = {0};
    int rc = 0;
    char tmp[32];
    for (size_t i = 0; i < f->len && rc == 0; i++) {
        if (f->s[i] == '%' && i + 1 < f->len && strchr("YmdbBHM%", f->s[i + 1]) && f->s[i + 1]) {
            switch (f->s[++i]) {
            case 'Y': snprintf(tmp, sizeof tmp, "%d", tm.tm_year + 1900); break;
            case 'm': snprintf(tmp, sizeof tmp, "%02d", tm.tm_mon + 1); break;
            case 'd': snprintf(tmp, sizeof tmp, "%02d", tm.tm_mday); break;
            case 'b': snprintf(tmp, sizeof tmp, "%.3s", MON[tm.tm_mon]); break;
            case 'B': snprintf(tmp, sizeof tmp, "%s", MON[tm.tm_mon]); break;
            case 'H': snprintf(tmp, sizeof tmp, "%02d", tm.tm_hour); break;
            case 'M': snprintf(tmp, sizeof tmp, "%02d", tm.tm_min); break;
            default: strcpy(tmp, "%"); break;
            }
            rc = bput(r, &b, tmp, strlen(tmp));
        } else {
            rc = bput(r, &b, f->s + i, 1);
        }
    }
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    return str_out(r, &b, out);
}

int jf_call_builtin(struct jrender *r, const struct jfunc *fn, struct jargs *a, struct jv *out)
{
    const struct jv *self = &fn->self;
    const struct jstr *s = self->kind == JV_STR ? self->u.s : NULL;
    int rc;
    switch (fn->id) {
    case BI_NAMESPACE: return namespace_new(r, a, out);
    case BI_RAISE: {
        struct jbuf b = {0};
        if (a->npos > 0 && a->pos[0].kind != JV_UNDEF && (rc = jv_write_raw(r, &b, &a->pos[0])) != 0) {
            jbuf_free(&b);
            return rc;
        }
        rc = jr_fail(r, ERR_INVALID, "raise_exception: %s", b.p ? b.p : "");
        jbuf_free(&b);
        return rc;
    }
    case BI_RANGE: return range_fn(r, a, out);
    case BI_STRFTIME: return strftime_fn(r, a, out);
    case BI_S_UPPER: return ascii_case(r, s, true, out);
    case BI_S_LOWER: return ascii_case(r, s, false, out);
    /* strip, lstrip and rstrip ignore their argument and remove whitespace, as the reference does */
    case BI_S_STRIP: {
        size_t a0 = ju_trim_start(s->s, s->len);
        size_t e = ju_trim_end(s->s, s->len);
        return sub_str(r, s->s + a0, e > a0 ? e - a0 : 0, out);
    }
    case BI_S_LSTRIP: {
        size_t a0 = ju_trim_start(s->s, s->len);
        return sub_str(r, s->s + a0, s->len - a0, out);
    }
    case BI_S_RSTRIP: return sub_str(r, s->s, ju_trim_end(s->s, s->len), out);
    case BI_S_TITLE: return title_case(r, s, out);
    case BI_S_CAPITALIZE: {
        struct jbuf b = {0};
        if ((rc = bput(r, &b, s->s, s->len)) != 0) {
            jbuf_free(&b);
            return rc;
        }
        if (b.len && b.p[0] >= 'a' && b.p[0] <= 'z')
            b.p[0] = (char)(b.p[0] - 32);
        return str_out(r, &b, out);
    }
    case BI_S_STARTSWITH:
    case BI_S_ENDSWITH: {
        bool starts = fn->id == BI_S_STARTSWITH;
        const char *name = starts ? "startswith" : "endswith";
        if (a->npos == 0)
            return jr_fail(r, ERR_INVALID, "%s() requires at least one argument", name);
        const struct jv *p = &a->pos[0];
        if (p->kind == JV_STR) {
            *out = jv_bool(starts ? starts_with(s, p->u.s) : ends_with(s, p->u.s));
            return 0;
        }
        if (p->kind == JV_LIST) {
            for (size_t i = 0; i < p->u.l->n; i++) {
                if (p->u.l->v[i].kind != JV_STR)
                    return jr_fail(r, ERR_INVALID, "%s() tuple elements must be strings", name);
                if (starts ? starts_with(s, p->u.l->v[i].u.s) : ends_with(s, p->u.l->v[i].u.s)) {
                    *out = jv_bool(true);
                    return 0;
                }
            }
            *out = jv_bool(false);
            return 0;
        }
        return jr_fail(r, ERR_INVALID, "%s() argument must be a string or a tuple of strings", name);
    }
    case BI_S_SPLIT: return str_split(r, s, a, out);
    case BI_S_REPLACE: return str_replace(r, s, arg(a, 0, NULL), arg(a, 1, NULL), arg(a, 2, "count"), out);
    case BI_S_FORMAT: return str_format(r, s, a, out);
    case BI_S_JOIN: {
        if (a->npos != 1 || a->pos[0].kind != JV_LIST)
            return jr_fail(r, ERR_INVALID, "join() takes one list argument");
        struct jbuf b = {0};
        for (size_t i = 0; i < a->pos[0].u.l->n; i++) {
            if ((i && (rc = bput(r, &b, s->s, s->len)) != 0) || (rc = jv_write(r, &b, &a->pos[0].u.l->v[i])) != 0) {
                jbuf_free(&b);
                return rc;
            }
        }
        return str_out(r, &b, out);
    }
    case BI_D_GET: {
        const struct jv *k = arg(a, 0, NULL);
        if (!k || k->kind != JV_STR)
            return jr_fail(r, ERR_INVALID, "get(): the key must be a string, got %s", k ? jv_type_name(k) : "nothing");
        struct jv *v = jdict_get(self->u.d, k->u.s->s, k->u.s->len);
        const struct jv *def = arg(a, 1, "default");
        *out = v ? *v : def ? *def : jv_none();
        return 0;
    }
    case BI_D_ITEMS:
    case BI_D_KEYS:
    case BI_D_VALUES: return dict_items(r, self->u.d, fn->id, out);
    case BI_D_DICTSORT: return dictsort(r, self->u.d, a, out);
    }
    return jr_fail(r, ERR_INVALID, "unknown builtin function");
}

/* ---------------------------------------------------------------- tests */

static bool lower_or_upper(const struct jstr *s, bool upper)
{
    for (size_t i = 0; i < s->len; i++) {
        char c = s->s[i];
        if (upper ? (c >= 'a' && c <= 'z') : (c >= 'A' && c <= 'Z'))
            return false;
    }
    return true;
}

/* Whether `name` is one of the reference's tests or a Python-Jinja one hearth adds. */
int jf_test(struct jrender *r, const char *name, size_t n, const struct jv *v, const struct jv *args, size_t nargs,
            bool *res)
{
#define T(s) eqs(name, n, s)
    if (T("boolean"))
        *res = v->kind == JV_BOOL;
    else if (T("callable"))
        *res = v->kind == JV_FUNC;
    else if (T("odd") || T("even")) {
        if (v->kind != JV_INT)
            return jr_fail(r, ERR_INVALID, "cannot %.*s on %s", (int)n, name, jv_type_name(v));
        *res = (v->u.i % 2 != 0) == T("odd");
    } else if (T("false"))
        *res = v->kind == JV_BOOL && !v->u.b;
    else if (T("true"))
        *res = v->kind == JV_BOOL && v->u.b;
    else if (T("none"))
        *res = v->kind == JV_NONE;
    else if (T("string"))
        *res = v->kind == JV_STR;
    else if (T("number"))
        *res = jv_is_num(v);
    else if (T("integer"))
        *res = v->kind == JV_INT;
    else if (T("float"))
        *res = v->kind == JV_FLOAT;
    else if (T("iterable"))
        *res = v->kind == JV_LIST || v->kind == JV_STR;
    else if (T("mapping"))
        *res = v->kind == JV_DICT;
    else if (T("sequence"))
        *res = v->kind == JV_LIST || v->kind == JV_DICT || v->kind == JV_STR;
    else if (T("lower"))
        *res = v->kind == JV_STR && lower_or_upper(v->u.s, false);
    else if (T("upper"))
        *res = v->kind == JV_STR && lower_or_upper(v->u.s, true);
    else if (T("defined"))
        *res = v->kind != JV_UNDEF;
    else if (T("undefined"))
        *res = v->kind == JV_UNDEF;
    else if (T("equalto") || T("eq") || T("sameas") || T("ne")) {
        if (nargs < 1)
            return jr_fail(r, ERR_INVALID, "test '%.*s' needs a value to compare with", (int)n, name);
        bool eq = jv_strict_eq(v, &args[0]);
        *res = T("ne") ? !eq : eq;
    } else if (T("lt") || T("gt") || T("le") || T("ge")) {
        if (nargs < 1 || !jv_is_num(v) || !jv_is_num(&args[0]))
            return jr_fail(r, ERR_INVALID, "test '%.*s' compares two numbers", (int)n, name);
        double a = jv_num(v), b = jv_num(&args[0]);
        *res = T("lt") ? a < b : T("gt") ? a > b : T("le") ? a <= b : a >= b;
    } else if (T("divisibleby")) {
        if (nargs < 1 || v->kind != JV_INT || args[0].kind != JV_INT || args[0].u.i == 0)
            return jr_fail(r, ERR_INVALID, "test 'divisibleby' needs an integer and a non-zero integer");
        *res = v->u.i % args[0].u.i == 0;
    } else if (T("in")) {
        if (nargs < 1)
            return jr_fail(r, ERR_INVALID, "test 'in' needs a container");
        const struct jv *c = &args[0];
        *res = false;
        if (c->kind == JV_LIST) {
            for (size_t i = 0; i < c->u.l->n && !*res; i++)
                *res = jv_strict_eq(&c->u.l->v[i], v);
        } else if (c->kind == JV_STR && v->kind == JV_STR) {
            *res = find(c->u.s->s, c->u.s->len, v->u.s->s, v->u.s->len) != NULL;
        } else if (c->kind == JV_DICT && v->kind == JV_STR) {
            *res = jdict_get(c->u.d, v->u.s->s, v->u.s->len) != NULL;
        } else {
            return jr_fail(r, ERR_INVALID, "test 'in' needs a list, string or dict");
        }
    } else {
        return jr_fail(r, ERR_INVALID, "unknown test '%.*s'", (int)n, name);
    }
#undef T
    return 0;
}

/* ---------------------------------------------------------------- filters */

/* item.a.b (dict keys, list indices), as the reference's getAttributeValue */
static struct jv attr_path(const struct jv *item, const char *path, size_t n)
{
    struct jv v = *item;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && path[j] != '.')
            j++;
        if (v.kind == JV_DICT || v.kind == JV_NS) {
            struct jv *x = jdict_get(v.u.d, path + i, j - i);
            v = x ? *x : jv_undef();
        } else if (v.kind == JV_LIST) {
            char tmp[32];
            size_t l = j - i < sizeof tmp - 1 ? j - i : sizeof tmp - 1;
            memcpy(tmp, path + i, l);
            tmp[l] = '\0';
            char *end;
            long idx = strtol(tmp, &end, 10);
            if (end == tmp || idx < 0 || (size_t)idx >= v.u.l->n)
                return jv_undef();
            v = v.u.l->v[idx];
        } else {
            return jv_undef();
        }
        if (j >= n)
            return v;
        i = j + 1;
    }
}

static int to_string_value(struct jrender *r, const struct jv *v, struct jv *out, bool json_undef)
{
    struct jbuf b = {0};
    int rc;
    if (json_undef) {
        struct jjson_opts o = {0};
        rc = jv_tojson(r, &b, v, &o);
    } else {
        rc = jv_write(r, &b, v);
    }
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    return str_out(r, &b, out);
}

/* JavaScript's parseInt(s, 10) / parseFloat(s); false when the result is NaN. */
static bool js_parse_int(const struct jstr *s, int64_t *out)
{
    size_t i = ju_trim_start(s->s, s->len);
    bool neg = false;
    if (i < s->len && (s->s[i] == '+' || s->s[i] == '-'))
        neg = s->s[i++] == '-';
    size_t start = i;
    int64_t v = 0;
    while (i < s->len && s->s[i] >= '0' && s->s[i] <= '9') {
        if (v < INT64_MAX / 10)
            v = v * 10 + (s->s[i] - '0');
        i++;
    }
    if (i == start)
        return false;
    *out = neg ? -v : v;
    return true;
}

static bool js_parse_float(const struct jstr *s, double *out)
{
    size_t i = ju_trim_start(s->s, s->len);
    const char *p = s->s + i;
    size_t n = s->len - i;
    size_t k = 0;
    bool neg = false;
    if (k < n && (p[k] == '+' || p[k] == '-'))
        neg = p[k++] == '-';
    if (n - k >= 8 && memcmp(p + k, "Infinity", 8) == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    size_t digits = 0, m = k;
    while (m < n && p[m] >= '0' && p[m] <= '9')
        m++, digits++;
    if (m < n && p[m] == '.') {
        size_t m2 = m + 1;
        while (m2 < n && p[m2] >= '0' && p[m2] <= '9')
            m2++, digits++;
        m = m2;
    }
    if (digits == 0)
        return false;
    if (m < n && (p[m] == 'e' || p[m] == 'E')) {
        size_t e = m + 1;
        if (e < n && (p[e] == '+' || p[e] == '-'))
            e++;
        if (e < n && p[e] >= '0' && p[e] <= '9') {
            while (e < n && p[e] >= '0' && p[e] <= '9')
                e++;
            m = e;
        }
    }
    char buf[128];
    if (m >= sizeof buf)
        m = sizeof buf - 1;
    memcpy(buf, p, m);
    buf[m] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

static int indent_str(struct jrender *r, const struct jstr *s, const char *pad, size_t padn, bool first, bool blank,
                      struct jv *out)
{
    struct jbuf b = {0};
    int rc = 0;
    size_t i = 0, line = 0;
    for (;;) {
        size_t j = i;
        while (j < s->len && s->s[j] != '\n')
            j++;
        bool empty = j == i;
        if (!((!first && line == 0) || (!blank && empty)))
            rc = bput(r, &b, pad, padn);
        if (rc == 0)
            rc = bput(r, &b, s->s + i, j - i);
        if (rc || j >= s->len)
            break;
        rc = bput(r, &b, "\n", 1);
        i = j + 1;
        line++;
    }
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    return str_out(r, &b, out);
}

/* Writes a join element as Array.prototype.join sees x.value: none/undefined give "". */
static int join_list(struct jrender *r, const struct jlist *l, const struct jstr *sep, struct jv *out)
{
    struct jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        if (i && sep)
            rc = bput(r, &b, sep->s, sep->len);
        if (rc == 0 && l->v[i].kind != JV_NONE && l->v[i].kind != JV_UNDEF)
            rc = jv_write_raw(r, &b, &l->v[i]);
    }
    if (rc) {
        jbuf_free(&b);
        return rc;
    }
    return str_out(r, &b, out);
}

static int list_unique(struct jrender *r, const struct jlist *l, struct jv *out)
{
    struct jlist *o;
    int rc = new_list_of(r, l->n, &o);
    if (rc)
        return rc;
    if ((rc = jr_step(r, (uint64_t)l->n * l->n / 16 + 1)) != 0)
        return rc;
    for (size_t i = 0; i < l->n; i++) {
        bool seen = false;
        for (size_t k = 0; k < o->n && !seen; k++)
            seen = jv_strict_eq(&o->v[k], &l->v[i]) ||
                   (o->v[k].kind == JV_FLOAT && l->v[i].kind == JV_FLOAT && isnan(o->v[k].u.f) && isnan(l->v[i].u.f));
        if (!seen)
            o->v[o->n++] = l->v[i];
    }
    *out = jv_list(o);
    return 0;
}

static int py_round(struct jrender *r, const struct jv *v, const struct jargs *a, struct jv *out)
{
    const struct jv *prec = arg(a, 0, "precision"), *method = arg(a, 1, "method");
    if (prec && prec->kind != JV_INT)
        return jr_fail(r, ERR_INVALID, "round: precision must be an integer");
    double p = pow(10, prec ? (double)prec->u.i : 0);
    double x = jv_num(v) * p, y;
    if (method && method->kind == JV_STR && eqs(method->u.s->s, method->u.s->len, "ceil"))
        y = ceil(x);
    else if (method && method->kind == JV_STR && eqs(method->u.s->s, method->u.s->len, "floor"))
        y = floor(x);
    else if (!method || (method->kind == JV_STR && eqs(method->u.s->s, method->u.s->len, "common")))
        y = nearbyint(x); /* Python's round(): halves go to even */
    else
        return jr_fail(r, ERR_INVALID, "round: method must be 'common', 'ceil' or 'floor'");
    *out = jv_float(y / p);
    return 0;
}

int jf_filter(struct jrender *r, struct jscope *s, const struct jv *v, const char *name, size_t n, bool has_call,
              const struct jnode *fnode, struct jargs *a, struct jv *out)
{
#define F(x) eqs(name, n, x)
    int rc;
    struct jargs none = {0};
    if (!a)
        a = &none;
    if (!has_call) {
        if (F("safe")) {
            *out = *v;
            return 0;
        }
        if (F("tojson")) {
            struct jjson_opts o = {.undef_is_null = true};
            struct jbuf b = {0};
            if ((rc = jv_tojson(r, &b, v, &o)) != 0) {
                jbuf_free(&b);
                return rc;
            }
            return str_out(r, &b, out);
        }
        switch (v->kind) {
        case JV_LIST: {
            const struct jlist *l = v->u.l;
            if (F("list")) {
                *out = *v;
            } else if (F("first") || F("last")) {
                *out = l->n == 0 ? jv_undef() : l->v[F("first") ? 0 : l->n - 1];
            } else if (F("length") || F("count")) {
                *out = jv_int((int64_t)l->n);
            } else if (F("reverse")) {
                struct jlist *o;
                if ((rc = new_list_of(r, l->n, &o)) != 0)
                    return rc;
                for (size_t i = 0; i < l->n; i++)
                    o->v[o->n++] = l->v[l->n - 1 - i];
                *out = jv_list(o);
            } else if (F("sort")) {
                struct jlist *o;
                if ((rc = new_list_of(r, l->n, &o)) != 0)
                    return rc;
                memcpy(o->v, l->v, l->n * sizeof *o->v);
                o->n = l->n;
                if ((rc = jv_sort(r, o->v, o->v, o->n, false, false)) != 0)
                    return rc;
                *out = jv_list(o);
            } else if (F("join")) {
                return join_list(r, l, NULL, out);
            } else if (F("string")) {
                return to_string_value(r, v, out, false);
            } else if (F("unique")) {
                return list_unique(r, l, out);
            } else if (F("select") || F("reject")) { /* Python Jinja: by truthiness */
                return jf_filter(r, s, v, name, n, true, NULL, &none, out);
            } else if (F("sum")) {
                bool isf = false;
                double fs = 0;
                int64_t is = 0;
                for (size_t i = 0; i < l->n; i++) {
                    if (!jv_is_num(&l->v[i]) && l->v[i].kind != JV_BOOL)
                        return jr_fail(r, ERR_INVALID, "sum: cannot add %s", jv_type_name(&l->v[i]));
                    isf |= l->v[i].kind == JV_FLOAT;
                    fs += jv_num(&l->v[i]);
                    is += l->v[i].kind == JV_INT ? l->v[i].u.i : l->v[i].kind == JV_BOOL ? l->v[i].u.b : 0;
                }
                *out = isf ? jv_float(fs) : jv_int(is);
            } else {
                return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a list", (int)n, name);
            }
            return 0;
        }
        case JV_STR: {
            const struct jstr *str = v->u.s;
            if (F("length") || F("count")) {
                *out = jv_int((int64_t)ju_utf16_len(str->s, str->len));
                return 0;
            }
            if (F("upper") || F("lower"))
                return ascii_case(r, str, F("upper"), out);
            if (F("title"))
                return title_case(r, str, out);
            if (F("capitalize")) {
                struct jfunc f = {.kind = FN_BUILTIN, .id = BI_S_CAPITALIZE, .self = *v};
                return jf_call_builtin(r, &f, &none, out);
            }
            if (F("trim")) {
                struct jfunc f = {.kind = FN_BUILTIN, .id = BI_S_STRIP, .self = *v};
                return jf_call_builtin(r, &f, &none, out);
            }
            if (F("indent"))
                return indent_str(r, str, "    ", 4, false, false, out);
            if (F("join") || F("string")) {
                *out = *v;
                return 0;
            }
            if (F("int")) {
                int64_t x;
                *out = jv_int(js_parse_int(str, &x) ? x : 0);
                return 0;
            }
            if (F("float")) {
                double x;
                *out = jv_float(js_parse_float(str, &x) ? x : 0.0);
                return 0;
            }
            if (F("wordcount")) {
                int64_t words = 0;
                for (size_t i = 0; i < str->len; i++)
                    if ((word_byte(str->s[i]) || (unsigned char)str->s[i] >= 0x80) &&
                        (i == 0 || !(word_byte(str->s[i - 1]) || (unsigned char)str->s[i - 1] >= 0x80)))
                        words++;
                *out = jv_int(words);
                return 0;
            }
            if (F("list") || F("reverse")) {
                struct jlist *l;
                if ((rc = new_list_of(r, str->len, &l)) != 0)
                    return rc;
                for (size_t i = 0; i < str->len;) {
                    size_t adv;
                    ju_decode(str->s + i, str->len - i, &adv);
                    struct jv c;
                    if ((rc = jv_str(r, str->s + i, adv, &c)) != 0 || (rc = jlist_push(r, l, c)) != 0)
                        return rc;
                    i += adv;
                }
                if (F("list")) {
                    *out = jv_list(l);
                    return 0;
                }
                struct jbuf b = {0};
                for (size_t i = l->n; i-- > 0;)
                    if ((rc = bput(r, &b, l->v[i].u.s->s, l->v[i].u.s->len)) != 0) {
                        jbuf_free(&b);
                        return rc;
                    }
                return str_out(r, &b, out);
            }
            return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a string", (int)n, name);
        }
        case JV_INT:
        case JV_FLOAT:
            if (F("abs")) {
                *out = v->kind == JV_INT ? jv_int(v->u.i < 0 ? -v->u.i : v->u.i) : jv_float(fabs(v->u.f));
            } else if (F("int")) {
                *out = v->kind == JV_INT ? *v : jv_int((int64_t)floor(v->u.f));
            } else if (F("float")) {
                *out = jv_float(jv_num(v));
            } else if (F("string")) {
                return to_string_value(r, v, out, false);
            } else if (F("round")) {
                return py_round(r, v, &none, out);
            } else {
                return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a number", (int)n, name);
            }
            return 0;
        case JV_DICT:
            if (F("items"))
                return dict_items(r, v->u.d, BI_D_ITEMS, out);
            if (F("length") || F("count")) {
                *out = jv_int((int64_t)v->u.d->n);
                return 0;
            }
            if (F("list"))
                return dict_items(r, v->u.d, BI_D_KEYS, out);
            {
                struct jv m;
                if ((rc = jf_member(r, v, name, n, &m)) != 0)
                    return rc;
                if (m.kind == JV_FUNC)
                    return jf_call_builtin(r, m.u.fn, &none, out);
            }
            return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a dict", (int)n, name);
        case JV_BOOL:
            if (F("bool"))
                *out = *v;
            else if (F("int"))
                *out = jv_int(v->u.b);
            else if (F("float"))
                *out = jv_float(v->u.b);
            else if (F("string"))
                return jv_str(r, v->u.b ? "true" : "false", v->u.b ? 4 : 5, out);
            else
                return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a boolean", (int)n, name);
            return 0;
        default:
            if (F("default") || F("d")) { /* Python Jinja: x|default is '' when x is undefined */
                if (v->kind == JV_UNDEF)
                    return jv_str(r, "", 0, out);
                *out = *v;
                return 0;
            }
            return jr_fail(r, ERR_INVALID, "cannot apply filter \"%.*s\" to type %s", (int)n, name, jv_type_name(v));
        }
    }

    /* ---- filters written with parentheses ---- */
    if (F("tojson")) {
        const struct jv *ind = kwarg(a, "indent"), *asc = kwarg(a, "ensure_ascii"), *sk = kwarg(a, "sort_keys"),
                        *sep = kwarg(a, "separators");
        if (ind && ind->kind != JV_INT && ind->kind != JV_NONE)
            return jr_fail(r, ERR_INVALID, "tojson: if set, indent must be a number");
        if (ind && ind->kind == JV_INT && (ind->u.i < 0 || ind->u.i > 64))
            return jr_fail(r, ERR_INVALID, "tojson: indent must be between 0 and 64");
        if (asc && asc->kind != JV_BOOL)
            return jr_fail(r, ERR_INVALID, "tojson: if set, ensure_ascii must be a boolean");
        if (sk && sk->kind != JV_BOOL)
            return jr_fail(r, ERR_INVALID, "tojson: if set, sort_keys must be a boolean");
        struct jjson_opts o = {.undef_is_null = true};
        o.indent = ind && ind->kind == JV_INT ? (int)ind->u.i : 0;
        o.ensure_ascii = asc && asc->u.b;
        o.sort_keys = sk && sk->u.b;
        if (sep && sep->kind == JV_LIST) {
            if (sep->u.l->n != 2 || sep->u.l->v[0].kind != JV_STR || sep->u.l->v[1].kind != JV_STR)
                return jr_fail(r, ERR_INVALID, "tojson: separators must be a tuple of two strings");
            o.item_sep = sep->u.l->v[0].u.s->s;
            o.key_sep = sep->u.l->v[1].u.s->s;
        } else if (sep && sep->kind != JV_NONE) {
            return jr_fail(r, ERR_INVALID, "tojson: if set, separators must be a tuple of two strings");
        }
        struct jbuf b = {0};
        if ((rc = jv_tojson(r, &b, v, &o)) != 0) {
            jbuf_free(&b);
            return rc;
        }
        return str_out(r, &b, out);
    }
    if (F("join")) {
        const struct jv *sepv = arg(a, 0, "separator");
        if (v->kind != JV_STR && v->kind != JV_LIST)
            return jr_fail(r, ERR_INVALID, "cannot apply filter \"join\" to type %s", jv_type_name(v));
        if (sepv && sepv->kind != JV_STR)
            return jr_fail(r, ERR_INVALID, "join: separator must be a string");
        const struct jstr *sep = sepv ? sepv->u.s : NULL;
        if (v->kind == JV_LIST)
            return join_list(r, v->u.l, sep, out);
        struct jbuf b = {0}; /* a string joins its characters */
        for (size_t i = 0; i < v->u.s->len;) {
            size_t adv;
            ju_decode(v->u.s->s + i, v->u.s->len - i, &adv);
            if ((i && sep && (rc = bput(r, &b, sep->s, sep->len)) != 0) || (rc = bput(r, &b, v->u.s->s + i, adv)) != 0) {
                jbuf_free(&b);
                return rc;
            }
            i += adv;
        }
        return str_out(r, &b, out);
    }
    if (F("int") || F("float")) {
        bool is_int = F("int");
        const struct jv *def = arg(a, 0, "default");
        if (v->kind == JV_STR) {
            int64_t iv;
            double fv;
            bool ok = is_int ? js_parse_int(v->u.s, &iv) : js_parse_float(v->u.s, &fv);
            *out = !ok ? (def ? *def : is_int ? jv_int(0) : jv_float(0)) : is_int ? jv_int(iv) : jv_float(fv);
        } else if (jv_is_num(v)) {
            *out = *v;
        } else if (v->kind == JV_BOOL) {
            *out = is_int ? jv_int(v->u.b) : jv_float(v->u.b);
        } else {
            return jr_fail(r, ERR_INVALID, "cannot apply filter \"%.*s\" to type %s", (int)n, name, jv_type_name(v));
        }
        return 0;
    }
    if (F("default") || F("d")) {
        const struct jv *def = arg(a, 0, NULL), *boolean = arg(a, 1, "boolean");
        if (boolean && boolean->kind != JV_BOOL)
            return jr_fail(r, ERR_INVALID, "default: the boolean flag must be a boolean");
        if (v->kind == JV_UNDEF || (boolean && boolean->u.b && !jv_truthy(v))) {
            if (def)
                *out = *def;
            else
                return jv_str(r, "", 0, out);
        } else {
            *out = *v;
        }
        return 0;
    }
    if (F("round") && jv_is_num(v))
        return py_round(r, v, a, out);
    if (v->kind == JV_LIST) {
        const struct jlist *l = v->u.l;
        if (F("sort")) {
            const struct jv *rev = arg(a, 0, "reverse"), *cs = arg(a, 1, "case_sensitive"), *at = arg(a, 2, "attribute");
            if (rev && rev->kind != JV_BOOL)
                return jr_fail(r, ERR_INVALID, "sort: reverse must be a boolean");
            if (cs && cs->kind != JV_BOOL)
                return jr_fail(r, ERR_INVALID, "sort: case_sensitive must be a boolean");
            if (at && at->kind != JV_STR && at->kind != JV_INT && at->kind != JV_NONE)
                return jr_fail(r, ERR_INVALID, "sort: attribute must be a string, integer, or none");
            struct jlist *o;
            if ((rc = new_list_of(r, l->n, &o)) != 0)
                return rc;
            memcpy(o->v, l->v, l->n * sizeof *o->v);
            o->n = l->n;
            struct jv *keys = o->v;
            if (at && at->kind != JV_NONE) {
                char num[32];
                const char *path = num;
                size_t plen;
                if (at->kind == JV_INT) {
                    plen = (size_t)snprintf(num, sizeof num, "%lld", (long long)at->u.i);
                } else {
                    path = at->u.s->s;
                    plen = at->u.s->len;
                }
                if (!(keys = ja_alloc(r->arena, (l->n ? l->n : 1) * sizeof *keys)))
                    return jr_nomem(r);
                for (size_t i = 0; i < l->n; i++)
                    keys[i] = attr_path(&l->v[i], path, plen);
            }
            if ((rc = jv_sort(r, o->v, keys, o->n, cs && cs->u.b, rev && rev->u.b)) != 0)
                return rc;
            *out = jv_list(o);
            return 0;
        }
        if (F("selectattr") || F("rejectattr")) {
            bool select = F("selectattr");
            for (size_t i = 0; i < l->n; i++)
                if (l->v[i].kind != JV_DICT && l->v[i].kind != JV_NS)
                    return jr_fail(r, ERR_INVALID, "`%.*s` can only be applied to a list of objects", (int)n, name);
            if (fnode)
                for (size_t i = 0; i < fnode->nitems; i++)
                    if (fnode->items[i]->kind != N_STR)
                        return jr_fail(r, ERR_INVALID, "arguments of `%.*s` must be string literals", (int)n, name);
            if (a->npos < 1 || a->pos[0].kind != JV_STR)
                return jr_fail(r, ERR_INVALID, "`%.*s` needs an attribute name", (int)n, name);
            const struct jstr *attr = a->pos[0].u.s;
            const struct jv *test = a->npos > 1 ? &a->pos[1] : NULL;
            struct jlist *o;
            if ((rc = new_list_of(r, l->n, &o)) != 0)
                return rc;
            for (size_t i = 0; i < l->n; i++) {
                /* a missing attribute fails the test, whatever the test is */
                struct jv *x = jdict_get(l->v[i].u.d, attr->s, attr->len);
                bool res = false;
                if (x && test) {
                    if ((rc = jf_test(r, test->u.s->s, test->u.s->len, x, a->pos + 2, a->npos > 2 ? a->npos - 2 : 0, &res)) != 0)
                        return rc;
                } else if (x) {
                    res = jv_truthy(x);
                }
                if (res == select)
                    o->v[o->n++] = l->v[i];
            }
            *out = jv_list(o);
            return 0;
        }
        if (F("select") || F("reject")) { /* Python Jinja: filter items by a test */
            bool select = F("select");
            if (a->npos > 0 && a->pos[0].kind != JV_STR)
                return jr_fail(r, ERR_INVALID, "%.*s: the test name must be a string", (int)n, name);
            struct jlist *o;
            if ((rc = new_list_of(r, l->n, &o)) != 0)
                return rc;
            for (size_t i = 0; i < l->n; i++) {
                bool res;
                if (a->npos == 0)
                    res = jv_truthy(&l->v[i]);
                else if ((rc = jf_test(r, a->pos[0].u.s->s, a->pos[0].u.s->len, &l->v[i], a->pos + 1, a->npos - 1, &res)) != 0)
                    return rc;
                if (res == select)
                    o->v[o->n++] = l->v[i];
            }
            *out = jv_list(o);
            return 0;
        }
        if (F("map")) {
            struct jv *at = kwarg(a, "attribute");
            struct jlist *o;
            if ((rc = new_list_of(r, l->n, &o)) != 0)
                return rc;
            if (at) {
                if (at->kind != JV_STR)
                    return jr_fail(r, ERR_INVALID, "map: attribute must be a string");
                struct jv *def = kwarg(a, "default");
                for (size_t i = 0; i < l->n; i++) {
                    if (l->v[i].kind != JV_DICT && l->v[i].kind != JV_NS)
                        return jr_fail(r, ERR_INVALID, "map: items must be objects to take an attribute");
                    struct jv x = attr_path(&l->v[i], at->u.s->s, at->u.s->len);
                    o->v[o->n++] = x.kind == JV_UNDEF && def ? *def : x;
                }
            } else if (a->npos >= 1 && a->pos[0].kind == JV_STR) {
                /* Python Jinja: map('filter', args...) */
                const struct jstr *fname = a->pos[0].u.s;
                struct jargs sub = {.pos = a->pos + 1, .npos = a->npos - 1, .kw = a->kw};
                for (size_t i = 0; i < l->n; i++)
                    if ((rc = jf_filter(r, s, &l->v[i], fname->s, fname->len, a->npos > 1 || a->kw, NULL, &sub,
                                        &o->v[o->n++])) != 0)
                        return rc;
            } else {
                return jr_fail(r, ERR_INVALID, "map needs attribute=... or a filter name");
            }
            *out = jv_list(o);
            return 0;
        }
        return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a list", (int)n, name);
    }
    if (v->kind == JV_STR) {
        if (F("indent")) {
            const struct jv *w = arg(a, 0, "width"), *first = arg(a, 1, "first"), *blank = arg(a, 2, "blank");
            if (w && w->kind != JV_INT && w->kind != JV_STR)
                return jr_fail(r, ERR_INVALID, "indent: width must be a number");
            char pad[256];
            size_t padn = 4;
            const char *padp = pad;
            if (w && w->kind == JV_STR) {
                padp = w->u.s->s;
                padn = w->u.s->len;
            } else {
                int64_t wn = w ? w->u.i : 4;
                if (wn < 0)
                    wn = 0;
                if (wn > (int64_t)sizeof pad)
                    return jr_fail(r, ERR_INVALID, "indent: width %lld is too large", (long long)wn);
                padn = (size_t)wn;
                memset(pad, ' ', padn);
            }
            return indent_str(r, v->u.s, padp, padn, first && jv_truthy(first), blank && jv_truthy(blank), out);
        }
        if (F("replace"))
            return str_replace(r, v->u.s, arg(a, 0, NULL), arg(a, 1, NULL), arg(a, 2, "count"), out);
        if (F("format")) { /* Python Jinja: "%s and %s"|format(a, b) */
            struct jbuf b = {0};
            size_t next = 0;
            const struct jstr *f = v->u.s;
            rc = 0;
            for (size_t i = 0; i < f->len && rc == 0; i++) {
                if (f->s[i] == '%' && i + 1 < f->len) {
                    char c = f->s[++i];
                    if (c == '%') {
                        rc = bput(r, &b, "%", 1);
                    } else if (c == 's' || c == 'd' || c == 'i') {
                        if (next >= a->npos) {
                            rc = jr_fail(r, ERR_INVALID, "format: not enough arguments for the format string");
                            break;
                        }
                        const struct jv *x = &a->pos[next++];
                        if (c != 's' && x->kind == JV_FLOAT) {
                            struct jv t = jv_int((int64_t)x->u.f);
                            rc = jv_write(r, &b, &t);
                        } else {
                            rc = jv_write(r, &b, x);
                        }
                    } else {
                        rc = jr_fail(r, ERR_INVALID, "format: unsupported conversion '%%%c'", c);
                    }
                } else {
                    rc = bput(r, &b, f->s + i, 1);
                }
            }
            if (rc) {
                jbuf_free(&b);
                return rc;
            }
            return str_out(r, &b, out);
        }
        return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a string", (int)n, name);
    }
    if (v->kind == JV_DICT) {
        struct jv m;
        if ((rc = jf_member(r, v, name, n, &m)) != 0)
            return rc;
        if (m.kind == JV_FUNC)
            return jf_call_builtin(r, m.u.fn, a, out);
        return jr_fail(r, ERR_INVALID, "unknown filter '%.*s' for a dict", (int)n, name);
    }
    return jr_fail(r, ERR_INVALID, "cannot apply filter \"%.*s\" to type %s", (int)n, name, jv_type_name(v));
#undef F
}
