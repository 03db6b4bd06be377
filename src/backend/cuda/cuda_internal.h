/* cuda_internal.h — what the CUDA backend's host code (cuda_backend.c, C) and its kernels
 * (cuda_kernels.cu, CUDA C++) share: the kernel launchers. Each launcher only enqueues work on the
 * given stream; the ones that dispatch on a weight format return -1 for a format without kernels. */
#ifndef HEARTH_BACKEND_CUDA_INTERNAL_H
#define HEARTH_BACKEND_CUDA_INTERNAL_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Batches of at most this many rows use the matrix-vector kernels; larger ones go through cuBLAS. */
#define CUDA_GEMV_MAX_BATCH 8

/* Weight layouts repacked at upload (internal type codes, outside enum dtype). Each row of nch
 * 32-element chunks holds the chunks' quants first, 16 bytes a chunk (Q8_0R: 32), so that every chunk
 * starts 16-byte aligned and a lane reads it with 128-bit loads; the scales follow in arrays of their
 * own; the row is padded so the next one starts 16-byte aligned.
 *   Q4_0R: quants (byte k: value k in the low nibble, value k + 16 in the high one, offset 8), then
 *          nch half scales.
 *   Q8_0R: 32 int8 quants, then nch half scales.
 *   Q4_KR: 4-bit quants as Q4_0R (no offset), then nch (6-bit scale, 6-bit min) byte pairs, then per
 *          256-value super-block (nch / 8) the half pair (d, dmin): w = d * scale * q - dmin * min.
 *   Q6_KR: the low 4 bits of the 6-bit quants as Q4_0R, then 8 bytes a chunk of high 2-bit pairs
 *          (word 0 for values 0..15, word 1 for 16..31; bits 2i..2i+1 of byte b belong to value
 *          4i + b), then nch int8 scale pairs (values 0..15, 16..31), then per super-block the half d:
 *          w = d * scale * (q - 32). */
#define CUDA_T_Q4_0R 0x1002
#define CUDA_T_Q8_0R 0x1008
#define CUDA_T_Q4_KR 0x1012
#define CUDA_T_Q6_KR 0x1016

static inline size_t cuda_repacked_row_bytes(uint32_t rtype, int64_t cols)
{
    const size_t nch = (size_t)cols / 32, nsb = nch / 8;
    size_t tail;
    switch (rtype) {
    case CUDA_T_Q8_0R:
        return nch * 32 + ((nch * 2 + 15) & ~(size_t)15);
    case CUDA_T_Q4_KR:
        tail = nch * 2 + nsb * 4;
        break;
    case CUDA_T_Q6_KR:
        tail = nch * 8 + nch * 2 + nsb * 2;
        break;
    default: /* CUDA_T_Q4_0R */
        tail = nch * 2;
        break;
    }
    return nch * 16 + ((tail + 15) & ~(size_t)15);
}

/* dst (rows of cuda_repacked_row_bytes(rtype, cols), zeroed) = the rows of src (rows x cols of format
 * type: DT_Q4_0, DT_Q8_0, DT_Q4_K or DT_Q6_K, already in GPU memory) repacked. -1 for another type. */
int cuda_launch_repack(uint32_t type, const void *src, int rows, int64_t cols, uint32_t rtype, void *dst,
                       cudaStream_t s);

/* Activations quantised for the integer matrix-vector kernels: x[n, cols] becomes int8 values
 * xq[n, cols] and per 32-value block (d, d * sum(q)) pairs xds[n, cols / 32] (float2), with
 * q = round(x / d), d = max|x| / 127. */
void cuda_launch_quantize_q8(const float *x, void *xq, void *xds, int n, int cols, cudaStream_t s);
/* Activations that are an RMSNorm's input times its weight, quantised before the norm's scale was known
 * (struct cuda_gemv_epi makes them): ssq[n, cols / 32] are the input's sums of squares per 32 values, from
 * which each product applies the scale 1 / sqrt(mean square + eps) to its results. */
struct cuda_gemv_norm {
    const float *ssq;
    float eps;
};
/* The fused epilogue of a product whose output is added to the residual that the next RMSNorm reads:
 * h[n, rows] += y, and per 32 rows the int8 activations of h * g (xq[n, rows], xds[n, rows / 32]) and
 * h's sum of squares (ssq[n, rows / 32]) for the next product (as struct cuda_gemv_norm). counters:
 * rows / 32 words, zeroed once (each launch leaves them at zero). xq/xds must not be the product's own
 * input activations. */
