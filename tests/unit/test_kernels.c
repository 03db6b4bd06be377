/* test_kernels.c — the CPU backend's kernels: every SIMD dot product against its scalar twin on
 * llama.cpp-quantized weights (../shared/reference/quant) and random activations, the matmul (odd
 * row counts, 1..3 threads, 1 to 9 tokens) against a float reference built from the exact
 * dequantized values gguf-py computed (and bit-identical across thread counts), the prefill GEMM tiles against vec_dot, the activation
 * quantizer, the attention helpers and the elementwise kernels. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "gguf/gguf.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"

static uint64_t rng_state;

static float rng_uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0);
}

/* Activation-like data: mostly small, a few large outliers (as hidden states have). */
static void fill_acts(float *x, int64_t n, uint64_t seed)
{
    rng_state = seed * 0x9e3779b97f4a7c15ull + 7;
    for (int64_t i = 0; i < n; i++) {
        float v = (rng_uniform() * 2.0f - 1.0f);
        if (rng_uniform() < 0.02f)
            v *= 20.0f;
        x[i] = v;
    }
}

/* The weight of one llama.cpp file (blk.0.ffn_down.weight: 256 rows of 512) with gguf-py's values. */
struct ref_weight {
    struct gguf_file *f;
    const struct gguf_tensor *t;
    float *values; /* rows * cols, exact dequantized values */
    int64_t rows, cols;
};

static const char *const ref_files[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K",
                                        "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"};
#define N_REF (sizeof ref_files / sizeof ref_files[0])
/* Offset of ffn_down's values in the expected file: attn_q (256 x 256) comes first (manifest.json). */
#define FFN_DOWN_OFFSET 65536

static int load_ref(const char *name, struct ref_weight *rw)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/quant/quant-%s.gguf", name);
    const char *path = tu_testdata(rel);
    if (!path)
        return -1;
    struct err e = {0};
    memset(rw, 0, sizeof *rw);
    if (gguf_open(path, &rw->f, &e) != 0)
        fail_msg("%s", e.msg);
    rw->t = gguf_find_tensor(rw->f, "blk.0.ffn_down.weight");
    assert_non_null(rw->t);
    rw->cols = rw->t->ne[0];
    rw->rows = rw->t->ne[1];
    snprintf(rel, sizeof rel, "reference/quant/quant-%s.expected.f32", name);
    path = tu_testdata(rel);
    if (!path)
        fail_msg("expected values for %s missing", name);
    size_t size = 0;
    char *all = tu_read(path, &size);
    const size_t n = (size_t)(rw->rows * rw->cols);
    assert_int_equal(size, (FFN_DOWN_OFFSET + n) * sizeof(float));
    rw->values = malloc(n * sizeof(float));
    assert_non_null(rw->values);
    memcpy(rw->values, all + FFN_DOWN_OFFSET * sizeof(float), n * sizeof(float));
    free(all);
    return 0;
}

static void free_ref(struct ref_weight *rw)
{
    gguf_close(rw->f);
    free(rw->values);
}

/* The SIMD kernel tables this CPU can run (AVX2, AVX-512), each with its name. */
struct simd_set {
    const struct cpu_kernel *(*tables[2])(uint32_t);
    const char *names[2];
    int n;
};

static struct simd_set simd_tables(void)
{
    struct simd_set set = {.n = 0};
    if (cpu_isa_detect() >= CPU_ISA_AVX2) {
        set.tables[set.n] = cpu_kernels_avx2;
        set.names[set.n++] = "avx2";
    }
    if (cpu_isa_detect() >= CPU_ISA_AVX512) {
        set.tables[set.n] = cpu_kernels_avx512;
        set.names[set.n++] = "avx512";
    }
    return set;
}

/* simd_tables, or the test is skipped on a CPU without SIMD kernels. */
static struct simd_set simd_tables_or_skip(void)
{
    const struct simd_set set = simd_tables();
    if (set.n == 0)
        skip();
    return set;
}

/* Sum of |w_k * a_k| over a row: the scale rounding differences are measured against. */
static double abs_dot(const float *w, const float *a, int64_t n)
{
    double s = 0;
    for (int64_t k = 0; k < n; k++)
        s += fabs((double)w[k] * a[k]);
    return s;
}

/* Every SIMD kernel equals the scalar integer kernel on the same quantized activations, up to
 * float summation order; the scalar kernel equals the float reference within the activation
 * quantization bound. */
