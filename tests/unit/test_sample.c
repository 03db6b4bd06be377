/* test_sample.c — the sampler (penalties, top-k, top-p, min-p, temperature, seeded draws, greedy) and
 * stop-string matching, checked against hand-computed values, a brute-force reference of the same
 * rules, and the greedy continuations and logits of the tiny reference models in
 * ../shared/reference/tiny-models. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/argmax.h"
#include "base/clock.h"
#include "sample/rng.h"
#include "sample/sample.h"

#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s = %.9g, expected %.9g (tolerance %g)", #a, a_, b_, (double)(tol));       \
    } while (0)

static struct sample_params params(float temp, int32_t top_k, float top_p, float min_p)
{
    struct sample_params p;
    sample_params_default(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = 1.0f;
    p.seed = 1234;
    return p;
}

static struct sampler *make(const struct sample_params *p, int32_t n_vocab, int32_t n_ctx)
{
    struct sampler *s = NULL;
    struct err e = {0};
    if (sampler_new(p, n_vocab, n_ctx, &s, &e) != 0)
        fail_msg("sampler_new: %s", e.msg);
    return s;
}

static int32_t sample_copy(struct sampler *s, const float *logits, float *scratch, int32_t n)
{
    memcpy(scratch, logits, (size_t)n * sizeof *scratch);
    return sampler_sample(s, scratch);
}

/* Draws `draws` tokens and checks every one lies in expect_ids and that their frequencies match
 * expect_p within tol. */
static void check_draws(struct sampler *s, const float *logits, int32_t n, const int32_t *expect_ids,
                        const double *expect_p, int n_expect, int draws, double tol)
{
    int *hits = calloc((size_t)n, sizeof *hits);
    float *scratch = malloc((size_t)n * sizeof *scratch);
    for (int i = 0; i < draws; i++) {
        int32_t t = sample_copy(s, logits, scratch, n);
        assert_true(t >= 0 && t < n);
        hits[t]++;
    }
    int in_set = 0;
    for (int j = 0; j < n_expect; j++) {
        in_set += hits[expect_ids[j]];
        ASSERT_NEAR((double)hits[expect_ids[j]] / draws, expect_p[j], tol);
    }
    assert_int_equal(in_set, draws); /* nothing outside the expected set was ever drawn */
    free(hits);
    free(scratch);
}

/* Checks sampler_candidates leaves exactly ids (in that order) with probabilities probs. */
static void check_candidates(struct sampler *s, const float *logits, int32_t n, const int32_t *ids,
                             const double *probs, int n_expect)
{
    float *scratch = malloc((size_t)n * sizeof *scratch);
    int32_t *got_ids = malloc((size_t)n * sizeof *got_ids);
    float *got_p = malloc((size_t)n * sizeof *got_p);
    memcpy(scratch, logits, (size_t)n * sizeof *scratch);
    int32_t k = sampler_candidates(s, scratch, got_ids, got_p);
    assert_int_equal(k, n_expect);
    for (int j = 0; j < n_expect; j++) {
        assert_int_equal(got_ids[j], ids[j]);
        ASSERT_NEAR(got_p[j], probs[j], 1e-5);
    }
    free(scratch);
    free(got_ids);
    free(got_p);
}

/* ---- options ---------------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct sample_params p;
    sample_params_default(&p);
    /* Ollama's current defaults (../shared/spec/ollama.md, options). */
    ASSERT_NEAR(p.temperature, 0.8, 1e-7);
    assert_int_equal(p.top_k, 40);
    ASSERT_NEAR(p.top_p, 0.9, 1e-7);
    ASSERT_NEAR(p.min_p, 0.0, 0);
    ASSERT_NEAR(p.repeat_penalty, 1.0, 0);
    assert_int_equal(p.repeat_last_n, 64);
    ASSERT_NEAR(p.presence_penalty, 0.0, 0);
    ASSERT_NEAR(p.frequency_penalty, 0.0, 0);
    assert_int_equal(p.seed, -1);
    struct err e = {0};
    assert_int_equal(sample_params_validate(&p, &e), 0);
}

static void test_validation_names_option(void **state)
{
    (void)state;
    /* Each row: the option that is broken and the message must name it. */
    struct sample_params p;
    struct err e;
    const char *names[] = {"temperature", "temperature", "top_p",          "top_p",
                           "min_p",       "min_p",       "repeat_penalty", "repeat_penalty",
                           "repeat_penalty", "repeat_last_n", "presence_penalty", "frequency_penalty"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        sample_params_default(&p);
        switch (i) {
        case 0: p.temperature = NAN; break;
        case 1: p.temperature = INFINITY; break;
        case 2: p.top_p = -0.1f; break;
        case 3: p.top_p = NAN; break;
        case 4: p.min_p = 1.5f; break;
        case 5: p.min_p = NAN; break;
        case 6: p.repeat_penalty = 0.0f; break;
        case 7: p.repeat_penalty = -1.1f; break;
        case 8: p.repeat_penalty = NAN; break;
        case 9: p.repeat_last_n = -2; break;
        case 10: p.presence_penalty = INFINITY; break;
        case 11: p.frequency_penalty = NAN; break;
        }
        err_clear(&e);
        assert_int_equal(sample_params_validate(&p, &e), ERR_INVALID);
        assert_int_equal(e.code, ERR_INVALID);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", names[i]);
        if (!strstr(e.msg, quoted))
            fail_msg("case %d: message \"%s\" does not name %s", i, e.msg, quoted);
        /* sampler_new refuses the same options and hands back nothing. */
        struct sampler *s = (struct sampler *)&p;
        assert_int_equal(sampler_new(&p, 10, 10, &s, &e), ERR_INVALID);
        assert_null(s);
    }

    /* The edges of every range are accepted. */
    sample_params_default(&p);
    p.temperature = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.repeat_last_n = -1;
    p.repeat_penalty = 0.5f;
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 2.0f;
    p.seed = 0;
    assert_int_equal(sample_params_validate(&p, &e), 0);
    p.temperature = -1.0f; /* negative means greedy, as for llama.cpp */
    p.top_k = -1;
    p.top_p = 0.0f;
    p.min_p = -1.0f;
    assert_int_equal(sample_params_validate(&p, &e), 0);

    /* Sizes: an empty vocabulary, and repeat_last_n = -1 without a context size. */
    struct sampler *s = NULL;
    sample_params_default(&p);
    assert_int_equal(sampler_new(&p, 0, 128, &s, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "vocabulary"));
    p.repeat_last_n = -1;
    assert_int_equal(sampler_new(&p, 100, 0, &s, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "\"repeat_last_n\""));
    assert_null(s);
}

