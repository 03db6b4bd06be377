/* weight-stream.c — how close the CPU decode kernels come to the machine's memory read rate on a
 * model's own weights. Alternates two passes over the bytes one decoded token reads (every matrix
 * but the token embedding table, of which decode reads a row): "read" sums them as plain 64-bit
 * loads (the bench's bandwidth probe loop), "kernels" runs each matrix's vec_dot kernel over every
 * row against one activation row, as a one-token matmul does. Both share rows out across the same
 * threads in the same chunks. Each round runs both passes back to back (order swapped every
 * round), so a shared host's drifting bandwidth hits both alike; the kernels/read ratio per round
 * is what to read. A ratio near 1 means decode is held by memory, not by the kernels. With --anon a
 * third pass reads a copy of the same bytes in anonymous memory (malloc'd, written once), to compare
 * reading the file's page-cache pages with reading ordinary process memory.
 * With --type only the matrices of that weight type take part (a Q4_K_M file's Q6_K matrices, say).
 * With --read-only only the plain read runs, R passes, and one JSON line gives their median (the
 * neutral read rate bench/compare.mjs --read-rate takes between engine runs).
 * usage: weight-stream MODEL.gguf [--threads N] [--rounds R] [--type T] [--anon | --read-only] */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/kernels.h"
#include "base/err.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "tensor/tensor.h"

struct matrix {
    const struct gguf_tensor *t;
    const struct cpu_kernel *k;
    vec_dot_fn dot;   /* the kernel one-token matmuls use for this matrix */
    const void *act;  /* one activation row in the kernel's format */
    size_t row_bytes; /* of the weight */
    const uint8_t *data; /* its rows: in the mapped file, or in the anonymous copy */
};

struct pass {
    const struct matrix *m;
    int read; /* plain read instead of the kernel */
    struct threadpool_share share;
    int64_t chunk;
    double sink[64];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void pass_rows(void *ctx, int slot, int n_slots)
{
    (void)n_slots;
    struct pass *p = ctx;
    const struct matrix *m = p->m;
    const uint8_t *base = m->data;
    const int64_t rows = m->t->ne[1], cols = m->t->ne[0];
    double s = 0;
    int64_t r0;
    while ((r0 = threadpool_share_next(&p->share, p->chunk, rows)) >= 0) {
        const int64_t r1 = r0 + p->chunk < rows ? r0 + p->chunk : rows;
        if (p->read) {
            /* Eight independent sums keep several loads in flight, as in the bench's probe. */
            const uint64_t *q = (const uint64_t *)(const void *)(base + (size_t)r0 * m->row_bytes);
            const uint64_t *end = (const uint64_t *)(const void *)(base + (size_t)r1 * m->row_bytes);
            uint64_t a[8] = {0};
            for (; q + 8 <= end; q += 8)
                for (int i = 0; i < 8; i++)
                    a[i] += q[i];
            s += (double)(a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7]);
        } else {
            for (int64_t r = r0; r < r1; r++)
                s += m->dot(cols, base + (size_t)r * m->row_bytes, m->act);
        }
    }
    if (slot < 64)
        p->sink[slot] += s;
}

/* Seconds for one pass over every matrix. */
static double run_pass(struct threadpool *pool, const struct matrix *ms, int n, int read, double *sink)
{
    const int nt = threadpool_size(pool);
    const double t0 = now_s();
    for (int i = 0; i < n; i++) {
        struct pass p = {.m = &ms[i], .read = read};
        threadpool_share_init(&p.share);
        /* The decode matmul's chunking: about eight chunks a thread, at most 256 KiB each. */
        p.chunk = threadpool_chunk(ms[i].t->ne[1], nt, 8, 4, (256 * 1024) / (int64_t)ms[i].row_bytes);
        threadpool_run(pool, pass_rows, &p);
        for (int s = 0; s < 64; s++)
            *sink += p.sink[s];
    }
    return now_s() - t0;
}

/* --read-only: `rounds` plain reads, their median as one JSON line. */
static void read_rate(struct threadpool *pool, const struct matrix *ms, int n, double bytes, int rounds, int threads,
                      double *sink)
{
    double rd[64];
    for (int r = 0; r < rounds; r++)
        rd[r] = bytes / run_pass(pool, ms, n, 1, sink) / 1e9;
    printf("{\"read_gbs\": %.3f, \"bytes\": %.0f, \"passes\": %d, \"threads\": %d}\n", median(rd, rounds), bytes,
           rounds, threads);
}

/* The alternating rounds (plain read, kernels, and with an anonymous copy mc its read), one table row
 * each, then their medians. */
