/* quantize.c — `hearth quantize`: rewrites a GGUF's weights into a quantization mix, choosing each
 * tensor's type the way llama.cpp's llama-quantize does (llama_tensor_get_type), so files made here
 * match theirs tensor for tensor: the output (or tied embedding) matrix in Q6_K, more bits for
 * attn_v and ffn_down in the _M mixes and in the first layers of Q4_K_S, norms and 1-D tensors left
 * as they are. Rows are converted in parallel on a thread pool. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "store/store_impl.h"
#include "tensor/tensor.h"

static const struct {
    const char *name;
    enum store_ftype ft;
    uint32_t llama; /* general.file_type */
    uint32_t base;  /* default tensor type */
} ftypes[] = {
    {"F32", STORE_FT_F32, 0, DT_F32},        {"F16", STORE_FT_F16, 1, DT_F16},
    {"BF16", STORE_FT_BF16, 32, DT_BF16},    {"Q8_0", STORE_FT_Q8_0, 7, DT_Q8_0},
    {"Q4_0", STORE_FT_Q4_0, 2, DT_Q4_0},     {"Q4_1", STORE_FT_Q4_1, 3, DT_Q4_1},
    {"Q5_0", STORE_FT_Q5_0, 8, DT_Q5_0},     {"Q5_1", STORE_FT_Q5_1, 9, DT_Q5_1},
    {"Q4_K_S", STORE_FT_Q4_K_S, 14, DT_Q4_K}, {"Q4_K_M", STORE_FT_Q4_K_M, 15, DT_Q4_K},
    {"Q5_K_S", STORE_FT_Q5_K_S, 16, DT_Q5_K}, {"Q5_K_M", STORE_FT_Q5_K_M, 17, DT_Q5_K},
    {"Q6_K", STORE_FT_Q6_K, 18, DT_Q6_K},
};
#define N_FTYPES (sizeof ftypes / sizeof ftypes[0])

int store_ftype_parse(const char *name, enum store_ftype *out, struct err *e)
{
    for (size_t i = 0; i < N_FTYPES; i++)
        if (strcasecmp(name, ftypes[i].name) == 0) {
            *out = ftypes[i].ft;
            return 0;
        }
    if (strcasecmp(name, "Q4_K") == 0 || strcasecmp(name, "Q5_K") == 0) {
        *out = name[1] == '4' ? STORE_FT_Q4_K_M : STORE_FT_Q5_K_M;
        return 0;
    }
    return err_set(e, ERR_INVALID,
                   "unsupported quantization type '%s' (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                   "Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K)",
                   name);
}

const char *store_ftype_name(enum store_ftype ft)
{
    return ftypes[ft].name;
}

