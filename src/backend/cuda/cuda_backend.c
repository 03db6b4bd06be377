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
#include "backend/cuda/cuda_profile.h"
#include "base/clock.h"
#include "tensor/tensor.h"

/* Weight slab for the cuBLAS path: at most this many half elements (128 MiB). */
#define WSCRATCH_MAX_ELEMS ((size_t)64 << 20)

/* Ops logged per recorded decode step (a 32-layer model logs about 400). */
#define LOG_CAP 8192

enum op_kind { OP_GET_ROWS = 1, OP_RMSNORM, OP_MATMUL, OP_ROPE, OP_KV_STORE, OP_ATTENTION, OP_SWIGLU, OP_ADD, OP_ARGMAX };

/* One op call with all its arguments by value, so that two decode steps compare with memcmp (records
 * are zeroed before they are filled, padding included). */
struct op_rec {
    int32_t kind, type, i0, i1, i2, i3;
    int64_t rows, cols;
    size_t n, row_bytes;
    const void *p0, *p1, *p2, *p3, *p4;
    float f0, f1;
};

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
    /* write: host floats staged in pinned memory (sized for the largest batch), and the event after the
     * last copy from it (pending: that copy may not have run yet). */
    float *h_wstage;
    size_t wstage_bytes;
    cudaEvent_t wstaged;
    int wstage_pending;
    /* cuBLAS path scratch: activations as half hi/lo, and a slab of decoded weight rows. */
    void *d_xh;
    size_t xh_elems; /* per half (hi or lo) */
    void *d_wh;
    size_t wh_elems;
    size_t max_weight_elems; /* largest prepared matrix */
    int64_t max_cols;
    int max_ctx; /* largest context reserved: sizes the attention kernel's shared memory */
    /* Int8 activations for the repacked Q4_0 / Q8_0 products (xq_batch rows of xq_cols), and which
     * buffer they currently hold (NULL: none). */
    void *d_xq, *d_xds;
    int xq_batch, xq_cols;
    const float *q_src;
    int q_n, q_cols;
    /* A second set that the fused residual + norm epilogue of a product fills (it may not overwrite the
     * product's own input), with the norm input's sums of squares and the epilogue's group counters;
     * q_alt: the cached activations are that set (unscaled: the products apply the norm's scale, q_eps). */
    void *d_xq_alt, *d_xds_alt;
    float *d_ssq;
    unsigned *d_ncount;
    int q_alt;
    float q_eps;
    /* Decode-step recording: the ops of a one-token step are logged, then replayed as a CUDA graph when
     * the log equals the graph's (glog). use_graphs is off with HEARTH_CUDA_GRAPHS=0. */
    int use_graphs, recording;
    /* Launch fusion over a recorded step's log (HEARTH_CUDA_FUSE=0 turns it off) and split-context
     * decode attention (HEARTH_CUDA_SPLIT_ATTENTION=0) with its scratch of att_floats floats. */
    int fuse, split_att;
    int fuse_norm; /* the residual + norm epilogue (HEARTH_CUDA_FUSE_NORM=0 turns it off) */
    int fuse_rope; /* the RoPE + KV-store epilogue of Q, K, V (HEARTH_CUDA_FUSE_ROPE=0 turns it off) */
    /* The step's RoPE angle table for that epilogue, and what it was computed for (ok: in this step). */
    float2 *d_rope_tab;
    int rope_tab_ok, rope_tab_n, rope_tab_rot;
    float rope_tab_base, rope_tab_scale;
    const void *rope_tab_factors;
    float *d_att;
    size_t att_floats;
    struct op_rec *log, *glog;
    int n_log, cap_log, n_glog;
    cudaGraphExec_t graph_exec;
    long n_replays, n_captures;
    /* HEARTH_CUDA_PROFILE=1: every step is logged and run with per-launch timing instead of a graph. */
    struct cuda_profile *prof;
    /* HEARTH_CUDA_PROFILE=graph: GPU time of each replayed decode graph, summed (events around the launch). */
    int gtime, gt_pending;
    cudaEvent_t gt0, gt1, gt2;
    double gt_ms, gt_copy_ms;
    long gt_n;
    /* ... and the host's time per decode step: in the caller between steps, logging the step's ops,
     * launching the graph, and waiting for it and the copy of the result (ns). */
    int64_t ht_set, ht_flush0, ht_flush1, ht_prev_read;
    double ht_caller, ht_record, ht_launch, ht_wait;
    /* Pinned staging for large reads (logits): a copy from device memory into pageable memory goes
     * through the driver's own staging at a fraction of the bus speed. */
    float *h_read;
    size_t h_read_n;
    /* Greedy picks: the argmax kernel's scratch, its result (device) and the pinned words it is read
     * into (two slots, each with the event after its copy; best_next: the slot the next copy takes). */
    void *d_argmax;
    int32_t *d_best, *h_best;
    cudaEvent_t best_ev[2];
    int best_next;
    /* Steps started ahead (greedy_ahead; HEARTH_CUDA_AHEAD=0 turns it off): ahead_req, asked for the
     * step being recorded; ahead_pending, one is running, fed with ahead_tok at position ahead_pos, its
     * pick landing in slot ahead_slot; ahead_hit, set_batch found the current step to be that one;
     * step_graphed, the step just flushed ran as the graph; step_ran_ahead, ... needed no launch at all. */
    int ahead_on, ahead_req, ahead_pending, ahead_hit, ahead_slot, step_graphed, step_ran_ahead;
    int32_t ahead_tok, ahead_pos, batch_pos0;
    /* Weight upload: two pinned buffers that file bytes are copied into while the other one's copy to
     * the GPU runs, and the event after each one's last copy (pending: not yet waited for). Made at the
     * first upload, given back when a context reserves its memory (loading is over by then). */
    void *h_up[2];
    cudaEvent_t up_done[2];
    int up_pending[2], up_next;
    /* First error seen by an op (ops return void). */
    cudaError_t cuda_err;
    int blas_err;
    char err_where[96];
};

static void flush(struct cuda_backend *c);
static void upload_staging_free(struct cuda_backend *c);

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

/* The first error the ops met, as backend_cuda_check reports it, without ending a recorded step. */
static int first_error(struct cuda_backend *c, struct err *e)
{
    note_cuda(c, cudaGetLastError(), "kernel launch");
    if (c->cuda_err != cudaSuccess)
        return err_set(e, ERR_IO, "CUDA error in %s: %s", c->err_where, cudaGetErrorString(c->cuda_err));
    if (c->blas_err)
        return err_set(e, ERR_IO, "cuBLAS error %d in %s", c->blas_err, c->err_where);
    return 0;
}

int backend_cuda_check(struct backend *be, struct err *e)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    flush(c);
    return first_error(c, e);
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

/* Q4_0, Q8_0, Q4_K and Q6_K matrices are repacked at upload (cuda_internal.h) for the int8 decode
 * products; the layout follows from the type. */
static bool repacks(uint32_t type, int64_t rows)
{
    return rows > 1 && (type == DT_Q4_0 || type == DT_Q8_0 || type == DT_Q4_K || type == DT_Q6_K);
}

static uint32_t repacked_type(uint32_t type)
{
    switch (type) {
    case DT_Q4_0:
        return CUDA_T_Q4_0R;
    case DT_Q8_0:
        return CUDA_T_Q8_0R;
    case DT_Q4_K:
        return CUDA_T_Q4_KR;
    default:
        return CUDA_T_Q6_KR;
    }
}

static uint32_t dev_type(const struct bweight *w) { return repacks(w->type, w->rows) ? repacked_type(w->type) : w->type; }

static bool is_repacked(uint32_t t)
{
    return t == CUDA_T_Q4_0R || t == CUDA_T_Q8_0R || t == CUDA_T_Q4_KR || t == CUDA_T_Q6_KR;
}

