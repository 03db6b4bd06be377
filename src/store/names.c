/* names.c — model names: Ollama's [scheme://][host/][namespace/]model[:tag] grammar, its defaults and
 * display forms. Validation is also what keeps a name from escaping the store directory: every part
 * starts with [A-Za-z0-9_] (so never "." or ".."), and none may contain '/' or NUL. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "store/store.h"

enum part_kind { PART_HOST, PART_NS, PART_MODEL, PART_TAG };

static const char *part_label(enum part_kind k)
{
    switch (k) {
    case PART_HOST: return "host";
    case PART_NS: return "namespace";
    case PART_MODEL: return "model";
    default: return "tag";
    }
}

static int check_part(const char *whole, const char *p, size_t len, enum part_kind k, char *dst,
                      struct err *e)
{
    size_t max = k == PART_HOST ? STORE_HOST_MAX : STORE_PART_MAX;
    if (len == 0)
        return err_set(e, ERR_INVALID, "invalid model name '%s': empty %s", whole, part_label(k));
    if (len > max)
        return err_set(e, ERR_INVALID, "invalid model name '%s': %s longer than %zu characters", whole,
                       part_label(k), max);
    unsigned char c0 = (unsigned char)p[0];
    if (!(isalnum(c0) || c0 == '_'))
        return err_set(e, ERR_INVALID, "invalid model name '%s': %s must start with a letter, digit or '_'",
                       whole, part_label(k));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        bool ok = isalnum(c) || c == '_' || c == '-';
        if (k == PART_HOST)
            ok = ok || c == '.' || c == ':';
        else if (k == PART_MODEL || k == PART_TAG)
            ok = ok || c == '.';
        if (!ok || c >= 0x80)
            return err_set(e, ERR_INVALID, "invalid model name '%s': character '%c' not allowed in the %s",
                           whole, c >= 0x20 && c < 0x7f ? c : '?', part_label(k));
    }
    memcpy(dst, p, len);
    dst[len] = '\0';
    return 0;
}

int store_name_parse(const char *s, struct store_name *out, struct err *e)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return err_set(e, ERR_INVALID, "invalid model name: empty");
    size_t total = strlen(s);
    if (total > STORE_HOST_MAX + 3 * STORE_PART_MAX + 8)
        return err_set(e, ERR_INVALID, "invalid model name: longer than allowed");
    const char *p = s;
    const char *scheme = strstr(p, "://");
    if (scheme)
        p = scheme + 3;
    const char *end = p + strlen(p);
    /* A ':' after the last '/' starts the tag (a ':' before it belongs to a host's port). */
    const char *slash = strrchr(p, '/');
    const char *colon = strrchr(slash ? slash : p, ':');
    int rc;
    if (colon) {
        if ((rc = check_part(s, colon + 1, (size_t)(end - colon - 1), PART_TAG, out->tag, e)))
            return rc;
        end = colon;
    } else {
        strcpy(out->tag, STORE_DEFAULT_TAG);
    }
    const char *parts[4];
    size_t lens[4];
    int n = 0;
    const char *q = p;
    for (;;) {
        const char *sl = memchr(q, '/', (size_t)(end - q));
        if (n == 3)
            return err_set(e, ERR_INVALID, "invalid model name '%s': too many '/' (use host/namespace/model:tag)", s);
        parts[n] = q;
        lens[n] = sl ? (size_t)(sl - q) : (size_t)(end - q);
        n++;
        if (!sl)
            break;
        q = sl + 1;
    }
    if (n == 3 && (rc = check_part(s, parts[0], lens[0], PART_HOST, out->host, e)))
        return rc;
    if (n < 3)
        strcpy(out->host, STORE_DEFAULT_HOST);
    if (n >= 2 && (rc = check_part(s, parts[n - 2], lens[n - 2], PART_NS, out->ns, e)))
        return rc;
    if (n < 2)
        strcpy(out->ns, STORE_DEFAULT_NAMESPACE);
    return check_part(s, parts[n - 1], lens[n - 1], PART_MODEL, out->model, e);
}

void store_name_display(const struct store_name *n, char *buf, size_t cap)
{
    if (strcasecmp(n->host, STORE_DEFAULT_HOST) != 0)
        snprintf(buf, cap, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag);
    else if (strcasecmp(n->ns, STORE_DEFAULT_NAMESPACE) != 0)
        snprintf(buf, cap, "%s/%s:%s", n->ns, n->model, n->tag);
    else
        snprintf(buf, cap, "%s:%s", n->model, n->tag);
}

void store_name_full(const struct store_name *n, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag);
}

bool store_name_equal(const struct store_name *a, const struct store_name *b)
{
    return strcasecmp(a->host, b->host) == 0 && strcasecmp(a->ns, b->ns) == 0 &&
           strcasecmp(a->model, b->model) == 0 && strcasecmp(a->tag, b->tag) == 0;
}