static void test_simd_vs_scalar(void **state)
{
    (void)state;
    const struct simd_set simd = simd_tables();
    int tested = 0;
    for (size_t f = 0; f < N_REF; f++) {
        struct ref_weight rw;
        if (load_ref(ref_files[f], &rw) != 0)
            continue;
        const uint32_t type = rw.t->type;
        const struct cpu_kernel *sk = cpu_kernel_scalar(type);
        assert_non_null(sk);
        assert_non_null(sk->quantize);
        const int64_t cols = rw.cols;
        const size_t w_row = dtype_row_bytes(type, cols), a_row = dtype_row_bytes(sk->act_type, cols);
        float *x = malloc((size_t)cols * sizeof *x);
        void *qa = malloc(a_row);
        const size_t a_row_max = a_row + 64 + (size_t)(cols / 32) * 64;
        void *qk = aligned_alloc(64, (a_row_max + 63) & ~(size_t)63);
        float *deq = malloc((size_t)cols * sizeof *deq);
        assert_true(x && qa && qk && deq);
        for (int trial = 0; trial < 3; trial++) {
            fill_acts(x, cols, 100 + (uint64_t)trial + 10 * f);
            sk->quantize(x, qa, cols);
            if (sk->act_type == DT_Q8_1)
                quant_dequantize_q8_1(qa, deq, cols);
            else if (sk->act_type == DT_Q8_K)
                quant_dequantize_q8_k(qa, deq, cols);
            else
                quant_dequantize_q8_0(qa, deq, cols);
            /* Q8_1's block sums are stored in fp16, so the offset term is only that exact. */
            const double rel = sk->act_type == DT_Q8_1 ? 2e-3 : 1e-5;
            for (int64_t r = 0; r < rw.rows; r++) {
                const void *wr = (const uint8_t *)rw.t->data + (size_t)r * w_row;
                const float *wv = rw.values + r * cols;
                const float ref = sk->vec_dot(cols, wr, qa);
                /* The integer kernel computes exactly sum(w * dequantized activation). */
                double exact = 0;
                for (int64_t k = 0; k < cols; k++)
                    exact += (double)wv[k] * deq[k];
                const double mag = abs_dot(wv, deq, cols);
                if (fabs(ref - exact) > rel * mag + 1e-6)
                    fail_msg("%s row %lld: scalar kernel %g, float reference %g", ref_files[f], (long long)r,
                             (double)ref, exact);
                for (int t = 0; t < simd.n; t++) {
                    const struct cpu_kernel *k = simd.tables[t](type);
                    if (!k)
                        continue;
                    assert_int_equal(k->act_type, sk->act_type);
                    /* The table's own quantizer: the same blocks, plus any extras its vec_dot reads. */
                    assert_true(cpu_act_row_bytes(k, cols) <= a_row_max);
                    k->quantize(x, qk, cols);
                    assert_memory_equal(qk, qa, a_row);
                    const float got = k->vec_dot(cols, wr, qk);
                    if (fabs(got - ref) > 1e-5 * mag + 1e-6)
                        fail_msg("%s %s row %lld: %g, scalar %g", simd.names[t], ref_files[f], (long long)r, (double)got,
                                 (double)ref);
                    tested++;
                }
            }
        }
        free(x);
        free(qa);
        free(qk);
        free(deq);
        free_ref(&rw);
    }
    if (simd.n > 0 && tested == 0)
        skip();
}

/* Q4_0 decode rows of several lengths (the AVX-512 kernel takes eight blocks a step and the rest
 * one at a time; a row's eight-block groups lie at every 16-byte phase of a cache line): each SIMD
 * table's quantizer + vec_dot equals the scalar kernel, also with the row placed at an odd offset. */
static void test_q4_0_row_lengths(void **state)
{
    (void)state;
    const struct simd_set simd = simd_tables_or_skip();
    static const int64_t lengths[] = {32, 224, 256, 288, 512 + 7 * 32, 2048, 4096 + 5 * 32, 14336};
    const struct cpu_kernel *sk = cpu_kernel_scalar(DT_Q4_0);
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int64_t cols = lengths[li];
        const size_t w_row = dtype_row_bytes(DT_Q4_0, cols);
        float *x = malloc((size_t)cols * sizeof *x), *wf = malloc((size_t)cols * sizeof *wf);
        uint8_t *wq = malloc(w_row + 18), *qa = aligned_alloc(64, (cpu_act_row_bytes(sk, cols) + 63) & ~(size_t)63);
        assert_true(x && wf && wq && qa);
        fill_acts(x, cols, 900 + (uint64_t)li);
        fill_acts(wf, cols, 700 + (uint64_t)li);
        sk->quantize(x, qa, cols);
        for (int off = 0; off <= 18; off += 18) {
            /* off 18: the row starts one block further into the buffer (another alignment). */
            quant_quantize_q4_0(wf, (struct block_q4_0 *)(void *)(wq + off), cols);
            const float ref = sk->vec_dot(cols, wq + off, qa);
            const double mag = abs_dot(wf, x, cols);
            for (int t = 0; t < simd.n; t++) {
                const struct cpu_kernel *k = simd.tables[t](DT_Q4_0);
                const size_t a_row = cpu_act_row_bytes(k, cols);
                uint8_t *qk = aligned_alloc(64, (a_row + 63) & ~(size_t)63);
                assert_non_null(qk);
                k->quantize(x, qk, cols);
                const float got = k->vec_dot(cols, wq + off, qk);
                if (fabs(got - ref) > 1e-5 * mag + 1e-6)
                    fail_msg("%s Q4_0 row of %lld at offset %d: %g, scalar %g", simd.names[t], (long long)cols, off,
                             (double)got, (double)ref);
                free(qk);
            }
        }
        free(x);
        free(wf);
        free(wq);
        free(qa);
    }
}

/* The SIMD Q8_0 activation quantizer writes the same bytes as the reference quantizer. */
static void test_quantize_q8_0(void **state)
{
    (void)state;
    const struct simd_set simd = simd_tables_or_skip();
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x);
    struct block_q8_0 *a = malloc(N / 32 * sizeof *a), *b = malloc(N / 32 * sizeof *b);
    assert_true(x && a && b);
    fill_acts(x, N, 5);
    memset(x, 0, 32 * sizeof *x); /* an all-zero block */
    quant_quantize_q8_0(x, a, N);
    for (int t = 0; t < simd.n; t++) {
        simd.tables[t](DT_Q8_0)->quantize(x, b, N);
        for (int blk = 0; blk < N / 32; blk++) {
            assert_int_equal(a[blk].d, b[blk].d);
            for (int j = 0; j < 32; j++)
                if (a[blk].qs[j] != b[blk].qs[j])
                    fail_msg("%s block %d element %d: %d vs %d", simd.names[t], blk, j, b[blk].qs[j], a[blk].qs[j]);
        }
    }
    free(x);
    free(a);
    free(b);
}

/* The SIMD Q8_K activation quantizer writes the same blocks as the reference one, including a
 * zero block and a block whose largest magnitude appears with both signs (the first one wins). */
