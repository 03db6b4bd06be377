/* api_gen.c — the generating routes: Ollama's /api/generate and /api/chat (NDJSON streams or one
 * object) and OpenAI's /v1/chat/completions and /v1/completions (SSE or one object). All four parse
 * into one job: a model lease from the scheduler, prompt tokens, options; then one generation whose
 * text is split into content, reasoning and tool calls (toolcall.h) and framed per protocol.
 * "format" / response_format constrain sampling with a JSON grammar (grammar.h); tool_choice
 * "required" or a named function forces a call the same way. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "engine/chat.h"
#include "engine/generate.h"
#include "engine/options.h"
#include "model/model.h"
#include "sample/grammar.h"
#include "store/store.h"
#include "template/select.h"
#include "template/toolcall.h"
#include "server/server_internal.h"
#include "tokenizer/tokenizer.h"

enum kind { K_GENERATE, K_CHAT, K_OAI_CHAT, K_OAI_COMPLETION };

struct job {
    struct srv *s;
    enum kind kind;
    char *model;
    struct sched_lease lease;
    bool leased;
    long long keep_alive; /* -1: server default */
    int32_t *prompt;
    size_t n_prompt;
    struct gen_options opt;
    char *ps_name;        /* the store's name of the model (for /api/ps), or NULL */
    char ps_digest[65];
    char *mf_system;      /* the Modelfile's SYSTEM, used when the request has none */
    json_t *mf_messages;  /* the Modelfile's MESSAGEs, put before a chat's own */
    bool stream, include_usage, want_context;
    int64_t t_start;
    char *text;
    size_t text_len, text_cap;
    struct stream *st;
    char id[32];
    int64_t created;
    int32_t *out_tokens;
    size_t out_cap;
    long long load_ns;
    /* structured output, tools, thinking */
    json_t *format;          /* NULL, "json" or a JSON Schema object */
    int think;               /* -1 not set, 0 off, 1 on */
    char *think_level;
    json_t *tools;           /* the tools given to the template, or NULL */
    int tool_choice;         /* TC_* */
    char *tool_name;         /* TC_NAMED: the function to call */
    char *mf_template;       /* the Modelfile's TEMPLATE, or NULL */
    struct tmpl *override;   /* mf_template compiled */
    bool thinking;           /* reasoning is split off into "thinking" */
    struct toolcall_parser *tp;
    struct grammar *grammar;
    const char *forced_suffix; /* fed to the parser after a forced call's JSON */
    char *thinking_text;     /* non-streamed: the reasoning */
    size_t thinking_len, thinking_cap;
    json_t *calls;           /* every tool call so far (Ollama's shape) */
    bool truncated;          /* the prompt was cut to fit the context */
    size_t dropped_tokens;
    /* outcome */
    struct gen_stats stats;
    int rc;
    struct err err;
};

enum { TC_AUTO, TC_NONE, TC_REQUIRED, TC_NAMED };

static bool is_openai(enum kind k)
{
    return k == K_OAI_CHAT || k == K_OAI_COMPLETION;
}

static void job_free(void *p)
{
    struct job *j = p;
    if (j->leased)
        sched_release(j->s->sched, &j->lease, j->keep_alive);
    free(j->model);
    free(j->prompt);
    free(j->text);
    free(j->out_tokens);
    free(j->mf_system);
    free(j->ps_name);
    json_decref(j->mf_messages);
    json_decref(j->format);
    json_decref(j->tools);
    json_decref(j->calls);
    free(j->think_level);
    free(j->tool_name);
    free(j->mf_template);
    free(j->thinking_text);
    tmpl_free(j->override);
    toolcall_parser_free(j->tp);
    grammar_free(j->grammar);
    options_free(&j->opt);
    free(j);
}

static void fail(struct reply *r, bool openai, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct reply *r, bool openai, int status, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (openai)
        reply_oai_error(r, status, "%s", msg);
    else
        reply_error(r, status, "%s", msg);
}

static void now_str(char *buf)
{
    fmt_time(now_unix_ns(), buf, 48);
}

/* ---- framing ---- */

static json_t *oai_chunk(struct job *j)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", j->id, "object",
                     j->kind == K_OAI_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->model, "system_fingerprint", "fp_ollama");
}

static int write_json_line(struct job *j, json_t *o, bool sse)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    int rc;
    if (sse) {
        rc = stream_write(j->st, "data: ", 6);
        if (!rc)
            rc = stream_write(j->st, s, strlen(s));
        if (!rc)
            rc = stream_write(j->st, "\n\n", 2);
    } else {
        rc = stream_write(j->st, s, strlen(s));
        if (!rc)
            rc = stream_write(j->st, "\n", 1);
    }
    free(s);
    return rc;
}

static int buf_add(char **p, size_t *n, size_t *cap, const char *text, size_t len)
{
    if (*n + len + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        while (c < *n + len + 1)
            c *= 2;
        char *nb = realloc(*p, c);
        if (!nb)
            return -1;
        *p = nb;
        *cap = c;
    }
    memcpy(*p + *n, text, len);
    *n += len;
    (*p)[*n] = '\0';
    return 0;
}

/* Ollama's message.tool_calls from the parser's {name, arguments} objects, numbered from first. */
static json_t *ollama_calls(const json_t *calls, size_t first)
{
    json_t *arr = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        char id[32];
        snprintf(id, sizeof id, "call_%zu", first + i);
        json_array_append_new(arr, json_pack("{s:s,s:{s:I,s:O,s:O}}", "id", id, "function", "index",
                                             (json_int_t)(first + i), "name", json_object_get(c, "name"),
                                             "arguments", json_object_get(c, "arguments")));
    }
    return arr;
}

/* OpenAI's tool_calls: arguments as a JSON string, an id per call. */
static json_t *oai_calls(const json_t *calls, size_t first)
{
    json_t *arr = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        char id[32];
        snprintf(id, sizeof id, "call_%zu", first + i);
        char *args = json_dumps(json_object_get(c, "arguments"), JSON_COMPACT | JSON_ENCODE_ANY);
        json_array_append_new(arr, json_pack("{s:i,s:s,s:s,s:{s:O,s:s}}", "index", (int)(first + i), "id", id,
                                             "type", "function", "function", "name", json_object_get(c, "name"),
                                             "arguments", args ? args : "{}"));
        free(args);
    }
    return arr;
}

