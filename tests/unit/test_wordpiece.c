/* test_wordpiece.c — the WordPiece (BERT) tokenizer: llama.cpp's bert-bge vocabulary against its
 * Hugging Face test vectors (../shared/vocab), [CLS]/[SEP] handling, decoding, and the rules the
 * vectors do not reach (the 100-character word limit, cased vocabularies, a word with no spelling)
 * on a small vocabulary written here. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static int32_t *encode(const struct tokenizer *t, const char *s, bool add_special, bool parse_special, size_t *n)
{
    int32_t *ids = NULL;
    struct err e = {0};
    if (tokenizer_encode(t, s, strlen(s), add_special, parse_special, &ids, n, &e) != 0)
        fail_msg("tokenizer_encode: %s", e.msg);
    return ids;
}

static void expect_ids(const struct tokenizer *t, const char *s, bool add_special, bool parse_special,
                       const int32_t *want, size_t nw)
{
    size_t n;
    int32_t *ids = encode(t, s, add_special, parse_special, &n);
    bool same = n == nw && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!same) {
        print_message("\"%s\": got", s);
        for (size_t i = 0; i < n; i++)
            print_message(" %d", (int)ids[i]);
        print_message("\n");
    }
    free(ids);
    assert_true(same);
}

static struct tokenizer *bge(void)
{
    const char *path = tu_testdata("vocab/ggml-vocab-bert-bge.gguf");
    if (!path)
        return NULL;
    return tu_load_tokenizer(path);
}

/* All 46 vectors of ggml-vocab-bert-bge.gguf.inp/.out, add_special and parse_special off. */
static void test_bge_vectors(void **state)
{
    (void)state;
    struct tokenizer *t = bge();
    TU_REQUIRE(t);
    const char *inp_path = tu_shared("vocab/ggml-vocab-bert-bge.gguf.inp");
    const char *out_path = tu_shared("vocab/ggml-vocab-bert-bge.gguf.out");
    TU_REQUIRE(inp_path);
    TU_REQUIRE(out_path);
    char *inp = tu_read(inp_path, NULL);
    char *out = tu_read(out_path, NULL);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int count = 0, failures = 0;
    char *p = inp, *line = out;
    for (char *end; (end = strstr(p, sep)) != NULL; p = end + strlen(sep)) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        int32_t want[512];
        size_t nw = 0;
        for (char *q = line, *next;; q = next) {
            long v = strtol(q, &next, 10);
            if (next == q)
                break;
            assert_true(nw < 512);
            want[nw++] = (int32_t)v;
        }
        line = nl + 1;
        int32_t *ids = NULL;
        size_t n = 0;
        struct err e = {0};
        assert_int_equal(tokenizer_encode(t, p, (size_t)(end - p), false, false, &ids, &n, &e), 0);
        if (n != nw || memcmp(ids, want, n * sizeof *ids) != 0) {
            print_message("vector %d \"%.*s\" differs: got", count, (int)(end - p), p);
            for (size_t i = 0; i < n; i++)
                print_message(" %d", (int)ids[i]);
            print_message("\n");
            failures++;
        }
        free(ids);
        count++;
    }
    assert_int_equal(count, 46);
    free(inp);
    free(out);
    tokenizer_free(t);
    assert_int_equal(failures, 0);
}

/* add_special wraps the text in [CLS] ... [SEP]; parse_special matches "[SEP]" written in the text. */
static void test_bge_special(void **state)
{
    (void)state;
    struct tokenizer *t = bge();
    TU_REQUIRE(t);
    assert_int_equal(tokenizer_bos(t), 101);
    assert_int_equal(tokenizer_eos(t), 102);
    assert_true(tokenizer_add_bos(t));
    assert_true(tokenizer_add_eos(t));
    expect_ids(t, "Hello world", true, false, (const int32_t[]){101, 7592, 2088, 102}, 4);
    expect_ids(t, "", true, false, (const int32_t[]){101, 102}, 2);
    /* Not parsed: "[SEP]" is the three words "[", "sep", "]". */
    size_t n;
    int32_t *ids = encode(t, "a [SEP] b", false, false, &n);
    assert_int_equal(n, 5);
    assert_int_not_equal(ids[2], 102);
    free(ids);
    expect_ids(t, "a [SEP] b", false, true, (const int32_t[]){1037, 102, 1038}, 3);
    tokenizer_free(t);
}