/* ---- greedy ----------------------------------------------------------------------------------- */

/* sampler_is_plain_greedy says when a pick is the bare argmax (so a backend may make it without the
 * logits): checked against what sampler_sample actually picks after the best token was seen, where a
 * penalty would move the pick. */
static void test_plain_greedy(void **state)
{
    (void)state;
    const float a[6] = {0.5f, -1.0f, 3.25f, 3.0f, -7.0f, 1.0f};
    const struct {
        float temp, repeat, presence, frequency;
        int32_t last_n;
        bool plain;
        int32_t pick; /* after token 2 was seen twice */
    } cases[] = {
        {0.0f, 1.0f, 0.0f, 0.0f, 64, true, 2},  {0.0f, 1.5f, 0.0f, 0.0f, 64, false, 3},
        {0.0f, 1.5f, 0.0f, 0.0f, 0, true, 2},   {0.0f, 1.0f, 1.0f, 0.0f, 64, false, 3},
        {0.0f, 1.0f, 0.0f, 0.5f, 64, false, 3}, {-1.0f, 1.0f, 0.0f, 0.0f, 64, true, 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct sample_params p = params(cases[k].temp, 40, 0.9f, 0.0f);
        p.repeat_penalty = cases[k].repeat;
        p.presence_penalty = cases[k].presence;
        p.frequency_penalty = cases[k].frequency;
        p.repeat_last_n = cases[k].last_n;
        struct sampler *s = make(&p, 6, 16);
        assert_int_equal(sampler_is_plain_greedy(s), cases[k].plain);
        sampler_accept(s, 2);
        sampler_accept(s, 2);
        float buf[6];
        const int32_t got = sample_copy(s, a, buf, 6);
        assert_int_equal(got, cases[k].pick);
        if (cases[k].plain)
            assert_int_equal(got, argmax_f32(a, 6));
        sampler_free(s);
    }
    /* Any temperature above zero samples. */
    struct sample_params p = params(0.8f, 40, 0.9f, 0.0f);
    struct sampler *s = make(&p, 6, 16);
    assert_false(sampler_is_plain_greedy(s));
    sampler_free(s);
}

static void test_greedy(void **state)
{
    (void)state;
    struct sample_params p = params(0.0f, 40, 0.9f, 0.0f);
    struct sampler *s = make(&p, 6, 0);
    float buf[6];
    const float a[6] = {0.5f, -1.0f, 3.25f, 3.0f, -7.0f, 1.0f};
    assert_int_equal(sample_copy(s, a, buf, 6), 2);
    /* Ties go to the lowest id. */
    const float tie[6] = {1.0f, 5.0f, 3.0f, 5.0f, 5.0f, -2.0f};
    assert_int_equal(sample_copy(s, tie, buf, 6), 1);
    /* The sampler-free argmax agrees on both. */
    assert_int_equal(argmax_f32(a, 6), 2);
    assert_int_equal(argmax_f32(tie, 6), 1);
    /* NaN is never chosen; all -inf falls back to id 0 rather than failing. */
    const float nan_first[6] = {NAN, 0.0f, NAN, 2.0f, 1.0f, NAN};
    assert_int_equal(sample_copy(s, nan_first, buf, 6), 3);
    const float ninf[6] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    assert_int_equal(sample_copy(s, ninf, buf, 6), 0);
    /* The candidates view agrees: one token, certainty. */
    int32_t ids[6];
    float probs[6];
    memcpy(buf, a, sizeof buf);
    assert_int_equal(sampler_candidates(s, buf, ids, probs), 1);
    assert_int_equal(ids[0], 2);
    ASSERT_NEAR(probs[0], 1.0, 0);
    sampler_free(s);

    /* A temperature so small that 1/T overflows still picks the best token, never garbage. */
    p.temperature = 1e-45f;
    p.top_k = 0;
    p.top_p = 1.0f;
    s = make(&p, 6, 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(sample_copy(s, a, buf, 6), 2);
    sampler_free(s);
    p = params(0.0f, 40, 0.9f, 0.0f);

    /* Negative temperature is greedy too, and penalties still apply: token 2 is penalised below 3. */
    p.temperature = -1.0f;
    p.repeat_penalty = 1.5f;
    s = make(&p, 6, 0);
    sampler_accept(s, 2);
    assert_int_equal(sample_copy(s, a, buf, 6), 3);
    sampler_reset(s);
    assert_int_equal(sample_copy(s, a, buf, 6), 2);
    sampler_free(s);
}

/* Greedy over transformers' logits must reproduce its greedy continuation's first token, for every
 * prompt of the three tiny reference models; top-2 candidates give back the recorded margin. */
static void test_greedy_matches_reference_models(void **state)
{
    (void)state;
    const char *archs[] = {"llama", "qwen2", "qwen3"};
    int checked = 0;
    for (int a = 0; a < 3; a++) {
        char rel[256];
        snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev.json", archs[a]);
        const char *path = tu_shared(rel);
        TU_REQUIRE(path);
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!root)
            fail_msg("%s: %s", path, jerr.text);
        int32_t n_vocab = (int32_t)json_integer_value(json_object_get(root, "vocab_size"));
        assert_true(n_vocab > 0);
        json_t *prompts = json_object_get(root, "prompts");
        json_t *greedy = json_object_get(root, "greedy");
        assert_int_equal(json_array_size(prompts), json_array_size(greedy));

        struct sample_params pg = params(0.0f, 40, 0.9f, 0.0f);
        struct sample_params p2 = params(1.0f, 2, 1.0f, 0.0f);
        struct sampler *sg = make(&pg, n_vocab, 0), *s2 = make(&p2, n_vocab, 0);
        int32_t *ids = malloc((size_t)n_vocab * sizeof *ids);
        float *probs = malloc((size_t)n_vocab * sizeof *probs);
        for (size_t i = 0; i < json_array_size(prompts); i++) {
            json_t *pr = json_array_get(prompts, i), *g = json_array_get(greedy, i);
            snprintf(rel, sizeof rel, "reference/tiny-models/%s",
                     json_string_value(json_object_get(pr, "logits_file")));
            const char *lpath = tu_shared(rel);
            TU_REQUIRE(lpath);
            size_t size = 0;
            float *rows = (float *)tu_read(lpath, &size);
            int32_t positions = (int32_t)json_integer_value(json_array_get(json_object_get(pr, "shape"), 0));
            assert_int_equal(size, (size_t)positions * (size_t)n_vocab * sizeof(float));
            const float *last = rows + (size_t)(positions - 1) * (size_t)n_vocab;
            int32_t want = (int32_t)json_integer_value(
                json_array_get(json_object_get(g, "continuation_ids"), 0));
            double margin = json_real_value(
                json_array_get(json_object_get(g, "top1_minus_top2_logit_margin_per_step"), 0));

            float *buf = malloc((size_t)n_vocab * sizeof *buf);
            assert_int_equal(sample_copy(sg, last, buf, n_vocab), want);
            assert_int_equal(argmax_f32(last, n_vocab), want);
            memcpy(buf, last, (size_t)n_vocab * sizeof *buf);
            assert_int_equal(sampler_candidates(s2, buf, ids, probs), 2);
            assert_int_equal(ids[0], want);
            ASSERT_NEAR(last[ids[0]] - last[ids[1]], margin, 1e-6);
            /* Softmax of two logits: p0 / p1 = e^margin. */
            ASSERT_NEAR(log((double)probs[0] / probs[1]), margin, 1e-4);
            free(buf);
            free(rows);
            checked++;
        }
        free(ids);
        free(probs);
        sampler_free(sg);
        sampler_free(s2);
        json_decref(root);
    }
    assert_int_equal(checked, 9);
}

/* ---- penalties -------------------------------------------------------------------------------- */

static void test_penalty_amounts(void **state)
{
    (void)state;
    const float base[8] = {2.0f, -2.0f, 1.0f, 0.0f, 3.0f, -1.0f, 0.5f, 4.0f};
    float l[8];
    struct sample_params p = params(0.8f, 40, 0.9f, 0.0f);
    p.repeat_penalty = 1.5f;
    p.presence_penalty = 0.25f;
    p.frequency_penalty = 0.5f;
    p.repeat_last_n = 4;
    struct sampler *s = make(&p, 8, 0);
    /* 7 then falls out of the 4-token window: [0, 0, 1, 3] remain. 99 and -1 are not tokens. */
    const int32_t seq[] = {7, 0, 99, 0, 1, -1, 3};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        sampler_accept(s, seq[i]);
    memcpy(l, base, sizeof l);
    sampler_apply_penalties(s, l);
    ASSERT_NEAR(l[0], 2.0 / 1.5 - (2 * 0.5 + 0.25), 1e-6); /* positive: divided; twice seen */
    ASSERT_NEAR(l[1], -2.0 * 1.5 - (0.5 + 0.25), 1e-6);    /* negative: multiplied */
    ASSERT_NEAR(l[3], 0.0 - (0.5 + 0.25), 1e-6);           /* zero stays zero, then OpenAI terms */
    const int untouched[] = {2, 4, 5, 6, 7};
    for (int i = 0; i < 5; i++)
        ASSERT_NEAR(l[untouched[i]], base[untouched[i]], 0);
    /* Applying twice compounds (the history is not consumed). */
    sampler_apply_penalties(s, l);
    ASSERT_NEAR(l[1], (-2.0 * 1.5 - 0.75) * 1.5 - 0.75, 1e-5);

    /* Sliding on: two more accepts push both 0s out. */
    sampler_accept(s, 5);
    sampler_accept(s, 5);
    memcpy(l, base, sizeof l);
    sampler_apply_penalties(s, l);
    ASSERT_NEAR(l[0], base[0], 0);
    ASSERT_NEAR(l[1], -2.0 * 1.5 - 0.75, 1e-6);
    ASSERT_NEAR(l[5], -1.0 * 1.5 - (2 * 0.5 + 0.25), 1e-6);

    /* Reset forgets everything. */
    sampler_reset(s);
    memcpy(l, base, sizeof l);
    sampler_apply_penalties(s, l);
    assert_memory_equal(l, base, sizeof l);
    sampler_free(s);

    /* repeat_last_n = 0 turns all penalties off. */
    p.repeat_last_n = 0;
    s = make(&p, 8, 0);
    sampler_accept(s, 0);
    memcpy(l, base, sizeof l);
    sampler_apply_penalties(s, l);
    assert_memory_equal(l, base, sizeof l);
    sampler_free(s);

    /* repeat_last_n = -1 means the context size: 3 here, so the first 0 has left the window. */
    p.repeat_last_n = -1;
    s = make(&p, 8, 3);
    const int32_t seq2[] = {0, 4, 0, 4};
    for (int i = 0; i < 4; i++)
        sampler_accept(s, seq2[i]);
    memcpy(l, base, sizeof l);
    sampler_apply_penalties(s, l);
    ASSERT_NEAR(l[0], 2.0 / 1.5 - 0.75, 1e-6);
    ASSERT_NEAR(l[4], 3.0 / 1.5 - (2 * 0.5 + 0.25), 1e-6);
    sampler_free(s);

    /* Only presence/frequency (repeat_penalty 1): pure OpenAI-style subtraction. */
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 1.0f;
    s = make(&p, 8, 0);
    for (int i = 0; i < 3; i++)
        sampler_accept(s, 6);
    memcpy(l, base, sizeof l);
    sampler_apply_penalties(s, l);
    ASSERT_NEAR(l[6], 0.5 - 3.0, 1e-6);
    sampler_free(s);
}

/* Penalties act inside sampler_sample even when sampling: with a strong frequency penalty, a token
 * that was drawn is never drawn again from a sharp distribution. */
static void test_penalties_steer_sampling(void **state)
{
    (void)state;
    struct sample_params p = params(1.0f, 0, 1.0f, 0.0f);
    p.frequency_penalty = 100.0f;
    p.repeat_last_n = 16;
    struct sampler *s = make(&p, 16, 0);
    float l[16], buf[16];
    for (int i = 0; i < 16; i++)
        l[i] = 10.0f - 0.01f * (float)i;
    int seen[16] = {0};
    for (int step = 0; step < 16; step++) {
        int32_t t = sample_copy(s, l, buf, 16);
        assert_int_equal(seen[t], 0);
        seen[t] = 1;
        sampler_accept(s, t);
    }
    sampler_free(s);
}

/* ---- truncation ------------------------------------------------------------------------------- */

/* Probabilities 0.5, 0.3, 0.15, 0.05 (plus an impossible token) as logits. */
static void quad_logits(float l[5])
{
    l[0] = logf(0.5f);
    l[1] = logf(0.3f);
    l[2] = logf(0.15f);
    l[3] = logf(0.05f);
    l[4] = -INFINITY;
}

static void test_top_k(void **state)
{
    (void)state;
    enum { N = 16 };
    float l[N];
    for (int i = 0; i < N; i++)
        l[i] = (float)((i * 7) % N) * 0.25f; /* a permutation: ids ranked 9, 2, 11, 4, ... */
    struct sample_params p = params(1.0f, 5, 1.0f, 0.0f);
    struct sampler *s = make(&p, N, 0);
    int32_t ids[5];
    double pr[5], z = 0.0;
    /* (i*7)%16 == 15, 14, 13, 12, 11 at i = 9, 2, 11, 4, 13. */
    const int32_t want[5] = {9, 2, 11, 4, 13};
    for (int j = 0; j < 5; j++)
        z += exp(l[want[j]]);
    for (int j = 0; j < 5; j++) {
        ids[j] = want[j];
        pr[j] = exp(l[want[j]]) / z;
    }
    check_candidates(s, l, N, ids, pr, 5);
    check_draws(s, l, N, ids, pr, 5, 20000, 0.015);
    sampler_free(s);

    /* top_k 1 is greedy even at high temperature. */
    p = params(5.0f, 1, 1.0f, 0.0f);
    s = make(&p, N, 0);
    const double one = 1.0;
    check_draws(s, l, N, &want[0], &one, 1, 200, 0);
    sampler_free(s);

    /* Ties at the boundary keep the lower ids. */
    const float flat[6] = {1, 1, 1, 1, 1, 1};
    p = params(1.0f, 2, 1.0f, 0.0f);
    s = make(&p, 6, 0);
    const int32_t two[2] = {0, 1};
    const double half[2] = {0.5, 0.5};
    check_candidates(s, flat, 6, two, half, 2);
    check_draws(s, flat, 6, two, half, 2, 20000, 0.02);
    sampler_free(s);
}

static void test_top_p(void **state)
{
    (void)state;
    float l[5];
    quad_logits(l);
    struct {
        int32_t top_k;
        float top_p;
        int n;
        double p[4];
    } cases[] = {
        /* Without top-k (the bucketed path over the whole vocabulary). */
        {0, 0.75f, 2, {0.5 / 0.8, 0.3 / 0.8}},
        {0, 0.85f, 3, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95}},
        {0, 0.4f, 1, {1.0}},
        {0, 0.0f, 1, {1.0}},
        {0, 0.99f, 4, {0.5, 0.3, 0.15, 0.05}},
        /* After top-k 3 the mass is renormalised over the three: 0.526, 0.842, 1. */
        {3, 0.8f, 2, {0.5 / 0.8, 0.3 / 0.8}},
        {3, 0.85f, 3, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95}},
    };
    const int32_t order[4] = {0, 1, 2, 3};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct sample_params p = params(1.0f, cases[c].top_k, cases[c].top_p, 0.0f);
        struct sampler *s = make(&p, 5, 0);
        check_candidates(s, l, 5, order, cases[c].p, cases[c].n);
        check_draws(s, l, 5, order, cases[c].p, cases[c].n, 20000, 0.015);
        sampler_free(s);
    }
}

