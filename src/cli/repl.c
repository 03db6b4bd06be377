/* repl.c — `hearth run NAME` through the server (see repl.h): a one-shot /api/generate stream, and
 * Ollama's interactive chat: ">>> " prompts with libedit history and editing, """ multi-line input,
 * /set, /show, /load, /save, /clear, /bye, Ctrl-C to cancel an answer, Ctrl-D to leave. */
#include "cli/repl.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>

#include "base/err.h"
#include "cli/cli.h"
#include "cli/client.h"

void run_config_init(struct run_config *c)
{
    memset(c, 0, sizeof *c);
    c->options = json_object();
    c->think = -1;
}

void run_config_free(struct run_config *c)
{
    json_decref(c->options);
    json_decref(c->format);
    c->options = NULL;
    c->format = NULL;
}

int run_parse_format(const char *v, json_t **out)
{
    json_decref(*out);
    *out = NULL;
    if (strcmp(v, "json") == 0) {
        *out = json_string("json");
        return 0;
    }
    json_error_t je;
    json_t *s = v[0] == '@' ? json_load_file(v + 1, 0, &je) : json_loads(v, 0, &je);
    if (!json_is_object(s)) {
        if (s)
            fprintf(stderr, "hearth run: --format: a JSON Schema must be an object\n");
        else
            fprintf(stderr, "hearth run: --format must be 'json', a JSON Schema or @FILE: %s%s%s\n",
                    v[0] == '@' ? v + 1 : "", v[0] == '@' ? ": " : "", je.text);
        json_decref(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* ---- one streamed answer ---- */

struct answer {
    const struct run_config *cfg;
    bool chat;
    bool thinking_open; /* "Thinking..." printed, its end not yet */
    bool any_text;
    bool ends_nl;
    char *content; /* the assistant's reply, for the chat history */
    size_t len, cap;
    json_t *final; /* the done:true object */
};

static void append(struct answer *a, const char *s)
{
    size_t n = strlen(s);
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        while (cap < a->len + n + 1)
            cap *= 2;
        char *nb = realloc(a->content, cap);
        if (!nb)
            return;
        a->content = nb;
        a->cap = cap;
    }
    memcpy(a->content + a->len, s, n + 1);
    a->len += n;
}

static void out_text(struct answer *a, const char *s)
{
    if (!*s)
        return;
    fputs(s, stdout);
    fflush(stdout);
    a->any_text = true;
    a->ends_nl = s[strlen(s) - 1] == '\n';
}

static int on_answer(void *user, json_t *o)
{
    struct answer *a = user;
    const json_t *msg = a->chat ? json_object_get(o, "message") : o;
    const char *thinking = json_string_value(json_object_get(msg, "thinking"));
    const char *text = json_string_value(json_object_get(msg, a->chat ? "content" : "response"));
    if (thinking && *thinking && !a->cfg->hide_thinking) {
        if (!a->thinking_open) {
            out_text(a, "Thinking...\n");
            a->thinking_open = true;
        }
        out_text(a, thinking);
    }
    if (text && *text) {
        if (a->thinking_open) {
            out_text(a, a->ends_nl ? "...done thinking.\n\n" : "\n...done thinking.\n\n");
            a->thinking_open = false;
        }
        out_text(a, text);
        append(a, text);
    }
    /* Tool calls are shown as Ollama's CLI shows none: the model asked for a function the REPL
     * cannot run, so print the request for the user. */
    json_t *calls = a->chat ? json_object_get(msg, "tool_calls") : NULL;
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call) {
        char *s = json_dumps(json_object_get(call, "function"), JSON_COMPACT);
        if (s) {
            out_text(a, "[tool call] ");
            out_text(a, s);
            out_text(a, "\n");
            free(s);
        }
    }
    if (json_is_true(json_object_get(o, "done"))) {
        json_decref(a->final);
        a->final = json_incref(o);
    }
    return 0;
}

static void fmt_rate(json_int_t count, json_int_t ns, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.2f tokens/s", ns > 0 ? (double)count * 1e9 / (double)ns : 0.0);
}

/* Ollama's --verbose figures, from the final chunk. */
static void print_metrics(const json_t *f)
{
    json_int_t total = json_integer_value(json_object_get(f, "total_duration"));
    json_int_t load = json_integer_value(json_object_get(f, "load_duration"));
    json_int_t pc = json_integer_value(json_object_get(f, "prompt_eval_count"));
    json_int_t pd = json_integer_value(json_object_get(f, "prompt_eval_duration"));
    json_int_t ec = json_integer_value(json_object_get(f, "eval_count"));
    json_int_t ed = json_integer_value(json_object_get(f, "eval_duration"));
    char b[6][48];
    fmt_duration(total, b[0], sizeof b[0]);
    fmt_duration(load, b[1], sizeof b[1]);
    fmt_duration(pd, b[2], sizeof b[2]);
    fmt_rate(pc, pd, b[3], sizeof b[3]);
    fmt_duration(ed, b[4], sizeof b[4]);
    fmt_rate(ec, ed, b[5], sizeof b[5]);
    fprintf(stderr,
            "total duration:       %s\n"
            "load duration:        %s\n"
            "prompt eval count:    %lld token(s)\n"
            "prompt eval duration: %s\n"
            "prompt eval rate:     %s\n"
            "eval count:           %lld token(s)\n"
            "eval duration:        %s\n"
            "eval rate:            %s\n",
            b[0], b[1], (long long)pc, b[2], b[3], (long long)ec, b[4], b[5]);
}

static void finish_answer(struct answer *a, bool verbose)
{
    if (a->thinking_open && !a->any_text)
        a->ends_nl = true;
    if (a->any_text && !a->ends_nl)
        fputc('\n', stdout);
    fflush(stdout);
    if (a->final && json_is_true(json_object_get(a->final, "truncated")))
        fprintf(stderr, "note: the prompt was longer than the context (%lld tokens kept); its start was "
                        "dropped\n",
                (long long)json_integer_value(json_object_get(a->final, "prompt_eval_count")));
    if (verbose && a->final)
        print_metrics(a->final);
}

/* The fields every request carries: options, format, think, keep_alive. */
static json_t *request_base(const struct run_config *c)
{
    json_t *b = json_pack("{s:s,s:b}", "model", c->model, "stream", 1);
    if (json_object_size(c->options))
        json_object_set(b, "options", c->options);
    if (c->format)
        json_object_set(b, "format", c->format);
    if (c->think_level)
        json_object_set_new(b, "think", json_string(c->think_level));
    else if (c->think >= 0)
        json_object_set_new(b, "think", json_boolean(c->think));
    if (c->keep_alive)
        json_object_set_new(b, "keep_alive", json_string(c->keep_alive));
    return b;
}

/* ---- the REPL ---- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct session {
    struct run_config *cfg;
    json_t *messages;
    char *system; /* set with /set system, or NULL */
    char history[1024];
};

