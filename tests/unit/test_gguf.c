/* test_gguf.c — the GGUF reader and writer: real files made by llama.cpp's converters
 * (../shared/models, ../shared/reference/tiny-models, the vocabulary GGUFs), a writer round trip
 * over every value type, and hostile inputs (every truncation, random byte flips, crafted headers)
 * that must fail cleanly with a message naming the problem. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tensor/tensor.h"

/* ---- helpers ---- */

static struct gguf_file *open_ok(const char *path)
{
    struct gguf_file *f = NULL;
    struct err e = {0};
    int rc = gguf_open(path, &f, &e);
    if (rc != 0)
        fail_msg("gguf_open(%s) failed: %s", path, e.msg);
    assert_non_null(f);
    return f;
}

static uint32_t get_u32(const struct gguf_file *f, const char *key)
{
    uint32_t v = 0;
    struct err e = {0};
    if (gguf_get_u32(f, key, &v, &e) != 0)
        fail_msg("%s", e.msg);
    return v;
}

static void assert_str(const struct gguf_file *f, const char *key, const char *want)
{
    struct gguf_str s;
    struct err e = {0};
    if (gguf_get_str(f, key, &s, &e) != 0)
        fail_msg("%s", e.msg);
    char *got = gguf_str_dup(s);
    assert_string_equal(got, want);
    free(got);
}

static bool arr_str_eq(const struct gguf_array *a, uint64_t i, const char *want)
{
    return i < a->n && gguf_str_eq(a->strs[i], want);
}

/* Parses a private copy of exactly size bytes (so ASan sees any over-read) and returns the code;
 * on success it walks every value and tensor byte before closing. */
static int parse_copy(const uint8_t *data, size_t size, struct err *e);

/* Tensor data must lie inside the file, at an aligned position, and end at or before its end. */
static void assert_tensors_in_file(const struct gguf_file *f, size_t file_size)
{
    uint64_t end = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        assert_int_equal((f->data_offset + t->offset) % f->alignment, 0);
        assert_ptr_equal(t->data, (const uint8_t *)f->map.data + f->data_offset + t->offset);
        assert_int_equal(t->size, dtype_row_bytes(t->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]));
        if (f->data_offset + t->offset + t->size > end)
            end = f->data_offset + t->offset + t->size;
        assert_ptr_equal(gguf_find_tensor(f, t->name), t);
    }
    assert_true(end <= file_size);
}

/* ---- real files ---- */

static void test_stories260k(void **state)
{
    (void)state;
    const char *path = tu_shared("models/stories260K.gguf");
    TU_REQUIRE(path);
    struct gguf_file *f = open_ok(path);
    /* Header facts listed in ../shared/models/SOURCES.md. */
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 48);
    assert_int_equal(f->n_kv, 19);
    assert_int_equal(f->alignment, 32);
    assert_int_equal(f->data_offset, 14176);
    assert_int_equal(f->map.size, 1185376);
    assert_str(f, "general.architecture", "llama");
    assert_str(f, "general.name", "llama");
    assert_str(f, "tokenizer.ggml.model", "llama");
    assert_int_equal(get_u32(f, "llama.context_length"), 2048);
    assert_int_equal(get_u32(f, "llama.embedding_length"), 64);
    assert_int_equal(get_u32(f, "llama.feed_forward_length"), 172);
    assert_int_equal(get_u32(f, "llama.block_count"), 5);
    assert_int_equal(get_u32(f, "llama.attention.head_count"), 8);
    assert_int_equal(get_u32(f, "llama.attention.head_count_kv"), 4);
    assert_int_equal(get_u32(f, "llama.rope.dimension_count"), 8);
    assert_int_equal(get_u32(f, "tokenizer.ggml.seperator_token_id"), 0xFFFFFFFFu);
    assert_int_equal(get_u32(f, "tokenizer.ggml.padding_token_id"), 0xFFFFFFFFu);
    float eps = 0;
    struct err e = {0};
    assert_int_equal(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, &e), 0);
    assert_float_equal(eps, 1e-5f, 1e-12f);
    /* Absent keys are NOTFOUND, not an error in the file. */
    uint32_t ft;
    assert_int_equal(gguf_get_u32(f, "general.file_type", &ft, &e), ERR_NOTFOUND);
    assert_non_null(strstr(e.msg, "general.file_type"));
    assert_null(gguf_find_kv(f, "tokenizer.ggml.pre"));

    const struct gguf_array *tokens, *scores, *types;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, &e), 0);
    assert_int_equal(tokens->n, 512);
    assert_true(arr_str_eq(tokens, 0, "<unk>"));
    assert_true(arr_str_eq(tokens, 1, "<s>"));
    assert_true(arr_str_eq(tokens, 2, "</s>"));
    assert_true(arr_str_eq(tokens, 3, "<0x00>"));
    assert_true(arr_str_eq(tokens, 258, "<0xFF>"));
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores, &e), 0);
    assert_int_equal(scores->n, 512);
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types, &e), 0);
    assert_int_equal(types->n, 512);
    assert_int_equal(gguf_arr_i32(types, 3), 6); /* byte tokens are type BYTE (6) */
    assert_int_equal(gguf_arr_i32(types, 300), 1);
    /* The wrong element type is a format error naming the key. */
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, &types, &e), ERR_FORMAT);
    assert_non_null(strstr(e.msg, "tokenizer.ggml.tokens"));

    for (uint64_t i = 0; i < f->n_tensors; i++)
        assert_int_equal(f->tensors[i].type, DT_F32);
    assert_tensors_in_file(f, f->map.size);
    const struct gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    const struct gguf_tensor *out = gguf_find_tensor(f, "output.weight");
    assert_non_null(emb);
    assert_non_null(out);
    assert_int_equal(emb->n_dims, 2);
    assert_int_equal(emb->ne[0], 64);
    assert_int_equal(emb->ne[1], 512);
    assert_int_equal(emb->size, 64 * 512 * 4);
    assert_memory_equal(emb->data, out->data, emb->size); /* output.weight is a stored copy */
    assert_null(gguf_find_tensor(f, "blk.5.attn_q.weight"));
    /* The last tensor ends exactly at the end of the file. */
    uint64_t end = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->data_offset + f->tensors[i].offset + f->tensors[i].size > end)
            end = f->data_offset + f->tensors[i].offset + f->tensors[i].size;
    assert_int_equal(end, f->map.size);

    /* The same weights in llama2.c's format: a 28-byte header, the embedding table, then the
     * attention norms of every layer. Zero-copy data must be byte-identical to them. */
    const char *bin_path = tu_shared("models/stories260K.bin");
    if (bin_path) {
        size_t bin_size;
        char *bin = tu_read(bin_path, &bin_size);
        assert_true(bin_size > 28 + emb->size + 5 * 64 * 4);
        assert_memory_equal(emb->data, bin + 28, emb->size);
        for (int l = 0; l < 5; l++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
            const struct gguf_tensor *t = gguf_find_tensor(f, name);
            assert_non_null(t);
            assert_int_equal(t->size, 64 * 4);
            assert_memory_equal(t->data, bin + 28 + emb->size + (size_t)l * 64 * 4, t->size);
        }
        free(bin);
    }
    gguf_close(f);
}