static void test_min_p(void **state)
{
    (void)state;
    float l[5];
    quad_logits(l);
    struct {
        float min_p;
        int n;
        double p[4];
    } cases[] = {
        {0.25f, 3, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95}}, /* keeps p >= 0.125 */
        {0.5f, 2, {0.5 / 0.8, 0.3 / 0.8}},                  /* keeps p >= 0.25 */
        {0.7f, 1, {1.0}},
        {1.0f, 1, {1.0}},
        {0.05f, 4, {0.5, 0.3, 0.15, 0.05}},
    };
    const int32_t order[4] = {0, 1, 2, 3};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* With top-k off and top-p off the survivors stay in id order, which here is rank order. */
        struct sample_params p = params(1.0f, 0, 1.0f, cases[c].min_p);
        struct sampler *s = make(&p, 5, 0);
        check_candidates(s, l, 5, order, cases[c].p, cases[c].n);
        check_draws(s, l, 5, order, cases[c].p, cases[c].n, 20000, 0.015);
        sampler_free(s);
    }
    /* min-p is judged before temperature: at temperature 3 the same set survives, flatter. */
    struct sample_params p = params(3.0f, 0, 1.0f, 0.25f);
    struct sampler *s = make(&p, 5, 0);
    double w[3], z = 0;
    for (int j = 0; j < 3; j++)
        z += w[j] = pow(exp(l[j]), 1.0 / 3.0);
    for (int j = 0; j < 3; j++)
        w[j] /= z;
    check_candidates(s, l, 5, order, w, 3);
    check_draws(s, l, 5, order, w, 3, 20000, 0.015);
    sampler_free(s);
}