/* Frames one piece of output: visible text, reasoning and completed calls (any may be empty). */
static int emit_parts(struct job *j, const char *text, size_t len, const char *think, size_t think_len,
                      const json_t *calls)
{
    size_t n_calls = json_array_size(calls);
    size_t first = json_array_size(j->calls);
    if (n_calls && j->calls)
        json_array_extend(j->calls, (json_t *)calls);
    if (!j->stream) {
        if ((len && buf_add(&j->text, &j->text_len, &j->text_cap, text, len)) ||
            (think_len && buf_add(&j->thinking_text, &j->thinking_len, &j->thinking_cap, think, think_len)))
            return -1;
        return j->s->stopping || server_client_gone() ? -1 : 0;
    }
    if (!len && !think_len && !n_calls)
        return 0;
    json_t *piece = json_stringn(text, len);
    if (!piece)
        piece = json_string(""); /* cannot happen: the detokenizer emits whole UTF-8 characters */
    char ts[48];
    json_t *o;
    switch (j->kind) {
    case K_GENERATE:
        now_str(ts);
        o = json_pack("{s:s,s:s,s:o,s:b}", "model", j->model, "created_at", ts, "response", piece, "done", 0);
        if (think_len)
            json_object_set_new(o, "thinking", json_stringn(think, think_len));
        return write_json_line(j, o, false);
    case K_CHAT: {
        now_str(ts);
        json_t *m = json_pack("{s:s,s:o}", "role", "assistant", "content", piece);
        if (think_len)
            json_object_set_new(m, "thinking", json_stringn(think, think_len));
        if (n_calls)
            json_object_set_new(m, "tool_calls", ollama_calls(calls, first));
        o = json_pack("{s:s,s:s,s:o,s:b}", "model", j->model, "created_at", ts, "message", m, "done", 0);
        return write_json_line(j, o, false);
    }
    case K_OAI_CHAT: {
        o = oai_chunk(j);
        json_t *d = json_object();
        if (len || (!think_len && !n_calls))
            json_object_set_new(d, "content", piece);
        else
            json_decref(piece);
        if (think_len)
            json_object_set_new(d, "reasoning", json_stringn(think, think_len));
        if (n_calls)
            json_object_set_new(d, "tool_calls", oai_calls(calls, first));
        json_object_set_new(o, "choices", json_pack("[{s:i,s:o,s:n}]", "index", 0, "delta", d, "finish_reason"));
        return write_json_line(j, o, true);
    }
    case K_OAI_COMPLETION:
        o = oai_chunk(j);
        json_object_set_new(o, "choices",
                            json_pack("[{s:o,s:i,s:n}]", "text", piece, "index", 0, "finish_reason"));
        if (j->include_usage)
            json_object_set_new(o, "usage", json_pack("{s:i,s:i,s:i}", "prompt_tokens", 0, "completion_tokens", 0,
                                                      "total_tokens", 0));
        return write_json_line(j, o, true);
    }
    return -1;
}

static int emit(void *user, const char *text, size_t len)
{
    struct job *j = user;
    if (!j->tp)
        return emit_parts(j, text, len, NULL, 0, NULL);
    struct toolcall_delta d;
    struct err e = {0};
    if (toolcall_push(j->tp, text, len, &d, &e))
        return -1;
    return emit_parts(j, d.content, d.content_len, d.thinking, d.thinking_len, d.calls);
}

/* After generation: what the parser still holds (a forced call's closing tag first). */
static void emit_rest(struct job *j)
{
    if (!j->tp)
        return;
    struct toolcall_delta d;
    struct err e = {0};
    if (j->forced_suffix && strcmp(j->stats.done_reason, "stop") == 0 &&
        toolcall_push(j->tp, j->forced_suffix, strlen(j->forced_suffix), &d, &e) == 0)
        emit_parts(j, d.content, d.content_len, d.thinking, d.thinking_len, d.calls);
    if (toolcall_finish(j->tp, &d, &e) == 0)
        emit_parts(j, d.content, d.content_len, d.thinking, d.thinking_len, d.calls);
}

static void add_truncation(const struct job *j, json_t *o)
{
    if (j->truncated) {
        json_object_set_new(o, "truncated", json_true());
        json_object_set_new(o, "truncated_tokens", json_integer((json_int_t)j->dropped_tokens));
    }
}

/* The final Ollama object (metrics omitted when zero, as Ollama does). */
static json_t *ollama_final(struct job *j, const char *text)
{
    char ts[48];
    now_str(ts);
    const struct gen_stats *st = &j->stats;
    json_t *o = json_pack("{s:s,s:s}", "model", j->model, "created_at", ts);
    /* Non-streamed replies carry everything here; a stream's last object only the figures. */
    const char *think = j->stream ? NULL : j->thinking_text;
    if (j->kind == K_GENERATE) {
        json_object_set_new(o, "response", json_string(text));
        if (think && *think)
            json_object_set_new(o, "thinking", json_string(think));
    } else {
        json_t *m = json_pack("{s:s,s:s}", "role", "assistant", "content", text);
        if (think && *think)
            json_object_set_new(m, "thinking", json_string(think));
        if (!j->stream && json_array_size(j->calls))
            json_object_set_new(m, "tool_calls", ollama_calls(j->calls, 0));
        json_object_set_new(o, "message", m);
    }
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string(st->done_reason ? st->done_reason : "stop"));
    add_truncation(j, o);
    if (j->kind == K_GENERATE && j->want_context) {
        json_t *ctx = json_array();
        for (size_t i = 0; i < j->n_prompt; i++)
            json_array_append_new(ctx, json_integer(j->prompt[i]));
        size_t n = (size_t)st->eval_tokens < j->out_cap ? (size_t)st->eval_tokens : j->out_cap;
        for (size_t i = 0; i < n; i++)
            json_array_append_new(ctx, json_integer(j->out_tokens[i]));
        json_object_set_new(o, "context", ctx);
    }
    int64_t total = clock_ns() - j->t_start;
    struct {
        const char *k;
        long long v;
    } m[] = {{"total_duration", total},
             {"load_duration", j->load_ns},
             {"prompt_eval_count", st->prompt_tokens},
             {"prompt_eval_duration", st->prompt_ns},
             {"eval_count", st->eval_tokens},
             {"eval_duration", st->eval_ns}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i].v > 0)
            json_object_set_new(o, m[i].k, json_integer(m[i].v));
    return o;
}

