/* select.c — template selection, one render entry point over the Go and Jinja engines, and the
 * OpenAI-to-Ollama message conversion (see select.h). */
#include "template/select.h"

#include <stdlib.h>
#include <string.h>

#include "template/gotmpl.h"
#include "template/jinja.h"

struct tmpl {
    enum tmpl_kind kind;
    char *source;
    char *bos, *eos;
    struct gotmpl *go;
    struct jinja_template *jinja;
    bool go_messages; /* the Go template names .Messages: run once over the whole list */
    bool go_response; /* the Go template names .Response (else Ollama appends it) */
    bool go_suffix;   /* the Go template names .Suffix: it can fill in the middle */
};

static const char fallback_text[] = "{{ .Prompt }}";

static char *dupz(const char *s)
{
    return strdup(s ? s : "");
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    gotmpl_free(t->go);
    jinja_free(t->jinja);
    free(t->source);
    free(t->bos);
    free(t->eos);
    free(t);
}

int tmpl_new(enum tmpl_kind kind, const char *text, const char *bos, const char *eos, struct tmpl **out,
             struct err *e)
{
    *out = NULL;
    struct tmpl *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(e, ERR_NOMEM, "out of memory compiling a template");
    t->kind = kind;
    t->source = dupz(kind == TMPL_FALLBACK ? fallback_text : text);
    t->bos = dupz(bos);
    t->eos = dupz(eos);
    if (!t->source || !t->bos || !t->eos) {
        tmpl_free(t);
        return err_set(e, ERR_NOMEM, "out of memory compiling a template");
    }
    int rc;
    if (kind == TMPL_JINJA) {
        rc = jinja_compile(t->source, strlen(t->source), &t->jinja, e);
        if (rc)
            err_prefix(e, "chat template (Jinja)");
    } else {
        rc = gotmpl_parse(t->source, strlen(t->source), &t->go, e);
        if (rc)
            err_prefix(e, "TEMPLATE (Go)");
        else {
            t->go_messages = gotmpl_uses(t->go, "messages");
            t->go_response = gotmpl_uses(t->go, "response");
            t->go_suffix = kind == TMPL_GO && gotmpl_uses(t->go, "suffix");
        }
    }
    if (rc) {
        tmpl_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int tmpl_select(const char *go_text, const char *jinja_text, const char *bos, const char *eos, struct tmpl **out,
                struct err *e)
{
    if (go_text && *go_text)
        return tmpl_new(TMPL_GO, go_text, bos, eos, out, e);
    if (jinja_text && *jinja_text)
        return tmpl_new(TMPL_JINJA, jinja_text, bos, eos, out, e);
    return tmpl_new(TMPL_FALLBACK, NULL, bos, eos, out, e);
}

enum tmpl_kind tmpl_kind(const struct tmpl *t)
{
    return t->kind;
}

const char *tmpl_source(const struct tmpl *t)
{
    return t->source;
}

bool tmpl_supports_insert(const struct tmpl *t)
{
    return t && t->go_suffix;
}

bool tmpl_text_is_go(const char *text)
{
    if (strstr(text, "{%"))
        return false;
    for (const char *p = strstr(text, "{{"); p; p = strstr(p + 2, "{{")) {
        const char *q = p + 2;
        if (*q == '-')
            q++;
        while (*q == ' ' || *q == '\t' || *q == '\n')
            q++;
        /* {{ .Field, {{ range .X, {{ if .X, {{ $var: Go's data syntax; Jinja has no leading dot. */
        if (*q == '.' || *q == '$')
            return true;
        for (const char *kw = "range \0if \0with \0"; *kw; kw += strlen(kw) + 1)
            if (strncmp(q, kw, strlen(kw)) == 0) {
                const char *r = q + strlen(kw);
                while (*r == ' ')
                    r++;
                if (*r == '.' || *r == '$' || *r == '(')
                    return true;
            }
    }
    return false;
}

/* ---- Go data ---- */

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* set a member, failing on NULL (allocation) */
static int put_new(json_t *o, const char *key, json_t *v)
{
    if (!v)
        return ERR_NOMEM;
    return json_object_set_new(o, key, v) ? ERR_NOMEM : 0;
}

/* Checks one Ollama message's shape. A Jinja template gets messages as given (content parts or
 * objects are the template's business), so only Go templates need the rest of the shape. */
static int check_message(const json_t *m, size_t i, bool go, struct err *e)
{
    if (!json_is_object(m))
        return err_set(e, ERR_INVALID, "messages[%zu] must be an object", i);
    if (!json_is_string(json_object_get(m, "role")))
        return err_set(e, ERR_INVALID, "messages[%zu].role must be a string", i);
    if (!go)
        return 0;
    static const char *const strs[] = {"thinking", "tool_name", "tool_call_id"};
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++) {
        const json_t *v = json_object_get(m, strs[k]);
        if (v && !json_is_string(v) && !json_is_null(v))
            return err_set(e, ERR_INVALID, "messages[%zu].%s must be a string", i, strs[k]);
    }
    const json_t *c = json_object_get(m, "content");
    if (c && !json_is_string(c) && !json_is_null(c))
        return err_set(e, ERR_INVALID, "messages[%zu].content must be a string", i);
    const json_t *tc = json_object_get(m, "tool_calls");
    if (tc && !json_is_null(tc)) {
        if (!json_is_array(tc))
            return err_set(e, ERR_INVALID, "messages[%zu].tool_calls must be an array", i);
        size_t j;
        const json_t *call;
        json_array_foreach(tc, j, call) {
            const json_t *fn = json_object_get(call, "function");
            if (!json_is_object(fn) || !json_is_string(json_object_get(fn, "name")))
                return err_set(e, ERR_INVALID, "messages[%zu].tool_calls[%zu].function.name must be a string", i, j);
        }
    }
    return 0;
}

/* One tool call as Ollama's ToolCall struct: {id?, function: {index?, name, arguments}}, arguments
 * an object (a JSON string is decoded, as the /v1 layer would have). */
static json_t *go_tool_call(const json_t *call)
{
    const json_t *fn = json_object_get(call, "function");
    json_t *c = json_object(), *f = json_object();
    if (!c || !f)
        goto fail;
    const json_t *id = json_object_get(call, "id");
    if (json_is_string(id) && json_string_length(id) && json_object_set(c, "id", (json_t *)id))
        goto fail;
    const json_t *idx = json_object_get(fn, "index");
    if (json_is_integer(idx) && json_object_set(f, "index", (json_t *)idx))
        goto fail;
    if (json_object_set(f, "name", json_object_get(fn, "name")))
        goto fail;
    const json_t *args = json_object_get(fn, "arguments");
    json_t *a = NULL;
    if (json_is_string(args))
        a = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
    else if (args)
        a = json_incref((json_t *)args);
    if (!a || !json_is_object(a)) {
        json_decref(a);
        a = json_object();
    }
    if (put_new(f, "arguments", a) || put_new(c, "function", f))
        goto fail_c;
    return c;
fail:
    json_decref(f);
fail_c:
    json_decref(c);
    return NULL;
}

/* An Ollama message with every api.Message field present (Go's zero values), JSON names, struct
 * order; the template reads them through gotmpl's Go-name lookup. */
static json_t *go_message(const json_t *m)
{
    json_t *g = json_object();
    if (!g)
        return NULL;
    const json_t *c = json_object_get(m, "content");
    int rc = put_new(g, "role", json_string(str_or(m, "role", "")));
    rc = rc ? rc : put_new(g, "content", json_string(json_is_string(c) ? json_string_value(c) : ""));
    rc = rc ? rc : put_new(g, "thinking", json_string(str_or(m, "thinking", "")));
    const json_t *im = json_object_get(m, "images");
    rc = rc ? rc : put_new(g, "images", json_is_array(im) ? json_incref((json_t *)im) : json_array());
    json_t *calls = json_array();
    rc = rc ? rc : put_new(g, "tool_calls", calls);
    const json_t *tc = json_object_get(m, "tool_calls");
    size_t j;
    const json_t *call;
    if (rc == 0 && json_is_array(tc))
        json_array_foreach(tc, j, call) {
            if (json_array_append_new(calls, go_tool_call(call)))
                rc = ERR_NOMEM;
        }
    rc = rc ? rc : put_new(g, "tool_name", json_string(str_or(m, "tool_name", "")));
    rc = rc ? rc : put_new(g, "tool_call_id", json_string(str_or(m, "tool_call_id", "")));
    if (rc) {
        json_decref(g);
        return NULL;
    }
    return g;
}

/* Copies the named members of src present in it, in that order, then the rest in src's order. */
static json_t *ordered_copy(const json_t *src, const char *const *order, size_t n)
{
    json_t *o = json_object();
    if (!o || !json_is_object(src))
        return o;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(src, order[i]);
        if (v)
            json_object_set(o, order[i], v);
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)src, k, v) {
        if (!json_object_get(o, k))
            json_object_set(o, k, v);
    }
    return o;
}

