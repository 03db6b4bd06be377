/* attention.c — causal multi-head attention over the KV cache on the CPU, grouped-query (query head
 * h reads KV head h / (n_heads / n_kv_heads)).
 *
 * A task is one KV head and a block of tokens; its query rows are the heads of that KV head's group
 * (at most ATTN_ROWS of them) for each token of the block. The task walks the cache ATTN_BLOCK
 * positions at a time: the block's K and V rows of its KV head are widened to float once and serve
 * every row of the task (in a decode step, all the group's query heads, so each KV row is read from
 * memory once rather than once per query head). Scores come as a small matrix product (kernels.h qk),
 * then an online softmax keeps a running maximum and sum per row (output and sum rescaled whenever
 * the maximum grows) and weights the V rows into the output (pv). Positions past a row's own take no
 * part (causal). Tasks are shared out across the pool one at a time (threadpool_share); each writes
 * only its own rows, so results do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

/* Cache positions per block: with 128-wide heads the widened K and V blocks take 64 KiB, beside the
 * task's query and output rows in L2. */
#define ATTN_BLOCK 64
/* Query rows per task at most: tokens x heads of one group. */
#define ATTN_ROWS 64

size_t cpu_attn_scratch_floats(int head_dim)
{
    const size_t hd = (size_t)head_dim;
    /* query and output rows, scores, widened K and V blocks, running max and sum per row */
    const size_t n = 2 * ATTN_ROWS * hd + (size_t)ATTN_ROWS * ATTN_BLOCK + 2 * ATTN_BLOCK * hd + 2 * ATTN_ROWS;
    return (n + 15) & ~(size_t)15;
}

struct attn_job {
    struct threadpool_share share; /* tasks handed out so far */
    struct cpu_backend *c;
    const struct cpu_attn_kernels *ak;
    const float *q;
    const void *k_cache, *v_cache;
    enum kv_type type;
    float *out;
    int n_heads, n_kv_heads, head_dim;
    float scale;
    int group;      /* query heads per KV head */
    int heads;      /* query heads per task (the group, or ATTN_ROWS of it) */
    int splits;     /* tasks per group and token block */
    int tokens;     /* tokens per task */
    int64_t n_tasks;
};

/* Positions [p0, p0 + np) of one KV head's cache rows as np contiguous float rows. */
static void widen_rows(const struct attn_job *j, const void *cache, int kvh, int p0, int np, float *dst)
{
    const int hd = j->head_dim;
    const size_t row = (size_t)j->n_kv_heads * hd; /* elements per position */
    const size_t at = (size_t)p0 * row + (size_t)kvh * hd;
    if (j->type == KV_F32) {
        for (int p = 0; p < np; p++)
            memcpy(dst + (size_t)p * hd, (const float *)cache + at + (size_t)p * row, (size_t)hd * sizeof(float));
    } else {
        j->ak->widen_f16(hd, np, (const uint16_t *)cache + at, row, dst);
    }
}