static void test_quantize_q8_k(void **state)
{
    (void)state;
    const struct simd_set simd = simd_tables_or_skip();
    enum { N = 4096, NB = N / 256 };
    float *x = malloc(N * sizeof *x);
    /* Room for the extras a table's Q4_K quantizer appends after the blocks. */
    const size_t b_bytes = NB * sizeof(struct block_q8_k) + (N / 32) * 64 + 64;
    struct block_q8_k *a = malloc(NB * sizeof *a), *b = aligned_alloc(64, b_bytes);
    assert_true(x && a && b);
    fill_acts(x, N, 6);
    memset(x, 0, 256 * sizeof *x);
    x[256 + 40] = -30.0f;
    x[256 + 200] = 30.0f;
    x[512 + 3] = 25.0f;
    x[512 + 9] = -25.0f;
    quant_quantize_q8_k(x, a, N);
    for (int t = 0; t < simd.n; t++) {
        memset(b, 0x55, b_bytes);
        assert_true(cpu_act_row_bytes(simd.tables[t](DT_Q4_K), N) <= b_bytes);
        simd.tables[t](DT_Q4_K)->quantize(x, b, N);
        for (int blk = 0; blk < NB; blk++) {
            if (a[blk].d != b[blk].d)
                fail_msg("%s block %d: d %g vs %g", simd.names[t], blk, (double)b[blk].d, (double)a[blk].d);
            assert_memory_equal(a[blk].qs, b[blk].qs, sizeof a[blk].qs);
            assert_memory_equal(a[blk].bsums, b[blk].bsums, sizeof a[blk].bsums);
        }
    }
    free(x);
    free(a);
    free(b);
}

/* One 4x4 GEMM tile (rows r0.., activations of four tokens) against vec_dot of every pair, for
 * one kernel table entry. Rows may repeat (the matmul repeats the last row of a partial tile). */
static void check_tile(const char *label, const struct cpu_kernel *k, const uint8_t *w, size_t w_row,
                       const int rows[4], const void *const a[4], int64_t cols, const float *wv, const float *xv)
{
    const void *wp[4];
    for (int r = 0; r < 4; r++)
        wp[r] = w + (size_t)rows[r] * w_row;
    float out[16];
    k->gemm(cols, wp, a, out);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            const float ref = k->vec_dot(cols, wp[r], a[c]);
            const double mag = abs_dot(wv + (size_t)rows[r] * cols, xv + (size_t)c * cols, cols);
            if (!(fabs(out[4 * r + c] - ref) <= 2e-5 * mag + 1e-5))
                fail_msg("%s tile row %d token %d: %g, vec_dot %g", label, rows[r], c, (double)out[4 * r + c],
                         (double)ref);
        }
}

/* One 8x8 tile (gemm8, on +128 activations for Q8_0 ones) against vec_dot of every pair on the
 * plain ones. */
static void check_tile8(const char *label, const struct cpu_kernel *k, const uint8_t *w, size_t w_row, int r0,
                        const float *x, int64_t cols, const float *wv)
{
    const size_t a_row = cpu_act_row_bytes(k, cols);
    const size_t a_size = (8 * a_row + 63) & ~(size_t)63; /* rows with extras need 32-byte alignment */
    uint8_t *qa = aligned_alloc(64, a_size), *qb = aligned_alloc(64, a_size);
    assert_true(qa && qb);
    const void *wp[8], *ap[8];
    for (int c = 0; c < 8; c++) {
        /* Tokens 6 and 7 repeat token 5, as in a partial token tile. */
        const int src = c < 6 ? c : 5;
        k->quantize(x + (size_t)src * cols, qa + (size_t)c * a_row, cols);
        memcpy(qb + (size_t)c * a_row, qa + (size_t)c * a_row, a_row);
        if (k->act_type == DT_Q8_0)
            cpu_q8_0_bias(qb + (size_t)c * a_row, cols);
        ap[c] = qb + (size_t)c * a_row;
        wp[c] = w + (size_t)(r0 + 3 * c) * w_row;
    }
    float out[64];
    k->gemm8(cols, wp, ap, out);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 8; c++) {
            const float ref = k->vec_dot(cols, wp[r], qa + (size_t)c * a_row);
            const double mag = abs_dot(wv + (size_t)(r0 + 3 * r) * cols, x + (size_t)(c < 6 ? c : 5) * cols, cols);
            if (!(fabs(out[8 * c + r] - ref) <= 2e-5 * mag + 1e-5))
                fail_msg("%s 8x8 tile row %d token %d: %g, vec_dot %g", label, r0 + 3 * r, c, (double)out[8 * c + r],
                         (double)ref);
        }
    if (k->pack8) {
        /* The same eight rows packed: the packed tile gives gemm8's results bit for bit. */
        const size_t pbytes = (size_t)(cols / 32) * CPU_PACK8_BLOCK_BYTES;
        void *pk = aligned_alloc(64, (pbytes + 63) & ~(size_t)63);
        assert_non_null(pk);
        k->pack8(cols, wp, pk);
        float outp[64];
        k->gemm8p(cols, pk, ap, outp);
        for (int i = 0; i < 64; i++)
            if (memcmp(&outp[i], &out[i], sizeof out[i]) != 0)
                fail_msg("%s packed 8x8 tile row %d token %d: %g, gemm8 %g", label, r0 + 3 * (i % 8), i / 8,
                         (double)outp[i], (double)out[i]);
        free(pk);
    }
    free(qa);
    free(qb);
}

/* The GEMM tiles (4x4, and 8x8 where the format has them) of every SIMD table equal the table's
 * vec_dot on llama.cpp's quantized weights (and on F16/F32 rows), with whole and repeated-row tiles;
 * packed 8x8 tiles equal the unpacked ones bit for bit. */
