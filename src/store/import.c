/* import.c — Hugging Face and MLX safetensors checkpoints to GGUF, the way llama.cpp's
 * convert_hf_to_gguf.py lays them out, so an imported model loads and runs exactly like a converted
 * one: HF tensor names become GGUF's, llama's Q/K rows go from the rotate-half order to interleaved
 * pairs, config.json becomes <arch>.* metadata (llama3 rope scaling becomes rope_freqs.weight),
 * tokenizer.json / tokenizer_config.json become tokenizer.ggml.*, and MLX's affine group
 * quantization is dequantized and re-quantized into a GGUF block format. Tensor bytes are produced
 * one tensor at a time while the GGUF is written, straight from the memory-mapped shards. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "store/safetensors.h"
#include "store/store.h"
#include "tensor/tensor.h"

enum arch { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3 };

/* One GGUF tensor and where its bytes come from. */
struct job {
    char name[96];
    const struct safetensors_tensor *w, *scales, *biases; /* scales/biases: MLX-quantized */
    const char *file;                                     /* shard holding w, for messages */
    int perm_heads;                                       /* llama Q/K: heads to re-order; 0: none */
    int bits, group;                                      /* MLX */
    uint32_t type;                                        /* GGUF dtype written */
    struct threadpool *pool;                              /* converts rows in parallel; may be NULL */
    uint32_t n_dims;
    int64_t ne[2]; /* GGUF order: ne[0] = row length */
};

struct imp {
    const char *dir;
    json_t *config, *tok, *tokcfg;
    struct safetensors_file **files;
    size_t n_files;
    enum arch arch;
    const char *arch_name;
    int64_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_ctx, n_vocab;
    double eps, theta;
    bool tie;
    json_t *quant; /* MLX "quantization" object or NULL */
    bool for_quantize; /* writing an intermediate for the quantizer: MLX weights go out as F16 */
    struct job *jobs;
    size_t n_jobs;
    float *rope_freqs; /* head_dim / 2 factors, llama3 scaling only */
    struct threadpool *pool;
    char **tokens;
    int32_t *token_types;
    size_t n_tokens;
    char **merges;
    size_t n_merges;
};

/* ---- small helpers ---- */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int load_json(const char *dir, const char *name, bool required, size_t flags, json_t **out, struct err *e)
{
    *out = NULL;
    char *p = path_join(dir, name);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (access(p, F_OK) != 0) {
        int rc = required ? err_set(e, ERR_NOTFOUND, "%s: not found (a Hugging Face checkpoint needs it)", p) : 0;
        free(p);
        return rc;
    }
    json_error_t je;
    *out = json_load_file(p, flags, &je);
    int rc = *out ? 0 : err_set(e, ERR_FORMAT, "%s: invalid JSON at line %d: %s", p, je.line, je.text);
    free(p);
    return rc;
}

/* A non-negative integer field of config.json, or def when absent (def < 0: required). */
static int cfg_int(struct imp *im, const char *key, int64_t def, int64_t *out, struct err *e)
{
    json_t *v = json_object_get(im->config, key);
    if (!v || json_is_null(v)) {
        if (def < 0)
            return err_set(e, ERR_FORMAT, "%s/config.json: missing \"%s\"", im->dir, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1LL << 40))
        return err_set(e, ERR_FORMAT, "%s/config.json: \"%s\" must be a positive integer", im->dir, key);
    *out = json_integer_value(v);
    return 0;
}