static void help_main(void)
{
    fputs("Available Commands:\n"
          "  /set            Set session variables\n"
          "  /show           Show model information\n"
          "  /load <model>   Load a session or model\n"
          "  /save <model>   Save your current session\n"
          "  /clear          Clear session context\n"
          "  /bye            Exit\n"
          "  /?, /help       Help for a command\n"
          "  /? shortcuts    Help for keyboard shortcuts\n"
          "\n"
          "Use \"\"\" to begin a multi-line message.\n\n",
          stdout);
}

static void help_set(void)
{
    fputs("Available Commands:\n"
          "  /set parameter ...     Set a parameter\n"
          "  /set system <string>   Set system message\n"
          "  /set history           Enable history\n"
          "  /set nohistory         Disable history\n"
          "  /set format json       Enable JSON mode\n"
          "  /set noformat          Disable formatting\n"
          "  /set think             Enable thinking\n"
          "  /set nothink           Disable thinking\n"
          "  /set verbose           Show LLM stats\n"
          "  /set quiet             Disable LLM stats\n\n",
          stdout);
}

static void help_parameters(void)
{
    fputs("Available Parameters:\n"
          "  /set parameter seed <int>             Random number seed\n"
          "  /set parameter num_predict <int>      Max number of tokens to predict\n"
          "  /set parameter top_k <int>            Pick from top k num of tokens\n"
          "  /set parameter top_p <float>          Pick token based on sum of probabilities\n"
          "  /set parameter min_p <float>          Pick token based on top token probability * min_p\n"
          "  /set parameter num_ctx <int>          Set the context size\n"
          "  /set parameter temperature <float>    Set creativity level\n"
          "  /set parameter repeat_penalty <float> How strongly to penalize repetitions\n"
          "  /set parameter repeat_last_n <int>    Set how far back to look for repetitions\n"
          "  /set parameter num_gpu <int>          The number of layers to send to the GPU\n"
          "  /set parameter stop <string> <string> ...   Set the stop parameters\n\n",
          stdout);
}

