/* test_bert.c — BERT embeddings end to end: a small random-weight BERT GGUF written here (with a
 * WordPiece vocabulary of its own) is loaded and embedded, and the result is checked against an
 * independent forward pass in this file (double precision, one token at a time, straightforward
 * loops); plus pooling, normalisation, batching, truncation and load errors, and truncation for a
 * decoder model (../shared/models/stories260K.gguf). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "gguf/gguf.h"
#include "model/embed.h"
#include "model/model.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

enum { D = 32, H = 4, FF = 48, L = 2, NPOS = 16, NTYPES = 2 };

#define PH "\xe2\x96\x81" /* the phantom space that starts a word piece */
static const char *vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", PH "hello", PH "world", PH "the", PH "cat", PH "sat",  PH "on",
    PH "mat", PH "a",  "s",     "ing",   PH ".",      PH ",",      PH "!",  PH "dog", PH "run", PH "big",
};
enum { NV = sizeof vocab / sizeof vocab[0] };

/* The weights, kept as floats for the reference (already rounded when written as F16). */
struct weights {
    float tok[NV * D], types[NTYPES * D], pos[NPOS * D], en_w[D], en_b[D];
    struct {
        float wq[D * D], bq[D], wk[D * D], bk[D], wv[D * D], bv[D], wo[D * D], bo[D];
        float an_w[D], an_b[D], up[FF * D], up_b[FF], down[D * FF], down_b[D], on_w[D], on_b[D];
    } l[L];
};

static uint64_t rng_state;
static float frand(float scale)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return scale * ((float)(rng_state >> 40) / (float)(1u << 24) * 2.0f - 1.0f);
}

static void fill(float *x, size_t n, float scale, float offset, bool f16)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = offset + frand(scale);
        if (f16)
            x[i] = fp16_to_f32(f32_to_fp16(x[i]));
    }
}

static void make_weights(struct weights *w, bool f16)
{
    rng_state = 12345;
    fill(w->tok, NV * D, 1.0f, 0, f16);
    fill(w->types, NTYPES * D, 0.5f, 0, f16);
    fill(w->pos, NPOS * D, 0.5f, 0, f16);
    fill(w->en_w, D, 0.2f, 1.0f, false);
    fill(w->en_b, D, 0.1f, 0, false);
    for (int il = 0; il < L; il++) {
        fill(w->l[il].wq, D * D, 0.4f, 0, f16);
        fill(w->l[il].bq, D, 0.1f, 0, false);
        fill(w->l[il].wk, D * D, 0.4f, 0, f16);
        fill(w->l[il].bk, D, 0.1f, 0, false);
        fill(w->l[il].wv, D * D, 0.3f, 0, f16);
        fill(w->l[il].bv, D, 0.1f, 0, false);
        fill(w->l[il].wo, D * D, 0.3f, 0, f16);
        fill(w->l[il].bo, D, 0.1f, 0, false);
        fill(w->l[il].an_w, D, 0.2f, 1.0f, false);
        fill(w->l[il].an_b, D, 0.1f, 0, false);
        fill(w->l[il].up, FF * D, 0.3f, 0, f16);
        fill(w->l[il].up_b, FF, 0.1f, 0, false);
        fill(w->l[il].down, D * FF, 0.3f, 0, f16);
        fill(w->l[il].down_b, D, 0.1f, 0, false);
        fill(w->l[il].on_w, D, 0.2f, 1.0f, false);
        fill(w->l[il].on_b, D, 0.1f, 0, false);
    }
}

struct variant {
    int pooling;      /* -1: no pooling_type key */
    bool f16;         /* matrices and tables as F16 */
    bool causal;      /* write bert.attention.causal = true */
    const char *drop; /* a tensor to leave out */
};

