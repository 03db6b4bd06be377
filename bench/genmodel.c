/* genmodel.c — hearth-genmodel: writes a random-weight Llama-architecture GGUF of a real model's shape
 * with hearth's own GGUF writer and quantizers. Speed benchmarks need only the right shapes; the quick
 * start uses the tiny preset when no trained model is at hand. The files are plain llama GGUFs (SPM
 * vocabulary metadata included) that llama.cpp loads too, so bench/compare.mjs can run both on one file,
 * and their per-tensor type mix follows llama-quantize's choices for the same file type.
 *
 * usage: hearth-genmodel --preset tiny|llama-1b|llama-8b --type f32|f16|q8_0|q4_0|q4_k_m -o OUT.gguf [--seed N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "tensor/tensor.h"

struct preset {
    const char *name;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_base;
    bool tied; /* no output.weight: the output projection reuses token_embd (Llama 3.2 1B does) */
};

static const struct preset presets[] = {
    {"tiny", 64, 2, 4, 2, 176, 320, 512, 10000.0f, false},
    {"llama-1b", 2048, 16, 32, 8, 8192, 128256, 8192, 500000.0f, true},
    {"llama-8b", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0f, false},
};

enum mix { MIX_F32, MIX_F16, MIX_Q8_0, MIX_Q4_0, MIX_Q4_K_M };

struct fill_ctx {
    uint32_t type;
    int64_t rows, cols;
    uint64_t seed;
    float scale;
    float constant; /* norms: a constant vector plus small noise */
    struct threadpool *pool;
    uint8_t *dst;
    int failed;
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform values with the standard deviation of N(0, scale): enough for speed, cheap to draw. */
static void fill_rows(void *arg, int t, int nt)
{
    struct fill_ctx *c = arg;
    float *row = malloc((size_t)c->cols * sizeof *row);
    if (!row) {
        c->failed = 1;
        return;
    }
    const size_t row_bytes = dtype_row_bytes(c->type, c->cols);
    for (int64_t r = c->rows * t / nt; r < c->rows * (t + 1) / nt; r++) {
        uint64_t s = c->seed ^ ((uint64_t)r * 0x2545f4914f6cdd1dULL);
        for (int64_t i = 0; i < c->cols; i++) {
            double u = (double)(splitmix(&s) >> 11) / 9007199254740992.0 - 0.5;
            row[i] = c->constant + (float)(u * 3.4641016 * c->scale);
        }
        if (dtype_quantize(c->type, row, c->dst + (size_t)r * row_bytes, c->cols, NULL) != 0)
            c->failed = 1;
    }
    free(row);
}

static int fill(void *arg, void *dst, size_t size, struct err *e)
{
    struct fill_ctx *c = arg;
    c->dst = dst;
    c->failed = 0;
    threadpool_run(c->pool, fill_rows, c);
    return c->failed ? err_set(e, ERR_NOMEM, "could not generate a tensor") : 0;
}

/* llama-quantize's "more bits" layers for Q4_K_M's attn_v and ffn_down: the first and last eighth of
 * the layers and every third one between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* A K-quant needs rows that are whole 256-value super-blocks; llama-quantize then falls back to the
 * 32-value format of about the same size, and to F16 when even that does not divide the row (the tiny
 * preset's rows are 64 and 176 wide). */
static uint32_t fit_row(uint32_t type, int64_t cols)
{
    if (cols % (int64_t)dtype_get(type)->block_size == 0)
        return type;
    uint32_t fallback = type == DT_Q4_K ? DT_Q5_0 : type == DT_Q6_K ? DT_Q8_0 : DT_F16;
    return cols % (int64_t)dtype_get(fallback)->block_size == 0 ? fallback : DT_F16;
}

/* The type llama-quantize gives a llama tensor for the file type (llama.cpp's llama_tensor_get_type
 * for these five types, without an importance matrix):
 * - F32/F16 files are not adjusted: every matrix has the file's type.
 * - In a quantized file the output matrix (token_embd when the output is tied to it) gets Q6_K, unless
 *   the file is Q8_0, which keeps Q8_0 everywhere; a separate token_embd keeps the file's type.
 * - Q4_K_M gives attn_v and ffn_down Q6_K in the use_more_bits layers, Q4_K elsewhere.
 * Vectors (norms) stay F32. */
static uint32_t type_for(enum mix mix, const char *name, int layer, int n_layer, bool tied, int64_t cols,
                         bool is_vector)
{
    if (is_vector)
        return DT_F32;
    static const uint32_t base[] = {DT_F32, DT_F16, DT_Q8_0, DT_Q4_0, DT_Q4_K};
    uint32_t t = base[mix];
    if (mix == MIX_F32 || mix == MIX_F16 || mix == MIX_Q8_0)
        return t;
    const bool is_output =
        strcmp(name, "output.weight") == 0 || (tied && strcmp(name, "token_embd.weight") == 0);
    if (is_output)
        t = DT_Q6_K;
    else if (mix == MIX_Q4_K_M && (strstr(name, "attn_v.weight") || strstr(name, "ffn_down.weight")) &&
             use_more_bits(layer, n_layer))
        t = DT_Q6_K;
    return fit_row(t, cols);
}

static void usage(FILE *fp)
{
    fputs("usage: hearth-genmodel --preset tiny|llama-1b|llama-8b --type f32|f16|q8_0|q4_0|q4_k_m -o OUT.gguf\n"
          "                       [--seed N] [--threads N]\n",
          fp);
}

int main(int argc, char **argv)
{
    const char *preset_name = NULL, *type_name = NULL, *out = NULL;
    uint64_t seed = 42;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc)
            preset_name = argv[++i];
        else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
            type_name = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "hearth-genmodel: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    const struct preset *p = NULL;
    for (size_t i = 0; preset_name && i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, preset_name) == 0)
            p = &presets[i];
    static const char *mix_names[] = {"f32", "f16", "q8_0", "q4_0", "q4_k_m"};
    int mix = -1;
    for (int i = 0; type_name && i < 5; i++)
        if (strcmp(mix_names[i], type_name) == 0)
            mix = i;
    if (!p || mix < 0 || !out) {
        usage(stderr);
        return 2;
    }

    struct err e = {0};
    struct threadpool *pool = NULL;
    if (threadpool_new(threads, &pool, &e)) {
        fprintf(stderr, "hearth-genmodel: %s\n", e.msg);
        return 1;
    }
    struct gguf_writer *w = gguf_writer_new();
    if (!w) {
        fprintf(stderr, "hearth-genmodel: out of memory\n");
        return 1;
    }
    static const uint32_t file_types[] = {0, 1, 7, 2, 15};
    gguf_writer_set_str(w, "general.architecture", "llama");
    char name[128];
    snprintf(name, sizeof name, "hearth random %s %s", p->name, type_name);
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_u32(w, "general.file_type", file_types[mix]);
    if (mix >= MIX_Q8_0)
        gguf_writer_set_u32(w, "general.quantization_version", 2); /* what llama-quantize records */
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->n_ctx);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->n_embd);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layer);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->n_ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_head);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(p->n_embd / p->n_head));
    gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_base);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);

    /* A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then filler words. */
    const int n_vocab = p->n_vocab;
    char **tokens = calloc((size_t)n_vocab, sizeof *tokens);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    if (!tokens || !scores || !types) {
        fprintf(stderr, "hearth-genmodel: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n_vocab; i++) {
        char buf[32];
        if (i == 0)
            snprintf(buf, sizeof buf, "<unk>");
        else if (i == 1)
            snprintf(buf, sizeof buf, "<s>");
        else if (i == 2)
            snprintf(buf, sizeof buf, "</s>");
        else if (i < 259)
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        else
            snprintf(buf, sizeof buf, "\xe2\x96\x81w%d", i); /* "▁w123" */
        tokens[i] = strdup(buf);
        if (!tokens[i]) {
            fprintf(stderr, "hearth-genmodel: out of memory\n");
            return 1;
        }
        scores[i] = i < 259 ? 0.0f : -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, (uint64_t)n_vocab);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, (uint64_t)n_vocab);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n_vocab);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);

    const int hd = p->n_embd / p->n_head;
    const int64_t d = p->n_embd, kvd = (int64_t)p->n_head_kv * hd, ff = p->n_ff;
    const int n_fill = 3 + 9 * p->n_layer;
    struct fill_ctx *fills = calloc((size_t)n_fill, sizeof *fills);
    int nf = 0;
    int rc = 0;
