/* test_cuda.c — the CUDA backend against the CPU references: matrix products and embedding rows of every
 * weight format the GPU kernels decode (both the decode-sized matrix-vector path and the cuBLAS path)
 * against the scalar dequantisers in double precision; then the forward pass of the tiny llama / qwen2 /
 * qwen3 models of ../shared/reference/tiny-models against the Hugging Face logits with the CPU test's
 * tolerances, and the greedy continuations; the same models split by layers between the CPU and the GPU
 * (the hidden state written to the GPU inside a recorded decode step, and read back for a CPU output
 * head). Skips when the build has no CUDA backend or no GPU is present.
 * With HEARTH_CUDA_BENCH_MODEL=path.gguf it also times prefill and decode of that model, split as
 * HEARTH_CUDA_BENCH_NUM_GPU says when that is set (the num_gpu option; -1: as many layers as fit). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tu_model.h"
#include "base/argmax.h"
#include "base/clock.h"
#include "model/model.h"
#include "sample/sample.h"
#include "tensor/tensor.h"

#ifdef HEARTH_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda.h"

static void require_gpu(void)
{
    if (backend_cuda_device_count() == 0) {
        print_message("no CUDA device: skipping\n");
        skip();
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void *to_device(const void *src, size_t bytes)
{
    void *d = NULL;
    assert_int_equal(cudaMalloc(&d, bytes), cudaSuccess);
    assert_int_equal(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

/* One weight format: rows x cols random weights in that format, products with n activation rows on
 * the GPU against double-precision sums over the reference dequantisation. */
static void check_matmul_type(struct backend *be, uint32_t type, int n)
{
    const int rows = 72, cols = 512;
    const size_t row_bytes = dtype_row_bytes(type, cols);
    float *wf = malloc((size_t)rows * cols * sizeof *wf);
    uint8_t *wq = malloc((size_t)rows * row_bytes);
    float *wd = malloc((size_t)rows * cols * sizeof *wd);
    float *x = malloc((size_t)n * cols * sizeof *x);
    float *bias = malloc((size_t)rows * sizeof *bias);
    float *y = malloc((size_t)n * rows * sizeof *y);
    assert_true(wf && wq && wd && x && bias && y);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        wf[i] = frand() * (1.0f + (float)(i % 7));
    for (size_t i = 0; i < (size_t)n * cols; i++)
        x[i] = frand();
    for (int i = 0; i < rows; i++)
        bias[i] = frand();
    struct err e = {0};
    for (int r = 0; r < rows; r++) {
        float *src = wf + (size_t)r * cols;
        uint8_t *dst = wq + (size_t)r * row_bytes;
        if (type == DT_F32) {
            memcpy(dst, src, row_bytes);
        } else if (type == DT_F16 || type == DT_BF16) {
            uint16_t *h = (uint16_t *)dst;
            for (int j = 0; j < cols; j++)
                h[j] = type == DT_F16 ? f32_to_fp16(src[j]) : f32_to_bf16(src[j]);
        } else if (dtype_quantize(type, src, dst, cols, &e) != 0) {
            fail_msg("quantise %s: %s", dtype_name(type), e.msg);
        }
        assert_int_equal(dtype_dequantize(type, dst, wd + (size_t)r * cols, cols, &e), 0);
    }
    struct bweight w = {.name = "test.weight", .type = type, .rows = rows, .cols = cols, .host = wq};
    struct bweight b = {.name = "test.bias", .type = DT_F32, .rows = 1, .cols = rows, .host = bias};
    if (be->ops->prepare_weight(be, &w, &e) != 0 || be->ops->prepare_weight(be, &b, &e) != 0)
        fail_msg("%s", e.msg);
    /* At least 3 batch rows: the embedding check below sets a batch of 3. */
    assert_int_equal(be->ops->reserve(be, n < 3 ? 3 : n, cols, 16, 64, &e), 0);
    float *dx = to_device(x, (size_t)n * cols * sizeof *x);
    float *dy = be->ops->alloc(be, (size_t)n * rows * sizeof *y);
    assert_non_null(dy);
    be->ops->matmul(be, &w, &b, dx, dy, n);
    be->ops->read(be, y, dy, (size_t)n * rows);
    assert_int_equal(backend_cuda_check(be, &e), 0);
    /* GEMV: float32 sums of the exact weights; for Q4_0, Q8_0, Q4_K and Q6_K, integer sums against activations
     * quantised to 8 bits per 32-value block (d = max|x| / 127, q = round(x / d)), so the reference
     * uses the same quantised activations. cuBLAS path: weights rounded to half first, activations
     * split hi+lo for F16 weights, half activations for quantised weights, float32 accumulation.
     * Relative to the sum of |w x|. */
    const bool q8act = n <= 8 && (type == DT_Q4_0 || type == DT_Q8_0 || type == DT_Q4_K || type == DT_Q6_K);
    const double tol = (n > 8 && type != DT_F16 && type != DT_F32) ? 1e-3 : q8act ? 5e-5 : 2e-5;
    double *xr = malloc((size_t)n * cols * sizeof *xr);
    assert_non_null(xr);
    for (size_t b0 = 0; b0 < (size_t)n * cols; b0 += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fabsf(x[b0 + j]) > amax ? fabsf(x[b0 + j]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++)
            xr[b0 + j] = q8act ? (double)d * rintf(x[b0 + j] * id) : (double)x[b0 + j];
    }
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rows; r++) {
            double s = bias[r], mag = fabs(bias[r]);
            for (int j = 0; j < cols; j++) {
                s += (double)wd[(size_t)r * cols + j] * xr[(size_t)i * cols + j];
                mag += fabs((double)wd[(size_t)r * cols + j] * xr[(size_t)i * cols + j]);
            }
            const double rel = fabs(y[(size_t)i * rows + r] - s) / (mag + 1e-30);
            if (!(rel <= worst))
                worst = isnan(rel) ? INFINITY : rel;
        }
    print_message("matmul %-5s n=%-2d max relative error %.3g (tolerance %.3g)\n", dtype_name(type), n, worst, tol);
    assert_true(worst <= tol);

    /* Embedding rows of the same table. */
    int32_t toks[3] = {5, 0, rows - 1}, pos[3] = {0, 1, 2};
    be->ops->set_batch(be, toks, pos, 3);
    float *drows = be->ops->alloc(be, 3 * (size_t)cols * sizeof(float));
    float got[3 * 512];
    be->ops->get_rows(be, &w, drows);
    be->ops->read(be, got, drows, 3 * (size_t)cols);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < cols; j++)
            if (got[i * cols + j] != wd[(size_t)toks[i] * cols + j])
                fail_msg("get_rows %s: row %d element %d is %g, want %g", dtype_name(type), toks[i], j,
                         got[i * cols + j], wd[(size_t)toks[i] * cols + j]);
    be->ops->dealloc(be, drows);
    be->ops->dealloc(be, dy);
    cudaFree(dx);
    be->ops->release_weight(be, &w);
    be->ops->release_weight(be, &b);
    free(wf);
    free(wq);
    free(wd);
    free(x);
    free(xr);
    free(bias);
    free(y);
}