static double num(json_t *v, double def)
{
    return json_is_number(v) ? json_number_value(v) : def;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const struct safetensors_tensor *find(struct imp *im, const char *name, const char **file)
{
    for (size_t i = 0; i < im->n_files; i++) {
        const struct safetensors_tensor *t = safetensors_find(im->files[i], name);
        if (t) {
            if (file)
                *file = im->files[i]->path;
            return t;
        }
    }
    return NULL;
}

/* ---- config.json ---- */

static int read_config(struct imp *im, struct err *e)
{
    json_t *archs = json_object_get(im->config, "architectures");
    const char *a = json_string_value(json_array_get(archs, 0));
    if (!a)
        return err_set(e, ERR_FORMAT, "%s/config.json: missing \"architectures\"", im->dir);
    if (strcmp(a, "LlamaForCausalLM") == 0 || strcmp(a, "MistralForCausalLM") == 0) {
        im->arch = ARCH_LLAMA;
        im->arch_name = "llama";
    } else if (strcmp(a, "Qwen2ForCausalLM") == 0) {
        im->arch = ARCH_QWEN2;
        im->arch_name = "qwen2";
    } else if (strcmp(a, "Qwen3ForCausalLM") == 0) {
        im->arch = ARCH_QWEN3;
        im->arch_name = "qwen3";
    } else {
        return err_set(e, ERR_UNSUPPORTED,
                       "%s/config.json: architecture '%s' cannot be imported (supported: LlamaForCausalLM, "
                       "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)",
                       im->dir, a);
    }
    int rc;
    if ((rc = cfg_int(im, "num_hidden_layers", -1, &im->n_layer, e)) ||
        (rc = cfg_int(im, "hidden_size", -1, &im->n_embd, e)) ||
        (rc = cfg_int(im, "intermediate_size", -1, &im->n_ff, e)) ||
        (rc = cfg_int(im, "num_attention_heads", -1, &im->n_head, e)) ||
        (rc = cfg_int(im, "num_key_value_heads", im->n_head, &im->n_head_kv, e)) ||
        (rc = cfg_int(im, "head_dim", im->n_embd / im->n_head, &im->head_dim, e)) ||
        (rc = cfg_int(im, "max_position_embeddings", 4096, &im->n_ctx, e)) ||
        (rc = cfg_int(im, "vocab_size", -1, &im->n_vocab, e)))
        return rc;
    if (im->n_head % im->n_head_kv || im->head_dim % 2)
        return err_set(e, ERR_FORMAT, "%s/config.json: %lld heads, %lld kv heads, head_dim %lld do not fit together",
                       im->dir, (long long)im->n_head, (long long)im->n_head_kv, (long long)im->head_dim);
    im->eps = num(json_object_get(im->config, "rms_norm_eps"), 1e-6);
    /* transformers 5 moved rope_theta and rope_scaling into "rope_parameters". */
    json_t *rp = json_object_get(im->config, "rope_parameters");
    json_t *rs = json_object_get(im->config, "rope_scaling");
    if (!json_is_object(rs))
        rs = rp;
    im->theta = num(json_object_get(im->config, "rope_theta"), num(json_object_get(rp, "rope_theta"), 10000.0));
    json_t *tie = json_object_get(im->config, "tie_word_embeddings");
    im->tie = json_is_boolean(tie) ? json_is_true(tie) : false;
    im->quant = json_object_get(im->config, "quantization");
    if (!im->quant)
        im->quant = json_object_get(im->config, "quantization_config");
    if (im->quant && !json_is_object(im->quant))
        im->quant = NULL;

    if (json_is_object(rs)) {
        const char *type = json_string_value(json_object_get(rs, "rope_type"));
        if (!type)
            type = json_string_value(json_object_get(rs, "type"));
        if (type && strcmp(type, "llama3") == 0) {
            /* llama.cpp's converter stores per-pair divisors of the base frequencies (float32 math, as
             * its torch code does): 1 for short wavelengths, factor for long ones, a smooth blend
             * between. */
            float factor = (float)num(json_object_get(rs, "factor"), 8.0);
            float lo = (float)num(json_object_get(rs, "low_freq_factor"), 1.0);
            float hi = (float)num(json_object_get(rs, "high_freq_factor"), 4.0);
            float old_ctx = (float)num(json_object_get(rs, "original_max_position_embeddings"), 8192);
            float lo_wl = old_ctx / lo, hi_wl = old_ctx / hi;
            int64_t n = im->head_dim / 2;
            im->rope_freqs = malloc((size_t)n * sizeof *im->rope_freqs);
            if (!im->rope_freqs)
                return err_set(e, ERR_NOMEM, "out of memory");
            for (int64_t i = 0; i < n; i++) {
                float p = (float)pow(im->theta, (double)((float)(2 * i) / (float)im->head_dim));
                float freq = 1.0f / p;
                float wl = (float)(2.0 * 3.14159265358979323846) / freq;
                float f;
                if (wl < hi_wl) {
                    f = 1.0f;
                } else if (wl > lo_wl) {
                    f = factor;
                } else {
                    float smooth = (old_ctx / wl - lo) / (hi - lo);
                    f = 1.0f / ((1.0f - smooth) / factor + smooth);
                }
                im->rope_freqs[i] = f;
            }
        } else if (type && strcmp(type, "default") != 0 && strcmp(type, "linear") != 0) {
            return err_set(e, ERR_UNSUPPORTED, "%s/config.json: rope scaling type '%s' cannot be imported", im->dir,
                           type);
        }
    }
    return 0;
}

/* ---- tensors ---- */

/* HF name -> GGUF name; false for a name with no counterpart. */
static bool map_name(const struct imp *im, const char *hf, char *out, size_t cap)
{
    static const struct {
        const char *hf, *gguf;
    } layer_map[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    if (strcmp(hf, "model.embed_tokens.weight") == 0)
        return snprintf(out, cap, "token_embd.weight") > 0;
    if (strcmp(hf, "model.norm.weight") == 0)
        return snprintf(out, cap, "output_norm.weight") > 0;
    if (strcmp(hf, "lm_head.weight") == 0)
        return snprintf(out, cap, "output.weight") > 0;
    unsigned layer;
    int used = 0;
    if (sscanf(hf, "model.layers.%u.%n", &layer, &used) != 1 || used == 0 || layer >= (unsigned)im->n_layer)
        return false;
    for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++)
        if (strcmp(hf + used, layer_map[i].hf) == 0) {
            if (im->arch != ARCH_QWEN3 && strstr(layer_map[i].gguf, "_norm.") && layer_map[i].gguf[0] == 'a' &&
                strcmp(layer_map[i].gguf, "attn_norm.weight") != 0)
                return false; /* q/k norms exist only in qwen3 */
            snprintf(out, cap, "blk.%u.%s", layer, layer_map[i].gguf);
            return true;
        }
    return false;
}

/* Expected HF shape [rows, cols] (cols 0: 1-D) of a GGUF tensor, from the config. */
static bool expected_shape(const struct imp *im, const char *g, int64_t *rows, int64_t *cols)
{
    int64_t q = im->n_head * im->head_dim, kv = im->n_head_kv * im->head_dim;
    const char *s = g;
    if (strncmp(g, "blk.", 4) == 0)
        s = strchr(g + 4, '.') + 1;
    *cols = im->n_embd;
    if (!strcmp(s, "token_embd.weight") || !strcmp(s, "output.weight"))
        *rows = im->n_vocab;
    else if (!strcmp(s, "attn_q.weight"))
        *rows = q;
    else if (!strcmp(s, "attn_k.weight") || !strcmp(s, "attn_v.weight"))
        *rows = kv;
    else if (!strcmp(s, "attn_output.weight"))
        *rows = im->n_embd, *cols = q;
    else if (!strcmp(s, "ffn_gate.weight") || !strcmp(s, "ffn_up.weight"))
        *rows = im->n_ff;
    else if (!strcmp(s, "ffn_down.weight"))
        *rows = im->n_embd, *cols = im->n_ff;
    else if (!strcmp(s, "attn_q.bias"))
        *rows = q, *cols = 0;
    else if (!strcmp(s, "attn_k.bias") || !strcmp(s, "attn_v.bias"))
        *rows = kv, *cols = 0;
    else if (!strcmp(s, "attn_q_norm.weight") || !strcmp(s, "attn_k_norm.weight"))
        *rows = im->head_dim, *cols = 0;
    else if (!strcmp(s, "attn_norm.weight") || !strcmp(s, "ffn_norm.weight") || !strcmp(s, "output_norm.weight"))
        *rows = im->n_embd, *cols = 0;
    else
        return false;
    return true;
}

/* MLX quantization of one module: the top-level group_size/bits, or a per-module override
 * ("model.layers.0.mlp.down_proj": {...}). */
static void mlx_params(const struct imp *im, const char *hf_weight, int *bits, int *group)
{
    *bits = (int)num(json_object_get(im->quant, "bits"), 4);
    *group = (int)num(json_object_get(im->quant, "group_size"), 64);
    char mod[256];
    size_t n = strlen(hf_weight) - strlen(".weight");
    if (n >= sizeof mod)
        return;
    memcpy(mod, hf_weight, n);
    mod[n] = '\0';
    json_t *o = json_object_get(im->quant, mod);
    if (json_is_object(o)) {
        *bits = (int)num(json_object_get(o, "bits"), *bits);
        *group = (int)num(json_object_get(o, "group_size"), *group);
    }
}

static bool float_dtype(enum safetensors_dtype t)
{
    return t == ST_F32 || t == ST_F16 || t == ST_BF16 || t == ST_F64;
}

/* The GGUF type an MLX-quantized matrix becomes (see store.h). */
static uint32_t mlx_target(int bits, int group, int64_t cols)
{
    if (bits == 8)
        return cols % 32 == 0 ? DT_Q8_0 : DT_F16;
    if (group != 32 && cols % 256 == 0)
        return DT_Q4_K;
    return cols % 32 == 0 ? DT_Q4_1 : DT_F16;
}

static int plan_tensor(struct imp *im, const struct safetensors_tensor *t, const char *file, struct job *j,
                       struct err *e)
{
    memset(j, 0, sizeof *j);
    j->w = t;
    j->file = file;
    if (!map_name(im, t->name, j->name, sizeof j->name))
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s' has no counterpart in a GGUF %s model", file, t->name,
                       im->arch_name);
    int64_t rows, cols;
    if (!expected_shape(im, j->name, &rows, &cols))
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s' is not supported", file, t->name);
    int64_t got_rows = t->n_dims >= 1 ? t->shape[0] : 1, got_cols = t->n_dims == 2 ? t->shape[1] : 0;

    if (t->dtype == ST_U32 && t->n_dims == 2 && im->quant) {
        /* MLX: [rows, cols * bits / 32] packed words plus [rows, cols / group] scales and biases. */
        char sn[300], bn[300];
        size_t base = strlen(t->name) - strlen(".weight");
        snprintf(sn, sizeof sn, "%.*s.scales", (int)base, t->name);
        snprintf(bn, sizeof bn, "%.*s.biases", (int)base, t->name);
        j->scales = find(im, sn, NULL);
        j->biases = find(im, bn, NULL);
        mlx_params(im, t->name, &j->bits, &j->group);
        if (!j->scales || !j->biases)
            return err_set(e, ERR_FORMAT, "%s: quantized tensor '%s' lacks its .scales or .biases", file, t->name);
        if ((j->bits != 4 && j->bits != 8) || (j->group != 32 && j->group != 64 && j->group != 128))
            return err_set(e, ERR_UNSUPPORTED,
                           "%s: tensor '%s': MLX quantization with %d bits, group size %d (supported: 4 or 8 bits, "
                           "groups of 32, 64 or 128)",
                           file, t->name, j->bits, j->group);
        got_cols = t->shape[1] * 32 / j->bits;
        const struct safetensors_tensor *sb[2] = {j->scales, j->biases};
        for (int k = 0; k < 2; k++)
            if (sb[k]->n_dims != 2 || sb[k]->shape[0] != got_rows || sb[k]->shape[1] * j->group != got_cols ||
                !float_dtype(sb[k]->dtype))
                return err_set(e, ERR_FORMAT,
                               "%s: tensor '%s' does not match %d-bit groups of %d for %lld x %lld weights (shape or "
                               "dtype)",
                               file, sb[k]->name, j->bits, j->group, (long long)got_rows, (long long)got_cols);
    } else if (!float_dtype(t->dtype)) {
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected F32, F16 or BF16)", file, t->name,
                       safetensors_dtype_name(t->dtype));
    }
    if (got_rows != rows || got_cols != cols || t->n_dims != (cols ? 2u : 1u))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s' has shape [%lld%s%lld], config.json implies [%lld%s%lld]", file,
                       t->name, (long long)got_rows, got_cols ? ", " : "", got_cols ? (long long)got_cols : 0LL,
                       (long long)rows, cols ? ", " : "", cols ? (long long)cols : 0LL);
    if (cols) {
        j->n_dims = 2;
        j->ne[0] = cols;
        j->ne[1] = rows;
    } else {
        j->n_dims = 1;
        j->ne[0] = rows;
        j->ne[1] = 1;
    }
    /* llama's GGUF rope rotates interleaved pairs; HF's rotates halves: re-order Q and K rows. */
    if (im->arch == ARCH_LLAMA) {
        if (strstr(j->name, ".attn_q."))
            j->perm_heads = (int)im->n_head;
        else if (strstr(j->name, ".attn_k."))
            j->perm_heads = (int)im->n_head_kv;
    }
    if (j->scales)
        j->type = im->for_quantize ? DT_F16 : mlx_target(j->bits, j->group, cols);
    else if (!cols || t->dtype == ST_F32 || t->dtype == ST_F64)
        j->type = DT_F32; /* norms and biases stay F32, as llama.cpp keeps them */
    else
        j->type = t->dtype == ST_F16 ? DT_F16 : DT_BF16;
    return 0;
}