static size_t dev_row_bytes(const struct bweight *w)
{
    if (repacks(w->type, w->rows))
        return cuda_repacked_row_bytes(dev_type(w), w->cols);
    return dtype_row_bytes(w->type, w->cols);
}

static void cuda_free_be(struct backend *be)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    cudaSetDevice(c->device);
    flush(c);
    cudaStreamSynchronize(c->stream); /* a step started ahead may still be running */
    if (c->prof) {
        cuda_profile_print(c->prof, stderr);
        cuda_profile_free(c->prof);
    }
    if (c->gtime) {
        if (c->gt_n) {
            const double n = (double)c->gt_n;
            fprintf(stderr,
                    "hearth: CUDA decode graphs: %ld replays, %.1f us of GPU time each, result copy %.1f us; host per "
                    "step: caller %.1f us, logging ops %.1f us, graph launch %.1f us, waiting %.1f us\n",
                    c->gt_n, c->gt_ms * 1000.0 / n, c->gt_copy_ms * 1000.0 / n, c->ht_caller / n / 1000.0,
                    c->ht_record / n / 1000.0, c->ht_launch / n / 1000.0, c->ht_wait / n / 1000.0);
        }
        cudaEventDestroy(c->gt0);
        cudaEventDestroy(c->gt1);
        cudaEventDestroy(c->gt2);
    }
    cudaFreeHost(c->h_read);
    cudaFreeHost(c->h_best);
    for (int k = 0; k < 2; k++)
        if (c->best_ev[k])
            cudaEventDestroy(c->best_ev[k]);
    upload_staging_free(c);
    cudaFree(c->d_argmax);
    if (c->graph_exec)
        cudaGraphExecDestroy(c->graph_exec);
    free(c->log);
    free(c->glog);
    cudaFree(c->d_xq);
    cudaFree(c->d_xds);
    cudaFree(c->d_ssq);
    cudaStreamSynchronize(c->stream);
    cudaFree(c->d_att);
    cudaFree(c->d_tokens);
    cudaFree(c->d_pos);
    cudaFreeHost(c->h_stage);
    cudaFreeHost(c->h_wstage);
    if (c->wstaged)
        cudaEventDestroy(c->wstaged);
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

#define UPLOAD_CHUNK ((size_t)16 << 20)

static void upload_staging_free(struct cuda_backend *c)
{
    for (int k = 0; k < 2; k++) {
        if (c->up_done[k]) {
            cudaEventSynchronize(c->up_done[k]);
            cudaEventDestroy(c->up_done[k]);
            c->up_done[k] = NULL;
        }
        cudaFreeHost(c->h_up[k]);
        c->h_up[k] = NULL;
        c->up_pending[k] = 0;
    }
}

/* Copies bytes of host memory (the mapped file) to device memory d in stream order, through the two
 * pinned buffers: while one buffer's copy to the GPU runs, the next chunk of the file is read into the
 * other (reading the file and the bus transfer overlap, and pinned copies run at the bus speed). Falls
 * back to a plain copy when pinned memory cannot be had. */
static cudaError_t upload(struct cuda_backend *c, void *d, const void *src, size_t bytes)
{
    if (!c->h_up[0]) {
        for (int k = 0; k < 2; k++)
            if (cudaMallocHost(&c->h_up[k], UPLOAD_CHUNK) != cudaSuccess ||
                cudaEventCreateWithFlags(&c->up_done[k], cudaEventDisableTiming) != cudaSuccess) {
                cudaGetLastError();
                upload_staging_free(c);
                return cudaMemcpyAsync(d, src, bytes, cudaMemcpyHostToDevice, c->stream);
            }
    }
    cudaError_t rc = cudaSuccess;
    for (size_t off = 0; rc == cudaSuccess && off < bytes; off += UPLOAD_CHUNK) {
        const size_t n = bytes - off < UPLOAD_CHUNK ? bytes - off : UPLOAD_CHUNK;
        const int k = c->up_next;
        c->up_next ^= 1;
        if (c->up_pending[k] && (rc = cudaEventSynchronize(c->up_done[k])) != cudaSuccess)
            break;
        c->up_pending[k] = 0;
        memcpy(c->h_up[k], (const uint8_t *)src + off, n);
        rc = cudaMemcpyAsync((uint8_t *)d + off, c->h_up[k], n, cudaMemcpyHostToDevice, c->stream);
        if (rc == cudaSuccess && (rc = cudaEventRecord(c->up_done[k], c->stream)) == cudaSuccess)
            c->up_pending[k] = 1;
    }
    return rc;
}

/* Copies w's file blocks to the GPU in slabs of rows (at most REPACK_SLAB bytes of scratch) and repacks
 * each slab into d (bytes long) with a kernel. */
#define REPACK_SLAB ((size_t)64 << 20)
static cudaError_t upload_repacked(struct cuda_backend *c, const struct bweight *w, void *d, size_t bytes)
{
    const size_t src_rb = dtype_row_bytes(w->type, w->cols), dst_rb = bytes / (size_t)w->rows;
    int64_t slab_rows = (int64_t)(REPACK_SLAB / src_rb);
    if (slab_rows < 1)
        slab_rows = 1;
    if (slab_rows > w->rows)
        slab_rows = w->rows;
    void *raw = NULL;
    cudaError_t rc = cudaMalloc(&raw, (size_t)slab_rows * src_rb);
    if (rc != cudaSuccess)
        return rc;
    rc = cudaMemsetAsync(d, 0, bytes, c->stream);
    for (int64_t r0 = 0; rc == cudaSuccess && r0 < w->rows; r0 += slab_rows) {
        const int64_t nr = w->rows - r0 < slab_rows ? w->rows - r0 : slab_rows;
        /* Stream order: the copy into raw starts after the previous slab's kernel has read it. */
        rc = upload(c, raw, (const uint8_t *)w->host + (size_t)r0 * src_rb, (size_t)nr * src_rb);
        if (rc == cudaSuccess &&
            cuda_launch_repack(w->type, raw, (int)nr, w->cols, dev_type(w), (uint8_t *)d + (size_t)r0 * dst_rb,
                               c->stream) != 0)
            rc = cudaErrorInvalidValue;
        if (rc == cudaSuccess)
            rc = cudaGetLastError();
    }
    const cudaError_t sync = cudaStreamSynchronize(c->stream);
    cudaFree(raw);
    return rc != cudaSuccess ? rc : sync;
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
    flush(c);
    const bool rp = repacks(w->type, w->rows);
    const size_t bytes = (rp ? cuda_repacked_row_bytes(dev_type(w), w->cols) : dtype_row_bytes(w->type, w->cols)) *
                         (size_t)w->rows;
    if (bytes == 0)
        return err_set(e, ERR_FORMAT, "tensor '%s': bad shape [%lld, %lld]", w->name, (long long)w->rows,
                       (long long)w->cols);
    void *d = NULL;
    cudaError_t rc = cudaMalloc(&d, bytes);
    if (rc != cudaSuccess)
        return err_set(e, ERR_NOMEM, "tensor '%s': cannot allocate %zu MiB of GPU memory (%s)", w->name,
                       bytes >> 20, cudaGetErrorString(rc));
    if (rp) {
        rc = upload_repacked(c, w, d, bytes);
        if (rc != cudaSuccess) {
            cudaFree(d);
            return err_set(e, ERR_IO, "tensor '%s': repacking on the GPU failed (%s)", w->name, cudaGetErrorString(rc));
        }
    } else {
        rc = upload(c, d, w->host, bytes);
        if (rc == cudaSuccess)
            rc = cudaStreamSynchronize(c->stream);
        if (rc != cudaSuccess) {
            cudaFree(d);
            return err_set(e, ERR_IO, "tensor '%s': copy to the GPU failed (%s)", w->name, cudaGetErrorString(rc));
        }
    }
    w->dev = d;
    if (matrix && (size_t)(w->rows * w->cols) > c->max_weight_elems)
        c->max_weight_elems = (size_t)(w->rows * w->cols);
    return 0;
}

