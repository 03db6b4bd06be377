/* test_split.c — the layer split without a GPU: a model placed over two CPU backend instances (blocks
 * from the last down on the second, then the output head and embeddings) must give the logits of the
 * unsplit model bit for bit at every split point, and the ../shared/reference/tiny-models logits within
 * the usual tolerances; the memory plan's arithmetic (which layers fit, the bytes per device, the
 * PROCESSOR column); the plan's sizes measured from a file; num_gpu in the request options; and
 * model_open, which on a machine without a GPU keeps everything on the CPU and says why. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tu_model.h"
#include "engine/options.h"
#include "gguf/gguf.h"
#include "model/embed.h"
#include "model/model.h"
#include "model/plan.h"

/* ---- the plan's arithmetic ---- */

/* Four blocks of 100 bytes, KV 10 per block, scratch: io 20, blocks 50, logits 30, GPU work 40;
 * output head 200, embeddings 150, untied. A GPU holding g blocks (g > 0) and nothing else needs
 * 110 g + 110 bytes. */
static uint64_t synth_layers[4] = {100, 100, 100, 100};
static struct plan_sizes synth(bool tied)
{
    struct plan_sizes s = {
        .n_layer = 4,
        .layer_bytes = synth_layers,
        .output_bytes = tied ? 205 : 200,
        .embd_bytes = tied ? 200 : 150,
        .tied = tied,
        .kv_layer_bytes = 10,
        .act_io_bytes = 20,
        .act_layer_bytes = 50,
        .logits_bytes = 30,
        .gpu_work_bytes = 40,
    };
    return s;
}

static void test_plan_auto(void **state)
{
    (void)state;
    struct plan_sizes s = synth(false);
    struct mem_plan p;
    /* 330 bytes for 2 blocks, 440 for 3: 400 available takes the last 2 blocks only. */
    memset(&p, 0, sizeof p);
    plan_choose(&s, -1, 400, &p);
    assert_int_equal(p.n_gpu_layers, 2);
    assert_false(p.output_gpu);
    assert_false(p.embd_gpu);
    assert_int_equal(plan_offloaded(&p), 2);
    assert_int_equal(p.num_gpu, -1);
    assert_int_equal(p.gpu_weights, 200);
    assert_int_equal(p.gpu_kv, 20);
    assert_int_equal(p.gpu_scratch, 20 + 50 + 40);
    assert_int_equal(plan_gpu_bytes(&p), 330);
    /* The CPU keeps blocks 0-1, the head and the embeddings, its half of the KV cache, and scratch for
     * blocks and logits. */
    assert_int_equal(p.cpu_weights, 200 + 150 + 200);
    assert_int_equal(p.cpu_kv, 20);
    assert_int_equal(p.cpu_scratch, 20 + 50 + 30);
    plan_choose(&s, -1, 329, &p);
    assert_int_equal(p.n_gpu_layers, 1);
    plan_choose(&s, -1, 219, &p);
    assert_int_equal(p.n_gpu_layers, 0);
    assert_int_equal(plan_gpu_bytes(&p), 0);
    assert_int_equal(plan_offloaded(&p), 0);

    /* All blocks (550) fit in 779 but not the head (+230 = 780). */
    plan_choose(&s, -1, 779, &p);
    assert_int_equal(p.n_gpu_layers, 4);
    assert_false(p.output_gpu);
    /* The head fits in 780; the untied embeddings (+150) only from 930. */
    plan_choose(&s, -1, 780, &p);
    assert_true(p.output_gpu);
    assert_false(p.embd_gpu);
    assert_int_equal(plan_offloaded(&p), 5);
    assert_int_equal(p.cpu_weights, 150);
    assert_int_equal(p.cpu_kv, 0);
    assert_int_equal(p.cpu_scratch, 20); /* the embedding lookup's hidden state */
    plan_choose(&s, -1, 930, &p);
    assert_true(p.embd_gpu);
    assert_int_equal(plan_cpu_bytes(&p), 0);
    assert_int_equal(plan_gpu_bytes(&p), 930);

    /* Tied: the head is the embedding table, so with the head on the GPU the lookup is there too. */
    s = synth(true);
    plan_choose(&s, -1, 785, &p);
    assert_true(p.output_gpu);
    assert_true(p.embd_gpu);
    assert_int_equal(p.gpu_weights, 400 + 205);
    assert_int_equal(plan_cpu_bytes(&p), 0);
    /* Tied, head on the CPU: the CPU holds the table once, plus the final norm. */
    plan_choose(&s, -1, 400, &p);
    assert_int_equal(p.cpu_weights, 200 + 200 + 5);
}