/* Writes the model; the F16 copies live in `scratch` until the write. */
static const char *write_model(const struct weights *w, const struct variant *v, const char *name)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s.gguf", tu_tmpdir(), name);
    struct gguf_writer *g = gguf_writer_new();
    assert_non_null(g);
    assert_int_equal(gguf_writer_set_str(g, "general.architecture", "bert"), 0);
    assert_int_equal(gguf_writer_set_u32(g, "bert.context_length", NPOS), 0);
    assert_int_equal(gguf_writer_set_u32(g, "bert.embedding_length", D), 0);
    assert_int_equal(gguf_writer_set_u32(g, "bert.block_count", L), 0);
    assert_int_equal(gguf_writer_set_u32(g, "bert.feed_forward_length", FF), 0);
    assert_int_equal(gguf_writer_set_u32(g, "bert.attention.head_count", H), 0);
    assert_int_equal(gguf_writer_set_f32(g, "bert.attention.layer_norm_epsilon", 1e-12f), 0);
    assert_int_equal(gguf_writer_set_bool(g, "bert.attention.causal", v->causal), 0);
    if (v->pooling >= 0)
        assert_int_equal(gguf_writer_set_u32(g, "bert.pooling_type", (uint32_t)v->pooling), 0);
    int32_t types[NV];
    for (int i = 0; i < NV; i++)
        types[i] = i < 4 ? 3 : 1;
    assert_int_equal(gguf_writer_set_str(g, "tokenizer.ggml.model", "bert"), 0);
    assert_int_equal(gguf_writer_set_arr_str(g, "tokenizer.ggml.tokens", vocab, NV), 0);
    assert_int_equal(gguf_writer_set_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, NV), 0);
    assert_int_equal(gguf_writer_set_u32(g, "tokenizer.ggml.unknown_token_id", 1), 0);
    assert_int_equal(gguf_writer_set_u32(g, "tokenizer.ggml.cls_token_id", 2), 0);
    assert_int_equal(gguf_writer_set_u32(g, "tokenizer.ggml.seperator_token_id", 3), 0);

    /* F16 copies of the matrices, freed after the write */
    void *keep[64];
    int n_keep = 0;
    struct err e = {0};
#define ADD(nm, arr, rows, cols, mat)                                                                             \
    do {                                                                                                          \
        if (v->drop && strcmp(v->drop, nm) == 0)                                                                  \
            break;                                                                                                \
        int64_t ne[2] = {(cols), (rows)};                                                                         \
        uint32_t nd = (rows) > 1 ? 2 : 1;                                                                         \
        if ((mat) && v->f16) {                                                                                    \
            uint16_t *h = malloc((size_t)(rows) * (cols) * sizeof *h);                                            \
            for (size_t q_ = 0; q_ < (size_t)(rows) * (cols); q_++)                                               \
                h[q_] = f32_to_fp16((arr)[q_]);                                                                   \
            keep[n_keep++] = h;                                                                                   \
            assert_int_equal(gguf_writer_add_tensor(g, nm, DT_F16, nd, ne, h, &e), 0);                           \
        } else {                                                                                                  \
            assert_int_equal(gguf_writer_add_tensor(g, nm, DT_F32, nd, ne, (arr), &e), 0);                       \
        }                                                                                                         \
    } while (0)
    ADD("token_embd.weight", w->tok, NV, D, true);
    ADD("token_types.weight", w->types, NTYPES, D, false);
    ADD("position_embd.weight", w->pos, NPOS, D, true);
    ADD("token_embd_norm.weight", w->en_w, 1, D, false);
    ADD("token_embd_norm.bias", w->en_b, 1, D, false);
    char names[L][16][48];
    for (int il = 0; il < L; il++) {
        static const char *sfx[16] = {"attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
                                      "attn_v.weight", "attn_v.bias", "attn_output.weight", "attn_output.bias",
                                      "attn_output_norm.weight", "attn_output_norm.bias", "ffn_up.weight",
                                      "ffn_up.bias", "ffn_down.weight", "ffn_down.bias",
                                      "layer_output_norm.weight", "layer_output_norm.bias"};
        for (int k = 0; k < 16; k++)
            snprintf(names[il][k], sizeof names[il][k], "blk.%d.%s", il, sfx[k]);
        ADD(names[il][0], w->l[il].wq, D, D, true);
        ADD(names[il][1], w->l[il].bq, 1, D, false);
        ADD(names[il][2], w->l[il].wk, D, D, true);
        ADD(names[il][3], w->l[il].bk, 1, D, false);
        ADD(names[il][4], w->l[il].wv, D, D, true);
        ADD(names[il][5], w->l[il].bv, 1, D, false);
        ADD(names[il][6], w->l[il].wo, D, D, true);
        ADD(names[il][7], w->l[il].bo, 1, D, false);
        ADD(names[il][8], w->l[il].an_w, 1, D, false);
        ADD(names[il][9], w->l[il].an_b, 1, D, false);
        ADD(names[il][10], w->l[il].up, FF, D, true);
        ADD(names[il][11], w->l[il].up_b, 1, FF, false);
        ADD(names[il][12], w->l[il].down, D, FF, true);
        ADD(names[il][13], w->l[il].down_b, 1, D, false);
        ADD(names[il][14], w->l[il].on_w, 1, D, false);
        ADD(names[il][15], w->l[il].on_b, 1, D, false);
    }