static int plan(struct imp *im, struct err *e)
{
    size_t cap = 0;
    for (size_t f = 0; f < im->n_files; f++)
        cap += im->files[f]->n_tensors;
    im->jobs = calloc(cap + 1, sizeof *im->jobs);
    if (!im->jobs)
        return err_set(e, ERR_NOMEM, "out of memory");
    bool has_lm_head = false;
    for (size_t f = 0; f < im->n_files; f++) {
        const struct safetensors_file *sf = im->files[f];
        for (size_t i = 0; i < sf->n_tensors; i++) {
            const struct safetensors_tensor *t = &sf->tensors[i];
            if (ends_with(t->name, "rotary_emb.inv_freq"))
                continue; /* recomputed from the config */
            if (ends_with(t->name, ".scales") || ends_with(t->name, ".biases")) {
                char w[300];
                snprintf(w, sizeof w, "%.*s.weight", (int)(strlen(t->name) - 7), t->name);
                const struct safetensors_tensor *wt = find(im, w, NULL);
                if (wt && wt->dtype == ST_U32 && im->quant)
                    continue; /* consumed with its weight */
            }
            if (strcmp(t->name, "lm_head.weight") == 0) {
                if (im->tie)
                    continue;
                has_lm_head = true;
            }
            int rc = plan_tensor(im, t, sf->path, &im->jobs[im->n_jobs], e);
            if (rc)
                return rc;
            for (size_t k = 0; k < im->n_jobs; k++)
                if (strcmp(im->jobs[k].name, im->jobs[im->n_jobs].name) == 0)
                    return err_set(e, ERR_FORMAT, "%s: tensor '%s' appears in more than one shard", sf->path, t->name);
            im->n_jobs++;
        }
    }
    if (!has_lm_head)
        im->tie = true;
    /* Every tensor the runtime needs must be there. */
    static const char *const per_layer[] = {"attn_norm.weight", "attn_q.weight",  "attn_k.weight",
                                            "attn_v.weight",    "attn_output.weight", "ffn_norm.weight",
                                            "ffn_gate.weight",  "ffn_up.weight",  "ffn_down.weight"};
    char need[96];
    for (int64_t l = -1; l < im->n_layer; l++) {
        size_t n = l < 0 ? 2 : sizeof per_layer / sizeof per_layer[0];
        for (size_t k = 0; k < n; k++) {
            if (l < 0)
                snprintf(need, sizeof need, "%s", k == 0 ? "token_embd.weight" : "output_norm.weight");
            else
                snprintf(need, sizeof need, "blk.%lld.%s", (long long)l, per_layer[k]);
            bool found = false;
            for (size_t j = 0; j < im->n_jobs && !found; j++)
                found = strcmp(im->jobs[j].name, need) == 0;
            if (!found)
                return err_set(e, ERR_FORMAT, "%s: the checkpoint lacks the tensor that becomes '%s'", im->dir, need);
        }
    }
    return 0;
}