static void test_temperature(void **state)
{
    (void)state;
    float l[5];
    quad_logits(l);
    const int32_t order[4] = {0, 1, 2, 3};
    const float temps[] = {0.5f, 1.0f, 2.0f};
    for (int t = 0; t < 3; t++) {
        struct sample_params p = params(temps[t], 0, 1.0f, 0.0f);
        struct sampler *s = make(&p, 5, 0);
        double w[4], z = 0;
        for (int j = 0; j < 4; j++)
            z += w[j] = exp(l[j] / temps[t]);
        for (int j = 0; j < 4; j++)
            w[j] /= z;
        check_candidates(s, l, 5, order, w, 4);
        check_draws(s, l, 5, order, w, 4, 20000, 0.015);
        sampler_free(s);
    }
}

/* ---- brute-force reference ------------------------------------------------------------------- */

struct ref_item {
    float logit;
    int32_t id;
};

static int ref_cmp(const void *a, const void *b)
{
    const struct ref_item *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The chain written the obvious way (full sort), with the sampler's arithmetic: float expf, double sums
 * (the untruncated normaliser summed in id order). Returns the surviving ids best first. */
static int ref_chain(const float *logits, int32_t n, const struct sample_params *p, int32_t *out)
{
    struct ref_item *it = malloc((size_t)n * sizeof *it);
    for (int32_t i = 0; i < n; i++)
        it[i] = (struct ref_item){logits[i], i};
    qsort(it, (size_t)n, sizeof *it, ref_cmp);
    float maxl = it[0].logit;
    int32_t k = n;
    double z = 0.0;
    if (p->top_k > 0 && p->top_k < n) {
        k = p->top_k;
        for (int32_t i = 0; i < k; i++)
            z += expf(it[i].logit - maxl);
    } else {
        for (int32_t i = 0; i < n; i++)
            z += expf(logits[i] - maxl);
    }
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        for (int32_t i = 0; i < k; i++) {
            cum += expf(it[i].logit - maxl);
            if (cum >= (double)p->top_p * z) {
                k = i + 1;
                break;
            }
        }
    }
    int32_t m = 0;
    for (int32_t i = 0; i < k; i++)
        if (p->min_p <= 0.0f || it[i].logit >= maxl + logf(p->min_p))
            out[m++] = it[i].id;
    free(it);
    return m;
}