static void cuda_release_weight(struct backend *be, struct bweight *w)
{
    flush((struct cuda_backend *)be);
    if (w->dev) {
        cudaFree(w->dev);
        w->dev = NULL;
    }
}

static void *cuda_alloc(struct backend *be, size_t bytes)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    flush(c);
    c->q_src = NULL;
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is reported by the NULL, not kept as a sticky error */
        return NULL;
    }
    if (cudaMemset(p, 0, bytes ? bytes : 256) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_dealloc(struct backend *be, void *p)
{
    if (p) {
        struct cuda_backend *c = (struct cuda_backend *)be;
        flush(c);
        c->q_src = NULL;
        cudaStreamSynchronize(c->stream);
        cudaFree(p);
    }
}

/* Ends the recorded step (if any) and copies bytes of device memory at src to dst on the host, through
 * pinned memory (staged, of at least bytes) when given; with HEARTH_CUDA_PROFILE=graph, books the step's
 * GPU and host times. Returns 0, or -1 after printing the first error an op met. */
static int read_back(struct cuda_backend *c, void *dst, const void *src, size_t bytes, void *staged)
{
    flush(c);
    c->q_src = NULL;
    note_cuda(c, cudaMemcpyAsync(staged ? staged : dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "read");
    if (c->gt_pending)
        cudaEventRecord(c->gt2, c->stream);
    note_cuda(c, cudaStreamSynchronize(c->stream), "read");
    if (staged)
        memcpy(dst, staged, bytes);
    if (c->gt_pending) {
        float ms = 0, cms = 0;
        if (cudaEventElapsedTime(&ms, c->gt0, c->gt1) == cudaSuccess &&
            cudaEventElapsedTime(&cms, c->gt1, c->gt2) == cudaSuccess) {
            const int64_t now = clock_ns();
            c->gt_ms += ms;
            c->gt_copy_ms += cms;
            c->gt_n++;
            if (c->ht_prev_read && c->ht_set - c->ht_prev_read < 5000000) /* not across a new prompt */
                c->ht_caller += (double)(c->ht_set - c->ht_prev_read);
            c->ht_record += (double)(c->ht_flush0 - c->ht_set);
            c->ht_launch += (double)(c->ht_flush1 - c->ht_flush0);
            c->ht_wait += (double)(now - c->ht_flush1);
            c->ht_prev_read = now;
        }
        c->gt_pending = 0;
    }
    struct err e;
    if (backend_cuda_check(&c->base, &e) != 0) {
        /* The op table has no error return: make a failed step visible rather than silently wrong. */
        fprintf(stderr, "hearth: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static void cuda_read(struct backend *be, float *dst, const float *src, size_t n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    /* Large reads go through pinned memory (twice the bus speed of a pageable copy, then a host copy). */
    const size_t bytes = n * sizeof *dst;
    if (bytes >= ((size_t)64 << 10) && n > c->h_read_n) {
        cudaFreeHost(c->h_read);
        c->h_read_n = 0;
        if (cudaMallocHost((void **)&c->h_read, bytes) == cudaSuccess) {
            c->h_read_n = n;
        } else {
            c->h_read = NULL;
            cudaGetLastError();
        }
    }
    const bool staged = bytes >= ((size_t)64 << 10) && c->h_read;
    if (read_back(c, dst, src, bytes, staged ? c->h_read : NULL) != 0)
        memset(dst, 0, bytes);
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
    flush(c);
    upload_staging_free(c); /* the weights are loaded by now */
    c->q_src = NULL;
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
    {
        const int qb = max_batch < CUDA_GEMV_MAX_BATCH ? max_batch : CUDA_GEMV_MAX_BATCH;
        if (qb > c->xq_batch || c->max_cols > c->xq_cols) {
            const int nb = qb > c->xq_batch ? qb : c->xq_batch;
            cudaFree(c->d_xq);
            cudaFree(c->d_xds);
            cudaFree(c->d_ssq);
            c->d_xq = c->d_xds = c->d_xq_alt = c->d_xds_alt = NULL;
            c->d_ssq = NULL;
            c->d_ncount = NULL;
            c->xq_batch = c->xq_cols = 0;
            const size_t groups = (size_t)(c->max_cols / 32 + 1);
            const size_t qbytes = (size_t)nb * (size_t)c->max_cols;
            const size_t dbytes = (size_t)nb * groups * 2 * sizeof(float);
            const size_t nbytes = ((size_t)nb + 1) * groups * sizeof(float);
            if (cudaMalloc(&c->d_xq, 2 * qbytes) != cudaSuccess || cudaMalloc(&c->d_xds, 2 * dbytes) != cudaSuccess ||
                cudaMalloc((void **)&c->d_ssq, nbytes) != cudaSuccess || cudaMemset(c->d_ssq, 0, nbytes) != cudaSuccess) {
                cudaGetLastError();
                return err_set(e, ERR_NOMEM, "cannot allocate GPU memory for quantised activations");
            }
            c->d_xq_alt = (char *)c->d_xq + qbytes;
            c->d_xds_alt = (char *)c->d_xds + dbytes;
            c->d_ncount = (unsigned *)(c->d_ssq + (size_t)nb * groups);
            c->xq_batch = nb;
            c->xq_cols = (int)c->max_cols;
        }
    }
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
    if (max_ctx > c->max_ctx)
        c->max_ctx = max_ctx;
    return 0;
}

/* ---- ops: each is described by a record, executed at once, or (inside a decode step) logged and run
 * as a CUDA graph when the step is read. ---- */

/* The cached int8 activations as the products take them. */
struct q8_in {
    const void *xq, *xds;
    struct cuda_gemv_norm norm; /* ssq NULL: plain activations */
};

static struct q8_in q8_input(const struct cuda_backend *c)
{
    struct q8_in in = {c->d_xq, c->d_xds, {NULL, 0.0f}};
    if (c->q_alt) {
        in.xq = c->d_xq_alt;
        in.xds = c->d_xds_alt;
        in.norm.ssq = c->d_ssq;
        in.norm.eps = c->q_eps;
    }
    return in;
}

static const struct cuda_gemv_norm *q8_norm(const struct q8_in *in) { return in->norm.ssq ? &in->norm : NULL; }

static void exec_matmul(struct cuda_backend *c, const struct op_rec *r)
{
    const uint32_t type = (uint32_t)r->type;
    const int rows = (int)r->rows, cols = (int)r->cols, n = (int)r->n;
    const void *W = r->p0;
    const float *b = r->p1, *x = r->p2;
    float *y = (float *)r->p3;
    const char *name = r->p4;
    const size_t row_bytes = r->row_bytes;
    const bool q8 = is_repacked(type);
    if (n <= CUDA_GEMV_MAX_BATCH || !c->d_xh) {
        if (q8 && c->d_xq && n <= c->xq_batch && cols <= c->xq_cols) {
            /* The activations are quantised once for consecutive products of the same input (Q, K, V;
             * gate, up): the cached copy stays valid until another op runs. */
            if (c->q_src != x || c->q_n != n || c->q_cols != cols) {
                cuda_launch_quantize_q8(x, c->d_xq, c->d_xds, n, cols, c->stream);
                c->q_src = x;
                c->q_n = n;
                c->q_cols = cols;
                c->q_alt = 0;
            }
            const struct q8_in in = q8_input(c);
            cuda_launch_gemv_q8(type, W, row_bytes, rows, cols, in.xq, in.xds, b, y, n, q8_norm(&in), c->stream);
        } else if (cuda_launch_gemv_half(type, W, row_bytes, rows, cols, x, b, y, n, c->stream) != 0) {
            cuda_launch_gemv(type, W, row_bytes, rows, cols, x, b, y, n, c->stream);
        }
        if ((const float *)y < x + (size_t)n * cols && x < y + (size_t)n * rows)
            c->q_src = NULL;
        return;
    }
    c->q_src = NULL;
    const float one = 1.0f, zero = 0.0f;
    if (type == DT_F32) {
        note_blas(c, cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &one, W, cols, x, cols, &zero, y, rows),
                  name);
    } else {
        /* x = hi + lo, both half. Exact half weights (F16) are multiplied with both parts, which keeps
         * float32 accuracy of the activations; quantised weights carry far more error than half
         * activations, so they use hi only and save half the tensor-core work. */
        const bool split = type == DT_F16;
        void *hi = c->d_xh, *lo = (uint16_t *)c->d_xh + c->xh_elems;
        cuda_launch_split_f16(x, hi, split ? lo : NULL, (size_t)n * cols, c->stream);
        const int slab = type == DT_F16 ? rows : (int)(c->wh_elems / (size_t)cols);
        for (int r0 = 0; r0 < rows; r0 += slab) {
            const int nr = rows - r0 < slab ? rows - r0 : slab;
            const void *A;
            if (type == DT_F16) {
                A = W;
            } else {
                cuda_launch_dequant_f16(type, (const uint8_t *)W + (size_t)r0 * row_bytes, row_bytes, nr, cols, c->d_wh,
                                        c->stream);
                A = c->d_wh;
            }
            note_blas(c,
                      cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, nr, n, cols, &one, A, CUDA_R_16F, cols, hi,
                                   CUDA_R_16F, cols, &zero, y + r0, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT),
                      name);
            if (split)
                note_blas(c,
                          cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, nr, n, cols, &one, A, CUDA_R_16F, cols, lo,
                                       CUDA_R_16F, cols, &one, y + r0, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT),
                          name);
        }
    }
    if (b)
        cuda_launch_add_bias(y, b, rows, n, c->stream);
}

static void exec_op(struct cuda_backend *c, const struct op_rec *r)
{
    if (r->kind == OP_MATMUL) {
        exec_matmul(c, r);
        return;
    }
    c->q_src = NULL;
    switch (r->kind) {
    case OP_GET_ROWS:
        cuda_launch_get_rows((uint32_t)r->type, r->p0, r->row_bytes, (int)r->cols, c->d_tokens, (int)r->n,
                             (float *)r->p1, c->stream);
        break;
    case OP_RMSNORM:
        cuda_launch_rmsnorm(r->p0, r->p1, (float *)r->p2, (int)r->n, (int)r->cols, r->f0, c->stream);
        break;
    case OP_ROPE:
        cuda_launch_rope((float *)r->p0, c->d_pos, (int)r->n, r->i0, r->i1, r->i2, r->i3, r->f0, r->f1, r->p1,
                         c->stream);
        break;
    case OP_KV_STORE:
        cuda_launch_kv_store((void *)r->p0, (void *)r->p1, r->i0, r->p2, r->p3, c->d_pos, (int)r->n, r->i1, c->stream);
        break;
    case OP_ATTENTION:
        /* Decode batches: split over context chunks (p4 is the scratch, NULL when not in use). */
        if (r->n <= CUDA_GEMV_MAX_BATCH && r->p4 &&
            cuda_launch_attention_split(r->p0, r->p1, r->p2, r->i0, (float *)r->p3, NULL, NULL, c->d_pos, (int)r->n,
                                        r->i1, r->i2, r->i3, r->f0, (void *)r->p4, c->stream) == 0)
            break;
        cuda_launch_attention(r->p0, r->p1, r->p2, r->i0, (float *)r->p3, c->d_pos, (int)r->n, r->i1, r->i2, r->i3,
                              r->f0, (int)r->rows, c->stream);
        break;
    case OP_SWIGLU:
        cuda_launch_swiglu(r->p0, r->p1, (float *)r->p2, r->n, c->stream);
        break;
    case OP_ADD:
        cuda_launch_add((float *)r->p0, r->p1, r->n, c->stream);
        break;
    case OP_ARGMAX:
        cuda_launch_argmax(r->p0, (int)r->n, (void *)r->p1, (int32_t *)r->p2, c->stream);
        break;
    default:
        break;
    }
}

/* Whether matmul record m multiplies x ([n, cols]) on the int8 path (a repacked layout, decode batch). */
static bool matmul_q8_on(const struct cuda_backend *c, const struct op_rec *m, const void *x, size_t n, int64_t cols)
{
    return m->kind == OP_MATMUL && m->p2 == x && m->n == n && m->cols == cols &&
           is_repacked((uint32_t)m->type) && (n <= CUDA_GEMV_MAX_BATCH || !c->d_xh) &&
           c->d_xq && (int)n <= c->xq_batch && cols <= c->xq_cols;
}

static bool overlaps(const void *a, size_t abytes, const void *b, size_t bbytes)
{
    const char *pa = a, *pb = b;
    return pa < pb + bbytes && pb < pa + abytes;
}

static void set_quantised(struct cuda_backend *c, const float *x, size_t n, int64_t cols)
{
    c->q_src = x;
    c->q_n = (int)n;
    c->q_cols = (int)cols;
    c->q_alt = 0;
}

/* Whether nothing in log[from..n) reads the float values of x (bytes long) before they are overwritten:
 * only int8 products of x (which take the cached activations) until an op writes all of x anew. */
static bool floats_unread(const struct cuda_backend *c, const struct op_rec *log, int from, int n, const float *x,
                          size_t xn, int64_t cols)
{
    const size_t bytes = xn * (size_t)cols * sizeof(float);
    for (int j = from; j < n; j++) {
        const struct op_rec *o = &log[j];
        if (o->kind == OP_MATMUL && o->p2 == x && matmul_q8_on(c, o, x, xn, cols))
            continue;
        if (o->kind == OP_RMSNORM && o->p2 == x && o->p0 != x && o->n == xn && o->cols == cols)
            return true;
        if (o->kind == OP_MATMUL && o->p3 == x && o->p2 != x && o->n == xn && o->rows == cols)
            return true;
        const void *ps[5] = {o->p0, o->p1, o->p2, o->p3, o->p4};
        for (int k = 0; k < 5; k++)
            if (ps[k] && overlaps(ps[k], 1, x, bytes))
                return false;
    }
    return true;
}

/* How many matmuls from log[i] on (up to CUDA_GEMV_MULTI) multiply the same input the same way (type, row
 * size, shape; on the int8 path too when q8) into outputs apart from that input: one launch can do them. */
static int same_input_products(const struct cuda_backend *c, const struct op_rec *log, int i, int n, bool q8)
{
    const struct op_rec *r = &log[i];
    const size_t xbytes = r->n * (size_t)r->cols * sizeof(float);
    int k = 0;
    while (k < CUDA_GEMV_MULTI && i + k < n) {
        const struct op_rec *m = &log[i + k];
        if (m->kind != OP_MATMUL || m->p2 != r->p2 || m->n != r->n || m->cols != r->cols || m->type != r->type ||
            m->row_bytes != r->row_bytes || (q8 && !matmul_q8_on(c, m, r->p2, r->n, r->cols)) ||
            overlaps(m->p3, m->n * (size_t)m->rows * sizeof(float), r->p2, xbytes))
            break;
        k++;
    }
    return k;
}

/* The matrices of the k products from log[i] on, for a multi-matrix launch. */
static void product_set(const struct op_rec *log, int i, int k, struct cuda_gemv_set *set)
{
    memset(set, 0, sizeof *set);
    set->nm = k;
    for (int j = 0; j < k; j++) {
        set->W[j] = log[i + j].p0;
        set->bias[j] = log[i + j].p1;
        set->y[j] = (float *)log[i + j].p3;
        set->rows[j] = (int)log[i + j].rows;
    }
}

/* Whether log[i..i+2] (the Q, K, V products) are followed by RoPE on Q, RoPE on K and the store of K
 * and V into the cache, with rotary pairs of consecutive dimensions (not NeoX): then the products'
 * epilogue does those three ops (*rope says how). */
static bool rope_kv_follows(struct cuda_backend *c, const struct op_rec *log, int i, int n,
                            struct cuda_gemv_rope *rope)
{
    if (!c->fuse_rope || i + 5 >= n)
        return false;
    const struct op_rec *q = &log[i], *k = &log[i + 1], *v = &log[i + 2];
    const struct op_rec *rq = &log[i + 3], *rk = &log[i + 4], *kv = &log[i + 5];
    if (rq->kind != OP_ROPE || rk->kind != OP_ROPE || kv->kind != OP_KV_STORE)
        return false;
    if (rq->p0 != q->p3 || rk->p0 != k->p3 || kv->p2 != k->p3 || kv->p3 != v->p3 || rq->n != q->n || rk->n != q->n ||
        kv->n != q->n)
        return false;
    if (rq->i3 || rk->i3 || rq->i1 != rk->i1 || rq->i2 != rk->i2 || rq->f0 != rk->f0 || rq->f1 != rk->f1 ||
        rq->p1 != rk->p1 || rq->i0 * rq->i1 != (int)q->rows || rk->i0 * rk->i1 != (int)k->rows ||
        kv->i1 != (int)k->rows || v->rows != k->rows)
        return false;
    /* The angles: computed once a step, again only if a layer's RoPE differs from the table's. */
    if (!c->rope_tab_ok || c->rope_tab_n != (int)rq->n || c->rope_tab_rot != rq->i2 || c->rope_tab_base != rq->f0 ||
        c->rope_tab_scale != rq->f1 || c->rope_tab_factors != rq->p1) {
        if (cuda_launch_rope_table(c->d_pos, (int)rq->n, rq->i2, rq->f0, rq->f1, rq->p1, c->d_rope_tab, c->stream) != 0)
            return false;
        c->rope_tab_ok = 1;
        c->rope_tab_n = (int)rq->n;
        c->rope_tab_rot = rq->i2;
        c->rope_tab_base = rq->f0;
        c->rope_tab_scale = rq->f1;
        c->rope_tab_factors = rq->p1;
    }
    rope->pos = c->d_pos;
    rope->table = c->d_rope_tab;
    rope->kc = (void *)kv->p0;
    rope->vc = (void *)kv->p1;
    rope->f16 = kv->i0;
    rope->head_dim = rq->i1;
    rope->n_rot = rq->i2;
    return true;
}

/* A product whose output goes into the residual that the next RMSNorm reads, with int8 products of that
 * norm's output next: log[i] = matmul (int8 path, one token row group), log[i + 1] = add(h, its
 * output), log[i + 2] = rmsnorm(h -> xn), log[i + 3] = an int8 product of xn, and xn's floats are not
 * read afterwards. Run as one launch whose epilogue does the add and quantises h * g for log[i + 3]
 * (the norm's scale goes to those products); returns whether it did. */
static bool fuse_residual_norm(struct cuda_backend *c, const struct op_rec *log, int i, int n)
{
    if (i + 3 >= n)
        return false;
    const struct op_rec *r = &log[i], *add = &log[i + 1], *nrm = &log[i + 2], *mm = &log[i + 3];
    if (!matmul_q8_on(c, r, r->p2, r->n, r->cols) || r->n > 8 || r->rows % 32 || r->rows > c->xq_cols)
        return false;
    if (add->kind != OP_ADD || add->p1 != r->p3 || add->n != r->n * (size_t)r->rows)
        return false;
    if (nrm->kind != OP_RMSNORM || nrm->p0 != add->p0 || nrm->n != r->n || nrm->cols != r->rows ||
        nrm->p2 == nrm->p0 || overlaps(add->p0, add->n * sizeof(float), r->p2, r->n * (size_t)r->cols * sizeof(float)))
        return false;
    if (!matmul_q8_on(c, mm, nrm->p2, nrm->n, nrm->cols) || !floats_unread(c, log, i + 3, n, nrm->p2, nrm->n, nrm->cols))
        return false;
    if (c->q_src != r->p2 || c->q_n != (int)r->n || c->q_cols != (int)r->cols) {
        cuda_launch_quantize_q8(r->p2, c->d_xq, c->d_xds, (int)r->n, (int)r->cols, c->stream);
        set_quantised(c, r->p2, r->n, r->cols);
    }
    const struct q8_in in = q8_input(c);
    if (c->q_alt) /* the epilogue writes the second set: the input must be in the first */
        return false;
    struct cuda_gemv_set set;
    product_set(log, i, 1, &set);
    const struct cuda_gemv_epi epi = {(float *)add->p0, nrm->p1, c->d_xq_alt, c->d_xds_alt, c->d_ssq, c->d_ncount};
    if (cuda_launch_gemv_q8_multi((uint32_t)r->type, &set, r->row_bytes, (int)r->cols, in.xq, in.xds, (int)r->n,
                                  q8_norm(&in), &epi, NULL, c->stream) != 0)
        return false;
    set_quantised(c, nrm->p2, nrm->n, nrm->cols);
    c->q_alt = 1;
    c->q_eps = nrm->f0;
    return true;
}

/* Runs a recorded step's ops, merging neighbours into one launch where the second consumes the first's
 * output: residual add + RMSNorm (+ the int8 activations of the product that follows), RoPE on Q and K
 * + KV store, attention + the int8 activations of the output projection, SwiGLU + int8 activations, and
 * up to CUDA_GEMV_MULTI int8 or F16/BF16 products of the same input (Q, K, V; gate, up). */
static void exec_log(struct cuda_backend *c, const struct op_rec *log, int n)
{
    c->rope_tab_ok = 0;
    for (int i = 0; i < n; i++) {
        const struct op_rec *r = &log[i], *nx = i + 1 < n ? &log[i + 1] : NULL;
        if (c->prof)
            cuda_profile_mark(c->prof, c->stream, i);
        if (!c->fuse) {
            exec_op(c, r);
            continue;
        }
        if (r->kind == OP_ADD && nx && nx->kind == OP_RMSNORM && nx->p0 == r->p0 && r->n == nx->n * (size_t)nx->cols) {
            const struct op_rec *mm = i + 2 < n ? &log[i + 2] : NULL;
            const bool q = mm && nx->cols % 32 == 0 && matmul_q8_on(c, mm, nx->p2, nx->n, nx->cols);
            cuda_launch_norm_fused((float *)r->p0, r->p1, nx->p1, (float *)nx->p2, q ? c->d_xq : NULL,
                                   q ? c->d_xds : NULL, (int)nx->n, (int)nx->cols, nx->f0, c->stream);
            c->q_src = NULL;
            if (q)
                set_quantised(c, nx->p2, nx->n, nx->cols);
            i++;
            continue;
        }
        if (r->kind == OP_RMSNORM && nx && r->cols % 32 == 0 && matmul_q8_on(c, nx, r->p2, r->n, r->cols)) {
            cuda_launch_norm_fused((float *)r->p0, NULL, r->p1, (float *)r->p2, c->d_xq, c->d_xds, (int)r->n,
                                   (int)r->cols, r->f0, c->stream);
            set_quantised(c, r->p2, r->n, r->cols);
            continue;
        }
        if (r->kind == OP_ROPE && nx && nx->kind == OP_ROPE && i + 2 < n && log[i + 2].kind == OP_KV_STORE) {
            /* RoPE on Q, RoPE on K, K and V into the cache: one launch. */
            const struct op_rec *kv = &log[i + 2];
            if (nx->n == r->n && kv->n == r->n && kv->p2 == nx->p0 && nx->i1 == r->i1 && nx->i2 == r->i2 &&
                nx->i3 == r->i3 && nx->f0 == r->f0 && nx->f1 == r->f1 && nx->p1 == r->p1 &&
                kv->i1 == nx->i0 * nx->i1 &&
                cuda_launch_rope_kv((float *)r->p0, (float *)nx->p0, kv->p3, (void *)kv->p0, (void *)kv->p1, kv->i0,
                                    c->d_pos, (int)r->n, r->i0, nx->i0, r->i1, r->i2, r->i3, r->f0, r->f1, r->p1,
                                    c->stream) == 0) {
                c->q_src = NULL;
                i += 2;
                continue;
            }
        }
        if (r->kind == OP_ATTENTION && nx && r->p4 && r->n <= CUDA_GEMV_MAX_BATCH &&
            matmul_q8_on(c, nx, r->p3, r->n, (int64_t)r->i1 * r->i3) &&
            cuda_launch_attention_split(r->p0, r->p1, r->p2, r->i0, (float *)r->p3, c->d_xq, c->d_xds, c->d_pos,
                                        (int)r->n, r->i1, r->i2, r->i3, r->f0, (void *)r->p4, c->stream) == 0) {
            /* Attention + the int8 activations of the output projection. */
            set_quantised(c, r->p3, r->n, (int64_t)r->i1 * r->i3);
            continue;
        }
        if (r->kind == OP_SWIGLU && nx && nx->cols > 0 && r->n == nx->n * (size_t)nx->cols &&
            matmul_q8_on(c, nx, r->p2, nx->n, nx->cols)) {
            cuda_launch_swiglu_q8(r->p0, r->p1, (float *)r->p2, c->d_xq, c->d_xds, r->n, c->stream);
            set_quantised(c, r->p2, nx->n, nx->cols);
            continue;
        }
        if (c->fuse_norm && fuse_residual_norm(c, log, i, n)) {
            i += 2;
            continue;
        }
        if (r->kind == OP_MATMUL && matmul_q8_on(c, r, r->p2, r->n, r->cols)) {
            const int k = same_input_products(c, log, i, n, true);
            if (k > 1) {
                if (c->q_src != r->p2 || c->q_n != (int)r->n || c->q_cols != (int)r->cols) {
                    cuda_launch_quantize_q8(r->p2, c->d_xq, c->d_xds, (int)r->n, (int)r->cols, c->stream);
                    set_quantised(c, r->p2, r->n, r->cols);
                }
                const struct q8_in in = q8_input(c);
                struct cuda_gemv_set set;
                product_set(log, i, k, &set);
                struct cuda_gemv_rope rope;
                if (k == 3 && rope_kv_follows(c, log, i, n, &rope) &&
                    cuda_launch_gemv_q8_multi((uint32_t)r->type, &set, r->row_bytes, (int)r->cols, in.xq, in.xds,
                                              (int)r->n, q8_norm(&in), NULL, &rope, c->stream) == 0) {
                    c->q_src = NULL;
                    i += k + 2; /* and the two RoPE ops and the KV store */
                    continue;
                }
                cuda_launch_gemv_q8_multi((uint32_t)r->type, &set, r->row_bytes, (int)r->cols, in.xq, in.xds,
                                          (int)r->n, q8_norm(&in), NULL, NULL, c->stream);
                i += k - 1;
                continue;
            }
        }
        if (r->kind == OP_MATMUL && (r->type == DT_F16 || r->type == DT_BF16) && r->n <= CUDA_GEMV_MAX_BATCH) {
            const int k = same_input_products(c, log, i, n, false);
            struct cuda_gemv_set set;
            product_set(log, i, k, &set);
            if (k > 1 && cuda_launch_gemv_half_multi((uint32_t)r->type, &set, r->row_bytes, (int)r->cols, r->p2,
                                                     (int)r->n, c->stream) == 0) {
                c->q_src = NULL;
                i += k - 1;
                continue;
            }
        }
        exec_op(c, r);
    }
    if (c->prof)
        cuda_profile_mark(c->prof, c->stream, n);
}

static const char *op_kind_name(int32_t kind)
{
    static const char *const names[] = {"?", "get_rows", "rmsnorm", "matmul", "rope", "kv_store", "attention",
                                        "swiglu", "add", "argmax"};
    return kind > 0 && kind <= OP_ARGMAX ? names[kind] : names[0];
}

static const char *dev_type_name(uint32_t t)
{
    switch (t) {
    case CUDA_T_Q4_0R:
        return "Q4_0r";
    case CUDA_T_Q8_0R:
        return "Q8_0r";
    case CUDA_T_Q4_KR:
        return "Q4_Kr";
    case CUDA_T_Q6_KR:
        return "Q6_Kr";
    default:
        return dtype_name(t);
    }
}

/* A launch group's label: its ops joined by '+', matrices by their per-layer name ("blk.N." dropped),
 * then the first matrix's format and shape. */
static void group_label(const struct op_rec *log, int a, int b, int prompt, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "%c ", prompt ? 'P' : 'D');
    for (int i = a; i < b && len < cap; i++) {
        const struct op_rec *r = &log[i];
        const char *name = op_kind_name(r->kind);
        if (r->kind == OP_MATMUL && r->p4) {
            name = r->p4;
            if (strncmp(name, "blk.", 4) == 0 && strchr(name + 4, '.'))
                name = strchr(name + 4, '.') + 1;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%.*s", i > a ? "+" : "",
                                (int)(strstr(name, ".weight") ? (size_t)(strstr(name, ".weight") - name) : strlen(name)),
                                name);
    }
    if (log[a].kind == OP_MATMUL && len < cap)
        snprintf(out + len, cap - len, " %s %lldx%lld n=%zu", dev_type_name((uint32_t)log[a].type),
                 (long long)log[a].rows, (long long)log[a].cols, log[a].n);
}

