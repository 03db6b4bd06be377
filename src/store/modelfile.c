/* modelfile.c — Modelfiles: Ollama's line-oriented recipe (FROM, PARAMETER, TEMPLATE, SYSTEM, MESSAGE,
 * LICENSE) parsed into a create request, PARAMETER values type-checked against Ollama's options, and
 * the reverse: rendering a stored model as a Modelfile and its parameters as `show` prints them. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/store_impl.h"

enum ptype { P_INT, P_FLOAT, P_BOOL, P_LIST };

static const struct {
    const char *name;
    enum ptype type;
} params[] = {
    {"num_ctx", P_INT},         {"num_batch", P_INT},       {"num_gpu", P_INT},
    {"main_gpu", P_INT},        {"use_mmap", P_BOOL},       {"num_thread", P_INT},
    {"draft_num_predict", P_INT}, {"num_keep", P_INT},      {"seed", P_INT},
    {"num_predict", P_INT},     {"top_k", P_INT},           {"top_p", P_FLOAT},
    {"min_p", P_FLOAT},         {"typical_p", P_FLOAT},     {"repeat_last_n", P_INT},
    {"temperature", P_FLOAT},   {"repeat_penalty", P_FLOAT}, {"presence_penalty", P_FLOAT},
    {"frequency_penalty", P_FLOAT}, {"stop", P_LIST},
};

/* Options Ollama has removed: a Modelfile naming them still builds, with a warning. */
static const char *const deprecated[] = {"mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline",
                                         "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
                                         "numa", "tfs_z"};

static bool is_deprecated(const char *name)
{
    for (size_t i = 0; i < sizeof deprecated / sizeof deprecated[0]; i++)
        if (strcasecmp(name, deprecated[i]) == 0)
            return true;
    return false;
}

static int add_param_json(json_t *obj, const char *name, const char *value, struct err *e)
{
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        if (strcasecmp(name, params[i].name) != 0)
            continue;
        const char *key = params[i].name;
        char *end;
        switch (params[i].type) {
        case P_INT: {
            errno = 0;
            long long v = strtoll(value, &end, 10);
            if (end == value || *end || errno)
                return err_set(e, ERR_INVALID, "invalid int value '%s' for parameter '%s'", value, key);
            json_object_set_new(obj, key, json_integer(v));
            return 0;
        }
        case P_FLOAT: {
            errno = 0;
            double v = strtod(value, &end);
            if (end == value || *end || errno || !isfinite(v))
                return err_set(e, ERR_INVALID, "invalid float value '%s' for parameter '%s'", value, key);
            json_object_set_new(obj, key, json_real(v));
            return 0;
        }
        case P_BOOL:
            if (strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0)
                json_object_set_new(obj, key, json_true());
            else if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0)
                json_object_set_new(obj, key, json_false());
            else
                return err_set(e, ERR_INVALID, "invalid bool value '%s' for parameter '%s'", value, key);
            return 0;
        case P_LIST: {
            json_t *arr = json_object_get(obj, key);
            if (!json_is_array(arr)) {
                arr = json_array();
                json_object_set_new(obj, key, arr);
            }
            json_array_append_new(arr, json_string(value));
            return 0;
        }
        }
    }
    return err_set(e, ERR_INVALID, "unknown parameter '%s'", name);
}

static char *dump(json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
}

int modelfile_add_param(char **params_json, const char *name, const char *value, struct err *e)
{
    json_t *obj = *params_json ? json_loads(*params_json, 0, NULL) : json_object();
    if (!json_is_object(obj)) {
        json_decref(obj);
        return err_set(e, ERR_FORMAT, "parameters are not a JSON object");
    }
    int rc = add_param_json(obj, name, value, e);
    if (!rc) {
        char *s = dump(obj);
        if (!s) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
        } else {
            free(*params_json);
            *params_json = s;
        }
    }
    json_decref(obj);
    return rc;
}

/* ---- parsing ---- */

struct cursor {
    const char *p;
    int line;
};