static void help_show(void)
{
    fputs("Available Commands:\n"
          "  /show info         Show details for this model\n"
          "  /show license      Show model license\n"
          "  /show modelfile    Show Modelfile for this model\n"
          "  /show parameters   Show parameters for this model\n"
          "  /show system       Show system message\n"
          "  /show template     Show prompt template\n\n",
          stdout);
}

static void help_shortcuts(void)
{
    fputs("Available keyboard shortcuts:\n"
          "  Ctrl + a            Move to the beginning of the line (Home)\n"
          "  Ctrl + e            Move to the end of the line (End)\n"
          "  Ctrl + k            Delete the sentence after the cursor\n"
          "  Ctrl + u            Delete the sentence before the cursor\n"
          "  Ctrl + w            Delete the word before the cursor\n"
          "  Ctrl + l            Clear the screen\n"
          "  Ctrl + c            Stop the model from responding\n"
          "  Ctrl + d            Exit hearth (/bye)\n\n",
          stdout);
}

/* A parameter value as Ollama's CLI types it: integers, then numbers, then booleans, else text. */
static json_t *param_value(const char *v)
{
    char *end;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (*v && !*end && !errno)
        return json_integer(i);
    double d = strtod(v, &end);
    if (*v && !*end)
        return json_real(d);
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        return json_boolean(v[0] == 't');
    return json_string(v);
}