static struct backend *make_cuda(void)
{
    require_gpu();
    struct err e = {0};
    struct backend *be = NULL;
    if (backend_cuda_new(0, &be, &e) != 0)
        fail_msg("%s", e.msg);
    return be;
}

static void test_matmul_formats(void **state)
{
    (void)state;
    struct err e = {0};
    struct backend *be = make_cuda();
    print_message("device: %s\n", backend_cuda_device_name(0));
    const uint32_t types[] = {DT_F32, DT_F16, DT_BF16, DT_Q4_0, DT_Q4_1, DT_Q5_0,
                              DT_Q5_1, DT_Q8_0, DT_Q4_K, DT_Q5_K, DT_Q6_K};
    const int batches[] = {1, 3, 8, 24};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
            check_matmul_type(be, types[t], batches[b]);
    /* A format without kernels is refused with the tensor's name. */
    uint8_t blk[84 * 2] = {0};
    struct bweight w = {.name = "blk.0.ffn_down.weight", .type = DT_Q2_K, .rows = 1 * 2, .cols = 256, .host = blk};
    assert_int_not_equal(be->ops->prepare_weight(be, &w, &e), 0);
    assert_non_null(strstr(e.msg, "blk.0.ffn_down.weight"));
    be->ops->free(be);
}

/* Attention over a long cache against a double-precision softmax over the same cache values: decode
 * batches (split over the context, then merged: 1 and 4 tokens at positions far apart, one at position
 * 0) and prompt batches (the tiled kernel: 100 consecutive positions ending at the context's end, and
 * 100 scattered ones), head sizes 64 and 128, 4 query heads per KV head, F16 and F32 caches. */
enum { ATT_CTX = 1000, ATT_NH = 8, ATT_NKV = 2, ATT_NT = 100 };