static void skip_blank(struct cursor *c)
{
    while (*c->p == ' ' || *c->p == '\t')
        c->p++;
}

/* Reads a value: """multi-line""", "single line" or bare text to the end of the line (trimmed). */
static int read_value(struct cursor *c, char **out, int start_line, struct err *e)
{
    skip_blank(c);
    const char *p = c->p;
    if (strncmp(p, "\"\"\"", 3) == 0) {
        p += 3;
        const char *end = strstr(p, "\"\"\"");
        if (!end)
            return err_set(e, ERR_FORMAT, "(line %d): unterminated \"\"\" (multi-line value never closed)",
                           start_line);
        for (const char *q = c->p; q < end; q++)
            if (*q == '\n')
                c->line++;
        *out = strndup(p, (size_t)(end - p));
        c->p = end + 3;
        while (*c->p && *c->p != '\n')
            c->p++;
    } else if (*p == '"') {
        p++;
        const char *end = p;
        while (*end && *end != '"' && *end != '\n')
            end++;
        if (*end != '"')
            return err_set(e, ERR_FORMAT, "(line %d): unterminated quoted value", start_line);
        *out = strndup(p, (size_t)(end - p));
        c->p = end + 1;
        while (*c->p && *c->p != '\n')
            c->p++;
    } else {
        const char *end = p;
        while (*end && *end != '\n')
            end++;
        const char *t = end;
        while (t > p && isspace((unsigned char)t[-1]))
            t--;
        *out = strndup(p, (size_t)(t - p));
        c->p = end;
    }
    return *out ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}

/* Reads one bare word (PARAMETER name, MESSAGE role). */
static int read_word(struct cursor *c, char **out, const char *what, int line, struct err *e)
{
    skip_blank(c);
    const char *p = c->p;
    while (*c->p && !isspace((unsigned char)*c->p))
        c->p++;
    if (c->p == p)
        return err_set(e, ERR_FORMAT, "(line %d): missing %s", line, what);
    *out = strndup(p, (size_t)(c->p - p));
    return *out ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}

static void add_warning(char *warn, size_t cap, const char *fmt, const char *a, int line)
{
    if (!warn || !cap)
        return;
    size_t len = strlen(warn);
    if (len < cap)
        snprintf(warn + len, cap - len, fmt, line, a);
}

