/* matmul.c — y = x . W^T on the CPU: activations converted once per call to the weight format's
 * activation type, then the rows of W split evenly across the thread pool.
 *
 * One token (decode): each thread walks its rows with the format's vec_dot, reading every weight
 * byte once. Several tokens (prefill): 4x4 tiles (4 weight rows x 4 tokens, kernels.h gemm) so each
 * unpacked weight block serves four tokens and each activation block four rows. Each thread takes a
 * panel of its rows small enough to stay in its L2 cache and runs every token tile against it before
 * moving on, so weights are read from memory once per call and activations come from cache. Weights
 * are used in place (no repacked copy). */
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

/* Bytes of weight rows per panel: half a typical 1-2 MiB L2, leaving room for activation tiles. */
#define PANEL_BYTES (256 * 1024)

struct matmul_job {
    const struct bweight *w;
    const struct bweight *bias;
    const struct cpu_kernel *k;
    const void *act; /* n activation rows, each act_row_bytes */
    size_t act_row_bytes;
    size_t w_row_bytes;
    float *y;
    int n;
};

struct quantize_job {
    const struct cpu_kernel *k;
    const float *x;
    void *dst;
    int64_t cols;
    size_t row_bytes;
    int n;
};

static void quantize_rows(void *ctx, int t, int nt)
{
    struct quantize_job *j = ctx;
    for (int i = t; i < j->n; i += nt)
        j->k->quantize(j->x + (size_t)i * j->cols, (uint8_t *)j->dst + (size_t)i * j->row_bytes, j->cols);
}

static void matmul_rows(void *ctx, int t, int nt)
{
    struct matmul_job *j = ctx;
    const int64_t rows = j->w->rows, cols = j->w->cols;
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    const uint8_t *wbase = j->w->host;
    const float *bias = j->bias ? j->bias->host : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const void *wr = wbase + (size_t)r * j->w_row_bytes;
        const float b = bias ? bias[r] : 0.0f;
        for (int i = 0; i < j->n; i++) {
            const void *a = (const uint8_t *)j->act + (size_t)i * j->act_row_bytes;
            j->y[(size_t)i * rows + r] = j->k->vec_dot(cols, wr, a) + b;
        }
    }
}

/* Rows [r0, r1) x tokens [c0, c1) in 4x4 tiles. A partial tile repeats its last row or token (the
 * kernel always computes 16 pairs) and stores only the real ones. */
static void matmul_block(const struct matmul_job *j, int64_t r0, int64_t r1, int c0, int c1)
{
    const int64_t rows = j->w->rows, cols = j->w->cols;
    const uint8_t *wbase = j->w->host, *abase = j->act;
    const float *bias = j->bias ? j->bias->host : NULL;
    for (int c = c0; c < c1; c += 4) {
        const void *ap[4];
        const int nc = c1 - c < 4 ? c1 - c : 4;
        for (int k = 0; k < 4; k++)
            ap[k] = abase + (size_t)(c + (k < nc ? k : nc - 1)) * j->act_row_bytes;
        for (int64_t r = r0; r < r1; r += 4) {
            const void *wp[4];
            const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
            for (int k = 0; k < 4; k++)
                wp[k] = wbase + (size_t)(r + (k < nr ? k : nr - 1)) * j->w_row_bytes;
            float out[16];
            j->k->gemm(cols, wp, ap, out);
            for (int ri = 0; ri < nr; ri++) {
                const float b = bias ? bias[r + ri] : 0.0f;
                for (int ci = 0; ci < nc; ci++)
                    j->y[(size_t)(c + ci) * rows + r + ri] = out[4 * ri + ci] + b;
            }
        }
    }
}

static void matmul_tiles(void *ctx, int t, int nt)
{
    struct matmul_job *j = ctx;
    const int64_t rows = j->w->rows;
    const int64_t tiles = (rows + 3) / 4;
    if (tiles < 2 * nt) {
        /* Too few rows to keep every thread busy (small test shapes): split the tokens instead. */
        const int c0 = (int)((int64_t)j->n * t / nt), c1 = (int)((int64_t)j->n * (t + 1) / nt);
        if (c0 < c1)
            matmul_block(j, 0, rows, c0, c1);
        return;
    }
    /* Whole tiles per thread, so only the last thread can have a partial one. */
    const int64_t r0 = tiles * t / nt * 4, r1e = tiles * (t + 1) / nt * 4;
    const int64_t r1 = r1e < rows ? r1e : rows;
    int64_t panel = (int64_t)(PANEL_BYTES / (j->w_row_bytes ? j->w_row_bytes : 1)) & ~(int64_t)3;
    if (panel < 4)
        panel = 4;
    for (int64_t p = r0; p < r1; p += panel)
        matmul_block(j, p, p + panel < r1 ? p + panel : r1, 0, j->n);
}

void cpu_matmul(struct backend *be, const struct bweight *w, const struct bweight *bias, const float *x,
                float *y, int n)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    const struct cpu_kernel *k = cpu_kernel_for(w->type);
    struct matmul_job job = {
        .w = w, .bias = bias, .k = k, .act = x, .act_row_bytes = (size_t)w->cols * sizeof(float),
        .w_row_bytes = dtype_row_bytes(w->type, w->cols), .y = y, .n = n,
    };
    if (k->quantize) {
        size_t row_bytes = dtype_row_bytes(k->act_type, w->cols);
        struct quantize_job q = {k, x, c->act_scratch, w->cols, row_bytes, n};
        if (n > 1)
            threadpool_run(c->pool, quantize_rows, &q);
        else
            quantize_rows(&q, 0, 1);
        job.act = c->act_scratch;
        job.act_row_bytes = row_bytes;
    }
    threadpool_run(c->pool, n > 1 && k->gemm ? matmul_tiles : matmul_rows, &job);
}