/* Tools in the field order of Ollama's Tool / ToolFunction / ToolFunctionParameters /
 * ToolProperty structs, so that {{ .Function }} and {{ json $.Tools }} print as Ollama does. */
static json_t *go_tools(const json_t *tools)
{
    static const char *const tool_order[] = {"type", "items", "function"};
    static const char *const fn_order[] = {"name", "description", "parameters"};
    static const char *const par_order[] = {"type", "$defs", "items", "required", "properties"};
    static const char *const prop_order[] = {"type", "items", "description", "enum"};
    json_t *out = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *nt = ordered_copy(t, tool_order, 3);
        json_t *fn = ordered_copy(json_object_get(t, "function"), fn_order, 3);
        json_t *par = ordered_copy(json_object_get(json_object_get(t, "function"), "parameters"), par_order, 5);
        const json_t *props = json_object_get(par, "properties");
        if (json_is_object(props)) {
            json_t *np = json_object();
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)props, k, v) json_object_set_new(np, k, ordered_copy(v, prop_order, 4));
            json_object_set_new(par, "properties", np);
        }
        if (json_object_get(json_object_get(t, "function"), "parameters"))
            json_object_set_new(fn, "parameters", par);
        else
            json_decref(par);
        if (json_object_get(t, "function"))
            json_object_set_new(nt, "function", fn);
        else
            json_decref(fn);
        json_array_append_new(out, nt);
    }
    return out;
}