static json_t *usage(const struct job *j)
{
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", j->stats.prompt_tokens, "completion_tokens",
                     j->stats.eval_tokens, "total_tokens", j->stats.prompt_tokens + j->stats.eval_tokens);
}

static const char *finish_reason(const struct job *j)
{
    if (j->stats.done_reason && strcmp(j->stats.done_reason, "length") == 0)
        return "length";
    return json_array_size(j->calls) ? "tool_calls" : "stop";
}

static json_t *oai_final(struct job *j)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", j->id, "object",
                          j->kind == K_OAI_CHAT ? "chat.completion" : "text_completion", "created",
                          (json_int_t)j->created, "model", j->model, "system_fingerprint", "fp_ollama");
    const char *text = j->text ? j->text : "";
    if (j->kind == K_OAI_CHAT) {
        json_t *m = json_pack("{s:s,s:s}", "role", "assistant", "content", text);
        if (j->thinking_text && *j->thinking_text)
            json_object_set_new(m, "reasoning", json_string(j->thinking_text));
        if (json_array_size(j->calls))
            json_object_set_new(m, "tool_calls", oai_calls(j->calls, 0));
        json_object_set_new(o, "choices",
                            json_pack("[{s:i,s:o,s:s}]", "index", 0, "message", m, "finish_reason", finish_reason(j)));
    } else
        json_object_set_new(o, "choices", json_pack("[{s:s,s:i,s:s}]", "text", text, "index", 0, "finish_reason",
                                                    finish_reason(j)));
    json_object_set_new(o, "usage", usage(j));
    add_truncation(j, o);
    return o;
}

static void run_generation(struct job *j)
{
    const char *stops[OPTIONS_MAX_STOPS];
    for (size_t i = 0; i < j->opt.n_stops; i++)
        stops[i] = j->opt.stops[i];
    struct gen_request req = {
        .prompt = j->prompt,
        .n_prompt = j->n_prompt,
        .max_tokens = j->opt.num_predict,
        .sampling = j->opt.sampling,
        .stops = stops,
        .n_stops = j->opt.n_stops,
        .forward_lock = j->lease.forward_lock,
        .out_tokens = j->out_tokens,
        .out_cap = j->out_cap,
        .kv_tokens = j->lease.kv_tokens,
        .n_kv_tokens = j->lease.n_kv_tokens,
        .grammar = j->grammar,
    };
    j->rc = generate(j->lease.ctx, &req, emit, j, &j->stats, &j->err);
    if (!j->rc && strcmp(j->stats.done_reason, "cancel") != 0)
        emit_rest(j);
    /* Release before the final chunk is written so a client that sends its next request as soon
     * as it sees done:true finds the slot free. */
    sched_release(j->s->sched, &j->lease, j->keep_alive);
    j->leased = false;
}

static void stream_job(struct stream *st, void *p)
{
    struct job *j = p;
    j->st = st;
    if (is_openai(j->kind) && j->kind == K_OAI_CHAT) {
        json_t *o = oai_chunk(j);
        json_object_set_new(o, "choices", json_pack("[{s:i,s:{s:s,s:s},s:n}]", "index", 0, "delta", "role",
                                                    "assistant", "content", "", "finish_reason"));
        if (write_json_line(j, o, true))
            goto release;
    }
    run_generation(j);
    if (j->rc) {
        if (is_openai(j->kind)) {
            write_json_line(j, json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", j->err.msg, "type", "api_error",
                                         "param", "code"),
                            true);
            stream_write(st, "data: [DONE]\n\n", 14);
        } else {
            write_json_line(j, json_pack("{s:s}", "error", j->err.msg), false);
        }
        return;
    }
    if (strcmp(j->stats.done_reason, "cancel") == 0)
        return; /* the client is gone (or the server is stopping): nothing more to say */
    if (!is_openai(j->kind)) {
        write_json_line(j, ollama_final(j, ""), false);
        return;
    }
    json_t *o = oai_chunk(j);
    if (j->kind == K_OAI_CHAT)
        json_object_set_new(o, "choices", json_pack("[{s:i,s:{},s:s}]", "index", 0, "delta", "finish_reason",
                                                    finish_reason(j)));
    else
        json_object_set_new(o, "choices", json_pack("[{s:s,s:i,s:s}]", "text", "", "index", 0, "finish_reason",
                                                    finish_reason(j)));
    add_truncation(j, o);
    if (write_json_line(j, o, true))
        return;
    if (j->include_usage) {
        o = oai_chunk(j);
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", usage(j));
        if (write_json_line(j, o, true))
            return;
    }
    stream_write(st, "data: [DONE]\n\n", 14);
    return;
release:
    if (j->leased) {
        sched_release(j->s->sched, &j->lease, j->keep_alive);
        j->leased = false;
    }
}

/* Keeps the first num_keep tokens and the most recent ones so that a quarter of the context is
 * left for the reply. */
static void truncate_prompt(struct job *j, int n_ctx)
{
    int keep = j->opt.num_keep < 0 ? 0 : j->opt.num_keep;
    int target = n_ctx - (n_ctx / 4 > 0 ? n_ctx / 4 : 1);
    if (keep > target / 2)
        keep = target / 2;
    size_t tail = (size_t)(target - keep);
    memmove(j->prompt + keep, j->prompt + j->n_prompt - tail, tail * sizeof *j->prompt);
    j->truncated = true;
    j->dropped_tokens = j->n_prompt - (size_t)target;
    fprintf(stderr, "hearth: truncating a prompt of %zu tokens to %d to fit the context of %d (model %s)\n",
            j->n_prompt, target, n_ctx, j->model);
    j->n_prompt = (size_t)target;
}