static void compare_rounds(const char *path, struct threadpool *pool, const struct matrix *ms, const struct matrix *mc,
                           int n, double bytes, int rounds, int threads, double *sink)
{
    double rd[64], kn[64], ratio[64], an[64];
    printf("%s: %d matrices, %.2f GB a token, %d threads\n", path, n, bytes / 1e9, threads);
    printf("round  read GB/s  kernels GB/s  kernels/read%s\n", mc ? "  anonymous read GB/s" : "");
    for (int r = 0; r < rounds; r++) {
        const int read_first = r % 2 == 0;
        double a = run_pass(pool, ms, n, read_first, sink);
        double b = run_pass(pool, ms, n, !read_first, sink);
        rd[r] = bytes / (read_first ? a : b) / 1e9;
        kn[r] = bytes / (read_first ? b : a) / 1e9;
        ratio[r] = kn[r] / rd[r];
        printf("%5d  %9.1f  %12.1f  %12.3f", r + 1, rd[r], kn[r], ratio[r]);
        if (mc) {
            an[r] = bytes / run_pass(pool, mc, n, 1, sink) / 1e9;
            printf("  %19.1f", an[r]);
        }
        printf("\n");
    }
    const double mr = median(rd, rounds), mk = median(kn, rounds), mq = median(ratio, rounds);
    printf("median %7.1f  %12.1f  %12.3f", mr, mk, mq);
    if (mc)
        printf("  %19.1f", median(an, rounds));
    printf("   (decode bound by the read rate: %.2f tok/s; by the kernels: %.2f)\n", mr * 1e9 / bytes,
           mk * 1e9 / bytes);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    const char *only_type = NULL;
    int threads = 2, rounds = 8, anon = 0, read_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--type") && i + 1 < argc)
            only_type = argv[++i];
        else if (!strcmp(argv[i], "--anon"))
            anon = 1;
        else if (!strcmp(argv[i], "--read-only"))
            read_only = 1;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: weight-stream MODEL.gguf [--threads N] [--rounds R] [--type T] [--anon | --read-only]\n");
            return 2;
        }
    }
    if (!path || threads < 1 || rounds < 1 || rounds > 64 || (anon && read_only)) {
        fprintf(stderr,
                "usage: weight-stream MODEL.gguf [--threads N] [--rounds R (1-64)] [--type T] [--anon | --read-only]\n");
        return 2;
    }
    const int want_type = only_type ? dtype_from_name(only_type) : -1;
    if (only_type && want_type < 0) {
        fprintf(stderr, "weight-stream: unknown weight type '%s' (as hearth names them: Q4_0, Q6_K, F16, ...)\n",
                only_type);
        return 2;
    }
    struct err e = {0};
    struct gguf_file *f = NULL;
    struct threadpool *pool = NULL;
    if (gguf_open(path, &f, &e) || threadpool_new(threads, &pool, &e)) {
        fprintf(stderr, "weight-stream: %s\n", e.msg);
        return 1;
    }
    const bool tied = gguf_find_tensor(f, "output.weight") == NULL;
    struct matrix *ms = calloc(f->n_tensors, sizeof *ms);
    int n = 0;
    double bytes = 0;
    for (uint64_t i = 0; i < f->n_tensors && ms; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        const struct cpu_kernel *k = cpu_kernel_for(t->type);
        if (t->n_dims != 2 || !k || (!tied && !strcmp(t->name, "token_embd.weight")) ||
            (want_type >= 0 && t->type != (uint32_t)want_type))
            continue;
        const int64_t cols = t->ne[0];
        float *x = malloc((size_t)cols * sizeof *x);
        void *act = aligned_alloc(64, (cpu_act_row_bytes(k, cols) + 63) / 64 * 64);
        if (!x || !act) {
            fprintf(stderr, "weight-stream: out of memory\n");
            return 1;
        }
        for (int64_t c = 0; c < cols; c++)
            x[c] = (float)((c * 7919) % 200 - 100) / 50.0f;
        /* As cpu_matmul does for one token: wide F16/BF16 rows against an F16 activation row. */
        const bool half = cpu_decode_half(k, cols);
        if (half)
            k->quantize_half(x, act, cols);
        else if (k->quantize)
            k->quantize(x, act, cols);
        else
            memcpy(act, x, (size_t)cols * sizeof *x);
        free(x);
        ms[n++] = (struct matrix){t, k, half ? k->vec_dot_half : k->vec_dot, act, dtype_row_bytes(t->type, cols), t->data};
        bytes += (double)dtype_row_bytes(t->type, cols) * (double)t->ne[1];
    }
    if (!ms || n == 0) {
        fprintf(stderr, "weight-stream: %s: no matrices the CPU kernels multiply%s%s\n", path,
                only_type ? " of type " : "", only_type ? only_type : "");
        return 1;
    }
    /* The anonymous copy: the same matrices, one after another in one buffer. */
    uint8_t *copy = NULL;
    struct matrix *mc = NULL;
    if (anon) {
        copy = malloc((size_t)bytes);
        mc = malloc((size_t)n * sizeof *mc);
        if (!copy || !mc) {
            fprintf(stderr, "weight-stream: out of memory for a %.2f GB copy\n", bytes / 1e9);
            return 1;
        }
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            const size_t sz = ms[i].row_bytes * (size_t)ms[i].t->ne[1];
            memcpy(copy + off, ms[i].data, sz);
            mc[i] = ms[i];
            mc[i].data = copy + off;
            off += sz;
        }
    }
    double sink = 0;
    run_pass(pool, ms, n, 1, &sink); /* fault the pages in */
    if (read_only)
        read_rate(pool, ms, n, bytes, rounds, threads, &sink);
    else
        compare_rounds(path, pool, ms, mc, n, bytes, rounds, threads, &sink);
    if (sink == 1234.5)
        puts("");
    for (int i = 0; i < n; i++)
        free((void *)ms[i].act);
    free(ms);
    free(mc);
    free(copy);
    threadpool_free(pool);
    gguf_close(f);
    return 0;
}