static void test_llama2_tiny_random(void **state)
{
    (void)state;
    const char *path = tu_shared("models/llama-2-tiny-random.gguf");
    TU_REQUIRE(path);
    struct gguf_file *f = open_ok(path);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 12);
    assert_int_equal(f->n_kv, 18);
    assert_str(f, "general.architecture", "llama");
    assert_str(f, "general.name", "LLaMA v2");
    assert_int_equal(get_u32(f, "general.file_type"), 1);
    assert_int_equal(get_u32(f, "llama.embedding_length"), 8);
    assert_int_equal(get_u32(f, "llama.block_count"), 1);
    assert_int_equal(get_u32(f, "llama.feed_forward_length"), 32);
    assert_int_equal(get_u32(f, "llama.context_length"), 4096);
    int n_f16 = 0, n_f32 = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        n_f16 += f->tensors[i].type == DT_F16;
        n_f32 += f->tensors[i].type == DT_F32;
    }
    assert_int_equal(n_f16, 9);
    assert_int_equal(n_f32, 3);
    assert_tensors_in_file(f, f->map.size);
    const struct gguf_array *tokens;
    struct err e = {0};
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, &e), 0);
    assert_int_equal(tokens->n, 32000);

    /* SOURCES.md: its 32000 tokens equal the Llama 2 SPM vocabulary GGUF's, in order. */
    const char *spm = tu_testdata("vocab/ggml-vocab-llama-spm.gguf");
    if (spm) {
        struct gguf_file *v = open_ok(spm);
        const struct gguf_array *vt;
        assert_int_equal(gguf_get_arr(v, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &vt, &e), 0);
        assert_int_equal(vt->n, tokens->n);
        for (uint64_t i = 0; i < vt->n; i++) {
            assert_int_equal(vt->strs[i].len, tokens->strs[i].len);
            assert_memory_equal(vt->strs[i].ptr, tokens->strs[i].ptr, vt->strs[i].len);
        }
        gguf_close(v);
    }
    gguf_close(f);
}

/* Every GGUF listed in the tiny-models JSON files, checked against the facts recorded there. */
static void test_tiny_models(void **state)
{
    (void)state;
    static const char *const archs[] = {"llama", "qwen2", "qwen3"};
    int checked = 0;
    for (size_t a = 0; a < 3; a++) {
        char rel[256];
        snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev.json", archs[a]);
        const char *jpath = tu_shared(rel);
        TU_REQUIRE(jpath);
        json_error_t jerr;
        json_t *root = json_load_file(jpath, 0, &jerr);
        assert_non_null(root);
        uint32_t vocab = (uint32_t)json_integer_value(json_object_get(root, "vocab_size"));
        json_t *files = json_object_get(root, "gguf_files");
        assert_true(json_array_size(files) == 3);
        size_t i;
        json_t *g;
        json_array_foreach(files, i, g)
        {
            snprintf(rel, sizeof rel, "reference/tiny-models/%s", json_string_value(json_object_get(g, "file")));
            const char *path = tu_shared(rel);
            assert_non_null(path);
            struct gguf_file *f = open_ok(path);
            assert_int_equal(f->map.size, json_integer_value(json_object_get(g, "bytes")));
            assert_int_equal(f->version, json_integer_value(json_object_get(g, "gguf_version")));
            assert_int_equal(f->n_tensors, json_integer_value(json_object_get(g, "tensor_count")));
            assert_int_equal(f->n_kv, json_integer_value(json_object_get(g, "kv_count")));
            assert_str(f, "general.architecture", json_string_value(json_object_get(g, "architecture")));
            assert_str(f, "tokenizer.ggml.pre", json_string_value(json_object_get(g, "tokenizer_pre")));
            uint32_t ftype = get_u32(f, "general.file_type");
            assert_int_equal(ftype, json_integer_value(json_object_get(g, "file_type")));
            const struct gguf_array *tokens;
            struct err e = {0};
            assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, &e), 0);
            assert_int_equal(tokens->n, vocab);
            char key[128];
            snprintf(key, sizeof key, "%s.embedding_length", archs[a]);
            assert_int_equal(get_u32(f, key), 64);
            snprintf(key, sizeof key, "%s.block_count", archs[a]);
            assert_int_equal(get_u32(f, key), 2);
            const struct gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
            assert_non_null(emb);
            assert_int_equal(emb->ne[0], 64);
            assert_int_equal(emb->ne[1], vocab);
            /* file_type 0/1/7 = F32/F16/Q8_0 for the big matrices. */
            uint32_t want = ftype == 0 ? DT_F32 : ftype == 1 ? DT_F16 : DT_Q8_0;
            assert_int_equal(gguf_find_tensor(f, "blk.0.attn_q.weight")->type, want);
            assert_tensors_in_file(f, f->map.size);
            gguf_close(f);
            checked++;
        }
        json_decref(root);
    }
    assert_int_equal(checked, 9);
}