/* ---- tensor bytes ---- */

static float load_float(const uint8_t *p, enum safetensors_dtype t)
{
    switch (t) {
    case ST_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case ST_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return fp16_to_f32(h);
    }
    case ST_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return bf16_to_f32(h);
    }
    case ST_F64: {
        double d;
        memcpy(&d, p, 8);
        return (float)d;
    }
    default:
        return 0.0f;
    }
}

/* Row r of the GGUF tensor comes from HF row src_row(r): within each head, GGUF's pair (2i, 2i+1)
 * is HF's (i, i + head_dim/2). */
static int64_t src_row(const struct job *j, int64_t r, int64_t n_rows)
{
    if (!j->perm_heads)
        return r;
    int64_t hd = n_rows / j->perm_heads, h = r / hd, rem = r % hd;
    return h * hd + (rem % 2) * (hd / 2) + rem / 2;
}

/* One HF row as float32 (dequantizing MLX groups: w = scale * q + bias). */
static void read_row(const struct job *j, int64_t sr, int64_t cols, float *out)
{
    const struct safetensors_tensor *t = j->w;
    if (j->scales) {
        const uint8_t *words = (const uint8_t *)t->data + (size_t)sr * (size_t)t->shape[1] * 4;
        int64_t ng = cols / j->group;
        size_t ss = safetensors_dtype_size(j->scales->dtype), bs = safetensors_dtype_size(j->biases->dtype);
        const uint8_t *sp = (const uint8_t *)j->scales->data + (size_t)(sr * ng) * ss;
        const uint8_t *bp = (const uint8_t *)j->biases->data + (size_t)(sr * ng) * bs;
        uint32_t mask = (1u << j->bits) - 1;
        int per_word = 32 / j->bits;
        enum safetensors_dtype st = j->scales->dtype;
        for (int64_t g = 0; g < ng; g++) {
            float s = load_float(sp + g * ss, st), b = load_float(bp + g * bs, j->biases->dtype);
            for (int64_t c = g * j->group; c < (g + 1) * j->group; c++) {
                uint32_t w;
                memcpy(&w, words + (c / per_word) * 4, 4);
                uint32_t q = (w >> ((c % per_word) * j->bits)) & mask;
                /* MLX dequantizes in the scales' dtype: s * q is exact in float32 (q has at most 8
                 * bits), so one rounding of s * q + b to that dtype gives MLX's weight. */
                float v = s * (float)q + b;
                if (st == ST_F16)
                    v = fp16_to_f32(f32_to_fp16(v));
                else if (st == ST_BF16)
                    v = bf16_to_f32(f32_to_bf16(v));
                out[c] = v;
            }
        }
        return;
    }
    size_t es = safetensors_dtype_size(t->dtype);
    const uint8_t *p = (const uint8_t *)t->data + (size_t)sr * (size_t)cols * es;
    for (int64_t c = 0; c < cols; c++)
        out[c] = load_float(p + c * es, t->dtype);
}

/* Rows of one converted matrix, split over the pool's threads: each converts rows
 * [t * rows / n, (t + 1) * rows / n) with its own float buffer. */
struct fill_work {
    const struct job *j;
    uint8_t *out;
    int64_t rows, cols;
    size_t rb;
    int *rc;        /* per thread */
    struct err *es; /* per thread */
};

static void fill_rows(void *ctx, int t, int n)
{
    struct fill_work *fw = ctx;
    const struct job *j = fw->j;
    int64_t lo = fw->rows * t / n, hi = fw->rows * (t + 1) / n;
    if (lo >= hi)
        return;
    float *row = malloc((size_t)fw->cols * sizeof *row);
    if (!row) {
        fw->rc[t] = err_set(&fw->es[t], ERR_NOMEM, "out of memory");
        return;
    }
    for (int64_t r = lo; r < hi; r++) {
        read_row(j, src_row(j, r, fw->rows), fw->cols, row);
        int rc = dtype_quantize(j->type, row, fw->out + (size_t)r * fw->rb, fw->cols, &fw->es[t]);
        if (rc) {
            fw->rc[t] = rc;
            err_prefix(&fw->es[t], "%s: tensor '%s'", j->file, j->w->name);
            break;
        }
    }
    free(row);
}

