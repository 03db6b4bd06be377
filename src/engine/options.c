/* options.c — Ollama's request options: defaults, JSON parsing with type checks, keep_alive. */
#include "engine/options.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void options_default(struct gen_options *o)
{
    memset(o, 0, sizeof *o);
    sample_params_default(&o->sampling);
    o->num_predict = -1;
    o->num_ctx = 0;
    o->num_keep = 4;
    o->num_batch = 512;
    o->num_thread = 0;
    o->num_gpu = -1;
}

void options_free(struct gen_options *o)
{
    for (size_t i = 0; i < o->n_stops; i++)
        free(o->stops[i]);
    o->n_stops = 0;
}

int options_set_stops(struct gen_options *o, const char *const *stops, size_t n, struct err *e)
{
    if (n > OPTIONS_MAX_STOPS)
        return err_set(e, ERR_INVALID, "option \"stop\" has %zu strings; at most %d are allowed", n,
                       OPTIONS_MAX_STOPS);
    options_free(o);
    for (size_t i = 0; i < n; i++) {
        if (!stops[i][0])
            continue; /* an empty stop string would stop before the first token */
        o->stops[o->n_stops] = strdup(stops[i]);
        if (!o->stops[o->n_stops])
            return err_set(e, ERR_NOMEM, "out of memory");
        o->n_stops++;
    }
    return 0;
}

/* Options Ollama removed: accepted silently so old clients keep working. */
static const char *const ignored[] = {"mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline",
                                      "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
                                      "numa", "tfs_z", "main_gpu", "use_mmap",
                                      "typical_p", "draft_num_predict"};

static int get_int(const char *key, const json_t *v, long long lo, long long hi, long long *out,
                   struct err *e)
{
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v))
        d = json_real_value(v); /* Go decodes every JSON number as float64 first */
    else
        return err_set(e, ERR_INVALID, "option \"%s\" must be of type integer", key);
    if (!isfinite(d) || d < (double)lo || d > (double)hi)
        return err_set(e, ERR_INVALID, "option \"%s\" is %g; it must be between %lld and %lld", key, d, lo,
                       hi);
    *out = json_is_integer(v) ? json_integer_value(v) : (long long)d;
    return 0;
}

static int get_float(const char *key, const json_t *v, double lo, double hi, float *out, struct err *e)
{
    if (!json_is_number(v))
        return err_set(e, ERR_INVALID, "option \"%s\" must be of type number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return err_set(e, ERR_INVALID, "option \"%s\" is %g; it must be between %g and %g", key, d, lo, hi);
    *out = (float)d;
    return 0;
}