/* Runs a logged step with a timing event between launch groups and adds the times to the profile. */
static void profile_step(struct cuda_backend *c, int n)
{
    const int prompt = c->n_batch > CUDA_GEMV_MAX_BATCH;
    const int fuse = c->fuse;
    if (prompt)
        c->fuse = 0; /* prompt batches run op by op outside profiling too */
    cuda_profile_begin(c->prof, c->stream);
    exec_log(c, c->log, n);
    c->fuse = fuse;
    c->q_src = NULL;
    const int marks = cuda_profile_marks(c->prof);
    char label[80];
    for (int k = 0; k + 1 < marks; k++) {
        group_label(c->log, cuda_profile_mark_index(c->prof, k), cuda_profile_mark_index(c->prof, k + 1), prompt, label,
                    sizeof label);
        cuda_profile_add(c->prof, label, cuda_profile_elapsed(c->prof, k));
    }
    cuda_profile_end(c->prof, prompt);
}

/* Runs a record now, or logs it while a decode step is being recorded. A full log (a model far larger
 * than any seen) runs what it holds and finishes the step without a graph. */
static void submit(struct cuda_backend *c, const struct op_rec *r)
{
    if (c->recording) {
        if (c->n_log < c->cap_log) {
            c->log[c->n_log++] = *r;
            return;
        }
        c->recording = 0;
        exec_log(c, c->log, c->n_log);
        c->n_log = 0;
    }
    exec_op(c, r);
}

