/* jinja_lex.c — turns chat-template source into tokens, following @huggingface/jinja's lexer:
 * the same preprocessing (trailing newline, lstrip_blocks, trim_blocks, the transformers-only
 * {% generation %} tag), the same whitespace control and the same string escapes, so that the
 * text between tags comes out byte-identical. Every token keeps its offset in the original
 * source so that errors can name a line and column. */
#include <stdlib.h>
#include <string.h>

#include "template/jinja_internal.h"

/* A preprocessed copy of the source with, for each byte, its offset in the original. */
struct ptext {
    char *s;
    size_t *map;
    size_t n;
};

static int pt_alloc(struct ptext *p, size_t cap)
{
    p->s = malloc(cap + 1);
    p->map = malloc((cap + 1) * sizeof *p->map);
    p->n = 0;
    if (!p->s || !p->map) {
        free(p->s);
        free(p->map);
        return -1;
    }
    return 0;
}

static void pt_free(struct ptext *p)
{
    free(p->s);
    free(p->map);
}

static void pt_copy(struct ptext *dst, const struct ptext *src, size_t i, size_t n)
{
    memcpy(dst->s + dst->n, src->s + i, n);
    memcpy(dst->map + dst->n, src->map + i, n * sizeof *src->map);
    dst->n += n;
}

/* Length in bytes of the JavaScript whitespace character at s[i], 0 if none. */
static size_t ws_at(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return 0;
    size_t adv;
    uint32_t cp = ju_decode(s + i, n - i, &adv);
    return ju_is_space(cp) ? adv : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    size_t k;
    while ((k = ws_at(s, n, i)) > 0)
        i += k;
    return i;
}

/* JavaScript's multiline ^: start of input or after \n, \r, U+2028, U+2029. */
static bool line_start(const char *s, size_t i)
{
    if (i == 0)
        return true;
    if (s[i - 1] == '\n' || s[i - 1] == '\r')
        return true;
    return i >= 3 && (unsigned char)s[i - 3] == 0xE2 && (unsigned char)s[i - 2] == 0x80 &&
           ((unsigned char)s[i - 1] == 0xA8 || (unsigned char)s[i - 1] == 0xA9);
}

/* Matches `{%-?\s*(end)?generation\s*-?%}` at i; returns its end and the two hyphens. */
static size_t generation_tag(const char *s, size_t n, size_t i, bool *lstrip, bool *rstrip)
{
    if (i + 2 > n || s[i] != '{' || s[i + 1] != '%')
        return 0;
    size_t j = i + 2;
    *lstrip = j < n && s[j] == '-';
    if (*lstrip)
        j++;
    j = skip_ws(s, n, j);
    if (j + 3 <= n && memcmp(s + j, "end", 3) == 0 && j + 13 <= n && memcmp(s + j + 3, "generation", 10) == 0)
        j += 3;
    if (j + 10 > n || memcmp(s + j, "generation", 10) != 0)
        return 0;
    j = skip_ws(s, n, j + 10);
    *rstrip = j < n && s[j] == '-';
    if (*rstrip)
        j++;
    if (j + 2 > n || s[j] != '%' || s[j + 1] != '}')
        return 0;
    return j + 2;
}

static int preprocess(const char *src, size_t len, struct ptext *out)
{
    struct ptext a, b;
    if (pt_alloc(&a, len) != 0)
        return -1;
    memcpy(a.s, src, len);
    for (size_t i = 0; i < len; i++)
        a.map[i] = i;
    a.n = len;
    /* A single trailing newline is dropped, as Jinja does by default. */
    if (a.n > 0 && a.s[a.n - 1] == '\n')
        a.n--;

    /* lstrip_blocks: spaces and tabs between a line start and {%, {# or {- go. */
    if (pt_alloc(&b, a.n) != 0) {
        pt_free(&a);
        return -1;
    }
    for (size_t i = 0; i < a.n;) {
        if (line_start(a.s, i)) {
            size_t j = i;
            while (j < a.n && (a.s[j] == ' ' || a.s[j] == '\t'))
                j++;
            if (j + 1 < a.n && a.s[j] == '{' && (a.s[j + 1] == '#' || a.s[j + 1] == '%' || a.s[j + 1] == '-')) {
                pt_copy(&b, &a, j, 2);
                i = j + 2;
                continue;
            }
        }
        pt_copy(&b, &a, i, 1);
        i++;
    }
    pt_free(&a);

    /* trim_blocks: the newline right after #}, %} or -} goes. */
    if (pt_alloc(&a, b.n) != 0) {
        pt_free(&b);
        return -1;
    }
    for (size_t i = 0; i < b.n;) {
        if (i + 2 < b.n && (b.s[i] == '#' || b.s[i] == '%' || b.s[i] == '-') && b.s[i + 1] == '}' &&
            b.s[i + 2] == '\n') {
            pt_copy(&a, &b, i, 2);
            i += 3;
            continue;
        }
        pt_copy(&a, &b, i, 1);
        i++;
    }
    pt_free(&b);

    /* {% generation %} / {% endgeneration %} vanish, taking surrounding whitespace when their
     * hyphens say so. */
    if (pt_alloc(&b, a.n) != 0) {
        pt_free(&a);
        return -1;
    }
    for (size_t i = 0; i < a.n;) {
        size_t j = skip_ws(a.s, a.n, i);
        bool ls, rs;
        size_t end = generation_tag(a.s, a.n, j, &ls, &rs);
        if (end) {
            size_t after = skip_ws(a.s, a.n, end);
            if (!ls)
                pt_copy(&b, &a, i, j - i);
            if (!rs)
                pt_copy(&b, &a, end, after - end);
            i = after;
            continue;
        }
        if (j > i) { /* a whitespace run not followed by the tag: no match can start inside it */
            pt_copy(&b, &a, i, j - i);
            i = j;
            continue;
        }
        pt_copy(&b, &a, i, 1);
        i++;
    }
    pt_free(&a);
    b.map[b.n] = len;
    b.s[b.n] = '\0';
    *out = b;
    return 0;
}