static const char *template_source(const struct job *j)
{
    return j->override ? tmpl_source(j->override) : j->lease.tpl->source;
}

/* The JSON a forced call must be: {"name": one of the tools, "arguments": its parameters}. */
static json_t *call_schema(const struct job *j, enum toolcall_format fmt)
{
    json_t *any = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(j->tools, i, t) {
        json_t *f = json_object_get(t, "function");
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!name || (j->tool_choice == TC_NAMED && strcmp(name, j->tool_name) != 0))
            continue;
        json_t *params = json_object_get(f, "parameters");
        const char *key = fmt == TOOLCALL_LLAMA3 ? "parameters" : "arguments";
        json_array_append_new(any, json_pack("{s:s,s:{s:{s:s},s:O},s:[s,s]}", "type", "object", "properties", "name",
                                             "const", name, key,
                                             json_is_object(params) ? params : json_pack("{s:s}", "type", "object"),
                                             "required", "name", key));
    }
    return json_pack("{s:o}", "anyOf", any);
}

/* Once the prompt text is known: whether reasoning is split off, how tool calls are parsed, and the
 * grammar for "format" or a forced call. *prompt_out gets the prompt with a forced call's opening
 * tag appended (malloc'd), or NULL to keep text. On failure fills r. */
static bool setup_output(struct job *j, const char *text, char **prompt_out, struct reply *r)
{
    bool openai = is_openai(j->kind);
    struct err e = {0};
    *prompt_out = NULL;
    if (j->kind == K_OAI_COMPLETION)
        return true;
    const char *src = template_source(j);
    j->thinking = j->think != 0 && toolcall_template_thinks(src);
    bool starts = false;
    if (j->thinking) {
        size_t n = strlen(text);
        while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
            n--;
        starts = n >= 7 && memcmp(text + n - 7, "<think>", 7) == 0;
    }
    bool use_tools = j->tools && j->tool_choice != TC_NONE;
    bool forced = use_tools && (j->tool_choice == TC_REQUIRED || j->tool_choice == TC_NAMED);
    enum toolcall_format fmt = use_tools ? toolcall_format_detect(src) : TOOLCALL_NONE;
    if (j->thinking || fmt != TOOLCALL_NONE) {
        if (toolcall_parser_new(fmt, j->thinking, starts, &j->tp, &e)) {
            fail(r, openai, 500, "%s", e.msg);
            return false;
        }
    }
    const char *prefix = NULL;
    if (forced) {
        /* The model is put inside a call: the prompt ends with the format's opening tag, the
         * grammar allows only a call's JSON, and the parser sees the whole call. */
        prefix = fmt == TOOLCALL_MISTRAL ? "[TOOL_CALLS][" : fmt == TOOLCALL_LLAMA3 ? "" : "<tool_call>\n";
        j->forced_suffix = fmt == TOOLCALL_MISTRAL ? "]" : fmt == TOOLCALL_LLAMA3 ? NULL : "\n</tool_call>";
        struct toolcall_delta d;
        if (*prefix && toolcall_push(j->tp, prefix, strlen(prefix), &d, &e)) {
            fail(r, openai, 500, "%s", e.msg);
            return false;
        }
    }
    if (forced || j->format) {
        json_t *schema = forced ? call_schema(j, fmt) : json_is_object(j->format) ? json_incref(j->format) : NULL;
        const struct grammar_vocab *gv = NULL;
        int rc = sched_grammar_vocab(&j->lease, &gv, &e);
        if (!rc)
            rc = grammar_new_json(gv, schema, &j->grammar, &e);
        json_decref(schema);
        /* Free reasoning first when it was asked for or the prompt opened it; otherwise the
         * constraint holds from the first token, so the format is kept even by a model that
         * would not have thought. */
        if (!rc && j->thinking && (j->think == 1 || starts))
            rc = grammar_set_trigger(j->grammar, "</think>", &e);
        if (rc) {
            fail(r, openai, rc == ERR_INVALID ? 400 : 500, "%s%s", rc == ERR_INVALID ? "invalid JSON schema in format: " : "",
                 e.msg);
            return false;
        }
    }
    if (prefix && *prefix) {
        size_t a = strlen(text), b = strlen(prefix);
        *prompt_out = malloc(a + b + 1);
        if (!*prompt_out) {
            fail(r, openai, 500, "out of memory");
            return false;
        }
        memcpy(*prompt_out, text, a);
        memcpy(*prompt_out + a, prefix, b + 1);
    }
    return true;
}

/* Shared tail of every generating route: tokenizes text with the leased model and starts the
 * generation (streamed or not). */
static void launch(struct job *j, const char *text, bool templated, bool truncate, const json_t *ctx_tokens,
                   struct reply *r)
{
    bool openai = is_openai(j->kind);
    const struct tokenizer *tok = j->lease.m->tok;
    int32_t *ids = NULL;
    size_t n = 0;
    struct err e = {0};
    bool add_special = !(ctx_tokens && json_array_size(ctx_tokens) > 0);
    char *forced_prompt = NULL;
    if (!setup_output(j, text, &forced_prompt, r)) {
        job_free(j);
        return;
    }
    if (forced_prompt)
        text = forced_prompt;
    int erc = tokenizer_encode(tok, text, strlen(text), add_special, templated, &ids, &n, &e);
    free(forced_prompt);
    if (erc) {
        fail(r, openai, 500, "%s", e.msg);
        job_free(j);
        return;
    }
    size_t nc = ctx_tokens ? json_array_size(ctx_tokens) : 0;
    j->prompt = malloc((nc + n + 1) * sizeof *j->prompt);
    if (!j->prompt) {
        free(ids);
        fail(r, openai, 500, "out of memory");
        job_free(j);
        return;
    }
    for (size_t i = 0; i < nc; i++) {
        json_int_t v = json_integer_value(json_array_get(ctx_tokens, i));
        if (!json_is_integer(json_array_get(ctx_tokens, i)) || v < 0 || v >= j->lease.m->hp.n_vocab) {
            free(ids);
            fail(r, openai, 400, "context[%zu] is not a token id of this model", i);
            job_free(j);
            return;
        }
        j->prompt[i] = (int32_t)v;
    }
    memcpy(j->prompt + nc, ids, n * sizeof *ids);
    free(ids);
    j->n_prompt = nc + n;
    if (j->n_prompt == 0) {
        int32_t bos = tokenizer_bos(tok);
        if (bos < 0) {
            fail(r, openai, 400, "the prompt is empty and the model has no BOS token to start from");
            job_free(j);
            return;
        }
        j->prompt[j->n_prompt++] = bos;
    }
    int n_ctx = j->lease.ctx->n_ctx;
    if ((int)j->n_prompt >= n_ctx) {
        if (!truncate) {
            fail(r, openai, 400, "the input length exceeds the context length");
            job_free(j);
            return;
        }
        truncate_prompt(j, n_ctx);
    }
    j->out_cap = j->want_context ? (size_t)n_ctx : 0;
    if (j->out_cap && !(j->out_tokens = malloc(j->out_cap * sizeof *j->out_tokens)))
        j->out_cap = 0;
    if (j->stream) {
        const char *ctype = openai ? "text/event-stream" : "application/x-ndjson";
        stream_start(j->s, r, 200, ctype, stream_job, j, job_free);
        return;
    }
    run_generation(j);
    if (j->rc) {
        fail(r, openai, http_status_for(j->rc), "%s", j->err.msg);
    } else if (openai) {
        reply_json(r, 200, oai_final(j));
    } else {
        reply_json(r, 200, ollama_final(j, j->text ? j->text : ""));
    }
    job_free(j);
}