/* Ends a recorded step: replays the graph when the step's ops are the same as the graph's (the usual
 * decode step: same buffers, same shapes; positions come from device memory), else captures the ops
 * into the graph (updating it in place when its shape allows) and launches it. */
static void flush(struct cuda_backend *c)
{
    /* A step started ahead is claimed by the set_batch that follows it or not at all. */
    c->ahead_pending = 0;
    const int hit = c->ahead_hit;
    c->ahead_hit = 0;
    c->step_graphed = c->step_ran_ahead = 0;
    if (!c->recording)
        return;
    c->recording = 0;
    const int n = c->n_log;
    c->n_log = 0;
    if (c->prof) {
        profile_step(c, n);
        return;
    }
    if (c->graph_exec && n == c->n_glog && memcmp(c->log, c->glog, (size_t)n * sizeof *c->log) == 0) {
        c->step_graphed = 1;
        if (hit) { /* this very step, with this token and position, is already running */
            c->step_ran_ahead = 1;
            c->q_src = NULL;
            c->n_replays++;
            return;
        }
        if (c->gtime) {
            c->ht_flush0 = clock_ns();
            cudaEventRecord(c->gt0, c->stream);
        }
        note_cuda(c, cudaGraphLaunch(c->graph_exec, c->stream), "graph launch");
        if (c->gtime) {
            cudaEventRecord(c->gt1, c->stream);
            c->ht_flush1 = clock_ns();
            c->gt_pending = 1;
        }
        c->q_src = NULL;
        c->n_replays++;
        return;
    }
    if (cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
        exec_log(c, c->log, n);
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(c->stream, &g) == cudaSuccess && g) {
            bool ok = false;
            if (c->graph_exec) {
                cudaGraphExecUpdateResultInfo info;
                ok = cudaGraphExecUpdate(c->graph_exec, g, &info) == cudaSuccess;
                if (!ok) {
                    cudaGetLastError();
                    cudaGraphExecDestroy(c->graph_exec);
                    c->graph_exec = NULL;
                }
            }
            if (!ok)
                ok = cudaGraphInstantiate(&c->graph_exec, g, 0) == cudaSuccess;
            cudaGraphDestroy(g);
            if (ok) {
                memcpy(c->glog, c->log, (size_t)n * sizeof *c->log);
                c->n_glog = n;
                c->n_captures++;
                c->step_graphed = 1;
                note_cuda(c, cudaGraphLaunch(c->graph_exec, c->stream), "graph launch");
                c->q_src = NULL;
                return;
            }
            c->graph_exec = NULL;
        }
    }
    /* Capture is not possible here (e.g. a tool that intercepts launches): run the ops directly, and
     * do so from now on. */
    cudaGetLastError();
    c->use_graphs = 0;
    c->n_glog = 0;
    c->q_src = NULL;
    exec_log(c, c->log, n);
}