static double attention_error(struct backend *be, int hd, int f16, const int32_t *pos, int nt)
{
    struct err e = {0};
    const int kvd = ATT_NKV * hd;
    const size_t esz = f16 ? 2 : 4, ncache = (size_t)ATT_CTX * kvd;
    float *kf = malloc(ncache * sizeof *kf), *vf = malloc(ncache * sizeof *vf);
    void *kc = malloc(ncache * esz), *vc = malloc(ncache * esz);
    float *q = malloc((size_t)nt * ATT_NH * hd * sizeof *q), *out = malloc((size_t)nt * ATT_NH * hd * sizeof *out);
    assert_true(kf && vf && kc && vc && q && out);
    for (size_t i = 0; i < ncache; i++) {
        const float kx = frand() * 2.0f, vx = frand();
        if (f16) {
            ((uint16_t *)kc)[i] = f32_to_fp16(kx);
            ((uint16_t *)vc)[i] = f32_to_fp16(vx);
            kf[i] = fp16_to_f32(((uint16_t *)kc)[i]);
            vf[i] = fp16_to_f32(((uint16_t *)vc)[i]);
        } else {
            ((float *)kc)[i] = kf[i] = kx;
            ((float *)vc)[i] = vf[i] = vx;
        }
    }
    for (size_t i = 0; i < (size_t)nt * ATT_NH * hd; i++)
        q[i] = frand();
    void *dk = to_device(kc, ncache * esz), *dv = to_device(vc, ncache * esz);
    float *dq = to_device(q, (size_t)nt * ATT_NH * hd * sizeof *q);
    float *dout = be->ops->alloc(be, (size_t)nt * ATT_NH * hd * sizeof *out);
    assert_non_null(dout);
    const float scale = 1.0f / sqrtf((float)hd);
    be->ops->set_batch(be, NULL, pos, nt);
    be->ops->attention(be, dq, dk, dv, f16 ? KV_F16 : KV_F32, dout, ATT_NH, ATT_NKV, hd, scale);
    be->ops->read(be, out, dout, (size_t)nt * ATT_NH * hd);
    assert_int_equal(backend_cuda_check(be, &e), 0);
    double worst = 0;
    double *sc = malloc(ATT_CTX * sizeof *sc);
    assert_non_null(sc);
    for (int t = 0; t < nt; t++)
        for (int h = 0; h < ATT_NH; h++) {
            const int kvh = h / (ATT_NH / ATT_NKV), np = pos[t] + 1;
            double mx = -INFINITY, l = 0;
            for (int p = 0; p < np; p++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)q[((size_t)t * ATT_NH + h) * hd + d] * kf[(size_t)p * kvd + kvh * hd + d];
                sc[p] = s * scale;
                mx = sc[p] > mx ? sc[p] : mx;
            }
            for (int p = 0; p < np; p++)
                l += (sc[p] = exp(sc[p] - mx));
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int p = 0; p < np; p++)
                    o += sc[p] * vf[(size_t)p * kvd + kvh * hd + d];
                const double diff = fabs(o / l - out[((size_t)t * ATT_NH + h) * hd + d]);
                if (!(diff <= worst))
                    worst = isnan(diff) ? INFINITY : diff;
            }
        }
    free(sc);
    be->ops->dealloc(be, dout);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dq);
    free(kf);
    free(vf);
    free(kc);
    free(vc);
    free(q);
    free(out);
    return worst;
}

static void test_attention_kernels(void **state)
{
    (void)state;
    struct err e = {0};
    struct backend *be = make_cuda();
    assert_int_equal(be->ops->reserve(be, ATT_NT, 256, ATT_CTX, 128, &e), 0);
    const int32_t decode_pos[4] = {700, 31, 999, 0};
    int32_t run[ATT_NT], scattered[ATT_NT];
    for (int i = 0; i < ATT_NT; i++) {
        run[i] = ATT_CTX - ATT_NT + i;
        scattered[i] = (i * 379) % ATT_CTX;
    }
    const struct {
        const int32_t *pos;
        int nt;
        const char *what;
    } cases[] = {{decode_pos, 1, "decode, 1 token"},
                 {decode_pos, 4, "decode, 4 tokens"},
                 {run, ATT_NT, "prompt, 100 consecutive"},
                 {scattered, ATT_NT, "prompt, 100 scattered"}};
    for (int hd = 64; hd <= 128; hd *= 2)
        for (int f16 = 1; f16 >= 0; f16--)
            for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
                const double worst = attention_error(be, hd, f16, cases[k].pos, cases[k].nt);
                print_message("attention %s, head size %d, %s cache: max abs error %.3g\n", cases[k].what, hd,
                              f16 ? "F16" : "F32", worst);
                assert_true(worst <= 2e-5);
            }
    be->ops->free(be);
}

