/* test_import.c — safetensors import against Hugging Face transformers: from each tiny reference
 * model of ../shared/reference/tiny-models the test writes a Hugging Face checkpoint (HF tensor
 * names, llama's Q/K rows back in rotate-half order, the reference config.json, a tokenizer.json
 * made of the GGUF vocabulary with the real tokenizer's pre-tokenizer and special-token flags, the
 * real tokenizer_config.json), imports it, and requires the reference GGUF's metadata and the HF
 * logits (2e-5). MLX checkpoints (affine 4- and 8-bit groups) are imported and checked against the
 * same logits within a quantization bound; a checkpoint with Mistral 7B v0.1's SentencePiece-style
 * tokenizer.json must encode like that file; malformed safetensors must fail naming file and tensor. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "store/safetensors.h"
#include "store/store.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

/* ---- writing safetensors ---- */

struct st_in {
    char name[128];
    const char *dtype;
    int n_dims;
    int64_t shape[2];
    void *data; /* owned */
    size_t size;
};

static void write_safetensors(const char *path, struct st_in *t, size_t n)
{
    json_t *h = json_object();
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object(), *sh = json_array();
        for (int d = 0; d < t[i].n_dims; d++)
            json_array_append_new(sh, json_integer(t[i].shape[d]));
        json_object_set_new(o, "dtype", json_string(t[i].dtype));
        json_object_set_new(o, "shape", sh);
        json_object_set_new(o, "data_offsets", json_pack("[I, I]", (json_int_t)off, (json_int_t)(off + t[i].size)));
        json_object_set_new(h, t[i].name, o);
        off += t[i].size;
    }
    char *text = json_dumps(h, JSON_COMPACT);
    size_t hl = strlen(text);
    size_t padded = (hl + 7) / 8 * 8; /* as the reference writer pads with spaces */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t le = padded;
    fwrite(&le, 8, 1, f);
    fwrite(text, 1, hl, f);
    for (size_t i = hl; i < padded; i++)
        fputc(' ', f);
    for (size_t i = 0; i < n; i++)
        fwrite(t[i].data, 1, t[i].size, f);
    fclose(f);
    free(text);
    json_decref(h);
}

/* ---- building a checkpoint from a reference GGUF ---- */

enum mode { MODE_F32, MODE_MLX4, MODE_MLX8 };

static const struct {
    const char *gguf, *hf;
} names[] = {
    {"attn_norm.weight", "input_layernorm.weight"},      {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},        {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},        {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},            {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},            {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},   {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},             {"ffn_down.weight", "mlp.down_proj.weight"},
};

static void hf_name(const char *g, char *out, size_t cap)
{
    if (!strcmp(g, "token_embd.weight"))
        snprintf(out, cap, "model.embed_tokens.weight");
    else if (!strcmp(g, "output_norm.weight"))
        snprintf(out, cap, "model.norm.weight");
    else if (!strcmp(g, "output.weight"))
        snprintf(out, cap, "lm_head.weight");
    else {
        unsigned l;
        int used = 0;
        assert_int_equal(sscanf(g, "blk.%u.%n", &l, &used), 1);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(g + used, names[i].gguf)) {
                snprintf(out, cap, "model.layers.%u.%s", l, names[i].hf);
                return;
            }
        fail_msg("no HF name for %s", g);
    }
}

/* MLX's affine quantizer: per group of gs, scale = (max - min) / (2^bits - 1), bias = min, both
 * stored as F16; q = round((w - bias) / scale). */
static void mlx_quantize(const float *w, int64_t rows, int64_t cols, int bits, int gs, struct st_in *wq,
                         struct st_in *sc, struct st_in *bi)
{
    int64_t ng = cols / gs, per = 32 / bits;
    uint32_t *q = calloc((size_t)(rows * cols / per), 4);
    uint16_t *s = malloc((size_t)(rows * ng) * 2), *b = malloc((size_t)(rows * ng) * 2);
    float qmax = (float)((1 << bits) - 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < ng; g++) {
            const float *x = w + r * cols + g * gs;
            float mn = x[0], mx = x[0];
            for (int i = 1; i < gs; i++)
                mn = fminf(mn, x[i]), mx = fmaxf(mx, x[i]);
            uint16_t sh = f32_to_fp16((mx - mn) / qmax), bh = f32_to_fp16(mn);
            s[r * ng + g] = sh;
            b[r * ng + g] = bh;
            float sf = fp16_to_f32(sh), bf = fp16_to_f32(bh);
            for (int i = 0; i < gs; i++) {
                float v = sf > 0 ? roundf((x[i] - bf) / sf) : 0;
                uint32_t qi = (uint32_t)fminf(fmaxf(v, 0), qmax);
                int64_t c = g * gs + i;
                q[(r * cols + c) / per] |= qi << ((c % per) * bits);
            }
        }
    *wq = (struct st_in){.dtype = "U32", .n_dims = 2, .shape = {rows, cols / per}, .data = q,
                         .size = (size_t)(rows * cols / per) * 4};
    *sc = (struct st_in){.dtype = "F16", .n_dims = 2, .shape = {rows, ng}, .data = s, .size = (size_t)(rows * ng) * 2};
    *bi = (struct st_in){.dtype = "F16", .n_dims = 2, .shape = {rows, ng}, .data = b, .size = (size_t)(rows * ng) * 2};
}