/* Vocabulary-only GGUFs: values from ../shared/vocab/SOURCES.md. */
static void test_vocab_ggufs(void **state)
{
    (void)state;
    static const struct {
        const char *file, *arch, *model;
        uint64_t n_vocab, n_merges;
    } cases[] = {
        {"ggml-vocab-llama-spm.gguf", "llama", "llama", 32000, 0},
        {"ggml-vocab-phi-3.gguf", "phi3", "llama", 32064, 0},
        {"ggml-vocab-baichuan.gguf", "baichuan", "llama", 64000, 0},
        {"ggml-vocab-bert-bge.gguf", "bert", "bert", 30522, 0},
        {"ggml-vocab-deepseek-coder.gguf", "llama", "gpt2", 32256, 31757},
        {"ggml-vocab-deepseek-llm.gguf", "llama", "gpt2", 102400, 99757},
        {"ggml-vocab-falcon.gguf", "falcon", "gpt2", 65024, 64784},
        {"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", 50257, 50000},
        {"ggml-vocab-gpt-neox.gguf", "gptneox", "gpt2", 50432, 50009},
        {"ggml-vocab-mpt.gguf", "mpt", "gpt2", 50432, 50009},
        {"ggml-vocab-refact.gguf", "refact", "gpt2", 49216, 48891},
        {"ggml-vocab-starcoder.gguf", "starcoder2", "gpt2", 49152, 48872},
    };
    TU_REQUIRE(tu_testdata("vocab/ggml-vocab-llama-spm.gguf"));
    int seen = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "vocab/%s", cases[i].file);
        const char *path = tu_testdata(rel);
        if (!path)
            continue;
        seen++;
        struct gguf_file *f = open_ok(path);
        assert_int_equal(f->version, 3);
        assert_int_equal(f->n_tensors, 0);
        assert_str(f, "general.architecture", cases[i].arch);
        assert_str(f, "tokenizer.ggml.model", cases[i].model);
        const struct gguf_array *a;
        struct err e = {0};
        assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &a, &e), 0);
        assert_int_equal(a->n, cases[i].n_vocab);
        int rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &a, &e);
        if (cases[i].n_merges) {
            assert_int_equal(rc, 0);
            assert_int_equal(a->n, cases[i].n_merges);
        } else {
            assert_int_equal(rc, ERR_NOTFOUND);
        }
        gguf_close(f);
    }
    assert_int_equal(seen, 12);
}

/* ---- writer round trip ---- */

static bool values_equal(const struct gguf_value *a, const struct gguf_value *b);

static bool arrays_equal(const struct gguf_array *a, const struct gguf_array *b)
{
    if (a->elem_type != b->elem_type || a->n != b->n)
        return false;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->elem_type == GGUF_TYPE_STRING) {
            if (a->strs[i].len != b->strs[i].len || memcmp(a->strs[i].ptr, b->strs[i].ptr, a->strs[i].len) != 0)
                return false;
        } else if (a->elem_type == GGUF_TYPE_ARRAY) {
            if (!values_equal(&a->values[i], &b->values[i]))
                return false;
        }
    }
    if (a->elem_type != GGUF_TYPE_STRING && a->elem_type != GGUF_TYPE_ARRAY && a->n) {
        size_t esz = a->elem_type == GGUF_TYPE_UINT8 || a->elem_type == GGUF_TYPE_INT8 ||
                             a->elem_type == GGUF_TYPE_BOOL ? 1
                     : a->elem_type == GGUF_TYPE_UINT16 || a->elem_type == GGUF_TYPE_INT16 ? 2
                     : a->elem_type == GGUF_TYPE_UINT64 || a->elem_type == GGUF_TYPE_INT64 ||
                             a->elem_type == GGUF_TYPE_FLOAT64 ? 8 : 4;
        return memcmp(a->raw, b->raw, esz * a->n) == 0;
    }
    return true;
}

static bool values_equal(const struct gguf_value *a, const struct gguf_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case GGUF_TYPE_STRING:
        return a->v.str.len == b->v.str.len && memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len) == 0;
    case GGUF_TYPE_ARRAY:
        return arrays_equal(&a->v.arr, &b->v.arr);
    case GGUF_TYPE_BOOL:
        return a->v.b == b->v.b;
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64:
        return memcmp(&a->v.f64, &b->v.f64, sizeof(double)) == 0;
    default:
        return a->v.u64 == b->v.u64;
    }
}

static struct gguf_kv make_kv(const char *key, uint32_t type)
{
    struct gguf_kv kv;
    memset(&kv, 0, sizeof kv);
    kv.key.ptr = key;
    kv.key.len = strlen(key);
    kv.value.type = type;
    return kv;
}

static int fill_calls;

/* Writes a recognisable pattern: byte i of a tensor = (i * 7 + seed) & 0xff. */
static int fill_pattern(void *ctx, void *dst, size_t size, struct err *e)
{
    (void)e;
    fill_calls++;
    size_t seed = (size_t)(uintptr_t)ctx;
    for (size_t i = 0; i < size; i++)
        ((uint8_t *)dst)[i] = (uint8_t)(i * 7 + seed);
    return 0;
}

static int fill_fail(void *ctx, void *dst, size_t size, struct err *e)
{
    (void)ctx;
    (void)dst;
    (void)size;
    return err_set(e, ERR_IO, "source went away");
}