/* Splits s on blanks into at most cap words (s is modified). */
static int split_words(char *s, char **w, int cap)
{
    int n = 0;
    char *p = s;
    while (*p && n < cap) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        w[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

static void repl_set(struct session *ss, char *args)
{
    char *w[34];
    char *rest = args;
    while (isspace((unsigned char)*rest))
        rest++;
    if (strncmp(rest, "system", 6) == 0 && (rest[6] == '\0' || isspace((unsigned char)rest[6]))) {
        const char *text = rest + 6;
        while (isspace((unsigned char)*text))
            text++;
        size_t n = strlen(text);
        /* Ollama accepts a quoted system message. */
        char *sys = strdup(text);
        if (!sys)
            return;
        if (n >= 2 && sys[0] == '"' && sys[n - 1] == '"') {
            memmove(sys, sys + 1, n - 2);
            sys[n - 2] = '\0';
        }
        free(ss->system);
        ss->system = sys;
        /* The system message applies to the conversation from now on: drop an older one. */
        size_t i = 0;
        while (i < json_array_size(ss->messages)) {
            const char *role = json_string_value(json_object_get(json_array_get(ss->messages, i), "role"));
            if (role && strcmp(role, "system") == 0)
                json_array_remove(ss->messages, i);
            else
                i++;
        }
        json_array_insert_new(ss->messages, 0, json_pack("{s:s,s:s}", "role", "system", "content", sys));
        puts("Set system message.");
        return;
    }
    int n = split_words(args, w, 34);
    if (n == 0) {
        help_set();
        return;
    }
    struct run_config *c = ss->cfg;
    if (strcmp(w[0], "parameter") == 0) {
        if (n < 3) {
            help_parameters();
            return;
        }
        if (strcmp(w[1], "stop") == 0) {
            json_t *arr = json_array();
            for (int i = 2; i < n; i++)
                json_array_append_new(arr, json_string(w[i]));
            json_object_set_new(c->options, "stop", arr);
        } else {
            json_object_set_new(c->options, w[1], param_value(w[2]));
        }
        printf("Set parameter '%s' to '", w[1]);
        for (int i = 2; i < n; i++)
            printf("%s%s", i > 2 ? ", " : "", w[i]);
        puts("'");
    } else if (strcmp(w[0], "verbose") == 0) {
        c->verbose = true;
        puts("Set 'verbose' mode.");
    } else if (strcmp(w[0], "quiet") == 0) {
        c->verbose = false;
        puts("Set 'quiet' mode.");
    } else if (strcmp(w[0], "format") == 0 && n >= 2 && strcmp(w[1], "json") == 0) {
        json_decref(c->format);
        c->format = json_string("json");
        puts("Set format to 'json' mode.");
    } else if (strcmp(w[0], "noformat") == 0) {
        json_decref(c->format);
        c->format = NULL;
        puts("Disabled format.");
    } else if (strcmp(w[0], "think") == 0) {
        c->think = 1;
        c->think_level = NULL;
        puts("Set 'think' mode.");
    } else if (strcmp(w[0], "nothink") == 0) {
        c->think = 0;
        c->think_level = NULL;
        puts("Set 'nothink' mode.");
    } else if (strcmp(w[0], "history") == 0) {
        puts("Set 'history' mode.");
    } else if (strcmp(w[0], "nohistory") == 0) {
        ss->history[0] = '\0';
        puts("Set 'nohistory' mode.");
    } else if (strcmp(w[0], "wordwrap") == 0 || strcmp(w[0], "nowordwrap") == 0) {
        printf("Set '%s' mode.\n", w[0]);
    } else {
        printf("Unknown command '/set %s'. Type /? for help\n", w[0]);
    }
}

/* Prints an options object the way Ollama's /show parameters does: one "name value" per line. */
static void print_params(const json_t *o)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (json_is_array(v)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) {
                char *s = json_dumps(x, JSON_ENCODE_ANY);
                printf("%-30s %s\n", k, s ? s : "");
                free(s);
            }
        } else {
            char *s = json_dumps(v, JSON_ENCODE_ANY);
            printf("%-30s %s\n", k, s ? s : "");
            free(s);
        }
    }
}

static void repl_show(struct session *ss, char *args)
{
    char *w[4];
    int n = split_words(args, w, 4);
    if (n == 0) {
        help_show();
        return;
    }
    json_t *req = json_pack("{s:s}", "model", ss->cfg->model), *info = NULL;
    long st;
    struct err e = {0};
    int rc = client_call("POST", "/api/show", req, &st, &info, &e);
    json_decref(req);
    if (rc) {
        printf("error: couldn't get model: %s\n", e.msg);
        return;
    }
    const char *what = w[0];
    if (strcmp(what, "info") == 0) {
        json_t *det = json_object_get(info, "details"), *mi = json_object_get(info, "model_info");
        const char *arch = json_string_value(json_object_get(mi, "general.architecture"));
        puts("  Model");
        printf("    %-20s %s\n", "architecture", arch ? arch : "unknown");
        printf("    %-20s %s\n", "parameters", json_string_value(json_object_get(det, "parameter_size"))
                                                     ? json_string_value(json_object_get(det, "parameter_size"))
                                                     : "unknown");
        if (arch) {
            char key[128];
            snprintf(key, sizeof key, "%s.context_length", arch);
            json_t *cl = json_object_get(mi, key);
            if (json_is_integer(cl))
                printf("    %-20s %lld\n", "context length", (long long)json_integer_value(cl));
            snprintf(key, sizeof key, "%s.embedding_length", arch);
            json_t *el = json_object_get(mi, key);
            if (json_is_integer(el))
                printf("    %-20s %lld\n", "embedding length", (long long)json_integer_value(el));
        }
        const char *q = json_string_value(json_object_get(det, "quantization_level"));
        printf("    %-20s %s\n", "quantization", q ? q : "unknown");
        json_t *caps = json_object_get(info, "capabilities");
        if (json_array_size(caps)) {
            puts("\n  Capabilities");
            size_t i;
            json_t *c;
            json_array_foreach(caps, i, c)
                printf("    %s\n", json_string_value(c) ? json_string_value(c) : "");
        }
        puts("");
    } else if (strcmp(what, "license") == 0) {
        const char *l = json_string_value(json_object_get(info, "license"));
        puts(l && *l ? l : "No license was specified for this model.");
    } else if (strcmp(what, "modelfile") == 0) {
        const char *m = json_string_value(json_object_get(info, "modelfile"));
        puts(m ? m : "");
    } else if (strcmp(what, "parameters") == 0) {
        if (json_object_size(ss->cfg->options)) {
            puts("User defined parameters:");
            print_params(ss->cfg->options);
            puts("");
        }
        const char *p = json_string_value(json_object_get(info, "parameters"));
        if (p && *p) {
            puts("Model defined parameters:");
            puts(p);
        } else if (!json_object_size(ss->cfg->options)) {
            puts("No parameters were specified for this model.");
        }
    } else if (strcmp(what, "system") == 0) {
        const char *s = ss->system ? ss->system : json_string_value(json_object_get(info, "system"));
        puts(s && *s ? s : "No system message was specified for this model.");
    } else if (strcmp(what, "template") == 0) {
        const char *t = json_string_value(json_object_get(info, "template"));
        puts(t && *t ? t : "No prompt template was specified for this model.");
    } else {
        printf("Unknown command '/show %s'. Type /? for help\n", what);
    }
    json_decref(info);
}