/* ---- the forward pass of the tiny reference models (same checks as test_model.c, on the GPU) ---- */

/* After each pass: no asynchronous kernel error, and one token at a time every step after the first is
 * the same op sequence, replayed from the recorded graph (positions come from device memory). */
static void cuda_after_pass(struct backend *be, bool one_by_one, size_t n_ids)
{
    struct err e = {0};
    if (backend_cuda_check(be, &e) != 0)
        fail_msg("%s", e.msg);
    if (one_by_one && n_ids > 2) {
        long replays = 0, captures = 0;
        backend_cuda_graph_stats(be, &replays, &captures);
        assert_true(replays > 0);
    }
}

static const struct tu_model_backend cuda = {.label = "cuda ", .make = make_cuda, .after_pass = cuda_after_pass};

static void test_variant(void **state) { tu_model_check_variant(*state, &cuda); }

/* The write op: host floats into device memory, eagerly and inside recorded one-token steps, where the
 * replayed graph must copy each step's new values (the staging buffer is refilled at every call). */
static void test_write(void **state)
{
    (void)state;
    struct err e = {0};
    struct backend *be = make_cuda();
    enum { N = 4096 };
    assert_int_equal(be->ops->reserve(be, 8, 256, 16, 64, &e), 0);
    float *host = malloc(N * sizeof *host), *got = malloc(N * sizeof *got);
    float *dx = be->ops->alloc(be, N * sizeof(float)), *dy = be->ops->alloc(be, N * sizeof(float));
    assert_true(host && got && dx && dy);
    for (int i = 0; i < N; i++)
        host[i] = 1.0f + (float)i;
    be->ops->write(be, dy, host, N);
    be->ops->read(be, got, dy, N);
    assert_memory_equal(got, host, N * sizeof *got);
    const int32_t tok = 0;
    for (int step = 0; step < 6; step++) {
        const int32_t pos = step;
        for (int i = 0; i < N; i++)
            host[i] = (float)(step * 1000 - i);
        be->ops->set_batch(be, &tok, &pos, 1);
        be->ops->write(be, dx, host, N);
        be->ops->add(be, dx, dy, N);
        be->ops->read(be, got, dx, N);
        for (int i = 0; i < N; i++)
            if (got[i] != (float)(step * 1000 - i) + 1.0f + (float)i)
                fail_msg("step %d: element %d is %g, want %g", step, i, got[i], (float)(step * 1000 + 1));
    }
    assert_int_equal(backend_cuda_check(be, &e), 0);
    long replays = 0, captures = 0;
    backend_cuda_graph_stats(be, &replays, &captures);
    print_message("write in recorded steps: %ld replays, %ld captures\n", replays, captures);
    if (!getenv("HEARTH_CUDA_PROFILE"))
        assert_true(replays >= 4);
    be->ops->dealloc(be, dx);
    be->ops->dealloc(be, dy);
    free(host);
    free(got);
    be->ops->free(be);
}

/* The greedy pick on the GPU against argmax_f32 on the same values: ties, NaNs, infinities, signed
 * zeros, all-NaN and short arrays, alone and inside recorded (graph-replayed) steps. */