#undef ADD
    if (gguf_writer_write(g, path, &e) != 0)
        fail_msg("gguf_writer_write: %s", e.msg);
    gguf_writer_free(g);
    for (int i = 0; i < n_keep; i++)
        free(keep[i]);
    return path;
}

/* ---- the reference: double precision, a token at a time ---- */

static void ref_layernorm(double *x, const float *g, const float *b)
{
    double mean = 0, var = 0;
    for (int i = 0; i < D; i++)
        mean += x[i];
    mean /= D;
    for (int i = 0; i < D; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= D;
    for (int i = 0; i < D; i++)
        x[i] = (x[i] - mean) / sqrt(var + 1e-12) * g[i] + b[i];
}

/* y = W x + b with W stored [rows][cols] */
static void ref_linear(const float *W, const float *b, const double *x, double *y, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = b[r];
        for (int c = 0; c < cols; c++)
            s += (double)W[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static void reference(const struct weights *w, const int32_t *ids, int n, int pooling, double *out)
{
    double(*x)[D] = calloc((size_t)n, sizeof *x), (*q)[D] = calloc((size_t)n, sizeof *q);
    double(*k)[D] = calloc((size_t)n, sizeof *k), (*v)[D] = calloc((size_t)n, sizeof *v);
    double(*a)[D] = calloc((size_t)n, sizeof *a);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < D; j++)
            x[i][j] = (double)w->tok[ids[i] * D + j] + w->types[j] + w->pos[i * D + j];
        ref_layernorm(x[i], w->en_w, w->en_b);
    }
    const int hd = D / H;
    for (int il = 0; il < L; il++) {
        for (int i = 0; i < n; i++) {
            ref_linear(w->l[il].wq, w->l[il].bq, x[i], q[i], D, D);
            ref_linear(w->l[il].wk, w->l[il].bk, x[i], k[i], D, D);
            ref_linear(w->l[il].wv, w->l[il].bv, x[i], v[i], D, D);
        }
        for (int i = 0; i < n; i++)
            for (int h = 0; h < H; h++) {
                double s[NPOS], den = 0;
                for (int j = 0; j < n; j++) {
                    double dot = 0;
                    for (int t = 0; t < hd; t++)
                        dot += q[i][h * hd + t] * k[j][h * hd + t];
                    s[j] = exp(dot / sqrt((double)hd));
                    den += s[j];
                }
                for (int t = 0; t < hd; t++) {
                    double acc = 0;
                    for (int j = 0; j < n; j++)
                        acc += s[j] / den * v[j][h * hd + t];
                    a[i][h * hd + t] = acc;
                }
            }
        for (int i = 0; i < n; i++) {
            double o[D], u[FF], dn[D];
            ref_linear(w->l[il].wo, w->l[il].bo, a[i], o, D, D);
            for (int j = 0; j < D; j++)
                x[i][j] += o[j];
            ref_layernorm(x[i], w->l[il].an_w, w->l[il].an_b);
            ref_linear(w->l[il].up, w->l[il].up_b, x[i], u, FF, D);
            for (int j = 0; j < FF; j++)
                u[j] = 0.5 * u[j] * (1.0 + erf(u[j] / sqrt(2.0)));
            ref_linear(w->l[il].down, w->l[il].down_b, u, dn, D, FF);
            for (int j = 0; j < D; j++)
                x[i][j] += dn[j];
            ref_layernorm(x[i], w->l[il].on_w, w->l[il].on_b);
        }
    }
    double norm = 0;
    for (int j = 0; j < D; j++) {
        double s = 0;
        if (pooling == 2)
            s = x[0][j];
        else if (pooling == 3)
            s = x[n - 1][j];
        else {
            for (int i = 0; i < n; i++)
                s += x[i][j];
            s /= n;
        }
        out[j] = s;
        norm += s * s;
    }
    for (int j = 0; j < D; j++)
        out[j] /= sqrt(norm);
    free(x);
    free(q);
    free(k);
    free(v);
    free(a);
}

/* ---- helpers ---- */

struct loaded {
    struct backend *be;
    struct model *m;
    struct model_ctx *c;
};

static struct loaded load(const char *path, int n_ctx, int n_batch)
{
    struct loaded l = {0};
    struct err e = {0};
    assert_int_equal(backend_cpu_new(2, &l.be, &e), 0);
    if (model_load(path, l.be, &l.m, &e) != 0)
        fail_msg("model_load: %s", e.msg);
    struct ctx_params cp = {.n_ctx = n_ctx, .n_batch = n_batch, .kv_type = KV_F32};
    if (model_ctx_new(l.m, &cp, &l.c, &e) != 0)
        fail_msg("model_ctx_new: %s", e.msg);
    return l;
}

static void unload(struct loaded *l)
{
    model_ctx_free(l->c);
    model_free(l->m);
    l->be->ops->free(l->be);
}

static int32_t *encode(const struct model *m, const char *text, int *n)
{
    int32_t *ids = NULL;
    size_t nn = 0;
    struct err e = {0};
    if (tokenizer_encode(m->tok, text, strlen(text), true, false, &ids, &nn, &e) != 0)
        fail_msg("tokenizer_encode: %s", e.msg);
    *n = (int)nn;
    return ids;
}

static double max_diff(const float *got, const double *want)
{
    double md = 0;
    for (int j = 0; j < D; j++)
        if (fabs(got[j] - want[j]) > md)
            md = fabs(got[j] - want[j]);
    return md;
}

static double norm_of(const float *x)
{
    double s = 0;
    for (int j = 0; j < D; j++)
        s += (double)x[j] * x[j];
    return sqrt(s);
}

static struct weights W32, W16;

static int setup(void **state)
{
    (void)state;
    make_weights(&W32, false);
    make_weights(&W16, true);
    return 0;
}

/* The forward pass against the reference for every pooling type, F32 and F16 weights. */
static void test_matches_reference(void **state)
{
    (void)state;
    static const char *texts[] = {"hello world", "The cat sat on a big mat!", "dogs running, cats sat."};
    static const int poolings[] = {-1, 1, 2, 3};
    for (int f16 = 0; f16 < 2; f16++)
        for (size_t p = 0; p < sizeof poolings / sizeof poolings[0]; p++) {
            const struct weights *w = f16 ? &W16 : &W32;
            struct variant v = {.pooling = poolings[p], .f16 = f16};
            char name[32];
            snprintf(name, sizeof name, "ref-%d-%d", f16, poolings[p]);
            struct loaded l = load(write_model(w, &v, name), 0, 0);
            assert_int_equal(l.m->hp.arch, ARCH_BERT);
            assert_int_equal(l.m->hp.n_embd, D);
            assert_int_equal(l.m->hp.n_vocab, NV);
            assert_int_equal(model_embed_max_tokens(l.c), NPOS);
            for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
                int n;
                int32_t *ids = encode(l.m, texts[t], &n);
                assert_true(n >= 4 && n <= NPOS);
                assert_int_equal(ids[0], 2);
                assert_int_equal(ids[n - 1], 3);
                float got[D];
                double want[D];
                struct err e = {0};
                if (model_embed(l.c, ids, n, got, &e) != 0)
                    fail_msg("model_embed: %s", e.msg);
                reference(w, ids, n, poolings[p] < 0 ? 1 : poolings[p], want);
                double md = max_diff(got, want);
                /* F32 weights: float vs double rounding only. F16 weights: the CPU matmul may convert
                 * activations to F16 too. */
                const double tol = f16 ? 3e-3 : 2e-5;
                if (md > tol)
                    fail_msg("\"%s\" f16=%d pooling=%d: max |diff| %.3g > %.3g", texts[t], f16, poolings[p], md, tol);
                assert_true(fabs(norm_of(got) - 1.0) < 1e-5);
                free(ids);
            }
            unload(&l);
        }
}