static int fill_tensor(void *ctx, void *dst, size_t size, struct err *e)
{
    const struct job *j = ctx;
    uint8_t *out = dst;
    if (j->n_dims == 1) {
        /* Biases of permuted projections are permuted like their rows. */
        int64_t n = j->ne[0];
        float *v = malloc((size_t)n * sizeof *v);
        if (!v)
            return err_set(e, ERR_NOMEM, "out of memory");
        read_row(&(struct job){.w = j->w}, 0, n, v);
        for (int64_t r = 0; r < n; r++) {
            float x = v[src_row(j, r, n)];
            memcpy(out + r * 4, &x, 4);
        }
        free(v);
        return 0;
    }
    int64_t cols = j->ne[0], rows = j->ne[1];
    size_t rb = dtype_row_bytes(j->type, cols);
    if (rb * (size_t)rows != size)
        return err_set(e, ERR_FORMAT, "tensor '%s': size mismatch", j->name);
    /* Same type in and out: copy the bytes (no rounding through float32). */
    bool raw = !j->scales && ((j->type == DT_F32 && j->w->dtype == ST_F32) ||
                              (j->type == DT_F16 && j->w->dtype == ST_F16) ||
                              (j->type == DT_BF16 && j->w->dtype == ST_BF16));
    if (raw) {
        for (int64_t r = 0; r < rows; r++)
            memcpy(out + (size_t)r * rb, (const uint8_t *)j->w->data + (size_t)src_row(j, r, rows) * rb, rb);
        return 0;
    }
    /* Dequantizing MLX groups and re-quantizing (or converting dtypes) is the slow part of an
     * import: spread the rows over the pool. */
    int nt = j->pool ? threadpool_size(j->pool) : 1;
    struct fill_work fw = {.j = j, .out = out, .rows = rows, .cols = cols, .rb = rb};
    fw.rc = calloc((size_t)nt, sizeof *fw.rc);
    fw.es = calloc((size_t)nt, sizeof *fw.es);
    int rc = 0;
    if (!fw.rc || !fw.es) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
    } else {
        if (j->pool)
            threadpool_run(j->pool, fill_rows, &fw);
        else
            fill_rows(&fw, 0, 1);
        for (int t = 0; t < nt && !rc; t++)
            if (fw.rc[t]) {
                rc = fw.rc[t];
                *e = fw.es[t];
            }
    }
    free(fw.rc);
    free(fw.es);
    return rc;
}

/* ---- tokenizer ---- */

/* Known pre-tokenizer split patterns -> tokenizer.ggml.pre. */
static const struct {
    const char *name, *regex;
} pre_regexes[] = {
    {"llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
              "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"tekken", "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}"
               "\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
               "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"gpt-4o", "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'"
               "ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*("
               "?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

static int detect_pre(struct imp *im, const char **name, struct err *e)
{
    json_t *pt = json_object_get(im->tok, "pre_tokenizer");
    const char *type = json_string_value(json_object_get(pt, "type"));
    json_t *list = type && strcmp(type, "Sequence") == 0 ? json_object_get(pt, "pretokenizers") : NULL;
    size_t n = list ? json_array_size(list) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *p = list ? json_array_get(list, i) : pt;
        const char *pty = json_string_value(json_object_get(p, "type"));
        if (!pty)
            continue;
        if (strcmp(pty, "Split") == 0) {
            const char *re = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
            for (size_t k = 0; re && k < sizeof pre_regexes / sizeof pre_regexes[0]; k++)
                if (strcmp(re, pre_regexes[k].regex) == 0) {
                    *name = pre_regexes[k].name;
                    return 0;
                }
            return err_set(e, ERR_UNSUPPORTED,
                           "%s/tokenizer.json: pre-tokenizer split pattern %.120s%s is not one hearth knows", im->dir,
                           re ? re : "(not a regex)", re && strlen(re) > 120 ? "..." : "");
        }
        if (strcmp(pty, "ByteLevel") == 0 && json_is_true(json_object_get(p, "use_regex"))) {
            *name = "gpt-2";
            return 0;
        }
    }
    return err_set(e, ERR_UNSUPPORTED, "%s/tokenizer.json: no recognizable byte-level pre-tokenizer", im->dir);
}

/* llama.cpp marks added tokens that look like control tokens as CONTROL even when not "special". */
static bool looks_special(const char *s)
{
    size_t n = strlen(s);
    return (n >= 4 && strncmp(s, "<|", 2) == 0 && strcmp(s + n - 2, "|>") == 0) || !strcmp(s, "<pad>") ||
           !strcmp(s, "<mask>");
}

static int set_token(struct imp *im, int64_t id, const char *s, int32_t type, struct err *e)
{
    if (id < 0 || (size_t)id >= im->n_tokens)
        return err_set(e, ERR_FORMAT, "%s/tokenizer.json: token '%.60s' has id %lld, outside the %zu-row embedding",
                       im->dir, s, (long long)id, im->n_tokens);
    free(im->tokens[id]);
    if (!(im->tokens[id] = strdup(s)))
        return err_set(e, ERR_NOMEM, "out of memory");
    im->token_types[id] = type;
    return 0;
}

/* Id of a special token named in tokenizer_config.json (a string or {"content": ...}); -1 if none. */
static int64_t cfg_token_id(struct imp *im, const char *key)
{
    json_t *v = json_object_get(im->tokcfg, key);
    const char *s = json_is_object(v) ? json_string_value(json_object_get(v, "content")) : json_string_value(v);
    if (!s)
        return -1;
    for (size_t i = 0; i < im->n_tokens; i++)
        if (im->tokens[i] && strcmp(im->tokens[i], s) == 0)
            return (int64_t)i;
    return -1;
}

static bool is_byte_token(const char *s)
{
    return strlen(s) == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' &&
           strchr("0123456789ABCDEFabcdef", s[3]) && strchr("0123456789ABCDEFabcdef", s[4]);
}

/* Does a SentencePiece-style tokenizer.json put "▁" in front of the text? Older files say so with a
 * Prepend normalizer, newer ones with a Metaspace pre-tokenizer (prepend_scheme "first"/"always"). */
static bool spm_space_prefix(json_t *norm, json_t *pre)
{
    const char *nt = json_string_value(json_object_get(norm, "type"));
    if (nt && strcmp(nt, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(norm, "normalizers"), i, v) if (spm_space_prefix(v, NULL)) return true;
    } else if (nt && strcmp(nt, "Prepend") == 0) {
        return true;
    }
    const char *pt = json_string_value(json_object_get(pre, "type"));
    if (pt && strcmp(pt, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(pre, "pretokenizers"), i, v) if (spm_space_prefix(NULL, v)) return true;
    } else if (pt && strcmp(pt, "Metaspace") == 0) {
        const char *scheme = json_string_value(json_object_get(pre, "prepend_scheme"));
        if (scheme)
            return strcmp(scheme, "never") != 0;
        return !json_is_false(json_object_get(pre, "add_prefix_space"));
    }
    return false;
}

