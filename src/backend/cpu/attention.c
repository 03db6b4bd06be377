/* attention.c — causal multi-head attention over the KV cache on the CPU (grouped-query: query head h
 * reads KV head h / (n_heads / n_kv_heads)). One (token, head) pair per task, split across threads;
 * a numerically stable softmax over the scores of positions 0..pos. The dot products, softmax
 * exponentials and weighted sums of V rows use the SIMD kernels of kernels.h straight on the cache's
 * F16 (or F32) rows, with no conversion pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

struct attn_job {
    struct cpu_backend *c;
    const float *q;
    const void *k_cache, *v_cache;
    enum kv_type type;
    float *out;
    int n_heads, n_kv_heads, head_dim;
    float scale;
};

static void attn_task(void *ctx, int t, int nt)
{
    struct attn_job *j = ctx;
    struct cpu_backend *c = j->c;
    const struct cpu_attn_kernels *ak = cpu_attn_kernels_for();
    const vec_dot_fn dot = j->type == KV_F32 ? ak->dot_f32 : ak->dot_f16;
    const axpy_fn axpy = j->type == KV_F32 ? ak->axpy_f32 : ak->axpy_f16;
    const size_t elt = j->type == KV_F32 ? sizeof(float) : sizeof(uint16_t);
    const int hd = j->head_dim, group = j->n_heads / j->n_kv_heads;
    const size_t kv_row = (size_t)j->n_kv_heads * hd * elt; /* bytes per position */
    float *scores = c->attn_scratch + (size_t)t * c->attn_scratch_per_thread;
    float *acc = scores + c->attn_scratch_per_thread - 2 * (size_t)hd;
    const int total = c->n_batch * j->n_heads;
    /* Contiguous ranges of (token, head) pairs: neighbouring heads share a KV head, so its rows
     * stay in this core's cache across the group. */
    const int t0 = (int)((int64_t)total * t / nt), t1 = (int)((int64_t)total * (t + 1) / nt);
    for (int task = t0; task < t1; task++) {
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
}

void cpu_attention(struct backend *be, const float *q, const void *k_cache, const void *v_cache,
                   enum kv_type type, float *out, int n_heads, int n_kv_heads, int head_dim, float scale)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    struct attn_job job = {c, q, k_cache, v_cache, type, out, n_heads, n_kv_heads, head_dim, scale};
    threadpool_run(c->pool, attn_task, &job);
}