static void test_argmax(void **state)
{
    (void)state;
    struct err e = {0};
    struct backend *be = make_cuda();
    enum { N = 128256, CASES = 9 };
    assert_int_equal(be->ops->reserve(be, 8, 256, 16, 64, &e), 0);
    float *host = malloc(N * sizeof *host);
    float *dx = be->ops->alloc(be, N * sizeof(float));
    assert_true(host && dx);
    uint64_t seed = 12345;
    for (int k = 0; k < CASES; k++) {
        int n = N;
        for (int i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            host[i] = (float)((int64_t)(seed >> 33) % 2000001 - 1000000) / 1000.0f;
        }
        switch (k) {
        case 1: /* a tie: the first index wins */
            host[100] = host[5000] = 5000.0f;
            break;
        case 2: /* NaNs never win */
            for (int i = 0; i < n; i += 7)
                host[i] = NAN;
            host[77777] = 4000.0f;
            host[0] = NAN;
            break;
        case 3: /* all NaN: 0 */
            for (int i = 0; i < n; i++)
                host[i] = NAN;
            break;
        case 4: /* all -inf: the first */
            for (int i = 0; i < n; i++)
                host[i] = -INFINITY;
            break;
        case 5: /* -0 equals +0: the first of them */
            for (int i = 0; i < n; i++)
                host[i] = -1.0f - (float)(i % 13);
            host[7] = 0.0f;
            host[3] = -0.0f;
            break;
        case 6: /* +inf */
            host[n - 1] = INFINITY;
            break;
        case 7:
            n = 1;
            break;
        case 8:
            n = 33;
            host[32] = 1e30f;
            break;
        default:
            break;
        }
        const int32_t want = argmax_f32(host, n);
        for (int recorded = 0; recorded < 2; recorded++) {
            for (int rep = 0; rep < 3; rep++) {
                const int32_t tok = 0, pos = rep;
                if (recorded)
                    be->ops->set_batch(be, &tok, &pos, 1);
                be->ops->write(be, dx, host, (size_t)n);
                int32_t got = -1;
                be->ops->argmax(be, dx, n, &got);
                if (got != want)
                    fail_msg("case %d (n %d, %s, run %d): GPU argmax %d, host %d", k, n,
                             recorded ? "recorded step" : "direct", rep, got, want);
            }
        }
    }
    assert_int_equal(backend_cuda_check(be, &e), 0);
    be->ops->dealloc(be, dx);
    free(host);
    be->ops->free(be);
}

/* Split points as num_gpu counts them on the 2-block tiny models: 1 (block 0 on the CPU, block 1 on the
 * GPU, the head back on the CPU), 2 (both blocks on the GPU, head on the CPU) and all blocks and the head
 * on the GPU with the embedding lookup on the CPU (SPLIT_EMBD_CPU). */
#define SPLIT_EMBD_CPU 100
static int g_split;

static int load_split(const char *path, struct backend *gpu, struct model **m, struct err *e)
{
    struct backend *cpu = NULL;
    int rc = backend_cpu_new(2, &cpu, e);
    if (rc)
        return rc;
    const bool all = g_split == SPLIT_EMBD_CPU;
    const struct placement pl = {.lo = cpu, .hi = gpu, .n_hi = all ? 2 : g_split, .output_hi = all, .embd_hi = false};
    if ((rc = model_load_placed(path, &pl, m, e))) {
        cpu->ops->free(cpu);
        return rc;
    }
    assert_int_equal((*m)->n_be, 2);
    (*m)->owned[0] = cpu;
    return 0;
}

static const struct tu_model_backend cuda_split = {
    .label = "cuda split ", .make = make_cuda, .after_pass = cuda_after_pass, .load = load_split};

static void test_split_variant(void **state)
{
    const int points[] = {1, 2, SPLIT_EMBD_CPU};
    for (int i = 0; i < 3; i++) {
        g_split = points[i];
        print_message("split: %s\n", g_split == 1   ? "block 0 on the CPU, block 1 on the GPU, head on the CPU"
                                     : g_split == 2 ? "blocks on the GPU, head on the CPU"
                                                    : "embedding lookup on the CPU, the rest on the GPU");
        tu_model_check_variant(*state, &cuda_split);
    }
}

/* Timing of a real-sized model (e.g. hearth-genmodel --preset llama-8b --type q4_0): a 128-token
 * prompt, then greedy decode of 128 tokens through the KV cache. Prints the rates; asserts only that
 * the logits are finite. */
