/* testutil.c — see testutil.h and tu_model.h. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "tu_model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/argmax.h"
#include "base/file.h"
#include "gguf/gguf.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"

static const char *resolve(const char *env, const char *fallback, const char *rel)
{
    static char bufs[8][4096];
    static int next;
    char *buf = bufs[next++ % 8];
    const char *root = getenv(env);
    if (!root)
        root = fallback;
    snprintf(buf, sizeof bufs[0], "%s/%s", root, rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

const char *tu_shared(const char *rel) { return resolve("HEARTH_SHARED", "../shared", rel); }
const char *tu_testdata(const char *rel) { return resolve("HEARTH_TESTDATA", "testdata", rel); }

char *tu_read(const char *path, size_t *size)
{
    char *data = NULL;
    size_t n = 0;
    struct err e = {0};
    if (file_read_all(path, &data, &n, &e) != 0)
        fail_msg("%s", e.msg);
    if (size)
        *size = n;
    return data;
}

struct tokenizer *tu_load_tokenizer(const char *path)
{
    struct gguf_file *f = NULL;
    struct err e = {0};
    if (gguf_open(path, &f, &e) != 0)
        fail_msg("gguf_open(%s): %s", path, e.msg);
    struct tokenizer *t = NULL;
    int rc = tokenizer_from_gguf(f, &t, &e);
    gguf_close(f); /* the tokenizer must own its strings */
    if (rc != 0)
        fail_msg("tokenizer_from_gguf(%s): %s", path, e.msg);
    return t;
}

static char tmpdir[256];

static void remove_tmpdir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *tu_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-test-XXXXXX");
        if (!mkdtemp(tmpdir))
            fail_msg("mkdtemp failed");
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

/* ---- the tiny reference models' forward-pass check (tu_model.h) ---------------------------------- */

const struct tu_model_variant tu_model_variants[TU_MODEL_N_VARIANTS] = {
    {"llama", "f32", KV_F32, 2e-5f, true},  {"llama", "f16", KV_F16, 1e-3f, false},
    {"llama", "q8_0", KV_F16, 3e-2f, false}, {"qwen2", "f32", KV_F32, 2e-5f, true},
    {"qwen2", "f16", KV_F16, 1e-3f, false}, {"qwen2", "q8_0", KV_F16, 3e-2f, false},
    {"qwen3", "f32", KV_F32, 2e-5f, true},  {"qwen3", "f16", KV_F16, 1e-3f, false},
    {"qwen3", "q8_0", KV_F16, 3e-2f, false},
};

static int32_t *json_ids(json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *ids = malloc(*n * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

static float *read_logits(const char *name, size_t expect_floats)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/tiny-models/%s", name);
    const char *path = tu_shared(rel);
    assert_non_null(path);
    size_t size = 0;
    char *data = tu_read(path, &size);
    assert_int_equal(size, expect_floats * sizeof(float));
    return (float *)data;
}

struct backend *tu_make_cpu(void)
{
    struct err e = {0};
    struct backend *be = NULL;
    if (backend_cpu_new(2, &be, &e) != 0)
        fail_msg("%s", e.msg);
    return be;
}

float tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) /* NaN counts as a failure */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