static void compare_with_reference(const float *logits, int32_t n, const struct sample_params *p,
                                   const char *what)
{
    struct sampler *s = make(p, n, 0);
    int32_t *want = malloc((size_t)n * sizeof *want), *got = malloc((size_t)n * sizeof *got);
    float *probs = malloc((size_t)n * sizeof *probs), *buf = malloc((size_t)n * sizeof *buf);
    int32_t nw = ref_chain(logits, n, p, want);
    memcpy(buf, logits, (size_t)n * sizeof *buf);
    int64_t t0 = clock_ns();
    int32_t ng = sampler_candidates(s, buf, got, probs);
    int64_t t1 = clock_ns();
    if (ng != nw)
        fail_msg("%s (top_k %d, top_p %g, min_p %g): %d candidates, reference has %d", what,
                 (int)p->top_k, (double)p->top_p, (double)p->min_p, (int)ng, (int)nw);
    int sorted = (p->top_k > 0 && p->top_k < n) || p->top_p < 1.0f;
    if (sorted) {
        assert_memory_equal(got, want, (size_t)nw * sizeof *got);
    } else {
        /* No sort happened: same set in id order. */
        int32_t *w2 = malloc((size_t)nw * sizeof *w2);
        memcpy(w2, want, (size_t)nw * sizeof *w2);
        for (int32_t i = 1; i < nw; i++)
            for (int32_t j = i; j > 0 && w2[j - 1] > w2[j]; j--) {
                int32_t t = w2[j];
                w2[j] = w2[j - 1];
                w2[j - 1] = t;
            }
        assert_memory_equal(got, w2, (size_t)nw * sizeof *got);
        free(w2);
    }
    double sum = 0.0;
    for (int32_t i = 0; i < ng; i++)
        sum += probs[i];
    ASSERT_NEAR(sum, 1.0, 1e-4);
    print_message("%s n=%d top_k=%d top_p=%.2f min_p=%.2f: %d candidates in %.2f ms\n", what, (int)n,
                  (int)p->top_k, (double)p->top_p, (double)p->min_p, (int)ng, (double)(t1 - t0) / 1e6);
    free(want);
    free(got);
    free(probs);
    free(buf);
    sampler_free(s);
}

