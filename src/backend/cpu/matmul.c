/* matmul.c — y = x . W^T on the CPU: activations converted once per call to the weight format's
 * activation type, then the rows of W split evenly across the thread pool.
 *
 * One token (decode): each thread walks its rows with the format's vec_dot, reading every weight
 * byte once. Several tokens (prefill): tiles of 4 weight rows x 4 tokens (kernels.h gemm), or 8 x 8
 * where the format has a gemm8, so each unpacked weight block serves several tokens and each
 * activation block several rows. Each thread takes a
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
    int bias; /* store Q8_0 rows +128 for a gemm8 that reads them so */
};

static void quantize_rows(void *ctx, int t, int nt)
{
    struct quantize_job *j = ctx;
    for (int i = t; i < j->n; i += nt) {
        uint8_t *row = (uint8_t *)j->dst + (size_t)i * j->row_bytes;
        j->k->quantize(j->x + (size_t)i * j->cols, row, j->cols);
        if (j->bias)
            cpu_q8_0_bias(row, j->cols);
    }
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

/* Rows [r0, r1) x tokens [c0, c1) in tiles (8x8 with gemm8, else 4x4). A partial tile repeats its
 * last row or token (the kernel always computes a whole tile) and stores only the real ones. */
static void matmul_block(const struct matmul_job *j, int64_t r0, int64_t r1, int c0, int c1)
{
    const int64_t rows = j->w->rows, cols = j->w->cols;
    const uint8_t *wbase = j->w->host, *abase = j->act;
    const float *bias = j->bias ? j->bias->host : NULL;
    const int wide = j->k->gemm8 != NULL, tile = wide ? 8 : 4;
    for (int c = c0; c < c1; c += tile) {
        const void *ap[8];
        const int nc = c1 - c < tile ? c1 - c : tile;
        for (int k = 0; k < tile; k++)
            ap[k] = abase + (size_t)(c + (k < nc ? k : nc - 1)) * j->act_row_bytes;
        for (int64_t r = r0; r < r1; r += tile) {
            const void *wp[8];
            const int nr = r1 - r < tile ? (int)(r1 - r) : tile;
            for (int k = 0; k < tile; k++)
                wp[k] = wbase + (size_t)(r + (k < nr ? k : nr - 1)) * j->w_row_bytes;
            float out[64];
            if (wide)
                j->k->gemm8(cols, wp, ap, out);
            else
                j->k->gemm(cols, wp, ap, out);
            /* gemm8 writes token-major (8 * c + r), gemm row-major (4 * r + c). */
            const int rs = wide ? 1 : 4, cs = wide ? 8 : 1;
            for (int ci = 0; ci < nc; ci++) {
                float *yc = j->y + (size_t)(c + ci) * rows + r;
                for (int ri = 0; ri < nr; ri++)
                    yc[ri] = out[rs * ri + cs * ci] + (bias ? bias[r + ri] : 0.0f);
            }
        }
    }
}

static void matmul_tiles(void *ctx, int t, int nt)
{
    struct matmul_job *j = ctx;
    const int64_t rows = j->w->rows;
    const int tile = j->k->gemm8 ? 8 : 4;
    const int64_t tiles = (rows + tile - 1) / tile;
    if (tiles < 2 * nt) {
        /* Too few rows to keep every thread busy (small test shapes): split the tokens instead. */
        const int c0 = (int)((int64_t)j->n * t / nt), c1 = (int)((int64_t)j->n * (t + 1) / nt);
        if (c0 < c1)
            matmul_block(j, 0, rows, c0, c1);
        return;
    }
    /* Whole tiles per thread, so only the last thread can have a partial one. */
    const int64_t r0 = tiles * t / nt * tile, r1e = tiles * (t + 1) / nt * tile;
    const int64_t r1 = r1e < rows ? r1e : rows;
    int64_t panel = (int64_t)(PANEL_BYTES / (j->w_row_bytes ? j->w_row_bytes : 1)) / tile * tile;
    if (panel < tile)
        panel = tile;
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
        struct quantize_job q = {k, x, c->act_scratch, w->cols, row_bytes, n, n > 1 && k->gemm8 != NULL && k->act_type == DT_Q8_0};
        if (n > 1)
            threadpool_run(c->pool, quantize_rows, &q);
        else
            quantize_rows(&q, 0, 1);
        job.act = c->act_scratch;
        job.act_row_bytes = row_bytes;
    }
    threadpool_run(c->pool, n > 1 && k->gemm ? matmul_tiles : matmul_rows, &job);
}
