/* test_tokenizer.c — the tokenizer against reference tokenizations: llama.cpp's vocabulary test
 * vectors (../shared/vocab, made with the Hugging Face tokenizers) through the vocabulary GGUFs and
 * through real tokenizer.json files, the tiny-model tokenization references (both parse_special
 * settings and decode round trips), plus NFC, streaming detokenization and BOS/EOS handling. */
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct tokenizer *load_json(const char *path)
{
    struct tokenizer *t = NULL;
    struct err e = {0};
    double t0 = now_s();
    if (tokenizer_from_json(path, &t, &e) != 0)
        fail_msg("tokenizer_from_json(%s): %s", path, e.msg);
    print_message("loaded %s (%d tokens) in %.0f ms\n", path, (int)tokenizer_n_vocab(t), (now_s() - t0) * 1e3);
    return t;
}

static int32_t *encode(const struct tokenizer *t, const char *s, size_t len, bool add_special, bool parse_special,
                       size_t *n)
{
    int32_t *ids = NULL;
    struct err e = {0};
    if (tokenizer_encode(t, s, len, add_special, parse_special, &ids, n, &e) != 0)
        fail_msg("tokenizer_encode: %s", e.msg);
    return ids;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    char line[2048];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 16 < sizeof line; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, " %d", (int)ids[i]);
    line[o] = '\0';
    print_message("  %s:%s\n", label, line);
}

/* Runs a llama.cpp .inp/.out pair (add_special=false, parse_special=false); returns failures. */
static int run_vectors(const struct tokenizer *t, const char *inp_rel, const char *out_rel)
{
    const char *inp_path = tu_shared(inp_rel);
    TU_REQUIRE(inp_path);
    size_t inp_len;
    char *inp = tu_read(inp_path, &inp_len);
    const char *out_path = tu_shared(out_rel);
    TU_REQUIRE(out_path);
    char *out = tu_read(out_path, NULL);

    static const char sep[] = "\n__ggml_vocab_test__\n";
    int failures = 0, count = 0;
    char *p = inp, *line = out;
    for (;;) {
        char *end = strstr(p, sep);
        if (!end)
            break;
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        int32_t want[512];
        size_t nw = 0;
        for (char *q = line; *q;) {
            char *next;
            long v = strtol(q, &next, 10);
            if (next == q)
                break;
            assert_true(nw < 512);
            want[nw++] = (int32_t)v;
            q = next;
        }
        size_t n;
        int32_t *ids = encode(t, p, (size_t)(end - p), false, false, &n);
        if (n != nw || memcmp(ids, want, n * sizeof *ids) != 0) {
            if (failures < 6) {
                print_message("mismatch on test %d: \"%.*s\"\n", count, (int)(end - p), p);
                print_ids("want", want, nw);
                print_ids("got ", ids, n);
            }
            failures++;
        }
        free(ids);
        count++;
        p = end + strlen(sep);
        line = nl + 1;
    }
    assert_int_equal(count, 46);
    free(inp);
    free(out);
    return failures;
}

static void vocab_gguf_case(const char *name)
{
    char rel[256], inp[256], out[256];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    snprintf(inp, sizeof inp, "vocab/ggml-vocab-%s.gguf.inp", name);
    snprintf(out, sizeof out, "vocab/ggml-vocab-%s.gguf.out", name);
    const char *path = tu_testdata(rel);
    TU_REQUIRE(path);
    struct tokenizer *t = tu_load_tokenizer(path);
    int failures = run_vectors(t, inp, out);
    tokenizer_free(t);
    if (failures)
        fail_msg("%s: %d of 46 vectors differ", name, failures);
}

/* ---- llama.cpp vocabulary GGUFs ---- */

static void test_vocab_llama_spm(void **state) { (void)state; vocab_gguf_case("llama-spm"); }
static void test_vocab_phi_3(void **state) { (void)state; vocab_gguf_case("phi-3"); }
static void test_vocab_deepseek_coder(void **state) { (void)state; vocab_gguf_case("deepseek-coder"); }
static void test_vocab_deepseek_llm(void **state) { (void)state; vocab_gguf_case("deepseek-llm"); }
static void test_vocab_falcon(void **state) { (void)state; vocab_gguf_case("falcon"); }
static void test_vocab_gpt_2(void **state) { (void)state; vocab_gguf_case("gpt-2"); }
static void test_vocab_mpt(void **state) { (void)state; vocab_gguf_case("mpt"); }
static void test_vocab_refact(void **state) { (void)state; vocab_gguf_case("refact"); }
static void test_vocab_starcoder(void **state) { (void)state; vocab_gguf_case("starcoder"); }