struct cuda_gemv_epi {
    float *h;
    const float *g;
    int8_t *xq;
    float2 *xds;
    float *ssq;
    unsigned *counters;
};
/* y[n, rows] = x . W^T (+ bias) for a repacked W (any CUDA_T_*R layout) with int8 dot
 * products against the quantised activations (norm: NULL, or how to scale them); n <= CUDA_GEMV_MAX_BATCH.
 * -1 for another type. */
int cuda_launch_gemv_q8(uint32_t rtype, const void *W, size_t row_bytes, int rows, int cols, const void *xq,
                        const void *xds, const float *bias, float *y, int n, const struct cuda_gemv_norm *norm,
                        cudaStream_t s);

/* y[n, rows] = x[n, cols] . W^T (+ bias) for F16 or BF16 W (cuda_gemv_half.cu), n <= CUDA_GEMV_MAX_BATCH;
 * -1 for another type, or rows not made of 16-byte groups. */
int cuda_launch_gemv_half(uint32_t type, const void *W, size_t row_bytes, int rows, int cols, const float *x,
                          const float *bias, float *y, int n, cudaStream_t s);
/* y[n, rows] = x[n, cols] . W^T (+ bias); W is rows of row_bytes in format type; cols % 32 == 0. */
int cuda_launch_gemv(uint32_t type, const void *W, size_t row_bytes, int rows, int cols, const float *x,
                     const float *bias, float *y, int n, cudaStream_t s);
/* out[nrows, cols] (half) = the rows of W decoded. */
int cuda_launch_dequant_f16(uint32_t type, const void *W, size_t row_bytes, int nrows, int cols, void *out,
                            cudaStream_t s);
/* out[i] = row tokens[i] of table, as float32. */
int cuda_launch_get_rows(uint32_t type, const void *table, size_t row_bytes, int cols, const int32_t *tokens,
                         int n, float *out, cudaStream_t s);
/* hi = half(x), lo = half(x - hi). */
void cuda_launch_split_f16(const float *x, void *hi, void *lo, size_t n, cudaStream_t s);
/* y[j, r] += bias[r] over n rows of `rows`. */
void cuda_launch_add_bias(float *y, const float *bias, int rows, int n, cudaStream_t s);
void cuda_launch_rmsnorm(const float *x, const float *g, float *out, int n_rows, int dim, float eps,
                         cudaStream_t s);
void cuda_launch_rope(float *x, const int32_t *pos, int n, int n_heads, int head_dim, int n_rot, int neox,
                      float freq_base, float freq_scale, const float *factors, cudaStream_t s);
void cuda_launch_kv_store(void *kc, void *vc, int f16, const float *k, const float *v, const int32_t *pos, int n,
                          int kv_dim, cudaStream_t s);
/* max_ctx: the most cache positions any token attends to (the context's size); up to about 12k the
 * scores are kept in shared memory, beyond that an online-softmax kernel needing no scratch is used. */
void cuda_launch_attention(const float *q, const void *kc, const void *vc, int f16, float *out, const int32_t *pos,
                           int n, int n_heads, int n_kv_heads, int head_dim, float scale, int max_ctx,
                           cudaStream_t s);
/* Causal attention for a prompt batch, tiled over 64 query rows x 64 cache positions
 * (cuda_attention_prefill.cu); -1 for a head size other than 64 or 128 (cuda_launch_attention then uses
 * its own kernels). */
int cuda_launch_attention_prefill(const float *q, const void *kc, const void *vc, int f16, float *out,
                                  const int32_t *pos, int n, int n_heads, int n_kv_heads, int head_dim, float scale,
                                  cudaStream_t s);
void cuda_launch_swiglu(const float *gate, const float *up, float *out, size_t n, cudaStream_t s);

/* ---- fused decode kernels (cuda_fused.cu) ---- */

/* x += y (y may be NULL: no add), out = rmsnorm(x) * g; with xq/xds non-NULL also the int8 activations
 * of out as cuda_launch_quantize_q8 makes them. y may equal out. */
void cuda_launch_norm_fused(float *x, const float *y, const float *g, float *out, void *xq, void *xds, int n_rows,
                            int dim, float eps, cudaStream_t s);
/* out = silu(gate) * up and its int8 activations (n a multiple of 32). */
void cuda_launch_swiglu_q8(const float *gate, const float *up, float *out, void *xq, void *xds, size_t n,
                           cudaStream_t s);
/* RoPE on q [n, n_heads, head_dim] and k [n, n_kv_heads, head_dim] (in place), then k and v into the
 * cache rows at the batch positions: what cuda_launch_rope twice and cuda_launch_kv_store do, in one
 * launch. -1 for an odd head size or rotary width. */
