/* cuda_backend.c — the CUDA backend's host side: device memory, weight upload, the batch state, and
 * the op table of backend.h mapped onto the kernels of cuda_kernels.cu and cuBLAS.
 *
 * Everything runs in order on one stream. Decode-sized batches (<= CUDA_GEMV_MAX_BATCH tokens) use the
 * quantised matrix-vector kernels, which read each weight once and keep float32 activations. Larger
 * batches (prompt prefill) decode weights to half in row slabs and multiply with cuBLAS; activations
 * are split into a half "hi" and a half "lo" part and both are multiplied, so the product keeps close
 * to float32 accuracy at tensor-core speed. F32 weights use SGEMM (no TF32). Ops cannot fail by
 * signature; the first CUDA error is kept and reported by backend_cuda_check and by stderr at read. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda.h"
#include "backend/cuda/cuda_internal.h"
#include "tensor/tensor.h"

/* Weight slab for the cuBLAS path: at most this many half elements (128 MiB). */
#define WSCRATCH_MAX_ELEMS ((size_t)64 << 20)

struct cuda_backend {
    struct backend base;
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    /* The batch: device copies of tokens and positions, staged through pinned host memory. */
    int cap_batch, n_batch;
    int32_t *d_tokens, *d_pos;
    int32_t *h_stage; /* pinned, 2 * cap_batch */
    cudaEvent_t staged;
    int stage_pending;
    /* cuBLAS path scratch: activations as half hi/lo, and a slab of decoded weight rows. */
    void *d_xh;
    size_t xh_elems; /* per half (hi or lo) */
    void *d_wh;
    size_t wh_elems;
    size_t max_weight_elems; /* largest prepared matrix */
    int64_t max_cols;
    /* First error seen by an op (ops return void). */
    cudaError_t cuda_err;
    int blas_err;
    char err_where[96];
};

static void note_cuda(struct cuda_backend *c, cudaError_t rc, const char *where)
{
    if (rc != cudaSuccess && c->cuda_err == cudaSuccess) {
        c->cuda_err = rc;
        snprintf(c->err_where, sizeof c->err_where, "%s", where);
    }
}

static void note_blas(struct cuda_backend *c, cublasStatus_t rc, const char *where)
{
    if (rc != CUBLAS_STATUS_SUCCESS && !c->blas_err && c->cuda_err == cudaSuccess) {
        c->blas_err = (int)rc;
        snprintf(c->err_where, sizeof c->err_where, "%s", where);
    }
}

int backend_cuda_check(struct backend *be, struct err *e)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    note_cuda(c, cudaGetLastError(), "kernel launch");
    if (c->cuda_err != cudaSuccess)
        return err_set(e, ERR_IO, "CUDA error in %s: %s", c->err_where, cudaGetErrorString(c->cuda_err));
    if (c->blas_err)
        return err_set(e, ERR_IO, "cuBLAS error %d in %s", c->blas_err, c->err_where);
    return 0;
}

static bool type_has_kernels(uint32_t t)
{
    switch (t) {
    case DT_F32:
    case DT_F16:
    case DT_BF16:
    case DT_Q4_0:
    case DT_Q4_1:
    case DT_Q5_0:
    case DT_Q5_1:
    case DT_Q8_0:
    case DT_Q4_K:
    case DT_Q5_K:
    case DT_Q6_K:
        return true;
    default:
        return false;
    }
}

static void cuda_free_be(struct backend *be)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cudaSetDevice(c->device);
    cudaStreamSynchronize(c->stream);
    cudaFree(c->d_tokens);
    cudaFree(c->d_pos);
    cudaFreeHost(c->h_stage);
    cudaFree(c->d_xh);
    cudaFree(c->d_wh);
    if (c->staged)
        cudaEventDestroy(c->staged);
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