/* ---- request parsing shared by the routes ---- */

static struct job *job_new(struct srv *s, enum kind kind, const char *model)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->s = s;
    j->kind = kind;
    j->model = strdup(model);
    j->keep_alive = -1;
    j->t_start = clock_ns();
    j->stream = true;
    j->created = now_unix_ns() / 1000000000LL;
    options_default(&j->opt);
    j->think = -1;
    j->calls = json_array();
    snprintf(j->id, sizeof j->id, "%s-%d", kind == K_OAI_CHAT ? "chatcmpl" : "cmpl", rand() % 999);
    if (!j->model || !j->calls) {
        json_decref(j->calls);
        free(j->model);
        free(j);
        return NULL;
    }
    return j;
}

static bool get_bool(const json_t *body, const char *key, bool def, bool *out, bool openai, struct reply *r)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return true;
    }
    if (!json_is_boolean(v)) {
        fail(r, openai, 400, "\"%s\" must be true or false", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* format / response_format, think, tools and tool_choice. On failure fills r. */
static bool parse_output_fields(struct job *j, const json_t *body, struct reply *r)
{
    bool openai = is_openai(j->kind);
    json_t *f = json_object_get(body, "format");
    if (openai) {
        json_t *rf = json_object_get(body, "response_format");
        f = NULL;
        if (rf && !json_is_null(rf)) {
            const char *type = json_string_value(json_object_get(rf, "type"));
            if (!json_is_object(rf) || !type) {
                fail(r, true, 400, "response_format must be an object with a \"type\"");
                return false;
            }
            if (strcmp(type, "json_object") == 0) {
                j->format = json_string("json");
            } else if (strcmp(type, "json_schema") == 0) {
                json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
                if (!json_is_object(schema)) {
                    fail(r, true, 400, "response_format.json_schema.schema must be a JSON Schema object");
                    return false;
                }
                j->format = json_incref(schema);
            } else if (strcmp(type, "text") != 0) {
                fail(r, true, 400, "response_format.type must be \"text\", \"json_object\" or \"json_schema\", not \"%s\"",
                     type);
                return false;
            }
        }
    } else if (f && !json_is_null(f)) {
        if (json_is_string(f) && strcmp(json_string_value(f), "json") == 0)
            j->format = json_string("json");
        else if (json_is_object(f))
            j->format = json_incref(f);
        else if (!(json_is_string(f) && !*json_string_value(f))) {
            fail(r, false, 400, "invalid format: \"format\" must be \"json\" or a JSON Schema object");
            return false;
        }
    }
    json_t *th = json_object_get(body, openai ? "reasoning_effort" : "think");
    if (openai && !th) {
        json_t *reasoning = json_object_get(body, "reasoning");
        th = json_object_get(reasoning, "effort");
    }
    if (th && !json_is_null(th)) {
        const char *lvl = json_string_value(th);
        if (json_is_boolean(th)) {
            j->think = json_is_true(th);
        } else if (lvl && (strcmp(lvl, "low") == 0 || strcmp(lvl, "medium") == 0 || strcmp(lvl, "high") == 0)) {
            j->think = 1;
            j->think_level = strdup(lvl);
        } else if (lvl && strcmp(lvl, "none") == 0) {
            j->think = 0;
        } else {
            fail(r, openai, 400, "%s must be true, false, \"low\", \"medium\" or \"high\"",
                 openai ? "reasoning_effort" : "think");
            return false;
        }
    }
    bool chat = j->kind == K_CHAT || j->kind == K_OAI_CHAT;
    json_t *tools = chat ? json_object_get(body, "tools") : NULL;
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools)) {
            fail(r, openai, 400, "\"tools\" must be an array of {\"type\": \"function\", \"function\": {...}}");
            return false;
        }
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t) {
            if (!json_is_string(json_object_get(json_object_get(t, "function"), "name"))) {
                fail(r, openai, 400, "tools[%zu].function.name must be a string", i);
                return false;
            }
        }
        if (json_array_size(tools))
            j->tools = json_incref(tools);
    }
    /* tool_choice is OpenAI's; hearth also takes it on /api/chat. */
    json_t *tc = chat ? json_object_get(body, "tool_choice") : NULL;
    if (tc && !json_is_null(tc)) {
        const char *v = json_string_value(tc);
        const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
        if (v && strcmp(v, "auto") == 0)
            j->tool_choice = TC_AUTO;
        else if (v && strcmp(v, "none") == 0)
            j->tool_choice = TC_NONE;
        else if (v && strcmp(v, "required") == 0)
            j->tool_choice = TC_REQUIRED;
        else if (name) {
            j->tool_choice = TC_NAMED;
            j->tool_name = strdup(name);
        } else {
            fail(r, openai, 400, "tool_choice must be \"auto\", \"none\", \"required\" or "
                                 "{\"type\": \"function\", \"function\": {\"name\": ...}}");
            return false;
        }
        if ((j->tool_choice == TC_REQUIRED || j->tool_choice == TC_NAMED) && !j->tools) {
            fail(r, openai, 400, "tool_choice \"%s\" needs \"tools\"", name ? name : v);
            return false;
        }
        if (j->tool_choice == TC_NAMED) {
            bool found = false;
            size_t i;
            json_t *t;
            json_array_foreach(j->tools, i, t) {
                const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
                found |= n && strcmp(n, name) == 0;
            }
            if (!found) {
                fail(r, openai, 400, "tool_choice names the function \"%s\", which is not in \"tools\"", name);
                return false;
            }
        }
    }
    return true;
}

