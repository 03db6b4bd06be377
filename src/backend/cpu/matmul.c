/* matmul.c — y = x . W^T on the CPU: activations converted once per call to the weight format's
 * activation type, then the rows of W shared out across the thread pool in chunks.
 *
 * Rows are handed out from a counter in the job (threadpool_share), a chunk at a time, so a thread
 * that runs keeps taking rows while one that the OS has descheduled holds only the chunk it
 * started. Every row is computed once, by the same code whichever thread takes it, so results do
 * not depend on the thread count or on timing.
 *
 * One token (decode): chunks of rows, several per thread, each walked with the format's vec_dot,
 * reading every weight byte once (F16 and BF16 rows of CPU_HALF_ACT_MIN_COLS columns or more
 * against the activation row in F16, which then stays in L1 cache). Several tokens (prefill):
 * tiles of 4 weight rows x 4 tokens (kernels.h gemm), or 8 x 8 where the format has a gemm8, so
 * each unpacked weight block serves several tokens and each activation block several rows. A
 * chunk is a panel of whole tiles small enough to stay in L2 cache, and every token tile runs
 * against it before the next chunk, so weights are read from memory once per call and activations
 * come from cache. Where the format has pack8 (Q4_0), the panel is first unpacked into the slot's
 * scratch in the tile's own layout (kernels.h), so the nibble unpacking, transposes and scale
 * conversions run once per panel rather than once per token tile. Weights stay in place: the model has one copy, and only a panel at a
 * time is unpacked. */
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

/* Bytes of weight rows per panel: half a typical 1-2 MiB L2, leaving room for activation tiles. */
#define PANEL_BYTES (256 * 1024)
/* One-token matmuls: about this many chunks per thread, each at most this many weight bytes. */
#define DECODE_CHUNKS 8
#define DECODE_CHUNK_BYTES (256 * 1024)