static int cuda_prepare_weight(struct backend *be, struct bweight *w, struct err *e)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    const bool matrix = w->rows > 1;
    if (!type_has_kernels(w->type))
        return err_set(e, ERR_UNSUPPORTED,
                       "tensor '%s': type %s is not supported by the CUDA backend (use the CPU backend, or a "
                       "model quantised to Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, F16, BF16 or F32)",
                       w->name, dtype_name(w->type));
    if ((matrix || w->type != DT_F32) && w->cols % 32 != 0)
        return err_set(e, ERR_UNSUPPORTED,
                       "tensor '%s': rows of %lld elements are not a multiple of 32, which the CUDA kernels need",
                       w->name, (long long)w->cols);
    if (!matrix && w->type != DT_F32)
        return err_set(e, ERR_UNSUPPORTED, "tensor '%s': vector of type %s (expected F32)", w->name,
                       dtype_name(w->type));
    const size_t bytes = dtype_row_bytes(w->type, w->cols) * (size_t)w->rows;
    if (bytes == 0)
        return err_set(e, ERR_FORMAT, "tensor '%s': bad shape [%lld, %lld]", w->name, (long long)w->rows,
                       (long long)w->cols);
    void *d = NULL;
    cudaError_t rc = cudaMalloc(&d, bytes);
    if (rc != cudaSuccess)
        return err_set(e, ERR_NOMEM, "tensor '%s': cannot allocate %zu MiB of GPU memory (%s)", w->name,
                       bytes >> 20, cudaGetErrorString(rc));
    rc = cudaMemcpy(d, w->host, bytes, cudaMemcpyHostToDevice);
    if (rc != cudaSuccess) {
        cudaFree(d);
        return err_set(e, ERR_IO, "tensor '%s': copy to the GPU failed (%s)", w->name, cudaGetErrorString(rc));
    }
    w->dev = d;
    if (matrix && (size_t)(w->rows * w->cols) > c->max_weight_elems)
        c->max_weight_elems = (size_t)(w->rows * w->cols);
    return 0;
}

static void cuda_release_weight(struct backend *be, struct bweight *w)
{
    if (w->dev) {
        cudaFree(w->dev);
        w->dev = NULL;
    }
}

static void *cuda_alloc(struct backend *be, size_t bytes)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is reported by the NULL, not kept as a sticky error */
        return NULL;
    }
    if (cudaMemset(p, 0, bytes ? bytes : 256) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    (void)c;
    return p;
}

static void cuda_dealloc(struct backend *be, void *p)
{
    if (p) {
        struct cuda_backend *c = (struct cuda_backend *)be;
        cudaStreamSynchronize(c->stream);
        cudaFree(p);
    }
}

static void cuda_read(struct backend *be, float *dst, const float *src, size_t n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    note_cuda(c, cudaMemcpyAsync(dst, src, n * sizeof *dst, cudaMemcpyDeviceToHost, c->stream), "read");
    note_cuda(c, cudaStreamSynchronize(c->stream), "read");
    struct err e;
    if (backend_cuda_check(be, &e) != 0) {
        /* The op table has no error return: make a failed step visible rather than silently wrong. */
        fprintf(stderr, "hearth: %s\n", e.msg);
        memset(dst, 0, n * sizeof *dst);
    }
}

static int grow(void **p, size_t *cur, size_t want_bytes, const char *what, struct err *e)
{
    if (want_bytes <= *cur)
        return 0;
    void *q = NULL;
    cudaError_t rc = cudaMalloc(&q, want_bytes);
    if (rc != cudaSuccess)
        return err_set(e, ERR_NOMEM, "cannot allocate %zu MiB of GPU memory for %s (%s)", want_bytes >> 20, what,
                       cudaGetErrorString(rc));
    cudaFree(*p);
    *p = q;
    *cur = want_bytes;
    return 0;
}

