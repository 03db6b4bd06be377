/* unicode.c — UTF-8 coding, the GPT-2 byte-level alphabet and NFC normalization (canonical
 * decomposition, canonical ordering, canonical composition, Hangul done arithmetically). */
#include "tokenizer/unicode.h"

#include <stdlib.h>
#include <string.h>

size_t uni_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        return 2;
    if ((c & 0xF0) == 0xE0)
        return 3;
    if ((c & 0xF8) == 0xF0)
        return 4;
    return 1;
}

size_t uni_decode(const char *str, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

size_t uni_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 keeps the printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) as themselves
 * and moves the other 68 bytes, in order, to U+0100 onwards, so no byte becomes whitespace or a
 * control character inside a token string. */
static bool byte_is_kept(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t uni_byte_to_cp(uint8_t b)
{
    if (byte_is_kept(b))
        return b;
    unsigned k = 0;
    for (unsigned i = 0; i < b; i++)
        if (!byte_is_kept(i))
            k++;
    return 0x100 + k;
}

int uni_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_kept(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    unsigned k = cp - 0x100;
    for (unsigned i = 0; i < 256; i++) {
        if (!byte_is_kept(i)) {
            if (k == 0)
                return (int)i;
            k--;
        }
    }
    return -1;
}

/* ---- NFC ---- */

enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
       HANGUL_LC = 19, HANGUL_VC = 21, HANGUL_TC = 28, HANGUL_NC = 21 * 28, HANGUL_SC = 19 * 21 * 28 };

static unsigned ccc_of(uint32_t cp)
{
    if (cp < 0x300)
        return 0;
    size_t lo = 0, hi = uni_ccc_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < uni_ccc_table[mid].lo)
            hi = mid;
        else if (cp > uni_ccc_table[mid].hi)
            lo = mid + 1;
        else
            return uni_ccc_table[mid].ccc;
    }
    return 0;
}

static const struct uni_decomp *decomp_of(uint32_t cp)
{
    size_t lo = 0, hi = uni_decomp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < uni_decomp_table[mid].cp)
            hi = mid;
        else if (cp > uni_decomp_table[mid].cp)
            lo = mid + 1;
        else
            return &uni_decomp_table[mid];
    }
    return NULL;
}

static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LC && b >= HANGUL_V && b < HANGUL_V + HANGUL_VC)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VC + (b - HANGUL_V)) * HANGUL_TC;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SC && (a - HANGUL_S) % HANGUL_TC == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TC)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = uni_compose_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct uni_compose *c = &uni_compose_table[mid];
        if (a < c->first || (a == c->first && b < c->second))
            hi = mid;
        else if (a > c->first || b > c->second)
            lo = mid + 1;
        else
            return c->composite;
    }
    return 0;
}

/* Each decomposition level adds at most one code point and they are at most four deep, so the
 * result never exceeds UNI_DECOMP_MAX. */
size_t uni_decompose(uint32_t cp, uint32_t *cps)
{
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SC) {
        uint32_t s = cp - HANGUL_S;
        size_t n = 0;
        cps[n++] = HANGUL_L + s / HANGUL_NC;
        cps[n++] = HANGUL_V + (s % HANGUL_NC) / HANGUL_TC;
        if (s % HANGUL_TC)
            cps[n++] = HANGUL_T + s % HANGUL_TC;
        return n;
    }
    const struct uni_decomp *d = cp < 0xC0 ? NULL : decomp_of(cp);
    if (!d) {
        cps[0] = cp;
        return 1;
    }
    size_t n = uni_decompose(d->first, cps);
    if (d->second)
        n += uni_decompose(d->second, cps + n);
    return n;
}

bool uni_nfc(const char *s, size_t len, char **out, size_t *out_len)
{
    /* Fast path: text below U+0300 has no combining marks and nothing that NFC changes. */
    size_t i = 0;
    while (i < len && (unsigned char)s[i] < 0xCC)
        i++;
    if (i == len)
        return false;

    uint32_t *cps = malloc(sizeof(uint32_t) * (len * 4 + 4));
    if (!cps)
        return false;
    size_t n = 0;
    for (i = 0; i < len;) {
        uint32_t cp;
        size_t k = uni_decode(s + i, len - i, &cp);
        if (k == 0) {
            free(cps);
            return false; /* invalid UTF-8: leave the bytes alone */
        }
        n += uni_decompose(cp, cps + n);
        i += k;
    }
    /* Canonical ordering: stable insertion sort of each run of non-starters by combining class. */
    for (size_t a = 1; a < n; a++) {
        unsigned c = ccc_of(cps[a]);
        if (c == 0)
            continue;
        size_t b = a;
        uint32_t v = cps[a];
        while (b > 0 && ccc_of(cps[b - 1]) > c) {
            cps[b] = cps[b - 1];
            b--;
        }
        cps[b] = v;
    }
    /* Canonical composition: each character combines with the last starter unless a character of
     * equal or higher class (or a starter) stands between them. */
    size_t w = 0;
    size_t starter = (size_t)-1;
    unsigned last_ccc = 0;
    for (size_t a = 0; a < n; a++) {
        uint32_t cp = cps[a];
        unsigned c = ccc_of(cp);
        if (starter != (size_t)-1) {
            bool blocked = w > starter + 1 && (last_ccc == 0 || last_ccc >= c);
            if (!blocked) {
                uint32_t comp = compose_pair(cps[starter], cp);
                if (comp) {
                    cps[starter] = comp;
                    continue;
                }
            }
        }
        if (c == 0) {
            starter = w;
            last_ccc = 0;
        } else {
            last_ccc = c;
        }
        cps[w++] = cp;
    }
    char *buf = malloc(w * 4 + 1);
    if (!buf) {
        free(cps);
        return false;
    }
    size_t o = 0;
    for (size_t a = 0; a < w; a++)
        o += uni_encode(cps[a], buf + o);
    free(cps);
    buf[o] = '\0';
    if (o == len && memcmp(buf, s, len) == 0) {
        free(buf);
        return false;
    }
    *out = buf;
    *out_len = o;
    return true;
}
