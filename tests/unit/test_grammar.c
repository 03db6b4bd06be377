/* test_grammar.c — JSON / JSON-Schema constrained sampling: the byte automaton on hand-written
 * accept/reject cases, the token mask against a brute-force check of every token, mask cost on the
 * Llama 3 vocabulary, and 100 constrained generations each on ../shared/models/stories260K.gguf (SPM)
 * and ../shared/reference/tiny-models/qwen3-dev-f32.gguf (byte-level BPE) whose output must parse
 * and validate (checked with jansson and a validator of the same schema subset). */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/clock.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "sample/grammar.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"

static struct tokenizer *g_tok;      /* stories260K: every byte has a <0xHH> token */
static struct grammar_vocab *g_voc;
static int32_t g_byte_tok[256];

static int setup(void **state)
{
    (void)state;
    const char *path = tu_shared("models/stories260K.gguf");
    if (!path)
        return 0;
    struct err e = {0};
    struct gguf_file *f = NULL;
    if (gguf_open(path, &f, &e) != 0 || tokenizer_from_gguf(f, &g_tok, &e) != 0) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    gguf_close(f);
    if (grammar_vocab_new(g_tok, &g_voc, &e) != 0) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        g_byte_tok[b] = tokenizer_find(g_tok, name);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    grammar_vocab_free(g_voc);
    tokenizer_free(g_tok);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("bad JSON in test: %s: %s", text, je.text);
    return j;
}

static struct grammar *make(const char *schema_text)
{
    json_t *sch = schema_text ? parse(schema_text) : NULL;
    struct grammar *g = NULL;
    struct err e = {0};
    if (grammar_new_json(g_voc, sch, &g, &e) != 0)
        fail_msg("grammar_new_json(%s): %s", schema_text ? schema_text : "NULL", e.msg);
    json_decref(sch);
    return g;
}

/* Feeds text byte by byte (as byte tokens); returns how many bytes were accepted. */
static size_t feed_text(struct grammar *g, const char *text)
{
    struct err e = {0};
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i++)
        if (grammar_accept(g, g_byte_tok[(uint8_t)text[i]], &e) != 0)
            return i;
    return n;
}

/* Whole text accepted and complete. */
static bool accepts(const char *schema, const char *text)
{
    struct grammar *g = make(schema);
    bool ok = feed_text(g, text) == strlen(text) && grammar_done(g);
    grammar_free(g);
    return ok;
}

#define ACCEPT(s, t) do { if (!accepts(s, t)) fail_msg("schema %s should accept %s", s ? s : "(none)", t); } while (0)
#define REJECT(s, t) do { if (accepts(s, t)) fail_msg("schema %s should reject %s", s ? s : "(none)", t); } while (0)