static int cuda_reserve(struct backend *be, int max_batch, int64_t max_cols, int max_ctx, int head_dim,
                        struct err *e)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    if (head_dim > 256)
        return err_set(e, ERR_UNSUPPORTED, "head size %d is larger than the CUDA attention kernel's 256",
                       head_dim);
    cudaStreamSynchronize(c->stream);
    if (max_batch > c->cap_batch) {
        cudaFree(c->d_tokens);
        cudaFree(c->d_pos);
        cudaFreeHost(c->h_stage);
        c->d_tokens = c->d_pos = c->h_stage = NULL;
        c->cap_batch = 0;
        if (cudaMalloc((void **)&c->d_tokens, (size_t)max_batch * sizeof(int32_t)) != cudaSuccess ||
            cudaMalloc((void **)&c->d_pos, (size_t)max_batch * sizeof(int32_t)) != cudaSuccess ||
            cudaMallocHost((void **)&c->h_stage, 2 * (size_t)max_batch * sizeof(int32_t)) != cudaSuccess)
            return err_set(e, ERR_NOMEM, "cannot allocate GPU memory for a batch of %d tokens", max_batch);
        c->cap_batch = max_batch;
    }
    if (max_cols > c->max_cols)
        c->max_cols = max_cols;
    if (max_batch > CUDA_GEMV_MAX_BATCH) {
        size_t cur = c->xh_elems * 2 * 2;
        size_t want = (size_t)max_batch * (size_t)c->max_cols;
        int rc = grow(&c->d_xh, &cur, want * 2 * 2, "half activations", e);
        if (rc)
            return rc;
        c->xh_elems = cur / 4;
        size_t wh = c->max_weight_elems < WSCRATCH_MAX_ELEMS ? c->max_weight_elems : WSCRATCH_MAX_ELEMS;
        if (wh < (size_t)c->max_cols)
            wh = (size_t)c->max_cols;
        size_t wcur = c->wh_elems * 2;
        rc = grow(&c->d_wh, &wcur, wh * 2, "decoded weights", e);
        if (rc)
            return rc;
        c->wh_elems = wcur / 2;
    }
    (void)max_ctx;
    return 0;
}

static void cuda_set_batch(struct backend *be, const int32_t *tokens, const int32_t *pos, int n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    /* The staging buffer may still feed the previous batch's copy: wait for that copy only (it is
     * normally long done, since the previous step's logits were read after it). */
    if (c->stage_pending)
        cudaEventSynchronize(c->staged);
    const size_t bytes = (size_t)n * sizeof(int32_t);
    if (tokens) {
        memcpy(c->h_stage, tokens, bytes);
        note_cuda(c, cudaMemcpyAsync(c->d_tokens, c->h_stage, bytes, cudaMemcpyHostToDevice, c->stream),
                  "set_batch");
    }
    memcpy(c->h_stage + c->cap_batch, pos, bytes);
    note_cuda(c, cudaMemcpyAsync(c->d_pos, c->h_stage + c->cap_batch, bytes, cudaMemcpyHostToDevice, c->stream),
              "set_batch");
    note_cuda(c, cudaEventRecord(c->staged, c->stream), "set_batch");
    c->stage_pending = 1;
    c->n_batch = n;
}

static void cuda_get_rows(struct backend *be, const struct bweight *table, float *out)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cuda_launch_get_rows(table->type, table->dev, dtype_row_bytes(table->type, table->cols), (int)table->cols,
                         c->d_tokens, c->n_batch, out, c->stream);
}

static void cuda_rmsnorm(struct backend *be, const float *x, const struct bweight *w, float *out, int n_rows,
                         int dim, float eps)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cuda_launch_rmsnorm(x, w->dev, out, n_rows, dim, eps, c->stream);
}

static void cuda_matmul(struct backend *be, const struct bweight *w, const struct bweight *bias, const float *x,
                        float *y, int n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    const int rows = (int)w->rows, cols = (int)w->cols;
    const size_t row_bytes = dtype_row_bytes(w->type, w->cols);
    const float *b = bias ? (const float *)bias->dev : NULL;
    if (n <= CUDA_GEMV_MAX_BATCH || !c->d_xh) {
        cuda_launch_gemv(w->type, w->dev, row_bytes, rows, cols, x, b, y, n, c->stream);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    if (w->type == DT_F32) {
        note_blas(c,
                  cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &one, (const float *)w->dev, cols, x,
                              cols, &zero, y, rows),
                  w->name);
    } else {
        /* x = hi + lo, both half; y = W.hi + W.lo. */
        void *hi = c->d_xh, *lo = (uint16_t *)c->d_xh + c->xh_elems;
        cuda_launch_split_f16(x, hi, lo, (size_t)n * cols, c->stream);
        const int slab = w->type == DT_F16 ? rows : (int)(c->wh_elems / (size_t)cols);
        for (int r0 = 0; r0 < rows; r0 += slab) {
            const int nr = rows - r0 < slab ? rows - r0 : slab;
            const void *A;
            if (w->type == DT_F16) {
                A = w->dev;
            } else {
                cuda_launch_dequant_f16(w->type, (const uint8_t *)w->dev + (size_t)r0 * row_bytes, row_bytes, nr,
                                        cols, c->d_wh, c->stream);
                A = c->d_wh;
            }
            note_blas(c,
                      cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, nr, n, cols, &one, A, CUDA_R_16F, cols, hi,
                                   CUDA_R_16F, cols, &zero, y + r0, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT),
                      w->name);
            note_blas(c,
                      cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, nr, n, cols, &one, A, CUDA_R_16F, cols, lo,
                                   CUDA_R_16F, cols, &one, y + r0, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT),
                      w->name);
        }
    }
    if (b)
        cuda_launch_add_bias(y, b, rows, n, c->stream);
}