static void test_bench(void **state)
{
    (void)state;
    const char *path = getenv("HEARTH_CUDA_BENCH_MODEL");
    if (!path || !*path) {
        print_message("HEARTH_CUDA_BENCH_MODEL not set: skipping the benchmark\n");
        skip();
    }
    require_gpu();
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    const char *num_gpu = getenv("HEARTH_CUDA_BENCH_NUM_GPU");
    double t0 = (clock_ns() * 1e-9);
    if (num_gpu && *num_gpu) {
        /* The split model_open plans; be is its GPU backend, or NULL when nothing went there. */
        const struct load_params lp = {.num_gpu = atoi(num_gpu), .ctx = {.n_ctx = 1024, .n_batch = 512}};
        if (model_open(path, &lp, &m, &e) != 0)
            fail_msg("%s", e.msg);
        char plan[2048];
        plan_describe(&m->plan, plan, sizeof plan);
        print_message("%s", plan);
        be = m->n_be > 1 ? m->bes[1] : strcmp(m->be->ops->name, "cuda") == 0 ? m->be : NULL;
    } else {
        if (backend_cuda_new(0, &be, &e) != 0)
            fail_msg("%s", e.msg);
        if (model_load(path, be, &m, &e) != 0)
            fail_msg("%s", e.msg);
    }
    double t_load = (clock_ns() * 1e-9) - t0;
    const int n_prompt = 128, n_gen = 128, vocab = m->hp.n_vocab;
    struct ctx_params cp = {.n_ctx = 1024, .n_batch = 512, .kv_type = KV_F16};
    struct model_ctx *ctx = NULL;
    if (model_ctx_new(m, &cp, &ctx, &e) != 0)
        fail_msg("%s", e.msg);
    int32_t *prompt = malloc(n_prompt * sizeof *prompt);
    float *logits = malloc((size_t)vocab * sizeof *logits);
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)((i * 7919u + 13u) % (unsigned)vocab);
    /* Warm-up (cuBLAS picks its kernels, the caches fill), then the timed runs. */
    assert_int_equal(model_forward(ctx, prompt, n_prompt, logits, false, &e), 0);
    for (int i = 0; i < 4; i++) {
        int32_t tok = argmax_f32(logits, vocab);
        assert_int_equal(model_forward(ctx, &tok, 1, logits, false, &e), 0);
    }
    model_ctx_truncate(ctx, 0);
    t0 = (clock_ns() * 1e-9);
    assert_int_equal(model_forward(ctx, prompt, n_prompt, logits, false, &e), 0);
    double t_prefill = (clock_ns() * 1e-9) - t0;
    t0 = (clock_ns() * 1e-9);
    for (int i = 0; i < n_gen; i++) {
        int32_t tok = argmax_f32(logits, vocab);
        assert_int_equal(model_forward(ctx, &tok, 1, logits, false, &e), 0);
    }
    double t_decode = (clock_ns() * 1e-9) - t0;
    if (be)
        assert_int_equal(backend_cuda_check(be, &e), 0);
    for (int i = 0; i < vocab; i++)
        assert_true(isfinite(logits[i]));
    print_message("bench %s (%s, %.2f GiB of weights) on %s: load %.2f s, prefill %d tokens %.1f tok/s, "
                  "decode %d tokens %.1f tok/s (%.2f ms/token)\n",
                  path, model_type_name(m), m->weight_bytes / 1073741824.0, backend_cuda_device_name(0), t_load,
                  n_prompt, n_prompt / t_prefill, n_gen, n_gen / t_decode, 1000.0 * t_decode / n_gen);
    free(prompt);
    free(logits);
    model_ctx_free(ctx);
    const bool owned = m->owned[0] != NULL;
    model_free(m);
    if (!owned)
        be->ops->free(be);
}

int main(void)
{
    enum { NV = TU_MODEL_N_VARIANTS };
    struct CMUnitTest tests[2 * NV + 5];
    static char names[2 * NV][64];
    size_t n = 0;
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_matmul_formats);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_attention_kernels);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_write);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_argmax);
    for (size_t i = 0; i < NV; i++) {
        const struct tu_model_variant *v = &tu_model_variants[i];
        snprintf(names[i], sizeof names[i], "cuda_forward_%s_%s", v->arch, v->file_suffix);
        tests[n++] = (struct CMUnitTest){names[i], test_variant, NULL, NULL, (void *)v};
    }
    for (size_t i = 0; i < NV; i++) {
        const struct tu_model_variant *v = &tu_model_variants[i];
        snprintf(names[NV + i], sizeof names[NV + i], "cuda_split_%s_%s", v->arch, v->file_suffix);
        tests[n++] = (struct CMUnitTest){names[NV + i], test_split_variant, NULL, NULL, (void *)v};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bench);
    /* HEARTH_CUDA_BENCH_ONLY=1: just the benchmark (for profilers that count kernel launches). */
    const char *only = getenv("HEARTH_CUDA_BENCH_ONLY");
    if (only && *only == '1')
        return _cmocka_run_group_tests("cuda", &tests[n - 1], 1, NULL, NULL);
    return _cmocka_run_group_tests("cuda", tests, n, NULL, NULL);
}

#else /* no CUDA in this build */

static void test_no_cuda(void **state)
{
    (void)state;
    print_message("built without HEARTH_CUDA: skipping the CUDA backend tests\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_cuda)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