struct matmul_job {
    struct threadpool_share share; /* rows handed out so far */
    int64_t chunk;                 /* rows per chunk */
    const struct bweight *w;
    const struct bweight *bias;
    const struct cpu_kernel *k;
    vec_dot_fn dot;  /* k->vec_dot, or k->vec_dot_half for a wide F16/BF16 decode row */
    const void *act; /* n activation rows, each act_row_bytes */
    size_t act_row_bytes;
    size_t w_row_bytes;
    float *y;
    int n;
    uint8_t *pack;        /* per-slot scratch for packed row groups, or NULL */
    size_t pack_per_slot; /* bytes of it per slot */
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
    (void)t;
    (void)nt;
    struct matmul_job *j = ctx;
    const int64_t rows = j->w->rows, cols = j->w->cols;
    const uint8_t *wbase = j->w->host;
    const float *bias = j->bias ? j->bias->host : NULL;
    int64_t r0;
    while ((r0 = threadpool_share_next(&j->share, j->chunk, rows)) >= 0) {
        const int64_t r1 = r0 + j->chunk < rows ? r0 + j->chunk : rows;
        for (int64_t r = r0; r < r1; r++) {
            const void *wr = wbase + (size_t)r * j->w_row_bytes;
            const float b = bias ? bias[r] : 0.0f;
            for (int i = 0; i < j->n; i++) {
                const void *a = (const uint8_t *)j->act + (size_t)i * j->act_row_bytes;
                j->y[(size_t)i * rows + r] = j->dot(cols, wr, a) + b;
            }
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

/* Rows [r0, r1) packed in 8-row groups into this slot's scratch (a partial group repeats its last
 * row), then every 8-token tile against each group. */
static void matmul_packed(const struct matmul_job *j, int64_t r0, int64_t r1, uint8_t *pack)
{
    const int64_t rows = j->w->rows, cols = j->w->cols;
    const uint8_t *wbase = j->w->host, *abase = j->act;
    const float *bias = j->bias ? j->bias->host : NULL;
    const size_t group_bytes = (size_t)(cols / 32) * CPU_PACK8_BLOCK_BYTES;
    const int64_t groups = (r1 - r0 + 7) / 8;
    for (int64_t g = 0; g < groups; g++) {
        const void *wp[8];
        for (int k = 0; k < 8; k++) {
            const int64_t r = r0 + 8 * g + k < r1 ? r0 + 8 * g + k : r1 - 1;
            wp[k] = wbase + (size_t)r * j->w_row_bytes;
        }
        j->k->pack8(cols, wp, pack + (size_t)g * group_bytes);
    }
    for (int c = 0; c < j->n; c += 8) {
        const void *ap[8];
        const int nc = j->n - c < 8 ? j->n - c : 8;
        for (int k = 0; k < 8; k++)
            ap[k] = abase + (size_t)(c + (k < nc ? k : nc - 1)) * j->act_row_bytes;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t r = r0 + 8 * g;
            const int nr = r1 - r < 8 ? (int)(r1 - r) : 8;
            float out[64];
            j->k->gemm8p(cols, pack + (size_t)g * group_bytes, ap, out);
            for (int ci = 0; ci < nc; ci++) {
                float *yc = j->y + (size_t)(c + ci) * rows + r;
                for (int ri = 0; ri < nr; ri++)
                    yc[ri] = out[8 * ci + ri] + (bias ? bias[r + ri] : 0.0f);
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
    /* Chunks of whole tiles, so only the last chunk can have a partial one. */
    uint8_t *pack = j->pack ? j->pack + (size_t)t * j->pack_per_slot : NULL;
    int64_t r0;
    while ((r0 = threadpool_share_next(&j->share, j->chunk, rows)) >= 0) {
        const int64_t r1 = r0 + j->chunk < rows ? r0 + j->chunk : rows;
        if (pack)
            matmul_packed(j, r0, r1, pack);
        else
            matmul_block(j, r0, r1, 0, j->n);
    }
}

void cpu_matmul(struct backend *be, const struct bweight *w, const struct bweight *bias, const float *x,
                float *y, int n)
{
    struct cpu_backend *c = (struct cpu_backend *)be;
    const struct cpu_kernel *k = cpu_kernel_for(w->type);
    struct matmul_job job = {
        .w = w, .bias = bias, .k = k, .dot = k->vec_dot, .act = x,
        .act_row_bytes = (size_t)w->cols * sizeof(float), .w_row_bytes = dtype_row_bytes(w->type, w->cols),
        .y = y, .n = n,
    };
    if (n == 1 && cpu_decode_half(k, w->cols)) {
        /* A wide F16 or BF16 row in decode: the activation row in F16 stays in L1 (kernels.h). */
        k->quantize_half(x, c->act_scratch, w->cols);
        job.act = c->act_scratch;
        job.act_row_bytes = (size_t)w->cols * sizeof(uint16_t);
        job.dot = k->vec_dot_half;
    } else if (k->quantize) {
        size_t row_bytes = cpu_act_row_bytes(k, w->cols);
        struct quantize_job q = {k, x, c->act_scratch, w->cols, row_bytes, n, n > 1 && k->gemm8 != NULL && k->act_type == DT_Q8_0};
        if (n > 1)
            threadpool_run(c->pool, quantize_rows, &q);
        else
            quantize_rows(&q, 0, 1);
        job.act = c->act_scratch;
        job.act_row_bytes = row_bytes;
    }
    const int nt = threadpool_size(c->pool);
    const int64_t row_bytes = (int64_t)(job.w_row_bytes ? job.w_row_bytes : 1);
    threadpool_share_init(&job.share);
    if (n > 1 && k->gemm) {
        /* Panels of whole tiles that fit PANEL_BYTES, at least four per thread. */
        const int64_t tile = k->gemm8 ? 8 : 4;
        const int64_t packed_row = w->cols / 32 * (CPU_PACK8_BLOCK_BYTES / 8);
        if (k->pack8 && n > 8 && c->pack_scratch && packed_row * 8 <= (int64_t)c->pack_scratch_per_slot) {
            /* Panels whose packed form fits a slot's scratch. With one token tile (n <= 8) packing
             * would unpack the weights once for one use, as gemm8 does anyway. */
            job.pack = c->pack_scratch;
            job.pack_per_slot = c->pack_scratch_per_slot;
            job.chunk = threadpool_chunk(w->rows, nt, 4, 8, (int64_t)c->pack_scratch_per_slot / packed_row);
        } else {
            job.chunk = threadpool_chunk(w->rows, nt, 4, tile, PANEL_BYTES / row_bytes);
        }
        threadpool_run(c->pool, matmul_tiles, &job);
    } else {
        job.chunk = threadpool_chunk(w->rows, nt, DECODE_CHUNKS, 4, DECODE_CHUNK_BYTES / row_bytes);
        threadpool_run(c->pool, matmul_rows, &job);
    }
}
