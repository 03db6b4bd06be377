/* cmd_run.c — `hearth run MODEL [PROMPT]`. A path to a .gguf file runs in process: it streams a
 * completion of PROMPT (or, without one, of the BOS token alone) to stdout. A model name goes through
 * `hearth serve` like Ollama's CLI (started in the background when none answers): /api/generate with
 * a prompt, the interactive REPL over /api/chat without one on a terminal. --verbose adds Ollama's
 * timing figures either way, and in process the memory plan (which layers run on the GPU). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/repl.h"
#include "engine/generate.h"
#include "engine/options.h"
#include "model/model.h"
#include "store/store.h"
#include "tokenizer/tokenizer.h"

#define MAX_STOPS 16

static void usage(FILE *fp)
{
    fputs("usage: hearth run (MODEL.gguf | NAME) [PROMPT] [flags]\n"
          "\n"
          "Generates a completion of PROMPT (read from standard input when PROMPT is '-')\n"
          "and streams it to standard output.\n"
          "\n"
          "A .gguf file runs in this process (without PROMPT: a completion of the BOS token).\n"
          "A NAME runs through `hearth serve` at HEARTH_HOST, started in the background when\n"
          "none answers; without PROMPT it reads standard input, or on a terminal opens the\n"
          "interactive chat (type /? there for its commands).\n"
          "\n"
          "sampling:\n"
          "  --temperature T        0 is greedy (default 0.8)\n"
          "  --top-k N              (default 40; 0 disables)\n"
          "  --top-p P              (default 0.9; 1 disables)\n"
          "  --min-p P              (default 0; 0 disables)\n"
          "  --repeat-penalty R     (default 1.1; 1 disables)\n"
          "  --repeat-last-n N      tokens the penalties look back over (default 64; -1 = context)\n"
          "  --presence-penalty P   (default 0)\n"
          "  --frequency-penalty P  (default 0)\n"
          "  --seed N               same seed and options give the same text (default: random)\n"
          "  --stop TEXT            stop before TEXT (repeatable)\n"
          "  -n, --num-predict N    maximum tokens to generate (default -1: until the context is full)\n"
          "engine:\n"
          "  --ctx-size N           context length in tokens (default: min(training context, 4096))\n"
          "  --batch N              prompt tokens per forward chunk (default 512)\n"
          "  --threads N            CPU threads (default: physical cores)\n"
          "  --num-gpu N            layers on the GPU, the output head counting as one more\n"
          "                         (default -1: as many as fit; 0: CPU only; CUDA builds)\n"
          "  --gpu                  say so when the GPU cannot be used (it is used when it can)\n"
          "  --kv-type f16|f32      KV cache precision (default f16)\n"
          "  --verbose              print timings (and, in process, memory) to standard error\n"
          "through the server (NAME):\n"
          "  --format json|SCHEMA   constrain the reply to JSON (SCHEMA: a JSON Schema, inline or @file)\n"
          "  --think[=true|false|low|medium|high]  let a thinking model reason first\n"
          "  --hidethinking         do not print the reasoning\n"
          "  --keepalive DURATION   how long the server keeps the model loaded (e.g. 5m, 1h, -1)\n"
          "  --nowordwrap           accepted for Ollama compatibility (hearth never wraps)\n",
          fp);
}

static int emit_stdout(void *user, const char *text, size_t len)
{
    bool *ends_nl = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    *ends_nl = len > 0 && text[len - 1] == '\n';
    return 0;
}

/* An existing regular file or a name ending in .gguf runs in process (a missing file is then
 * reported as such); anything else is a model name for the server. */
static bool is_gguf_file(const char *s)
{
    struct stat sb;
    size_t n = strlen(s);
    return (stat(s, &sb) == 0 && S_ISREG(sb.st_mode)) || (n > 5 && strcmp(s + n - 5, ".gguf") == 0);
}

char *run_read_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
    }
    buf[len] = '\0';
    return buf;
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL;
    struct gen_request req = {0};
    sample_params_default(&req.sampling);
    req.max_tokens = -1;
    const char *stops[MAX_STOPS];
    size_t n_stops = 0;
    struct ctx_params cp = {0};
    long threads = 0, num_gpu = -1;
    bool verbose = false, gpu = false;
    struct run_config rc;
    run_config_init(&rc);
    struct err e = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        double d;
/* Each flag also goes into the options object sent to the server, under Ollama's option name. */
#define FLOAT_OPT(flag, lo, hi, dst, key)                                                          \
    if ((v = opt_value(argc, argv, &i, flag))) {                                                   \
        if (!*v || !opt_float("run", flag, v, lo, hi, &d))                                         \
            goto misuse;                                                                           \
        dst = (float)d;                                                                            \
        json_object_set_new(rc.options, key, json_real(d));                                        \
        continue;                                                                                  \
    }
