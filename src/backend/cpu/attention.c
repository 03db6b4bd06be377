/* attention.c — causal multi-head attention over the KV cache on the CPU, grouped-query (query head
 * h reads KV head h / (n_heads / n_kv_heads)).
 *
 * A task is one KV head and a block of tokens; its query rows are the heads of that KV head's group
 * (at most ATTN_ROWS of them) for each token of the block. The task walks the cache ATTN_BLOCK
 * positions at a time, the cache layout's blocks (cpu.h cpu_kv_offset), in which one KV head's rows
 * are contiguous. Each K and V row of a block is loaded once for all the task's rows (in a decode
 * step, the group's query heads, so a KV row comes from memory once rather than once per query
 * head) and widened to float as the kernels load it. Scores come as a small matrix product
 * (kernels.h qk); an online softmax keeps a running maximum and sum per row (output and sum
 * rescaled whenever the maximum grows) and weights the V rows into the output (pv). Positions past
 * a row's own take no part (causal). Tasks are shared out across the pool one at a time
 * (threadpool_share); each writes only its own rows, so results do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

/* Cache positions per block: the cache layout's block (cpu.h cpu_kv_offset), whose rows of one KV
 * head lie together (128 KiB of F16 keys with 128-wide heads, and as much of values). Runs that long
 * stream: in a throwaway timing loop over 16 layers of a 2048-position cache (64-wide heads, two
 * threads) a token took 5.7 ms with blocks of 64 positions, 4.4-5.5 with 256 and 3.7-4.1 with 512. */
#define ATTN_BLOCK BACKEND_KV_BLOCK
/* Query rows per task at most: tokens x heads of one group. */
#define ATTN_ROWS 64

size_t cpu_attn_scratch_floats(int head_dim)
{
    const size_t hd = (size_t)head_dim;
    /* query and output rows, scores, running max and sum per row */
    const size_t n = 2 * ATTN_ROWS * hd + (size_t)ATTN_ROWS * ATTN_BLOCK + 2 * ATTN_ROWS;
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
    float *mx = s + (size_t)ATTN_ROWS * ATTN_BLOCK, *sum = mx + ATTN_ROWS;
    const int half = j->type != KV_F32;
    const size_t elt = half ? sizeof(uint16_t) : sizeof(float);

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
        const size_t at = cpu_kv_offset(p0, kvh, j->n_kv_heads, hd) * elt;
        const void *kb = (const uint8_t *)j->k_cache + at, *vb = (const uint8_t *)j->v_cache + at;
        ak->qk(hd, nr, qs, np, kb, half, s);
        for (int r = 0; r < nr; r++) {
            float *sr = s + (size_t)r * np;
            const int pos = c->pos[t0 + r / nh];
            const int valid = pos - p0 + 1 < np ? pos - p0 + 1 : np;
            if (valid <= 0) {
                memset(sr, 0, (size_t)np * sizeof *sr);
                continue;
            }
            const float m = ak->max(sr, valid, mx[r]);
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
        ak->pv(hd, nr, s, np, vb, half, o);
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
