/* detok.c — token ids back to text: the bytes of one token, whole-sequence decoding, and the
 * streaming detokenizer that only ever emits complete UTF-8 characters. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n)
{
    if (at < cap)
        memcpy(buf + at, s, at + n <= cap ? n : cap - at);
    return at + n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int tokenizer_token_bytes(const struct tokenizer *t, int32_t id, bool render_special, char *buf,
                          size_t cap)
{
    if (id < 0 || id >= t->n_vocab)
        return ERR_RANGE;
    const char *s = tok_text(t, id);
    size_t n = t->len[id];
    switch (t->type[id]) {
    case TOK_CONTROL:
    case TOK_UNKNOWN:
    case TOK_UNUSED:
        return render_special ? (int)put(buf, cap, 0, s, n) : 0;
    case TOK_USER:
        return (int)put(buf, cap, 0, s, n); /* user-defined tokens are stored as plain text */
    case TOK_BYTE:
        if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' && hexval(s[3]) >= 0 &&
            hexval(s[4]) >= 0) {
            char b = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            return (int)put(buf, cap, 0, &b, 1);
        }
        return (int)put(buf, cap, 0, s, n);
    default:
        break;
    }
    size_t o = 0;
    if (t->kind != TOK_KIND_BPE) { /* SPM, and WordPiece whose word-initial pieces carry U+2581 */
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                o = put(buf, cap, o, " ", 1);
                i += 3;
            } else {
                o = put(buf, cap, o, s + i, 1);
                i++;
            }
        }
        return (int)o;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = uni_decode(s + i, n - i, &cp);
        int b = k ? uni_cp_to_byte(cp) : -1;
        if (b >= 0) {
            char c = (char)b;
            o = put(buf, cap, o, &c, 1);
        } else {
            /* not a byte-level character: keep it as written */
            if (k == 0)
                k = 1;
            o = put(buf, cap, o, s + i, k);
        }
        i += k;
    }
    return (int)o;
}

int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, bool render_special,
                     char **out, struct err *e)
{
    *out = NULL;
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return err_set(e, ERR_NOMEM, "out of memory decoding");
    bool at_start = (t->kind == TOK_KIND_SPM && t->add_space_prefix) || t->kind == TOK_KIND_WPM;
    for (size_t i = 0; i < n; i++) {
        int k = tokenizer_token_bytes(t, ids[i], render_special, buf + len, cap - len - 1);
        if (k < 0) {
            free(buf);
            return err_set(e, ERR_RANGE, "token id %d at position %zu is outside the vocabulary of %d",
                           (int)ids[i], i, (int)t->n_vocab);
        }
        if ((size_t)k > cap - len - 1) {
            while ((size_t)k > cap - len - 1)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return err_set(e, ERR_NOMEM, "out of memory decoding");
            }
            buf = nb;
            tokenizer_token_bytes(t, ids[i], render_special, buf + len, cap - len - 1);
        }
        if (at_start && k > 0) {
            /* SentencePiece drops the space it added in front of the first word. */
            if (buf[len] == ' ') {
                memmove(buf + len, buf + len + 1, (size_t)k - 1);
                k--;
            }
            at_start = false;
        }
        len += (size_t)k;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* ---- streaming ---- */

void detok_init(struct detok *d, const struct tokenizer *t, bool render_special)
{
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->render_special = render_special;
    d->at_start = (t->kind == TOK_KIND_SPM && t->add_space_prefix) || t->kind == TOK_KIND_WPM;
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Copies the complete characters of src to out (invalid bytes become U+FFFD) and keeps an
 * incomplete trailing character in d->pending. */
static size_t emit(struct detok *d, const char *src, size_t n, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)src[i];
        size_t want = uni_seq_len(c);
        uint32_t cp;
        size_t k = uni_decode(src + i, n - i, &cp);
        if (k) {
            if (o + k <= cap) {
                memcpy(out + o, src + i, k);
                o += k;
            }
            i += k;
            continue;
        }
        /* Not decodable here: either a character cut off at the end (hold it back) or junk. */
        bool prefix = want > 1 && n - i < want;
        for (size_t j = i + 1; prefix && j < n; j++)
            prefix = ((unsigned char)src[j] & 0xC0) == 0x80;
        if (prefix) {
            memcpy(d->pending, src + i, n - i);
            d->n_pending = n - i;
            return o;
        }
        if (o + 3 <= cap) {
            memcpy(out + o, replacement, 3);
            o += 3;
        }
        /* skip the lead byte and the continuation bytes that belong to it */
        i++;
        for (size_t m = 1; m < want && i < n && ((unsigned char)src[i] & 0xC0) == 0x80; m++)
            i++;
    }
    d->n_pending = 0;
    return o;
}

size_t detok_push(struct detok *d, int32_t id, char *out, size_t cap)
{
    char local[512];
    char *tmp = local;
    size_t tcap = sizeof local;
    int k = tokenizer_token_bytes(d->tok, id, d->render_special, NULL, 0);
    if (k <= 0)
        return 0;
    if ((size_t)k + d->n_pending > tcap) {
        tcap = (size_t)k + d->n_pending;
        tmp = malloc(tcap); /* only for pathologically long tokens */
        if (!tmp)
            return 0;
    }
    memcpy(tmp, d->pending, d->n_pending);
    size_t n = d->n_pending;
    tokenizer_token_bytes(d->tok, id, d->render_special, tmp + n, tcap - n);
    size_t skip = 0;
    if (d->at_start) {
        if (tmp[n] == ' ')
            skip = 1;
        d->at_start = false;
    }
    if (skip)
        memmove(tmp + n, tmp + n + 1, (size_t)k - 1);
    n += (size_t)k - skip;
    d->n_pending = 0;
    size_t o = emit(d, tmp, n, out, cap);
    if (tmp != local)
        free(tmp);
    return o;
}

size_t detok_flush(struct detok *d, char *out, size_t cap)
{
    if (d->n_pending == 0)
        return 0;
    d->n_pending = 0;
    if (cap < 3)
        return 0;
    memcpy(out, replacement, 3);
    return 3;
}