static void cuda_rope(struct backend *be, float *x, int n_heads, int head_dim, const struct rope_params *rp)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    const float *factors = rp->freq_factors ? (const float *)rp->freq_factors->dev : NULL;
    cuda_launch_rope(x, c->d_pos, c->n_batch, n_heads, head_dim, rp->n_rot, rp->neox, rp->freq_base, rp->freq_scale,
                     factors, c->stream);
}

static void cuda_kv_store(struct backend *be, void *k_cache, void *v_cache, enum kv_type type, const float *k,
                          const float *v, int kv_dim)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cuda_launch_kv_store(k_cache, v_cache, type == KV_F16, k, v, c->d_pos, c->n_batch, kv_dim, c->stream);
}

static void cuda_attention(struct backend *be, const float *q, const void *k_cache, const void *v_cache,
                           enum kv_type type, float *out, int n_heads, int n_kv_heads, int head_dim, float scale)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cuda_launch_attention(q, k_cache, v_cache, type == KV_F16, out, c->d_pos, c->n_batch, n_heads, n_kv_heads,
                          head_dim, scale, c->stream);
}

static void cuda_swiglu(struct backend *be, const float *gate, const float *up, float *out, size_t n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cuda_launch_swiglu(gate, up, out, n, c->stream);
}

static void cuda_add(struct backend *be, float *x, const float *y, size_t n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cuda_launch_add(x, y, n, c->stream);
}

static const struct backend_ops cuda_ops = {
    .name = "cuda",
    .free = cuda_free_be,
    .prepare_weight = cuda_prepare_weight,
    .release_weight = cuda_release_weight,
    .alloc = cuda_alloc,
    .dealloc = cuda_dealloc,
    .read = cuda_read,
    .reserve = cuda_reserve,
    .set_batch = cuda_set_batch,
    .get_rows = cuda_get_rows,
    .rmsnorm = cuda_rmsnorm,
    .matmul = cuda_matmul,
    .rope = cuda_rope,
    .kv_store = cuda_kv_store,
    .attention = cuda_attention,
    .swiglu = cuda_swiglu,
    .add = cuda_add,
};

int backend_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

const char *backend_cuda_device_name(int device)
{
    static struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        cudaGetLastError();
        return "";
    }
    return prop.name;
}

int backend_cuda_new(int device, struct backend **out, struct err *e)
{
    *out = NULL;
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess || count == 0) {
        cudaGetLastError();
        return err_set(e, ERR_UNSUPPORTED, "no CUDA GPU is available (%s)",
                       rc != cudaSuccess ? cudaGetErrorString(rc) : "the driver reports 0 devices");
    }
    if (device < 0 || device >= count)
        return err_set(e, ERR_INVALID, "GPU %d does not exist (this machine has %d)", device, count);
    struct cuda_backend *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(e, ERR_NOMEM, "out of memory creating the CUDA backend");
    c->device = device;
    c->base.ops = &cuda_ops;
    c->base.n_threads = 1;
    if ((rc = cudaSetDevice(device)) != cudaSuccess || (rc = cudaStreamCreate(&c->stream)) != cudaSuccess ||
        (rc = cudaEventCreateWithFlags(&c->staged, cudaEventDisableTiming)) != cudaSuccess) {
        cuda_free_be(&c->base);
        return err_set(e, ERR_IO, "cannot initialise GPU %d: %s", device, cudaGetErrorString(rc));
    }
    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        cuda_free_be(&c->base);
        return err_set(e, ERR_IO, "cannot initialise cuBLAS on GPU %d (status %d)", device, (int)bs);
    }
    cublasSetStream(c->blas, c->stream);
    /* Plain float32 SGEMM: TF32 would cost the F32 models their accuracy. */
    cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    *out = &c->base;
    return 0;
}