/* WordPiece (BERT) is not something hearth runs: it must be refused by name, not mis-tokenized. */
static void test_vocab_bert_bge(void **state) { (void)state; vocab_gguf_case("bert-bge"); }

/* ---- tokenizer.json against the same vectors ---- */

static void json_case(const char *json_rel, const char *vec)
{
    const char *path = tu_testdata(json_rel);
    TU_REQUIRE(path);
    struct tokenizer *t = load_json(path);
    char inp[256], out[256];
    snprintf(inp, sizeof inp, "vocab/%s.inp", vec);
    snprintf(out, sizeof out, "vocab/%s.out", vec);
    int failures = run_vectors(t, inp, out);
    tokenizer_free(t);
    if (failures)
        fail_msg("%s vs %s: %d of 46 vectors differ", json_rel, vec, failures);
}

static void test_json_llama3(void **state)
{
    (void)state;
    json_case("tokenizers/llama-3/tokenizer.json", "ggml-vocab-llama-bpe.gguf");
}
static void test_json_llama32(void **state)
{
    (void)state;
    json_case("tokenizers/llama-3.2/tokenizer.json", "ggml-vocab-llama-bpe.gguf");
}
static void test_json_qwen25(void **state)
{
    (void)state;
    json_case("tokenizers/qwen2.5/tokenizer.json", "ggml-vocab-qwen2.gguf");
    json_case("tokenizers/qwen2.5/tokenizer.json", "legacy-2025-05/ggml-vocab-deepseek-r1-qwen.gguf");
}
static void test_json_qwen3(void **state)
{
    (void)state;
    json_case("tokenizers/qwen3/tokenizer.json", "ggml-vocab-qwen2.gguf");
    json_case("tokenizers/qwen3/tokenizer.json", "legacy-2025-05/ggml-vocab-deepseek-r1-qwen.gguf");
}
static void test_json_mistral_nemo(void **state)
{
    (void)state;
    json_case("tokenizers/mistral-nemo/tokenizer.json", "legacy-2025-05/ggml-vocab-pixtral.gguf");
}

/* ---- tokenizer_config.json beside tokenizer.json ---- */

/* Puts the unpacked tokenizer.json and the shared tokenizer_config.json side by side (links in a
 * temporary folder), as they are in a model download. */
static const char *side_by_side(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", name);
    const char *json = tu_testdata(rel);
    if (!json)
        return NULL;
    static char jsonbuf[4096];
    snprintf(jsonbuf, sizeof jsonbuf, "%s", json);
    snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer_config.json", name);
    const char *cfg = tu_shared(rel);
    if (!cfg)
        return NULL;
    static char dir[2048], path[4096];
    snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), name);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (symlink(cfg, path) != 0 && errno != EEXIST)
        fail_msg("symlink %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (symlink(jsonbuf, path) != 0 && errno != EEXIST)
        fail_msg("symlink %s: %s", path, strerror(errno));
    return path;
}

static void test_json_config(void **state)
{
    (void)state;
    const char *path = side_by_side("llama-3.2");
    TU_REQUIRE(path);
    struct tokenizer *t = load_json(path);
    assert_int_equal(tokenizer_bos(t), 128000);
    assert_int_equal(tokenizer_eos(t), 128009); /* <|eot_id|> */
    assert_true(tokenizer_add_bos(t));
    assert_false(tokenizer_add_eos(t));
    assert_true(tokenizer_is_eog(t, 128009));
    assert_true(tokenizer_is_eog(t, 128008)); /* <|eom_id|> */
    assert_true(tokenizer_is_special(t, 128000));
    size_t n;
    int32_t *ids = encode(t, "Hello world", 11, true, false, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 128000);
    assert_int_equal(ids[1], 9906);
    assert_int_equal(ids[2], 1917);
    free(ids);
    tokenizer_free(t);

    /* The config's model_max_length is an integer too big for 64 bits: it must still load. */
    path = side_by_side("mistral-nemo");
    TU_REQUIRE(path);
    t = load_json(path);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_add_bos(t));
    assert_true(tokenizer_is_eog(t, 2));
    tokenizer_free(t);

    path = side_by_side("qwen2.5");
    TU_REQUIRE(path);
    t = load_json(path);
    assert_int_equal(tokenizer_bos(t), -1);
    assert_int_equal(tokenizer_eos(t), 151645); /* <|im_end|> */
    assert_false(tokenizer_add_bos(t));
    ids = encode(t, "hi", 2, true, false, &n);
    assert_int_equal(n, 1);
    free(ids);
    tokenizer_free(t);
}