static const struct {
    int32_t top_k;
    float top_p, min_p;
} chains[] = {
    {0, 0.9f, 0.0f},  {0, 0.5f, 0.0f},  {0, 0.999f, 0.0f}, {40, 0.9f, 0.0f},  {40, 1.0f, 0.0f},
    {0, 1.0f, 0.05f}, {1000, 0.95f, 0.01f}, {0, 0.9f, 0.1f}, {100000, 0.7f, 0.0f},
};

/* A 152k vocabulary (Qwen's size) with Gaussian logits of a realistic spread, and a few exact ties. */
static void test_large_vocab_matches_reference(void **state)
{
    (void)state;
    enum { N = 151936 };
    float *l = malloc(N * sizeof *l);
    struct rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < N; i += 2) {
        double u1 = rng_uniform(&r) + 1e-12, u2 = rng_uniform(&r);
        double rad = sqrt(-2.0 * log(u1));
        l[i] = (float)(3.0 * rad * cos(6.283185307179586 * u2));
        l[i + 1] = (float)(3.0 * rad * sin(6.283185307179586 * u2));
    }
    l[100] = l[200] = l[90000] = 13.0f; /* ties at the top */
    for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++) {
        struct sample_params p = params(0.7f, chains[c].top_k, chains[c].top_p, chains[c].min_p);
        compare_with_reference(l, N, &p, "gaussian");
    }
    /* Sharper (a peaked distribution, most mass on a few tokens). */
    for (int i = 0; i < N; i++)
        l[i] *= 4.0f;
    for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++) {
        struct sample_params p = params(0.7f, chains[c].top_k, chains[c].top_p, chains[c].min_p);
        compare_with_reference(l, N, &p, "peaked");
    }
    free(l);
}

/* The real (nearly flat: std 0.16) logits of the reference models: the nucleus is most of the vocabulary. */
static void test_reference_logits_match_reference_chain(void **state)
{
    (void)state;
    const char *files[] = {"llama-dev.logits.p2.f32", "qwen2-dev.logits.p2.f32", "qwen3-dev.logits.long_last4.f32"};
    const int32_t vocab[] = {2304, 2112, 2112};
    for (int f = 0; f < 3; f++) {
        char rel[256];
        snprintf(rel, sizeof rel, "reference/tiny-models/%s", files[f]);
        const char *path = tu_shared(rel);
        TU_REQUIRE(path);
        size_t size = 0;
        float *rows = (float *)tu_read(path, &size);
        size_t n_rows = size / sizeof(float) / (size_t)vocab[f];
        assert_true(n_rows >= 4);
        for (size_t r = 0; r < n_rows; r += n_rows / 4) {
            for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++) {
                struct sample_params p = params(0.8f, chains[c].top_k, chains[c].top_p, chains[c].min_p);
                compare_with_reference(rows + r * (size_t)vocab[f], vocab[f], &p, files[f]);
            }
        }
        free(rows);
    }
}

/* ---- seeds ------------------------------------------------------------------------------------ */

static void run_sequence(struct sampler *s, const float *l, int32_t n, int32_t *out, int steps)
{
    float *buf = malloc((size_t)n * sizeof *buf);
    for (int i = 0; i < steps; i++) {
        out[i] = sample_copy(s, l, buf, n);
        sampler_accept(s, out[i]);
    }
    free(buf);
}

static void test_seeds(void **state)
{
    (void)state;
    enum { N = 1000, STEPS = 200 };
    float l[N];
    for (int i = 0; i < N; i++)
        l[i] = (float)((i * 37) % 101) * 0.01f;
    struct sample_params p = params(1.0f, 0, 0.95f, 0.0f);
    p.repeat_penalty = 1.1f;
    p.presence_penalty = 0.1f;
    p.seed = 42;
    int32_t a[STEPS], b[STEPS], c[STEPS];
    struct sampler *s1 = make(&p, N, 0), *s2 = make(&p, N, 0);
    run_sequence(s1, l, N, a, STEPS);
    run_sequence(s2, l, N, b, STEPS);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(sampler_seed(s1), 42);
    /* Reset replays the same stream with the same (now empty) history. */
    sampler_reset(s1);
    run_sequence(s1, l, N, c, STEPS);
    assert_memory_equal(a, c, sizeof a);
    sampler_free(s2);

    /* A different seed gives a different stream (most positions differ over ~900 candidates). */
    p.seed = 43;
    s2 = make(&p, N, 0);
    run_sequence(s2, l, N, b, STEPS);
    int differ = 0;
    for (int i = 0; i < STEPS; i++)
        differ += a[i] != b[i];
    assert_true(differ > STEPS / 2);
    sampler_free(s2);

    /* Seed -1 draws one; two such samplers differ, and the drawn seed reproduces the run. */
    p.seed = -1;
    struct sampler *r1 = make(&p, N, 0), *r2 = make(&p, N, 0);
    assert_true(sampler_seed(r1) != sampler_seed(r2));
    run_sequence(r1, l, N, a, STEPS);
    run_sequence(r2, l, N, b, STEPS);
    differ = 0;
    for (int i = 0; i < STEPS; i++)
        differ += a[i] != b[i];
    assert_true(differ > STEPS / 2);
    p.seed = sampler_seed(r1);
    struct sampler *again = make(&p, N, 0);
    run_sequence(again, l, N, c, STEPS);
    assert_memory_equal(a, c, sizeof a);
    sampler_free(r1);
    sampler_free(r2);
    sampler_free(again);
    sampler_free(s1);
}

