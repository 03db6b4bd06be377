/* cmd_bench.c — `hearth bench MODEL... [--prompt N] [--gen N] [--repeat N] [--threads N] [--format F] [--json]`:
 * speed of each model on each backend (prefill and decode rates, time to first token, load time,
 * peak memory) against the decode roofline of this machine's measured memory bandwidth, as a
 * markdown table or JSON. Each model runs in its own child process (engine/bench.c). --format times
 * grammar-constrained decoding (JSON or a JSON Schema), to measure what the constraint costs. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend_select.h"
#include "base/file.h"
#include "cli/cli.h"
#include "engine/bench.h"

static const char usage_text[] =
    "usage: hearth bench MODEL.gguf... [--prompt N] [--gen N] [--repeat N] [--threads N] [--backend B]\n"
    "                    [--format json|SCHEMA.json] [--json]\n"
    "  --prompt N      prompt tokens per run, random ids from the vocabulary (default 512)\n"
    "  --gen N         tokens generated per run, greedy, not stopping at EOS (default 128)\n"
    "  --repeat N      runs per model; the table shows medians (default 3)\n"
    "  --threads N     CPU threads for the models and the bandwidth probe (default: physical cores)\n"
    "  --seed N        seed of the random prompt (default 1)\n"
    "  --backend B     cpu, gpu or all (default all: the CPU, and the GPU when built with CUDA)\n"
    "  --format F      constrain decoding to any JSON value (json) or a JSON Schema file: each token is\n"
    "                  masked, picked and fed to the grammar, which restarts after each complete value\n"
    "  --json          print JSON instead of a markdown table\n"
    "Roofline %: decode speed as a share of memory bandwidth / weight bytes read per token.\n";

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void fmt_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b >= (1ull << 30))
        snprintf(buf, cap, "%.2f GiB", (double)b / (double)(1ull << 30));
    else
        snprintf(buf, cap, "%.1f MiB", (double)b / (double)(1ull << 20));
}

/* Three significant figures are all a benchmark's noise allows. */
static void fmt_ms(double ms, char *buf, size_t cap)
{
    if (ms >= 1000)
        snprintf(buf, cap, "%.2f s", ms / 1000);
    else if (ms >= 10)
        snprintf(buf, cap, "%.0f ms", ms);
    else
        snprintf(buf, cap, "%.2f ms", ms);
}

static void print_header(void)
{
    printf("| model | backend | size | prefill tok/s | decode tok/s | first token | load | peak RSS | roofline %% |\n"
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
}

static void print_row(const char *path, const char *format, const struct bench_result *r)
{
    char size[32], rss[32], first[32], load[32];
    fmt_bytes(r->weight_bytes, size, sizeof size);
    fmt_bytes((uint64_t)r->peak_rss_bytes, rss, sizeof rss);
    fmt_ms(r->first_token_ms, first, sizeof first);
    fmt_ms(r->load_ms, load, sizeof load);
    char roof[48] = "n/a";
    if (r->roofline_tps > 0)
        snprintf(roof, sizeof roof, "%.0f%% of %.1f tok/s", r->roofline_pct, r->roofline_tps);
    char fmt[64] = "";
    if (format)
        snprintf(fmt, sizeof fmt, ", format %s", base_name(format));
    printf("| %s (%s%s) | %s, %d threads | %s | %.2f | %.2f | %s | %s | %s | %s |\n", base_name(path), r->type,
           fmt, r->backend, r->n_threads, size, r->prefill_tps, r->decode_tps, first, load, rss, roof);
    fflush(stdout);
}

static json_t *row_json(const char *path, const char *format, const struct bench_result *r)
{
    json_t *row = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:b}",
                     "model", path, "type", r->type, "backend", r->backend, "threads", r->n_threads,
                     "size_bytes", (json_int_t)r->weight_bytes, "params", (json_int_t)r->n_params,
                     "decode_bytes_per_token", (json_int_t)r->decode_bytes, "prefill_tps", r->prefill_tps,
                     "decode_tps", r->decode_tps, "first_token_ms", r->first_token_ms, "load_ms", r->load_ms,
                     "peak_rss_bytes", (json_int_t)r->peak_rss_bytes, "membw_gbs", r->membw_gbs,
                     "roofline_tps", r->roofline_tps, "roofline_pct", r->roofline_pct, "membw_in_run",
                     r->membw_in_run);
    if (row && format) {
        json_object_set_new(row, "format", json_string(format));
        json_object_set_new(row, "format_values", json_integer(r->format_values));
    }
    return row;
}