static const char *tok_source(const char *arch)
{
    return !strcmp(arch, "llama") ? "llama-3" : !strcmp(arch, "qwen2") ? "qwen2.5" : "qwen3";
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* tokenizer.json from the GGUF vocabulary, with the real tokenizer's pre-tokenizer, decoder and
 * special flags (the way the reference's trimmed tokenizers were made). */
static void write_tokenizer(const struct gguf_file *g, const char *arch, const char *dir, const char *real_path)
{
    json_error_t je;
    json_t *real = json_load_file(real_path, 0, &je);
    assert_non_null(real);
    struct err e = {0};
    const struct gguf_array *toks, *types, *merges;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, &e), 0);
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types, &e), 0);
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges, &e), 0);
    json_t *vocab = json_object(), *added = json_array(), *mj = json_array();
    for (uint64_t i = 0; i < toks->n; i++) {
        char *s = gguf_str_dup(toks->strs[i]);
        int32_t ty = gguf_arr_i32(types, i);
        if (ty == 1) {
            json_object_set_new(vocab, s, json_integer((json_int_t)i));
        } else if (ty == 3 || ty == 4) {
            bool special = true;
            size_t k;
            json_t *at;
            json_array_foreach(json_object_get(real, "added_tokens"), k, at) if (
                !strcmp(json_string_value(json_object_get(at, "content")), s)) special =
                json_is_true(json_object_get(at, "special"));
            json_array_append_new(added, json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)i,
                                                   "content", s, "single_word", 0, "lstrip", 0, "rstrip", 0,
                                                   "normalized", 0, "special", special));
        }
        free(s);
    }
    /* llama: merges as "a b" strings; qwen: as ["a", "b"] pairs (both forms exist in the wild). */
    bool pairs = strcmp(arch, "llama") != 0;
    for (uint64_t i = 0; i < merges->n; i++) {
        char *m = gguf_str_dup(merges->strs[i]);
        char *sp = strchr(m, ' ');
        assert_non_null(sp);
        if (pairs) {
            *sp = '\0';
            json_array_append_new(mj, json_pack("[s, s]", m, sp + 1));
        } else {
            json_array_append_new(mj, json_string(m));
        }
        free(m);
    }
    json_t *model = json_pack("{s:s, s:o, s:o, s:b, s:b}", "type", "BPE", "vocab", vocab, "merges", mj,
                              "ignore_merges", 0, "byte_fallback", 0);
    json_t *post = json_object_get(real, "post_processor");
    json_t *pp = !strcmp(arch, "llama")
                     ? json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}]}", "type", "TemplateProcessing", "single",
                                 "SpecialToken", "id", "<|begin_of_text|>", "type_id", 0, "Sequence", "id", "A",
                                 "type_id", 0)
                     : json_incref(post);
    json_t *tj = json_pack("{s:s, s:o, s:O, s:o, s:O, s:o}", "version", "1.0", "added_tokens", added, "pre_tokenizer",
                           json_object_get(real, "pre_tokenizer"), "post_processor", pp, "decoder",
                           json_object_get(real, "decoder"), "model", model);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(tj, path, JSON_COMPACT), 0);
    json_decref(tj);
    json_decref(real);
}