int modelfile_parse(const char *text, struct modelfile *mf, char *warn, size_t warn_cap, struct err *e)
{
    memset(mf, 0, sizeof *mf);
    if (warn && warn_cap)
        warn[0] = '\0';
    struct cursor c = {text, 1};
    if (strncmp(c.p, "\xEF\xBB\xBF", 3) == 0)
        c.p += 3;
    json_t *params_obj = NULL, *msgs = NULL;
    int rc = 0;
    char *arg = NULL, *word = NULL;
    while (*c.p) {
        skip_blank(&c);
        if (*c.p == '\n' || *c.p == '\r') {
            if (*c.p == '\n')
                c.line++;
            c.p++;
            continue;
        }
        if (*c.p == '#') {
            while (*c.p && *c.p != '\n')
                c.p++;
            continue;
        }
        int line = c.line;
        const char *ip = c.p;
        while (*c.p && !isspace((unsigned char)*c.p))
            c.p++;
        size_t ilen = (size_t)(c.p - ip);
        char instr[16] = {0};
        if (ilen < sizeof instr)
            memcpy(instr, ip, ilen);
#define IS(x) (strcasecmp(instr, x) == 0)
        if (IS("FROM") || IS("TEMPLATE") || IS("SYSTEM") || IS("LICENSE")) {
            if ((rc = read_value(&c, &arg, line, e)))
                goto fail;
            if (!*arg && IS("FROM")) {
                rc = err_set(e, ERR_FORMAT, "(line %d): FROM needs a model name or a GGUF file", line);
                goto fail;
            }
            if (IS("LICENSE")) {
                char **nl = realloc(mf->licenses, (mf->n_licenses + 1) * sizeof *nl);
                if (!nl) {
                    rc = err_set(e, ERR_NOMEM, "out of memory");
                    goto fail;
                }
                mf->licenses = nl;
                nl[mf->n_licenses++] = arg;
            } else {
                char **slot = IS("FROM") ? &mf->from : IS("TEMPLATE") ? &mf->template_text : &mf->system;
                free(*slot);
                *slot = arg;
            }
            arg = NULL;
        } else if (IS("PARAMETER")) {
            if ((rc = read_word(&c, &word, "parameter name", line, e)) || (rc = read_value(&c, &arg, line, e)))
                goto fail;
            if (is_deprecated(word)) {
                add_warning(warn, warn_cap, "(line %d): parameter '%s' is deprecated and was ignored\n", word, line);
            } else {
                if (!params_obj)
                    params_obj = json_object();
                if ((rc = add_param_json(params_obj, word, arg, e))) {
                    err_prefix(e, "(line %d)", line);
                    goto fail;
                }
            }
            free(word);
            free(arg);
            word = arg = NULL;
        } else if (IS("MESSAGE")) {
            if ((rc = read_word(&c, &word, "message role", line, e)) || (rc = read_value(&c, &arg, line, e)))
                goto fail;
            if (strcmp(word, "system") != 0 && strcmp(word, "user") != 0 && strcmp(word, "assistant") != 0) {
                rc = err_set(e, ERR_FORMAT, "(line %d): message role must be one of \"system\", \"user\", or \"assistant\", not '%s'",
                             line, word);
                goto fail;
            }
            struct modelfile_message *nm = realloc(mf->messages, (mf->n_messages + 1) * sizeof *nm);
            if (!nm) {
                rc = err_set(e, ERR_NOMEM, "out of memory");
                goto fail;
            }
            mf->messages = nm;
            nm[mf->n_messages].role = word;
            nm[mf->n_messages].content = arg;
            mf->n_messages++;
            if (!msgs)
                msgs = json_array();
            json_t *o = json_object();
            json_object_set_new(o, "role", json_string(word));
            json_object_set_new(o, "content", json_string(arg));
            json_array_append_new(msgs, o);
            word = arg = NULL;
        } else if (IS("ADAPTER") || IS("DRAFT") || IS("RENDERER") || IS("PARSER")) {
            rc = err_set(e, ERR_UNSUPPORTED, "(line %d): %.*s is not supported by hearth%s", line, (int)ilen, ip,
                         IS("ADAPTER") ? " (LoRA adapters cannot be applied; merge the adapter into the weights first)" : "");
            goto fail;
        } else if (IS("REQUIRES")) {
            if ((rc = read_value(&c, &arg, line, e)))
                goto fail;
            add_warning(warn, warn_cap, "(line %d): REQUIRES %s ignored\n", arg, line);
            free(arg);
            arg = NULL;
        } else {
            rc = err_set(e, ERR_FORMAT,
                         "(line %d): command must be one of \"from\", \"license\", \"template\", \"system\", "
                         "\"parameter\", or \"message\" (got '%.*s')",
                         line, (int)(ilen > 40 ? 40 : ilen), ip);
            goto fail;
        }
#undef IS
    }
    if (!mf->from) {
        rc = err_set(e, ERR_FORMAT, "no FROM line");
        goto fail;
    }
    if (params_obj && !(mf->params_json = dump(params_obj))) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (msgs && !(mf->messages_json = dump(msgs))) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    json_decref(params_obj);
    json_decref(msgs);
    return 0;
fail:
    free(arg);
    free(word);
    json_decref(params_obj);
    json_decref(msgs);
    modelfile_free(mf);
    return rc;
}