static int go_limits(const struct tmpl_input *in, struct gotmpl_limits *lim)
{
    lim->max_steps = in->limits.max_steps;
    lim->max_output = in->limits.max_output;
    return 0;
}

static void set_think(json_t *d, const struct tmpl_input *in)
{
    json_object_set_new(d, "Think", json_boolean(in->think == 1));
    json_object_set_new(d, "IsThinkSet", json_boolean(in->think >= 0));
    if (in->think_level)
        json_object_set_new(d, "ThinkLevel", json_string(in->think_level));
}

/* Appends s to a growing buffer (for the legacy per-turn path). */
static int cat(char **buf, size_t *len, const char *s, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);
    if (!p)
        return ERR_NOMEM;
    memcpy(p + *len, s, n);
    *len += n;
    p[*len] = 0;
    *buf = p;
    return 0;
}

/* One legacy execution with .System/.Prompt/.Response, appended to the output. Ollama appends
 * {{ .Response }} to a template that names neither .Messages nor .Response; that node is
 * reproduced by printing the response after the render. */
static int legacy_exec(const struct tmpl *t, const struct tmpl_input *in, const char *sys, const char *prompt,
                       const char *resp, bool last, char **buf, size_t *len, struct err *e)
{
    json_t *d = json_object();
    if (!d)
        return err_set(e, ERR_NOMEM, "out of memory rendering a template");
    json_object_set_new(d, "System", json_string(sys));
    json_object_set_new(d, "Prompt", json_string(prompt));
    json_object_set_new(d, "Response", json_string(resp));
    set_think(d, in);
    struct gotmpl_limits lim;
    go_limits(in, &lim);
    char *s = NULL;
    size_t n = 0;
    int rc = gotmpl_render_ex(t->go, d, &lim, last ? GOTMPL_CUT_AT_RESPONSE : 0, &s, &n, e);
    json_decref(d);
    if (rc == 0)
        rc = cat(buf, len, s, n);
    if (rc == 0 && !t->go_response)
        rc = cat(buf, len, resp, strlen(resp));
    free(s);
    if (rc == 0 && lim.max_output && *len > lim.max_output)
        rc = err_set(e, ERR_RANGE, "template: output exceeds %zu bytes", lim.max_output);
    return rc == ERR_NOMEM ? err_set(e, ERR_NOMEM, "out of memory rendering a template") : rc;
}

