/* test_engine.c — generate(): greedy completion of stories260K against its published text, token
 * limits, stop strings, cancellation from the stream callback, the reported counts, and errors for
 * prompts that cannot run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

struct collect {
    char text[8192];
    size_t len;
    int chunks;
    int cancel_after;
};

static int collect_emit(void *user, const char *text, size_t len)
{
    struct collect *c = user;
    assert_true(c->len + len < sizeof c->text);
    memcpy(c->text + c->len, text, len);
    c->len += len;
    c->text[c->len] = '\0';
    c->chunks++;
    return c->cancel_after && c->chunks >= c->cancel_after;
}

struct fixture {
    struct backend *be;
    struct model *m;
    struct model_ctx *ctx;
};

static int setup(void **state)
{
    const char *path = tu_shared("models/stories260K.gguf");
    if (!path)
        return 0;
    struct fixture *f = calloc(1, sizeof *f);
    struct err e = {0};
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    if (backend_cpu_new(2, &f->be, &e) || model_load(copy, f->be, &f->m, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    struct ctx_params cp = {.n_ctx = 512};
    if (model_ctx_new(f->m, &cp, &f->ctx, &e))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f) {
        model_ctx_free(f->ctx);
        model_free(f->m);
        f->be->ops->free(f->be);
        free(f);
    }
    return 0;
}

static struct gen_request greedy_request(const int32_t *prompt, size_t n, int max_tokens)
{
    struct gen_request r = {.prompt = prompt, .n_prompt = n, .max_tokens = max_tokens};
    sample_params_default(&r.sampling);
    r.sampling.temperature = 0;
    r.sampling.repeat_penalty = 1.0f;
    return r;
}

static void test_greedy_matches_reference(void **state)
{
    struct fixture *f = *state;
    TU_REQUIRE(f);
    const char *ref_path = tu_shared("models/reference/stories260K.greedy-t0.txt");
    TU_REQUIRE(ref_path);
    size_t want_len;
    char *want = tu_read(ref_path, &want_len);
    /* The published text ends with the newline its printer added after the 256th token. */
    if (want_len && want[want_len - 1] == '\n')
        want[--want_len] = '\0';
    int32_t bos = 1;
    struct gen_request r = greedy_request(&bos, 1, 256);
    struct collect c = {0};
    struct gen_stats st;
    struct err e = {0};
    assert_int_equal(generate(f->ctx, &r, collect_emit, &c, &st, &e), 0);
    assert_string_equal(c.text, want);
    assert_int_equal(st.prompt_tokens, 1);
    assert_int_equal(st.eval_tokens, 256);
    assert_string_equal(st.done_reason, "length");
    assert_true(st.prompt_ns > 0 && st.eval_ns > 0 && st.total_ns >= st.eval_ns);
    assert_true(st.first_token_ns > 0 && st.first_token_ns <= st.total_ns);
    free(want);
}

static void test_stop_and_cancel(void **state)
{
    struct fixture *f = *state;
    TU_REQUIRE(f);
    int32_t bos = 1;
    struct gen_request r = greedy_request(&bos, 1, 256);
    const char *stops[] = {"girl named"};
    r.stops = stops;
    r.n_stops = 1;
    struct collect c = {0};
    struct gen_stats st;
    struct err e = {0};
    assert_int_equal(generate(f->ctx, &r, collect_emit, &c, &st, &e), 0);
    assert_string_equal(c.text, "Once upon a time, there was a little ");
    assert_string_equal(st.done_reason, "stop");

    struct gen_request r2 = greedy_request(&bos, 1, 256);
    struct collect c2 = {.cancel_after = 3};
    assert_int_equal(generate(f->ctx, &r2, collect_emit, &c2, &st, &e), 0);
    assert_int_equal(c2.chunks, 3);
    assert_string_equal(st.done_reason, "cancel");

    /* A stop string longer than any buffer of a streamed piece: never matches, nothing overflows. */
    char *long_stop = malloc(9001);
    memset(long_stop, 'x', 9000);
    long_stop[9000] = '\0';
    const char *long_stops[] = {long_stop};
    struct gen_request r4 = greedy_request(&bos, 1, 40);
    r4.stops = long_stops;
    r4.n_stops = 1;
    struct collect c4 = {0};
    assert_int_equal(generate(f->ctx, &r4, collect_emit, &c4, &st, &e), 0);
    assert_int_equal(st.eval_tokens, 40);
    assert_string_equal(st.done_reason, "length");
    assert_true(strncmp(c4.text, "Once upon a time, there was a little girl named Lily.", 52) == 0);
    free(long_stop);

    struct gen_request r3 = greedy_request(&bos, 1, 5);
    struct collect c3 = {0};
    assert_int_equal(generate(f->ctx, &r3, collect_emit, &c3, &st, &e), 0);
    assert_int_equal(st.eval_tokens, 5);
    assert_string_equal(c3.text, "Once upon a time,");
}

static void test_seeded_sampling(void **state)
{
    struct fixture *f = *state;
    TU_REQUIRE(f);
    int32_t bos = 1;
    struct gen_request r = {.prompt = &bos, .n_prompt = 1, .max_tokens = 60};
    sample_params_default(&r.sampling);
    r.sampling.seed = 1234;
    r.sampling.temperature = 1.0f;
    struct collect a = {0}, b = {0}, c = {0};
    struct gen_stats st;
    struct err e = {0};
    assert_int_equal(generate(f->ctx, &r, collect_emit, &a, &st, &e), 0);
    assert_int_equal(generate(f->ctx, &r, collect_emit, &b, &st, &e), 0);
    r.sampling.seed = 4321;
    assert_int_equal(generate(f->ctx, &r, collect_emit, &c, &st, &e), 0);
    assert_string_equal(a.text, b.text);
    assert_string_not_equal(a.text, c.text);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    TU_REQUIRE(f);
    struct collect c = {0};
    struct gen_stats st;
    struct err e = {0};
    struct gen_request r = greedy_request(NULL, 0, 5);
    assert_int_not_equal(generate(f->ctx, &r, collect_emit, &c, &st, &e), 0);
    assert_non_null(strstr(e.msg, "empty"));
    int32_t *many = calloc(600, sizeof *many);
    for (int i = 0; i < 600; i++)
        many[i] = 1 + i % 500;
    struct gen_request r2 = greedy_request(many, 600, 5);
    assert_int_equal(generate(f->ctx, &r2, collect_emit, &c, &st, &e), ERR_RANGE);
    assert_non_null(strstr(e.msg, "context"));
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_matches_reference),
        cmocka_unit_test(test_stop_and_cancel),
        cmocka_unit_test(test_seeded_sampling),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("engine", tests, setup, teardown);
}