static void test_any_json(void **state)
{
    (void)state;
    TU_REQUIRE(g_voc);
    ACCEPT(NULL, "{}");
    ACCEPT(NULL, "{\"a\": [1, -2.5e3, true, false, null, \"x\\n\\u00e9\"], \"b\": {}}");
    ACCEPT(NULL, "[ ]");
    ACCEPT(NULL, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    ACCEPT(NULL, "0");
    ACCEPT(NULL, "-0.5");
    ACCEPT(NULL, "12\n");
    REJECT(NULL, "{\"a\" 1}");
    REJECT(NULL, "{\"a\": 1,}");
    REJECT(NULL, "[1 2]");
    REJECT(NULL, "01");
    REJECT(NULL, "1.");
    REJECT(NULL, "-");
    REJECT(NULL, "tru");
    REJECT(NULL, "\"a\nb\"");          /* raw control character */
    REJECT(NULL, "\"\\x\"");           /* unknown escape */
    REJECT(NULL, "\"\\ud800\"");       /* lone surrogate */
    REJECT(NULL, "\"\\u0000\"");       /* NUL */
    REJECT(NULL, "\"\xc0\xaf\"");      /* overlong */
    REJECT(NULL, "\"\xed\xa0\x80\"");  /* UTF-8 surrogate */
    REJECT(NULL, "\"\xe2\x82\"");      /* truncated character */
    REJECT(NULL, "{} {}");
    REJECT(NULL, "1234567890123456"); /* 16 integer digits: beyond what JSON readers keep exact */
    REJECT(NULL, "1e100");
    ACCEPT(NULL, "{\n  \"a\": [\n\t\t1\n  ]\n}");
    REJECT(NULL, "{\"a\":  1}"); /* one space, or a newline and indentation */
    REJECT(NULL, "{\n\n\"a\": 1}");
    REJECT(NULL, "{\"a\":\n                     1}");
}

static void test_schema_objects(void **state)
{
    (void)state;
    TU_REQUIRE(g_voc);
    const char *s = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                    "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
                    "\"required\":[\"name\",\"age\"]}";
    ACCEPT(s, "{\"name\":\"Al\",\"age\":3}");
    ACCEPT(s, "{ \"name\" : \"Al\" , \"age\" : -3 , \"tags\" : [\"x\"] }");
    REJECT(s, "{\"age\":3,\"name\":\"Al\"}"); /* schema order */
    REJECT(s, "{\"name\":\"Al\"}");           /* age required */
    REJECT(s, "{\"name\":\"Al\",\"age\":3.5}");
    REJECT(s, "{\"name\":\"Al\",\"age\":3,\"other\":1}"); /* no additional properties */
    REJECT(s, "{\"name\":1,\"age\":3}");
    const char *opt = "{\"properties\":{\"a\":{\"type\":\"null\"},\"b\":{\"type\":\"boolean\"},"
                      "\"c\":{\"const\":\"k\"}},\"additionalProperties\":{\"type\":\"number\"}}";
    ACCEPT(opt, "{}");
    ACCEPT(opt, "{\"b\":true}");
    ACCEPT(opt, "{\"a\":null,\"c\":\"k\",\"zz\":1.5,\"q\":2}");
    REJECT(opt, "{\"c\":\"j\"}");
    REJECT(opt, "{\"b\":true,\"a\":null}");
    REJECT(opt, "{\"zz\":\"s\"}");
    const char *free_obj = "{\"type\":\"object\"}";
    ACCEPT(free_obj, "{\"x\":[{\"y\":null}]}");
    REJECT(free_obj, "[]");
}

static void test_schema_values(void **state)
{
    (void)state;
    TU_REQUIRE(g_voc);
    const char *en = "{\"enum\":[\"red\",\"green\",42,null,{\"k\":[1]}]}";
    ACCEPT(en, "\"red\"");
    ACCEPT(en, "\"green\"");
    ACCEPT(en, "42");
    ACCEPT(en, "null");
    ACCEPT(en, "{\"k\":[1]}");
    REJECT(en, "\"blue\"");
    REJECT(en, "\"re\"");
    REJECT(en, "4");
    const char *arr = "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}";
    ACCEPT(arr, "[1,2]");
    ACCEPT(arr, "[1, 2, 3]");
    REJECT(arr, "[1]");
    REJECT(arr, "[1,2,3,4]");
    REJECT(arr, "[1,\"2\"]");
    const char *str = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}";
    ACCEPT(str, "\"ab\"");
    ACCEPT(str, "\"\xc3\xa9\xc3\xa9\xc3\xa9\""); /* characters, not bytes */
    ACCEPT(str, "\"\\n\\u0041\"");
    REJECT(str, "\"a\"");
    REJECT(str, "\"abcd\"");
    const char *any = "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1},{\"type\":\"null\"}]}";
    ACCEPT(any, "7");
    ACCEPT(any, "\"x\"");
    ACCEPT(any, "null");
    REJECT(any, "\"xy\"");
    REJECT(any, "7.5");
    const char *types = "{\"type\":[\"number\",\"boolean\"]}";
    ACCEPT(types, "7.5");
    ACCEPT(types, "false");
    REJECT(types, "\"7\"");
    const char *ref = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                      "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
                      "\"$ref\":\"#/$defs/node\"}";
    ACCEPT(ref, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4,\"kids\":[]}]}]}");
    REJECT(ref, "{\"v\":1,\"kids\":[{\"w\":2}]}");
}

static void test_schema_errors(void **state)
{
    (void)state;
    TU_REQUIRE(g_voc);
    const char *bad[] = {
        "{\"$ref\":\"#/$defs/missing\"}",
        "{\"type\":\"integr\"}",
        "{\"enum\":[]}",
        "{\"properties\":{\"a\":false},\"required\":[\"a\"]}",
        "{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}",
        "{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":2}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *sch = parse(bad[i]);
        struct grammar *g = NULL;
        struct err e = {0};
        int rc = grammar_new_json(g_voc, sch, &g, &e);
        if (rc != ERR_INVALID)
            fail_msg("schema %s: expected ERR_INVALID, got %d", bad[i], rc);
        assert_true(strstr(e.msg, "JSON schema") != NULL);
        json_decref(sch);
    }
}