/* Decoding joins word-initial pieces with a space and glues continuation pieces on. */
static void test_bge_decode(void **state)
{
    (void)state;
    struct tokenizer *t = bge();
    TU_REQUIRE(t);
    size_t n;
    int32_t *ids = encode(t, "Äpfel discards Hello, world!", true, false, &n);
    char *s = NULL;
    struct err e = {0};
    assert_int_equal(tokenizer_decode(t, ids, n, false, &s, &e), 0);
    assert_string_equal(s, "apfel discards hello , world !");
    free(s);
    assert_int_equal(tokenizer_decode(t, ids, n, true, &s, &e), 0);
    assert_string_equal(s, "[CLS] apfel discards hello , world ![SEP]");
    free(s);
    /* streaming gives the same text */
    struct detok d;
    detok_init(&d, t, false);
    char buf[4096];
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += detok_push(&d, ids[i], buf + o, sizeof buf - o);
    o += detok_flush(&d, buf + o, sizeof buf - o);
    buf[o] = '\0';
    assert_string_equal(buf, "apfel discards hello , world !");
    free(ids);
    tokenizer_free(t);
}

/* ---- a small vocabulary written here ---- */

static const char *small_tokens[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]",                                 /* 0..3 */
    "\xe2\x96\x81" "un", "\xe2\x96\x81" "unb", "believ", "able", "ably", /* 4..8 */
    "\xe2\x96\x81" "a", "a",                                            /* 9, 10 */
    "\xe2\x96\x81" "Hello", "\xe2\x96\x81" "hello", "\xe2\x96\x81" "!", /* 11..13 */
    "\xe2\x96\x81" "\xe4\xb8\xad", "\xe2\x96\x81" "\xe6\x96\x87",         /* 14, 15: 中 文 */
    "\xe2\x96\x81" "e",                                                 /* 16 */
};
enum { N_SMALL = sizeof small_tokens / sizeof small_tokens[0] };

static struct tokenizer *small_vocab(int lowercase)
{
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    int32_t types[N_SMALL];
    for (int i = 0; i < N_SMALL; i++)
        types[i] = i < 4 ? 3 : 1;
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "bert"), 0);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "bert"), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", small_tokens, N_SMALL), 0);
    assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, N_SMALL), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 2), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3), 0);
    if (lowercase >= 0)
        assert_int_equal(gguf_writer_set_bool(w, "tokenizer.ggml.do_lower_case", lowercase != 0), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/small-%d.gguf", tu_tmpdir(), lowercase);
    struct err e = {0};
    if (gguf_writer_write(w, path, &e) != 0)
        fail_msg("gguf_writer_write: %s", e.msg);
    gguf_writer_free(w);
    return tu_load_tokenizer(path);
}

static void test_small_longest_match(void **state)
{
    (void)state;
    struct tokenizer *t = small_vocab(-1);
    /* "unb"+"elievable" fails, and greedy matching does not back off to "un"+"believ": the word is
     * unknown, as in the reference WordPiece. */
    expect_ids(t, "unbelievable", false, false, (const int32_t[]){1}, 1);
    expect_ids(t, "unbeliev", false, false, (const int32_t[]){1}, 1);
    /* longest first: "unb" wins over "un" whenever it leads somewhere */
    expect_ids(t, "aably", false, false, (const int32_t[]){9, 8}, 2);
    expect_ids(t, "aable ax aa", false, false, (const int32_t[]){9, 7, 1, 9, 10}, 5);
    /* uncased by default: case and accents are folded, CJK ideographs are words of their own */
    expect_ids(t, "HELLO!\xc3\x89", false, false, (const int32_t[]){12, 13, 16}, 3);
    expect_ids(t, "\xe4\xb8\xad\xe6\x96\x87", true, false, (const int32_t[]){2, 14, 15, 3}, 4);
    /* control and format characters vanish; other whitespace separates */
    expect_ids(t, "hel\xe2\x80\x8dlo\xe2\x80\xa8" "a\x01", false, false, (const int32_t[]){12, 9}, 2);
    tokenizer_free(t);
}

/* A word of more than 100 characters is [UNK] even when pieces would spell it. */
static void test_small_word_limit(void **state)
{
    (void)state;
    struct tokenizer *t = small_vocab(1);
    char word[128];
    memset(word, 'a', 100);
    word[100] = '\0';
    size_t n;
    int32_t *ids = encode(t, word, false, false, &n);
    assert_int_equal(n, 100);
    assert_int_equal(ids[0], 9);
    assert_int_equal(ids[99], 10);
    free(ids);
    word[100] = 'a';
    word[101] = '\0';
    expect_ids(t, word, false, false, (const int32_t[]){1}, 1);
    tokenizer_free(t);
}

/* do_lower_case false keeps case and accents: "Hello" is its own token, "É" is not "e". */
static void test_small_cased(void **state)
{
    (void)state;
    struct tokenizer *t = small_vocab(0);
    expect_ids(t, "Hello hello \xc3\x89", false, false, (const int32_t[]){11, 12, 1}, 3);
    tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bge_vectors),         cmocka_unit_test(test_bge_special),
        cmocka_unit_test(test_bge_decode),          cmocka_unit_test(test_small_longest_match),
        cmocka_unit_test(test_small_word_limit),    cmocka_unit_test(test_small_cased),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