/* Writes dir as a Hugging Face (or MLX) checkpoint of arch; shards > 1 splits the weights. */
static void build_checkpoint(const char *arch, enum mode mode, int bits, int gs, int shards, const char *dir)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-f32.gguf", arch);
    const char *gp = tu_shared(rel);
    snprintf(path, sizeof path, "%s", gp);
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev.json", arch);
    const char *jp = tu_shared(rel);
    snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", tok_source(arch));
    const char *real_tok = tu_testdata(rel);
    TU_REQUIRE(gp);
    TU_REQUIRE(jp);
    TU_REQUIRE(real_tok);
    char real_tok_path[4096];
    snprintf(real_tok_path, sizeof real_tok_path, "%s", real_tok);
    mkdir(dir, 0755);

    json_error_t je;
    json_t *ref = json_load_file(jp, 0, &je);
    assert_non_null(ref);
    json_t *cfg = json_deep_copy(json_object_get(ref, "config"));
    if (mode != MODE_F32)
        json_object_set_new(cfg, "quantization", json_pack("{s:i, s:i}", "group_size", gs, "bits", bits));
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(json_dump_file(cfg, path, JSON_INDENT(2)), 0);
    json_t *c = json_object_get(ref, "config");
    int64_t n_head = json_integer_value(json_object_get(c, "num_attention_heads"));
    int64_t n_kv = json_integer_value(json_object_get(c, "num_key_value_heads"));

    struct gguf_file *g = NULL;
    struct err e = {0};
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-f32.gguf", arch);
    snprintf(path, sizeof path, "%s", tu_shared(rel));
    assert_int_equal(gguf_open(path, &g, &e), 0);

    struct st_in *t = calloc(g->n_tensors * 3, sizeof *t);
    size_t n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *gt = &g->tensors[i];
        if (!strcmp(gt->name, "rope_freqs.weight"))
            continue; /* HF has no such tensor: the importer derives it from rope_parameters */
        assert_int_equal(gt->type, DT_F32);
        int64_t cols = gt->ne[0], rows = gt->n_dims == 2 ? gt->ne[1] : 1;
        float *w = malloc(gt->size);
        /* llama: GGUF's interleaved pairs back to HF's rotate-half rows. */
        int heads = !strcmp(arch, "llama") ? (strstr(gt->name, "attn_q.") ? (int)n_head
                                               : strstr(gt->name, "attn_k.") ? (int)n_kv : 0)
                                           : 0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t dst = r;
            if (heads) {
                int64_t hd = rows / heads, h = r / hd, rem = r % hd;
                dst = h * hd + (rem % 2) * (hd / 2) + rem / 2;
            }
            memcpy(w + dst * cols, (const float *)gt->data + r * cols, (size_t)cols * 4);
        }
        char hn[128];
        hf_name(gt->name, hn, sizeof hn);
        if (mode != MODE_F32 && gt->n_dims == 2) {
            mlx_quantize(w, rows, cols, bits, gs, &t[n], &t[n + 1], &t[n + 2]);
            size_t base = strlen(hn) - strlen(".weight");
            snprintf(t[n].name, sizeof t[n].name, "%s", hn);
            snprintf(t[n + 1].name, sizeof t[n + 1].name, "%.*s.scales", (int)base, hn);
            snprintf(t[n + 2].name, sizeof t[n + 2].name, "%.*s.biases", (int)base, hn);
            n += 3;
            free(w);
            continue;
        }
        t[n] = (struct st_in){.dtype = "F32", .n_dims = (int)gt->n_dims, .data = w, .size = gt->size};
        snprintf(t[n].name, sizeof t[n].name, "%s", hn);
        t[n].shape[0] = gt->n_dims == 2 ? rows : cols;
        t[n].shape[1] = cols;
        n++;
    }
    if (shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_safetensors(path, t, n);
    } else {
        json_t *wm = json_object();
        size_t per = (n + (size_t)shards - 1) / (size_t)shards;
        for (int s = 0; s < shards; s++) {
            size_t lo = (size_t)s * per, hi = lo + per < n ? lo + per : n;
            char fname[64];
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, shards);
            snprintf(path, sizeof path, "%s/%s", dir, fname);
            write_safetensors(path, t + lo, hi - lo);
            for (size_t k = lo; k < hi; k++)
                json_object_set_new(wm, t[k].name, json_string(fname));
        }
        json_t *idx = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", wm);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        assert_int_equal(json_dump_file(idx, path, JSON_INDENT(2)), 0);
        json_decref(idx);
    }
    for (size_t i = 0; i < n; i++)
        free(t[i].data);
    free(t);

    write_tokenizer(g, arch, dir, real_tok_path);
    snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer_config.json", tok_source(arch));
    char *tc = tu_read(tu_shared(rel), NULL);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_text(path, tc);
    free(tc);
    gguf_close(g);
    json_decref(cfg);
    json_decref(ref);
}

/* ---- checks ---- */

static bool value_equal(const struct gguf_value *a, const struct gguf_value *b)
{
    if (a->type == GGUF_TYPE_STRING || b->type == GGUF_TYPE_STRING)
        return a->type == b->type && a->v.str.len == b->v.str.len &&
               memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len) == 0;
    if (a->type == GGUF_TYPE_ARRAY || b->type == GGUF_TYPE_ARRAY) {
        const struct gguf_array *x = &a->v.arr, *y = &b->v.arr;
        if (a->type != b->type || x->elem_type != y->elem_type || x->n != y->n)
            return false;
        for (uint64_t i = 0; i < x->n; i++) {
            if (x->elem_type == GGUF_TYPE_STRING) {
                if (x->strs[i].len != y->strs[i].len || memcmp(x->strs[i].ptr, y->strs[i].ptr, x->strs[i].len))
                    return false;
            } else if (gguf_arr_u32(x, i) != gguf_arr_u32(y, i)) {
                return false;
            }
        }
        return true;
    }
    if (a->type == GGUF_TYPE_FLOAT32 || a->type == GGUF_TYPE_FLOAT64)
        return (b->type == GGUF_TYPE_FLOAT32 || b->type == GGUF_TYPE_FLOAT64) && (float)a->v.f64 == (float)b->v.f64;
    if (a->type == GGUF_TYPE_BOOL)
        return b->type == GGUF_TYPE_BOOL && a->v.b == b->v.b;
    return b->type != GGUF_TYPE_BOOL && b->type != GGUF_TYPE_FLOAT32 && a->v.u64 == b->v.u64;
}

