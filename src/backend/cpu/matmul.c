/* matmul.c — y = x . W^T on the CPU: activations converted once per call to the weight format's
 * activation type, then rows of W split evenly across the thread pool. Each thread walks its rows in
 * small tiles and, for every row, all tokens of the batch, so a weight row is read from memory once per
 * call whatever the batch size. */
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

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
    threadpool_run(c->pool, matmul_rows, &job);
}