/* Leases the model; on failure fills r. */
static bool lease(struct job *j, const char *path, struct reply *r)
{
    struct err e = {0};
    int rc = sched_acquire(j->s->sched, path, j->opt.num_ctx, j->opt.num_gpu, &j->lease, &e);
    if (rc) {
        int status = http_status_for(rc);
        if (rc == ERR_FORMAT || rc == ERR_UNSUPPORTED || rc == ERR_IO)
            status = 500;
        fail(r, is_openai(j->kind), status, "%s", e.msg);
        return false;
    }
    j->leased = true;
    j->load_ns = j->lease.load_ns;
    sched_label(j->s->sched, path, j->ps_name ? j->ps_name : j->model, j->ps_name ? j->ps_digest : NULL);
    return true;
}

/* Common front half: model, options, keep_alive, stream. Returns the job or NULL (r filled). */
static struct job *begin(struct srv *s, const json_t *body, enum kind kind, char **path, struct reply *r)
{
    bool openai = is_openai(kind);
    json_t *mv = json_object_get(body, "model");
    if (mv && !json_is_string(mv)) {
        fail(r, openai, 400, "\"model\" must be a string");
        return NULL;
    }
    const char *name = mv ? json_string_value(mv) : "";
    if (kind != K_GENERATE && !*name) {
        fail(r, openai, 400, "model is required");
        return NULL;
    }
    struct err e = {0};
    struct store_model sm;
    if (resolve_model_store(s, name, path, &sm, &e)) {
        if (openai)
            fail(r, true, 404, "model \"%s\" not found, try pulling it first", name);
        else
            fail(r, false, http_status_for(e.code), "%s", e.msg);
        return NULL;
    }
    struct job *j = job_new(s, kind, name);
    if (!j) {
        store_model_free(&sm);
        free(*path);
        fail(r, openai, 500, "out of memory");
        return NULL;
    }
    /* Precedence: request options > the Modelfile's PARAMETERs > built-in defaults, so the
     * Modelfile's go on first. */
    if (sm.params_json) {
        json_t *mp = json_loads(sm.params_json, 0, NULL);
        int rc = options_apply_json(&j->opt, mp, &e);
        json_decref(mp);
        if (rc) {
            fail(r, openai, 500, "model '%s' has invalid stored parameters: %s", name, e.msg);
            store_model_free(&sm);
            goto bad;
        }
    }
    if (sm.system && *sm.system)
        j->mf_system = strdup(sm.system);
    if (sm.template_text && *sm.template_text)
        j->mf_template = strdup(sm.template_text);
    if (sm.name) {
        j->ps_name = strdup(sm.name);
        memcpy(j->ps_digest, sm.digest, sizeof j->ps_digest);
    } else if (strcmp(*path, name) != 0 && !strchr(name, '/') && !strchr(name, ':') && strlen(name) < 400) {
        /* A file of the flat models directory asked for by its stem: shown as Ollama shows names. */
        char buf[420];
        snprintf(buf, sizeof buf, "%s:latest", name);
        j->ps_name = strdup(buf);
    }
    if (sm.messages_json) {
        j->mf_messages = json_loads(sm.messages_json, 0, NULL);
        if (!json_is_array(j->mf_messages) || json_array_size(j->mf_messages) == 0) {
            json_decref(j->mf_messages);
            j->mf_messages = NULL;
        }
    }
    store_model_free(&sm);
    if (!get_bool(body, "stream", !openai, &j->stream, openai, r))
        goto bad;
    if (openai) {
        /* OpenAI semantics: absent temperature/top_p mean 1.0 (Ollama forces the same). */
        j->opt.sampling.temperature = 1.0f;
        j->opt.sampling.top_p = 1.0f;
        json_t *so = json_object_get(body, "stream_options");
        if (json_is_object(so))
            j->include_usage = json_is_true(json_object_get(so, "include_usage"));
        /* OpenAI fields are mapped onto Ollama options and validated by the same code. */
        json_t *o = json_object();
        const char *map[][2] = {{"temperature", "temperature"},   {"top_p", "top_p"},
                                {"seed", "seed"},                 {"frequency_penalty", "frequency_penalty"},
                                {"presence_penalty", "presence_penalty"}, {"max_tokens", "num_predict"},
                                {"max_completion_tokens", "num_predict"}, {"stop", "stop"}};
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
            json_t *v = json_object_get(body, map[i][0]);
            if (v && !json_is_null(v))
                json_object_set(o, map[i][1], v);
        }
        e.msg[0] = '\0';
        int rc = options_apply_json(&j->opt, o, &e);
        json_decref(o);
        if (rc) {
            /* Name the OpenAI field, not the Ollama option it maps to. */
            fail(r, true, 400, "%s", e.msg);
            goto bad;
        }
    }
    /* hearth extension on /v1 too: "options" and "keep_alive" (Ollama ignores them there). */
    if (options_apply_json(&j->opt, json_object_get(body, "options"), &e)) {
        fail(r, openai, 400, "%s", e.msg);
        goto bad;
    }
    if (options_parse_keep_alive(json_object_get(body, "keep_alive"), &j->keep_alive, &e)) {
        fail(r, openai, 400, "%s", e.msg);
        goto bad;
    }
    if (!parse_output_fields(j, body, r))
        goto bad;
    return j;