static void test_plan_explicit(void **state)
{
    (void)state;
    struct plan_sizes s = synth(false);
    struct mem_plan p;
    memset(&p, 0, sizeof p);
    const struct {
        int num_gpu, blocks;
        bool out;
    } cases[] = {{0, 0, false}, {1, 1, false}, {3, 3, false}, {4, 4, false}, {5, 4, true}, {99, 4, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* An explicit count is taken as asked even where it does not fit. */
        plan_choose(&s, cases[i].num_gpu, 1, &p);
        assert_int_equal(p.num_gpu, cases[i].num_gpu);
        assert_int_equal(p.n_gpu_layers, cases[i].blocks);
        assert_int_equal(p.output_gpu, cases[i].out);
        assert_int_equal(p.embd_gpu, cases[i].out);
        assert_int_equal(p.gpu_kv, (uint64_t)cases[i].blocks * 10);
        assert_int_equal(p.cpu_kv, (uint64_t)(4 - cases[i].blocks) * 10);
    }
    /* No GPU: everything on the CPU whatever num_gpu says. */
    plan_choose(&s, 5, 0, &p);
    assert_int_equal(plan_offloaded(&p), 0);
    assert_int_equal(plan_gpu_bytes(&p), 0);
    assert_int_equal(p.cpu_weights, 400 + 200 + 150);
    assert_int_equal(p.cpu_kv, 40);
    assert_int_equal(p.cpu_scratch, 20 + 50 + 30);
}

static void test_plan_text(void **state)
{
    (void)state;
    char b[64];
    plan_processor(1000, 0, b, sizeof b);
    assert_string_equal(b, "100% CPU");
    plan_processor(1000, 1000, b, sizeof b);
    assert_string_equal(b, "100% GPU");
    plan_processor(1000, 520, b, sizeof b);
    assert_string_equal(b, "48%/52% CPU/GPU");
    plan_processor(1000, 999, b, sizeof b);
    assert_string_equal(b, "1%/99% CPU/GPU");
    plan_processor(1000, 2000, b, sizeof b);
    assert_string_equal(b, "Unknown");

    struct plan_sizes s = synth(false);
    struct mem_plan p;
    memset(&p, 0, sizeof p);
    snprintf(p.gpu, sizeof p.gpu, "Test GPU");
    p.gpu_free = (uint64_t)3 << 30;
    p.gpu_total = (uint64_t)4 << 30;
    plan_choose(&s, -1, 400, &p);
    char text[2048];
    plan_describe(&p, text, sizeof text);
    print_message("%s", text);
    assert_non_null(strstr(text, "offloaded 2/5 layers to the GPU (num_gpu -1"));
    assert_non_null(strstr(text, "blocks 2-3\n"));
    assert_non_null(strstr(text, "Test GPU: 3.00 GiB free of 4.00 GiB"));
    assert_non_null(strstr(text, "CPU memory:"));
}

/* ---- sizes measured from a file ---- */

static void test_plan_sizes(void **state)
{
    (void)state;
    const char *arches[] = {"llama", "qwen2"};
    for (int a = 0; a < 2; a++) {
        char rel[128];
        snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-f32.gguf", arches[a]);
        const char *path = tu_shared(rel);
        TU_REQUIRE(path);
        struct err e = {0};
        struct gguf_file *f = NULL;
        assert_int_equal(gguf_open(path, &f, &e), 0);
        struct plan_sizes s;
        assert_int_equal(plan_sizes_from_gguf(f, 256, 64, KV_F16, 2, &s, &e), 0);
        uint64_t total = 0, parts = s.embd_bytes + s.other_bytes + s.output_bytes - (s.tied ? s.embd_bytes : 0);
        for (uint64_t i = 0; i < f->n_tensors; i++)
            total += f->tensors[i].size;
        for (int il = 0; il < s.n_layer; il++) {
            assert_true(s.layer_bytes[il] > 0);
            parts += s.layer_bytes[il];
        }
        assert_int_equal(parts, total); /* every tensor counted once */
        assert_int_equal(s.n_layer, 2);
        assert_int_equal(s.tied, a == 1); /* qwen2's head is its embedding table */
        assert_true(s.other_bytes == (a == 0 ? 8 * 4u : 0)); /* llama's rope_freqs: 8 floats */
        /* K and V of one block: 2 slots x 256 positions (allocated as whole cache blocks) x 2 kv heads
         * x 16 x f16. */
        const uint64_t kv_positions = (256 + BACKEND_KV_BLOCK - 1) / BACKEND_KV_BLOCK * BACKEND_KV_BLOCK;
        assert_int_equal(s.kv_layer_bytes, 2ull * 2 * kv_positions * 32 * 2);
        /* Hidden state and its normed copy, 64 rows of 64, two slots. */
        assert_int_equal(s.act_io_bytes, 64ull * (64 + 64) * 4 * 2);
        assert_int_equal(s.logits_bytes, 16ull * (a == 0 ? 2304 : 2112) * 4 * 2);
        assert_true(s.gpu_work_bytes > 0);
        plan_sizes_free(&s);
        gguf_close(f);
    }
}

/* ---- options ---- */

static void test_options_num_gpu(void **state)
{
    (void)state;
    struct gen_options o;
    options_default(&o);
    assert_int_equal(o.num_gpu, -1);
    struct err e = {0};
    const struct {
        const char *json;
        int rc, want;
    } cases[] = {
        {"{\"num_gpu\": 3}", 0, 3},   {"{\"num_gpu\": 0}", 0, 0},        {"{\"num_gpu\": -1}", 0, -1},
        {"{\"num_gpu\": 2.0}", 0, 2}, {"{\"num_gpu\": null}", 0, -1},    {"{\"num_gpu\": 99}", 0, 99},
        {"{\"num_gpu\": -2}", ERR_INVALID, -1}, {"{\"num_gpu\": \"all\"}", ERR_INVALID, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        options_default(&o);
        json_t *j = json_loads(cases[i].json, 0, NULL);
        assert_non_null(j);
        int rc = options_apply_json(&o, j, &e);
        json_decref(j);
        assert_int_equal(rc, cases[i].rc);
        if (rc)
            assert_non_null(strstr(e.msg, "num_gpu"));
        else
            assert_int_equal(o.num_gpu, cases[i].want);
        options_free(&o);
    }
    /* Request over Modelfile: the later object wins, an absent key keeps the earlier value. */
    options_default(&o);
    json_t *modelfile = json_loads("{\"num_gpu\": 7}", 0, NULL), *request = json_loads("{\"num_gpu\": 2}", 0, NULL),
           *other = json_loads("{\"top_k\": 5}", 0, NULL);
    assert_int_equal(options_apply_json(&o, modelfile, &e), 0);
    assert_int_equal(options_apply_json(&o, other, &e), 0);
    assert_int_equal(o.num_gpu, 7);
    assert_int_equal(options_apply_json(&o, request, &e), 0);
    assert_int_equal(o.num_gpu, 2);
    json_decref(modelfile);
    json_decref(request);
    json_decref(other);
    options_free(&o);
}

/* ---- the split itself, between two CPU backends ---- */

/* Layers as num_gpu counts them on the second backend: g blocks from the last, the head and the
 * embeddings when g > n_layer. */
static int g_split;

static int load_split(const char *path, struct backend *lo, struct model **m, struct err *e)
{
    struct backend *hi = tu_make_cpu();
    /* n_layer is 2 in every tiny model; the placement clamps n_hi itself. */
    const struct placement pl = {.lo = lo, .hi = hi, .n_hi = g_split, .output_hi = g_split > 2, .embd_hi = g_split > 2};
    int rc = model_load_placed(path, &pl, m, e);
    if (rc) {
        hi->ops->free(hi);
        return rc;
    }
    (*m)->owned[1] = hi;
    return 0;
}

static int load_path(const char *path, struct backend *be, int g, struct model **m)
{
    struct err e = {0};
    g_split = g;
    int rc = g < 0 ? model_load(path, be, m, &e) : load_split(path, be, m, &e);
    if (rc)
        fail_msg("%s", e.msg);
    return rc;
}

/* Logits of ids through the model: all rows batched in chunks of n_batch, or (n_batch 1) a token at a
 * time; and the pooled embedding of the same ids. */
static void run(struct model *m, const int32_t *ids, int n, int n_batch, float *logits, float *emb)
{
    struct err e = {0};
    struct model_ctx *c = NULL;
    const struct ctx_params cp = {.n_ctx = 64, .n_batch = n_batch, .kv_type = KV_F32};
    assert_int_equal(model_ctx_new(m, &cp, &c, &e), 0);
    const int vocab = m->hp.n_vocab;
    if (n_batch == 1) {
        for (int i = 0; i < n; i++)
            assert_int_equal(model_forward(c, &ids[i], 1, logits + (size_t)i * vocab, false, &e), 0);
    } else {
        assert_int_equal(model_forward(c, ids, n, logits, true, &e), 0);
    }
    assert_int_equal(model_embed(c, ids, n, emb, &e), 0);
    model_ctx_free(c);
}

static void test_split_equals_unsplit(void **state)
{
    (void)state;
    const char *arches[] = {"llama", "qwen2", "qwen3"};
    for (int a = 0; a < 3; a++) {
        char rel[128];
        snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-f32.gguf", arches[a]);
        const char *found = tu_shared(rel);
        TU_REQUIRE(found);
        char path[4096];
        snprintf(path, sizeof path, "%s", found);
        enum { N = 33, NB = 3 };
        int32_t ids[N];
        for (int i = 0; i < N; i++)
            ids[i] = (int32_t)((i * 577 + 11 * a) % 2048);
        struct backend *lo = tu_make_cpu();
        struct model *m = NULL;
        load_path(path, lo, -1, &m);
        const size_t vocab = (size_t)m->hp.n_vocab, d = (size_t)m->hp.n_embd;
        const int n_layer = m->hp.n_layer;
        assert_int_equal(n_layer, 2);
        assert_int_equal(m->n_be, 1);
        /* Prompt chunks of 512 (one), of 8 (five, the cache carried between them) and a token at a time. */
        const int batches[NB] = {512, 8, 1};
        float *want[NB], *want_emb[NB], *got = malloc(N * vocab * sizeof *got), *got_emb = malloc(d * sizeof *got_emb);
        assert_non_null(got);
        assert_non_null(got_emb);
        for (int b = 0; b < NB; b++) {
            want[b] = malloc(N * vocab * sizeof *want[b]);
            want_emb[b] = malloc(d * sizeof *want_emb[b]);
            assert_non_null(want[b]);
            assert_non_null(want_emb[b]);
            run(m, ids, N, batches[b], want[b], want_emb[b]);
        }
        model_free(m);
        for (int g = 0; g <= n_layer + 1; g++) {
            load_path(path, lo, g, &m);
            /* g 0 uses the second backend for nothing; g 3 puts the whole model there. */
            assert_int_equal(m->n_be, g == 0 ? 1 : 2);
            assert_int_equal(m->layer_be[0], g >= 2);
            assert_int_equal(m->layer_be[1], g >= 1);
            assert_int_equal(m->out_be, g == 3);
            assert_int_equal(m->embd_be, g == 3);
            assert_ptr_equal(m->be, m->bes[m->out_be]);
            for (int b = 0; b < NB; b++) {
                run(m, ids, N, batches[b], got, got_emb);
                const float diff = tu_max_abs_diff(got, want[b], N * vocab);
                const float ediff = tu_max_abs_diff(got_emb, want_emb[b], d);
                print_message("%s f32 split at %d, n_batch %d: max abs diff to unsplit: logits %g, embedding %g\n",
                              arches[a], g, batches[b], diff, ediff);
                assert_true(diff == 0.0f);
                assert_true(ediff == 0.0f);
            }
            model_free(m);
        }
        for (int b = 0; b < NB; b++) {
            free(want[b]);
            free(want_emb[b]);
        }
        free(got);
        free(got_emb);
        lo->ops->free(lo);
    }
}

static const struct tu_model_backend split_backend = {
    .label = "split ", .make = tu_make_cpu, .load = load_split};

/* Every variant against the Hugging Face logits, split where both moves happen (block 0 on the first
 * backend, block 1 on the second, the head back on the first) and with everything on the second. */
static void test_split_reference(void **state)
{
    const struct tu_model_variant *v = *state;
    const int points[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        g_split = points[i];
        print_message("split at %d\n", g_split);
        tu_model_check_variant(v, &split_backend);
    }
}

/* ---- model_open ---- */

static void test_model_open(void **state)
{
    (void)state;
    const char *found = tu_shared("reference/tiny-models/qwen2-dev-q8_0.gguf");
    TU_REQUIRE(found);
    char path[4096];
    snprintf(path, sizeof path, "%s", found);
    struct err e = {0};
    struct model *m = NULL;
    const struct load_params lp = {.n_threads = 2, .num_gpu = -1, .ctx = {.n_ctx = 128}};
    assert_int_equal(model_open(path, &lp, &m, &e), 0);
    char text[2048];
    plan_describe(&m->plan, text, sizeof text);
    print_message("%s", text);
    assert_int_equal(m->plan.n_layer, 2);
    assert_int_equal(m->plan.num_gpu, -1);
    if (m->plan.gpu[0] == '\0') {
        /* No GPU here: all on the CPU, and the note says why. */
        assert_int_equal(m->n_be, 1);
        assert_int_equal(plan_offloaded(&m->plan), 0);
        assert_int_equal(plan_gpu_bytes(&m->plan), 0);
        assert_true(m->plan.note[0] != '\0');
        assert_non_null(strstr(text, "100% CPU"));
    }
    assert_true(m->plan.cpu_weights > 0 || m->plan.gpu_weights > 0);
    assert_non_null(m->owned[0]);
    struct model_ctx *c = NULL;
    const struct ctx_params cp = {.n_ctx = 128};
    assert_int_equal(model_ctx_new(m, &cp, &c, &e), 0);
    const int32_t ids[3] = {5, 17, 99};
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof *logits);
    assert_non_null(logits);
    assert_int_equal(model_forward(c, ids, 3, logits, false, &e), 0);
    assert_true(isfinite(logits[0]));
    free(logits);
    model_ctx_free(c);
    model_free(m);

    /* num_gpu 0: the GPU is not even looked at. */
    const struct load_params cpu_only = {.num_gpu = 0};
    assert_int_equal(model_open(path, &cpu_only, &m, &e), 0);
    assert_int_equal(m->n_be, 1);
    assert_string_equal(m->plan.gpu, "");
    assert_string_equal(m->plan.note, "");
    assert_int_equal(m->plan.num_gpu, 0);
    model_free(m);

    assert_int_not_equal(model_open("/nonexistent/split.gguf", &lp, &m, &e), 0);
    assert_null(m);
    assert_non_null(strstr(e.msg, "/nonexistent/split.gguf"));
}

int main(void)
{
    enum { NV = TU_MODEL_N_VARIANTS };
    struct CMUnitTest tests[NV + 8];
    static char names[NV][64];
    size_t n = 0;
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_plan_auto);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_plan_explicit);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_plan_text);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_plan_sizes);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_options_num_gpu);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_split_equals_unsplit);
    for (size_t i = 0; i < NV; i++) {
        const struct tu_model_variant *v = &tu_model_variants[i];
        snprintf(names[i], sizeof names[i], "split_reference_%s_%s", v->arch, v->file_suffix);
        tests[n++] = (struct CMUnitTest){names[i], test_split_reference, NULL, NULL, (void *)v};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_model_open);
    return _cmocka_run_group_tests("split", tests, n, NULL, NULL);
}