static int render_go(const struct tmpl *t, const struct tmpl_input *in, char **out, size_t *out_len, struct err *e)
{
    /* collate: merge consecutive same-role messages (not tool results), gather system texts */
    json_t *msgs = json_array();
    char *sys = strdup("");
    size_t sys_len = 0;
    bool any_sys = false;
    int rc = msgs && sys ? 0 : ERR_NOMEM;
    size_t i;
    const json_t *m;
    json_array_foreach(in->messages, i, m) {
        if (rc)
            break;
        const char *role = str_or(m, "role", "");
        const char *content = str_or(m, "content", "");
        if (strcmp(role, "system") == 0) {
            if (any_sys)
                rc = cat(&sys, &sys_len, "\n\n", 2);
            rc = rc ? rc : cat(&sys, &sys_len, content, strlen(content));
            any_sys = true;
        }
        size_t n = json_array_size(msgs);
        json_t *prev = n ? json_array_get(msgs, n - 1) : NULL;
        if (rc == 0 && prev && strcmp(str_or(prev, "role", ""), role) == 0 && strcmp(role, "tool") != 0) {
            const char *pc = str_or(prev, "content", "");
            size_t a = strlen(pc), b = strlen(content);
            char *merged = malloc(a + b + 3);
            if (!merged) {
                rc = ERR_NOMEM;
                break;
            }
            memcpy(merged, pc, a);
            memcpy(merged + a, "\n\n", 2);
            memcpy(merged + a + 2, content, b + 1);
            rc = put_new(prev, "content", json_string(merged));
            free(merged);
        } else if (rc == 0) {
            json_t *g = go_message(m);
            rc = g ? (json_array_append_new(msgs, g) ? ERR_NOMEM : 0) : ERR_NOMEM;
        }
    }
    if (rc) {
        json_decref(msgs);
        free(sys);
        return err_set(e, ERR_NOMEM, "out of memory rendering a template");
    }
    char *buf = NULL;
    size_t len = 0;
    if (t->go_messages) {
        json_t *d = json_object();
        json_object_set_new(d, "System", json_string(sys));
        json_object_set(d, "Messages", msgs);
        json_object_set_new(d, "Tools", in->tools && json_is_array(in->tools) ? go_tools(in->tools) : json_array());
        json_object_set_new(d, "Response", json_string(""));
        set_think(d, in);
        struct gotmpl_limits lim;
        go_limits(in, &lim);
        rc = gotmpl_render(t->go, d, &lim, &buf, &len, e);
        json_decref(d);
    } else {
        /* Ollama's legacy loop: one execution per (system?, user, assistant) turn. */
        const char *system = "", *prompt = "", *response = "";
        json_array_foreach(msgs, i, m) {
            const char *role = str_or(m, "role", ""), *content = str_or(m, "content", "");
            bool flush = (strcmp(role, "system") == 0 && (*prompt || *response)) ||
                         (strcmp(role, "user") == 0 && *response);
            if (flush) {
                if ((rc = legacy_exec(t, in, system, prompt, response, false, &buf, &len, e)))
                    break;
                system = prompt = response = "";
            }
            if (strcmp(role, "system") == 0)
                system = content;
            else if (strcmp(role, "user") == 0)
                prompt = content;
            else if (strcmp(role, "assistant") == 0)
                response = content;
        }
        if (rc == 0)
            rc = legacy_exec(t, in, system, prompt, response, true, &buf, &len, e);
        if (rc == 0 && !buf)
            rc = cat(&buf, &len, "", 0) ? err_set(e, ERR_NOMEM, "out of memory rendering a template") : 0;
    }
    json_decref(msgs);
    free(sys);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    if (out_len)
        *out_len = len;
    return 0;
}