/* SentencePiece scores from the merge list. GGUF's "llama" tokenizer merges the adjacent pair whose
 * concatenation scores highest, so a token made by merge rank r scores -r: the merge order the
 * tokenizer.json encodes is then replayed exactly. (llama.cpp's converter writes -1000 for every
 * token of such a file, which loses that order.) Tokens no merge makes (single characters) rank
 * below every merge, in id order, as SentencePiece lists them; bytes and control tokens score 0. */
static int spm_scores(struct imp *im, json_t *vocab, float **out, struct err *e)
{
    float *sc = malloc(im->n_tokens * sizeof *sc);
    bool *set = calloc(im->n_tokens, sizeof *set);
    char *buf = NULL;
    size_t cap = 0;
    if (!sc || !set) {
        free(sc);
        free(set);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < im->n_merges; i++) {
        /* "a b": SentencePiece pieces spell spaces as U+2581, so the only plain space separates. */
        const char *m = im->merges[i], *sp = m[0] ? strchr(m + 1, ' ') : NULL;
        if (!sp)
            continue;
        size_t n = strlen(m);
        if (n > cap) {
            char *nb = realloc(buf, n + 1);
            if (!nb) {
                free(buf);
                free(sc);
                free(set);
                return err_set(e, ERR_NOMEM, "out of memory");
            }
            buf = nb;
            cap = n;
        }
        size_t la = (size_t)(sp - m);
        memcpy(buf, m, la);
        strcpy(buf + la, sp + 1);
        json_t *id = json_object_get(vocab, buf);
        if (json_is_integer(id) && json_integer_value(id) >= 0 && (size_t)json_integer_value(id) < im->n_tokens &&
            !set[json_integer_value(id)]) {
            sc[json_integer_value(id)] = -(float)i;
            set[json_integer_value(id)] = true;
        }
    }
    for (size_t k = 0; k < im->n_tokens; k++)
        if (!set[k])
            sc[k] = im->token_types[k] == 1 ? -(float)(im->n_merges + k) : 0.0f;
    free(buf);
    free(set);
    *out = sc;
    return 0;
}

/* Whether tokenizer.json's post-processor (a TemplateProcessing, alone or in a Sequence; the last one
 * decides) puts a special token first (at_end false) or, with more than one piece, last in a single
 * sequence. */
static bool post_processor_adds(const struct imp *im, bool at_end)
{
    json_t *pp = json_object_get(im->tok, "post_processor");
    json_t *procs = json_object_get(pp, "processors");
    const size_t np = json_is_array(procs) ? json_array_size(procs) : 1;
    bool adds = false;
    for (size_t k = 0; k < np; k++) {
        json_t *p = json_is_array(procs) ? json_array_get(procs, k) : pp;
        const char *pty = json_string_value(json_object_get(p, "type"));
        json_t *single = json_object_get(p, "single");
        if (!pty || strcmp(pty, "TemplateProcessing") != 0)
            continue;
        if (!at_end)
            adds = json_object_get(json_array_get(single, 0), "SpecialToken") != NULL;
        else if (json_array_size(single) > 1)
            adds = json_object_get(json_array_get(single, json_array_size(single) - 1), "SpecialToken") != NULL;
    }
    return adds;
}

