/* cpu_backend.c — the CPU backend: memory, batch state and the elementwise ops (embedding rows,
 * RMSNorm, RoPE, KV store, SwiGLU, add). Matmul and attention live in their own files. RMSNorm, SwiGLU
 * and add use the SIMD row kernels of kernels.h and are shared out over the thread pool in chunks
 * (threadpool_share) for prefill-sized batches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "base/argmax.h"
#include "tensor/tensor.h"

int cpu_scratch_reserve(void **buf, size_t *cur, size_t size)
{
    if (size <= *cur)
        return 0;
    size = (size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, size);
    if (!p)
        return ERR_NOMEM;
    free(*buf);
    *buf = p;
    *cur = size;
    return 0;
}

static void cpu_free(struct backend *be)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    threadpool_free(c->pool);
    free(c->tokens);
    free(c->pos);
    free(c->act_scratch);
    free(c->attn_scratch);
    free(c->pack_scratch);
    free(c);
}

static int cpu_prepare_weight(struct backend *be, struct bweight *w, struct err *e)
{
    if (!cpu_kernel_for(w->type) && w->rows > 1)
        return err_set(e, ERR_UNSUPPORTED, "tensor '%s': type %s cannot be used for matrix products",
                       w->name, dtype_name(w->type));
    const struct dtype_info *d = dtype_get(w->type);
    if (!d || !d->can_dequantize)
        return err_set(e, ERR_UNSUPPORTED, "tensor '%s': type %s is not supported", w->name,
                       dtype_name(w->type));
    return 0;
}

static void cpu_release_weight(struct backend *be, struct bweight *w) { (void)w; }

static void *cpu_alloc(struct backend *be, size_t bytes)
{
    size_t size = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, size ? size : 64);
    if (p)
        memset(p, 0, size);
    return p;
}

static void cpu_dealloc(struct backend *be, void *p) { free(p); }

static void cpu_read(struct backend *be, float *dst, const float *src, size_t n)
{
    memcpy(dst, src, n * sizeof *dst);
}

static void cpu_write(struct backend *be, float *dst, const float *src, size_t n)
{
    memcpy(dst, src, n * sizeof *dst);
}

static int cpu_reserve(struct backend *be, int max_batch, int64_t max_cols, int max_ctx, int head_dim,
                       struct err *e)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    if (max_batch > c->cap_batch) {
        int32_t *t = realloc(c->tokens, (size_t)max_batch * sizeof *t);
        if (t)
            c->tokens = t;
        int32_t *p = realloc(c->pos, (size_t)max_batch * sizeof *p);
        if (p)
            c->pos = p;
        if (!t || !p)
            return err_set(e, ERR_NOMEM, "out of memory for a batch of %d tokens", max_batch);
        c->cap_batch = max_batch;
    }
    /* Largest activation format: float32 rows (the 8-bit formats are smaller, also with the extras
     * and 64-byte row alignment of cpu_act_row_bytes, which the margin covers). */
    size_t act = (size_t)max_batch * ((size_t)max_cols * sizeof(float) + 128);
    if (cpu_scratch_reserve(&c->act_scratch, &c->act_scratch_size, act) != 0)
        return err_set(e, ERR_NOMEM, "out of memory for %zu bytes of matmul scratch", act);
    if (!c->pack_scratch && max_batch > 1) {
        size_t cur = 0;
        if (cpu_scratch_reserve(&c->pack_scratch, &cur, CPU_PACK_SCRATCH_BYTES * (size_t)c->base.n_threads) != 0)
            return err_set(e, ERR_NOMEM, "out of memory for prefill panel scratch");
        c->pack_scratch_per_slot = CPU_PACK_SCRATCH_BYTES;
    }
    (void)max_ctx; /* attention walks the cache in fixed-size blocks */
    size_t per_thread = cpu_attn_scratch_floats(head_dim);
    if (per_thread > c->attn_scratch_per_thread) {
        size_t cur = 0;
        void *buf = NULL;
        if (cpu_scratch_reserve(&buf, &cur, per_thread * (size_t)c->base.n_threads * sizeof(float)) != 0)
            return err_set(e, ERR_NOMEM, "out of memory for attention scratch (heads of %d)", head_dim);
        free(c->attn_scratch);
        c->attn_scratch = buf;
        c->attn_scratch_per_thread = per_thread;
    }
    return 0;
}