/* ---- Jinja data ---- */

static int render_jinja(const struct tmpl *t, const struct tmpl_input *in, char **out, size_t *out_len,
                        struct err *e)
{
    json_t *ctx = json_object();
    json_t *msgs = json_array();
    if (!ctx || !msgs) {
        json_decref(ctx);
        json_decref(msgs);
        return err_set(e, ERR_NOMEM, "out of memory rendering a template");
    }
    json_object_set_new(ctx, "bos_token", json_string(t->bos));
    json_object_set_new(ctx, "eos_token", json_string(t->eos));
    if (in->think >= 0)
        json_object_set_new(ctx, "enable_thinking", json_boolean(in->think == 1));
    if (in->think_level)
        json_object_set_new(ctx, "reasoning_effort", json_string(in->think_level));
    if (json_is_object(in->extra))
        json_object_update(ctx, (json_t *)in->extra);
    size_t i;
    const json_t *m;
    json_array_foreach(in->messages, i, m) {
        json_t *c = json_copy((json_t *)m);
        const json_t *th = json_object_get(m, "thinking");
        if (json_is_string(th) && json_string_length(th) && !json_object_get(m, "reasoning_content"))
            json_object_set(c, "reasoning_content", (json_t *)th);
        const json_t *tn = json_object_get(m, "tool_name");
        if (json_is_string(tn) && !json_object_get(m, "name"))
            json_object_set(c, "name", (json_t *)tn);
        json_array_append_new(msgs, c);
    }
    json_object_set_new(ctx, "messages", msgs);
    if (in->tools && json_is_array(in->tools) && json_array_size(in->tools))
        json_object_set(ctx, "tools", (json_t *)in->tools);
    if (!json_object_get(ctx, "add_generation_prompt"))
        json_object_set_new(ctx, "add_generation_prompt", json_boolean(in->add_generation_prompt));
    struct jinja_limits lim = {.max_steps = in->limits.max_steps, .max_output = in->limits.max_output,
                               .now = in->now};
    int rc = jinja_render(t->jinja, ctx, &lim, out, out_len, e);
    json_decref(ctx);
    return rc;
}

/* Fill-in-the-middle: one plain execution with .Prompt and .Suffix (no messages, no legacy turn
 * loop, no appended .Response), which is how Ollama runs a template for a generate with a suffix. */
static int render_insert(const struct tmpl *t, const struct tmpl_input *in, char **out, size_t *out_len,
                         struct err *e)
{
    if (t->kind == TMPL_JINJA || !t->go_suffix)
        return err_set(e, ERR_INVALID, "the template does not use .Suffix: it cannot fill in the middle");
    json_t *d = json_object();
    if (!d)
        return err_set(e, ERR_NOMEM, "out of memory rendering a template");
    json_object_set_new(d, "Prompt", json_string(in->prompt ? in->prompt : ""));
    json_object_set_new(d, "Suffix", json_string(in->suffix));
    json_object_set_new(d, "Response", json_string(""));
    set_think(d, in);
    struct gotmpl_limits lim;
    go_limits(in, &lim);
    size_t n = 0;
    int rc = gotmpl_render(t->go, d, &lim, out, &n, e);
    json_decref(d);
    if (rc == 0 && out_len)
        *out_len = n;
    return rc;
}