/* A writer holding one of everything; used by the round trip and as the seed for hostile tests. */
static struct gguf_writer *build_writer(uint32_t alignment, float *f32_data, uint16_t *f16_data)
{
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    struct err e = {0};
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "test"), 0);
    assert_int_equal(gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
    assert_int_equal(gguf_writer_set_i32(w, "t.i32", -123456), 0);
    assert_int_equal(gguf_writer_set_u64(w, "t.u64", 0x123456789abcdef0ull), 0);
    assert_int_equal(gguf_writer_set_f32(w, "t.f32", 0.1f), 0);
    assert_int_equal(gguf_writer_set_bool(w, "t.bool", true), 0);
    assert_int_equal(gguf_writer_set_str(w, "t.empty", ""), 0);
    if (alignment)
        assert_int_equal(gguf_writer_set_alignment(w, alignment), 0);

    /* Scalar types without a setter go through copy_kv. */
    struct gguf_kv kv = make_kv("t.u8", GGUF_TYPE_UINT8);
    kv.value.v.u64 = 250;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv = make_kv("t.i8", GGUF_TYPE_INT8);
    kv.value.v.i64 = -100;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv = make_kv("t.u16", GGUF_TYPE_UINT16);
    kv.value.v.u64 = 65000;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv = make_kv("t.i16", GGUF_TYPE_INT16);
    kv.value.v.i64 = -32000;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv = make_kv("t.i64", GGUF_TYPE_INT64);
    kv.value.v.i64 = INT64_MIN;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv = make_kv("t.f64", GGUF_TYPE_FLOAT64);
    kv.value.v.f64 = -2.5e300;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);

    /* Scalar arrays of every type. */
    uint8_t u8s[] = {1, 2, 255};
    int8_t i8s[] = {-1, 0, 127};
    uint16_t u16s[] = {1, 65535};
    int16_t i16s[] = {-32768, 32767};
    uint32_t u32s[] = {7, 0xffffffffu, 9};
    int32_t i32s[] = {-5, 6};
    float f32s[] = {1.5f, -0.25f, 1e-30f};
    uint8_t bools[] = {1, 0, 1};
    uint64_t u64s[] = {~0ull, 42};
    int64_t i64s[] = {INT64_MIN, INT64_MAX};
    double f64s[] = {3.25, -1e-300};
    assert_int_equal(gguf_writer_set_arr(w, "a.u8", GGUF_TYPE_UINT8, u8s, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i8", GGUF_TYPE_INT8, i8s, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.u16", GGUF_TYPE_UINT16, u16s, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i16", GGUF_TYPE_INT16, i16s, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.u32", GGUF_TYPE_UINT32, u32s, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i32", GGUF_TYPE_INT32, i32s, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.f32", GGUF_TYPE_FLOAT32, f32s, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.bool", GGUF_TYPE_BOOL, bools, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.u64", GGUF_TYPE_UINT64, u64s, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i64", GGUF_TYPE_INT64, i64s, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.f64", GGUF_TYPE_FLOAT64, f64s, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.empty", GGUF_TYPE_UINT32, NULL, 0), 0);
    const char *strs[] = {"hello", "", "wörld"};
    assert_int_equal(gguf_writer_set_arr_str(w, "a.str", strs, 3), 0);
    /* Element types that are not scalars are refused by set_arr. */
    assert_int_equal(gguf_writer_set_arr(w, "a.bad", GGUF_TYPE_STRING, strs, 3), ERR_INVALID);
    assert_int_equal(gguf_writer_set_arr(w, "a.bad", 77, u8s, 3), ERR_INVALID);

    /* Nested: [[ "x", "yz" ], [ ]] of strings, and [[[1,2,3]], [[7]]] of u32 (three levels). */
    struct gguf_str xs[] = {{"x", 1}, {"yz", 2}};
    struct gguf_value inner_s[2];
    memset(inner_s, 0, sizeof inner_s);
    inner_s[0].type = GGUF_TYPE_ARRAY;
    inner_s[0].v.arr.elem_type = GGUF_TYPE_STRING;
    inner_s[0].v.arr.n = 2;
    inner_s[0].v.arr.strs = xs;
    inner_s[1].type = GGUF_TYPE_ARRAY;
    inner_s[1].v.arr.elem_type = GGUF_TYPE_UINT8;
    kv = make_kv("n.strs", GGUF_TYPE_ARRAY);
    kv.value.v.arr.elem_type = GGUF_TYPE_ARRAY;
    kv.value.v.arr.n = 2;
    kv.value.v.arr.values = inner_s;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);

    static const uint8_t ints_a[] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}, ints_b[] = {7, 0, 0, 0};
    struct gguf_value leaf[2], mid[2];
    memset(leaf, 0, sizeof leaf);
    memset(mid, 0, sizeof mid);
    for (int i = 0; i < 2; i++) {
        leaf[i].type = GGUF_TYPE_ARRAY;
        leaf[i].v.arr.elem_type = GGUF_TYPE_UINT32;
        leaf[i].v.arr.n = i ? 1 : 3;
        leaf[i].v.arr.raw = i ? ints_b : ints_a;
        mid[i].type = GGUF_TYPE_ARRAY;
        mid[i].v.arr.elem_type = GGUF_TYPE_ARRAY;
        mid[i].v.arr.n = 1;
        mid[i].v.arr.values = &leaf[i];
    }
    kv = make_kv("n.ints", GGUF_TYPE_ARRAY);
    kv.value.v.arr.elem_type = GGUF_TYPE_ARRAY;
    kv.value.v.arr.n = 2;
    kv.value.v.arr.values = mid;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);

    /* Replacing a key keeps its original position. */
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "test2"), 0);

    /* Tensors of several types: referenced data, lazily filled data. */
    for (int i = 0; i < 6 * 4; i++)
        f32_data[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 10; i++)
        f16_data[i] = f32_to_fp16((float)i);
    int64_t ne_f32[] = {6, 4};
    int64_t ne_f16[] = {10};
    int64_t ne_q8[] = {64, 3};
    int64_t ne_q4k[] = {256, 1, 2};
    int64_t ne_last[] = {8}; /* 32 bytes: the file ends exactly at this tensor's end */
    assert_int_equal(gguf_writer_add_tensor(w, "t.f32", DT_F32, 2, ne_f32, f32_data, &e), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t.f16", DT_F16, 1, ne_f16, f16_data, &e), 0);
    assert_int_equal(gguf_writer_add_tensor_fill(w, "t.q8_0", DT_Q8_0, 2, ne_q8, fill_pattern, (void *)(uintptr_t)3, &e), 0);
    assert_int_equal(gguf_writer_add_tensor_fill(w, "t.q4_k", DT_Q4_K, 3, ne_q4k, fill_pattern, (void *)(uintptr_t)5, &e), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t.last", DT_F32, 1, ne_last, f32_data, &e), 0);
    /* Bad tensors are refused up front with a message. */
    assert_int_equal(gguf_writer_add_tensor(w, "t.f32", DT_F32, 2, ne_f32, f32_data, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "added twice"));
    int64_t ne_bad[] = {33};
    assert_int_equal(gguf_writer_add_tensor(w, "t.bad", DT_Q8_0, 1, ne_bad, f32_data, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "block size"));
    assert_int_equal(gguf_writer_add_tensor(w, "t.bad", 99, 1, ne_f16, f32_data, &e), ERR_INVALID);
    assert_int_equal(gguf_writer_add_tensor(w, "t.bad", DT_F32, 5, ne_q4k, f32_data, &e), ERR_INVALID);
    return w;
}

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tu_tmpdir(), name);
    return buf;
}