static void test_gemm_tiles(void **state)
{
    (void)state;
    const struct simd_set simd = simd_tables_or_skip();
    static const int row_sets[3][4] = {{0, 1, 2, 3}, {17, 40, 41, 255}, {9, 9, 9, 9}};
    int tested = 0;
    for (size_t f = 0; f < N_REF; f++) {
        struct ref_weight rw;
        if (load_ref(ref_files[f], &rw) != 0)
            continue;
        const uint32_t type = rw.t->type;
        const int64_t cols = rw.cols;
        float *x = malloc((size_t)8 * cols * sizeof *x);
        assert_non_null(x);
        fill_acts(x, 8 * cols, 300 + f);
        for (int t = 0; t < simd.n; t++) {
            const struct cpu_kernel *k = simd.tables[t](type);
            if (!k || !k->gemm)
                continue;
            const size_t a_row = cpu_act_row_bytes(k, cols);
            uint8_t *qa = aligned_alloc(64, (4 * a_row + 63) & ~(size_t)63);
            assert_non_null(qa);
            const void *ap[4];
            for (int c = 0; c < 4; c++) {
                k->quantize(x + (size_t)c * cols, qa + (size_t)c * a_row, cols);
                ap[c] = qa + (size_t)c * a_row;
            }
            char label[64];
            snprintf(label, sizeof label, "%s %s", simd.names[t], ref_files[f]);
            for (int s = 0; s < 3; s++)
                check_tile(label, k, rw.t->data, dtype_row_bytes(type, cols), row_sets[s], ap, cols, rw.values, x);
            /* A repeated token column, as in a partial token tile. */
            const void *rep[4] = {ap[2], ap[2], ap[2], ap[2]};
            check_tile(label, k, rw.t->data, dtype_row_bytes(type, cols), row_sets[1], rep, cols, rw.values, x);
            if (k->gemm8) {
                check_tile8(label, k, rw.t->data, dtype_row_bytes(type, cols), 0, x, cols, rw.values);
                check_tile8(label, k, rw.t->data, dtype_row_bytes(type, cols), 200, x, cols, rw.values);
                tested++;
            }
            free(qa);
            tested++;
        }
        free(x);
        free_ref(&rw);
    }
    /* F16 and F32 rows, with a length that leaves a scalar tail (cols - 3). */
    enum { COLS = 509, ROWS = 8 };
    float *w32 = malloc(ROWS * COLS * sizeof *w32), *wv = malloc(ROWS * COLS * sizeof *wv);
    float *x = malloc(4 * COLS * sizeof *x);
    uint16_t *w16 = malloc(ROWS * COLS * sizeof *w16), *wb = malloc(ROWS * COLS * sizeof *wb);
    float *wbv = malloc(ROWS * COLS * sizeof *wbv);
    assert_true(w32 && wv && x && w16 && wb && wbv);
    fill_acts(w32, ROWS * COLS, 11);
    fill_acts(x, 4 * COLS, 12);
    for (int i = 0; i < ROWS * COLS; i++) {
        w16[i] = f32_to_fp16(w32[i]);
        wv[i] = fp16_to_f32(w16[i]);
        wb[i] = f32_to_bf16(w32[i]);
        wbv[i] = bf16_to_f32(wb[i]);
    }
    const void *ap[4] = {x, x + COLS, x + 2 * COLS, x + 3 * COLS};
    static const int rs[4] = {7, 0, 3, 3};
    for (int t = 0; t < simd.n; t++) {
        const struct cpu_kernel *k16 = simd.tables[t](DT_F16), *k32 = simd.tables[t](DT_F32);
        if (k16 && k16->gemm) {
            check_tile("F16", k16, (const uint8_t *)w16, COLS * sizeof *w16, rs, ap, COLS, wv, x);
            tested++;
        }
        if (k32 && k32->gemm) {
            check_tile("F32", k32, (const uint8_t *)w32, COLS * sizeof *w32, rs, ap, COLS, w32, x);
            tested++;
        }
        /* BF16: the SIMD dot against the scalar one, then the tile against the SIMD dot. */
        const struct cpu_kernel *kb = simd.tables[t](DT_BF16), *sb = cpu_kernel_scalar(DT_BF16);
        if (kb) {
            for (int r = 0; r < ROWS; r++) {
                const float got = kb->vec_dot(COLS, wb + r * COLS, x), ref = sb->vec_dot(COLS, wb + r * COLS, x);
                assert_true(fabsf(got - ref) <= 1e-5 * abs_dot(wbv + r * COLS, x, COLS) + 1e-6);
            }
            if (kb->gemm)
                check_tile("BF16", kb, (const uint8_t *)wb, COLS * sizeof *wb, rs, ap, COLS, wbv, x);
            tested++;
        }
    }
    free(wb);
    free(wbv);
    free(w32);
    free(wv);
    free(x);
    free(w16);
    assert_true(tested > 0);
}

/* The elementwise kernels (RMSNorm's sum of squares and scaling, SwiGLU, add) against the scalar
 * ones, on a length with a tail and gate values far into exp's clamped range. */
static void test_vec_kernels(void **state)
{
    (void)state;
    const struct cpu_vec_kernels *sets[2];
    int n_sets = 0;
    if (cpu_isa_detect() >= CPU_ISA_AVX2)
        sets[n_sets++] = cpu_vec_kernels_avx2();
    if (cpu_isa_detect() >= CPU_ISA_AVX512)
        sets[n_sets++] = cpu_vec_kernels_avx512();
    if (n_sets == 0)
        skip();
    assert_ptr_equal(cpu_vec_kernels_for(), sets[n_sets - 1]);
    const struct cpu_vec_kernels *s = &cpu_vec_kernels_scalar;
    enum { N = 1003 };
    float x[N], g[N], u[N], o0[N], o1[N];
    fill_acts(x, N, 21);
    fill_acts(g, N, 22);
    fill_acts(u, N, 23);
    for (int i = 0; i < N; i += 7)
        g[i] *= 60.0f; /* silu of large |g|: ~g or ~-0 */
    g[1] = 200.0f;
    g[2] = -200.0f;
    for (int k = 0; k < n_sets; k++) {
        for (int n = 1; n <= N; n += 67) {
            const float a = sets[k]->sum_sq(n, x), b = s->sum_sq(n, x);
            assert_true(fabsf(a - b) <= 1e-5f * b);
            sets[k]->scale_mul(n, x, 0.7f, g, o0);
            s->scale_mul(n, x, 0.7f, g, o1);
            for (int i = 0; i < n; i++)
                assert_true(fabsf(o0[i] - o1[i]) <= 1e-6f * fabsf(o1[i]));
            sets[k]->swiglu(n, g, u, o0);
            s->swiglu(n, g, u, o1);
            for (int i = 0; i < n; i++)
                if (!(fabsf(o0[i] - o1[i]) <= 2e-6f * fabsf(o1[i]) + 1e-30f))
                    fail_msg("swiglu(%g, %g): %g vs %g", (double)g[i], (double)u[i], (double)o0[i], (double)o1[i]);
            memcpy(o0, x, sizeof o0);
            memcpy(o1, x, sizeof o1);
            sets[k]->add(n, o0, u);
            s->add(n, o1, u);
            assert_memory_equal(o0, o1, sizeof o0);
        }
    }
}