int tmpl_render(const struct tmpl *t, const struct tmpl_input *in, char **out, size_t *out_len, struct err *e)
{
    *out = NULL;
    if (in->suffix)
        return render_insert(t, in, out, out_len, e);
    if (!json_is_array(in->messages))
        return err_set(e, ERR_INVALID, "messages must be an array of message objects");
    size_t i;
    const json_t *m;
    json_array_foreach(in->messages, i, m) {
        int rc = check_message(m, i, t->kind != TMPL_JINJA, e);
        if (rc)
            return rc;
    }
    if (in->tools && !json_is_null(in->tools) && !json_is_array(in->tools))
        return err_set(e, ERR_INVALID, "tools must be an array of tool objects");
    if (t->kind == TMPL_JINJA)
        return render_jinja(t, in, out, out_len, e);
    return render_go(t, in, out, out_len, e);
}

/* ---- OpenAI messages ---- */

/* The base64 payload of a data: URL of an image, as Ollama's compatibility layer accepts. */
static int image_data(const char *url, size_t idx, const char **b64, struct err *e)
{
    static const char *const prefixes[] = {"data:image/jpeg;base64,", "data:image/jpg;base64,",
                                           "data:image/png;base64,", "data:image/webp;base64,", "data:;base64,"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(url, prefixes[i], strlen(prefixes[i])) == 0) {
            *b64 = url + strlen(prefixes[i]);
            return 0;
        }
    if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0)
        return err_set(e, ERR_INVALID,
                       "messages[%zu]: image URLs are not currently supported, please use base64 encoded data instead",
                       idx);
    return err_set(e, ERR_INVALID, "messages[%zu]: invalid image input (expected a data:image/...;base64, URL)", idx);
}

static json_t *new_msg(const char *role)
{
    json_t *o = json_object();
    if (o)
        json_object_set_new(o, "role", json_string(role));
    return o;
}