/* Mistral 7B's tokenizer.json is SentencePiece-style BPE with merges and byte fallback: check the
 * segmentation of a known sentence and that every test string survives a round trip. */
static void test_json_mistral7b(void **state)
{
    (void)state;
    const char *path = side_by_side("mistral-7b-v0.1");
    TU_REQUIRE(path);
    struct tokenizer *t = load_json(path);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_add_bos(t));
    size_t n;
    const char *hello = "Hello world \xf0\x9f\xa6\x99";
    int32_t *ids = encode(t, hello, strlen(hello), true, false, &n);
    const char *want[] = {"<s>", "\xe2\x96\x81Hello", "\xe2\x96\x81world", "\xe2\x96\x81",
                          "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"};
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(tokenizer_token_str(t, ids[i]), want[i]);
    free(ids);

    const char *inp_path = tu_shared("vocab/ggml-vocab-llama-spm.gguf.inp");
    TU_REQUIRE(inp_path);
    char *inp = tu_read(inp_path, NULL);
    int count = 0;
    for (char *p = inp, *end; (end = strstr(p, "\n__ggml_vocab_test__\n")); p = end + 21, count++) {
        ids = encode(t, p, (size_t)(end - p), false, false, &n);
        char *dec = NULL;
        struct err e = {0};
        assert_int_equal(tokenizer_decode(t, ids, n, false, &dec, &e), 0);
        if (strlen(dec) != (size_t)(end - p) || memcmp(dec, p, (size_t)(end - p)) != 0)
            fail_msg("round trip of \"%.*s\" gave \"%s\"", (int)(end - p), p, dec);
        free(dec);
        free(ids);
    }
    assert_int_equal(count, 46);
    free(inp);
    tokenizer_free(t);
}

/* ---- tiny-model tokenization references ---- */

static int check_reference(const struct tokenizer *t, const char *ref_rel)
{
    const char *path = tu_shared(ref_rel);
    TU_REQUIRE(path);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        fail_msg("%s: %s", path, je.text);
    json_t *strings = json_object_get(root, "strings");
    assert_true(json_array_size(strings) >= 40);
    int failures = 0;
    size_t i;
    json_t *s;
    json_array_foreach(strings, i, s)
    {
        const char *text = json_string_value(json_object_get(s, "text"));
        size_t len = json_string_length(json_object_get(s, "text"));
        for (int ps = 1; ps >= 0; ps--) {
            json_t *want = json_object_get(s, "ids");
            if (!ps && json_object_get(s, "ids_special_as_text"))
                want = json_object_get(s, "ids_special_as_text");
            size_t n;
            int32_t *ids = encode(t, text, len, false, ps, &n);
            bool ok = n == json_array_size(want);
            for (size_t k = 0; ok && k < n; k++)
                ok = ids[k] == json_integer_value(json_array_get(want, k));
            if (!ok) {
                if (failures < 6) {
                    print_message("%s: mismatch (parse_special=%d) on \"%s\"\n", ref_rel, ps, text);
                    print_ids("got", ids, n);
                }
                failures++;
            } else if (json_is_true(json_object_get(s, "decode_roundtrip"))) {
                char *dec = NULL;
                struct err e = {0};
                assert_int_equal(tokenizer_decode(t, ids, n, true, &dec, &e), 0);
                if (strlen(dec) != len || memcmp(dec, text, len) != 0) {
                    print_message("%s: decode gives \"%s\" for \"%s\"\n", ref_rel, dec, text);
                    failures++;
                }
                free(dec);
            }
            free(ids);
        }
    }
    json_decref(root);
    return failures;
}