/* Every model and tokenizer key of the converter's GGUF must be in ours with the same value. */
static void check_metadata(const char *arch, const struct gguf_file *got)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-f32.gguf", arch);
    snprintf(path, sizeof path, "%s", tu_shared(rel));
    struct gguf_file *want = NULL;
    struct err e = {0};
    assert_int_equal(gguf_open(path, &want, &e), 0);
    for (uint64_t i = 0; i < want->n_kv; i++) {
        char *key = gguf_str_dup(want->kv[i].key);
        bool skip = !strncmp(key, "general.", 8) || !strcmp(key, "tokenizer.ggml.add_sep_token");
        if (!skip) {
            const struct gguf_kv *kv = gguf_find_kv(got, key);
            if (!kv || !value_equal(&want->kv[i].value, &kv->value))
                fail_msg("%s: metadata key %s %s", arch, key, kv ? "differs" : "is missing");
        }
        free(key);
    }
    /* rope_freqs.weight exactly as the converter computed it. */
    const struct gguf_tensor *rw = gguf_find_tensor(want, "rope_freqs.weight"),
                             *rg = gguf_find_tensor(got, "rope_freqs.weight");
    assert_true((rw == NULL) == (rg == NULL));
    if (rw) {
        assert_int_equal(rw->size, rg->size);
        assert_memory_equal(rw->data, rg->data, rw->size);
    }
    gguf_close(want);
}

static float max_logit_diff(const char *arch, const char *gguf_path)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev.json", arch);
    json_error_t je;
    json_t *ref = json_load_file(tu_shared(rel), 0, &je);
    assert_non_null(ref);
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    assert_int_equal(backend_cpu_new(2, &be, &e), 0);
    if (model_load(gguf_path, be, &m, &e) != 0)
        fail_msg("%s", e.msg);
    int vocab = m->hp.n_vocab;
    float worst = 0;
    json_t *prompts = json_object_get(ref, "prompts");
    for (size_t p = 0; p < json_array_size(prompts); p++) {
        json_t *pr = json_array_get(prompts, p), *ids_j = json_object_get(pr, "ids");
        size_t n = json_array_size(ids_j);
        int32_t *ids = malloc(n * sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(ids_j, i));
        snprintf(rel, sizeof rel, "reference/tiny-models/%s", json_string_value(json_object_get(pr, "logits_file")));
        size_t size = 0;
        float *want = (float *)tu_read(tu_shared(rel), &size);
        assert_int_equal(size, n * (size_t)vocab * 4);
        float *got = malloc(size);
        struct ctx_params cp = {.n_ctx = 64, .n_batch = 512, .kv_type = KV_F32};
        struct model_ctx *ctx = NULL;
        assert_int_equal(model_ctx_new(m, &cp, &ctx, &e), 0);
        assert_int_equal(model_forward(ctx, ids, (int)n, got, true, &e), 0);
        for (size_t i = 0; i < n * (size_t)vocab; i++) {
            float d = fabsf(got[i] - want[i]);
            if (!(d <= worst))
                worst = isnan(d) ? INFINITY : d;
        }
        model_ctx_free(ctx);
        free(got);
        free(want);
        free(ids);
    }
    model_free(m);
    be->ops->free(be);
    json_decref(ref);
    return worst;
}

static void import_ok(const char *dir, const char *out, const char *quantize)
{
    struct err e = {0};
    struct store_import_opts o = {.quantize = quantize, .n_threads = 2};
    if (store_import_dir(dir, out, &o, &e) != 0)
        fail_msg("import %s: %s", dir, e.msg);
}

/* F32 checkpoint: metadata as the converter writes it, tensors byte-identical, HF logits. */
static void check_f32(const char *arch, int shards)
{
    char dir[2048], out[4096];
    snprintf(dir, sizeof dir, "%s/%s-f32-%d", tu_tmpdir(), arch, shards);
    snprintf(out, sizeof out, "%s.gguf", dir);
    build_checkpoint(arch, MODE_F32, 0, 0, shards, dir);
    import_ok(dir, out, NULL);

    struct gguf_file *got = NULL, *want = NULL;
    struct err e = {0};
    assert_int_equal(gguf_open(out, &got, &e), 0);
    check_metadata(arch, got);
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-f32.gguf", arch);
    snprintf(path, sizeof path, "%s", tu_shared(rel));
    assert_int_equal(gguf_open(path, &want, &e), 0);
    assert_int_equal(got->n_tensors, want->n_tensors);
    for (uint64_t i = 0; i < want->n_tensors; i++) {
        const struct gguf_tensor *w = &want->tensors[i], *g = gguf_find_tensor(got, w->name);
        if (!g)
            fail_msg("%s: tensor %s missing", arch, w->name);
        assert_int_equal(g->type, w->type);
        assert_int_equal(g->ne[0], w->ne[0]);
        assert_int_equal(g->ne[1], w->ne[1]);
        if (memcmp(g->data, w->data, w->size) != 0)
            fail_msg("%s: tensor %s differs from the converter's", arch, w->name);
    }
    gguf_close(want);
    gguf_close(got);

    float d = max_logit_diff(arch, out);
    print_message("%s imported from safetensors (%d shard(s)): max abs logit diff vs transformers %.3g\n", arch,
                  shards, d);
    assert_true(d <= 2e-5f);
}