/* An empty chat loads the model (and reports a missing one before the first prompt). */
static int load_model(struct run_config *c, struct err *e)
{
    json_t *b = request_base(c);
    json_object_set_new(b, "messages", json_array());
    json_object_set_new(b, "stream", json_false());
    long st;
    int rc = client_call("POST", "/api/chat", b, &st, NULL, e);
    json_decref(b);
    return rc;
}

static void repl_save(struct session *ss, char *args)
{
    char *w[2];
    if (split_words(args, w, 2) != 1) {
        puts("Usage:\n  /save <modelname>");
        return;
    }
    json_t *b = json_pack("{s:s,s:s,s:b}", "model", w[0], "from", ss->cfg->model, "stream", 0);
    if (ss->system)
        json_object_set_new(b, "system", json_string(ss->system));
    if (json_object_size(ss->cfg->options))
        json_object_set(b, "parameters", ss->cfg->options);
    json_t *msgs = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(ss->messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && strcmp(role, "system") != 0)
            json_array_append(msgs, m);
    }
    if (json_array_size(msgs))
        json_object_set(b, "messages", msgs);
    json_decref(msgs);
    long st;
    struct err e = {0};
    int rc = client_call("POST", "/api/create", b, &st, NULL, &e);
    if (rc == ERR_NOTFOUND) {
        /* Not a store model (a GGUF file or a flat-directory model): create from its file, which
         * /api/show's Modelfile names on its FROM line. */
        json_t *q = json_pack("{s:s}", "model", ss->cfg->model), *info = NULL;
        if (client_call("POST", "/api/show", q, &st, &info, &e) == 0) {
            const char *mf = json_string_value(json_object_get(info, "modelfile"));
            const char *from = mf ? strstr(mf, "\nFROM ") : NULL;
            if (from) {
                from += 6;
                size_t n = strcspn(from, "\n");
                json_object_set_new(b, "from", json_stringn(from, n));
                e.msg[0] = '\0';
                rc = client_call("POST", "/api/create", b, &st, NULL, &e);
            }
        }
        json_decref(q);
        json_decref(info);
    }
    json_decref(b);
    if (rc)
        printf("error: %s\n", e.msg);
    else
        printf("Created new model '%s'\n", w[0]);
}