static void ref_json_case(const char *json_rel, const char *ref_rel)
{
    const char *path = tu_testdata(json_rel);
    TU_REQUIRE(path);
    struct tokenizer *t = load_json(path);
    int failures = check_reference(t, ref_rel);
    tokenizer_free(t);
    if (failures)
        fail_msg("%s: %d failures", ref_rel, failures);
}

static void ref_gguf_case(const char *gguf_rel, const char *ref_rel)
{
    const char *path = tu_shared(gguf_rel);
    TU_REQUIRE(path);
    struct tokenizer *t = tu_load_tokenizer(path);
    int failures = check_reference(t, ref_rel);
    tokenizer_free(t);
    if (failures)
        fail_msg("%s: %d failures", ref_rel, failures);
}

static void test_ref_llama3_full(void **state)
{
    (void)state;
    ref_json_case("tokenizers/llama-3/tokenizer.json", "reference/tiny-models/tokenize-llama-3.json");
}
static void test_ref_qwen25_full(void **state)
{
    (void)state;
    ref_json_case("tokenizers/qwen2.5/tokenizer.json", "reference/tiny-models/tokenize-qwen2.5.json");
}
static void test_ref_qwen3_full(void **state)
{
    (void)state;
    ref_json_case("tokenizers/qwen3/tokenizer.json", "reference/tiny-models/tokenize-qwen3.json");
}
static void test_ref_llama3_trimmed(void **state)
{
    (void)state;
    ref_gguf_case("reference/tiny-models/llama-dev-f32.gguf", "reference/tiny-models/tokenize-llama-3-trimmed.json");
}
static void test_ref_qwen2_trimmed(void **state)
{
    (void)state;
    ref_gguf_case("reference/tiny-models/qwen2-dev-f32.gguf", "reference/tiny-models/tokenize-qwen2.5-trimmed.json");
}
static void test_ref_qwen3_trimmed(void **state)
{
    (void)state;
    ref_gguf_case("reference/tiny-models/qwen3-dev-f32.gguf", "reference/tiny-models/tokenize-qwen3-trimmed.json");
}

/* ---- NFC ---- */

static void expect_nfc(const char *in, const char *want)
{
    char *out = NULL;
    size_t n = 0;
    bool changed = uni_nfc(in, strlen(in), &out, &n);
    if (strcmp(in, want) == 0) {
        assert_false(changed);
        return;
    }
    assert_true(changed);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    free(out);
}

static void test_nfc(void **state)
{
    (void)state;
    expect_nfc("Cafe\xcc\x81", "Caf\xc3\xa9");                  /* e + acute -> é */
    expect_nfc("\xce\xb1\xcc\x81", "\xce\xac");                 /* Greek alpha + acute -> ά */
    expect_nfc("\xd0\xb8\xcc\x86", "\xd0\xb9");                 /* Cyrillic и + breve -> й */
    expect_nfc("a\xcc\x82\xcc\xa3", "\xe1\xba\xad");            /* a + circumflex + dot below -> ậ (reordered) */
    expect_nfc("a\xcc\xa3\xcc\x82", "\xe1\xba\xad");            /* same, already in canonical order */
    expect_nfc("\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab", "\xed\x95\x9c"); /* Hangul jamo -> 한 */
    expect_nfc("\xe2\x84\xab", "\xc3\x85");                     /* Angstrom sign (singleton) -> Å */
    expect_nfc("plain ascii", "plain ascii");
    expect_nfc("caf\xc3\xa9 \xcc\xb8", "caf\xc3\xa9 \xcc\xb8"); /* lone combining mark after a space stays */
}

/* ---- BOS / EOS, specials, end of generation ---- */