int options_apply_json(struct gen_options *o, const json_t *obj, struct err *e)
{
    if (!obj || json_is_null(obj))
        return 0;
    if (!json_is_object(obj))
        return err_set(e, ERR_INVALID, "\"options\" must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (json_is_null(v))
            continue;
        long long l;
        int rc = 0;
        struct sample_params *s = &o->sampling;
        if (strcmp(key, "temperature") == 0)
            rc = get_float(key, v, 0, 100, &s->temperature, e);
        else if (strcmp(key, "top_p") == 0)
            rc = get_float(key, v, 0, 1, &s->top_p, e);
        else if (strcmp(key, "min_p") == 0)
            rc = get_float(key, v, 0, 1, &s->min_p, e);
        else if (strcmp(key, "repeat_penalty") == 0)
            rc = get_float(key, v, 0, 100, &s->repeat_penalty, e);
        else if (strcmp(key, "presence_penalty") == 0)
            rc = get_float(key, v, -100, 100, &s->presence_penalty, e);
        else if (strcmp(key, "frequency_penalty") == 0)
            rc = get_float(key, v, -100, 100, &s->frequency_penalty, e);
        else if (strcmp(key, "top_k") == 0) {
            if (!(rc = get_int(key, v, -1, 1 << 30, &l, e)))
                s->top_k = (int32_t)l;
        } else if (strcmp(key, "repeat_last_n") == 0) {
            if (!(rc = get_int(key, v, -1, 1 << 24, &l, e)))
                s->repeat_last_n = (int32_t)l;
        } else if (strcmp(key, "seed") == 0) {
            if (!(rc = get_int(key, v, INT64_MIN / 2, INT64_MAX / 2, &l, e)))
                s->seed = l < 0 ? -1 : l;
        } else if (strcmp(key, "num_predict") == 0) {
            if (!(rc = get_int(key, v, -2, 1 << 30, &l, e)))
                o->num_predict = l < 0 ? -1 : (int)l;
        } else if (strcmp(key, "num_ctx") == 0) {
            if (!(rc = get_int(key, v, 0, 1 << 24, &l, e)))
                o->num_ctx = (int)l;
        } else if (strcmp(key, "num_keep") == 0) {
            if (!(rc = get_int(key, v, -1, 1 << 24, &l, e)))
                o->num_keep = (int)l;
        } else if (strcmp(key, "num_batch") == 0) {
            if (!(rc = get_int(key, v, 1, 1 << 16, &l, e)))
                o->num_batch = (int)l;
        } else if (strcmp(key, "num_gpu") == 0) {
            if (!(rc = get_int(key, v, -1, 1 << 20, &l, e)))
                o->num_gpu = (int)l;
        } else if (strcmp(key, "num_thread") == 0) {
            if (!(rc = get_int(key, v, 0, 1024, &l, e)))
                o->num_thread = (int)l;
        } else if (strcmp(key, "stop") == 0) {
            const char *list[OPTIONS_MAX_STOPS];
            size_t n = 0;
            if (json_is_string(v)) {
                list[n++] = json_string_value(v);
            } else if (json_is_array(v)) {
                if (json_array_size(v) > OPTIONS_MAX_STOPS)
                    return err_set(e, ERR_INVALID, "option \"stop\" has %zu strings; at most %d are allowed",
                                   json_array_size(v), OPTIONS_MAX_STOPS);
                size_t i;
                json_t *it;
                json_array_foreach(v, i, it) {
                    if (!json_is_string(it))
                        return err_set(e, ERR_INVALID, "option \"stop\" must be of type array of strings");
                    list[n++] = json_string_value(it);
                }
            } else {
                return err_set(e, ERR_INVALID, "option \"stop\" must be of type array of strings");
            }
            rc = options_set_stops(o, list, n, e);
        } else {
            /* Unknown and removed options are ignored, as Ollama does. */
            (void)ignored;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int options_parse_duration(const char *s, long long *ns, struct err *e)
{
    const char *p = s;
    while (*p == ' ' || *p == '"')
        p++;
    char *end;
    double plain = strtod(p, &end);
    if (end != p && (*end == '\0' || *end == '"')) {
        /* A bare number is seconds (OLLAMA_KEEP_ALIVE="300"). */
        *ns = plain < 0 ? INT64_MAX : (long long)(plain * 1e9);
        return 0;
    }
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    double total = 0;
    bool any = false;
    while (*p && *p != '"') {
        double v = strtod(p, &end);
        if (end == p)
            return err_set(e, ERR_INVALID, "time: invalid duration \"%s\"", s);
        p = end;
        double unit;
        if (strncmp(p, "ns", 2) == 0)
            unit = 1, p += 2;
        else if (strncmp(p, "us", 2) == 0 || strncmp(p, "\xC2\xB5s", 3) == 0)
            unit = 1e3, p += (*p == 'u' ? 2 : 3);
        else if (strncmp(p, "ms", 2) == 0)
            unit = 1e6, p += 2;
        else if (*p == 's')
            unit = 1e9, p++;
        else if (*p == 'm')
            unit = 60e9, p++;
        else if (*p == 'h')
            unit = 3600e9, p++;
        else
            return err_set(e, ERR_INVALID, "time: missing or unknown unit in duration \"%s\"", s);
        total += v * unit;
        any = true;
    }
    if (!any)
        return err_set(e, ERR_INVALID, "time: invalid duration \"%s\"", s);
    if (neg)
        *ns = total == 0 ? 0 : INT64_MAX;
    else
        *ns = total > 9.2e18 ? INT64_MAX : (long long)total;
    return 0;
}

int options_parse_keep_alive(const json_t *v, long long *ns, struct err *e)
{
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!isfinite(d))
            return err_set(e, ERR_INVALID, "keep_alive must be a finite number of seconds");
        *ns = d < 0 ? INT64_MAX : (d > 9.2e9 ? INT64_MAX : (long long)(d * 1e9));
        return 0;
    }
    if (json_is_string(v)) {
        if (options_parse_duration(json_string_value(v), ns, e))
            return err_prefix(e, "keep_alive");
        return 0;
    }
    return err_set(e, ERR_INVALID, "keep_alive must be a number of seconds or a duration string like \"5m\"");
}