static void test_import_llama(void **state)
{
    (void)state;
    check_f32("llama", 1);
}
static void test_import_qwen2_sharded(void **state)
{
    (void)state;
    check_f32("qwen2", 3);
}
static void test_import_qwen3(void **state)
{
    (void)state;
    check_f32("qwen3", 1);
}

/* MLX: the importer must undo the affine groups and re-quantize. Bound: the logits of llama.cpp's own
 * Q8_0 conversion of these models differ from transformers by up to 1.1e-2 (README of the reference
 * data), and test_model accepts 3e-2 for them; MLX 8-bit followed by Q8_0 rounds twice, so the same
 * 3e-2 applies. 4-bit weights carry ~16x the rounding error of 8-bit ones; the measured difference
 * (printed) is ~0.1 against a logit spread (std) of 0.16, so 0.25 is the bound, and a model whose
 * weights were garbled (e.g. a nibble order or permutation mistake) lands far above it. */
static void check_mlx(const char *arch, int bits, int gs, const char *quantize, uint32_t want_type, float wbound,
                      float bound)
{
    char dir[2048], out[4096];
    snprintf(dir, sizeof dir, "%s/%s-mlx%d-%d", tu_tmpdir(), arch, bits, gs);
    snprintf(out, sizeof out, "%s-%s.gguf", dir, quantize ? quantize : "default");
    build_checkpoint(arch, bits == 8 ? MODE_MLX8 : MODE_MLX4, bits, gs, 1, dir);
    import_ok(dir, out, quantize);
    struct gguf_file *got = NULL;
    struct err e = {0};
    assert_int_equal(gguf_open(out, &got, &e), 0);
    check_metadata(arch, got);
    const struct gguf_tensor *t = gguf_find_tensor(got, "blk.0.ffn_up.weight");
    assert_non_null(t);
    assert_int_equal(t->type, want_type);
    /* The imported weights against the MLX values they came from: a nibble-order or group mistake
     * shows here directly. Re-encoding an MLX 4-bit group of 32 as Q4_1 keeps its grid (only the F16
     * rounding of d and m differs); Q8_0 of MLX values adds at most half a Q8_0 step (max|w|/254). */
    {
        char rel[256], path[4096];
        snprintf(rel, sizeof rel, "reference/tiny-models/%s-dev-f32.gguf", arch);
        snprintf(path, sizeof path, "%s", tu_shared(rel));
        struct gguf_file *ref = NULL;
        assert_int_equal(gguf_open(path, &ref, &e), 0);
        const struct gguf_tensor *rt = gguf_find_tensor(ref, "blk.0.ffn_up.weight");
        int64_t cols = rt->ne[0], rows = rt->ne[1];
        struct st_in q, sc, bi;
        mlx_quantize(rt->data, rows, cols, bits, gs, &q, &sc, &bi);
        float *row = malloc((size_t)cols * 4);
        float worst = 0;
        size_t rb = dtype_row_bytes(t->type, cols);
        for (int64_t r = 0; r < rows; r++) {
            assert_int_equal(dtype_dequantize(t->type, (const uint8_t *)t->data + r * rb, row, cols, &e), 0);
            for (int64_t c = 0; c < cols; c++) {
                int per = 32 / bits;
                uint32_t w = ((uint32_t *)q.data)[(r * cols + c) / per];
                uint32_t qi = (w >> ((c % per) * bits)) & ((1u << bits) - 1);
                int64_t gi = r * (cols / gs) + c / gs;
                /* MLX computes in the scales' dtype (F16 here). */
                float v = fp16_to_f32(
                    f32_to_fp16(fp16_to_f32(((uint16_t *)sc.data)[gi]) * (float)qi + fp16_to_f32(((uint16_t *)bi.data)[gi])));
                worst = fmaxf(worst, fabsf(v - row[c]));
            }
        }
        print_message("blk.0.ffn_up.weight: max abs diff to the MLX values %.3g (bound %.3g)\n", worst, wbound);
        assert_true(worst <= wbound);
        free(row);
        free(q.data);
        free(sc.data);
        free(bi.data);
        gguf_close(ref);
    }
    gguf_close(got);
    float d = max_logit_diff(arch, out);
    print_message("%s MLX %d-bit groups of %d -> %s: max abs logit diff vs transformers %.3g (bound %.3g)\n", arch,
                  bits, gs, dtype_name(want_type), d, bound);
    assert_true(d <= bound);
}