void modelfile_free(struct modelfile *mf)
{
    if (!mf)
        return;
    free(mf->from);
    free(mf->template_text);
    free(mf->system);
    free(mf->params_json);
    for (size_t i = 0; i < mf->n_licenses; i++)
        free(mf->licenses[i]);
    free(mf->licenses);
    for (size_t i = 0; i < mf->n_messages; i++) {
        free(mf->messages[i].role);
        free(mf->messages[i].content);
    }
    free(mf->messages);
    free(mf->messages_json);
    memset(mf, 0, sizeof *mf);
}

void modelfile_to_req(const struct modelfile *mf, struct store_create_req *req)
{
    req->from = mf->from;
    req->template_text = mf->template_text;
    req->system = mf->system;
    req->params_json = mf->params_json;
    req->messages_json = mf->messages_json;
    req->licenses = (const char *const *)mf->licenses;
    req->n_licenses = mf->n_licenses;
}

/* ---- rendering ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void bput(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bput(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t nc = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return;
        b->p = np;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One value as Go's %#v prints it: strings quoted, numbers plain. */
static void put_value(struct buf *b, json_t *v)
{
    if (json_is_string(v)) {
        char *q = json_dumps(v, JSON_ENCODE_ANY);
        bput(b, "%s", q ? q : "\"\"");
        free(q);
    } else if (json_is_integer(v)) {
        bput(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        bput(b, "%.7g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        bput(b, "%s", json_is_true(v) ? "true" : "false");
    }
}

/* Calls fn for each parameter in name order, each list element separately. */
static void each_param(const char *params_json, void (*fn)(struct buf *, const char *, json_t *), struct buf *b)
{
    json_t *obj = params_json ? json_loads(params_json, 0, NULL) : NULL;
    if (!json_is_object(obj)) {
        json_decref(obj);
        return;
    }
    size_t n = json_object_size(obj), k = 0;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) keys[k++] = key;
    qsort(keys, k, sizeof *keys, cmp_str);
    for (size_t i = 0; i < k; i++) {
        v = json_object_get(obj, keys[i]);
        if (json_is_array(v)) {
            size_t j;
            json_t *el;
            json_array_foreach(v, j, el) fn(b, keys[i], el);
        } else {
            fn(b, keys[i], v);
        }
    }
    free(keys);
    json_decref(obj);
}

static void param_line(struct buf *b, const char *name, json_t *v)
{
    bput(b, "%-30s ", name);
    put_value(b, v);
    bput(b, "\n");
}

static void param_modelfile_line(struct buf *b, const char *name, json_t *v)
{
    bput(b, "PARAMETER %s ", name);
    if (json_is_string(v))
        bput(b, "%s", json_string_value(v));
    else
        put_value(b, v);
    bput(b, "\n");
}

char *store_params_text(const char *params_json)
{
    struct buf b = {0};
    bput(&b, "%s", "");
    each_param(params_json, param_line, &b);
    return b.p;
}

char *store_model_modelfile(const struct store_model *m)
{
    struct buf b = {0};
    bput(&b, "# Modelfile generated by \"hearth show\"\n# To build a new Modelfile based on this, replace FROM with:\n"
             "# FROM %s\n\n",
         m->name ? m->name : "");
    bput(&b, "FROM %s\n", m->model_path ? m->model_path : (m->name ? m->name : ""));
    if (m->template_text)
        bput(&b, "TEMPLATE \"\"\"%s\"\"\"\n", m->template_text);
    if (m->system)
        bput(&b, "SYSTEM \"\"\"%s\"\"\"\n", m->system);
    each_param(m->params_json, param_modelfile_line, &b);
    if (m->license)
        bput(&b, "LICENSE \"\"\"%s\"\"\"\n", m->license);
    json_t *msgs = m->messages_json ? json_loads(m->messages_json, 0, NULL) : NULL;
    size_t i;
    json_t *msg;
    json_array_foreach(msgs, i, msg)
    {
        const char *content = json_string_value(json_object_get(msg, "content"));
        bput(&b, "MESSAGE %s \"\"\"%s\"\"\"\n", json_string_value(json_object_get(msg, "role")),
             content ? content : "");
    }
    json_decref(msgs);
    return b.p;
}