static void repl_load(struct session *ss, char *args, char **model_owned)
{
    char *w[2];
    if (split_words(args, w, 2) != 1) {
        puts("Usage:\n  /load <modelname>");
        return;
    }
    printf("Loading model '%s'\n", w[0]);
    char *name = strdup(w[0]);
    if (!name)
        return;
    const char *old = ss->cfg->model;
    ss->cfg->model = name;
    struct err e = {0};
    if (load_model(ss->cfg, &e)) {
        printf("error: %s\n", e.msg);
        ss->cfg->model = old;
        free(name);
        return;
    }
    free(*model_owned);
    *model_owned = name;
    json_array_clear(ss->messages);
    free(ss->system);
    ss->system = NULL;
}

/* Sends the conversation and streams the reply; keeps it in the history unless cancelled. */
static void chat_turn(struct session *ss)
{
    json_t *b = request_base(ss->cfg);
    json_object_set(b, "messages", ss->messages);
    struct answer a = {.cfg = ss->cfg, .chat = true, .ends_nl = true};
    struct err e = {0};
    interrupted = 0;
    client_set_cancel(&interrupted);
    int rc = client_stream("/api/chat", b, on_answer, &a, &e);
    client_set_cancel(NULL);
    json_decref(b);
    if (rc == CLIENT_CANCELLED || interrupted) {
        if (a.any_text && !a.ends_nl)
            fputc('\n', stdout);
        fputc('\n', stdout);
        /* Forget the unanswered question so the next one is not a double user turn. */
        json_array_remove(ss->messages, json_array_size(ss->messages) - 1);
    } else if (rc) {
        finish_answer(&a, false);
        printf("Error: %s\n", e.msg);
        json_array_remove(ss->messages, json_array_size(ss->messages) - 1);
    } else {
        finish_answer(&a, ss->cfg->verbose);
        fputc('\n', stdout);
        json_array_append_new(ss->messages,
                              json_pack("{s:s,s:s}", "role", "assistant", "content", a.content ? a.content : ""));
    }
    fflush(stdout);
    interrupted = 0;
    free(a.content);
    json_decref(a.final);
}

/* Reads one message: a line, or a """ block spanning lines. NULL at end of input. */
static char *read_message(bool *eof)
{
    *eof = false;
    for (;;) {
        interrupted = 0;
        char *line = readline(">>> ");
        if (!line) {
            if (interrupted) {
                puts("\nUse Ctrl + d or /bye to exit.");
                continue;
            }
            *eof = true;
            return NULL;
        }
        if (strncmp(line, "\"\"\"", 3) != 0)
            return line;
        /* Multi-line: everything up to a line ending in """. */
        size_t len = strlen(line + 3), cap = len + 256;
        char *buf = malloc(cap);
        if (!buf) {
            free(line);
            return NULL;
        }
        memcpy(buf, line + 3, len + 1);
        free(line);
        bool closed = len >= 3 && strcmp(buf + len - 3, "\"\"\"") == 0;
        if (closed)
            buf[len -= 3] = '\0';
        while (!closed) {
            char *more = readline("... ");
            if (!more) {
                free(buf);
                if (interrupted) {
                    puts("");
                    break; /* Ctrl-C abandons the block */
                }
                *eof = true;
                return NULL;
            }
            size_t ml = strlen(more);
            if (ml >= 3 && strcmp(more + ml - 3, "\"\"\"") == 0) {
                more[ml -= 3] = '\0';
                closed = true;
            }
            if (len + ml + 2 > cap) {
                cap = (len + ml + 2) * 2;
                char *nb = realloc(buf, cap);
                if (!nb) {
                    free(more);
                    free(buf);
                    return NULL;
                }
                buf = nb;
            }
            buf[len++] = '\n';
            memcpy(buf + len, more, ml + 1);
            len += ml;
            free(more);
        }
        if (closed) {
            if (len && buf[0] == '\n')
                memmove(buf, buf + 1, len--);
            return buf;
        }
    }
}