#define INT_OPT(flag, lo, hi, dst, key)                                                            \
    if ((v = opt_value(argc, argv, &i, flag))) {                                                   \
        if (!*v || !opt_int("run", flag, v, lo, hi, &l))                                           \
            goto misuse;                                                                           \
        dst = l;                                                                                   \
        if (key)                                                                                   \
            json_object_set_new(rc.options, key, json_integer(l));                                 \
        continue;                                                                                  \
    }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            run_config_free(&rc);
            return 0;
        }
        if (strcmp(a, "--verbose") == 0) {
            verbose = true;
            continue;
        }
        if (strcmp(a, "--hidethinking") == 0) {
            rc.hide_thinking = true;
            continue;
        }
        if (strcmp(a, "--nowordwrap") == 0 || strcmp(a, "--insecure") == 0)
            continue;
        if (strcmp(a, "--think") == 0) {
            rc.think = 1;
            continue;
        }
        if (strncmp(a, "--think=", 8) == 0) {
            v = a + 8;
            if (strcmp(v, "true") == 0)
                rc.think = 1;
            else if (strcmp(v, "false") == 0)
                rc.think = 0;
            else if (strcmp(v, "low") == 0 || strcmp(v, "medium") == 0 || strcmp(v, "high") == 0) {
                rc.think = 1;
                rc.think_level = v;
            } else {
                fprintf(stderr, "hearth run: --think must be true, false, low, medium or high, not '%s'\n", v);
                goto misuse;
            }
            continue;
        }
        if ((v = opt_value(argc, argv, &i, "--format"))) {
            if (run_parse_format(v, &rc.format))
                goto misuse;
            continue;
        }
        if ((v = opt_value(argc, argv, &i, "--keepalive"))) {
            long long ns;
            if (!*v || options_parse_duration(v, &ns, &e)) {
                fprintf(stderr, "hearth run: --keepalive: %s\n", *v ? e.msg : "needs a duration");
                goto misuse;
            }
            rc.keep_alive = v;
            continue;
        }
        FLOAT_OPT("--temperature", 0, 100, req.sampling.temperature, "temperature")
        FLOAT_OPT("--temp", 0, 100, req.sampling.temperature, "temperature")
        INT_OPT("--top-k", 0, 1 << 30, req.sampling.top_k, "top_k")
        FLOAT_OPT("--top-p", 0, 1, req.sampling.top_p, "top_p")
        FLOAT_OPT("--min-p", 0, 1, req.sampling.min_p, "min_p")
        FLOAT_OPT("--repeat-penalty", 0, 100, req.sampling.repeat_penalty, "repeat_penalty")
        INT_OPT("--repeat-last-n", -1, 1 << 30, req.sampling.repeat_last_n, "repeat_last_n")
        FLOAT_OPT("--presence-penalty", -100, 100, req.sampling.presence_penalty, "presence_penalty")
        FLOAT_OPT("--frequency-penalty", -100, 100, req.sampling.frequency_penalty, "frequency_penalty")
        INT_OPT("--seed", -1, 0x7fffffffffffffffL, req.sampling.seed, "seed")
        INT_OPT("--num-predict", -1, 1 << 30, req.max_tokens, "num_predict")
        INT_OPT("-n", -1, 1 << 30, req.max_tokens, "num_predict")
        INT_OPT("--ctx-size", 1, 1 << 24, cp.n_ctx, "num_ctx")
        INT_OPT("--num-ctx", 1, 1 << 24, cp.n_ctx, "num_ctx")
        INT_OPT("--batch", 1, 1 << 16, cp.n_batch, "num_batch")
        INT_OPT("--threads", 1, 512, threads, "num_thread")
        INT_OPT("--num-gpu", -1, 1 << 20, num_gpu, "num_gpu")
        if (strcmp(a, "--gpu") == 0) {
            gpu = true;
            continue;
        }
        if ((v = opt_value(argc, argv, &i, "--kv-type"))) {
            if (!*v || !opt_kv_type("run", v, &cp.kv_type))
                goto misuse;
            continue;
        }
        if ((v = opt_value(argc, argv, &i, "--stop"))) {
            if (!*v) {
                fprintf(stderr, "hearth run: --stop needs a value\n");
                goto misuse;
            }
            if (n_stops == MAX_STOPS) {
                fprintf(stderr, "hearth run: at most %d --stop strings\n", MAX_STOPS);
                goto misuse;
            }
            stops[n_stops++] = v;
            json_t *arr = json_object_get(rc.options, "stop");
            if (!arr)
                json_object_set_new(rc.options, "stop", arr = json_array());
            json_array_append_new(arr, json_string(v));
            continue;
        }
