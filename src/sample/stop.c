/* stop.c — stop strings over streamed text (see sample.h).
 *
 * Works on bytes. A stop string begins with a UTF-8 lead byte, and in valid UTF-8 a lead byte never
 * occurs inside a character, so with whole-character input every cut (a match, or the start of a
 * held-back prefix) falls on a character boundary. Stop strings with multi-byte characters match
 * even when the character itself is split across pushes. */
#include "sample/sample.h"

#include <stdlib.h>
#include <string.h>

struct stop_matcher {
    size_t n;
    char **stops;
    size_t *lens;
    size_t max_len;
    char *held; /* a proper prefix of some stop string, [max_len] */
    size_t held_len;
    bool stopped;
};

int stop_matcher_new(const char *const *stops, size_t n, struct stop_matcher **out, struct err *e)
{
    *out = NULL;
    if (n > 0 && !stops)
        return err_set(e, ERR_INVALID, "stop strings: %zu given but the list is missing", n);
    for (size_t i = 0; i < n; i++)
        if (!stops[i] || !stops[i][0])
            return err_set(e, ERR_INVALID,
                           "option \"stop\": stop string %zu is empty (it would stop before any text)",
                           i + 1);
    struct stop_matcher *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(e, ERR_NOMEM, "stop strings: out of memory");
    m->n = n;
    m->stops = calloc(n ? n : 1, sizeof *m->stops);
    m->lens = calloc(n ? n : 1, sizeof *m->lens);
    if (!m->stops || !m->lens)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(stops[i]);
        m->stops[i] = malloc(len + 1);
        if (!m->stops[i])
            goto nomem;
        memcpy(m->stops[i], stops[i], len + 1);
        m->lens[i] = len;
        if (len > m->max_len)
            m->max_len = len;
    }
    m->held = malloc(m->max_len ? m->max_len : 1);
    if (!m->held)
        goto nomem;
    *out = m;
    return 0;
nomem:
    stop_matcher_free(m);
    return err_set(e, ERR_NOMEM, "stop strings: out of memory");
}

void stop_matcher_free(struct stop_matcher *m)
{
    if (!m)
        return;
    if (m->stops)
        for (size_t i = 0; i < m->n; i++)
            free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->held);
    free(m);
}

void stop_matcher_reset(struct stop_matcher *m)
{
    m->held_len = 0;
    m->stopped = false;
}

/* First position >= from where needle occurs in hay, or (size_t)-1. */
static size_t find(const char *hay, size_t n, size_t from, const char *needle, size_t len)
{
    for (size_t i = from; i + len <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, len) == 0)
            return i;
    return (size_t)-1;
}

size_t stop_matcher_push(struct stop_matcher *m, const char *text, size_t len, char *out, bool *stopped)
{
    if (m->stopped) {
        *stopped = true;
        return 0;
    }
    *stopped = false;
    /* out doubles as the working buffer: held text, then the new text (memmove: text may be out). */
    size_t held = m->held_len;
    if (len)
        memmove(out + held, text, len);
    memcpy(out, m->held, held);
    size_t n = held + len;

    /* The held text holds no whole stop string (it would have matched already), so any match ends in
     * the new text. The earliest start wins: that is where the output must end. */
    size_t cut = (size_t)-1;
    for (size_t k = 0; k < m->n; k++) {
        size_t sl = m->lens[k];
        size_t from = held >= sl ? held - sl + 1 : 0;
        size_t at = find(out, n, from, m->stops[k], sl);
        if (at < cut)
            cut = at;
    }
    if (cut != (size_t)-1) {
        m->stopped = true;
        m->held_len = 0;
        *stopped = true;
        return cut;
    }

    /* Hold back the longest tail that could still grow into some stop string. */
    size_t keep = 0;
    for (size_t k = 0; k < m->n; k++) {
        size_t sl = m->lens[k];
        size_t most = sl - 1 < n ? sl - 1 : n;
        for (size_t t = most; t > keep; t--)
            if (memcmp(out + n - t, m->stops[k], t) == 0) {
                keep = t;
                break;
            }
    }
    memcpy(m->held, out + n - keep, keep);
    m->held_len = keep;
    return n - keep;
}

size_t stop_matcher_flush(struct stop_matcher *m, char *out)
{
    if (m->stopped)
        return 0;
    size_t n = m->held_len;
    memcpy(out, m->held, n);
    m->held_len = 0;
    return n;
}