int tmpl_messages_from_openai(const json_t *messages, json_t **out, struct err *e)
{
    *out = NULL;
    if (!json_is_array(messages))
        return err_set(e, ERR_INVALID, "messages must be an array of message objects");
    if (json_array_size(messages) == 0)
        return err_set(e, ERR_INVALID, "[] is too short - 'messages'");
    json_t *res = json_array();
    if (!res)
        return err_set(e, ERR_NOMEM, "out of memory");
    int rc = 0;
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            rc = err_set(e, ERR_INVALID, "messages[%zu].role must be a string", i);
            break;
        }
        const char *role = json_string_value(json_object_get(m, "role"));
        const json_t *content = json_object_get(m, "content");
        json_t *msg = new_msg(role);
        json_array_append_new(res, msg);
        if (json_is_string(content) || !content || json_is_null(content)) {
            json_object_set_new(msg, "content", json_string(json_is_string(content) ? json_string_value(content) : ""));
        } else if (json_is_array(content) && json_array_size(content) == 0) {
            json_object_set_new(msg, "content", json_string(""));
        } else if (json_is_array(content)) {
            /* every part its own message, as Ollama does */
            json_array_remove(res, json_array_size(res) - 1);
            msg = NULL;
            size_t j;
            const json_t *part;
            json_array_foreach(content, j, part) {
                const char *type = str_or(part, "type", "");
                json_t *pm = new_msg(role);
                json_array_append_new(res, pm);
                if (strcmp(type, "text") == 0 && json_is_string(json_object_get(part, "text"))) {
                    json_object_set(pm, "content", json_object_get(part, "text"));
                } else if (strcmp(type, "image_url") == 0) {
                    const json_t *iu = json_object_get(part, "image_url");
                    const char *url = json_is_string(iu) ? json_string_value(iu) : str_or(iu, "url", NULL);
                    const char *b64 = NULL;
                    if (!url) {
                        rc = err_set(e, ERR_INVALID, "messages[%zu].content[%zu].image_url must be a string or {url}", i, j);
                        break;
                    }
                    if ((rc = image_data(url, i, &b64, e)))
                        break;
                    json_object_set_new(pm, "content", json_string(""));
                    json_t *imgs = json_array();
                    json_array_append_new(imgs, json_string(b64));
                    json_object_set_new(pm, "images", imgs);
                } else {
                    rc = err_set(e, ERR_INVALID, "messages[%zu].content[%zu]: invalid message part type '%s'", i, j, type);
                    break;
                }
            }
            if (rc)
                break;
            msg = json_array_get(res, json_array_size(res) - 1);
        } else {
            rc = err_set(e, ERR_INVALID, "messages[%zu].content must be a string or an array of parts", i);
            break;
        }
        const json_t *reason = json_object_get(m, "reasoning");
        if (!json_is_string(reason))
            reason = json_object_get(m, "reasoning_content");
        if (json_is_string(reason) && json_string_length(reason))
            json_object_set(msg, "thinking", (json_t *)reason);
        const json_t *tc = json_object_get(m, "tool_calls");
        if (json_is_array(tc) && json_array_size(tc)) {
            json_t *calls = json_array();
            json_object_set_new(msg, "tool_calls", calls);
            size_t j;
            const json_t *call;
            json_array_foreach(tc, j, call) {
                const json_t *fn = json_object_get(call, "function");
                if (!json_is_string(json_object_get(fn, "name"))) {
                    rc = err_set(e, ERR_INVALID, "messages[%zu].tool_calls[%zu].function.name must be a string", i, j);
                    break;
                }
                const json_t *args = json_object_get(fn, "arguments");
                json_t *obj = NULL;
                if (json_is_string(args))
                    obj = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
                else if (json_is_object(args))
                    obj = json_incref((json_t *)args);
                else if (!args || json_is_null(args))
                    obj = json_object();
                if (!json_is_object(obj)) {
                    json_decref(obj);
                    rc = err_set(e, ERR_INVALID, "messages[%zu].tool_calls[%zu]: invalid tool call arguments", i, j);
                    break;
                }
                json_t *c = json_object(), *f = json_object();
                const json_t *id = json_object_get(call, "id");
                if (json_is_string(id))
                    json_object_set(c, "id", (json_t *)id);
                json_object_set_new(f, "index", json_integer((json_int_t)j));
                json_object_set(f, "name", json_object_get(fn, "name"));
                json_object_set_new(f, "arguments", obj);
                json_object_set_new(c, "function", f);
                json_array_append_new(calls, c);
            }
            if (rc)
                break;
        }
        if (strcmp(role, "tool") == 0) {
            const json_t *id = json_object_get(m, "tool_call_id");
            const json_t *name = json_object_get(m, "name");
            if (json_is_string(id))
                json_object_set(msg, "tool_call_id", (json_t *)id);
            if (json_is_string(name) && json_string_length(name)) {
                json_object_set(msg, "tool_name", (json_t *)name);
            } else if (json_is_string(id)) {
                /* the name of the earlier call with this id */
                for (size_t k = json_array_size(res); k-- > 0 && !json_object_get(msg, "tool_name");) {
                    const json_t *calls = json_object_get(json_array_get(res, k), "tool_calls");
                    size_t j;
                    const json_t *call;
                    json_array_foreach(calls, j, call) {
                        if (json_equal(json_object_get(call, "id"), (json_t *)id)) {
                            json_object_set(msg, "tool_name", json_object_get(json_object_get(call, "function"), "name"));
                            break;
                        }
                    }
                }
            }
        }
    }
    if (rc) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}