#undef FLOAT_OPT
#undef INT_OPT
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "hearth run: unknown flag '%s'\n", a);
            goto misuse;
        }
        if (!model_path)
            model_path = a;
        else if (!prompt)
            prompt = a;
        else {
            fprintf(stderr, "hearth run: unexpected argument '%s' (quote a prompt with spaces)\n", a);
            goto misuse;
        }
    }
    if (!model_path) {
        fprintf(stderr, "hearth run: missing MODEL\n");
        goto misuse;
    }
    req.stops = stops;
    req.n_stops = n_stops;
    if (!is_gguf_file(model_path)) {
        rc.model = model_path;
        rc.verbose = verbose;
        int st = run_remote(&rc, prompt, argv[0]);
        run_config_free(&rc);
        return st;
    }
    run_config_free(&rc);

    const int64_t t_start = clock_ns();
    struct model *m = NULL;
    struct model_ctx *ctx = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    char *stdin_prompt = NULL, *gguf_path = NULL;
    int status = EXIT_RUNTIME;
    if (gpu && num_gpu == 0)
        num_gpu = -1;
    const struct load_params lp = {.n_threads = (int)threads, .num_gpu = (int)num_gpu, .n_slots = 1, .ctx = cp};
    if (sample_params_validate(&req.sampling, &e) || store_gguf_path(model_path, &gguf_path, &e) ||
        model_open(gguf_path, &lp, &m, &e))
        goto fail;
    const char *want_env = getenv("HEARTH_GPU");
    if (m->plan.note[0] && (gpu || num_gpu > 0 || (want_env && atoi(want_env) > 0)))
        fprintf(stderr, "hearth run: %s\n", m->plan.note);
    if (model_ctx_new(m, &cp, &ctx, &e))
        goto fail;
    const int64_t load_ns = clock_ns() - t_start;
    if (prompt && strcmp(prompt, "-") == 0) {
        stdin_prompt = run_read_stdin();
        if (!stdin_prompt) {
            err_set(&e, ERR_NOMEM, "out of memory reading the prompt");
            goto fail;
        }
        prompt = stdin_prompt;
    }
    const char *text = prompt ? prompt : "";
    if (tokenizer_encode(m->tok, text, strlen(text), true, false, &ids, &n_ids, &e))
        goto fail;
    if (n_ids == 0) {
        int32_t bos = tokenizer_bos(m->tok);
        if (bos < 0) {
            err_set(&e, ERR_INVALID, "the prompt is empty and the model has no BOS token to start from");
            goto fail;
        }
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids) {
            err_set(&e, ERR_NOMEM, "out of memory");
            goto fail;
        }
        ids[0] = bos;
        n_ids = 1;
    }
    req.prompt = ids;
    req.n_prompt = n_ids;
    bool ends_nl = true;
    struct gen_stats st;
    if (generate(ctx, &req, emit_stdout, &ends_nl, &st, &e))
        goto fail;
    if (!ends_nl)
        fputc('\n', stdout);
    fflush(stdout);
    if (verbose) {
        char b1[32], b2[32], b3[32], b4[32], b5[32];
        fmt_duration(clock_ns() - t_start, b1, sizeof b1);
        fmt_duration(load_ns, b2, sizeof b2);
        fmt_duration(st.prompt_ns, b3, sizeof b3);
        fmt_duration(st.eval_ns, b4, sizeof b4);
        fmt_duration(st.first_token_ns, b5, sizeof b5);
        fprintf(stderr,
                "total duration:       %s\n"
                "load duration:        %s\n"
                "prompt eval count:    %d token(s)\n"
                "prompt eval duration: %s\n"
                "prompt eval rate:     %.2f tokens/s\n"
                "eval count:           %d token(s)\n"
                "eval duration:        %s\n"
                "eval rate:            %.2f tokens/s\n"
                "time to first token:  %s\n"
                "peak memory:          %.1f MiB\n",
                b1, b2, st.prompt_tokens, b3, st.prompt_ns ? st.prompt_tokens * 1e9 / st.prompt_ns : 0.0,
                st.eval_tokens, b4, st.eval_ns ? st.eval_tokens * 1e9 / st.eval_ns : 0.0, b5,
                clock_peak_rss_bytes() / 1048576.0);
        char plan[2048];
        plan_describe(&m->plan, plan, sizeof plan);
        fputs(plan, stderr);
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "hearth run: %s\n", e.msg);
done:
    free(ids);
    free(stdin_prompt);
    free(gguf_path);
    model_ctx_free(ctx);
    model_free(m);
    return status;
misuse:
    run_config_free(&rc);
    fprintf(stderr, "run 'hearth run --help' for usage\n");
    return EXIT_USAGE;
}
