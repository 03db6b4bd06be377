/* attention.c — causal multi-head attention over the KV cache on the CPU (grouped-query: query head h
 * reads KV head h / (n_heads / n_kv_heads)). One (token, head) pair per task, shared out across the
 * threads in chunks of whole query-head groups (threadpool_share); a numerically stable softmax over the scores of positions 0..pos. The dot products, softmax
 * exponentials and weighted sums of V rows use the SIMD kernels of kernels.h straight on the cache's
 * F16 (or F32) rows, with no conversion pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

struct attn_job {
    struct threadpool_share share; /* (token, head) tasks handed out so far */
    int64_t chunk;
    struct cpu_backend *c;
    const float *q;
    const void *k_cache, *v_cache;
    enum kv_type type;
    float *out;
    int n_heads, n_kv_heads, head_dim;
    float scale;
};

/* Attention of one query head of one token over positions 0..pos; scores and acc are scratch. */
static void attn_pair(const struct attn_job *j, const struct cpu_attn_kernels *ak, int task, float *scores,
                      float *acc)
{
    const struct cpu_backend *c = j->c;
    const vec_dot_fn dot = j->type == KV_F32 ? ak->dot_f32 : ak->dot_f16;
    const axpy_fn axpy = j->type == KV_F32 ? ak->axpy_f32 : ak->axpy_f16;
    const size_t elt = j->type == KV_F32 ? sizeof(float) : sizeof(uint16_t);
    const int hd = j->head_dim, group = j->n_heads / j->n_kv_heads;
    const size_t kv_row = (size_t)j->n_kv_heads * hd * elt; /* bytes per position */
    const int i = task / j->n_heads, h = task % j->n_heads, kvh = h / group;
    const float *q = j->q + ((size_t)i * j->n_heads + h) * hd;
    const int n_pos = c->pos[i] + 1;
    const uint8_t *kb = (const uint8_t *)j->k_cache + (size_t)kvh * hd * elt;
    const uint8_t *vb = (const uint8_t *)j->v_cache + (size_t)kvh * hd * elt;
    float maxs = -INFINITY;
    for (int p = 0; p < n_pos; p++) {
        const float s = dot(hd, kb + (size_t)p * kv_row, q) * j->scale;
        scores[p] = s;
        if (s > maxs)
            maxs = s;
    }
    const float inv = 1.0f / ak->softmax_exp(scores, n_pos, maxs);
    memset(acc, 0, (size_t)hd * sizeof *acc);
    for (int p = 0; p < n_pos; p++)
        axpy(hd, scores[p] * inv, vb + (size_t)p * kv_row, acc);
    memcpy(j->out + ((size_t)i * j->n_heads + h) * hd, acc, (size_t)hd * sizeof *acc);
}

static void attn_task(void *ctx, int t, int nt)
{
    (void)nt;
    struct attn_job *j = ctx;
    const struct cpu_backend *c = j->c;
    const struct cpu_attn_kernels *ak = cpu_attn_kernels_for();
    /* The scratch rows belong to the slot, which runs on one thread at a time. */
    float *scores = c->attn_scratch + (size_t)t * c->attn_scratch_per_thread;
    float *acc = scores + c->attn_scratch_per_thread - 2 * (size_t)j->head_dim;
    const int64_t total = (int64_t)c->n_batch * j->n_heads;
    /* Chunks of contiguous (token, head) pairs, whole groups: neighbouring heads share a KV head,
     * so its rows stay in this core's cache across the group. */
    int64_t first;
    while ((first = threadpool_share_next(&j->share, j->chunk, total)) >= 0) {
        const int64_t end = first + j->chunk < total ? first + j->chunk : total;
        for (int64_t task = first; task < end; task++)
            attn_pair(j, ak, (int)task, scores, acc);
    }
}

void cpu_attention(struct backend *be, const float *q, const void *k_cache, const void *v_cache,
                   enum kv_type type, float *out, int n_heads, int n_kv_heads, int head_dim, float scale)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    struct attn_job job = {.c = c, .q = q, .k_cache = k_cache, .v_cache = v_cache, .type = type, .out = out,
                           .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .scale = scale};
    threadpool_share_init(&job.share);
    const int group = n_heads / n_kv_heads;
    job.chunk = threadpool_chunk((int64_t)c->n_batch * n_heads, threadpool_size(c->pool), 4,
                                 group > 0 ? group : 1, 0);
    threadpool_run(c->pool, attn_task, &job);
}