/* Bound on |matmul - float reference| for one output: each activation is off by at most ~0.56 of
 * its block's step (half a step plus the fp16 rounding of the scale), times |w|. */
static double act_bound(uint32_t act_type, const float *w, const float *x, int64_t n)
{
    if (act_type == DT_F32)
        return 2e-6 * abs_dot(w, x, n);
    if (act_type == DT_F16) /* each activation rounded to F16: relative 2^-11, absolute 2^-25 below 2^-14 */
        return (1.0 / 2048 + 2e-6) * abs_dot(w, x, n) + 3e-8 * abs_dot(w, w, n);
    const int64_t bs = act_type == DT_Q8_K ? 256 : 32;
    double bound = 0;
    for (int64_t b = 0; b < n; b += bs) {
        float amax = 0;
        double wsum = 0;
        for (int64_t k = b; k < b + bs; k++) {
            if (fabsf(x[k]) > amax)
                amax = fabsf(x[k]);
            wsum += fabs(w[k]);
        }
        bound += 0.57 * amax / 127.0 * wsum;
    }
    return bound + 1e-5 * abs_dot(w, x, n);
}

static void check_matmul(const char *label, const struct bweight *w, const float *values, uint32_t act_type)
{
    static const int threads[] = {1, 2, 3};
    /* 1: the decode path (vec_dot); 2, 5, 9: GEMM tiles, whole and partial. */
    static const int batches[] = {1, 2, 5, 9};
    enum { MAX_BATCH = 9 };
    const int64_t cols = w->cols, rows = w->rows;
    float *x = malloc((size_t)MAX_BATCH * cols * sizeof *x), *y = malloc((size_t)MAX_BATCH * rows * sizeof *y);
    float *bias = malloc((size_t)rows * sizeof *bias);
    /* The one-thread results per batch: other thread counts must match them bit for bit (rows are
     * shared out in chunks, and each is computed once by the same code whichever thread takes it). */
    enum { N_BATCHES = 4 };
    float *yref = malloc((size_t)N_BATCHES * MAX_BATCH * rows * sizeof *yref);
    assert_true(x && y && bias && yref);
    fill_acts(x, MAX_BATCH * cols, 77);
    for (int64_t r = 0; r < rows; r++)
        bias[r] = 0.25f * (float)(r % 7) - 0.5f;
    struct bweight bw = {.name = "bias", .type = DT_F32, .rows = 1, .cols = rows, .host = bias};
    for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
        struct backend *be = NULL;
        struct err e = {0};
        assert_int_equal(backend_cpu_new(threads[ti], &be, &e), 0);
        assert_int_equal(be->ops->reserve(be, MAX_BATCH, cols, 16, 64, &e), 0);
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
            const int n = batches[bi];
            memset(y, 0, (size_t)n * rows * sizeof *y);
            be->ops->matmul(be, w, bi & 1 ? &bw : NULL, x, y, n);
            float *yr = yref + bi * MAX_BATCH * rows;
            if (ti == 0)
                memcpy(yr, y, (size_t)n * rows * sizeof *y);
            else if (memcmp(yr, y, (size_t)n * rows * sizeof *y) != 0)
                fail_msg("%s, %d tokens: %d threads differ from one thread", label, n, threads[ti]);
            for (int i = 0; i < n; i++)
                for (int64_t r = 0; r < rows; r++) {
                    const float *wv = values + r * cols, *xi = x + (size_t)i * cols;
                    double ref = bi & 1 ? bias[r] : 0;
                    for (int64_t k = 0; k < cols; k++)
                        ref += (double)wv[k] * xi[k];
                    /* A wide F16/BF16 row in decode takes its activations in F16 (kernels.h). */
                    const int half = n == 1 && cpu_decode_half(cpu_kernel_for(w->type), cols);
                    const double tol = act_bound(half ? DT_F16 : act_type, wv, xi, cols);
                    const float got = y[(size_t)i * rows + r];
                    if (!(fabs(got - ref) <= tol))
                        fail_msg("%s, %d threads, token %d of %d, row %lld: %g, reference %g (bound %g)", label,
                                 threads[ti], i, n, (long long)r, (double)got, ref, tol);
                }
        }
        be->ops->free(be);
    }
    free(x);
    free(y);
    free(bias);
    free(yref);
}

/* The backend's matmul on every llama.cpp format, over an odd number of rows (37) so thread
 * splits are uneven, against the float product of gguf-py's dequantized values. */
static void test_matmul_reference(void **state)
{
    (void)state;
    int tested = 0;
    for (size_t f = 0; f < N_REF; f++) {
        struct ref_weight rw;
        if (load_ref(ref_files[f], &rw) != 0)
            continue;
        struct bweight w = {.name = rw.t->name, .type = rw.t->type, .rows = 37, .cols = rw.cols, .host = rw.t->data};
        check_matmul(ref_files[f], &w, rw.values, cpu_kernel_for(w.type)->act_type);
        /* Six rows: too few row tiles for the threads, so the GEMM splits the tokens instead. */
        w.rows = 6;
        check_matmul(ref_files[f], &w, rw.values, cpu_kernel_for(w.type)->act_type);
        free_ref(&rw);
        tested++;
    }
    if (!tested)
        skip();
}