static void check_written(struct gguf_file *f, uint32_t alignment, const float *f32_data, const uint16_t *f16_data)
{
    struct err e = {0};
    assert_int_equal(f->version, 3);
    assert_int_equal(f->alignment, alignment);
    assert_int_equal(f->n_tensors, 5);
    assert_int_equal(f->n_kv, alignment != 32 ? 29 : 28);
    /* Insertion order, with the replaced key still first. */
    assert_true(gguf_str_eq(f->kv[0].key, "general.architecture"));
    assert_true(gguf_str_eq(f->kv[0].value.v.str, "test2"));
    assert_true(gguf_str_eq(f->kv[1].key, "t.u32"));
    assert_true(gguf_str_eq(f->kv[f->n_kv - 1].key, "n.ints"));

    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    bool b;
    struct gguf_str s;
    assert_int_equal(gguf_get_u32(f, "t.u32", &u32, &e), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_i64(f, "t.i32", &i64, &e), 0);
    assert_int_equal(i64, -123456);
    assert_int_equal(gguf_get_u64(f, "t.u64", &u64, &e), 0);
    assert_true(u64 == 0x123456789abcdef0ull);
    assert_int_equal(gguf_get_f32(f, "t.f32", &f32, &e), 0);
    assert_true(f32 == 0.1f);
    assert_int_equal(gguf_get_bool(f, "t.bool", &b, &e), 0);
    assert_true(b);
    assert_int_equal(gguf_get_str(f, "t.empty", &s, &e), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(gguf_get_u32(f, "t.u8", &u32, &e), 0);
    assert_int_equal(u32, 250);
    assert_int_equal(gguf_get_i64(f, "t.i8", &i64, &e), 0);
    assert_int_equal(i64, -100);
    assert_int_equal(gguf_get_u32(f, "t.u16", &u32, &e), 0);
    assert_int_equal(u32, 65000);
    assert_int_equal(gguf_get_i64(f, "t.i16", &i64, &e), 0);
    assert_int_equal(i64, -32000);
    assert_int_equal(gguf_get_i64(f, "t.i64", &i64, &e), 0);
    assert_true(i64 == INT64_MIN);
    assert_true(gguf_find_kv(f, "t.f64")->value.v.f64 == -2.5e300);
    /* Integer getters convert between widths only when the value fits. */
    assert_int_equal(gguf_get_u32(f, "t.i32", &u32, &e), ERR_FORMAT);
    assert_non_null(strstr(e.msg, "t.i32"));
    assert_int_equal(gguf_get_u32(f, "t.u64", &u32, &e), ERR_FORMAT);
    assert_non_null(strstr(e.msg, "does not fit"));
    assert_int_equal(gguf_get_u64(f, "t.i64", &u64, &e), ERR_FORMAT);
    assert_int_equal(gguf_get_f32(f, "t.u16", &f32, &e), 0);
    assert_true(f32 == 65000.0f);
    assert_int_equal(gguf_get_f32(f, "t.f64", &f32, &e), ERR_FORMAT);
    assert_int_equal(gguf_get_bool(f, "t.u8", &b, &e), ERR_FORMAT);
    assert_non_null(strstr(e.msg, "UINT8"));
    assert_int_equal(gguf_get_str(f, "t.u8", &s, &e), ERR_FORMAT);
    assert_int_equal(gguf_get_u32(f, "t.f32", &u32, &e), ERR_FORMAT);

    const struct gguf_array *a;
    assert_int_equal(gguf_get_arr(f, "a.u8", GGUF_TYPE_UINT8, &a, &e), 0);
    assert_int_equal(a->n, 3);
    assert_int_equal(gguf_arr_u32(a, 2), 255);
    assert_int_equal(gguf_get_arr(f, "a.i8", GGUF_TYPE_INT8, &a, &e), 0);
    assert_int_equal(gguf_arr_i32(a, 0), -1);
    assert_int_equal(gguf_arr_i32(a, 2), 127);
    assert_int_equal(gguf_get_arr(f, "a.u16", GGUF_TYPE_UINT16, &a, &e), 0);
    assert_int_equal(gguf_arr_u32(a, 1), 65535);
    assert_int_equal(gguf_get_arr(f, "a.i16", GGUF_TYPE_INT16, &a, &e), 0);
    assert_int_equal(gguf_arr_i32(a, 0), -32768);
    assert_int_equal(gguf_get_arr(f, "a.u32", GGUF_TYPE_UINT32, &a, &e), 0);
    assert_int_equal(gguf_arr_u32(a, 1), 0xffffffffu);
    assert_int_equal(gguf_arr_u32(a, 2), 9);
    assert_int_equal(gguf_get_arr(f, "a.i32", GGUF_TYPE_INT32, &a, &e), 0);
    assert_int_equal(gguf_arr_i32(a, 0), -5);
    assert_int_equal(gguf_get_arr(f, "a.f32", GGUF_TYPE_FLOAT32, &a, &e), 0);
    assert_true(gguf_arr_f32(a, 1) == -0.25f);
    assert_true(gguf_arr_f32(a, 2) == 1e-30f);
    assert_int_equal(gguf_get_arr(f, "a.bool", GGUF_TYPE_BOOL, &a, &e), 0);
    assert_int_equal(a->raw[0], 1);
    assert_int_equal(a->raw[1], 0);
    assert_int_equal(gguf_get_arr(f, "a.u64", GGUF_TYPE_UINT64, &a, &e), 0);
    assert_int_equal(a->n, 2);
    assert_int_equal(gguf_arr_u32(a, 1), 42);
    assert_int_equal(gguf_get_arr(f, "a.i64", GGUF_TYPE_INT64, &a, &e), 0);
    assert_int_equal(a->n, 2);
    assert_int_equal(gguf_get_arr(f, "a.f64", GGUF_TYPE_FLOAT64, &a, &e), 0);
    assert_true(gguf_arr_f32(a, 0) == 3.25f);
    assert_int_equal(gguf_get_arr(f, "a.empty", GGUF_TYPE_UINT32, &a, &e), 0);
    assert_int_equal(a->n, 0);
    assert_int_equal(gguf_get_arr(f, "a.str", GGUF_TYPE_STRING, &a, &e), 0);
    assert_int_equal(a->n, 3);
    assert_true(arr_str_eq(a, 0, "hello"));
    assert_true(arr_str_eq(a, 1, ""));
    assert_true(arr_str_eq(a, 2, "wörld"));
    assert_null(gguf_find_kv(f, "a.bad"));

    assert_int_equal(gguf_get_arr(f, "n.strs", GGUF_TYPE_ARRAY, &a, &e), 0);
    assert_int_equal(a->n, 2);
    assert_int_equal(a->values[0].v.arr.elem_type, GGUF_TYPE_STRING);
    assert_true(arr_str_eq(&a->values[0].v.arr, 1, "yz"));
    assert_int_equal(a->values[1].v.arr.n, 0);
    assert_int_equal(gguf_get_arr(f, "n.ints", GGUF_TYPE_ARRAY, &a, &e), 0);
    assert_int_equal(a->n, 2);
    const struct gguf_array *leaf = &a->values[0].v.arr.values[0].v.arr;
    assert_int_equal(leaf->n, 3);
    assert_int_equal(gguf_arr_u32(leaf, 2), 3);
    assert_int_equal(gguf_arr_u32(&a->values[1].v.arr.values[0].v.arr, 0), 7);

    assert_tensors_in_file(f, f->map.size);
    const struct gguf_tensor *t = gguf_find_tensor(f, "t.f32");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[1], 4);
    assert_memory_equal(t->data, f32_data, 6 * 4 * sizeof(float));
    t = gguf_find_tensor(f, "t.f16");
    assert_memory_equal(t->data, f16_data, 10 * 2);
    t = gguf_find_tensor(f, "t.q8_0");
    assert_int_equal(t->size, 3 * 2 * 34);
    for (size_t i = 0; i < t->size; i++)
        assert_int_equal(((const uint8_t *)t->data)[i], (uint8_t)(i * 7 + 3));
    t = gguf_find_tensor(f, "t.q4_k");
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[2], 2);
    assert_int_equal(t->size, 2 * 144);
    assert_int_equal(((const uint8_t *)t->data)[100], (uint8_t)(100 * 7 + 5));
    t = gguf_find_tensor(f, "t.last");
    /* Every tensor is padded to the alignment, the last one included. */
    uint64_t end = t->offset + t->size;
    assert_int_equal(f->data_offset + (end + alignment - 1) / alignment * alignment, f->map.size);
}

