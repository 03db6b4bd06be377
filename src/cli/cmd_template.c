/* cmd_template.c — `hearth template (MODEL.gguf | TEMPLATE_FILE) --messages CONV.json ...` prints
 * the prompt a chat template makes of a conversation, to check a template without running a model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/file.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "template/select.h"
#include "tokenizer/tokenizer.h"

static const char usage_text[] =
    "usage: hearth template (MODEL.gguf | TEMPLATE_FILE) --messages CONV.json [--tools TOOLS.json]\n"
    "                       [--no-generation-prompt] [--think | --no-think] [--now UNIX_SECONDS]\n"
    "                       [--bos TEXT] [--eos TEXT]\n"
    "  Prints the prompt the template renders. A GGUF's tokenizer.chat_template renders as Jinja; a\n"
    "  .jinja file as Jinja; a .tmpl/.gotmpl file, or one using {{ .Messages }}-style fields, as an\n"
    "  Ollama (Go) template.\n"
    "  CONV.json: an array of messages, or an object with \"messages\" (and optionally \"tools\" and\n"
    "  other variables a Jinja template reads, such as \"add_generation_prompt\" or \"bos_token\").\n"
    "  --now pins strftime_now() for reproducible dates.";

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char *read_text(const char *path, struct err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(e, ERR_IO, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 == cap) {
            char *q = realloc(buf, cap * 2);
            if (!q) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = q;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        err_set(e, bad ? ERR_IO : ERR_NOMEM, "%s: %s", path, bad ? "read failed" : "out of memory");
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static bool is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (f) {
        size_t n = fread(magic, 1, 4, f);
        (void)n;
        fclose(f);
    }
    return memcmp(magic, "GGUF", 4) == 0;
}

/* The GGUF's chat template and BOS/EOS texts (empty when the file has no vocabulary). */
static int load_gguf(const char *path, char **tmpl_text, char **bos, char **eos, struct err *e)
{
    struct gguf_file *f = NULL;
    int rc = gguf_open(path, &f, e);
    if (rc)
        return rc;
    if (gguf_find_kv(f, "tokenizer.chat_template")) {
        struct gguf_str s;
        if ((rc = gguf_get_str(f, "tokenizer.chat_template", &s, e))) {
            gguf_close(f);
            return err_prefix(e, "%s", path);
        }
        *tmpl_text = gguf_str_dup(s);
    }
    struct tokenizer *tok = NULL;
    struct err ignored = {0};
    if (gguf_find_kv(f, "tokenizer.ggml.tokens") && tokenizer_from_gguf(f, &tok, &ignored) == 0) {
        int32_t b = tokenizer_bos(tok), o = tokenizer_eos(tok);
        const char *bs = b >= 0 ? tokenizer_token_str(tok, b) : NULL, *es = o >= 0 ? tokenizer_token_str(tok, o) : NULL;
        *bos = strdup(bs ? bs : "");
        *eos = strdup(es ? es : "");
        tokenizer_free(tok);
    }
    gguf_close(f);
    return 0;
}

static json_t *load_json(const char *path, struct err *e)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &je);
    if (!j)
        err_set(e, ERR_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    return j;
}

int cmd_template(int argc, char **argv)
{
    const char *path = NULL, *msgs_path = NULL, *tools_path = NULL, *bos_opt = NULL, *eos_opt = NULL;
    const char *now_s = NULL;
    bool gen = true;
    int think = -1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = opt_value(argc, argv, &i, "--messages")))
            msgs_path = v;
        else if ((v = opt_value(argc, argv, &i, "--tools")))
            tools_path = v;
        else if ((v = opt_value(argc, argv, &i, "--bos")))
            bos_opt = v;
        else if ((v = opt_value(argc, argv, &i, "--eos")))
            eos_opt = v;
        else if ((v = opt_value(argc, argv, &i, "--now")))
            now_s = v;
        else if (strcmp(argv[i], "--no-generation-prompt") == 0)
            gen = false;
        else if (strcmp(argv[i], "--think") == 0)
            think = 1;
        else if (strcmp(argv[i], "--no-think") == 0)
            think = 0;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts(usage_text);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "hearth template: unknown flag '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else if (!path)
            path = argv[i];
        else {
            fprintf(stderr, "hearth template: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path || !msgs_path) {
        fprintf(stderr, "%s\n", usage_text);
        return EXIT_USAGE;
    }
    long now = 0;
    if (now_s && !opt_int("template", "--now", now_s, 1, 32503680000L, &now))
        return EXIT_USAGE;

    struct err e = {0};
    char *text = NULL, *bos = NULL, *eos = NULL;
    enum tmpl_kind kind;
    int rc;
    if (is_gguf(path)) {
        rc = load_gguf(path, &text, &bos, &eos, &e);
        kind = text ? TMPL_JINJA : TMPL_FALLBACK;
    } else {
        text = read_text(path, &e);
        rc = text ? 0 : e.code;
        kind = ends_with(path, ".jinja") ? TMPL_JINJA
               : ends_with(path, ".tmpl") || ends_with(path, ".gotmpl") ? TMPL_GO
               : text && tmpl_text_is_go(text) ? TMPL_GO
                                              : TMPL_JINJA;
    }
    json_t *conv = NULL, *tools = NULL, *extra = NULL;
    const json_t *messages = NULL;
    struct tmpl *t = NULL;
    char *out = NULL;
    size_t out_len = 0;
    if (rc == 0)
        rc = tmpl_new(kind, text, bos_opt ? bos_opt : bos, eos_opt ? eos_opt : eos, &t, &e);
    if (rc == 0 && !(conv = load_json(msgs_path, &e)))
        rc = e.code;
    if (rc == 0) {
        json_t *c = conv;
        if (json_is_object(c) && json_is_object(json_object_get(c, "context")))
            c = json_object_get(c, "context"); /* the conversation files of tests/template/ */
        if (json_is_array(c)) {
            messages = c;
        } else if (json_is_object(c) && json_is_array(json_object_get(c, "messages"))) {
            messages = json_object_get(c, "messages");
            extra = json_deep_copy(c);
            json_object_del(extra, "messages");
            if (json_object_get(extra, "tools"))
                tools = json_incref(json_object_get(extra, "tools"));
            json_object_del(extra, "tools");
            if (json_is_boolean(json_object_get(extra, "add_generation_prompt")) && !gen)
                json_object_set_new(extra, "add_generation_prompt", json_false());
        } else {
            rc = err_set(&e, ERR_FORMAT, "%s: expected an array of messages or an object with \"messages\"", msgs_path);
        }
    }
    if (rc == 0 && tools_path) {
        json_decref(tools);
        if (!(tools = load_json(tools_path, &e)))
            rc = e.code;
        else if (!json_is_array(tools))
            rc = err_set(&e, ERR_FORMAT, "%s: expected an array of tools", tools_path);
    }
    if (rc == 0) {
        struct tmpl_input in = {.messages = messages, .tools = tools, .think = think, .add_generation_prompt = gen,
                                .extra = extra, .now = now};
        rc = tmpl_render(t, &in, &out, &out_len, &e);
    }
    if (rc == 0)
        fwrite(out, 1, out_len, stdout);
    else
        fprintf(stderr, "hearth template: %s\n", e.msg);
    free(out);
    tmpl_free(t);
    json_decref(conv);
    json_decref(tools);
    json_decref(extra);
    free(text);
    free(bos);
    free(eos);
    return rc ? EXIT_RUNTIME : 0;
}