bad:
    free(*path);
    *path = NULL;
    job_free(j);
    return NULL;
}

/* Empty prompt / messages: load, or unload with keep_alive 0. */
static void load_or_unload(struct job *j, const char *path, struct reply *r)
{
    const char *reason;
    if (j->keep_alive == 0) {
        sched_unload(j->s->sched, path);
        reason = "unload";
    } else {
        if (!lease(j, path, r)) {
            job_free(j);
            return;
        }
        reason = "load";
    }
    char ts[48];
    now_str(ts);
    json_t *o = json_pack("{s:s,s:s}", "model", j->model, "created_at", ts);
    if (j->kind == K_GENERATE)
        json_object_set_new(o, "response", json_string(""));
    else
        json_object_set_new(o, "message", json_pack("{s:s,s:s}", "role", "assistant", "content", ""));
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string(reason));
    reply_json(r, 200, o);
    job_free(j); /* releases the lease with the request's keep_alive */
}

static bool render(struct job *j, json_t *messages, char **text, bool *templated, struct reply *r)
{
    struct err e = {0};
    bool openai = is_openai(j->kind);
    const struct chat_template *ct = j->lease.tpl;
    if (j->mf_template && !j->override) {
        enum tmpl_kind k = tmpl_text_is_go(j->mf_template) ? TMPL_GO : TMPL_JINJA;
        if (tmpl_new(k, j->mf_template, ct->bos, ct->eos, &j->override, &e)) {
            fail(r, openai, 500, "model '%s' has a TEMPLATE that does not compile: %s", j->model, e.msg);
            return false;
        }
    }
    const char *src = template_source(j);
    if (j->tools && j->tool_choice != TC_NONE && toolcall_format_detect(src) == TOOLCALL_NONE) {
        fail(r, openai, 400, "%s does not support tools", j->model);
        return false;
    }
    if (j->think == 1 && !toolcall_template_thinks(src)) {
        fail(r, openai, 400, "\"%s\" does not support thinking", j->model);
        return false;
    }
    bool forced = j->tools && (j->tool_choice == TC_REQUIRED || j->tool_choice == TC_NAMED);
    struct chat_render_opts ro = {
        .tools = j->tool_choice == TC_NONE ? NULL : j->tools,
        /* A forced call is answered at once: no reasoning before it. */
        .think = forced && toolcall_template_thinks(src) ? 0 : j->think,
        .think_level = forced ? NULL : j->think_level,
        .override = j->override,
    };
    if (forced)
        j->think = ro.think;
    json_t *all = json_incref(messages);
    if (j->kind == K_CHAT || j->kind == K_OAI_CHAT) {
        /* The Modelfile's SYSTEM unless the chat brings its own, then its MESSAGEs, then the chat. */
        bool has_system = false;
        size_t i;
        json_t *m;
        json_array_foreach(messages, i, m) {
            const char *role = json_string_value(json_object_get(m, "role"));
            if (role && strcmp(role, "system") == 0)
                has_system = true;
        }
        if ((j->mf_system && !has_system) || j->mf_messages) {
            json_decref(all);
            all = json_array();
            if (j->mf_system && !has_system)
                json_array_append_new(all, json_pack("{s:s,s:s}", "role", "system", "content", j->mf_system));
            if (j->mf_messages)
                json_array_extend(all, j->mf_messages);
            json_array_extend(all, messages);
        }
    }
    int rc = chat_render(ct, all, &ro, text, templated, &e);
    json_decref(all);
    if (rc) {
        fail(r, is_openai(j->kind), 400, "%s", e.msg);
        return false;
    }
    return true;
}

/* The tail of the message-based routes: renders the messages through the model's template and starts
 * the generation. On a refusal the reply is already written and the job is freed. */
static void render_and_launch(struct job *j, json_t *messages, bool truncate, struct reply *r)
{
    char *text = NULL;
    bool templated = false;
    if (!render(j, messages, &text, &templated, r)) {
        job_free(j);
        return;
    }
    launch(j, text, templated, truncate, NULL, r);
    free(text);
}

/* The template a generate request uses instead of the model's: its own "template" (always a Go
 * template, as Ollama parses it), else the Modelfile's TEMPLATE when that is Go. Go templates do
 * not use the vocabulary's BOS/EOS texts, so this runs before the model is loaded and a refusal
 * costs no load. A Jinja Modelfile TEMPLATE is left to render(). */
static bool generate_override(struct job *j, const char *req_tmpl, struct reply *r)
{
    struct err e = {0};
    if (*req_tmpl) {
        if (tmpl_new(TMPL_GO, req_tmpl, NULL, NULL, &j->override, &e)) {
            fail(r, false, 400, "invalid \"template\": %s", e.msg);
            return false;
        }
    } else if (j->mf_template && tmpl_text_is_go(j->mf_template)) {
        if (tmpl_new(TMPL_GO, j->mf_template, NULL, NULL, &j->override, &e)) {
            fail(r, false, 500, "model '%s' has a TEMPLATE that does not compile: %s", j->model, e.msg);
            return false;
        }
    }
    return true;
}

/* Fill-in-the-middle: the Go template run once with .Prompt and .Suffix (generate_override has
 * checked that it names .Suffix). A leading BOS text is dropped when the tokenizer adds BOS, as
 * chat_render does. */
static bool render_insert(struct job *j, const char *prompt, const char *suffix, char **text, struct reply *r)
{
    struct err e = {0};
    struct tmpl_input in = {.think = j->think, .think_level = j->think_level, .prompt = prompt, .suffix = suffix};
    size_t len = 0;
    if (tmpl_render(j->override, &in, text, &len, &e)) {
        fail(r, false, 400, "template: %s", e.msg);
        return false;
    }
    const struct chat_template *ct = j->lease.tpl;
    size_t bl = ct->bos ? strlen(ct->bos) : 0;
    if (ct->add_bos && bl && len >= bl && memcmp(*text, ct->bos, bl) == 0)
        memmove(*text, *text + bl, len - bl + 1);
    return true;
}