void tu_model_check_variant(const struct tu_model_variant *v, const struct tu_model_backend *b)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-%s.gguf", v->arch, v->file_suffix);
    const char *gguf_path = tu_shared(rel);
    TU_REQUIRE(gguf_path);
    /* tu_shared's buffers are reused, so the path is kept before the next lookup. */
    char gguf_copy[4096];
    snprintf(gguf_copy, sizeof gguf_copy, "%s", gguf_path);
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev.json", v->arch);
    const char *json_path = tu_shared(rel);
    TU_REQUIRE(json_path);
    const char *lb = b->label;

    struct backend *be = b->make();
    json_error_t jerr;
    json_t *ref = json_load_file(json_path, 0, &jerr);
    if (!ref)
        fail_msg("%s: %s", json_path, jerr.text);
    struct err e = {0};
    struct model *m = NULL;
    if ((b->load ? b->load(gguf_copy, be, &m, &e) : model_load(gguf_copy, be, &m, &e)) != 0)
        fail_msg("%s", e.msg);
    const int vocab = m->hp.n_vocab;
    assert_int_equal(vocab, (int)json_integer_value(json_object_get(ref, "vocab_size")));

    /* Every prompt, all positions, batched and one token at a time. */
    json_t *prompts = json_object_get(ref, "prompts");
    for (size_t p = 0; p < json_array_size(prompts); p++) {
        json_t *pr = json_array_get(prompts, p);
        size_t n;
        int32_t *ids = json_ids(json_object_get(pr, "ids"), &n);
        float *want = read_logits(json_string_value(json_object_get(pr, "logits_file")), n * vocab);
        float *got = malloc(n * vocab * sizeof *got);
        assert_non_null(got);
        for (int mode = 0; mode < 2; mode++) {
            struct ctx_params cp = {.n_ctx = 64, .n_batch = mode == 0 ? 512 : 1, .kv_type = v->kv};
            struct model_ctx *ctx = NULL;
            if (model_ctx_new(m, &cp, &ctx, &e) != 0)
                fail_msg("%s", e.msg);
            if (mode == 0) {
                assert_int_equal(model_forward(ctx, ids, (int)n, got, true, &e), 0);
            } else {
                for (size_t i = 0; i < n; i++)
                    assert_int_equal(model_forward(ctx, &ids[i], 1, got + i * vocab, false, &e), 0);
            }
            if (b->after_pass)
                b->after_pass(be, mode == 1, n);
            float d = tu_max_abs_diff(got, want, n * vocab);
            print_message("%s%s-%s prompt %zu (%zu ids, %s): max abs diff %.3g (tolerance %.3g)\n", lb, v->arch,
                          v->file_suffix, p, n, mode ? "one by one" : "batched", d, v->tol);
            assert_true(d <= v->tol);
            model_ctx_free(ctx);
        }
        free(got);
        free(want);
        free(ids);
    }

    /* The long prompt: the last positions of 1024 ids, run in chunks of 256. */
    json_t *lp = json_object_get(ref, "long_prompt");
    size_t n;
    int32_t *ids = json_ids(json_object_get(lp, "ids"), &n);
    json_t *positions = json_object_get(lp, "positions");
    size_t n_pos = json_array_size(positions);
    float *want = read_logits(json_string_value(json_object_get(lp, "logits_file")), n_pos * vocab);
    float *got = malloc(n * vocab * sizeof *got);
    assert_non_null(got);
    struct ctx_params cp = {.n_ctx = (int)n, .n_batch = 256, .kv_type = v->kv};
    struct model_ctx *ctx = NULL;
    assert_int_equal(model_ctx_new(m, &cp, &ctx, &e), 0);
    assert_int_equal(model_forward(ctx, ids, (int)n, got, true, &e), 0);
    for (size_t k = 0; k < n_pos; k++) {
        size_t pos = (size_t)json_integer_value(json_array_get(positions, k));
        assert_true(pos < n);
        float d = tu_max_abs_diff(got + pos * vocab, want + k * vocab, vocab);
        print_message("%s%s-%s long prompt position %zu: max abs diff %.3g\n", lb, v->arch, v->file_suffix, pos, d);
        assert_true(d <= v->tol);
    }
    model_ctx_free(ctx);
    free(got);
    free(want);
    free(ids);

    /* Greedy continuations: argmax tokens through the KV cache. */
    if (v->check_greedy) {
        json_t *greedy = json_object_get(ref, "greedy");
        for (size_t g = 0; g < json_array_size(greedy); g++) {
            json_t *gr = json_array_get(greedy, g);
            size_t np, nc;
            int32_t *prompt = json_ids(json_object_get(gr, "prompt_ids"), &np);
            int32_t *cont = json_ids(json_object_get(gr, "continuation_ids"), &nc);
            struct ctx_params gcp = {.n_ctx = 128, .kv_type = v->kv};
            assert_int_equal(model_ctx_new(m, &gcp, &ctx, &e), 0);
            float *logits = malloc(vocab * sizeof *logits);
            assert_non_null(logits);
            assert_int_equal(model_forward(ctx, prompt, (int)np, logits, false, &e), 0);
            for (size_t i = 0; i < nc; i++) {
                int32_t tok = argmax_f32(logits, vocab);
                if (tok != cont[i])
                    fail_msg("%s%s-%s greedy %zu step %zu: got %d, want %d", lb, v->arch, v->file_suffix, g, i,
                             tok, cont[i]);
                assert_int_equal(model_forward(ctx, &tok, 1, logits, false, &e), 0);
            }
            model_ctx_free(ctx);
            /* Again with the backend picking each token where the logits are (model_forward_greedy). */
            assert_int_equal(model_ctx_new(m, &gcp, &ctx, &e), 0);
            int32_t tok = -1;
            assert_int_equal(model_forward_greedy(ctx, prompt, (int)np, &tok, false, &e), 0);
            for (size_t i = 0; i < nc; i++) {
                if (tok != cont[i])
                    fail_msg("%s%s-%s greedy %zu step %zu (backend pick): got %d, want %d", lb, v->arch,
                             v->file_suffix, g, i, tok, cont[i]);
                assert_int_equal(model_forward_greedy(ctx, &tok, 1, &tok, false, &e), 0);
            }
            model_ctx_free(ctx);
            /* Again with each next step started ahead (model_forward_greedy with ahead), where the caller
             * sometimes does something else next: at the middle it steps back one position and runs that
             * token again (a set_batch the started step does not match), and the context ends exactly at
             * the continuation's end, so no step may be started past it. */
            struct ctx_params acp = {.n_ctx = (int)(np + nc), .kv_type = v->kv};
            assert_int_equal(model_ctx_new(m, &acp, &ctx, &e), 0);
            tok = -1;
            assert_int_equal(model_forward_greedy(ctx, prompt, (int)np, &tok, true, &e), 0);
            for (size_t i = 0; i < nc; i++) {
                if (tok != cont[i])
                    fail_msg("%s%s-%s greedy %zu step %zu (started ahead): got %d, want %d", lb, v->arch,
                             v->file_suffix, g, i, tok, cont[i]);
                if (i + 1 == nc)
                    break;
                if (i == nc / 2 && i > 0) {
                    model_ctx_truncate(ctx, ctx->n_past - 1);
                    assert_int_equal(model_forward_greedy(ctx, &cont[i - 1], 1, &tok, true, &e), 0);
                    assert_int_equal(tok, cont[i]);
                }
                assert_int_equal(model_forward_greedy(ctx, &tok, 1, &tok, true, &e), 0);
            }
            assert_int_equal(ctx->n_past, acp.n_ctx - 1);
            print_message("%s%s-%s greedy %zu: %zu tokens identical (host and backend picks, steps ahead)\n", lb,
                          v->arch, v->file_suffix, g, nc);
            free(logits);
            model_ctx_free(ctx);
            free(prompt);
            free(cont);
        }
    }
    model_free(m);
    be->ops->free(be);
    json_decref(ref);
}