static void test_import_mlx8(void **state)
{
    (void)state;
    check_mlx("llama", 8, 64, NULL, DT_Q8_0, 1e-3f, 3e-2f);
}
static void test_import_mlx4_g32(void **state)
{
    (void)state;
    check_mlx("qwen3", 4, 32, NULL, DT_Q4_1, 1e-4f, 0.25f);
}
static void test_import_mlx4_quantize(void **state)
{
    (void)state;
    check_mlx("qwen2", 4, 64, "Q8_0", DT_Q8_0, 1e-3f, 0.25f);
}

/* `hearth create NAME` with FROM a directory. */
static void test_create_from_dir(void **state)
{
    (void)state;
    char dir[4096], root[4096];
    snprintf(dir, sizeof dir, "%s/ckpt-create", tu_tmpdir());
    snprintf(root, sizeof root, "%s/store", tu_tmpdir());
    build_checkpoint("qwen2", MODE_F32, 0, 0, 1, dir);
    struct store *s = NULL;
    struct err e = {0};
    assert_int_equal(store_open(root, &s, &e), 0);
    struct modelfile mf = {0};
    assert_int_equal(modelfile_parse("FROM ./ckpt-create\nPARAMETER temperature 0.5\n", &mf, NULL, 0, &e), 0);
    struct store_create_req req = {0};
    modelfile_to_req(&mf, &req);
    req.base_dir = tu_tmpdir();
    if (store_create(s, "imported:test", &req, &e) != 0)
        fail_msg("%s", e.msg);
    struct store_model m = {0};
    assert_int_equal(store_resolve(s, "imported:test", &m, &e), 0);
    assert_string_equal(m.family, "qwen2");
    assert_string_equal(m.quantization_level, "F32");
    assert_true(max_logit_diff("qwen2", m.model_path) <= 2e-5f);
    store_model_free(&m);
    modelfile_free(&mf);
    store_close(s);
}

/* ---- SentencePiece-style tokenizer.json (Mistral 7B v0.1) ---- */

static float rand_weight(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return ((float)(*state >> 8) / 16777216.0f - 0.5f) * 0.1f;
}