/* The generator itself: fixed outputs for a fixed seed (so streams are the same on every platform)
 * and a uniform mean. */
static void test_rng(void **state)
{
    (void)state;
    struct rng a, b;
    rng_seed(&a, 0);
    rng_seed(&b, 0);
    for (int i = 0; i < 100; i++)
        assert_true(rng_next(&a) == rng_next(&b));
    rng_seed(&b, 1);
    assert_true(rng_next(&a) != rng_next(&b));
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    ASSERT_NEAR(sum / 100000, 0.5, 0.005);
}

/* ---- stop strings ----------------------------------------------------------------------------- */

struct stream {
    struct stop_matcher *m;
    char text[4096];
    size_t len;
    bool stopped;
};

static void stream_open(struct stream *st, const char *const *stops, size_t n)
{
    memset(st, 0, sizeof *st);
    struct err e = {0};
    if (stop_matcher_new(stops, n, &st->m, &e) != 0)
        fail_msg("stop_matcher_new: %s", e.msg);
}

/* Pushes chunk and checks what came out now. */
static void push(struct stream *st, const char *chunk, const char *expect_now, bool expect_stopped)
{
    char out[512];
    size_t n = strlen(chunk);
    size_t k = stop_matcher_push(st->m, chunk, n, out, &st->stopped);
    if (k != strlen(expect_now) || memcmp(out, expect_now, k) != 0)
        fail_msg("push \"%s\": emitted \"%.*s\", expected \"%s\"", chunk, (int)k, out, expect_now);
    assert_int_equal(st->stopped, expect_stopped);
    memcpy(st->text + st->len, out, k);
    st->len += k;
}

static void test_stop_basic(void **state)
{
    (void)state;
    struct stream st;
    /* No stop strings: everything passes straight through. */
    stream_open(&st, NULL, 0);
    push(&st, "hello ", "hello ", false);
    push(&st, "world", "world", false);
    char out[64];
    assert_int_equal(stop_matcher_flush(st.m, out), 0);
    stop_matcher_free(st.m);

    /* A stop spread over three pushes; the prefix is held, then swallowed. */
    const char *hash[] = {"###"};
    stream_open(&st, hash, 1);
    push(&st, "Hello #", "Hello ", false);
    push(&st, "#", "", false);
    push(&st, "# world", "", true);
    push(&st, "more", "", true); /* nothing after a stop */
    assert_int_equal(stop_matcher_flush(st.m, out), 0);
    /* Reset: ready for another generation. */
    stop_matcher_reset(st.m);
    /* A held prefix that does not complete is released. */
    push(&st, "a #", "a ", false);
    push(&st, "#x", "##x", false);
    push(&st, "##", "", false);
    assert_int_equal(stop_matcher_flush(st.m, out), 2);
    assert_memory_equal(out, "##", 2);
    stop_matcher_free(st.m);

    /* A stop at the very start emits nothing. */
    const char *s2[] = {"STOP"};
    stream_open(&st, s2, 1);
    push(&st, "STOP here", "", true);
    stop_matcher_free(st.m);
    stream_open(&st, s2, 1);
    push(&st, "ST", "", false);
    push(&st, "OP", "", true);
    stop_matcher_free(st.m);

    /* Flush at the end returns what was held. */
    const char *eos[] = {"</s>"};
    stream_open(&st, eos, 1);
    push(&st, "end</", "end", false);
    assert_int_equal(stop_matcher_flush(st.m, out), 2);
    assert_memory_equal(out, "</", 2);
    assert_int_equal(stop_matcher_flush(st.m, out), 0);
    stop_matcher_free(st.m);

    /* The output buffer may be the input buffer. */
    stream_open(&st, eos, 1);
    char io[64] = "abc<";
    bool stopped = false;
    size_t k = stop_matcher_push(st.m, io, 4, io, &stopped);
    assert_int_equal(k, 3);
    memcpy(io, "/x", 2);
    k = stop_matcher_push(st.m, io, 2, io, &stopped);
    assert_int_equal(k, 3);
    assert_memory_equal(io, "</x", 3);
    stop_matcher_free(st.m);

    /* Empty stop strings are refused, naming the option and which one. */
    const char *bad[] = {"ok", ""};
    struct stop_matcher *m = NULL;
    struct err e = {0};
    assert_int_equal(stop_matcher_new(bad, 2, &m, &e), ERR_INVALID);
    assert_null(m);
    assert_non_null(strstr(e.msg, "\"stop\""));
    assert_non_null(strstr(e.msg, "2"));
}