/* Attention is bidirectional: the [CLS] vector depends on a later token. And a different input
 * gives a different vector (the test can fail). */
static void test_bidirectional(void **state)
{
    (void)state;
    struct variant v = {.pooling = 2};
    struct loaded l = load(write_model(&W32, &v, "bidi"), 0, 0);
    const int32_t a[] = {2, 4, 5, 3}, b[] = {2, 4, 17, 3};
    float ea[D], eb[D];
    struct err e = {0};
    assert_int_equal(model_embed(l.c, a, 4, ea, &e), 0);
    assert_int_equal(model_embed(l.c, b, 4, eb, &e), 0);
    double diff = 0;
    for (int j = 0; j < D; j++)
        diff += fabs(ea[j] - eb[j]);
    assert_true(diff > 1e-3);
    unload(&l);
}

/* Matrix products are sliced into n_batch rows; the result must not depend on it. */
static void test_batch_slicing(void **state)
{
    (void)state;
    struct variant v = {.pooling = 1};
    const char *path = write_model(&W32, &v, "slices");
    struct loaded big = load(path, 0, 0), small = load(path, 0, 3);
    assert_int_equal(small.c->n_batch, 3);
    int n;
    int32_t *ids = encode(big.m, "the cat sat on the mat, the dog sat on a mat", &n);
    assert_int_equal(n, 15);
    float x[D], y[D];
    struct err e = {0};
    assert_int_equal(model_embed(big.c, ids, n, x, &e), 0);
    assert_int_equal(model_embed(small.c, ids, n, y, &e), 0);
    for (int j = 0; j < D; j++)
        assert_float_equal(x[j], y[j], 1e-6);
    free(ids);
    unload(&big);
    unload(&small);
}

