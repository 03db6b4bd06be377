/* toolcall.c — streaming split of model output into content, thinking and tool calls (toolcall.h).
 *
 * Unconsumed text waits in a buffer; each push appends to it and runs a small mode machine over it
 * until it needs more text. Tags are found by exact match; a buffer tail that is a proper prefix of
 * a tag is held back. Calls end where their JSON value ends (a bracket scanner that knows strings),
 * or at </tool_call> for Qwen. */
#include "template/toolcall.h"

#include <stdlib.h>
#include <string.h>

enum mode { M_THINK_START, M_THINK, M_AFTER_THINK, M_START, M_CONTENT, M_CALL };

struct sbuf {
    char *s;
    size_t len, cap;
};

struct toolcall_parser {
    enum toolcall_format fmt;
    bool thinking;
    enum mode mode;
    bool bare; /* M_CALL came from a bare JSON reply (Llama 3), not a tag */
    struct sbuf in, content, think, raw;
    json_t *calls;
};

static int sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *p = realloc(b->s, nc);
        if (!p)
            return -1;
        b->s = p;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

static void consume(struct toolcall_parser *p, size_t n)
{
    memmove(p->in.s, p->in.s + n, p->in.len - n);
    p->in.len -= n;
    p->in.s[p->in.len] = 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

enum toolcall_format toolcall_format_detect(const char *t)
{
    if (!t)
        return TOOLCALL_NONE;
    if (strstr(t, "<tool_call>"))
        return TOOLCALL_QWEN;
    if (strstr(t, "[TOOL_CALLS]"))
        return TOOLCALL_MISTRAL;
    if (strstr(t, "<|python_tag|>") || (strstr(t, "<|start_header_id|>") && strstr(t, "parameters")))
        return TOOLCALL_LLAMA3;
    return TOOLCALL_NONE;
}

bool toolcall_template_thinks(const char *t)
{
    return t && strstr(t, "<think>") != NULL;
}

int toolcall_parser_new(enum toolcall_format fmt, bool thinking, bool starts_thinking,
                        struct toolcall_parser **out, struct err *e)
{
    *out = NULL;
    struct toolcall_parser *p = calloc(1, sizeof *p);
    if (!p || !(p->calls = json_array()) || sb_add(&p->in, "", 0)) {
        if (p)
            json_decref(p->calls);
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory creating the tool-call parser");
    }
    p->fmt = fmt;
    p->thinking = thinking;
    p->mode = !thinking ? M_START : starts_thinking ? M_THINK : M_THINK_START;
    *out = p;
    return 0;
}

void toolcall_parser_free(struct toolcall_parser *p)
{
    if (!p)
        return;
    free(p->in.s);
    free(p->content.s);
    free(p->think.s);
    free(p->raw.s);
    json_decref(p->calls);
    free(p);
}

/* Length of the longest proper prefix of tag that ends the buffer (text to hold back). */
static size_t partial_tag(const char *s, size_t len, const char *tag)
{
    size_t tl = strlen(tag);
    for (size_t k = tl - 1; k > 0; k--)
        if (k <= len && memcmp(s + len - k, tag, k) == 0)
            return k;
    return 0;
}

static const char *open_tag(enum toolcall_format f)
{
    switch (f) {
    case TOOLCALL_LLAMA3:
        return "<|python_tag|>";
    case TOOLCALL_QWEN:
        return "<tool_call>";
    case TOOLCALL_MISTRAL:
        return "[TOOL_CALLS]";
    default:
        return NULL;
    }
}

/* End of the JSON value starting at s[0] ('{' or '['): its length, 0 if not complete yet, -1 if s
 * does not start one. */
static long json_extent(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (s[0] != '{' && s[0] != '[')
        return -1;
    int depth = 0;
    bool str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                str = false;
        } else if (c == '"') {
            str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return (long)i + 1;
        }
    }
    return 0;
}

/* Appends one call object normalised to {"name", "arguments"}; false if obj is not a call. */
static bool add_call(struct toolcall_parser *p, json_t *obj)
{
    if (!json_is_object(obj))
        return false;
    json_t *fn = json_object_get(obj, "function");
    if (json_is_object(fn)) /* OpenAI-style {"type":"function","function":{...}} */
        obj = fn;
    json_t *name = json_object_get(obj, "name");
    json_t *args = json_object_get(obj, "arguments");
    if (!args)
        args = json_object_get(obj, "parameters");
    if (!json_is_string(name))
        return false;
    json_t *a = NULL;
    if (!args)
        a = json_object();
    else if (json_is_string(args)) /* arguments given as JSON text */
        a = json_loads(json_string_value(args), 0, NULL);
    else if (json_is_object(args))
        a = json_incref(args);
    if (!json_is_object(a)) {
        json_decref(a);
        return false;
    }
    json_t *call = json_pack("{s:O,s:o}", "name", name, "arguments", a);
    return call && json_array_append_new(p->calls, call) == 0;
}

