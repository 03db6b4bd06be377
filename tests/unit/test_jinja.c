/* test_jinja.c — the Jinja renderer: byte-identical output against @huggingface/jinja over every
 * chat template in ../shared and the conversations in tests/template/ (rendered by
 * tests/template/render-reference.mjs), then the language feature by feature, errors with line
 * numbers, and the limits. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "template/jinja.h"

/* ------------------------------------------------------------------ helpers */

/* Renders src over the JSON context text; returns the output (caller frees) or NULL with e set. */
static char *render_ex(const char *src, const char *ctx_json, const struct jinja_limits *lim, struct err *e)
{
    struct jinja_template *t = NULL;
    err_clear(e);
    if (jinja_compile(src, strlen(src), &t, e) != 0)
        return NULL;
    json_error_t je;
    json_t *ctx = json_loads(ctx_json ? ctx_json : "{}", 0, &je);
    if (!ctx)
        fail_msg("bad test context JSON: %s", je.text);
    char *out = NULL;
    int rc = jinja_render(t, ctx, lim, &out, NULL, e);
    json_decref(ctx);
    jinja_free(t);
    return rc == 0 ? out : NULL;
}

static void expect_render(const char *src, const char *ctx, const char *want)
{
    struct err e = {0};
    char *got = render_ex(src, ctx, NULL, &e);
    if (!got)
        fail_msg("template %s\nfailed: %s", src, e.msg);
    if (strcmp(got, want) != 0)
        fail_msg("template %s\n  want [%s]\n  got  [%s]", src, want, got);
    free(got);
}

/* Expects the render (or compile) to fail with a message containing `part`. */
static void expect_error(const char *src, const char *ctx, const char *part)
{
    struct err e = {0};
    char *got = render_ex(src, ctx, NULL, &e);
    if (got)
        fail_msg("template %s\n  should fail (%s) but rendered [%s]", src, part, got);
    if (!strstr(e.msg, part))
        fail_msg("template %s\n  error [%s] lacks [%s]", src, e.msg, part);
}

/* ------------------------------------------------------------------ conformance */

/* The reference renders: from HEARTH_TEMPLATE_REFERENCE (made by the ctest fixture), or made here
 * with node when the repository's node_modules has the renderer. NULL when neither is possible. */
static json_t *load_reference(void)
{
    const char *path = getenv("HEARTH_TEMPLATE_REFERENCE");
    static char made[4096];
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        const char *src = getenv("HEARTH_SOURCE");
        const char *shared = getenv("HEARTH_SHARED");
        char probe[4096];
        if (!src || !shared)
            return NULL;
        snprintf(probe, sizeof probe, "%s/node_modules/@huggingface/jinja/package.json", src);
        if (stat(probe, &st) != 0) {
            print_message("no %s: run `npm ci` in the repository to render the reference\n", probe);
            return NULL;
        }
        snprintf(made, sizeof made, "%s/template-reference.json", tu_tmpdir());
        char cmd[12288];
        snprintf(cmd, sizeof cmd, "node '%s/tests/template/render-reference.mjs' --shared '%s' --out '%s'", src, shared,
                 made);
        if (system(cmd) != 0)
            fail_msg("could not render the reference: %s", cmd);
        path = made;
    }
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    if (!ref)
        fail_msg("%s: %s (line %d)", path, je.text, je.line);
    return ref;
}

static void show_diff(const char *want, const char *got)
{
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    size_t from = i > 60 ? i - 60 : 0;
    print_message("    first difference at byte %zu\n    want ...%.120s\n    got  ...%.120s\n", i, want + from, got + from);
}

static void test_reference_conformance(void **state)
{
    (void)state;
    TU_REQUIRE(tu_shared("tokenizers/chat_templates"));
    json_t *ref = load_reference();
    TU_REQUIRE(ref);
    setenv("TZ", "UTC", 1); /* the reference renders with its clock pinned in UTC */
    tzset();
    json_t *templates = json_object_get(ref, "templates");
    json_t *contexts = json_object_get(ref, "contexts");
    json_t *cases = json_object_get(ref, "cases");
    assert_non_null(templates);
    assert_non_null(contexts);
    assert_true(json_array_size(cases) >= 400); /* 16 templates x 26 conversations x variants */
    struct jinja_limits lim = {.now = (int64_t)json_number_value(json_object_get(ref, "now"))};

    size_t n = json_array_size(cases), bad = 0, raised = 0;
    const char *last_name = NULL;
    struct jinja_template *t = NULL;
    struct err ce = {0};
    int crc = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        const char *name = json_string_value(json_object_get(c, "template"));
        const char *ctx_id = json_string_value(json_object_get(c, "context"));
        json_t *want_out = json_object_get(c, "output");
        json_t *want_err = json_object_get(c, "error");
        if (!last_name || strcmp(last_name, name) != 0) {
            jinja_free(t);
            t = NULL;
            json_t *srcj = json_object_get(templates, name);
            err_clear(&ce);
            crc = jinja_compile(json_string_value(srcj), json_string_length(srcj), &t, &ce);
            last_name = name;
        }
        char *got = NULL;
        size_t got_len = 0;
        struct err e = {0};
        int rc = crc;
        if (crc == 0)
            rc = jinja_render(t, json_object_get(contexts, ctx_id), &lim, &got, &got_len, &e);
        else
            e = ce;
        if (json_is_string(want_err)) {
            raised++;
            if (rc == 0) {
                bad++;
                print_message("MISMATCH %s over %s: the reference raises \"%s\" but hearth rendered\n", name, ctx_id,
                              json_string_value(want_err));
            }
        } else if (rc != 0) {
            bad++;
            print_message("MISMATCH %s over %s: hearth failed: %s\n", name, ctx_id, e.msg);
        } else if (got_len != json_string_length(want_out) || memcmp(got, json_string_value(want_out), got_len) != 0) {
            bad++;
            print_message("MISMATCH %s over %s: output differs\n", name, ctx_id);
            show_diff(json_string_value(want_out), got);
        }
        free(got);
    }
    jinja_free(t);
    print_message("conformance: %zu renders (%zu raising), %zu mismatches\n", n, raised, bad);
    json_decref(ref);
    assert_int_equal(bad, 0);
}

static void test_basics(void **state)
{
    (void)state;
    expect_render("Hello {{ name }}!", "{\"name\": \"World\"}", "Hello World!");
    expect_error("{{ raise_exception('boom') }}", NULL, "boom");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_reference_conformance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