/* Past the position table: an error naming both lengths, or with truncate the first tokens plus
 * the closing [SEP]. */
static void test_truncation(void **state)
{
    (void)state;
    struct variant v = {.pooling = 1};
    struct loaded l = load(write_model(&W32, &v, "trunc"), 64, 0);
    assert_int_equal(l.c->n_ctx, 64);
    assert_int_equal(model_embed_max_tokens(l.c), NPOS); /* the position table, not the context */
    int n;
    int32_t *ids = encode(l.m, "the cat sat on the mat . the dog sat on the mat . a big cat runs", &n);
    assert_true(n > NPOS);
    float got[D], want_f[D];
    struct err e = {0};
    assert_int_equal(model_embed(l.c, ids, n, got, &e), ERR_RANGE);
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    assert_non_null(strstr(e.msg, num));
    assert_non_null(strstr(e.msg, "16"));
    int used = -1;
    assert_int_equal(model_embed_ex(l.c, ids, n, false, got, &used, &e), ERR_RANGE);
    assert_int_equal(used, 0);
    assert_int_equal(model_embed_ex(l.c, ids, n, true, got, &used, &e), 0);
    assert_int_equal(used, NPOS);
    int32_t cut[NPOS];
    memcpy(cut, ids, (NPOS - 1) * sizeof *cut);
    cut[NPOS - 1] = 3;
    assert_int_equal(model_embed(l.c, cut, NPOS, want_f, &e), 0);
    for (int j = 0; j < D; j++)
        assert_float_equal(got[j], want_f[j], 1e-6);
    double want[D];
    reference(&W32, cut, NPOS, 1, want);
    assert_true(max_diff(got, want) < 2e-5);
    /* bad inputs */
    assert_int_equal(model_embed(l.c, ids, 0, got, &e), ERR_RANGE);
    const int32_t bad[] = {2, NV, 3};
    assert_int_equal(model_embed(l.c, bad, 3, got, &e), ERR_RANGE);
    assert_non_null(strstr(e.msg, "vocabulary"));
    free(ids);
    unload(&l);
}