uint32_t store_ftype_llama(enum store_ftype ft)
{
    return ftypes[ft].llama;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* llama.cpp's "use more bits" layers: the first and last eighth, and every third in between. */
static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static bool is_k(uint32_t t)
{
    return t == DT_Q4_K || t == DT_Q5_K || t == DT_Q6_K;
}

struct mix_state {
    enum store_ftype ft;
    bool has_output;
    int n_attn_v, i_attn_v;
    int n_ffn_down, i_ffn_down;
    int n_expert;
    const char *arch;
};

/* The type for one weight that the mix quantizes (llama_tensor_get_type, restricted to our mixes). */
static uint32_t mix_type(struct mix_state *st, const struct gguf_tensor *t)
{
    enum store_ftype ft = st->ft;
    uint32_t type = ftypes[ft].base;
    const char *name = t->name;
    bool km = ft == STORE_FT_Q4_K_M || ft == STORE_FT_Q5_K_M;
    bool falcon = st->arch && strcmp(st->arch, "falcon") == 0;
    if (strcmp(name, "output.weight") == 0 || (!st->has_output && strcmp(name, "token_embd.weight") == 0)) {
        if (falcon || t->ne[0] % 256 != 0)
            type = DT_Q8_0;
        else if (type != DT_Q8_0)
            type = DT_Q6_K;
    } else if (strstr(name, "attn_v.weight")) {
        if (km && use_more_bits(st->i_attn_v, st->n_attn_v))
            type = DT_Q6_K;
        else if (ft == STORE_FT_Q4_K_S && st->i_attn_v < 4)
            type = DT_Q5_K;
        if (st->n_expert == 8)
            type = DT_Q8_0;
        st->i_attn_v++;
    } else if (strstr(name, "attn_k.weight")) {
        if (st->n_expert == 8)
            type = DT_Q8_0;
    } else if (strstr(name, "ffn_down")) {
        int i = st->i_ffn_down, n = st->n_ffn_down;
        if (st->n_expert > 1) {
            /* With experts the counter runs over several tensors per layer: use the layer number. */
            int layer;
            if (sscanf(name, "blk.%d.", &layer) == 1)
                i = layer;
        }
        if (km && use_more_bits(i, n))
            type = DT_Q6_K;
        else if (ft == STORE_FT_Q4_K_S && !falcon && i < n / 8)
            type = DT_Q5_K;
        st->i_ffn_down++;
    } else if (strstr(name, "attn_output.weight")) {
        if (!falcon && st->n_expert == 8 && (ft == STORE_FT_Q4_K_S || ft == STORE_FT_Q4_K_M))
            type = DT_Q5_K;
    } else if (strstr(name, "attn_qkv.weight")) {
        if (ft == STORE_FT_Q4_K_M)
            type = DT_Q5_K;
        else if (ft == STORE_FT_Q5_K_M)
            type = DT_Q6_K;
    }
    /* Rows that do not fill whole 256-element super-blocks fall back to a 32-element format. */
    if (is_k(type) && t->ne[0] % 256 != 0)
        type = type == DT_Q4_K ? DT_Q5_0 : type == DT_Q5_K ? DT_Q5_1 : DT_Q8_0;
    return type;
}

/* Whether llama-quantize touches a tensor at all. */
static bool quantizable(const struct gguf_tensor *t)
{
    const char *n = t->name;
    if (!ends_with(n, "weight") || t->n_dims < 2)
        return false;
    if (strstr(n, "_norm.weight") || strstr(n, "ffn_gate_inp.weight") || strstr(n, "ssm_conv1d.weight") ||
        strstr(n, "pos_embd") || strstr(n, "token_types") || strstr(n, "rel_pos"))
        return false;
    return true;
}

static int cmp_name(const void *a, const void *b)
{
    const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a, *y = *(const struct gguf_tensor *const *)b;
    return strcmp(x->name, y->name);
}

struct job {
    const struct gguf_tensor *t;
    uint32_t type;
    struct threadpool *pool;
    float **scratch; /* one row per thread */
    /* per run: */
    void *dst;
    int64_t rows, row_len;
    size_t src_row, dst_row;
    atomic_int failed;
    struct err err;
};

static void convert_rows(void *ctx, int thread, int n_threads)
{
    struct job *j = ctx;
    int64_t per = (j->rows + n_threads - 1) / n_threads;
    int64_t r0 = per * thread, r1 = r0 + per < j->rows ? r0 + per : j->rows;
    float *tmp = j->scratch[thread];
    struct err e = {0};
    for (int64_t r = r0; r < r1; r++) {
        const char *src = (const char *)j->t->data + (size_t)r * j->src_row;
        char *dst = (char *)j->dst + (size_t)r * j->dst_row;
        if (dtype_dequantize(j->t->type, src, tmp, j->row_len, &e) ||
            dtype_quantize(j->type, tmp, dst, j->row_len, &e)) {
            if (atomic_exchange(&j->failed, 1) == 0)
                j->err = e;
            return;
        }
    }
}

static int fill_tensor(void *ctx, void *dst, size_t size, struct err *e)
{
    struct job *j = ctx;
    j->dst = dst;
    j->row_len = j->t->ne[0];
    j->rows = 1;
    for (uint32_t d = 1; d < GGUF_MAX_DIMS; d++)
        j->rows *= j->t->ne[d];
    j->src_row = dtype_row_bytes(j->t->type, j->row_len);
    j->dst_row = dtype_row_bytes(j->type, j->row_len);
    if (j->type == j->t->type) {
        memcpy(dst, j->t->data, size); /* kept as it is: never requantize a tensor into its own type */
        return 0;
    }
    atomic_store(&j->failed, 0);
    threadpool_run(j->pool, convert_rows, j);
    if (j->failed) {
        *e = j->err;
        return err_prefix(e, "tensor %s", j->t->name);
    }
    return 0;
}

struct progress_job {
    struct job base;
    store_progress_fn progress;
    void *progress_ctx;
    uint64_t index, total;
};

static int fill_with_progress(void *ctx, void *dst, size_t size, struct err *e)
{
    struct progress_job *pj = ctx;
    int rc = fill_tensor(&pj->base, dst, size, e);
    if (!rc && pj->progress)
        pj->progress(pj->progress_ctx, pj->base.t->name, pj->index, pj->total);
    return rc;
}

int store_quantize_file(const char *in, const char *out, enum store_ftype ft, int n_threads,
                        store_progress_fn progress, void *progress_ctx, struct err *e)
{
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    struct threadpool *pool = NULL;
    struct progress_job *jobs = NULL;
    const struct gguf_tensor **sorted = NULL;
    float **scratch = NULL;
    int nth = 0;
    int rc = gguf_open(in, &f, e);
    if (rc)
        return rc;
    if ((rc = threadpool_new(n_threads, &pool, e)))
        goto done;
    nth = threadpool_size(pool);
    w = gguf_writer_new();
    jobs = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *jobs);
    sorted = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *sorted);
    scratch = calloc((size_t)nth, sizeof *scratch);
    if (!w || !jobs || !sorted || !scratch) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto done;
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if (gguf_str_eq(f->kv[i].key, "general.file_type") || gguf_str_eq(f->kv[i].key, "general.quantization_version"))
            continue;
        if ((rc = gguf_writer_copy_kv(w, &f->kv[i]))) {
            rc = err_set(e, ERR_NOMEM, "out of memory copying metadata");
            goto done;
        }
    }
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, "general.file_type", ftypes[ft].llama);
    if (f->alignment != GGUF_DEFAULT_ALIGNMENT)
        gguf_writer_set_alignment(w, f->alignment);

    struct mix_state st = {.ft = ft};
    struct gguf_str arch;
    struct err ignore;
    char arch_buf[64] = "";
    if (gguf_get_str(f, "general.architecture", &arch, &ignore) == 0 && arch.len < sizeof arch_buf) {
        memcpy(arch_buf, arch.ptr, arch.len);
        arch_buf[arch.len] = '\0';
        st.arch = arch_buf;
        char key[128];
        uint32_t v;
        snprintf(key, sizeof key, "%s.block_count", arch_buf);
        if (gguf_get_u32(f, key, &v, &ignore) == 0)
            st.n_ffn_down = (int)v;
        snprintf(key, sizeof key, "%s.expert_count", arch_buf);
        if (gguf_get_u32(f, key, &v, &ignore) == 0)
            st.n_expert = (int)v;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const char *n = f->tensors[i].name;
        if (strstr(n, "attn_v.weight") || strstr(n, "attn_qkv.weight") || strstr(n, "attn_kv_b.weight"))
            st.n_attn_v++;
        if (strcmp(n, "output.weight") == 0)
            st.has_output = true;
        sorted[i] = &f->tensors[i];
    }
    /* llama.cpp walks tensors in name order (its weights map is sorted), and its attn_v / ffn_down
     * counters follow that order, so decide types in that order too. */
    qsort(sorted, f->n_tensors, sizeof *sorted, cmp_name);
    bool quantized_mix = ftypes[ft].base != DT_F32 && ftypes[ft].base != DT_F16 && ftypes[ft].base != DT_BF16;
    for (uint64_t k = 0; k < f->n_tensors; k++) {
        const struct gguf_tensor *t = sorted[k];
        struct progress_job *pj = &jobs[t - f->tensors];
        pj->base.t = t;
        pj->base.type = t->type;
        if (quantizable(t)) {
            uint32_t type = quantized_mix ? mix_type(&st, t) : ftypes[ft].base;
            if (t->ne[0] % (int64_t)dtype_get(type)->block_size != 0)
                type = DT_F16;
            const struct dtype_info *src = dtype_get(t->type);
            if (!src || !src->can_dequantize) {
                rc = err_set(e, ERR_UNSUPPORTED, "%s: tensor %s has type %s, which hearth cannot convert", in,
                             t->name, dtype_name(t->type));
                goto done;
            }
            pj->base.type = type;
        }
    }
    size_t max_row = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((size_t)f->tensors[i].ne[0] > max_row)
            max_row = (size_t)f->tensors[i].ne[0];
    for (int i = 0; i < nth; i++)
        if (!(scratch[i] = malloc((max_row ? max_row : 1) * sizeof(float)))) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto done;
        }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        struct progress_job *pj = &jobs[i];
        pj->base.pool = pool;
        pj->base.scratch = scratch;
        pj->progress = progress;
        pj->progress_ctx = progress_ctx;
        pj->index = i + 1;
        pj->total = f->n_tensors;
        rc = gguf_writer_add_tensor_fill(w, t->name, pj->base.type, t->n_dims, t->ne, fill_with_progress, pj, e);
        if (rc)
            goto done;
    }
    rc = gguf_writer_write(w, out, e);
done:
    if (scratch)
        for (int i = 0; i < nth; i++)
            free(scratch[i]);
    free(scratch);
    free(sorted);
    free(jobs);
    gguf_writer_free(w);
    threadpool_free(pool);
    gguf_close(f);
    return rc;
}