static void cuda_set_batch(struct backend *be, const int32_t *tokens, const int32_t *pos, int n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    if (c->gtime)
        c->ht_set = clock_ns();
    const int hit = c->ahead_pending && n == 1 && tokens && tokens[0] == c->ahead_tok && pos[0] == c->ahead_pos;
    flush(c);
    c->q_src = NULL;
    c->ahead_hit = hit;
    c->batch_pos0 = pos[0];
    c->n_batch = n;
    /* A one-token step (decode) is recorded and replayed as a graph. */
    c->recording = ((n == 1 && c->use_graphs) || c->prof) && c->log;
    if (hit) /* the step started ahead put this token and position on the device itself */
        return;
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
}

static void cuda_get_rows(struct backend *be, const struct bweight *table, float *out)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_GET_ROWS;
    r.type = (int32_t)dev_type(table);
    r.p0 = table->dev;
    r.row_bytes = dev_row_bytes(table);
    r.cols = table->cols;
    r.n = (size_t)c->n_batch;
    r.p1 = out;
    submit(c, &r);
}

static void cuda_rmsnorm(struct backend *be, const float *x, const struct bweight *w, float *out, int n_rows,
                         int dim, float eps)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_RMSNORM;
    r.p0 = x;
    r.p1 = w->dev;
    r.p2 = out;
    r.n = (size_t)n_rows;
    r.cols = dim;
    r.f0 = eps;
    submit(c, &r);
}

