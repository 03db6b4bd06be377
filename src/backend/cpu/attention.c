/* attention.c — causal multi-head attention over the KV cache on the CPU (grouped-query: query head h
 * reads KV head h / (n_heads / n_kv_heads)). One (token, head) pair per task, split across threads;
 * a numerically stable softmax over the scores of positions 0..pos. */
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

static void load_row(enum kv_type type, const void *cache, size_t offset, int n, float *dst)
{
    if (type == KV_F32) {
        memcpy(dst, (const float *)cache + offset, (size_t)n * sizeof(float));
    } else {
        const uint16_t *h = (const uint16_t *)cache + offset;
        for (int i = 0; i < n; i++)
            dst[i] = fp16_to_f32(h[i]);
    }
}

static void attn_task(void *ctx, int t, int nt)
{
    struct attn_job *j = ctx;
    struct cpu_backend *c = j->c;
    const int hd = j->head_dim, group = j->n_heads / j->n_kv_heads;
    const int kv_dim = j->n_kv_heads * hd;
    float *scores = c->attn_scratch + (size_t)t * c->attn_scratch_per_thread;
    float *krow = scores + c->attn_scratch_per_thread - 2 * (size_t)hd;
    float *acc = krow + hd;
    const int total = c->n_batch * j->n_heads;
    for (int task = t; task < total; task += nt) {
        const int i = task / j->n_heads, h = task % j->n_heads, kvh = h / group;
        const float *q = j->q + ((size_t)i * j->n_heads + h) * hd;
        const int n_pos = c->pos[i] + 1;
        float maxs = -INFINITY;
        for (int p = 0; p < n_pos; p++) {
            load_row(j->type, j->k_cache, (size_t)p * kv_dim + (size_t)kvh * hd, hd, krow);
            const float s = cpu_dot_f32_scalar(hd, q, krow) * j->scale;
            scores[p] = s;
            if (s > maxs)
                maxs = s;
        }
        float sum = 0;
        for (int p = 0; p < n_pos; p++) {
            scores[p] = expf(scores[p] - maxs);
            sum += scores[p];
        }
        const float inv = 1.0f / sum;
        memset(acc, 0, (size_t)hd * sizeof *acc);
        for (int p = 0; p < n_pos; p++) {
            load_row(j->type, j->v_cache, (size_t)p * kv_dim + (size_t)kvh * hd, hd, krow);
            const float wgt = scores[p] * inv;
            for (int d = 0; d < hd; d++)
                acc[d] += wgt * krow[d];
        }
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