/* A tensor of the reference F32 source (../shared/reference/quant/source-f32.gguf); *f to close. */
static const struct gguf_tensor *source_tensor(struct gguf_file **f, const char *name)
{
    const char *path = tu_testdata("reference/quant/source-f32.gguf");
    if (!path)
        return NULL;
    struct err e = {0};
    if (gguf_open(path, f, &e) != 0)
        fail_msg("%s", e.msg);
    const struct gguf_tensor *t = gguf_find_tensor(*f, name);
    assert_non_null(t);
    assert_int_equal(t->type, DT_F32);
    return t;
}

/* rows x cols F32 values converted to a 16-bit type (F16 or BF16), through the backend's matmul
 * against the float product of the converted values. */
static void check_matmul_converted(const char *label, uint32_t type, const float *src, int64_t rows, int64_t cols)
{
    struct err e = {0};
    uint16_t *h = malloc((size_t)rows * cols * sizeof *h);
    float *hv = malloc((size_t)rows * cols * sizeof *hv);
    assert_true(h && hv);
    assert_int_equal(dtype_quantize(type, src, h, rows * cols, &e), 0);
    assert_int_equal(dtype_dequantize(type, h, hv, rows * cols, &e), 0);
    struct bweight w = {.name = label, .type = type, .rows = rows, .cols = cols, .host = h};
    check_matmul(label, &w, hv, DT_F32);
    free(h);
    free(hv);
}

/* F16 and F32 weights (the F32 source converted): matmul against the float product. */
static void test_matmul_float(void **state)
{
    (void)state;
    struct gguf_file *f = NULL;
    const struct gguf_tensor *t = source_tensor(&f, "blk.0.ffn_down.weight");
    TU_REQUIRE(t);
    const int64_t cols = t->ne[0], rows = 41;
    check_matmul_converted("F16", DT_F16, t->data, rows, cols);
    struct bweight w32 = {.name = "f32", .type = DT_F32, .rows = rows, .cols = cols, .host = t->data};
    check_matmul("F32", &w32, t->data, DT_F32);
    gguf_close(f);
}

/* F16 and BF16 rows wide enough for decode to take F16 activations (kernels.h
 * CPU_HALF_ACT_MIN_COLS): the reference F32 source's values, converted and laid out as 31 rows of
 * 4141 columns (a length with eight- and one-element tails), through the backend's matmul against
 * the float product. */
static void test_matmul_f16_wide(void **state)
{
    (void)state;
    struct gguf_file *f = NULL;
    const struct gguf_tensor *t = source_tensor(&f, "token_embd.weight");
    TU_REQUIRE(t);
    enum { COLS = 4141, ROWS = 31 };
    assert_true(COLS >= CPU_HALF_ACT_MIN_COLS && t->ne[0] * t->ne[1] >= (int64_t)COLS * ROWS);
    check_matmul_converted("F16 wide", DT_F16, t->data, ROWS, COLS);
    check_matmul_converted("BF16 wide", DT_BF16, t->data, ROWS, COLS);
    gguf_close(f);
}

/* A vec_dot_half over prefixes of the rows (n, n - 1013, ...) against the double product of the
 * weight values wv and the F16 activations' values xv. */
static void check_half_dot(const char *isa, const char *type, vec_dot_fn dot, const uint16_t *w, const float *wv,
                           const uint16_t *xh, const float *xv, int len)
{
    for (int n = len; n > 0; n -= 1013) {
        double ref = 0;
        for (int i = 0; i < n; i++)
            ref += (double)wv[i] * xv[i];
        const float got = dot(n, w, xh);
        if (!(fabs(got - ref) <= 1e-5 * abs_dot(wv, xv, n) + 1e-6))
            fail_msg("%s %s x F16 dot of %d: %g, reference %g", isa, type, n, (double)got, ref);
    }
}

/* The F16 activation path of every SIMD table: the row converted exactly as f32_to_fp16 does
 * (round to nearest even, tails included), and the F16 and BF16 vec_dot_half equal to the product
 * of the converted values. */
static void test_half_activations(void **state)
{
    (void)state;
    const struct simd_set simd = simd_tables_or_skip();
    enum { N = 4141 };
    float *x = malloc(N * sizeof *x), *wv = malloc(N * sizeof *wv), *xv = malloc(N * sizeof *xv);
    float *wbv = malloc(N * sizeof *wbv);
    uint16_t *xh = malloc(N * sizeof *xh), *w = malloc(N * sizeof *w), *wb = malloc(N * sizeof *wb);
    assert_true(x && wv && xv && xh && w && wbv && wb);
    fill_acts(x, N, 51);
    fill_acts(wv, N, 52);
    /* Values that round differently: halfway cases, subnormal and overflowing ones, signed zero. */
    static const float special[] = {1.0f + 1.0f / 4096, 1.0f + 3.0f / 4096, 3e-6f, -5.9e-8f, 70000.0f, -0.0f, 65519.0f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        x[100 + i] = special[i];
    for (int i = 0; i < N; i++)
        w[i] = f32_to_fp16(wv[i]);
    int tested = 0;
    for (int t = 0; t < simd.n; t++) {
        const struct cpu_kernel *k = simd.tables[t](DT_F16);
        if (!k || !k->vec_dot_half)
            continue;
        assert_non_null(k->quantize_half);
        static const int lengths[] = {1, 7, 8, 9, 31, 33, N};
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            const int n = lengths[li];
            memset(xh, 0xff, N * sizeof *xh);
            k->quantize_half(x, xh, n);
            for (int i = 0; i < n; i++)
                if (xh[i] != f32_to_fp16(x[i]))
                    fail_msg("%s F16 activation %d of %d: 0x%04x, f32_to_fp16 0x%04x", simd.names[t], i, n, xh[i],
                             f32_to_fp16(x[i]));
            assert_int_equal(xh[n < N ? n : N - 1], n < N ? 0xffff : f32_to_fp16(x[N - 1]));
        }
        fill_acts(xv, N, 51); /* the row without the specials (70000 overflows to infinity) */
        k->quantize_half(xv, xh, N);
        for (int i = 0; i < N; i++) {
            xv[i] = fp16_to_f32(xh[i]);
            wv[i] = fp16_to_f32(w[i]);
        }
        check_half_dot(simd.names[t], "F16", k->vec_dot_half, w, wv, xh, xv, N);
        /* BF16 weights against the same F16 activations. */
        const struct cpu_kernel *kb = simd.tables[t](DT_BF16);
        assert_true(kb && kb->vec_dot_half && kb->quantize_half == k->quantize_half);
        for (int i = 0; i < N; i++) {
            wb[i] = f32_to_bf16(wv[i] * 1.7f);
            wbv[i] = bf16_to_f32(wb[i]);
        }
        check_half_dot(simd.names[t], "BF16", kb->vec_dot_half, wb, wbv, xh, xv, N);
        tested++;
    }
    free(x);
    free(wv);
    free(xv);
    free(xh);
    free(w);
    free(wbv);
    free(wb);
    if (!tested)
        skip();
}