static void test_bos_eos(void **state)
{
    (void)state;
    const char *path = tu_testdata("vocab/ggml-vocab-llama-spm.gguf");
    TU_REQUIRE(path);
    struct tokenizer *t = tu_load_tokenizer(path);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_add_bos(t));
    assert_false(tokenizer_add_eos(t));
    assert_true(tokenizer_is_eog(t, 2));
    assert_false(tokenizer_is_eog(t, 1));
    assert_true(tokenizer_is_special(t, 1));
    assert_false(tokenizer_is_special(t, 100));
    size_t n;
    int32_t *ids = encode(t, "Hello world", 11, true, false, &n);
    /* SentencePiece reference: [1, 15043, 3186] */
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    assert_int_equal(ids[2], 3186);
    char *dec = NULL;
    struct err e = {0};
    assert_int_equal(tokenizer_decode(t, ids, n, false, &dec, &e), 0);
    assert_string_equal(dec, "Hello world");
    free(dec);
    assert_int_equal(tokenizer_decode(t, ids, n, true, &dec, &e), 0);
    assert_string_equal(dec, "<s> Hello world");
    free(dec);
    free(ids);
    /* "<s>" in text is plain text unless parse_special */
    ids = encode(t, "<s>x", 4, false, true, &n);
    assert_true(n >= 2);
    assert_int_equal(ids[0], 1);
    free(ids);
    ids = encode(t, "<s>x", 4, false, false, &n);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 1);
    free(ids);
    assert_int_equal(tokenizer_find(t, "\xe2\x96\x81Hello"), 15043);
    assert_string_equal(tokenizer_token_str(t, 15043), "\xe2\x96\x81Hello");
    assert_null(tokenizer_token_str(t, 32000));
    char buf[8];
    assert_true(tokenizer_token_bytes(t, 32000, true, buf, sizeof buf) < 0);
    assert_int_equal(tokenizer_token_bytes(t, 13, false, buf, sizeof buf), 1); /* <0x0A> */
    assert_int_equal(buf[0], '\n');
    tokenizer_free(t);

    /* llama 3 dev GGUF adds BOS 2048 and no EOS; the Qwen ones add nothing. */
    path = tu_shared("reference/tiny-models/llama-dev-f32.gguf");
    TU_REQUIRE(path);
    t = tu_load_tokenizer(path);
    ids = encode(t, "Hello world", 11, true, false, &n);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], 2048);
    assert_int_equal(ids[1], 39);
    free(ids);
    assert_true(tokenizer_is_eog(t, tokenizer_find(t, "<|eot_id|>")));
    assert_true(tokenizer_is_eog(t, 2049));
    tokenizer_free(t);

    path = tu_shared("reference/tiny-models/qwen2-dev-f32.gguf");
    TU_REQUIRE(path);
    t = tu_load_tokenizer(path);
    assert_false(tokenizer_add_bos(t));
    ids = encode(t, "Hello world", 11, true, false, &n);
    assert_int_not_equal(ids[0], 2048);
    free(ids);
    assert_true(tokenizer_is_eog(t, 2050)); /* <|im_end|> */
    assert_true(tokenizer_is_eog(t, 2048)); /* <|endoftext|> */
    assert_false(tokenizer_is_eog(t, 2049)); /* <|im_start|> */
    tokenizer_free(t);
}

/* ---- streaming detokenizer ---- */

static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = uni_decode(s + i, n - i, &cp);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static void stream_check(const struct tokenizer *t, const char *text)
{
    size_t n;
    int32_t *ids = encode(t, text, strlen(text), false, false, &n);
    char *whole = NULL;
    struct err e = {0};
    assert_int_equal(tokenizer_decode(t, ids, n, false, &whole, &e), 0);
    assert_string_equal(whole, text);
    struct detok d;
    detok_init(&d, t, false);
    char acc[1024];
    size_t len = 0;
    int held = 0;
    for (size_t i = 0; i < n; i++) {
        char out[512];
        size_t k = detok_push(&d, ids[i], out, sizeof out);
        assert_true(valid_utf8(out, k)); /* never half a character */
        if (d.n_pending)
            held++;
        memcpy(acc + len, out, k);
        len += k;
    }
    len += detok_flush(&d, acc + len, sizeof acc - len);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(acc, text, len);
    assert_true(held > 0); /* the text was chosen so that some character spans several tokens */
    free(whole);
    free(ids);
}