int cuda_launch_rope_kv(float *q, float *k, const float *v, void *kc, void *vc, int f16, const int32_t *pos, int n,
                        int n_heads, int n_kv_heads, int head_dim, int n_rot, int neox, float freq_base,
                        float freq_scale, const float *factors, cudaStream_t s);
/* Split-context attention for decode batches (head size 64 or 128, at most 8 query heads per KV head):
 * each token's positions are cut into up to 32 shares over as many blocks and merged by the last block to
 * finish; the launch shape does not depend on the positions. scratch holds
 * cuda_attention_split_floats(n, ...) floats and must be zeroed once when allocated (it holds counters
 * that the kernel leaves at zero). With xq/xds given, the output is also quantised to int8 for the
 * product that follows (as cuda_launch_quantize_q8). -1 when the shape is not supported. */
size_t cuda_attention_split_floats(int n, int n_heads, int n_kv_heads, int head_dim);
int cuda_launch_attention_split(const float *q, const void *kc, const void *vc, int f16, float *out, void *xq,
                                void *xds, const int32_t *pos, int n, int n_heads, int n_kv_heads, int head_dim,
                                float scale, void *scratch, cudaStream_t s);

/* Up to CUDA_GEMV_MULTI products of the same quantised activations with matrices of one repacked type
 * and width, in one launch (Q, K and V; gate and up). */
#define CUDA_GEMV_MULTI 3
struct cuda_gemv_set {
    int nm;
    const void *W[CUDA_GEMV_MULTI];
    const float *bias[CUDA_GEMV_MULTI];
    float *y[CUDA_GEMV_MULTI];
    int rows[CUDA_GEMV_MULTI];
};
/* The RoPE + KV-store epilogue of the Q, K, V products (rotary pairs of consecutive dimensions, as in
 * Llama GGUF files): Q and K rows rotated at the batch positions pos, K and V rows also stored into the
 * caches kc / vc (f16: half, else float) at those positions; factors: per-pair divisors or NULL. */
struct cuda_gemv_rope {
    const int32_t *pos;
    const float2 *table; /* cos/sin of each token's pairs (cuda_launch_rope_table) */
    void *kc, *vc;
    int f16, head_dim, n_rot;
};
/* The batch's rotary angles: table[i * n_rot / 2 + j] = (cos, sin) of pair j at pos[i], computed as the
 * RoPE kernels do (n <= CUDA_GEMV_MAX_BATCH, n_rot <= CUDA_ROPE_TABLE_ROT; -1 otherwise). */
#define CUDA_ROPE_TABLE_ROT 256
int cuda_launch_rope_table(const int32_t *pos, int n, int n_rot, float freq_base, float freq_scale,
                           const float *factors, void *table, cudaStream_t s);
/* norm as for cuda_launch_gemv_q8; epi (NULL: none) adds the fused residual + next-norm epilogue and
 * needs one matrix with rows % 32 == 0; rope (NULL: none) the RoPE + KV-store one, for three matrices
 * Q, K, V (K and V of equal rows, whole heads). Both need n <= 8; -1 when the shape does not fit. */
int cuda_launch_gemv_q8_multi(uint32_t rtype, const struct cuda_gemv_set *set, size_t row_bytes, int cols,
                              const void *xq, const void *xds, int n, const struct cuda_gemv_norm *norm,
                              const struct cuda_gemv_epi *epi, const struct cuda_gemv_rope *rope, cudaStream_t s);
/* The F16/BF16 decode products of up to CUDA_GEMV_MULTI matrices of the same input x ([n, cols]) in one
 * launch (cuda_gemv_half.cu); -1 when the type or shape is not supported. */
int cuda_launch_gemv_half_multi(uint32_t type, const struct cuda_gemv_set *set, size_t row_bytes, int cols,
                                const float *x, int n, cudaStream_t s);
void cuda_launch_add(float *x, const float *y, size_t n, cudaStream_t s);
/* *best (device memory) = the index of the largest of x[n], argmax_f32's rule (cuda_argmax.cu). scratch:
 * cuda_argmax_scratch_bytes(), zeroed once when allocated (its counter is left at zero). */
size_t cuda_argmax_scratch_bytes(void);
void cuda_launch_argmax(const float *x, int n, void *scratch, int32_t *best, cudaStream_t s);
/* tokens[0] = *best, pos[0] += 1 (device memory): a one-token step's pick becomes the next step's batch. */
void cuda_launch_next_token(const int32_t *best, int32_t *tokens, int32_t *pos, cudaStream_t s);
/* Holds the stream for about ms milliseconds (profiling: lets the host enqueue a step ahead of the GPU). */
void cuda_launch_spin(float ms, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