/* Attention block kernels (score and value products over F16 and float cache rows, row maximum,
 * softmax exponentials) against the scalar versions, on head sizes, row counts and block lengths that are not
 * multiples of the vector width or of the kernels' row and position groups. */
static void test_attention_kernels(void **state)
{
    (void)state;
    const struct cpu_attn_kernels *sets[2];
    int n_sets = 0;
    if (cpu_isa_detect() >= CPU_ISA_AVX2)
        sets[n_sets++] = cpu_attn_kernels_avx2();
    if (cpu_isa_detect() >= CPU_ISA_AVX512)
        sets[n_sets++] = cpu_attn_kernels_avx512();
    if (n_sets == 0)
        skip();
    const struct cpu_attn_kernels *s = &cpu_attn_kernels_scalar;
    enum { N = 203, HD_MAX = 136, NR_MAX = 9, NP_MAX = 23 };
    float q[NR_MAX * HD_MAX], kv[NP_MAX * HD_MAX], w[NR_MAX * NP_MAX], sc0[N], sc1[N];
    float s0[NR_MAX * NP_MAX], s1[NR_MAX * NP_MAX], o0[NR_MAX * HD_MAX], o1[NR_MAX * HD_MAX];
    uint16_t kvh[NP_MAX * HD_MAX];
    fill_acts(q, NR_MAX * HD_MAX, 1);
    fill_acts(kv, NP_MAX * HD_MAX, 2);
    fill_acts(w, NR_MAX * NP_MAX, 3);
    for (int i = 0; i < NP_MAX * HD_MAX; i++) {
        kvh[i] = f32_to_fp16(kv[i]);
        kv[i] = fp16_to_f32(kvh[i]); /* the same values in both forms, for the error bounds */
    }
    for (int k = 0; k < n_sets; k++) {
        static const int hds[] = {8, 64, 72, 128, 136, 13};
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
            for (int half = 0; half < 2; half++) {
                const int hd = hds[hi];
                const void *rows = half ? (const void *)kvh : kv;
                for (int nr = 1; nr <= NR_MAX; nr += 2)
                    for (int np = 1; np <= NP_MAX; np += 3) {
                        sets[k]->qk(hd, nr, q, np, rows, half, s0);
                        s->qk(hd, nr, q, np, rows, half, s1);
                        for (int r = 0; r < nr; r++)
                            for (int p = 0; p < np; p++) {
                                const double mag = abs_dot(q + (size_t)r * hd, kv + (size_t)p * hd, hd);
                                if (!(fabsf(s0[r * np + p] - s1[r * np + p]) <= 1e-5 * mag + 1e-6))
                                    fail_msg("qk hd %d half %d nr %d np %d (%d,%d): %g vs %g", hd, half, nr, np, r,
                                             p, (double)s0[r * np + p], (double)s1[r * np + p]);
                            }
                        for (int i = 0; i < nr * hd; i++)
                            o0[i] = o1[i] = q[i];
                        sets[k]->pv(hd, nr, w, np, rows, half, o0);
                        s->pv(hd, nr, w, np, rows, half, o1);
                        for (int i = 0; i < nr * hd; i++)
                            if (!(fabsf(o0[i] - o1[i]) <= 1e-5f * (1 + fabsf(o1[i])) * (float)np))
                                fail_msg("pv hd %d half %d nr %d np %d [%d]: %g vs %g", hd, half, nr, np, i,
                                         (double)o0[i], (double)o1[i]);
                    }
            }
        for (int n = 1; n <= N; n += 29) {
            /* Scores spanning e^0 down to underflow. */
            for (int i = 0; i < n; i++)
                sc0[i] = sc1[i] = -(float)i * 0.9f + (i % 3 ? 0.0f : 0.3f);
            sc0[n / 2] = NAN; /* passed over by max, like the scalar loop */
            assert_true(sets[k]->max(sc0, n, -1e30f) == s->max(sc0, n, -1e30f));
            assert_true(sets[k]->max(sc0, n, 5.0f) == 5.0f);
            sc0[n / 2] = sc1[n / 2];
            const float sum0 = sets[k]->softmax_exp(sc0, n, 0.3f), sum1 = s->softmax_exp(sc1, n, 0.3f);
            for (int i = 0; i < n; i++)
                if (!(fabsf(sc0[i] - sc1[i]) <= 1e-6f * sc1[i] + 1e-37f))
                    fail_msg("exp(%g): %g vs %g", (double)(sc1[i] - 0.3f), (double)sc0[i], (double)sc1[i]);
            assert_true(fabsf(sum0 - sum1) <= 1e-6f * sum1);
        }
    }
}