static void test_writer_roundtrip(void **state)
{
    (void)state;
    uint32_t aligns[] = {0, 64, 1};
    for (size_t k = 0; k < 3; k++) {
        float f32_data[24];
        uint16_t f16_data[10];
        struct gguf_writer *w = build_writer(aligns[k], f32_data, f16_data);
        const char *path = tmp_path("roundtrip.gguf");
        struct err e = {0};
        fill_calls = 0;
        if (gguf_writer_write(w, path, &e) != 0)
            fail_msg("%s", e.msg);
        assert_int_equal(fill_calls, 2); /* once per filled tensor */
        gguf_writer_free(w);
        struct gguf_file *f = open_ok(path);
        check_written(f, aligns[k] ? aligns[k] : 32, f32_data, f16_data);
        gguf_close(f);
    }
}

/* Copying every key and tensor of a real model gives a file that reads back identical. */
static void test_writer_copies_model(void **state)
{
    (void)state;
    const char *path = tu_shared("models/stories260K.gguf");
    TU_REQUIRE(path);
    struct gguf_file *src = open_ok(path);
    struct gguf_writer *w = gguf_writer_new();
    struct err e = {0};
    for (uint64_t i = 0; i < src->n_kv; i++)
        assert_int_equal(gguf_writer_copy_kv(w, &src->kv[i]), 0);
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        const struct gguf_tensor *t = &src->tensors[i];
        assert_int_equal(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e), 0);
    }
    const char *out = tmp_path("copy.gguf");
    if (gguf_writer_write(w, out, &e) != 0)
        fail_msg("%s", e.msg);
    gguf_writer_free(w);
    /* Same layout rules as llama.cpp's writer, so the bytes match exactly. */
    size_t n1, n2;
    char *a = tu_read(path, &n1), *b = tu_read(out, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a);
    free(b);
    struct gguf_file *dst = open_ok(out);
    assert_int_equal(dst->n_kv, src->n_kv);
    for (uint64_t i = 0; i < src->n_kv; i++) {
        assert_int_equal(dst->kv[i].key.len, src->kv[i].key.len);
        assert_memory_equal(dst->kv[i].key.ptr, src->kv[i].key.ptr, src->kv[i].key.len);
        assert_true(values_equal(&dst->kv[i].value, &src->kv[i].value));
    }
    gguf_close(dst);
    gguf_close(src);
}

static void test_writer_errors(void **state)
{
    (void)state;
    struct gguf_writer *w = gguf_writer_new();
    struct err e = {0};
    assert_int_equal(gguf_writer_set_alignment(w, 0), ERR_INVALID);
    assert_int_equal(gguf_writer_set_alignment(w, 48), ERR_INVALID);
    assert_int_equal(gguf_writer_set_u32(w, "", 1), ERR_INVALID);
    /* An alignment key of the wrong kind is caught at write time. */
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 12), 0);
    assert_int_equal(gguf_writer_write(w, tmp_path("bad-align.gguf"), &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "general.alignment"));
    assert_int_equal(gguf_writer_set_alignment(w, 16), 0);
    /* A failing fill aborts the write and leaves nothing behind. */
    int64_t ne[] = {4};
    assert_int_equal(gguf_writer_add_tensor_fill(w, "x", DT_F32, 1, ne, fill_fail, NULL, &e), 0);
    const char *path = tmp_path("fail.gguf");
    assert_int_equal(gguf_writer_write(w, path, &e), ERR_IO);
    assert_non_null(strstr(e.msg, "tensor 'x'"));
    assert_non_null(strstr(e.msg, "source went away"));
    FILE *fp = fopen(path, "rb");
    assert_null(fp);
    gguf_writer_free(w);

    struct gguf_file *f = NULL;
    assert_int_equal(gguf_open(tmp_path("does-not-exist.gguf"), &f, &e), ERR_IO);
    assert_null(f);
    assert_non_null(strstr(e.msg, "does-not-exist.gguf"));
}

/* ---- hostile inputs ---- */

static volatile float float_sink;

/* Touches every byte the parsed structure points at, so ASan flags anything outside the image. */
static unsigned walk_value(const struct gguf_value *v)
{
    unsigned sum = 0;
    if (v->type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < v->v.str.len; i++)
            sum += (uint8_t)v->v.str.ptr[i];
    } else if (v->type == GGUF_TYPE_ARRAY) {
        const struct gguf_array *a = &v->v.arr;
        if (a->elem_type == GGUF_TYPE_STRING) {
            for (uint64_t i = 0; i < a->n; i++)
                for (uint64_t j = 0; j < a->strs[i].len; j++)
                    sum += (uint8_t)a->strs[i].ptr[j];
        } else if (a->elem_type == GGUF_TYPE_ARRAY) {
            for (uint64_t i = 0; i < a->n; i++)
                sum += walk_value(&a->values[i]);
        } else {
            for (uint64_t i = 0; i < a->n; i++) {
                float_sink += gguf_arr_f32(a, i);
                sum += gguf_arr_u32(a, i);
            }
        }
    }
    return sum;
}

static int parse_copy(const uint8_t *data, size_t size, struct err *e)
{
    uint8_t *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size)
        memcpy(copy, data, size);
    struct gguf_file *f = NULL;
    err_clear(e);
    int rc = gguf_parse(copy, size, "mem.gguf", &f, e);
    if (rc == 0) {
        unsigned sum = 0;
        for (uint64_t i = 0; i < f->n_kv; i++) {
            sum += walk_value(&f->kv[i].value);
            char *key = gguf_str_dup(f->kv[i].key);
            assert_ptr_equal(gguf_find_kv(f, key), &f->kv[i]);
            free(key);
        }
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const uint8_t *p = f->tensors[i].data;
            for (size_t j = 0; j < f->tensors[i].size; j++)
                sum += p[j];
            assert_ptr_equal(gguf_find_tensor(f, f->tensors[i].name), &f->tensors[i]);
        }
        (void)sum;
        gguf_close(f);
    } else {
        assert_null(f);
        assert_int_equal(rc, e->code);
        assert_true(strncmp(e->msg, "mem.gguf: ", 10) == 0);
        assert_true(strlen(e->msg) > 12);
    }
    free(copy);
    return rc;
}