static void cuda_matmul(struct backend *be, const struct bweight *w, const struct bweight *bias, const float *x,
                        float *y, int n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_MATMUL;
    r.type = (int32_t)dev_type(w);
    r.rows = w->rows;
    r.cols = w->cols;
    r.row_bytes = dev_row_bytes(w);
    r.p0 = w->dev;
    r.p1 = bias ? bias->dev : NULL;
    r.p2 = x;
    r.p3 = y;
    r.p4 = w->name;
    r.n = (size_t)n;
    submit(c, &r);
}

static void cuda_rope(struct backend *be, float *x, int n_heads, int head_dim, const struct rope_params *rp)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_ROPE;
    r.p0 = x;
    r.p1 = rp->freq_factors ? rp->freq_factors->dev : NULL;
    r.n = (size_t)c->n_batch;
    r.i0 = n_heads;
    r.i1 = head_dim;
    r.i2 = rp->n_rot;
    r.i3 = rp->neox;
    r.f0 = rp->freq_base;
    r.f1 = rp->freq_scale;
    submit(c, &r);
}

static void cuda_kv_store(struct backend *be, void *k_cache, void *v_cache, enum kv_type type, const float *k,
                          const float *v, int n_kv_heads, int head_dim)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_KV_STORE;
    r.p0 = k_cache;
    r.p1 = v_cache;
    r.p2 = k;
    r.p3 = v;
    r.i0 = type == KV_F16;
    r.i1 = n_kv_heads * head_dim; /* rows of a position, one after another */
    r.n = (size_t)c->n_batch;
    submit(c, &r);
}

static void cuda_attention(struct backend *be, const float *q, const void *k_cache, const void *v_cache,
                           enum kv_type type, float *out, int n_heads, int n_kv_heads, int head_dim, float scale)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_ATTENTION;
    r.p0 = q;
    r.p1 = k_cache;
    r.p2 = v_cache;
    r.p3 = out;
    r.i0 = type == KV_F16;
    r.i1 = n_heads;
    r.i2 = n_kv_heads;
    r.i3 = head_dim;
    r.f0 = scale;
    r.rows = c->max_ctx; /* part of the record: it sizes the kernel's shared memory */
    r.n = (size_t)c->n_batch;
    if (c->split_att && r.n <= CUDA_GEMV_MAX_BATCH && c->max_ctx > 0) {
        /* Scratch for the split kernel's partial results, sized for the largest decode batch so that
         * it is allocated once per model shape (the pointer is part of the record). */
        const size_t need = cuda_attention_split_floats(CUDA_GEMV_MAX_BATCH, n_heads, n_kv_heads, head_dim);
        if (need > c->att_floats) {
            flush(c); /* logged ops may still refer to the old buffer */
            cudaStreamSynchronize(c->stream);
            cudaFree(c->d_att);
            c->d_att = NULL;
            c->att_floats = 0;
            if (cudaMalloc((void **)&c->d_att, need * sizeof(float)) == cudaSuccess &&
                cudaMemset(c->d_att, 0, need * sizeof(float)) == cudaSuccess) { /* the kernel's counters start at 0 */
                c->att_floats = need;
            } else {
                cudaGetLastError(); /* no scratch: the single-pass kernel runs instead */
                cudaFree(c->d_att);
                c->d_att = NULL;
            }
        }
        r.p4 = c->d_att;
    }
    submit(c, &r);
}

static void cuda_swiglu(struct backend *be, const float *gate, const float *up, float *out, size_t n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_SWIGLU;
    r.p0 = gate;
    r.p1 = up;
    r.p2 = out;
    r.n = n;
    submit(c, &r);
}

static void cuda_add(struct backend *be, float *x, const float *y, size_t n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_ADD;
    r.p0 = x;
    r.p1 = y;
    r.n = n;
    submit(c, &r);
}

/* Host floats into device memory, as set_batch stages the positions: copied to pinned memory now and
 * to dst on the stream at once, outside any recorded graph. The ops of a recorded step run later on the
 * same stream, so they see the copy; the graph holds kernels only and replays unchanged from step to
 * step (a split model's decode step: CPU blocks, this copy, then the GPU blocks as one graph launch). */