/* The context can also be the limit: a context of 8 cuts at 8. */
static void test_truncation_context(void **state)
{
    (void)state;
    struct variant v = {.pooling = 3};
    struct loaded l = load(write_model(&W32, &v, "trunc8"), 8, 0);
    assert_int_equal(model_embed_max_tokens(l.c), 8);
    int n;
    int32_t *ids = encode(l.m, "the cat sat on the mat . the dog", &n);
    assert_true(n > 8);
    float got[D];
    double want[D];
    struct err e = {0};
    assert_int_equal(model_embed(l.c, ids, n, got, &e), ERR_RANGE);
    assert_non_null(strstr(e.msg, "context"));
    int used;
    assert_int_equal(model_embed_ex(l.c, ids, n, true, got, &used, &e), 0);
    assert_int_equal(used, 8);
    ids[7] = 3; /* last pooling sees the kept [SEP] */
    reference(&W32, ids, 8, 3, want);
    assert_true(max_diff(got, want) < 2e-5);
    free(ids);
    unload(&l);
}

static void test_load_errors(void **state)
{
    (void)state;
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    assert_int_equal(backend_cpu_new(1, &be, &e), 0);
    struct variant missing = {.pooling = 1, .drop = "blk.1.ffn_down.bias"};
    assert_int_equal(model_load(write_model(&W32, &missing, "missing"), be, &m, &e), ERR_FORMAT);
    assert_null(m);
    assert_non_null(strstr(e.msg, "blk.1.ffn_down.bias"));
    struct variant causal = {.pooling = 1, .causal = true};
    assert_int_equal(model_load(write_model(&W32, &causal, "causal"), be, &m, &e), ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "causal"));
    struct variant rank = {.pooling = 4};
    assert_int_equal(model_load(write_model(&W32, &rank, "rank"), be, &m, &e), 0);
    struct ctx_params cp = {0};
    struct model_ctx *c = NULL;
    assert_int_equal(model_ctx_new(m, &cp, &c, &e), 0);
    const int32_t ids[] = {2, 4, 3};
    float out[D];
    assert_int_equal(model_embed(c, ids, 3, out, &e), ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "rerank"));
    model_ctx_free(c);
    model_free(m);
    be->ops->free(be);
}

/* Decoders: pooled over the context; truncation keeps the first tokens. */
static void test_decoder_truncation(void **state)
{
    (void)state;
    const char *path = tu_shared("models/stories260K.gguf");
    TU_REQUIRE(path);
    struct loaded l = load(path, 8, 0);
    assert_int_equal(model_embed_max_tokens(l.c), 8);
    const int32_t ids[] = {1, 403, 407, 261, 378, 395, 260, 306, 393, 282, 264};
    const int d = l.m->hp.n_embd;
    float *a = malloc((size_t)d * sizeof *a), *b = malloc((size_t)d * sizeof *b);
    struct err e = {0};
    assert_int_equal(model_embed(l.c, ids, 11, a, &e), ERR_RANGE);
    assert_non_null(strstr(e.msg, "11"));
    int used;
    assert_int_equal(model_embed_ex(l.c, ids, 11, true, a, &used, &e), 0);
    assert_int_equal(used, 8);
    assert_int_equal(model_embed(l.c, ids, 8, b, &e), 0);
    double nrm = 0;
    for (int j = 0; j < d; j++) {
        assert_float_equal(a[j], b[j], 1e-6);
        nrm += (double)a[j] * a[j];
    }
    assert_true(fabs(sqrt(nrm) - 1.0) < 1e-5);
    assert_int_equal(model_embed(l.c, ids, 7, b, &e), 0);
    double diff = 0;
    for (int j = 0; j < d; j++)
        diff += fabs(a[j] - b[j]);
    assert_true(diff > 1e-4);
    free(a);
    free(b);
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference), cmocka_unit_test(test_bidirectional),
        cmocka_unit_test(test_batch_slicing),     cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_truncation_context), cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_decoder_truncation),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