static void attn_run(const struct attn_job *j, int64_t task, float *scratch)
{
    const struct cpu_backend *c = j->c;
    const struct cpu_attn_kernels *ak = j->ak;
    const int hd = j->head_dim;
    const int split = (int)(task % j->splits);
    task /= j->splits;
    const int kvh = (int)(task % j->n_kv_heads);
    const int t0 = (int)(task / j->n_kv_heads) * j->tokens;
    const int t1 = t0 + j->tokens < c->n_batch ? t0 + j->tokens : c->n_batch;
    const int h0 = kvh * j->group + split * j->heads;
    const int h_end = (kvh + 1) * j->group;
    const int nh = h0 + j->heads < h_end ? j->heads : h_end - h0;
    const int nr = (t1 - t0) * nh; /* row r: token t0 + r / nh, head h0 + r % nh */

    float *qs = scratch, *o = qs + (size_t)ATTN_ROWS * hd, *s = o + (size_t)ATTN_ROWS * hd;
    float *kf = s + (size_t)ATTN_ROWS * ATTN_BLOCK, *vf = kf + (size_t)ATTN_BLOCK * hd;
    float *mx = vf + (size_t)ATTN_BLOCK * hd, *sum = mx + ATTN_ROWS;

    int last = 0; /* the latest position any row attends to */
    for (int r = 0; r < nr; r++) {
        const int t = t0 + r / nh, h = h0 + r % nh;
        const float *qr = j->q + ((size_t)t * j->n_heads + h) * hd;
        for (int d = 0; d < hd; d++)
            qs[(size_t)r * hd + d] = qr[d] * j->scale;
        memset(o + (size_t)r * hd, 0, (size_t)hd * sizeof *o);
        mx[r] = -INFINITY;
        sum[r] = 0;
        if (c->pos[t] > last)
            last = c->pos[t];
    }
    for (int p0 = 0; p0 <= last; p0 += ATTN_BLOCK) {
        const int np = last + 1 - p0 < ATTN_BLOCK ? last + 1 - p0 : ATTN_BLOCK;
        widen_rows(j, j->k_cache, kvh, p0, np, kf);
        widen_rows(j, j->v_cache, kvh, p0, np, vf);
        ak->qk(hd, nr, qs, np, kf, s);
        for (int r = 0; r < nr; r++) {
            float *sr = s + (size_t)r * np;
            const int pos = c->pos[t0 + r / nh];
            const int valid = pos - p0 + 1 < np ? pos - p0 + 1 : np;
            if (valid <= 0) {
                memset(sr, 0, (size_t)np * sizeof *sr);
                continue;
            }
            float m = mx[r];
            for (int p = 0; p < valid; p++)
                if (sr[p] > m)
                    m = sr[p];
            if (m > mx[r] && sum[r] > 0) {
                const float f = expf(mx[r] - m);
                float *orow = o + (size_t)r * hd;
                for (int d = 0; d < hd; d++)
                    orow[d] *= f;
                sum[r] *= f;
            }
            mx[r] = m;
            sum[r] += ak->softmax_exp(sr, valid, m);
            memset(sr + valid, 0, (size_t)(np - valid) * sizeof *sr);
        }
        ak->pv(hd, nr, s, np, vf, o);
    }
    for (int r = 0; r < nr; r++) {
        const int t = t0 + r / nh, h = h0 + r % nh;
        float *dst = j->out + ((size_t)t * j->n_heads + h) * hd;
        const float inv = 1.0f / sum[r];
        for (int d = 0; d < hd; d++)
            dst[d] = o[(size_t)r * hd + d] * inv;
    }
}

static void attn_task(void *ctx, int t, int nt)
{
    (void)nt;
    struct attn_job *j = ctx;
    /* The scratch belongs to the slot, which runs on one thread at a time. */
    float *scratch = j->c->attn_scratch + (size_t)t * j->c->attn_scratch_per_thread;
    int64_t task;
    while ((task = threadpool_share_next(&j->share, 1, j->n_tasks)) >= 0)
        attn_run(j, task, scratch);
}

void cpu_attention(struct backend *be, const float *q, const void *k_cache, const void *v_cache,
                   enum kv_type type, float *out, int n_heads, int n_kv_heads, int head_dim, float scale)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    const int group = n_heads / n_kv_heads;
    struct attn_job job = {.c = c, .ak = cpu_attn_kernels_for(), .q = q, .k_cache = k_cache, .v_cache = v_cache,
                           .type = type, .out = out, .n_heads = n_heads, .n_kv_heads = n_kv_heads,
                           .head_dim = head_dim, .scale = scale, .group = group};
    job.heads = group < ATTN_ROWS ? group : ATTN_ROWS;
    job.splits = (group + job.heads - 1) / job.heads;
    job.tokens = ATTN_ROWS / job.heads;
    const int64_t blocks = (c->n_batch + job.tokens - 1) / job.tokens;
    job.n_tasks = blocks * n_kv_heads * job.splits;
    threadpool_share_init(&job.share);
    threadpool_run(c->pool, attn_task, &job);
}