static void cpu_set_batch(struct backend *be, const int32_t *tokens, const int32_t *pos, int n)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    if (tokens)
        memcpy(c->tokens, tokens, (size_t)n * sizeof *tokens);
    memcpy(c->pos, pos, (size_t)n * sizeof *pos);
    c->n_batch = n;
}

static void cpu_get_rows(struct backend *be, const struct bweight *table, float *out)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    size_t row_bytes = dtype_row_bytes(table->type, table->cols);
    for (int i = 0; i < c->n_batch; i++) {
        const uint8_t *row = (const uint8_t *)table->host + (size_t)c->tokens[i] * row_bytes;
        dtype_dequantize(table->type, row, out + (size_t)i * table->cols, table->cols, NULL);
    }
}

/* Elementwise work smaller than this (floats) runs on the calling thread: waking the pool costs
 * more than it saves (a decode step's vectors are a few thousand elements). */
#define PARALLEL_MIN_ELEMS 32768

struct rmsnorm_job {
    struct threadpool_share share; /* rows handed out so far */
    int64_t chunk;
    const struct cpu_vec_kernels *vk;
    const float *x, *g;
    float *out;
    int n_rows, dim;
    float eps;
};

static void rmsnorm_rows(void *ctx, int t, int nt)
{
    (void)t;
    (void)nt;
    struct rmsnorm_job *j = ctx;
    int64_t r0;
    while ((r0 = threadpool_share_next(&j->share, j->chunk, j->n_rows)) >= 0) {
        const int64_t r1 = r0 + j->chunk < j->n_rows ? r0 + j->chunk : j->n_rows;
        for (int64_t r = r0; r < r1; r++) {
            const float *xr = j->x + (size_t)r * j->dim;
            const float ss = j->vk->sum_sq(j->dim, xr);
            const float scale = (float)(1.0 / sqrt((double)ss / j->dim + j->eps));
            j->vk->scale_mul(j->dim, xr, scale, j->g, j->out + (size_t)r * j->dim);
        }
    }
}

static void cpu_rmsnorm(struct backend *be, const float *x, const struct bweight *w, float *out, int n_rows,
                        int dim, float eps)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    struct rmsnorm_job j = {.vk = cpu_vec_kernels_for(), .x = x, .g = w->host, .out = out, .n_rows = n_rows,
                            .dim = dim, .eps = eps, .chunk = n_rows};
    threadpool_share_init(&j.share);
    if ((size_t)n_rows * (size_t)dim >= PARALLEL_MIN_ELEMS && n_rows > 1) {
        j.chunk = threadpool_chunk(n_rows, threadpool_size(c->pool), 4, 1, 0);
        threadpool_run(c->pool, rmsnorm_rows, &j);
    } else {
        rmsnorm_rows(&j, 0, 1);
    }
}

static void cpu_rope(struct backend *be, float *x, int n_heads, int head_dim, const struct rope_params *rp)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    const int half = rp->n_rot / 2;
    const float *factors = rp->freq_factors ? rp->freq_factors->host : NULL;
    /* Angles in float32 as the reference implementations compute them: inv_freq, then pos * inv_freq. */
    for (int i = 0; i < c->n_batch; i++) {
        const float p = (float)c->pos[i] * rp->freq_scale;
        for (int k = 0; k < half; k++) {
            float inv_freq = 1.0f / powf(rp->freq_base, (float)(2 * k) / (float)rp->n_rot);
            if (factors)
                inv_freq /= factors[k];
            const float theta = p * inv_freq;
            const float cs = (float)cos((double)theta), sn = (float)sin((double)theta);
            for (int h = 0; h < n_heads; h++) {
                float *v = x + ((size_t)i * n_heads + h) * head_dim;
                const int a = rp->neox ? k : 2 * k;
                const int b = rp->neox ? k + half : 2 * k + 1;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs - x1 * sn;
                v[b] = x0 * sn + x1 * cs;
            }
        }
    }
}

