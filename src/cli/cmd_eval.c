/* cmd_eval.c — `hearth eval MODEL.gguf --ids 1,2,3 [--logits OUT.f32] [--greedy N]`: evaluates exact
 * token ids, writes the logits of every position (positions x vocabulary, little-endian float32), and
 * with --greedy prints the next N argmax ids as a JSON array. The tool tests compare against reference
 * implementations with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_select.h"
#include "base/argmax.h"
#include "cli/cli.h"
#include "model/model.h"
#include "sample/sample.h"

static const char usage_text[] =
    "usage: hearth eval MODEL.gguf --ids 1,2,3 [--logits OUT.f32] [--greedy N]\n"
    "  --ids LIST          comma-separated token ids to evaluate (required)\n"
    "  --logits FILE       write every position's logits (float32, positions x vocabulary)\n"
    "  --greedy N          then generate N tokens by argmax and print them as a JSON array\n"
    "  --one-by-one        feed the ids one at a time through the KV cache instead of as one batch\n"
    "  --batch N           prompt tokens per forward chunk (default 512)\n"
    "  --ctx-size N        context length (default: ids + greedy, at least 16)\n"
    "  --kv-type f16|f32   KV cache precision (default f16)\n"
    "  --threads N         CPU threads (default: physical cores)\n"
    "  --gpu               run on the GPU (CUDA builds; HEARTH_GPU=1 does the same, HEARTH_GPU=0 forces the CPU)\n";

static int parse_ids(const char *s, int32_t **out, size_t *n)
{
    size_t cap = 16, len = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return -1;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 0x7fffffff || (*end && *end != ',')) {
            free(ids);
            return -1;
        }
        if (len == cap) {
            int32_t *g = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!g) {
                free(ids);
                return -1;
            }
            ids = g;
        }
        ids[len++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    *out = ids;
    *n = len;
    return len ? 0 : -1;
}

int cmd_eval(int argc, char **argv)
{
    const char *path = NULL, *ids_arg = NULL, *logits_path = NULL;
    long greedy = 0, threads = 0, v_l;
    bool one_by_one = false, gpu = false;
    struct ctx_params cp = {0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(argv[i], "--one-by-one") == 0) {
            one_by_one = true;
        } else if (strcmp(argv[i], "--gpu") == 0) {
            gpu = true;
        } else if ((v = opt_value(argc, argv, &i, "--ids"))) {
            ids_arg = v;
        } else if ((v = opt_value(argc, argv, &i, "--logits"))) {
            logits_path = v;
        } else if ((v = opt_value(argc, argv, &i, "--greedy"))) {
            if (!opt_int("eval", "--greedy", v, 0, 1 << 20, &greedy))
                return EXIT_USAGE;
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            if (!opt_int("eval", "--threads", v, 1, 512, &threads))
                return EXIT_USAGE;
        } else if ((v = opt_value(argc, argv, &i, "--batch"))) {
            if (!opt_int("eval", "--batch", v, 1, 1 << 16, &v_l))
                return EXIT_USAGE;
            cp.n_batch = (int)v_l;
        } else if ((v = opt_value(argc, argv, &i, "--ctx-size"))) {
            if (!opt_int("eval", "--ctx-size", v, 1, 1 << 24, &v_l))
                return EXIT_USAGE;
            cp.n_ctx = (int)v_l;
        } else if ((v = opt_value(argc, argv, &i, "--kv-type"))) {
            if (!opt_kv_type("eval", v, &cp.kv_type))
                return EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "hearth eval: unknown flag '%s'\n%s", argv[i], usage_text);
            return EXIT_USAGE;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "hearth eval: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path || !ids_arg || !*ids_arg) {
        fprintf(stderr, "hearth eval: MODEL and --ids are required\n%s", usage_text);
        return EXIT_USAGE;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (parse_ids(ids_arg, &ids, &n) != 0) {
        fprintf(stderr, "hearth eval: --ids: '%s' is not a comma-separated list of token ids\n", ids_arg);
        return EXIT_USAGE;
    }
    if (cp.n_ctx == 0) {
        cp.n_ctx = (int)(n + (size_t)greedy);
        if (cp.n_ctx < 16)
            cp.n_ctx = 16;
    }
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    struct model_ctx *ctx = NULL;
    float *logits = NULL;
    FILE *fp = NULL;
    int status = EXIT_RUNTIME;
    const char *note = NULL;
    if (backend_new_auto((int)threads, gpu, &be, &note, &e))
        goto fail;
    if (note && *note)
        fprintf(stderr, "hearth eval: %s\n", note);
    if (model_load(path, be, &m, &e) ||
        model_ctx_new(m, &cp, &ctx, &e))
        goto fail;
    const size_t vocab = (size_t)m->hp.n_vocab;
    logits = malloc(n * vocab * sizeof *logits);
    if (!logits) {
        err_set(&e, ERR_NOMEM, "out of memory for %zu x %zu logits", n, vocab);
        goto fail;
    }
    if (one_by_one) {
        for (size_t i = 0; i < n; i++)
            if (model_forward(ctx, &ids[i], 1, logits + i * vocab, false, &e))
                goto fail;
    } else if (model_forward(ctx, ids, (int)n, logits, true, &e)) {
        goto fail;
    }
    if (logits_path) {
        fp = fopen(logits_path, "wb");
        if (!fp || fwrite(logits, sizeof *logits, n * vocab, fp) != n * vocab || fclose(fp) != 0) {
            fp = NULL;
            err_set(&e, ERR_IO, "%s: cannot write the logits", logits_path);
            goto fail;
        }
        fp = NULL;
    }
    if (greedy > 0) {
        float *last = logits + (n - 1) * vocab;
        putchar('[');
        for (long g = 0; g < greedy; g++) {
            int32_t tok = argmax_f32(last, (int)vocab);
            printf(g ? ", %d" : "%d", tok);
            if (g + 1 < greedy && model_forward(ctx, &tok, 1, last, false, &e))
                goto fail;
        }
        puts("]");
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "hearth eval: %s\n", e.msg);
done:
    if (fp)
        fclose(fp);
    free(logits);
    free(ids);
    model_ctx_free(ctx);
    model_free(m);
    if (be)
        be->ops->free(be);
    return status;
}