static int write_tokenizer(struct imp *im, struct gguf_writer *w, struct err *e)
{
    json_t *model = json_object_get(im->tok, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    /* byte_fallback marks a SentencePiece model converted to tokenizer.json (Llama 2, Mistral 7B):
     * it becomes GGUF's "llama" tokenizer; without it, byte-level BPE ("gpt2"). */
    bool spm = json_is_true(json_object_get(model, "byte_fallback"));
    if (!type || strcmp(type, "BPE") != 0)
        return err_set(e, ERR_UNSUPPORTED,
                       "%s/tokenizer.json: model type %s cannot be imported (supported: BPE, byte-level or "
                       "SentencePiece-style with byte_fallback)",
                       im->dir, type ? type : "unknown");
    const char *pre = "default";
    int rc = spm ? 0 : detect_pre(im, &pre, e);
    if (rc)
        return rc;
    /* One token per embedding row; rows no token names are padding, as the converter writes them. */
    im->n_tokens = (size_t)im->n_vocab;
    im->tokens = calloc(im->n_tokens, sizeof *im->tokens);
    im->token_types = calloc(im->n_tokens, sizeof *im->token_types);
    if (!im->tokens || !im->token_types)
        return err_set(e, ERR_NOMEM, "out of memory");
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return err_set(e, ERR_FORMAT, "%s/tokenizer.json: model.vocab is not an object", im->dir);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if ((rc = set_token(im, json_integer_value(val), key, spm && is_byte_token(key) ? 6 : 1, e)))
            return rc;
    }
    json_t *added = json_object_get(im->tok, "added_tokens");
    size_t i;
    json_array_foreach(added, i, val) {
        const char *s = json_string_value(json_object_get(val, "content"));
        if (!s || !json_is_integer(json_object_get(val, "id")))
            return err_set(e, ERR_FORMAT, "%s/tokenizer.json: added_tokens[%zu] lacks content or id", im->dir, i);
        bool special = json_is_true(json_object_get(val, "special")) || looks_special(s);
        if ((rc = set_token(im, json_integer_value(json_object_get(val, "id")), s,
                            spm && is_byte_token(s) ? 6 : special ? 3 : 4, e)))
            return rc;
    }
    int64_t unk = -1;
    if (spm) {
        const char *u = json_string_value(json_object_get(model, "unk_token"));
        json_t *uid = u ? json_object_get(vocab, u) : NULL;
        if (json_is_integer(uid) && json_integer_value(uid) >= 0 && (size_t)json_integer_value(uid) < im->n_tokens) {
            unk = json_integer_value(uid);
            im->token_types[unk] = 2;
        }
    }
    for (size_t k = 0; k < im->n_tokens; k++)
        if (!im->tokens[k]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%zu]", k);
            if (!(im->tokens[k] = strdup(pad)))
                return err_set(e, ERR_NOMEM, "out of memory");
            im->token_types[k] = 5;
        }
    json_t *merges = json_object_get(model, "merges");
    im->n_merges = json_array_size(merges);
    im->merges = calloc(im->n_merges + 1, sizeof *im->merges);
    if (!im->merges)
        return err_set(e, ERR_NOMEM, "out of memory");
    json_array_foreach(merges, i, val) {
        /* Older files write "a b", newer ones ["a", "b"]. */
        if (json_is_string(val)) {
            im->merges[i] = strdup(json_string_value(val));
        } else {
            const char *a = json_string_value(json_array_get(val, 0)), *b = json_string_value(json_array_get(val, 1));
            if (!a || !b)
                return err_set(e, ERR_FORMAT, "%s/tokenizer.json: merges[%zu] is not a pair of strings", im->dir, i);
            size_t n = strlen(a) + strlen(b) + 2;
            if ((im->merges[i] = malloc(n)))
                snprintf(im->merges[i], n, "%s %s", a, b);
        }
        if (!im->merges[i])
            return err_set(e, ERR_NOMEM, "out of memory");
    }

    int64_t bos = cfg_token_id(im, "bos_token"), eos = cfg_token_id(im, "eos_token"),
            pad = cfg_token_id(im, "pad_token");
    json_t *cb = json_object_get(im->config, "bos_token_id"), *ce = json_object_get(im->config, "eos_token_id");
    if (bos < 0 && json_is_integer(cb))
        bos = json_integer_value(cb);
    if (eos < 0 && json_is_integer(ce))
        eos = json_integer_value(ce);
    if (eos < 0 && json_is_array(ce) && json_is_integer(json_array_get(ce, 0)))
        eos = json_integer_value(json_array_get(ce, 0));
    /* add_bos_token / add_eos_token: tokenizer_config.json says so, else the post-processor puts a
     * special token first / last. */
    json_t *ab = json_object_get(im->tokcfg, "add_bos_token"), *ae = json_object_get(im->tokcfg, "add_eos_token");
    const bool add_bos = json_is_boolean(ab) ? json_is_true(ab) : post_processor_adds(im, false);
    const bool add_eos = json_is_boolean(ae) ? json_is_true(ae) : post_processor_adds(im, true);
    const char *tmpl = json_string_value(json_object_get(im->tokcfg, "chat_template"));
    json_t *tl = json_object_get(im->tokcfg, "chat_template");
    if (json_is_array(tl)) /* [{"name": "default", "template": ...}, ...] */
        json_array_foreach(tl, i, val) if (json_is_string(json_object_get(val, "name")) &&
                                           !strcmp(json_string_value(json_object_get(val, "name")), "default"))
            tmpl = json_string_value(json_object_get(val, "template"));
    char *tmpl_file = NULL;
    if (!tmpl) { /* newer checkpoints keep it in chat_template.jinja */
        char *p = path_join(im->dir, "chat_template.jinja");
        size_t sz;
        struct err ignore;
        if (p && file_read_all(p, &tmpl_file, &sz, &ignore) == 0)
            tmpl = tmpl_file;
        free(p);
    }

    float *scores = NULL;
    if (spm && (rc = spm_scores(im, vocab, &scores, e))) {
        free(tmpl_file);
        return rc;
    }
    rc = gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)im->tokens, im->n_tokens);
    if (!rc && spm)
        rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, im->n_tokens);
    free(scores);
    rc = rc ? rc : gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, im->token_types, im->n_tokens);
    if (!rc && !spm)
        rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)im->merges, im->n_merges);
    if (!rc && spm) {
        rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
        rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix",
                                            spm_space_prefix(json_object_get(im->tok, "normalizer"),
                                                             json_object_get(im->tok, "pre_tokenizer")));
        if (!rc && unk >= 0)
            rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    }
    if (!rc && eos >= 0)
        rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (!rc && pad >= 0)
        rc = gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    if (!rc && bos >= 0)
        rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    if (!rc && tmpl)
        rc = gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    free(tmpl_file);
    return rc ? err_set(e, rc, "out of memory") : 0;
}

/* ---- shards ---- */

static int add_file(struct imp *im, const char *name, struct err *e)
{
    char *p = path_join(im->dir, name);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < im->n_files; i++)
        if (strcmp(im->files[i]->path, p) == 0) {
            free(p);
            return 0;
        }
    struct safetensors_file **nf = realloc(im->files, (im->n_files + 1) * sizeof *nf);
    if (!nf) {
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    im->files = nf;
    int rc = safetensors_open(p, &im->files[im->n_files], e);
    free(p);
    if (!rc)
        im->n_files++;
    return rc;
}

static int open_shards(struct imp *im, struct err *e)
{
    json_t *index = NULL;
    int rc = load_json(im->dir, "model.safetensors.index.json", false, 0, &index, e);
    if (rc)
        return rc;
    if (!index)
        return add_file(im, "model.safetensors", e);
    json_t *map = json_object_get(index, "weight_map");
    if (!json_is_object(map)) {
        json_decref(index);
        return err_set(e, ERR_FORMAT, "%s/model.safetensors.index.json: missing \"weight_map\"", im->dir);
    }
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        const char *f = json_string_value(val);
        if (!f || strchr(f, '/') || !strcmp(f, "..")) {
            rc = err_set(e, ERR_FORMAT, "%s/model.safetensors.index.json: bad shard name for '%s'", im->dir, key);
            break;
        }
        if ((rc = add_file(im, f, e)))
            break;
    }
    /* Every tensor the index names must be in its shard. */
    if (!rc)
        json_object_foreach(map, key, val) {
            const char *file;
            if (!find(im, key, &file)) {
                rc = err_set(e, ERR_FORMAT, "%s/model.safetensors.index.json: tensor '%s' is not in %s", im->dir, key,
                             json_string_value(val));
                break;
            }
        }
    json_decref(index);
    return rc;
}

/* ---- the whole import ---- */

static void imp_free(struct imp *im)
{
    for (size_t i = 0; i < im->n_files; i++)
        safetensors_close(im->files[i]);
    free(im->files);
    json_decref(im->config);
    json_decref(im->tok);
    json_decref(im->tokcfg);
    free(im->jobs);
    free(im->rope_freqs);
    if (im->pool)
        threadpool_free(im->pool);
    for (size_t i = 0; i < im->n_tokens && im->tokens; i++)
        free(im->tokens[i]);
    free(im->tokens);
    free(im->token_types);
    for (size_t i = 0; i < im->n_merges && im->merges; i++)
        free(im->merges[i]);
    free(im->merges);
}