/* The mask after prefix must allow exactly the tokens that grammar_accept takes there. */
static void check_mask(const char *schema, const char *prefix)
{
    int32_t n = tokenizer_n_vocab(g_tok);
    float *logits = calloc((size_t)n, sizeof *logits);
    struct grammar *g = make(schema), *probe = make(schema);
    struct err e = {0};
    assert_int_equal(feed_text(g, prefix), strlen(prefix));
    int32_t allowed = grammar_apply(g, logits), count = 0;
    for (int32_t t = 0; t < n; t++) {
        grammar_reset(probe);
        assert_int_equal(feed_text(probe, prefix), strlen(prefix));
        bool ok = grammar_accept(probe, t, &e) == 0;
        bool masked = isinf(logits[t]);
        if (ok == masked)
            fail_msg("after \"%s\": token %d (%s) accept=%d but mask=%s", prefix, (int)t,
                     tokenizer_token_str(g_tok, t), ok, masked ? "-inf" : "allowed");
        count += ok;
    }
    assert_int_equal(count, allowed);
    grammar_free(g);
    grammar_free(probe);
    free(logits);
}

static void test_mask_matches_accept(void **state)
{
    (void)state;
    TU_REQUIRE(g_voc);
    const char *s = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":9},"
                    "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",\"ab\"]}}},"
                    "\"required\":[\"name\"]}";
    const char *prefixes[] = {"", "{", "{\"", "{\"name\": \"Tim", "{\"name\": \"Tim \\u00", "{\"name\": \"Tim \xc3",
                              "{\"name\": \"Tim the b", "{\"name\": \"Tim\", \"age\": 1",
                              "{\"name\": \"Tim\", \"tags\": [\"a", "{\"name\": \"Tim\"}"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        check_mask(s, prefixes[i]);
    const char *any[] = {"", "[1, {\"k\": -0.5e", "[1, {\"k\": \"x y", "[tr", "12"};
    for (size_t i = 0; i < sizeof any / sizeof *any; i++)
        check_mask(NULL, any[i]);
}

static void test_trigger(void **state)
{
    (void)state;
    TU_REQUIRE(g_voc);
    struct grammar *g = make("{\"type\":\"integer\"}");
    struct err e = {0};
    assert_int_equal(grammar_set_trigger(g, "</think>", &e), 0);
    int32_t n = tokenizer_n_vocab(g_tok);
    float *logits = calloc((size_t)n, sizeof *logits);
    assert_int_equal(grammar_apply(g, logits), n); /* free while thinking */
    assert_int_equal(feed_text(g, "hmm {not json} </thi"), 20);
    assert_false(grammar_done(g));
    assert_int_equal(feed_text(g, "nk>\n4"), 5);
    assert_int_equal(grammar_apply(g, logits) < n, 1);
    assert_true(isinf(logits[g_byte_tok['a']]));
    assert_false(isinf(logits[g_byte_tok['2']]));
    assert_true(grammar_done(g));
    assert_int_not_equal(grammar_accept(g, g_byte_tok['x'], &e), 0);
    free(logits);
    grammar_free(g);
}

/* ---- validation of generated output against the schema subset ---- */

static bool validate(const json_t *v, const json_t *s, const json_t *root, char *why, size_t cap);

static bool validate_type(const json_t *v, const char *t, const json_t *s, const json_t *root, char *why,
                          size_t cap)
{
    if (strcmp(t, "object") == 0) {
        if (!json_is_object(v))
            return snprintf(why, cap, "not an object"), false;
        const json_t *props = json_object_get(s, "properties");
        const json_t *addl = json_object_get(s, "additionalProperties");
        const char *k;
        json_t *x;
        const json_t *pnames = json_object_get(s, "propertyNames");
        json_object_foreach((json_t *)v, k, x) {
            json_t *kv = json_string(k);
            bool kok = !pnames || validate(kv, pnames, root, why, cap);
            json_decref(kv);
            if (!kok)
                return false;
            const json_t *ps = json_object_get(props, k);
            if (ps) {
                if (!validate(x, ps, root, why, cap))
                    return false;
            } else if (json_is_false(addl) || (!addl && props)) {
                return snprintf(why, cap, "unexpected property %s", k), false;
            } else if (addl && json_is_object(addl) && !validate(x, addl, root, why, cap)) {
                return false;
            }
        }
        const json_t *mxp = json_object_get(s, "maxProperties");
        if (mxp && (json_int_t)json_object_size(v) > json_integer_value(mxp))
            return snprintf(why, cap, "too many properties"), false;
        const json_t *req = json_object_get(s, "required");
        for (size_t i = 0; i < json_array_size(req); i++)
            if (!json_object_get(v, json_string_value(json_array_get(req, i))))
                return snprintf(why, cap, "missing %s", json_string_value(json_array_get(req, i))), false;
        return true;
    }
    if (strcmp(t, "array") == 0) {
        if (!json_is_array(v))
            return snprintf(why, cap, "not an array"), false;
        const json_t *mn = json_object_get(s, "minItems"), *mx = json_object_get(s, "maxItems");
        if (mn && (json_int_t)json_array_size(v) < json_integer_value(mn))
            return snprintf(why, cap, "too few items"), false;
        if (mx && (json_int_t)json_array_size(v) > json_integer_value(mx))
            return snprintf(why, cap, "too many items"), false;
        const json_t *it = json_object_get(s, "items");
        for (size_t i = 0; it && i < json_array_size(v); i++)
            if (!validate(json_array_get(v, i), it, root, why, cap))
                return false;
        return true;
    }
    if (strcmp(t, "string") == 0) {
        if (!json_is_string(v))
            return snprintf(why, cap, "not a string"), false;
        size_t chars = 0;
        for (const unsigned char *p = (const unsigned char *)json_string_value(v); *p; p++)
            chars += (*p & 0xC0) != 0x80;
        const json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
        if ((mn && (json_int_t)chars < json_integer_value(mn)) || (mx && (json_int_t)chars > json_integer_value(mx)))
            return snprintf(why, cap, "string length %zu out of range", chars), false;
        return true;
    }
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v) || (snprintf(why, cap, "not an integer"), false);
    if (strcmp(t, "number") == 0)
        return json_is_number(v) || (snprintf(why, cap, "not a number"), false);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v) || (snprintf(why, cap, "not a boolean"), false);
    if (strcmp(t, "null") == 0)
        return json_is_null(v) || (snprintf(why, cap, "not null"), false);
    return snprintf(why, cap, "unknown type %s", t), false;
}