/* Each token's k and v rows go in head by head at the cache layout's offsets (cpu.h cpu_kv_offset). */
static void cpu_kv_store(struct backend *be, void *k_cache, void *v_cache, enum kv_type type, const float *k,
                         const float *v, int n_kv, int hd)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    const int kv_dim = n_kv * hd;
    for (int i = 0; i < c->n_batch; i++)
        for (int h = 0; h < n_kv; h++) {
            const size_t at = cpu_kv_offset(c->pos[i], h, n_kv, hd);
            const float *ks = k + (size_t)i * kv_dim + (size_t)h * hd, *vs = v + (size_t)i * kv_dim + (size_t)h * hd;
            if (type == KV_F32) {
                memcpy((float *)k_cache + at, ks, (size_t)hd * sizeof(float));
                memcpy((float *)v_cache + at, vs, (size_t)hd * sizeof(float));
            } else {
                uint16_t *kd = (uint16_t *)k_cache + at, *vd = (uint16_t *)v_cache + at;
                for (int j = 0; j < hd; j++) {
                    kd[j] = f32_to_fp16(ks[j]);
                    vd[j] = f32_to_fp16(vs[j]);
                }
            }
        }
}

/* swiglu and add over a long vector, shared out across the pool in chunks of whole 64-byte lines
 * (only the last chunk has a tail). */
struct elementwise_job {
    struct threadpool_share share; /* elements handed out so far */
    int64_t chunk;
    const struct cpu_vec_kernels *vk;
    float *x;             /* add: x += y */
    const float *a, *b;   /* swiglu: gate, up (out is x); add: y is a */
    size_t n;
    int op;               /* 0 swiglu, 1 add */
};

static void elementwise_run(void *ctx, int t, int nt)
{
    (void)t;
    (void)nt;
    struct elementwise_job *j = ctx;
    const int64_t n = (int64_t)j->n;
    int64_t i0;
    while ((i0 = threadpool_share_next(&j->share, j->chunk, n)) >= 0) {
        const int64_t len = i0 + j->chunk < n ? j->chunk : n - i0;
        if (j->op == 0)
            j->vk->swiglu(len, j->a + i0, j->b + i0, j->x + i0);
        else
            j->vk->add(len, j->x + i0, j->a + i0);
    }
}

static void elementwise(struct cpu_backend *c, struct elementwise_job *j)
{
    threadpool_share_init(&j->share);
    if (j->n >= PARALLEL_MIN_ELEMS) {
        j->chunk = threadpool_chunk((int64_t)j->n, threadpool_size(c->pool), 4, 16, 0);
        threadpool_run(c->pool, elementwise_run, j);
    } else {
        j->chunk = (int64_t)j->n;
        elementwise_run(j, 0, 1);
    }
}

static void cpu_swiglu(struct backend *be, const float *gate, const float *up, float *out, size_t n)
{
    struct elementwise_job j = {.vk = cpu_vec_kernels_for(), .x = out, .a = gate, .b = up, .n = n, .op = 0};
    elementwise((struct cpu_backend *)be, &j);
}

static void cpu_add(struct backend *be, float *x, const float *y, size_t n)
{
    struct elementwise_job j = {.vk = cpu_vec_kernels_for(), .x = x, .a = y, .b = NULL, .n = n, .op = 1};
    elementwise((struct cpu_backend *)be, &j);
}

static void cpu_argmax(struct backend *be, const float *x, int n, int32_t *best)
{
    (void)be;
    *best = argmax_f32(x, n);
}

static const struct backend_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .prepare_weight = cpu_prepare_weight,
    .release_weight = cpu_release_weight,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .read = cpu_read,
    .write = cpu_write,
    .reserve = cpu_reserve,
    .set_batch = cpu_set_batch,
    .get_rows = cpu_get_rows,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .argmax = cpu_argmax,
};

int backend_cpu_new(int n_threads, struct backend **out, struct err *e)
{
    *out = NULL;
    struct cpu_backend *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(e, ERR_NOMEM, "out of memory creating the CPU backend");
    int rc = threadpool_new(n_threads, &c->pool, e);
    if (rc) {
        free(c);
        return rc;
    }
    c->base.ops = &cpu_ops;
    c->base.n_threads = threadpool_size(c->pool);
    *out = &c->base;
    return 0;
}

const char *backend_cpu_isa(void)
{
    switch (cpu_isa_detect()) {
    case CPU_ISA_AVX512:
        return "avx512";
    case CPU_ISA_AVX2:
        return "avx2";
    default:
        return "scalar";
    }
}