/* Parses one call payload (object, or array of objects). On failure nothing is added. */
static bool add_calls(struct toolcall_parser *p, const char *s, size_t len)
{
    json_t *v = json_loadb(s, len, 0, NULL);
    if (!v)
        return false;
    size_t before = json_array_size(p->calls);
    bool ok = true;
    if (json_is_array(v)) {
        for (size_t i = 0; ok && i < json_array_size(v); i++)
            ok = add_call(p, json_array_get(v, i));
        ok = ok && json_array_size(v) > 0;
    } else {
        ok = add_call(p, v);
    }
    json_decref(v);
    if (!ok)
        while (json_array_size(p->calls) > before)
            json_array_remove(p->calls, json_array_size(p->calls) - 1);
    return ok;
}

/* The call region failed to parse or ended early: give its raw text back as content. */
static int give_back(struct toolcall_parser *p)
{
    int rc = sb_add(&p->content, p->raw.s ? p->raw.s : "", p->raw.len);
    p->raw.len = 0;
    p->mode = M_CONTENT;
    return rc;
}

/* Runs the mode machine over the buffered input; final: no more text will come. */
static int run(struct toolcall_parser *p, bool final)
{
    for (;;) {
        char *s = p->in.s;
        size_t len = p->in.len;
        switch (p->mode) {
        case M_THINK_START: {
            size_t i = 0;
            while (i < len && is_space(s[i]))
                i++;
            size_t rest = len - i;
            if (rest >= 7 && memcmp(s + i, "<think>", 7) == 0) {
                consume(p, i + 7);
                p->mode = M_THINK;
                continue;
            }
            if (!final && memcmp(s + i, "<think>", rest) == 0)
                return 0; /* could still be the tag */
            p->mode = M_START;
            continue;
        }
        case M_THINK: {
            char *end = strstr(s, "</think>");
            if (end) {
                if (sb_add(&p->think, s, (size_t)(end - s)))
                    return -1;
                consume(p, (size_t)(end - s) + 8);
                p->mode = M_AFTER_THINK;
                continue;
            }
            size_t hold = final ? 0 : partial_tag(s, len, "</think>");
            if (sb_add(&p->think, s, len - hold))
                return -1;
            consume(p, len - hold);
            return 0;
        }
        case M_AFTER_THINK: {
            size_t i = 0;
            while (i < len && is_space(s[i]))
                i++;
            consume(p, i);
            if (p->in.len == 0 && !final)
                return 0;
            p->mode = M_START;
            continue;
        }
        case M_START: {
            /* Llama 3 may answer with a bare JSON call; wait for the first visible character. */
            if (p->fmt != TOOLCALL_LLAMA3) {
                p->mode = M_CONTENT;
                continue;
            }
            size_t i = 0;
            while (i < len && is_space(s[i]))
                i++;
            if (i == len && !final)
                return 0;
            if (i < len && s[i] == '{') {
                p->raw.len = 0;
                if (sb_add(&p->raw, s, i))
                    return -1;
                consume(p, i);
                p->bare = true;
                p->mode = M_CALL;
                continue;
            }
            p->mode = M_CONTENT;
            continue;
        }
        case M_CONTENT: {
            const char *tag = open_tag(p->fmt);
            char *at = tag ? strstr(s, tag) : NULL;
            if (at) {
                size_t pre = (size_t)(at - s), tl = strlen(tag);
                if (sb_add(&p->content, s, pre))
                    return -1;
                p->raw.len = 0;
                if (sb_add(&p->raw, at, tl))
                    return -1;
                consume(p, pre + tl);
                p->bare = false;
                p->mode = M_CALL;
                continue;
            }
            size_t hold = final || !tag ? 0 : partial_tag(s, len, tag);
            if (sb_add(&p->content, s, len - hold))
                return -1;
            consume(p, len - hold);
            return 0;
        }
        case M_CALL: {
            if (p->fmt == TOOLCALL_QWEN) {
                char *end = strstr(s, "</tool_call>");
                if (!end) {
                    if (!final)
                        return 0;
                    if (sb_add(&p->raw, s, len))
                        return -1;
                    consume(p, len);
                    return give_back(p);
                }
                size_t n = (size_t)(end - s);
                if (sb_add(&p->raw, s, n + 12))
                    return -1;
                bool ok = add_calls(p, s, n);
                consume(p, n + 12);
                if (ok)
                    p->raw.len = 0, p->mode = M_CONTENT;
                else if (give_back(p))
                    return -1;
                continue;
            }
            /* JSON payloads, possibly several (';' or ',' between Llama 3 calls). */
            size_t i = 0;
            while (i < len && (is_space(s[i]) || (s[i] == ';' && p->fmt == TOOLCALL_LLAMA3 && !p->raw.len)))
                i++;
            if (i == len) {
                if (!final)
                    return 0;
                if (sb_add(&p->raw, s, len))
                    return -1;
                consume(p, len);
                bool blank = true;
                for (size_t k = 0; k < p->raw.len && blank; k++)
                    blank = is_space(p->raw.s[k]);
                if (blank) { /* only whitespace after the calls taken from this region */
                    p->raw.len = 0;
                    p->mode = M_CONTENT;
                    return 0;
                }
                return give_back(p);
            }
            const char *name = NULL;
            size_t name_len = 0;
            if (p->fmt == TOOLCALL_MISTRAL && s[i] != '[' && s[i] != '{') {
                char *args = strstr(s + i, "[ARGS]");
                if (!args) {
                    if (!final && (size_t)(len - i) < 256)
                        return 0;
                    if (sb_add(&p->raw, s, len))
                        return -1;
                    consume(p, len);
                    return give_back(p);
                }
                name = s + i;
                name_len = (size_t)(args - name);
                i = (size_t)(args - s) + 6;
            }
            long ext = json_extent(s + i, len - i);
            if (ext == 0 && !final)
                return 0;
            if (ext <= 0) {
                /* Not (or no longer) a call: everything from here is content. */
                if (sb_add(&p->raw, s, len))
                    return -1;
                consume(p, len);
                if (give_back(p))
                    return -1;
                continue;
            }
            bool ok;
            if (name) {
                json_t *args = json_loadb(s + i, (size_t)ext, 0, NULL);
                json_t *obj = args ? json_pack("{s:s%,s:o}", "name", name, name_len, "arguments", args) : NULL;
                ok = obj && add_call(p, obj);
                json_decref(obj);
            } else {
                ok = add_calls(p, s + i, (size_t)ext);
            }
            if (sb_add(&p->raw, s, i + (size_t)ext))
                return -1;
            consume(p, i + (size_t)ext);
            if (!ok) {
                if (give_back(p))
                    return -1;
                continue;
            }
            p->raw.len = 0;
            /* Another call may follow (Mistral repeats [TOOL_CALLS]; Llama 3 separates with ';'). */
            if (p->fmt == TOOLCALL_MISTRAL || p->fmt == TOOLCALL_LLAMA3) {
                size_t k = 0;
                while (k < p->in.len && is_space(p->in.s[k]))
                    k++;
                if (k == p->in.len && !final)
                    return 0; /* wait to see what follows */
                if (k < p->in.len && (p->in.s[k] == ';' || p->in.s[k] == '{'))
                    continue;
            }
            p->mode = M_CONTENT;
            continue;
        }
        }
    }
}

static void fill(struct toolcall_parser *p, struct toolcall_delta *d)
{
    d->content = p->content.s ? p->content.s : "";
    d->content_len = p->content.len;
    d->thinking = p->think.s ? p->think.s : "";
    d->thinking_len = p->think.len;
    d->calls = p->calls;
}

static void start_delta(struct toolcall_parser *p)
{
    p->content.len = 0;
    p->think.len = 0;
    if (p->content.s)
        p->content.s[0] = 0;
    if (p->think.s)
        p->think.s[0] = 0;
    json_array_clear(p->calls);
}

int toolcall_push(struct toolcall_parser *p, const char *text, size_t len, struct toolcall_delta *d,
                  struct err *e)
{
    start_delta(p);
    if (sb_add(&p->in, text, len) || run(p, false))
        return err_set(e, ERR_NOMEM, "out of memory parsing tool calls");
    fill(p, d);
    return 0;
}

int toolcall_finish(struct toolcall_parser *p, struct toolcall_delta *d, struct err *e)
{
    start_delta(p);
    if (run(p, true))
        return err_set(e, ERR_NOMEM, "out of memory parsing tool calls");
    fill(p, d);
    return 0;
}