/* The backend's KV store and attention op against softmax(q.K^T * scale).V computed in double over
 * the same keys and values: grouped-query heads (8 query heads on 2 KV heads), 1100 positions (three
 * of the cache's blocks), a prompt batch whose tokens each see a different causal prefix, batches
 * at and across a block boundary and one-token steps, with an F16 and an F32 cache, on one thread
 * and on two. Scores are spread wide enough that the running maximum changes from block to block. */
static void test_attention_op(void **state)
{
    (void)state;
    enum { HD = 64, NH = 8, NKV = 2, CTX = 1100, KVD = NKV * HD };
    const float scale = 0.125f;
    /* keys and values as rows [position][KV head][HD], and the backend's two caches of them */
    float *kf = malloc(sizeof(float) * CTX * KVD), *vf = malloc(sizeof(float) * CTX * KVD);
    const size_t cache_elems = (size_t)(CTX + BACKEND_KV_BLOCK - 1) / BACKEND_KV_BLOCK * BACKEND_KV_BLOCK * KVD;
    uint16_t *kh = malloc(sizeof(uint16_t) * cache_elems), *vh = malloc(sizeof(uint16_t) * cache_elems);
    float *kc = malloc(sizeof(float) * cache_elems), *vc = malloc(sizeof(float) * cache_elems);
    float *q = malloc(sizeof(float) * 40 * NH * HD), *out = malloc(sizeof(float) * 40 * NH * HD);
    assert_non_null(kf);
    assert_non_null(vf);
    assert_non_null(kh);
    assert_non_null(vh);
    assert_non_null(kc);
    assert_non_null(vc);
    assert_non_null(q);
    assert_non_null(out);
    fill_acts(kf, CTX * KVD, 11);
    fill_acts(vf, CTX * KVD, 12);
    fill_acts(q, 40 * NH * HD, 13);
    for (int i = 0; i < CTX * KVD; i++) {
        /* Values F16 holds exactly, so both cache types hold the same. */
        kf[i] = fp16_to_f32(f32_to_fp16(kf[i] * 3.0f));
        vf[i] = fp16_to_f32(f32_to_fp16(vf[i]));
    }
    static const struct {
        int n, first;
    } batches[] = {{37, 1000}, {1, 1099}, {5, 0}, {1, BACKEND_KV_BLOCK}, {3, BACKEND_KV_BLOCK - 2}};
    const int threads[] = {1, 2};
    for (int ti = 0; ti < 2; ti++) {
        struct backend *be = NULL;
        struct err e = {0};
        assert_int_equal(backend_cpu_new(threads[ti], &be, &e), 0);
        assert_int_equal(be->ops->reserve(be, 40, NH * HD, CTX, HD, &e), 0);
        /* Fill both caches through the backend, 40 positions a batch. */
        for (int p0 = 0; p0 < CTX; p0 += 40) {
            int32_t pos[40];
            const int n = CTX - p0 < 40 ? CTX - p0 : 40;
            for (int i = 0; i < n; i++)
                pos[i] = p0 + i;
            be->ops->set_batch(be, NULL, pos, n);
            be->ops->kv_store(be, kh, vh, KV_F16, kf + (size_t)p0 * KVD, vf + (size_t)p0 * KVD, NKV, HD);
            be->ops->kv_store(be, kc, vc, KV_F32, kf + (size_t)p0 * KVD, vf + (size_t)p0 * KVD, NKV, HD);
        }
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
            const int n = batches[bi].n;
            int32_t pos[40];
            for (int i = 0; i < n; i++)
                pos[i] = batches[bi].first + i;
            be->ops->set_batch(be, NULL, pos, n);
            for (int kt = 0; kt < 2; kt++) {
                const enum kv_type type = kt ? KV_F32 : KV_F16;
                be->ops->attention(be, q, kt ? (const void *)kc : kh, kt ? (const void *)vc : vh, type, out, NH, NKV,
                                   HD, scale);
                for (int i = 0; i < n; i++)
                    for (int hh = 0; hh < NH; hh++) {
                        const float *qr = q + ((size_t)i * NH + hh) * HD;
                        const int g = hh / (NH / NKV);
                        static double sc[CTX];
                        double m = -INFINITY, sum = 0, ref[HD] = {0};
                        for (int p = 0; p <= pos[i]; p++) {
                            double d = 0;
                            for (int c = 0; c < HD; c++)
                                d += (double)qr[c] * kf[(size_t)p * KVD + g * HD + c];
                            sc[p] = d * scale;
                            if (sc[p] > m)
                                m = sc[p];
                        }
                        for (int p = 0; p <= pos[i]; p++) {
                            sc[p] = exp(sc[p] - m);
                            sum += sc[p];
                            for (int c = 0; c < HD; c++)
                                ref[c] += sc[p] * vf[(size_t)p * KVD + g * HD + c];
                        }
                        const float *got = out + ((size_t)i * NH + hh) * HD;
                        for (int c = 0; c < HD; c++)
                            if (!(fabs(got[c] - ref[c] / sum) <= 2e-5 * (1 + fabs(ref[c] / sum))))
                                fail_msg("threads %d, %s cache, token at %d, head %d, [%d]: %g vs %g", threads[ti],
                                         kt ? "F32" : "F16", pos[i], hh, c, (double)got[c], ref[c] / sum);
                    }
            }
        }
        be->ops->free(be);
    }
    free(kf);
    free(vf);
    free(kh);
    free(vh);
    free(kc);
    free(vc);
    free(q);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_vs_scalar),   cmocka_unit_test(test_quantize_q8_0),
        cmocka_unit_test(test_matmul_reference), cmocka_unit_test(test_matmul_float),
        cmocka_unit_test(test_matmul_f16_wide),  cmocka_unit_test(test_half_activations),
        cmocka_unit_test(test_attention_kernels), cmocka_unit_test(test_attention_op), cmocka_unit_test(test_gemm_tiles),
        cmocka_unit_test(test_vec_kernels), cmocka_unit_test(test_q4_0_row_lengths),      cmocka_unit_test(test_quantize_q8_k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