static int repl(struct run_config *c)
{
    struct session ss = {.cfg = c, .messages = json_array()};
    char *model_owned = NULL;
    const char *home = getenv("HOME");
    const char *hist = getenv("HEARTH_HISTORY");
    if (hist && *hist)
        snprintf(ss.history, sizeof ss.history, "%s", hist);
    else if (home && *home) {
        char dir[900];
        snprintf(dir, sizeof dir, "%s/.hearth", home);
        mkdir(dir, 0755);
        snprintf(ss.history, sizeof ss.history, "%s/history", dir);
    }
    using_history();
    if (ss.history[0])
        read_history(ss.history);
    /* No SA_RESTART: Ctrl-C interrupts the terminal read, so readline returns. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    rl_catch_signals = 0;

    for (;;) {
        bool eof;
        char *msg = read_message(&eof);
        if (!msg) {
            if (eof)
                break;
            continue;
        }
        char *p = msg;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p) {
            free(msg);
            continue;
        }
        if (ss.history[0]) {
            add_history(msg);
            write_history(ss.history);
        }
        if (p[0] == '/') {
            char *cmd = p + 1, *args = cmd;
            while (*args && !isspace((unsigned char)*args))
                args++;
            if (*args)
                *args++ = '\0';
            if (strcmp(cmd, "bye") == 0 || strcmp(cmd, "exit") == 0) {
                free(msg);
                break;
            } else if (strcmp(cmd, "?") == 0 || strcmp(cmd, "help") == 0) {
                char *w[2];
                int n = split_words(args, w, 2);
                if (n && strcmp(w[0], "set") == 0)
                    help_set();
                else if (n && strcmp(w[0], "show") == 0)
                    help_show();
                else if (n && (strcmp(w[0], "shortcuts") == 0 || strcmp(w[0], "shortcut") == 0))
                    help_shortcuts();
                else
                    help_main();
            } else if (strcmp(cmd, "set") == 0) {
                repl_set(&ss, args);
            } else if (strcmp(cmd, "show") == 0) {
                repl_show(&ss, args);
            } else if (strcmp(cmd, "clear") == 0) {
                json_array_clear(ss.messages);
                if (ss.system)
                    json_array_append_new(ss.messages,
                                          json_pack("{s:s,s:s}", "role", "system", "content", ss.system));
                puts("Cleared session context");
            } else if (strcmp(cmd, "load") == 0) {
                repl_load(&ss, args, &model_owned);
            } else if (strcmp(cmd, "save") == 0) {
                repl_save(&ss, args);
            } else {
                printf("Unknown command '/%s'. Type /? for help\n", cmd);
            }
            free(msg);
            continue;
        }
        json_array_append_new(ss.messages, json_pack("{s:s,s:s}", "role", "user", "content", msg));
        free(msg);
        chat_turn(&ss);
    }
    sigaction(SIGINT, &old, NULL);
    json_decref(ss.messages);
    free(ss.system);
    if (model_owned)
        c->model = NULL;
    free(model_owned);
    return 0;
}

/* ---- entry ---- */

int run_remote(struct run_config *c, const char *prompt, const char *self_name)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0)
        self[n] = '\0';
    else
        snprintf(self, sizeof self, "%s", self_name);
    struct err e = {0};
    if (client_ensure_server(self, &e)) {
        fprintf(stderr, "hearth run: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    char *stdin_text = NULL;
    bool interactive = !prompt && isatty(0) && isatty(1);
    if (!interactive && (!prompt || strcmp(prompt, "-") == 0)) {
        stdin_text = run_read_stdin();
        if (!stdin_text) {
            fprintf(stderr, "hearth run: out of memory reading the prompt\n");
            return EXIT_RUNTIME;
        }
        prompt = stdin_text;
    }
    if (interactive) {
        if (load_model(c, &e)) {
            fprintf(stderr, "Error: %s\n", e.msg);
            return EXIT_RUNTIME;
        }
        return repl(c);
    }
    json_t *b = request_base(c);
    json_object_set_new(b, "prompt", json_string(prompt));
    struct answer a = {.cfg = c, .ends_nl = true};
    int rc = client_stream("/api/generate", b, on_answer, &a, &e);
    json_decref(b);
    free(stdin_text);
    if (rc) {
        finish_answer(&a, false);
        fprintf(stderr, "Error: %s\n", e.msg);
    } else {
        finish_answer(&a, c->verbose);
    }
    free(a.content);
    json_decref(a.final);
    return rc ? EXIT_RUNTIME : 0;
}