static void cuda_write(struct backend *be, float *dst, const float *src, size_t n)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    const size_t bytes = n * sizeof *src;
    /* Ops this step logged before the write must run before the copy: run them now (the rest of the
     * step is then not recorded). A split model writes before any GPU op of the step. */
    if (c->recording && c->n_log > 0)
        flush(c);
    c->q_src = NULL;
    /* The staging buffer may still feed the previous copy: wait for that copy only. */
    if (c->wstage_pending) {
        note_cuda(c, cudaEventSynchronize(c->wstaged), "write");
        c->wstage_pending = 0;
    }
    if (!c->wstaged && cudaEventCreateWithFlags(&c->wstaged, cudaEventDisableTiming) != cudaSuccess) {
        c->wstaged = NULL;
        note_cuda(c, cudaGetLastError(), "write (event)");
        return;
    }
    if (bytes > c->wstage_bytes) {
        /* Sized for the largest batch reserved (rows of at most max_cols), so it rarely grows again:
         * pinning host memory is slow. */
        size_t want = (size_t)c->cap_batch * (size_t)c->max_cols * sizeof(float);
        if (want < bytes)
            want = bytes;
        cudaFreeHost(c->h_wstage);
        c->h_wstage = NULL;
        c->wstage_bytes = 0;
        cudaError_t rc = cudaMallocHost((void **)&c->h_wstage, want);
        if (rc != cudaSuccess) {
            c->h_wstage = NULL;
            note_cuda(c, rc, "write (pinned staging)");
            return;
        }
        c->wstage_bytes = want;
    }
    memcpy(c->h_wstage, src, bytes);
    note_cuda(c, cudaMemcpyAsync(dst, c->h_wstage, bytes, cudaMemcpyHostToDevice, c->stream), "write");
    note_cuda(c, cudaEventRecord(c->wstaged, c->stream), "write");
    c->wstage_pending = 1;
}

/* Queues the copy of the latest pick (d_best) into the next of the two pinned slots and the event after
 * it; returns the slot. */
static int queue_pick(struct cuda_backend *c)
{
    const int slot = c->best_next;
    c->best_next ^= 1;
    note_cuda(c, cudaMemcpyAsync(c->h_best + slot, c->d_best, sizeof *c->h_best, cudaMemcpyDeviceToHost, c->stream),
              "read");
    note_cuda(c, cudaEventRecord(c->best_ev[slot], c->stream), "read");
    return slot;
}

static void cuda_argmax(struct backend *be, const float *x, int n, int32_t *best)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    struct op_rec r;
    memset(&r, 0, sizeof r);
    r.kind = OP_ARGMAX;
    r.p0 = x;
    r.n = (size_t)n;
    r.p1 = c->d_argmax;
    r.p2 = c->d_best;
    submit(c, &r);
    if (!c->ahead_on) {
        if (read_back(c, best, c->d_best, sizeof *best, c->h_best) != 0)
            *best = 0;
        return;
    }
    const int ahead = c->ahead_req;
    c->ahead_req = 0;
    flush(c);
    c->q_src = NULL;
    /* The pick's copy to the host: enqueued now, or, for a step started ahead, when it was started. */
    const int slot = c->step_ran_ahead ? c->ahead_slot : queue_pick(c);
    /* The next step, queued behind this one before the host waits: the pick becomes its token on the
     * device, the position moves on by one, the graph runs again (a recorded step is a one-token step:
     * steps are not started ahead while profiling, the one case that records larger batches). */
    if (ahead && c->step_graphed) {
        cuda_launch_next_token(c->d_best, c->d_tokens, c->d_pos, c->stream);
        note_cuda(c, cudaGraphLaunch(c->graph_exec, c->stream), "graph launch");
        c->ahead_slot = queue_pick(c);
        c->ahead_pending = 1;
        c->ahead_pos = c->batch_pos0 + 1;
    }
    note_cuda(c, cudaEventSynchronize(c->best_ev[slot]), "read");
    *best = c->h_best[slot];
    c->ahead_tok = *best;
    struct err e;
    if (first_error(c, &e) != 0) {
        fprintf(stderr, "hearth: %s\n", e.msg);
        *best = 0;
        c->ahead_pending = 0;
    }
}

static void cuda_greedy_ahead(struct backend *be)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    c->ahead_req = c->ahead_on;
}

static const struct backend_ops cuda_ops = {
    .name = "cuda",
    .free = cuda_free_be,
    .prepare_weight = cuda_prepare_weight,
    .release_weight = cuda_release_weight,
    .alloc = cuda_alloc,
    .dealloc = cuda_dealloc,
    .read = cuda_read,
    .write = cuda_write,
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
    .argmax = cuda_argmax,
    .greedy_ahead = cuda_greedy_ahead,
};

void backend_cuda_graph_stats(struct backend *be, long *replays, long *captures)
{
    struct cuda_backend *c = (struct cuda_backend *)be;
    flush(c);
    *replays = c->n_replays;
    *captures = c->n_captures;
}

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
    const char *g = getenv("HEARTH_CUDA_GRAPHS");
    c->use_graphs = !(g && *g == '0');
    const char *f = getenv("HEARTH_CUDA_FUSE");
    c->fuse = !(f && *f == '0');
    const char *fn = getenv("HEARTH_CUDA_FUSE_NORM");
    c->fuse_norm = !(fn && *fn == '0');
    const char *fr = getenv("HEARTH_CUDA_FUSE_ROPE");
    c->fuse_rope = !(fr && *fr == '0');
    const char *sa = getenv("HEARTH_CUDA_SPLIT_ATTENTION");
    c->split_att = !(sa && *sa == '0');
    const char *pf = getenv("HEARTH_CUDA_PROFILE");
    const int want_prof = pf && *pf && *pf != '0' && strcmp(pf, "graph") != 0;
    c->gtime = pf && strcmp(pf, "graph") == 0;
    c->cap_log = LOG_CAP;
    c->log = malloc(LOG_CAP * sizeof *c->log);
    c->glog = malloc(LOG_CAP * sizeof *c->glog);
    if (!c->log || !c->glog) {
        free(c->log);
        free(c->glog);
        free(c);
        return err_set(e, ERR_NOMEM, "out of memory creating the CUDA backend");
    }
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
    /* Small fixed buffers: the argmax scratch, its result, the RoPE angle table. */
    const size_t am_bytes = cuda_argmax_scratch_bytes(), tab_at = (am_bytes + 64 + 255) & ~(size_t)255;
    const size_t tab_bytes = (size_t)CUDA_GEMV_MAX_BATCH * (CUDA_ROPE_TABLE_ROT / 2) * sizeof(float2);
    if ((rc = cudaMalloc(&c->d_argmax, tab_at + tab_bytes)) != cudaSuccess ||
        (rc = cudaMemset(c->d_argmax, 0, tab_at + tab_bytes)) != cudaSuccess ||
        (rc = cudaMallocHost((void **)&c->h_best, 64)) != cudaSuccess) {
        cuda_free_be(&c->base);
        return err_set(e, ERR_NOMEM, "cannot allocate the greedy pick's buffers on GPU %d: %s", device,
                       cudaGetErrorString(rc));
    }
    c->d_best = (int32_t *)((char *)c->d_argmax + am_bytes);
    for (int k = 0; k < 2; k++)
        if ((rc = cudaEventCreateWithFlags(&c->best_ev[k], cudaEventDisableTiming)) != cudaSuccess) {
            cuda_free_be(&c->base);
            return err_set(e, ERR_IO, "cannot create events on GPU %d: %s", device, cudaGetErrorString(rc));
        }
    /* Steps are started ahead only where nothing times them one by one. */
    const char *ah = getenv("HEARTH_CUDA_AHEAD");
    c->ahead_on = !(ah && *ah == '0') && c->use_graphs && !c->gtime && !want_prof;
    c->d_rope_tab = (float2 *)((char *)c->d_argmax + tab_at);
    if (c->gtime && (cudaEventCreate(&c->gt0) != cudaSuccess || cudaEventCreate(&c->gt1) != cudaSuccess ||
                     cudaEventCreate(&c->gt2) != cudaSuccess)) {
        cudaGetLastError();
        c->gtime = 0;
    }
    if (want_prof && !(c->prof = cuda_profile_new(LOG_CAP + 1)))
        fprintf(stderr, "hearth: HEARTH_CUDA_PROFILE: cannot make timing events; profiling is off\n");
    /* Plain float32 SGEMM: TF32 would cost the F32 models their accuracy. */
    cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    *out = &c->base;
    return 0;
}