/* Writes the round-trip file and reads it back into memory. */
static uint8_t *small_file(size_t *size)
{
    float f32_data[24];
    uint16_t f16_data[10];
    struct gguf_writer *w = build_writer(0, f32_data, f16_data);
    struct err e = {0};
    const char *path = tmp_path("small.gguf");
    if (gguf_writer_write(w, path, &e) != 0)
        fail_msg("%s", e.msg);
    gguf_writer_free(w);
    return (uint8_t *)tu_read(path, size);
}

static void test_every_truncation(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = small_file(&size);
    struct err e;
    assert_int_equal(parse_copy(data, size, &e), 0);
    for (size_t n = 0; n < size; n++) {
        int rc = parse_copy(data, n, &e);
        if (rc != ERR_FORMAT)
            fail_msg("truncation to %zu of %zu bytes: rc %d (%s)", n, size, rc, e.msg);
    }
    free(data);
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: deterministic, so a failure reproduces. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void flip_test(uint8_t *data, size_t size, size_t region, int rounds, uint64_t seed, int *n_ok)
{
    uint64_t s = seed;
    struct err e;
    for (int r = 0; r < rounds; r++) {
        size_t pos[4];
        uint8_t old[4];
        int k = 1 + (int)(rng_next(&s) % 4);
        for (int j = 0; j < k; j++) {
            pos[j] = (size_t)(rng_next(&s) % region);
            old[j] = data[pos[j]];
            /* Half the time a single-bit flip, else a random byte (often 0x00 or 0xff extremes). */
            uint64_t x = rng_next(&s);
            data[pos[j]] = (x & 1) ? (uint8_t)(old[j] ^ (1u << ((x >> 1) % 8))) : (uint8_t)(x >> 8);
        }
        int rc = parse_copy(data, size, &e);
        if (rc == 0)
            (*n_ok)++;
        else if (rc != ERR_FORMAT)
            fail_msg("round %d: rc %d (%s)", r, rc, e.msg);
        for (int j = k - 1; j >= 0; j--)
            data[pos[j]] = old[j];
    }
}

static void test_random_flips(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = small_file(&size);
    int ok = 0;
    flip_test(data, size, size, 4000, 0x9e3779b97f4a7c15ull, &ok);
    /* Flips in tensor data and in string bytes parse fine; most header flips do not. */
    assert_true(ok > 0 && ok < 4000);
    free(data);

    const char *path = tu_shared("models/stories260K.gguf");
    if (path) {
        uint8_t *model = (uint8_t *)tu_read(path, &size);
        ok = 0;
        flip_test(model, size, 14176, 300, 12345, &ok); /* header and metadata only */
        free(model);
    }
}

/* A tiny byte builder for hand-made headers. */
struct bb {
    uint8_t d[8192];
    size_t n;
};

static void bb_u32(struct bb *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b->d[b->n++] = (uint8_t)(v >> (8 * i));
}

static void bb_u64(struct bb *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b->d[b->n++] = (uint8_t)(v >> (8 * i));
}

static void bb_str(struct bb *b, const char *s)
{
    size_t n = strlen(s);
    bb_u64(b, n);
    memcpy(b->d + b->n, s, n);
    b->n += n;
}

static void bb_header(struct bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b->n = 0;
    memcpy(b->d, "GGUF", 4);
    b->n = 4;
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void bb_kv_u32(struct bb *b, const char *key, uint32_t v)
{
    bb_str(b, key);
    bb_u32(b, GGUF_TYPE_UINT32);
    bb_u32(b, v);
}

static void bb_tensor(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset)
{
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

/* Pads to 32 and appends n zero bytes of tensor data. */
static void bb_data(struct bb *b, size_t n)
{
    while (b->n % 32)
        b->d[b->n++] = 0;
    memset(b->d + b->n, 0, n);
    b->n += n;
}

static void expect_fail(const struct bb *b, const char *needle1, const char *needle2)
{
    struct err e;
    int rc = parse_copy(b->d, b->n, &e);
    if (rc != ERR_FORMAT)
        fail_msg("expected ERR_FORMAT containing '%s', got rc %d (%s)", needle1, rc, e.msg);
    if (!strstr(e.msg, needle1) || (needle2 && !strstr(e.msg, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", e.msg, needle1, needle2 ? needle2 : "");
}

/* One F32 tensor "w" of ne elements at offset, with data bytes appended. */
static void one_tensor_file(struct bb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset,
                            size_t data_bytes)
{
    bb_header(b, 3, 1, 0);
    bb_tensor(b, "blk.3.attn_q.weight", n_dims, ne, type, offset);
    bb_data(b, data_bytes);
}

static void test_crafted_headers(void **state)
{
    (void)state;
    struct bb b;
    struct err e;

    /* A well-formed v2 file with one key and one tensor parses (v2 and v3 share a layout). */
    bb_header(&b, 2, 1, 1);
    bb_kv_u32(&b, "general.x", 5);
    uint64_t ne4[] = {4};
    bb_tensor(&b, "w", 1, ne4, DT_F32, 0);
    bb_data(&b, 16);
    assert_int_equal(parse_copy(b.d, b.n, &e), 0);

    b.n = 0;
    expect_fail(&b, "not a GGUF file", "0 bytes");
    bb_header(&b, 3, 0, 0);
    b.d[3] = 'X';
    expect_fail(&b, "bad magic", NULL);
    bb_header(&b, 1, 0, 0);
    expect_fail(&b, "version 1 is not supported", NULL);
    bb_header(&b, 99, 0, 0);
    expect_fail(&b, "unsupported GGUF version 99", NULL);
    bb_header(&b, 0x03000000, 0, 0);
    expect_fail(&b, "big-endian", NULL);
    bb_header(&b, 3, 0, 0);
    b.n -= 3;
    expect_fail(&b, "truncated", "metadata count");

    /* Counts bounded by the bytes that are left. */
    bb_header(&b, 3, 0, 1ull << 60);
    expect_fail(&b, "metadata count 1152921504606846976 is impossible", NULL);
    bb_header(&b, 3, ~0ull, 0);
    expect_fail(&b, "tensor count 18446744073709551615 is impossible", NULL);
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "k", 1);
    b.n += 20; /* 37 bytes left: room for the key or the tensor alone, not both */
    memset(b.d + b.n - 20, 0, 20);
    expect_fail(&b, "cannot fit", NULL);

    /* String lengths. */
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1000);
    memcpy(b.d + b.n, "general.ab", 10);
    b.n += 10;
    expect_fail(&b, "key length 1000", "exceeds the 10 bytes left");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, ~0ull);
    bb_u32(&b, 0);
    expect_fail(&b, "key 'general.name'", "string length 18446744073709551615");

    /* Arrays. */
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "tokenizer.ggml.scores");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_UINT8);
    bb_u64(&b, 1ull << 62);
    bb_u64(&b, 0);
    expect_fail(&b, "key 'tokenizer.ggml.scores'", "array length 4611686018427387904 is impossible");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "tokenizer.ggml.tokens");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 1ull << 62);
    expect_fail(&b, "tokenizer.ggml.tokens", "string array length");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, 42);
    bb_u64(&b, 1);
    bb_u64(&b, 0);
    expect_fail(&b, "unknown array element type 42", NULL);
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "deep");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < 20; i++) {
        bb_u32(&b, GGUF_TYPE_ARRAY);
        bb_u64(&b, 1);
    }
    bb_u32(&b, GGUF_TYPE_UINT8);
    bb_u64(&b, 0);
    expect_fail(&b, "key 'deep'", "nested deeper than");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "flags");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_BOOL);
    bb_u64(&b, 2);
    b.d[b.n++] = 1;
    b.d[b.n++] = 7;
    expect_fail(&b, "bool element 1 has value 7", NULL);

    /* Keys. */
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "general.x", 1);
    bb_kv_u32(&b, "general.x", 2);
    expect_fail(&b, "key 'general.x'", "duplicate key");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "");
    bb_u32(&b, GGUF_TYPE_UINT32);
    bb_u32(&b, 0);
    expect_fail(&b, "metadata entry #0", "empty key");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.odd");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    expect_fail(&b, "key 'general.odd'", "unknown value type 13");

    /* Alignment. */
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 0);
    expect_fail(&b, "general.alignment", "alignment 0 is not a nonzero power of two");
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 3);
    expect_fail(&b, "general.alignment", "alignment 3 is not a nonzero power of two");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_str(&b, "32");
    expect_fail(&b, "general.alignment", "integer");

    /* Tensor infos. */
    uint64_t ne_over[] = {1ull << 32, 1ull << 32};
    one_tensor_file(&b, 2, ne_over, DT_F32, 0, 32);
    expect_fail(&b, "tensor 'blk.3.attn_q.weight'", "overflows");
    uint64_t ne_big[] = {1ull << 62, 2};
    one_tensor_file(&b, 2, ne_big, DT_F32, 0, 32);
    expect_fail(&b, "tensor 'blk.3.attn_q.weight'", "overflow");
    uint64_t ne_q[] = {1ull << 62};
    one_tensor_file(&b, 1, ne_q, DT_F64, 0, 32); /* elements fit int64, bytes do not fit */
    expect_fail(&b, "tensor 'blk.3.attn_q.weight'", "overflows");
    uint64_t ne_zero[] = {4, 0};
    one_tensor_file(&b, 2, ne_zero, DT_F32, 0, 32);
    expect_fail(&b, "tensor 'blk.3.attn_q.weight'", "dimension 1 is 0");
    uint64_t ne_ok[] = {8, 1, 1, 1, 1};
    one_tensor_file(&b, 5, ne_ok, DT_F32, 0, 32);
    expect_fail(&b, "tensor 'blk.3.attn_q.weight'", "n_dims 5 is outside 1..4");
    one_tensor_file(&b, 0, ne_ok, DT_F32, 0, 32);
    expect_fail(&b, "n_dims 0", NULL);
    one_tensor_file(&b, 1, ne_ok, 99, 0, 32);
    expect_fail(&b, "tensor 'blk.3.attn_q.weight'", "unknown tensor type id 99");
    one_tensor_file(&b, 1, ne_ok, 4, 0, 32); /* 4 and 5 are retired Q4_2/Q4_3 ids */
    expect_fail(&b, "unknown tensor type id 4", NULL);
    one_tensor_file(&b, 1, ne_ok, DT_Q8_0, 0, 64);
    expect_fail(&b, "row length 8 is not a multiple of the Q8_0 block size 32", NULL);
    one_tensor_file(&b, 1, ne_ok, DT_F32, 3, 64);
    expect_fail(&b, "tensor 'blk.3.attn_q.weight'", "offset 3 is not a multiple of the alignment 32");
    one_tensor_file(&b, 1, ne_ok, DT_F32, 1024, 32);
    expect_fail(&b, "tensor 'blk.3.attn_q.weight': data [offset 1024, 32 bytes] extends past end of file", NULL);
    one_tensor_file(&b, 1, ne_ok, DT_F32, 0, 31);
    expect_fail(&b, "data [offset 0, 32 bytes] extends past end of file", NULL);
    one_tensor_file(&b, 1, ne_ok, DT_F32, 0, 32);
    assert_int_equal(parse_copy(b.d, b.n, &e), 0);

    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "w", 1, ne4, DT_F32, 0);
    bb_tensor(&b, "w", 1, ne4, DT_F32, 32);
    bb_data(&b, 64);
    expect_fail(&b, "tensor 'w'", "duplicate tensor name");
    bb_header(&b, 3, 1, 0);
    bb_tensor(&b, "", 1, ne4, DT_F32, 0);
    bb_data(&b, 32);
    expect_fail(&b, "tensor #0", "empty tensor name");

    /* A custom alignment is honoured for offsets and for the data section's start. */
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 256);
    bb_tensor(&b, "w", 1, ne4, DT_F32, 32);
    bb_data(&b, 512);
    expect_fail(&b, "offset 32 is not a multiple of the alignment 256", NULL);
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 256);
    bb_tensor(&b, "w", 1, ne4, DT_F32, 0);
    bb_data(&b, 16); /* ends before the 256-aligned data section begins */
    expect_fail(&b, "data section would start at offset 256", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_llama2_tiny_random),
        cmocka_unit_test(test_tiny_models),
        cmocka_unit_test(test_vocab_ggufs),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_writer_copies_model),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_random_flips),
        cmocka_unit_test(test_crafted_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