static struct st_in random_tensor(const char *name, int64_t rows, int64_t cols, uint32_t *state)
{
    struct st_in t = {.dtype = "F32", .n_dims = cols ? 2 : 1, .shape = {rows, cols}};
    snprintf(t.name, sizeof t.name, "%s", name);
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    float *w = malloc(n * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        w[i] = cols ? rand_weight(state) : 1.0f + rand_weight(state);
    t.data = w;
    t.size = n * sizeof *w;
    return t;
}

/* A one-layer random llama with Mistral 7B v0.1's 32000-token vocabulary and its real tokenizer.json
 * and tokenizer_config.json: the import must give a GGUF "llama" (SentencePiece) vocabulary that
 * encodes every test string of ../shared/vocab/ggml-vocab-llama-spm.gguf.inp to the same ids as the
 * tokenizer.json itself (which test_tokenizer validates), decodes them back, and loads and runs. */
static void test_import_spm_tokenizer(void **state)
{
    (void)state;
    const char *tj = tu_testdata("tokenizers/mistral-7b-v0.1/tokenizer.json");
    TU_REQUIRE(tj);
    char tok_src[4096], dir[2048], path[4096], out[4096];
    snprintf(tok_src, sizeof tok_src, "%s", tj);
    const char *tc = tu_shared("tokenizers/mistral-7b-v0.1/tokenizer_config.json");
    const char *inp_path = tu_shared("vocab/ggml-vocab-llama-spm.gguf.inp");
    TU_REQUIRE(tc);
    TU_REQUIRE(inp_path);
    char *cfg_text = tu_read(tc, NULL), *tok_text = tu_read(tok_src, NULL), *inp = tu_read(inp_path, NULL);
    snprintf(dir, sizeof dir, "%s/mistral-spm", tu_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_text(path, cfg_text);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_text(path, tok_text);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, "
                     "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                     "\"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, "
                     "\"vocab_size\": 32000, \"bos_token_id\": 1, \"eos_token_id\": 2, "
                     "\"tie_word_embeddings\": true}");
    uint32_t seed = 12345;
    struct st_in t[11];
    size_t n = 0;
    t[n++] = random_tensor("model.embed_tokens.weight", 32000, 64, &seed);
    t[n++] = random_tensor("model.norm.weight", 64, 0, &seed);
    t[n++] = random_tensor("model.layers.0.input_layernorm.weight", 64, 0, &seed);
    t[n++] = random_tensor("model.layers.0.post_attention_layernorm.weight", 64, 0, &seed);
    t[n++] = random_tensor("model.layers.0.self_attn.q_proj.weight", 64, 64, &seed);
    t[n++] = random_tensor("model.layers.0.self_attn.k_proj.weight", 32, 64, &seed);
    t[n++] = random_tensor("model.layers.0.self_attn.v_proj.weight", 32, 64, &seed);
    t[n++] = random_tensor("model.layers.0.self_attn.o_proj.weight", 64, 64, &seed);
    t[n++] = random_tensor("model.layers.0.mlp.gate_proj.weight", 128, 64, &seed);
    t[n++] = random_tensor("model.layers.0.mlp.up_proj.weight", 128, 64, &seed);
    t[n++] = random_tensor("model.layers.0.mlp.down_proj.weight", 64, 128, &seed);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_safetensors(path, t, n);
    for (size_t i = 0; i < n; i++)
        free(t[i].data);
    snprintf(out, sizeof out, "%s.gguf", dir);
    import_ok(dir, out, NULL);

    /* The metadata llama.cpp's SentencePiece vocabulary carries. */
    struct gguf_file *g = NULL;
    struct err e = {0};
    assert_int_equal(gguf_open(out, &g, &e), 0);
    struct gguf_str model = {0};
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.model", &model, &e), 0);
    assert_int_equal(model.len, 5);
    assert_memory_equal(model.ptr, "llama", 5);
    const struct gguf_array *types, *scores;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types, &e), 0);
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores, &e), 0);
    assert_int_equal(types->n, 32000);
    assert_int_equal(gguf_arr_i32(types, 0), 2);  /* <unk>: UNKNOWN */
    assert_int_equal(gguf_arr_i32(types, 1), 3);  /* <s>: CONTROL */
    assert_int_equal(gguf_arr_i32(types, 2), 3);  /* </s> */
    assert_int_equal(gguf_arr_i32(types, 3), 6);  /* <0x00>: BYTE */
    assert_int_equal(gguf_arr_i32(types, 13), 6); /* <0x0A> */
    assert_int_equal(gguf_arr_i32(types, 259), 1);
    assert_null(gguf_find_kv(g, "tokenizer.ggml.merges"));
    /* Scores replay the merge order: the first merge ("▁ t" -> "▁t", id 261) outranks the second
     * ("i n", id 262), which outranks "▁▁" (id 259, merged near the end as SentencePiece does). */
    assert_true(gguf_arr_f32(scores, 261) == 0.0f);
    assert_true(gguf_arr_f32(scores, 262) == -1.0f);
    assert_true(gguf_arr_f32(scores, 259) < -50000.0f);
    const struct gguf_kv *kv = gguf_find_kv(g, "tokenizer.ggml.add_space_prefix");
    assert_non_null(kv);
    assert_true(kv->value.v.b);
    kv = gguf_find_kv(g, "tokenizer.ggml.add_eos_token");
    assert_non_null(kv);
    assert_false(kv->value.v.b);
    kv = gguf_find_kv(g, "tokenizer.ggml.unknown_token_id");
    assert_non_null(kv);
    assert_int_equal(kv->value.v.u64 & 0xffffffffu, 0);

    struct tokenizer *imp = NULL, *ref = NULL;
    if (tokenizer_from_gguf(g, &imp, &e) != 0)
        fail_msg("%s", e.msg);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (tokenizer_from_json(path, &ref, &e) != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(tokenizer_bos(imp), 1);
    assert_int_equal(tokenizer_eos(imp), 2);
    assert_true(tokenizer_add_bos(imp));
    assert_false(tokenizer_add_eos(imp));

    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n_strings = 0, n_ids = 0;
    for (char *p = inp, *q; (q = strstr(p, sep)); p = q + strlen(sep)) {
        size_t len = (size_t)(q - p);
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        assert_int_equal(tokenizer_encode(imp, p, len, true, false, &a, &na, &e), 0);
        assert_int_equal(tokenizer_encode(ref, p, len, true, false, &b, &nb, &e), 0);
        if (na != nb || memcmp(a, b, na * sizeof *a) != 0)
            fail_msg("string %zu (\"%.*s\"): the imported vocabulary gives %zu ids, tokenizer.json %zu", n_strings,
                     (int)(len > 40 ? 40 : len), p, na, nb);
        char *text = NULL;
        assert_int_equal(tokenizer_decode(imp, a + 1, na - 1, false, &text, &e), 0);
        if (strlen(text) != len || memcmp(text, p, len) != 0)
            fail_msg("string %zu (\"%.*s\") decodes to \"%s\"", n_strings, (int)(len > 40 ? 40 : len), p, text);
        free(text);
        free(a);
        free(b);
        n_strings++;
        n_ids += na;
    }
    print_message("Mistral 7B v0.1 tokenizer.json imported: %zu strings, %zu ids, all equal\n", n_strings, n_ids);
    assert_int_equal(n_strings, 46);

    /* The imported model loads with its 32000-row embedding and gives finite logits. */
    struct backend *be = NULL;
    struct model *m = NULL;
    assert_int_equal(backend_cpu_new(2, &be, &e), 0);
    if (model_load(out, be, &m, &e) != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(m->hp.n_vocab, 32000);
    int32_t *ids = NULL;
    size_t nid = 0;
    assert_int_equal(tokenizer_encode(imp, "Hello world", 11, true, false, &ids, &nid, &e), 0);
    float *logits = malloc(nid * 32000 * sizeof *logits);
    struct ctx_params cp = {.n_ctx = 64, .n_batch = 512, .kv_type = KV_F32};
    struct model_ctx *ctx = NULL;
    assert_int_equal(model_ctx_new(m, &cp, &ctx, &e), 0);
    assert_int_equal(model_forward(ctx, ids, (int)nid, logits, true, &e), 0);
    for (size_t i = 0; i < nid * 32000; i++)
        assert_true(isfinite(logits[i]));
    model_ctx_free(ctx);
    model_free(m);
    be->ops->free(be);
    free(logits);
    free(ids);
    tokenizer_free(imp);
    tokenizer_free(ref);
    gguf_close(g);
    free(cfg_text);
    free(tok_text);
    free(inp);
}

/* ---- malformed input ---- */

static void expect_parse_error(const void *data, size_t size, const char *needle)
{
    struct safetensors_file *f = NULL;
    struct err e = {0};
    int rc = safetensors_parse(data, size, "bad.safetensors", &f, &e);
    assert_int_equal(rc, ERR_FORMAT);
    assert_null(f);
    if (!strstr(e.msg, "bad.safetensors") || !strstr(e.msg, needle))
        fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static size_t make(uint8_t *buf, const char *header, size_t data_bytes)
{
    uint64_t n = strlen(header);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, n);
    memset(buf + 8 + n, 0x3c, data_bytes);
    return 8 + n + data_bytes;
}

static void test_malformed(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n;
    /* A good file first, so the failures below are about what each one changes. */
    n = make(buf, "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
             20);
    struct safetensors_file *f = NULL;
    struct err e = {0};
    assert_int_equal(safetensors_parse(buf, n, "ok.safetensors", &f, &e), 0);
    assert_int_equal(f->n_tensors, 2);
    const struct safetensors_tensor *b = safetensors_find(f, "b");
    assert_non_null(b);
    assert_int_equal(b->dtype, ST_F32);
    assert_ptr_equal(b->data, buf + n - 8);
    assert_null(safetensors_find(f, "c"));
    safetensors_close(f);

    expect_parse_error(buf, 5, "too short");
    expect_parse_error(buf, n - 20 - 10, "truncated"); /* header cut */
    n = make(buf, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_parse_error(buf, n, "'a'"); /* data cut: offsets past the end */
    n = make(buf, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8);
    expect_parse_error(buf, n, "not valid JSON");
    n = make(buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12);
    expect_parse_error(buf, n, "overlap");
    n = make(buf, "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_parse_error(buf, n, "unknown dtype 'Q4'");
    n = make(buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_parse_error(buf, n, "tensor 'w'");
    n = make(buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8);
    expect_parse_error(buf, n, "overflow");
    n = make(buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
    expect_parse_error(buf, n, "shape[0]");
    n = make(buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                  "\"data_offsets\":[0,8]}}",
             8);
    expect_parse_error(buf, n, "JSON");
    uint64_t huge = 1ULL << 40;
    memcpy(buf, &huge, 8);
    expect_parse_error(buf, 64, "limit");

    /* Import-level problems name the file and tensor. */
    char dir[2048], path[4096], out[4096];
    snprintf(dir, sizeof dir, "%s/ckpt-bad", tu_tmpdir());
    build_checkpoint("qwen3", MODE_F32, 0, 0, 1, dir);
    snprintf(out, sizeof out, "%s/bad.gguf", tu_tmpdir());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct st_in extra = {.name = "model.vision_tower.proj.weight", .dtype = "F32", .n_dims = 1, .shape = {2},
                          .data = calloc(2, 4), .size = 8};
    char good[4096];
    snprintf(good, sizeof good, "%s/model.safetensors.good", dir);
    assert_int_equal(rename(path, good), 0);
    write_safetensors(path, &extra, 1);
    struct store_import_opts o = {0};
    assert_int_not_equal(store_import_dir(dir, out, &o, &e), 0);
    assert_non_null(strstr(e.msg, "model.vision_tower.proj.weight"));
    assert_non_null(strstr(e.msg, "model.safetensors"));
    free(extra.data);
    /* A truncated shard. */
    size_t sz = 0;
    char *bytes = tu_read(good, &sz);
    FILE *fp = fopen(path, "wb");
    fwrite(bytes, 1, sz / 2, fp);
    fclose(fp);
    free(bytes);
    assert_int_equal(store_import_dir(dir, out, &o, &e), ERR_FORMAT);
    assert_non_null(strstr(e.msg, "model.safetensors"));
    print_message("truncated shard: %s\n", e.msg);
    /* An architecture that cannot be imported. */
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "{\"architectures\": [\"GPT2LMHeadModel\"]}");
    assert_int_equal(store_import_dir(dir, out, &o, &e), ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "GPT2LMHeadModel"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),         cmocka_unit_test(test_import_llama),
        cmocka_unit_test(test_import_qwen2_sharded), cmocka_unit_test(test_import_qwen3),
        cmocka_unit_test(test_import_mlx8),       cmocka_unit_test(test_import_mlx4_g32),
        cmocka_unit_test(test_import_mlx4_quantize), cmocka_unit_test(test_create_from_dir),
        cmocka_unit_test(test_import_spm_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