#define ADD(tname, layer, rows_, cols_, constant_)                                                 \
    do {                                                                                           \
        struct fill_ctx *fc = &fills[nf++];                                                        \
        bool vec = (rows_) == 1;                                                                   \
        fc->type = type_for((enum mix)mix, tname, layer, p->n_layer, p->tied, cols_, vec);                         \
        fc->rows = rows_;                                                                          \
        fc->cols = cols_;                                                                          \
        fc->seed = seed * 1000003u + (uint64_t)nf;                                                 \
        fc->scale = vec ? 0.01f : 0.02f;                                                           \
        fc->constant = constant_;                                                                  \
        fc->pool = pool;                                                                           \
        int64_t ne[2] = {cols_, rows_};                                                            \
        if (!rc)                                                                                   \
            rc = gguf_writer_add_tensor_fill(w, tname, fc->type, vec ? 1 : 2, ne, fill, fc, &e);   \
    } while (0)
    ADD("token_embd.weight", 0, (int64_t)n_vocab, d, 0.0f);
    for (int il = 0; il < p->n_layer; il++) {
        char tn[9][64];
        static const char *suffix[9] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight",
                                        "attn_v.weight", "attn_output.weight", "ffn_norm.weight",
                                        "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
        for (int k = 0; k < 9; k++)
            snprintf(tn[k], sizeof tn[k], "blk.%d.%s", il, suffix[k]);
        ADD(tn[0], il, 1, d, 1.0f);
        ADD(tn[1], il, d, d, 0.0f);
        ADD(tn[2], il, kvd, d, 0.0f);
        ADD(tn[3], il, kvd, d, 0.0f);
        ADD(tn[4], il, d, d, 0.0f);
        ADD(tn[5], il, 1, d, 1.0f);
        ADD(tn[6], il, ff, d, 0.0f);
        ADD(tn[7], il, ff, d, 0.0f);
        ADD(tn[8], il, d, ff, 0.0f);
    }
    ADD("output_norm.weight", 0, 1, d, 1.0f);
    if (!p->tied)
        ADD("output.weight", 0, (int64_t)n_vocab, d, 0.0f);
#undef ADD
    if (!rc)
        rc = gguf_writer_write(w, out, &e);
    if (rc)
        fprintf(stderr, "hearth-genmodel: %s\n", e.msg);
    gguf_writer_free(w);
    for (int i = 0; i < n_vocab; i++)
        free(tokens[i]);
    free(tokens);
    free(scores);
    free(types);
    free(fills);
    threadpool_free(pool);
    return rc ? 1 : 0;
}