void jpos_format(const char *src, size_t len, size_t pos, char *buf, size_t size)
{
    size_t line = 1, col = 1;
    if (pos > len)
        pos = len;
    for (size_t i = 0; i < pos;) {
        size_t adv;
        ju_decode(src + i, len - i, &adv);
        if (src[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
        i += adv;
    }
    snprintf(buf, size, "line %zu:%zu", line, col);
}

struct lexer {
    struct jarena *a;
    const char *orig;
    size_t orig_len;
    struct ptext p;
    size_t i;
    struct jtoken *toks;
    size_t n, cap;
    struct err *e;
};

static int lex_fail(struct lexer *L, size_t at, const char *fmt, const char *arg)
{
    char where[64], msg[512];
    size_t pos = at < L->p.n ? L->p.map[at] : L->orig_len;
    jpos_format(L->orig, L->orig_len, pos, where, sizeof where);
    snprintf(msg, sizeof msg, fmt, arg);
    return err_set(L->e, ERR_FORMAT, "%s: %s", where, msg);
}

static int push(struct lexer *L, enum jtok type, const char *s, size_t n, size_t at)
{
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        struct jtoken *t = realloc(L->toks, cap * sizeof *t);
        if (!t)
            return err_set(L->e, ERR_NOMEM, "out of memory tokenizing the template");
        L->toks = t;
        L->cap = cap;
    }
    L->toks[L->n++] = (struct jtoken){type, s, n, at < L->p.n ? L->p.map[at] : L->orig_len};
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_word(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* {%- / {{- / {#- remove the whitespace that ends the text before them. */
static void strip_trailing_ws(struct lexer *L)
{
    if (L->n == 0 || L->toks[L->n - 1].type != T_TEXT)
        return;
    struct jtoken *t = &L->toks[L->n - 1];
    t->n = ju_trim_end(t->s, t->n);
    if (t->n == 0)
        L->n--;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A quoted string starting after the opening quote at L->i; handles the reference's escapes. */
static int lex_string(struct lexer *L, char quote, size_t start)
{
    const char *s = L->p.s;
    size_t n = L->p.n;
    struct jbuf b = {0};
    int rc = 0;
    uint32_t pending_hi = 0; /* a \uD8xx waiting for its low surrogate */
    while (L->i < n && s[L->i] != quote) {
        char piece[8];
        size_t plen = 0;
        if (s[L->i] == '\\') {
            if (++L->i >= n) {
                rc = lex_fail(L, L->i, "%s", "unexpected end of template in a string");
                goto out;
            }
            char c = s[L->i++];
            if (c == 'x' || c == 'u') {
                int len = c == 'x' ? 2 : 4;
                uint32_t cp = 0;
                for (int k = 0; k < len; k++) {
                    int h = L->i + (size_t)k < n ? hexval(s[L->i + k]) : -1;
                    if (h < 0) {
                        rc = lex_fail(L, L->i, "invalid hexadecimal escape sequence \\%s", c == 'x' ? "x" : "u");
                        goto out;
                    }
                    cp = cp * 16 + (uint32_t)h;
                }
                L->i += (size_t)len;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (pending_hi && jbuf_put(&b, "\xEF\xBF\xBD", 3) != 0)
                        goto oom;
                    pending_hi = cp;
                    continue;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF && pending_hi) {
                    cp = 0x10000 + ((pending_hi - 0xD800) << 10) + (cp - 0xDC00);
                    pending_hi = 0;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = 0xFFFD; /* a lone surrogate cannot be written as UTF-8 */
                }
                plen = ju_encode(cp, piece);
            } else {
                switch (c) {
                case 'n': piece[0] = '\n'; break;
                case 't': piece[0] = '\t'; break;
                case 'r': piece[0] = '\r'; break;
                case 'b': piece[0] = '\b'; break;
                case 'f': piece[0] = '\f'; break;
                case 'v': piece[0] = '\v'; break;
                case '\'': piece[0] = '\''; break;
                case '"': piece[0] = '"'; break;
                case '\\': piece[0] = '\\'; break;
                default: {
                    char ch[2] = {c, 0};
                    rc = lex_fail(L, L->i - 1, "unexpected escaped character '%s' in a string", ch);
                    goto out;
                }
                }
                plen = 1;
            }
        } else {
            piece[0] = s[L->i++];
            plen = 1;
        }
        if (pending_hi) {
            if (jbuf_put(&b, "\xEF\xBF\xBD", 3) != 0)
                goto oom;
            pending_hi = 0;
        }
        if (jbuf_put(&b, piece, plen) != 0)
            goto oom;
    }
    if (pending_hi && jbuf_put(&b, "\xEF\xBF\xBD", 3) != 0)
        goto oom;
    if (L->i >= n) {
        rc = lex_fail(L, start, "%s", "unterminated string literal");
        goto out;
    }
    L->i++; /* closing quote */
    {
        char *v = ja_strndup(L->a, b.p ? b.p : "", b.len);
        if (!v)
            goto oom;
        rc = push(L, T_STR, v, b.len, start);
    }
out:
    jbuf_free(&b);
    return rc;
oom:
    jbuf_free(&b);
    return err_set(L->e, ERR_NOMEM, "out of memory tokenizing the template");
}

static const struct {
    const char *seq;
    enum jtok type;
} TABLE[] = {
    {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR}, {"}}", T_CLOSE_EXPR},
    {"(", T_LPAREN}, {")", T_RPAREN}, {"{", T_LBRACE}, {"}", T_RBRACE}, {"[", T_LBRACKET},
    {"]", T_RBRACKET}, {",", T_COMMA}, {".", T_DOT}, {":", T_COLON}, {"|", T_PIPE},
    {"<=", T_CMP}, {">=", T_CMP}, {"==", T_CMP}, {"!=", T_CMP}, {"<", T_CMP}, {">", T_CMP},
    {"+", T_ADD}, {"-", T_ADD}, {"~", T_ADD}, {"**", T_POW}, {"*", T_MUL}, {"//", T_MUL},
    {"/", T_MUL}, {"%", T_MUL}, {"=", T_EQUALS},
};

static int lex_main(struct lexer *L)
{
    const char *s = L->p.s;
    size_t n = L->p.n;
    int curly = 0;
    int rc;
    while (L->i < n) {
        enum jtok last = L->n ? L->toks[L->n - 1].type : T_CLOSE_STMT;
        bool at_text = L->n == 0 || last == T_CLOSE_STMT || last == T_CLOSE_EXPR || last == T_COMMENT;
        if (at_text) {
            size_t start = L->i;
            while (L->i < n && !(s[L->i] == '{' && L->i + 1 < n &&
                                 (s[L->i + 1] == '%' || s[L->i + 1] == '{' || s[L->i + 1] == '#')))
                L->i++;
            if (L->i > start) {
                if ((rc = push(L, T_TEXT, s + start, L->i - start, start)) != 0)
                    return rc;
                continue;
            }
        }
        if (s[L->i] == '{' && L->i + 1 < n && s[L->i + 1] == '#') {
            size_t start = L->i;
            L->i += 2;
            bool strip_before = L->i < n && s[L->i] == '-';
            if (strip_before)
                L->i++;
            size_t cstart = L->i;
            while (!(L->i + 1 < n && s[L->i] == '#' && s[L->i + 1] == '}')) {
                if (L->i + 2 >= n)
                    return lex_fail(L, start, "%s", "missing end of comment tag '#}'");
                L->i++;
            }
            bool strip_after = L->i > cstart && s[L->i - 1] == '-';
            if (strip_before)
                strip_trailing_ws(L);
            if ((rc = push(L, T_COMMENT, s + cstart, 0, start)) != 0)
                return rc;
            L->i += 2;
            if (strip_after)
                L->i = skip_ws(s, n, L->i);
            continue;
        }
        if (L->i + 3 <= n && memcmp(s + L->i, "{%-", 3) == 0) {
            strip_trailing_ws(L);
            if ((rc = push(L, T_OPEN_STMT, "{%", 2, L->i)) != 0)
                return rc;
            L->i += 3;
            continue;
        }
        if (L->i + 3 <= n && memcmp(s + L->i, "{{-", 3) == 0) {
            strip_trailing_ws(L);
            if ((rc = push(L, T_OPEN_EXPR, "{{", 2, L->i)) != 0)
                return rc;
            curly = 0;
            L->i += 3;
            continue;
        }
        L->i = skip_ws(s, n, L->i);
        if (L->i >= n)
            return lex_fail(L, L->i, "%s", "unexpected end of template inside a tag");
        if (L->i + 3 <= n && memcmp(s + L->i, "-%}", 3) == 0) {
            if ((rc = push(L, T_CLOSE_STMT, "%}", 2, L->i)) != 0)
                return rc;
            L->i = skip_ws(s, n, L->i + 3);
            continue;
        }
        if (L->i + 3 <= n && memcmp(s + L->i, "-}}", 3) == 0) {
            if ((rc = push(L, T_CLOSE_EXPR, "}}", 2, L->i)) != 0)
                return rc;
            L->i = skip_ws(s, n, L->i + 3);
            continue;
        }
        char c = s[L->i];
        if (c == '-' || c == '+') {
            if (L->n == 0 || last == T_TEXT) {
                char ch[2] = {c, 0};
                return lex_fail(L, L->i, "unexpected character '%s'", ch);
            }
            if (!(last == T_IDENT || last == T_NUM || last == T_STR || last == T_RPAREN || last == T_RBRACKET)) {
                /* a sign: glued to a following number, or a unary operator */
                size_t start = L->i++;
                size_t d = L->i;
                while (L->i < n && is_digit(s[L->i]))
                    L->i++;
                if (L->i > d && L->i + 1 < n && s[L->i] == '.' && is_digit(s[L->i + 1])) {
                    L->i++;
                    while (L->i < n && is_digit(s[L->i]))
                        L->i++;
                }
                if ((rc = push(L, L->i > d ? T_NUM : T_UNARY, s + start, L->i - start, start)) != 0)
                    return rc;
                continue;
            }
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof TABLE / sizeof TABLE[0]; k++) {
            size_t len = strlen(TABLE[k].seq);
            if (TABLE[k].type == T_CLOSE_EXPR && curly > 0)
                continue; /* inside a dict literal, }} closes two braces */
            if (L->i + len <= n && memcmp(s + L->i, TABLE[k].seq, len) == 0) {
                if ((rc = push(L, TABLE[k].type, TABLE[k].seq, len, L->i)) != 0)
                    return rc;
                if (TABLE[k].type == T_OPEN_EXPR)
                    curly = 0;
                else if (TABLE[k].type == T_LBRACE)
                    curly++;
                else if (TABLE[k].type == T_RBRACE)
                    curly--;
                L->i += len;
                matched = true;
                break;
            }
        }
        if (matched)
            continue;
        if (c == '\'' || c == '"') {
            size_t start = L->i++;
            if ((rc = lex_string(L, c, start)) != 0)
                return rc;
            continue;
        }
        if (is_digit(c)) {
            size_t start = L->i;
            while (L->i < n && is_digit(s[L->i]))
                L->i++;
            if (last != T_DOT && L->i + 1 < n && s[L->i] == '.' && is_digit(s[L->i + 1])) {
                L->i++;
                while (L->i < n && is_digit(s[L->i]))
                    L->i++;
            }
            if ((rc = push(L, T_NUM, s + start, L->i - start, start)) != 0)
                return rc;
            continue;
        }
        if (is_word(c)) {
            size_t start = L->i;
            while (L->i < n && is_word(s[L->i]))
                L->i++;
            if ((rc = push(L, T_IDENT, s + start, L->i - start, start)) != 0)
                return rc;
            continue;
        }
        {
            size_t adv;
            ju_decode(s + L->i, n - L->i, &adv);
            char ch[8] = {0};
            memcpy(ch, s + L->i, adv < 7 ? adv : 7);
            return lex_fail(L, L->i, "unexpected character '%s'", ch);
        }
    }
    return 0;
}

int jlex(struct jarena *a, const char *src, size_t len, struct jtoken **toks, size_t *ntoks, struct err *e)
{
    struct lexer L = {.a = a, .orig = src, .orig_len = len, .e = e};
    if (preprocess(src, len, &L.p) != 0)
        return err_set(e, ERR_NOMEM, "out of memory preprocessing the template");
    /* Token texts point into the preprocessed copy, so it lives in the arena. */
    char *copy = ja_strndup(a, L.p.s, L.p.n);
    if (!copy) {
        pt_free(&L.p);
        return err_set(e, ERR_NOMEM, "out of memory preprocessing the template");
    }
    free(L.p.s);
    L.p.s = copy;
    int rc = lex_main(&L);
    free(L.p.map);
    if (rc != 0) {
        free(L.toks);
        return rc;
    }
    *toks = L.toks;
    *ntoks = L.n;
    return 0;
}