void api_generate(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, false);
    if (!body)
        return;
    char *path = NULL;
    struct job *j = begin(s, body, K_GENERATE, &path, r);
    if (!j)
        goto out;
    json_t *pv = json_object_get(body, "prompt"), *sys = json_object_get(body, "system");
    json_t *ctx = json_object_get(body, "context");
    json_t *tv = json_object_get(body, "template"), *sv = json_object_get(body, "suffix");
    if ((pv && !json_is_string(pv) && !json_is_null(pv)) || (sys && !json_is_string(sys) && !json_is_null(sys)) ||
        (tv && !json_is_string(tv) && !json_is_null(tv)) || (sv && !json_is_string(sv) && !json_is_null(sv))) {
        fail(r, false, 400, "\"prompt\", \"system\", \"template\" and \"suffix\" must be strings");
        job_free(j);
        goto out;
    }
    if (ctx && !json_is_null(ctx) && !json_is_array(ctx)) {
        fail(r, false, 400, "\"context\" must be an array of token ids");
        job_free(j);
        goto out;
    }
    bool raw = false, truncate = true;
    if (!get_bool(body, "raw", false, &raw, false, r) || !get_bool(body, "truncate", true, &truncate, false, r)) {
        job_free(j);
        goto out;
    }
    const char *req_tmpl = json_is_string(tv) ? json_string_value(tv) : "";
    const char *suffix = json_is_string(sv) ? json_string_value(sv) : "";
    if (raw && (*req_tmpl || (sys && json_is_string(sys)) || json_is_array(ctx))) {
        fail(r, false, 400, "raw mode does not support template, system, or context");
        job_free(j);
        goto out;
    }
    if (!generate_override(j, req_tmpl, r)) {
        job_free(j);
        goto out;
    }
    /* Ollama's "insert" capability: the template in use names .Suffix. */
    if (*suffix && !tmpl_supports_insert(j->override)) {
        fail(r, false, 400, "%s does not support insert", j->model);
        job_free(j);
        goto out;
    }
    const char *prompt = json_is_string(pv) ? json_string_value(pv) : "";
    if (!*prompt && !(json_is_array(ctx) && json_array_size(ctx))) {
        load_or_unload(j, path, r);
        goto out;
    }
    if (!lease(j, path, r)) {
        job_free(j);
        goto out;
    }
    j->want_context = !raw;
    char *text = NULL;
    bool templated = false;
    if (raw) {
        text = strdup(prompt);
    } else if (*suffix) {
        if (!render_insert(j, prompt, suffix, &text, r)) {
            job_free(j);
            goto out;
        }
        templated = true;
    } else {
        json_t *msgs = json_array();
        if (json_is_string(sys) && *json_string_value(sys))
            json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", sys));
        else if (j->mf_system)
            json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", j->mf_system));
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", prompt));
        bool ok = render(j, msgs, &text, &templated, r);
        json_decref(msgs);
        if (!ok) {
            job_free(j);
            goto out;
        }
    }
    if (!text) {
        fail(r, false, 500, "out of memory");
        job_free(j);
        goto out;
    }
    launch(j, text, templated || raw, truncate, json_is_array(ctx) ? ctx : NULL, r);
    free(text);
out:
    free(path);
    json_decref(body);
}

void api_chat(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, false);
    if (!body)
        return;
    char *path = NULL;
    struct job *j = begin(s, body, K_CHAT, &path, r);
    if (!j)
        goto out;
    json_t *msgs = json_object_get(body, "messages");
    struct err e = {0};
    if (!msgs || json_is_null(msgs) || (json_is_array(msgs) && json_array_size(msgs) == 0)) {
        load_or_unload(j, path, r);
        goto out;
    }
    if (chat_validate_messages(msgs, &e)) {
        fail(r, false, 400, "%s", e.msg);
        job_free(j);
        goto out;
    }
    bool truncate = true;
    if (!get_bool(body, "truncate", true, &truncate, false, r) || !lease(j, path, r)) {
        job_free(j);
        goto out;
    }
    render_and_launch(j, msgs, truncate, r);
out:
    free(path);
    json_decref(body);
}

/* OpenAI messages to Ollama's (select.h), refusing images: hearth's models read text only. */
static int oai_messages(json_t *in, json_t **out, struct err *e)
{
    if (!json_is_array(in))
        return err_set(e, ERR_INVALID, "\"messages\" must be an array");
    json_t *arr = NULL;
    if (tmpl_messages_from_openai(in, &arr, e))
        return e->code;
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        if (json_array_size(json_object_get(m, "images"))) {
            json_decref(arr);
            return err_set(e, ERR_INVALID, "messages[%zu]: image parts are not supported (hearth's models read text only)",
                           i);
        }
    }
    if (chat_validate_messages(arr, e)) {
        json_decref(arr);
        return e->code;
    }
    *out = arr;
    return 0;
}

void oai_chat(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, true);
    if (!body)
        return;
    char *path = NULL;
    json_t *msgs = NULL;
    struct err e = {0};
    struct job *j = begin(s, body, K_OAI_CHAT, &path, r);
    if (!j)
        goto out;
    if (oai_messages(json_object_get(body, "messages"), &msgs, &e)) {
        fail(r, true, 400, "%s", e.msg);
        job_free(j);
        goto out;
    }
    if (!lease(j, path, r)) {
        job_free(j);
        goto out;
    }
    render_and_launch(j, msgs, true, r);
out:
    json_decref(msgs);
    free(path);
    json_decref(body);
}

void oai_completions(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, true);
    if (!body)
        return;
    char *path = NULL;
    struct job *j = begin(s, body, K_OAI_COMPLETION, &path, r);
    if (!j)
        goto out;
    json_t *pv = json_object_get(body, "prompt");
    if (!json_is_string(pv)) {
        fail(r, true, 400, "\"prompt\" must be a string");
        job_free(j);
        goto out;
    }
    if (!lease(j, path, r)) {
        job_free(j);
        goto out;
    }
    json_t *msgs = json_pack("[{s:s,s:O}]", "role", "user", "content", pv);
    render_and_launch(j, msgs, true, r);
    json_decref(msgs);
out:
    free(path);
    json_decref(body);
}