static bool validate(const json_t *v, const json_t *s, const json_t *root, char *why, size_t cap)
{
    if (!s || json_is_true(s))
        return true;
    const json_t *x;
    if ((x = json_object_get(s, "$ref"))) {
        const char *r = json_string_value(x);
        return validate(v, json_object_get(json_object_get(root, "$defs"), r + 8), root, why, cap);
    }
    if ((x = json_object_get(s, "const")))
        return json_equal((json_t *)v, (json_t *)x) || (snprintf(why, cap, "not the const"), false);
    if ((x = json_object_get(s, "enum"))) {
        for (size_t i = 0; i < json_array_size(x); i++)
            if (json_equal((json_t *)v, json_array_get(x, i)))
                return true;
        return snprintf(why, cap, "not in enum"), false;
    }
    if ((x = json_object_get(s, "anyOf"))) {
        for (size_t i = 0; i < json_array_size(x); i++)
            if (validate(v, json_array_get(x, i), root, why, cap))
                return true;
        return snprintf(why, cap, "matches no anyOf branch"), false;
    }
    if ((x = json_object_get(s, "type"))) {
        if (json_is_string(x))
            return validate_type(v, json_string_value(x), s, root, why, cap);
        for (size_t i = 0; i < json_array_size(x); i++)
            if (validate_type(v, json_string_value(json_array_get(x, i)), s, root, why, cap))
                return true;
        return snprintf(why, cap, "matches none of the types"), false;
    }
    if (json_object_get(s, "properties"))
        return validate_type(v, "object", s, root, why, cap);
    return true;
}

