/* test_model.c — the forward pass against Hugging Face transformers: the tiny llama (llama3 rope
 * scaling), qwen2 (QKV bias, tied output) and qwen3 (q/k norm) models of ../shared/reference/tiny-models
 * must reproduce the reference logits at every position of every prompt (batched and token by token),
 * the last positions of a 1024-token prompt, and the greedy continuations. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tu_model.h"
#include "model/model.h"

static const struct tu_model_backend cpu = {.label = "", .make = tu_make_cpu};

static void test_variant(void **state) { tu_model_check_variant(*state, &cpu); }

static void test_bad_files(void **state)
{
    (void)state;
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    assert_int_equal(backend_cpu_new(1, &be, &e), 0);
    assert_int_not_equal(model_load("/nonexistent/model.gguf", be, &m, &e), 0);
    assert_null(m);
    assert_non_null(strstr(e.msg, "/nonexistent/model.gguf"));
    /* A vocabulary-only GGUF has no weights: the error names the missing tensor. */
    const char *vocab = tu_testdata("vocab/ggml-vocab-gpt-2.gguf");
    if (vocab) {
        int rc = model_load(vocab, be, &m, &e);
        assert_int_not_equal(rc, 0);
        print_message("vocab-only file: %s\n", e.msg);
    }
    be->ops->free(be);
}

int main(void)
{
    enum { NV = TU_MODEL_N_VARIANTS };
    struct CMUnitTest tests[NV + 1];
    static char names[NV][64];
    size_t n = 0;
    for (size_t i = 0; i < NV; i++, n++) {
        const struct tu_model_variant *v = &tu_model_variants[i];
        snprintf(names[i], sizeof names[i], "forward_%s_%s", v->arch, v->file_suffix);
        tests[n] = (struct CMUnitTest){names[i], test_variant, NULL, NULL, (void *)v};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_files);
    return _cmocka_run_group_tests("model", tests, n, NULL, NULL);
}