int cmd_bench(int argc, char **argv)
{
    long n_prompt = 512, n_gen = 128, n_repeat = 3, threads = 0, seed = 1;
    bool json = false;
    const char *backends = "all", *format = NULL;
    char *schema = NULL;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    int n_paths = 0;
    if (!paths) {
        fprintf(stderr, "hearth bench: out of memory\n");
        return EXIT_RUNTIME;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            free(paths);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if ((v = opt_value(argc, argv, &i, "--prompt"))) {
            if (!opt_int("bench", "--prompt", v, 1, 1 << 20, &n_prompt))
                goto usage;
        } else if ((v = opt_value(argc, argv, &i, "--gen"))) {
            if (!opt_int("bench", "--gen", v, 1, 1 << 20, &n_gen))
                goto usage;
        } else if ((v = opt_value(argc, argv, &i, "--repeat"))) {
            if (!opt_int("bench", "--repeat", v, 1, 1000, &n_repeat))
                goto usage;
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            if (!opt_int("bench", "--threads", v, 1, 512, &threads))
                goto usage;
        } else if ((v = opt_value(argc, argv, &i, "--backend"))) {
            if (strcmp(v, "cpu") == 0 || strcmp(v, "gpu") == 0 || strcmp(v, "all") == 0) {
                backends = v;
            } else {
                fprintf(stderr, "hearth bench: --backend: '%s' is not cpu, gpu or all\n", v);
                goto usage;
            }
        } else if ((v = opt_value(argc, argv, &i, "--format"))) {
            format = v;
        } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
            if (!opt_int("bench", "--seed", v, 0, 0x7fffffff, &seed))
                goto usage;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "hearth bench: unknown flag '%s'\n%s", argv[i], usage_text);
            goto usage;
        } else {
            paths[n_paths++] = argv[i];
        }
    }
    if (n_paths == 0) {
        fprintf(stderr, "hearth bench: at least one MODEL.gguf is required\n%s", usage_text);
        goto usage;
    }
    /* Catch a mistyped path before minutes of measuring the others. */
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        const char *why = stat(paths[i], &st) != 0 ? strerror(errno)
                          : !S_ISREG(st.st_mode)   ? "not a regular file"
                                                   : NULL;
        if (why) {
            fprintf(stderr, "hearth bench: %s: %s\n", paths[i], why);
            free(paths);
            return EXIT_RUNTIME;
        }
    }

    struct err e = {0};
    /* A schema file is read and checked here, so a typo fails before any measuring. */
    if (format && strcmp(format, "json") != 0) {
        size_t n = 0;
        json_error_t je;
        json_t *doc = NULL;
        if (file_read_all(format, &schema, &n, &e) != 0) {
            fprintf(stderr, "hearth bench: --format: %s\n", e.msg);
            free(paths);
            return EXIT_RUNTIME;
        }
        if (!(doc = json_loadb(schema, n, 0, &je)) || !json_is_object(doc)) {
            if (doc)
                fprintf(stderr, "hearth bench: --format %s: a JSON Schema must be a JSON object\n", format);
            else
                fprintf(stderr, "hearth bench: --format %s: line %d: %s\n", format, je.line, je.text);
            json_decref(doc);
            free(schema);
            free(paths);
            return EXIT_USAGE;
        }
        json_decref(doc);
    }
    struct bench_params p = {.n_prompt = (int)n_prompt, .n_gen = (int)n_gen, .n_repeat = (int)n_repeat,
                             .n_threads = (int)threads, .seed = (uint64_t)seed,
                             .format = schema ? schema : format};
    double membw = 0;
    /* Measured in this run, with the models' thread count, before any model is in memory (the header's
     * figure; each CPU row probes again between its repeats for its own roofline). */
    if (bench_membw_isolated(p.n_threads, 0, &membw, &e)) {
        fprintf(stderr, "hearth bench: %s\n", e.msg);
        free(schema);
        free(paths);
        return EXIT_RUNTIME;
    }
    json_t *rows = json ? json_array() : NULL;
    int status = 0;
    if (!json)
        print_header();
    /* Rows: the CPU unless only the GPU is asked for; the GPU when asked for, or by default when
     * this build has CUDA. */
    const bool want_cpu = strcmp(backends, "gpu") != 0;
    const bool want_gpu = strcmp(backends, "gpu") == 0 || (strcmp(backends, "all") == 0 && backend_have_cuda());
    for (int i = 0; i < n_paths; i++) {
        for (int g = want_cpu ? 0 : 1; g <= (want_gpu ? 1 : 0); g++) {
            struct bench_result r;
            err_clear(&e);
            p.gpu = g == 1;
            if (bench_model_isolated(paths[i], &p, &r, &e)) {
                fprintf(stderr, "hearth bench: %s\n", e.msg);
                status = EXIT_RUNTIME;
                continue;
            }
            if (json)
                json_array_append_new(rows, row_json(paths[i], format, &r));
            else
                print_row(paths[i], format, &r);
        }
    }
    if (json) {
        json_t *doc = json_pack("{s:i, s:i, s:i, s:I, s:f, s:o*, s:o}", "prompt_tokens", p.n_prompt, "gen_tokens",
                                p.n_gen, "repeat", p.n_repeat, "seed", (json_int_t)p.seed, "membw_gbs", membw,
                                "format", format ? json_string(format) : NULL, "results", rows);
        char *s = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        if (s)
            printf("%s\n", s);
        else
            status = EXIT_RUNTIME;
        free(s);
        json_decref(doc);
    } else {
        printf("\nprompt %d tokens, %d generated, medians of %d runs; memory read bandwidth %.1f GB/s at the "
               "start; roofline = bandwidth / weight bytes read per decoded token (a CPU row: each run's decode "
               "against the bandwidth read between its own decode steps, the median over the runs)%s%s\n",
               p.n_prompt, p.n_gen, p.n_repeat, membw, format ? "; decoding constrained by --format " : "",
               format ? format : "");
    }
    free(schema);
    free(paths);
    return status;
usage:
    free(paths);
    return EXIT_USAGE;
}