static const char *const gen_schemas[] = {
    NULL,
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
    "\"age\":{\"type\":\"integer\"}},\"required\":[\"name\",\"age\"]}",
    "{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",\"blue\"]},\"minItems\":1,\"maxItems\":4}",
    "{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"string\",\"maxLength\":8},{\"type\":\"null\"}]}",
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
    "\"kids\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
    "\"$ref\":\"#/$defs/node\"}",
    "{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},\"kind\":{\"const\":\"story\"},"
    "\"n\":{\"type\":[\"integer\",\"null\"]},\"words\":{\"type\":\"array\",\"minItems\":2,\"maxItems\":3,"
    "\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":6}}},\"required\":[\"ok\",\"kind\",\"words\"],"
    "\"additionalProperties\":false}",
    "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"number\"},\"maxProperties\":3,"
    "\"propertyNames\":{\"type\":\"string\",\"maxLength\":10}}",
    "{\"type\":\"array\",\"maxItems\":3,\"items\":{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"string\","
    "\"maxLength\":5}},\"required\":[\"t\"]}}",
    "{\"type\":\"string\",\"maxLength\":30}",
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"object\","
    "\"properties\":{\"c\":{\"type\":\"number\"}},\"required\":[\"c\"]}},\"required\":[\"b\"]}},\"required\":[\"a\"]}",
};

/* 100 generations over the schemas above with random sampling (temperature 1, seeds varied per run)
 * on a model: from BOS when prompt is NULL, else after the prompt's tokens. Every output must end
 * (an end-of-generation token) within max_steps, parse, and validate against its schema. */
static void generate_100(const char *model_path, const char *prompt, int max_steps, uint64_t seed0)
{
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    assert_int_equal(backend_cpu_new(1, &be, &e), 0);
    if (model_load(model_path, be, &m, &e) != 0)
        fail_msg("%s", e.msg);
    struct grammar_vocab *voc = NULL;
    assert_int_equal(grammar_vocab_new(m->tok, &voc, &e), 0);
    int32_t n_vocab = m->hp.n_vocab;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    const int n_ctx = max_steps + 64;
    struct ctx_params cp = {.n_ctx = n_ctx};
    struct model_ctx *ctx = NULL;
    assert_int_equal(model_ctx_new(m, &cp, &ctx, &e), 0);
    int32_t *pids = NULL;
    size_t n_pids = 0;
    if (prompt)
        assert_int_equal(tokenizer_encode(m->tok, prompt, strlen(prompt), false, false, &pids, &n_pids, &e), 0);
    size_t n_schemas = sizeof gen_schemas / sizeof *gen_schemas;
    int finished = 0, total_tokens = 0;
    char *text = malloc(16384);
    for (int run = 0; run < 100; run++) {
        const char *st = gen_schemas[run % n_schemas];
        json_t *sch = st ? parse(st) : NULL;
        struct grammar *g = NULL;
        if (grammar_new_json(voc, sch, &g, &e) != 0)
            fail_msg("%s", e.msg);
        struct sample_params sp;
        sample_params_default(&sp);
        sp.temperature = 1.0f;
        sp.top_k = 0;
        sp.top_p = 1.0f;
        sp.repeat_penalty = 1.0f;
        sp.seed = seed0 + (uint64_t)run * 7919u;
        struct sampler *smp = NULL;
        assert_int_equal(sampler_new(&sp, n_vocab, n_ctx, &smp, &e), 0);
        model_ctx_truncate(ctx, 0);
        int32_t tok = tokenizer_bos(m->tok);
        if (prompt) {
            assert_int_equal(model_forward(ctx, pids, (int)n_pids, logits, false, &e), 0);
        }
        size_t len = 0;
        bool ended = false;
        for (int step = 0; step < max_steps; step++) {
            if (!prompt || step > 0)
                assert_int_equal(model_forward(ctx, &tok, 1, logits, false, &e), 0);
            int32_t allowed = grammar_apply(g, logits);
            if (allowed <= 0)
                fail_msg("run %d: no token allowed after \"%.*s\"", run, (int)len, text);
            tok = sampler_sample(smp, logits);
            if (tokenizer_is_eog(m->tok, tok)) {
                ended = true;
                break;
            }
            if (grammar_accept(g, tok, &e) != 0)
                fail_msg("run %d: sampled token %d was masked: %s", run, (int)tok, e.msg);
            sampler_accept(smp, tok);
            int k = tokenizer_token_bytes(m->tok, tok, false, text + len, 16384 - len - 1);
            assert_true(k >= 0 && len + (size_t)k < 16384 - 1);
            len += (size_t)k;
            total_tokens++;
        }
        text[len] = 0;
        if (!ended)
            fail_msg("run %d (schema %zu): no end after %d tokens: %s", run, run % n_schemas, max_steps, text);
        assert_true(grammar_done(g));
        json_error_t je;
        json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (!v)
            fail_msg("run %d: output does not parse (%s): %s", run, je.text, text);
        char why[256] = "";
        if (!validate(v, sch, sch, why, sizeof why))
            fail_msg("run %d: output does not match schema %zu (%s): %s", run, run % n_schemas, why, text);
        if (run < (int)n_schemas)
            print_message("schema %d: %s\n", run, text);
        finished++;
        json_decref(v);
        json_decref(sch);
        sampler_free(smp);
        grammar_free(g);
    }
    assert_int_equal(finished, 100);
    print_message("100 generations, %d tokens\n", total_tokens);
    free(text);
    free(pids);
    model_ctx_free(ctx);
    free(logits);
    grammar_vocab_free(voc);
    model_free(m);
    be->ops->free(be);
}