static void test_stop_overlapping(void **state)
{
    (void)state;
    struct stream st;
    /* "ab" completes first, although "abc" could still follow. */
    const char *a[] = {"abc", "ab"};
    stream_open(&st, a, 2);
    push(&st, "xa", "x", false);
    push(&st, "bc", "", true);
    stop_matcher_free(st.m);

    /* The longer stop is held while only it can still match; then the shorter one fires. */
    const char *b[] = {"ab", "xyz"};
    stream_open(&st, b, 2);
    push(&st, "1x", "1", false);
    push(&st, "y", "", false);
    push(&st, "ab", "xy", true);
    stop_matcher_free(st.m);

    /* Self-overlap: "aab" inside "aaab", fed one byte at a time. */
    const char *c[] = {"aab"};
    stream_open(&st, c, 1);
    push(&st, "a", "", false);
    push(&st, "a", "", false);
    push(&st, "a", "a", false);
    push(&st, "b", "", true);
    stop_matcher_free(st.m);

    /* Two stops in one push: the earlier one decides where output ends. */
    const char *d[] = {"END", "\n\n"};
    stream_open(&st, d, 2);
    push(&st, "one\n\ntwo END", "one", true);
    stop_matcher_free(st.m);
}

static void test_stop_utf8(void **state)
{
    (void)state;
    struct stream st;
    /* "é!" = C3 A9 21: a split character that starts the stop is held until it is decided. */
    const char *e1[] = {"\xC3\xA9!"};
    stream_open(&st, e1, 1);
    push(&st, "caf\xC3", "caf", false);
    push(&st, "\xA9", "", false);
    push(&st, "!", "", true);
    stop_matcher_free(st.m);
    /* "è" (C3 A8) shares the first byte: it comes out whole. */
    stream_open(&st, e1, 1);
    push(&st, "caf\xC3", "caf", false);
    push(&st, "\xA8", "\xC3\xA8", false);
    push(&st, "\xC3\xA9?", "\xC3\xA9?", false);
    stop_matcher_free(st.m);

    /* A CJK stop string fed byte by byte inside CJK text. */
    const char *zh[] = {"终止"};
    const char *text = "开始终止后";
    stream_open(&st, zh, 1);
    for (size_t i = 0; text[i] && !st.stopped; i++) {
        char one[2] = {text[i], 0};
        char out[16];
        size_t k = stop_matcher_push(st.m, one, 1, out, &st.stopped);
        memcpy(st.text + st.len, out, k);
        st.len += k;
    }
    assert_true(st.stopped);
    assert_int_equal(st.len, strlen("开始"));
    assert_memory_equal(st.text, "开始", st.len);
    stop_matcher_free(st.m);

    /* Emoji stop (🛑 F0 9F 9B 91); other emoji share its first two bytes. A rocket (F0 9F 9A 80) whose
     * first bytes could begin the stop is held, then released whole. */
    const char *emoji[] = {"\xF0\x9F\x9B\x91"};
    stream_open(&st, emoji, 1);
    push(&st, "go \xF0\x9F\x9A\x80 ", "go \xF0\x9F\x9A\x80 ", false);
    push(&st, "then \xF0\x9F", "then ", false);
    push(&st, "\x9A\x80", "\xF0\x9F\x9A\x80", false);
    push(&st, "\xF0\x9F\x9B", "", false);
    push(&st, "\x91 gone", "", true);
    assert_int_equal(st.len, strlen("go \xF0\x9F\x9A\x80 then \xF0\x9F\x9A\x80"));
    stop_matcher_free(st.m);
}

/* Random text over a small alphabet, random chunking: the streamed output must equal the text cut at
 * the first stop occurrence (stops of equal length, so "first" does not depend on chunking). */
static void test_stop_random_chunks(void **state)
{
    (void)state;
    const char *stops[] = {"aba", "bbc", "cca"};
    struct rng r;
    rng_seed(&r, 99);
    int stopped_runs = 0;
    for (int iter = 0; iter < 2000; iter++) {
        char text[64];
        size_t n = 1 + rng_next(&r) % 40;
        for (size_t i = 0; i < n; i++)
            text[i] = (char)('a' + rng_next(&r) % 3);
        text[n] = 0;
        size_t first = n;
        for (int k = 0; k < 3; k++) {
            const char *hit = strstr(text, stops[k]);
            if (hit && (size_t)(hit - text) < first)
                first = (size_t)(hit - text);
        }
        struct stop_matcher *m;
        struct err e;
        assert_int_equal(stop_matcher_new(stops, 3, &m, &e), 0);
        char got[128];
        size_t got_len = 0, pos = 0;
        bool stopped = false;
        while (pos < n && !stopped) {
            size_t chunk = rng_next(&r) % 6;
            if (chunk > n - pos)
                chunk = n - pos;
            got_len += stop_matcher_push(m, text + pos, chunk, got + got_len, &stopped);
            pos += chunk;
        }
        if (!stopped)
            got_len += stop_matcher_flush(m, got + got_len);
        assert_int_equal(stopped, first < n);
        if (got_len != first || memcmp(got, text, first) != 0)
            fail_msg("text \"%s\": got \"%.*s\", expected the first %zu bytes", text, (int)got_len,
                     got, first);
        stopped_runs += stopped;
        stop_matcher_free(m);
    }
    assert_true(stopped_runs > 100 && stopped_runs < 1900); /* both outcomes were exercised */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_validation_names_option),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_plain_greedy),
        cmocka_unit_test(test_greedy_matches_reference_models),
        cmocka_unit_test(test_penalty_amounts),
        cmocka_unit_test(test_penalties_steer_sampling),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_large_vocab_matches_reference),
        cmocka_unit_test(test_reference_logits_match_reference_chain),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_stop_basic),
        cmocka_unit_test(test_stop_overlapping),
        cmocka_unit_test(test_stop_utf8),
        cmocka_unit_test(test_stop_random_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