static void test_detok_stream(void **state)
{
    (void)state;
    const char *path = tu_testdata("vocab/ggml-vocab-llama-spm.gguf");
    TU_REQUIRE(path);
    struct tokenizer *t = tu_load_tokenizer(path);
    /* 🦙 is not in the Llama 2 vocabulary: it becomes four <0xXX> byte tokens. */
    stream_check(t, "Hello \xf0\x9f\xa6\x99 llama");
    /* An incomplete character at the end of the stream becomes U+FFFD on flush. */
    struct detok d;
    detok_init(&d, t, false);
    char out[256];
    int32_t f0 = tokenizer_find(t, "<0xF0>");
    assert_true(f0 >= 0);
    assert_int_equal(detok_push(&d, f0, out, sizeof out), 0);
    assert_int_equal(detok_flush(&d, out, sizeof out), 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    tokenizer_free(t);

    path = tu_testdata("vocab/ggml-vocab-gpt-2.gguf");
    TU_REQUIRE(path);
    t = tu_load_tokenizer(path);
    stream_check(t, "emoji \xf0\x9f\xa6\x99\xf0\x9f\xa6\x99 and \xe2\x9c\x85 ok");
    tokenizer_free(t);
}

/* ---- invalid input and speed ---- */

static void test_invalid_utf8_and_speed(void **state)
{
    (void)state;
    const char *path = tu_testdata("tokenizers/llama-3/tokenizer.json");
    TU_REQUIRE(path);
    struct tokenizer *t = load_json(path);
    /* Invalid UTF-8 is encoded byte by byte and decodes back to the same bytes. */
    const char bad[] = "ok \xff\xfe then \xc3 end \xe2\x82";
    size_t n;
    int32_t *ids = encode(t, bad, sizeof bad - 1, false, false, &n);
    char *dec = NULL;
    struct err e = {0};
    assert_int_equal(tokenizer_decode(t, ids, n, false, &dec, &e), 0);
    assert_memory_equal(dec, bad, sizeof bad - 1);
    free(dec);
    free(ids);

    /* A few KB of mixed text, plus one 20 KB "word", must take milliseconds. */
    static char big[4096 + 20000];
    size_t len = 0;
    const char *chunk = "The quick brown fox, 12345 caf\xc3\xa9 \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 "
                        "\xe4\xbd\xa0\xe5\xa5\xbd! def f(x): return x*2\n";
    while (len + strlen(chunk) < 4096) {
        memcpy(big + len, chunk, strlen(chunk));
        len += strlen(chunk);
    }
    memset(big + len, 'a', 20000);
    len += 20000;
    double t0 = now_s();
    ids = encode(t, big, len, false, false, &n);
    double dt = now_s() - t0;
    print_message("encoded %zu bytes into %zu tokens in %.2f ms\n", len, n, dt * 1e3);
    assert_true(dt < 0.5);
    assert_int_equal(tokenizer_decode(t, ids, n, false, &dec, &e), 0);
    assert_memory_equal(dec, big, len);
    free(dec);
    free(ids);
    tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nfc),
        cmocka_unit_test(test_vocab_llama_spm),
        cmocka_unit_test(test_vocab_phi_3),
        cmocka_unit_test(test_vocab_deepseek_coder),
        cmocka_unit_test(test_vocab_deepseek_llm),
        cmocka_unit_test(test_vocab_falcon),
        cmocka_unit_test(test_vocab_gpt_2),
        cmocka_unit_test(test_vocab_mpt),
        cmocka_unit_test(test_vocab_refact),
        cmocka_unit_test(test_vocab_starcoder),
        cmocka_unit_test(test_vocab_bert_bge),
        cmocka_unit_test(test_json_llama3),
        cmocka_unit_test(test_json_llama32),
        cmocka_unit_test(test_json_qwen25),
        cmocka_unit_test(test_json_qwen3),
        cmocka_unit_test(test_json_mistral_nemo),
        cmocka_unit_test(test_json_config),
        cmocka_unit_test(test_json_mistral7b),
        cmocka_unit_test(test_ref_llama3_full),
        cmocka_unit_test(test_ref_qwen25_full),
        cmocka_unit_test(test_ref_qwen3_full),
        cmocka_unit_test(test_ref_llama3_trimmed),
        cmocka_unit_test(test_ref_qwen2_trimmed),
        cmocka_unit_test(test_ref_qwen3_trimmed),
        cmocka_unit_test(test_bos_eos),
        cmocka_unit_test(test_detok_stream),
        cmocka_unit_test(test_invalid_utf8_and_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