static void test_generate_100(void **state)
{
    (void)state;
    const char *path = tu_shared("models/stories260K.gguf");
    TU_REQUIRE(path);
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s", path);
    generate_100(model_path, NULL, 480, 1000);
}

/* The same on the reference Qwen 3 model: random weights, but a byte-level BPE vocabulary (merged
 * multi-byte tokens such as '":', ' {"' or '"},' that cross JSON's structure) instead of
 * stories260K's SPM one, which is what the token trie and the mask must get right. */
static void test_generate_100_qwen3(void **state)
{
    (void)state;
    const char *path = tu_shared("reference/tiny-models/qwen3-dev-f32.gguf");
    TU_REQUIRE(path);
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s", path);
    generate_100(model_path, "Answer in JSON:", 1500, 77);
}

/* Mask cost on a 128k vocabulary (Llama 3) in typical positions. */
static void test_mask_speed_llama3(void **state)
{
    (void)state;
    const char *path = tu_testdata("tokenizers/llama-3/tokenizer.json");
    TU_REQUIRE(path);
    struct err e = {0};
    struct tokenizer *tok = NULL;
    if (tokenizer_from_json(path, &tok, &e) != 0)
        fail_msg("%s", e.msg);
    int64_t t0 = clock_ns();
    struct grammar_vocab *voc = NULL;
    assert_int_equal(grammar_vocab_new(tok, &voc, &e), 0);
    int64_t t1 = clock_ns();
    print_message("vocabulary index: %.1f ms\n", (double)(t1 - t0) / 1e6);
    int32_t n = tokenizer_n_vocab(tok);
    float *logits = calloc((size_t)n, sizeof *logits);
    const char *sch = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
                      "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"required\":[\"name\",\"age\"]}";
    const char *texts[] = {"", "{\"name\": \"Tim the ", "{\"name\": \"Tim\", \"age\": 4",
                           "{\"name\": \"Tim\", \"age\": 4, \"tags\": [", "{\"name\": \"Tim\", \"age\": 4}"};
    json_t *js = parse(sch);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        struct grammar *g = NULL;
        assert_int_equal(grammar_new_json(voc, js, &g, &e), 0);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        assert_int_equal(tokenizer_encode(tok, texts[i], strlen(texts[i]), false, false, &ids, &n_ids, &e), 0);
        for (size_t k = 0; k < n_ids; k++)
            if (grammar_accept(g, ids[k], &e) != 0)
                fail_msg("\"%s\" token %zu: %s", texts[i], k, e.msg);
        free(ids);
        int reps = 20;
        int32_t allowed = 0;
        int64_t a = clock_ns();
        for (int r = 0; r < reps; r++)
            allowed = grammar_apply(g, logits);
        int64_t b = clock_ns();
        print_message("after \"%s\": %d tokens allowed, %.3f ms per mask\n", texts[i], (int)allowed,
                      (double)(b - a) / 1e6 / reps);
        assert_true(allowed > 0);
        /* Debug builds run unoptimised; the bound is loose here and the figure is printed. */
        assert_true((double)(b - a) / 1e6 / reps < 100.0);
        grammar_free(g);
    }
    json_decref(js);
    free(logits);
    grammar_vocab_free(voc);
    tokenizer_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_json),
        cmocka_unit_test(test_schema_objects),
        cmocka_unit_test(test_schema_values),
        cmocka_unit_test(test_schema_errors),
        cmocka_unit_test(test_mask_matches_accept),
        cmocka_unit_test(test_trigger),
        cmocka_unit_test(test_generate_100),
        cmocka_unit_test(test_generate_100_qwen3),
        cmocka_unit_test(test_mask_speed_llama3),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