static void progress(const struct store_import_opts *o, const char *status)
{
    if (o && o->progress)
        o->progress(o->progress_ctx, status, 0, 0);
}

/* llama.cpp file type of the tensor type holding the most bytes. */
static uint32_t file_type(const struct imp *im)
{
    size_t best = 0;
    uint32_t t = DT_F32;
    for (size_t i = 0; i < im->n_jobs; i++) {
        size_t b = dtype_row_bytes(im->jobs[i].type, im->jobs[i].ne[0]) * (size_t)im->jobs[i].ne[1];
        if (im->jobs[i].n_dims == 2 && b > best) {
            best = b;
            t = im->jobs[i].type;
        }
    }
    switch (t) {
    case DT_F16: return 1;
    case DT_Q4_1: return 3;
    case DT_Q8_0: return 7;
    case DT_Q4_K: return 14;
    case DT_BF16: return 32;
    default: return 0;
    }
}

static int write_gguf(struct imp *im, const char *out, struct err *e)
{
    struct gguf_writer *w = gguf_writer_new();
    if (!w)
        return err_set(e, ERR_NOMEM, "out of memory");
    char key[128];
    const char *an = im->arch_name;
    int rc = gguf_writer_set_str(w, "general.architecture", an);
    const char *slash = strrchr(im->dir, '/');
    const char *base = slash && slash[1] ? slash + 1 : im->dir;
    rc = rc ? rc : gguf_writer_set_str(w, "general.type", "model");
    rc = rc ? rc : gguf_writer_set_str(w, "general.name", base);
#define SETU(k, v)                                                                                                 \
    do {                                                                                                           \
        snprintf(key, sizeof key, "%s." k, an);                                                                    \
        rc = rc ? rc : gguf_writer_set_u32(w, key, (uint32_t)(v));                                                 \
    } while (0)
    SETU("block_count", im->n_layer);
    SETU("context_length", im->n_ctx);
    SETU("embedding_length", im->n_embd);
    SETU("feed_forward_length", im->n_ff);
    SETU("attention.head_count", im->n_head);
    SETU("attention.head_count_kv", im->n_head_kv);
    snprintf(key, sizeof key, "%s.rope.freq_base", an);
    rc = rc ? rc : gguf_writer_set_f32(w, key, (float)im->theta);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", an);
    rc = rc ? rc : gguf_writer_set_f32(w, key, (float)im->eps);
    SETU("attention.key_length", im->head_dim);
    SETU("attention.value_length", im->head_dim);
    rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type", file_type(im));
    SETU("vocab_size", im->n_vocab);
    SETU("rope.dimension_count", im->head_dim);
#undef SETU
    json_t *rs = json_object_get(im->config, "rope_scaling");
    const char *rtype = json_string_value(json_object_get(rs, "rope_type"));
    if (!rtype)
        rtype = json_string_value(json_object_get(rs, "type"));
    if (!rc && rtype && !strcmp(rtype, "linear")) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", an);
        rc = gguf_writer_set_str(w, key, "linear");
        snprintf(key, sizeof key, "%s.rope.scaling.factor", an);
        rc = rc ? rc : gguf_writer_set_f32(w, key, (float)num(json_object_get(rs, "factor"), 1.0));
    }
    rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (rc) {
        gguf_writer_free(w);
        return err_set(e, rc, "out of memory");
    }
    if ((rc = write_tokenizer(im, w, e)))
        goto done;
    if (im->rope_freqs) {
        int64_t ne = im->head_dim / 2;
        if ((rc = gguf_writer_add_tensor(w, "rope_freqs.weight", DT_F32, 1, &ne, im->rope_freqs, e)))
            goto done;
    }
    for (size_t i = 0; i < im->n_jobs; i++)
        if ((rc = gguf_writer_add_tensor_fill(w, im->jobs[i].name, im->jobs[i].type, im->jobs[i].n_dims,
                                              im->jobs[i].ne, fill_tensor, &im->jobs[i], e)))
            goto done;
    rc = gguf_writer_write(w, out, e);
done:
    gguf_writer_free(w);
    return rc;
}

int store_import_dir(const char *dir, const char *out, const struct store_import_opts *o, struct err *e)
{
    struct imp im = {.dir = dir};
    int rc;
    progress(o, "reading the checkpoint");
    /* tokenizer_config.json: integers as reals, since model_max_length is often 1e30 written out. */
    if ((rc = load_json(dir, "config.json", true, 0, &im.config, e)) ||
        (rc = load_json(dir, "tokenizer.json", true, 0, &im.tok, e)) ||
        (rc = load_json(dir, "tokenizer_config.json", false, JSON_DECODE_INT_AS_REAL, &im.tokcfg, e)) || (rc = read_config(&im, e)) ||
        (rc = open_shards(&im, e)))
        goto done;
    im.for_quantize = o && o->quantize && *o->quantize;
    if ((rc = plan(&im, e)))
        goto done;
    if ((rc = threadpool_new(o ? o->n_threads : 0, &im.pool, e)))
        goto done;
    for (size_t i = 0; i < im.n_jobs; i++)
        im.jobs[i].pool = im.pool;
    if (o && o->quantize && *o->quantize) {
        /* Convert as is into a temporary file, then let the quantizer pick per-tensor types. */
        enum store_ftype ft;
        if ((rc = store_ftype_parse(o->quantize, &ft, e)))
            goto done;
        size_t n = strlen(out) + 32;
        char *tmp = malloc(n);
        if (!tmp) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto done;
        }
        snprintf(tmp, n, "%s.import-%ld", out, (long)getpid());
        progress(o, "converting model");
        rc = write_gguf(&im, tmp, e);
        threadpool_free(im.pool); /* the quantizer brings its own */
        im.pool = NULL;
        if (!rc) {
            char status[96];
            snprintf(status, sizeof status, "quantizing model to %s", store_ftype_name(ft));
            progress(o, status);
            rc = store_quantize_file(tmp, out, ft, o->n_threads, o->progress, o->progress_ctx, e);
        }
        unlink(tmp);
        free(tmp);
        goto done;
    }
    progress(o, "converting model");
    rc = write_gguf(&im, out, e);
done:
    imp_free(&im);
    return rc;
}
