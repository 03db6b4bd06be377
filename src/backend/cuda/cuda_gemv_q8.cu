/* cuda_gemv_q8.cu — decode-sized matrix-vector products for the repacked Q4_0 / Q8_0 / Q4_K / Q6_K layouts
 * (cuda_internal.h) with int8 dot products (dp4a) against activations quantised to 8 bits per
 * 32-value block on the GPU. Decode is bound by reading the weights once: a lane loads a whole block
 * with 128-bit loads, a block works on four rows so one activation load serves them all, and a row's
 * chunks are spread over the block's warps so that many loads are in flight. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_gemv_set.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_reduce.cuh"
#include "backend/cuda/cuda_q8.cuh"

extern "C" {
#include "tensor/tensor.h"
}

/* ---- activations to int8: one warp per 32-value block ---- */

__global__ void k_quantize_q8(const float *__restrict__ x, int8_t *__restrict__ xq, float2 *__restrict__ xds,
                              int64_t n_chunks)
{
    const int64_t chunk = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    pdl_trigger();
    pdl_wait();
    if (chunk >= n_chunks)
        return;
    q8_quant32(x[chunk * 32 + lane], xq + chunk * 32, xds + chunk, lane);
}

void cuda_launch_quantize_q8(const float *x, void *xq, void *xds, int n, int cols, cudaStream_t s)
{
    const int64_t chunks = (int64_t)n * (cols / 32);
    pdl_launch(k_quantize_q8, dim3((unsigned)((chunks + 7) / 8)), dim3(256), 0, s, x, (int8_t *)xq, (float2 *)xds,
               chunks);
}

/* ---- the products ---- */

/* Rows a block (each activation load serves them all). Measured on an H100 over the Llama 1B/8B shapes,
 * this beat 1 or 2 rows a warp with the row's chunks walked by one warp by 5-40%. */
#define QG_ROWS 4
/* Warps a block: 4, or for rows of 8192+ values (the FFN down product), whose chunk loop is long, 8 — or 7
 * where that divides the row's chunks evenly (14336 values: two chunks a lane, no lane idle in the second
 * pass; HEARTH_CUDA_GEMV_WIDE_WARPS=8 keeps 8). */
#define QG_WIDE_NCH 256

template <int T> struct qg_block; /* one lane's block of one row: quant words and scale */

/* The integer dot product of a chunk of 4-bit quants (byte j: value j in the low nibble, value j + 16 in
 * the high one; Q4_0R and Q4_KR) with the activations' values 0..15 (x0) and 16..31 (x1). */
__device__ __forceinline__ int qg_dot_nibbles(const uint4 &q, const int4 &x0, const int4 &x1)
{
    const int u[4] = {(int)q.x, (int)q.y, (int)q.z, (int)q.w};
    const int a0[4] = {x0.x, x0.y, x0.z, x0.w}, a1[4] = {x1.x, x1.y, x1.z, x1.w};
    int s = 0;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        s = __dp4a(u[k] & 0x0f0f0f0f, a0[k], s);
        s = __dp4a((u[k] >> 4) & 0x0f0f0f0f, a1[k], s);
    }
    return s;
}

template <> struct qg_block<CUDA_T_Q4_0R> {
    static constexpr int QBYTES = 16; /* quant bytes a chunk */
    uint4 q;
    float d;
    __device__ __forceinline__ void load(const uint8_t *row, int nch, int c)
    {
        q = __ldg((const uint4 *)(row + (size_t)c * 16));
        d = __half2float(__ushort_as_half(__ldg((const unsigned short *)(row + (size_t)nch * 16) + c)));
    }
    /* x0: activation values 0..15 of the block, x1: 16..31 (four int8 a word); Q4_0's offset of 8 goes
     * through the block's activation sum. */
    __device__ __forceinline__ float dot(const int4 &x0, const int4 &x1, float2 ds) const
    {
        return d * (ds.x * (float)qg_dot_nibbles(q, x0, x1) - 8.0f * ds.y);
    }
};

template <> struct qg_block<CUDA_T_Q8_0R> {
    static constexpr int QBYTES = 32;
    uint4 q0, q1;
    float d;
    __device__ __forceinline__ void load(const uint8_t *row, int nch, int c)
    {
        const uint4 *p = (const uint4 *)(row + (size_t)c * 32);
        q0 = __ldg(p);
        q1 = __ldg(p + 1);
        d = __half2float(__ushort_as_half(__ldg((const unsigned short *)(row + (size_t)nch * 32) + c)));
    }
    __device__ __forceinline__ float dot(const int4 &x0, const int4 &x1, float2 ds) const
    {
        int s = __dp4a((int)q0.x, x0.x, 0);
        s = __dp4a((int)q0.y, x0.y, s);
        s = __dp4a((int)q0.z, x0.z, s);
        s = __dp4a((int)q0.w, x0.w, s);
        s = __dp4a((int)q1.x, x1.x, s);
        s = __dp4a((int)q1.y, x1.y, s);
        s = __dp4a((int)q1.z, x1.z, s);
        s = __dp4a((int)q1.w, x1.w, s);
        return d * ds.x * (float)s;
    }
};

/* Q4_K: a chunk is one 32-value sub-block; w = d * sc * q - dmin * m with unsigned 4-bit q, so the
 * product is d * sc * (x scale) * sum(q * xq) - dmin * m * (x scale * sum(xq)), the second factor being
 * the activation block's precomputed sum. */
template <> struct qg_block<CUDA_T_Q4_KR> {
    static constexpr int QBYTES = 16;
    uint4 q;
    float d, m;
    __device__ __forceinline__ void load(const uint8_t *row, int nch, int c)
    {
        q = __ldg((const uint4 *)(row + (size_t)c * 16));
        const unsigned sm = __ldg((const unsigned short *)(row + (size_t)nch * 16) + c);
        const __half2 dd = __ldg((const __half2 *)(row + (size_t)nch * 18) + (c >> 3));
        d = __low2float(dd) * (float)(sm & 0xff);
        m = __high2float(dd) * (float)(sm >> 8);
    }
    __device__ __forceinline__ float dot(const int4 &x0, const int4 &x1, float2 ds) const
    {
        return d * ds.x * (float)qg_dot_nibbles(q, x0, x1) - m * ds.y;
    }
};

/* Q6_K: two 16-value sub-blocks per chunk with int8 scales; the 6-bit quants are rebuilt from their
 * low nibbles and high pairs and made signed (q - 32 fits int8) before the dot products, so no
 * per-16 activation sums are needed. */
template <> struct qg_block<CUDA_T_Q6_KR> {
    static constexpr int QBYTES = 16;
    uint4 q;
    uint2 h;
    int sc0, sc1;
    float d;
    __device__ __forceinline__ void load(const uint8_t *row, int nch, int c)
    {
        q = __ldg((const uint4 *)(row + (size_t)c * 16));
        h = __ldg((const uint2 *)(row + (size_t)nch * 16) + c);
        const unsigned short sc = __ldg((const unsigned short *)(row + (size_t)nch * 24) + c);
        sc0 = (int)(int8_t)(sc & 0xff);
        sc1 = (int)(int8_t)(sc >> 8);
        d = __half2float(__ushort_as_half(__ldg((const unsigned short *)(row + (size_t)nch * 26) + (c >> 3))));
    }
    __device__ __forceinline__ float dot(const int4 &x0, const int4 &x1, float2 ds) const
    {
        const unsigned u[4] = {q.x, q.y, q.z, q.w};
        const int a0[4] = {x0.x, x0.y, x0.z, x0.w}, a1[4] = {x1.x, x1.y, x1.z, x1.w};
        int s0 = 0, s1 = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const unsigned lo = (u[k] & 0x0f0f0f0fu) | (((h.x >> (2 * k)) & 0x03030303u) << 4);
            const unsigned hi = ((u[k] >> 4) & 0x0f0f0f0fu) | (((h.y >> (2 * k)) & 0x03030303u) << 4);
            s0 = __dp4a((int)__vsub4(lo, 0x20202020u), a0[k], s0);
            s1 = __dp4a((int)__vsub4(hi, 0x20202020u), a1[k], s1);
        }
        return d * ds.x * (float)(sc0 * s0 + sc1 * s1);
    }
};

/* The dot products of ROWS weight rows (rp) with NB tokens' int8 activations, summed over the block:
 * the rows' chunks are split over the block's warps (warp w takes chunks w*32+lane, w*32+lane + WARPS*32,
 * ...), so every chunk load of the activations serves ROWS rows and a wide row is read with many loads in
 * flight; the warps' sums are left in part[w][row * NB + token] (the caller adds them up after the
 * barrier this ends with). */
/* Adds chunk c of the ROWS rows (blk) times the NB tokens' activations to acc. */
template <int T, int NB, int ROWS>
__device__ __forceinline__ void qg_dot_chunk(const qg_block<T> (&blk)[ROWS], int c, int nch,
                                             const int8_t *__restrict__ xq, const float2 *__restrict__ xds,
                                             float (&acc)[ROWS][NB])
{
    const size_t cols = (size_t)nch * 32;
#pragma unroll
    for (int b = 0; b < NB; b++) {
        const int4 *xv = (const int4 *)(xq + b * cols + (size_t)c * 32);
        const int4 x0 = __ldg(xv), x1 = __ldg(xv + 1);
        const float2 ds = __ldg(xds + (size_t)b * nch + c);
#pragma unroll
        for (int k = 0; k < ROWS; k++)
            acc[k][b] += blk[k].dot(x0, x1, ds);
    }
}

/* first: this lane's first chunk of the rows (chunk warp * 32 + lane, when below nch), loaded by the
 * caller before it waited for the kernel before (the weights do not depend on it). */
template <int T, int NB, int ROWS, int WARPS>
__device__ __forceinline__ void qg_dot_rows(const uint8_t *const (&rp)[ROWS], int nch, const int8_t *__restrict__ xq,
                                            const float2 *__restrict__ xds, const qg_block<T> (&first)[ROWS],
                                            float (&part)[WARPS][ROWS * NB])
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float acc[ROWS][NB];
#pragma unroll
    for (int k = 0; k < ROWS; k++)
#pragma unroll
        for (int b = 0; b < NB; b++)
            acc[k][b] = 0.0f;
    const int c0 = warp * 32 + lane;
    if (c0 < nch)
        qg_dot_chunk<T, NB, ROWS>(first, c0, nch, xq, xds, acc);
#pragma unroll 2
    for (int c = c0 + WARPS * 32; c < nch; c += WARPS * 32) {
        qg_block<T> blk[ROWS];
#pragma unroll
        for (int k = 0; k < ROWS; k++)
            blk[k].load(rp[k], nch, c);
        qg_dot_chunk<T, NB, ROWS>(blk, c, nch, xq, xds, acc);
    }
    gemv_warp_sums<ROWS, NB, WARPS>(acc, part);
}

/* Block b computes rows b*ROWS .. b*ROWS+ROWS-1 of its matrix (of the set's up to three) for NB tokens.
 *
 * in_ssq (cuda_gemv_norm): the activations are an RMSNorm's input times its weight, quantised without the
 * norm's scale; in_ssq holds the sums of squares of the norm's input per 32 values, so each token's
 * scale 1 / sqrt(mean + eps) is applied to the finished dot products (it is common to the whole row).
 *
 * QG_EPI_NORM (one matrix, rows % 32 == 0): the output is also added to the residual h, and the last of
 * the eight blocks that finish a 32-row group quantises that group of h * g (the next norm's weight)
 * into the int8 activations of the next product, with its sum of squares: residual add + RMSNorm + int8
 * of the next norm need no launch of their own.
 * QG_EPI_ROPE (matrices Q, K, V): RoPE on the Q and K rows (pairs of consecutive rows) and the K and V
 * rows stored into the cache at the token's position: the RoPE and KV-store launch is not needed. */
enum { QG_PLAIN, QG_EPI_NORM, QG_EPI_ROPE };

template <int T, int NB, int ROWS, int WARPS, int EPI>
__global__ void __launch_bounds__(WARPS * 32)
    k_gemv_q8(const gemv_blocks set, size_t row_bytes, int nch, const int8_t *__restrict__ xq,
              const float2 *__restrict__ xds, const cuda_gemv_norm in, const cuda_gemv_epi epi,
              const cuda_gemv_rope rope)
{
    __shared__ float part[WARPS][ROWS * NB];
    __shared__ float sh_scale[NB];
    /* The block's matrix and rows, selected inline (the same selections made by a helper returning them
     * as a struct measured 4% slower on 8B Q8_0). */
    const int bx = (int)blockIdx.x;
    const int m = bx >= set.blk_end[0] ? (bx >= set.blk_end[1] ? 2 : 1) : 0;
    const int b0 = m == 0 ? 0 : m == 1 ? set.blk_end[0] : set.blk_end[1];
    const int rows = m == 0 ? set.rows[0] : m == 1 ? set.rows[1] : set.rows[2];
    const uint8_t *W = m == 0 ? set.W[0] : m == 1 ? set.W[1] : set.W[2];
    const float *bias = m == 0 ? set.bias[0] : m == 1 ? set.bias[1] : set.bias[2];
    float *y = m == 0 ? set.y[0] : m == 1 ? set.y[1] : set.y[2];
    const int r0 = (bx - b0) * ROWS;
    const uint8_t *rp[ROWS];
#pragma unroll
    for (int k = 0; k < ROWS; k++)
        rp[k] = W + (size_t)(r0 + k < rows ? r0 + k : r0) * row_bytes;
    /* The weights do not depend on the kernel before: load this lane's first chunk of each row while it
     * ends (for the 4096-wide products that is all of the lane's weights). */
    const int c0 = (int)(threadIdx.x >> 5) * 32 + (int)(threadIdx.x & 31);
    qg_block<T> first[ROWS];
    if (c0 < nch)
#pragma unroll
        for (int k = 0; k < ROWS; k++)
            first[k].load(rp[k], nch, c0);
    pdl_trigger();
    pdl_wait();
    /* The residual values this thread adds to (thread t: row t / NB, token t % NB), loaded before the dot
     * products so that their latency hides behind them. */
    float h_old = 0.0f;
    if (EPI == QG_EPI_NORM && threadIdx.x < ROWS * NB && r0 + (int)threadIdx.x / NB < rows)
        h_old = epi.h[(size_t)(threadIdx.x % NB) * rows + r0 + threadIdx.x / NB];
    qg_dot_rows<T, NB, ROWS, WARPS>(rp, nch, xq, xds, first, part);
    const int warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    if (in.ssq) {
        for (int b = warp; b < NB; b += WARPS) {
            float ss = 0.0f;
            for (int j = lane; j < nch; j += 32)
                ss += in.ssq[(size_t)b * nch + j];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                ss += __shfl_xor_sync(0xffffffffu, ss, o);
            if (lane == 0)
                sh_scale[b] = 1.0f / sqrtf(ss / (float)(nch * 32) + in.eps);
        }
        __syncthreads();
    }
    /* Warp 0 finishes the outputs, lane t taking row t / NB for token t % NB (ROWS * NB <= 32). */
    if (warp != 0)
        return;
    const int k = lane / NB, b = lane - k * NB;
    const bool live = lane < ROWS * NB && r0 + k < rows;
    float v = 0.0f;
    if (lane < ROWS * NB) {
#pragma unroll
        for (int w = 0; w < WARPS; w++)
            v += part[w][lane];
        if (in.ssq)
            v *= sh_scale[b];
        if (live)
            v += bias ? bias[r0 + k] : 0.0f;
    }
    if (EPI == QG_EPI_ROPE) {
        /* Q, K, V rows of consecutive pairs (2i, 2i + 1): this lane's partner is row k ^ 1, NB lanes away. */
        const float other = __shfl_xor_sync(0xffffffffu, v, NB);
        const int row = r0 + k, d = row % rope.head_dim;
        if (m < 2 && d < rope.n_rot) {
            const float2 cs = rope.table[b * (rope.n_rot >> 1) + (d >> 1)];
            v = (d & 1) ? other * cs.y + v * cs.x : v * cs.x - other * cs.y;
        }
        if (live && m > 0) {
            void *cache = m == 1 ? rope.kc : rope.vc;
            const size_t at = (size_t)rope.pos[b] * rows + row;
            if (rope.f16)
                ((__half *)cache)[at] = __float2half_rn(v);
            else
                ((float *)cache)[at] = v;
        }
    }
    if (live) {
        y[(size_t)b * rows + r0 + k] = v;
        if (EPI == QG_EPI_NORM)
            epi.h[(size_t)b * rows + r0 + k] = h_old + v;
    }
    if (EPI != QG_EPI_NORM)
        return;
    /* Only warp 0 wrote: its writes are ordered before the block's count by lane 0's fence. */
    __syncwarp();
    const int grp = r0 >> 5;
    unsigned done = 0;
    if (lane == 0) {
        __threadfence();
        done = atomicAdd(epi.counters + grp, 1u);
        if (done == 32 / ROWS - 1)
            epi.counters[grp] = 0; /* ready for the next launch */
    }
    if (__shfl_sync(0xffffffffu, done, 0) != 32 / ROWS - 1)
        return;
    __threadfence();
    const int ngrp = rows >> 5, i = grp * 32 + lane;
    for (int t = 0; t < NB; t++) {
        const float hv = __ldcg(epi.h + (size_t)t * rows + i);
        float ss = hv * hv;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            ss += __shfl_xor_sync(0xffffffffu, ss, o);
        q8_quant32(hv * epi.g[i], epi.xq + (size_t)t * rows + grp * 32, epi.xds + (size_t)t * ngrp + grp, lane);
        if (lane == 0)
            epi.ssq[(size_t)t * ngrp + grp] = ss;
    }
}

/* What a launch's epilogue needs (the members its EPI does not use are ignored). */
struct qg_epilogue {
    cuda_gemv_epi norm;
    cuda_gemv_rope rope;
};

template <int T, int WARPS, int EPI>
static void launch(const gemv_blocks &set, int nblk, int cols, size_t row_bytes, const int8_t *xq, const float2 *xds,
                   int n, const cuda_gemv_norm &in, const qg_epilogue &ep, cudaStream_t s)
{
    const int nch = cols / 32;
    const dim3 grid((unsigned)nblk), block(WARPS * 32);
    for (int done = 0; done < n;) {
        const int rem = n - done;
        const int8_t *xs = xq + (size_t)done * cols;
        const float2 *ds = xds + (size_t)done * nch;
        const gemv_blocks cur = gemv_blocks_from(set, done);
        /* The norm's sums are per token too (epilogues take batches that one launch covers whole). */
        cuda_gemv_norm ci = in;
        if (ci.ssq)
            ci.ssq += (size_t)done * nch;
        if (rem >= 8) {
            pdl_launch(k_gemv_q8<T, 8, QG_ROWS, WARPS, EPI>, grid, block, 0, s, cur, row_bytes, nch, xs, ds, ci, ep.norm,
                       ep.rope);
            done += 8;
        } else if (rem >= 4) {
            pdl_launch(k_gemv_q8<T, 4, QG_ROWS, WARPS, EPI>, grid, block, 0, s, cur, row_bytes, nch, xs, ds, ci, ep.norm,
                       ep.rope);
            done += 4;
        } else if (rem >= 2) {
            pdl_launch(k_gemv_q8<T, 2, QG_ROWS, WARPS, EPI>, grid, block, 0, s, cur, row_bytes, nch, xs, ds, ci, ep.norm,
                       ep.rope);
            done += 2;
        } else {
            pdl_launch(k_gemv_q8<T, 1, QG_ROWS, WARPS, EPI>, grid, block, 0, s, cur, row_bytes, nch, xs, ds, ci, ep.norm,
                       ep.rope);
            done += 1;
        }
    }
}

template <int T, int EPI>
static void launch_shape(const gemv_blocks &set, int nblk, int cols, size_t row_bytes, const int8_t *xq,
                         const float2 *xds, int n, const cuda_gemv_norm &in, const qg_epilogue &ep, cudaStream_t s)
{
    static int wide = -1;
    if (wide < 0) {
        const char *env = getenv("HEARTH_CUDA_GEMV_WIDE_WARPS");
        wide = env && atoi(env) == 8 ? 8 : 7;
    }
    const int nch = cols / 32;
    if (nch >= QG_WIDE_NCH && wide == 7 && nch % (7 * 32) == 0)
        launch<T, 7, EPI>(set, nblk, cols, row_bytes, xq, xds, n, in, ep, s);
    else if (nch >= QG_WIDE_NCH)
        launch<T, 8, EPI>(set, nblk, cols, row_bytes, xq, xds, n, in, ep, s);
    else
        launch<T, 4, EPI>(set, nblk, cols, row_bytes, xq, xds, n, in, ep, s);
}

template <int EPI>
static int launch_type(uint32_t rtype, const gemv_blocks &set, int nblk, int cols, size_t row_bytes, const int8_t *q,
                       const float2 *d, int n, const cuda_gemv_norm &in, const qg_epilogue &ep, cudaStream_t s)
{
    if (rtype == CUDA_T_Q4_0R)
        launch_shape<CUDA_T_Q4_0R, EPI>(set, nblk, cols, row_bytes, q, d, n, in, ep, s);
    else if (rtype == CUDA_T_Q8_0R)
        launch_shape<CUDA_T_Q8_0R, EPI>(set, nblk, cols, row_bytes, q, d, n, in, ep, s);
    else if (rtype == CUDA_T_Q4_KR)
        launch_shape<CUDA_T_Q4_KR, EPI>(set, nblk, cols, row_bytes, q, d, n, in, ep, s);
    else if (rtype == CUDA_T_Q6_KR)
        launch_shape<CUDA_T_Q6_KR, EPI>(set, nblk, cols, row_bytes, q, d, n, in, ep, s);
    else
        return -1;
    return 0;
}

int cuda_launch_gemv_q8_multi(uint32_t rtype, const struct cuda_gemv_set *in, size_t row_bytes, int cols,
                              const void *xq, const void *xds, int n, const struct cuda_gemv_norm *norm,
                              const struct cuda_gemv_epi *epi, const struct cuda_gemv_rope *rope, cudaStream_t s)
{
    if (in->nm < 1 || in->nm > CUDA_GEMV_MULTI || (epi && rope))
        return -1;
    /* The residual epilogue takes one matrix whose rows fill whole 32-row groups; the RoPE one Q, K and V
     * whose heads are whole blocks of rows; both take token rows that one launch covers (at most 8). */
    if (epi && (in->nm != 1 || in->rows[0] % 32 || n > 8))
        return -1;
    if (rope && (in->nm != 3 || n > 8 || rope->head_dim % QG_ROWS || rope->n_rot % 2 || rope->n_rot > rope->head_dim ||
                 in->rows[0] % rope->head_dim || in->rows[1] % rope->head_dim || in->rows[1] != in->rows[2]))
        return -1;
    gemv_blocks set;
    const int nblk = gemv_blocks_make(in, QG_ROWS, &set);
    const int8_t *q = (const int8_t *)xq;
    const float2 *d = (const float2 *)xds;
    const cuda_gemv_norm no_norm = {NULL, 0.0f};
    const cuda_gemv_norm &nm = norm ? *norm : no_norm;
    qg_epilogue ep;
    memset(&ep, 0, sizeof ep);
    if (epi) {
        ep.norm = *epi;
        return launch_type<QG_EPI_NORM>(rtype, set, nblk, cols, row_bytes, q, d, n, nm, ep, s);
    }
    if (rope) {
        ep.rope = *rope;
        return launch_type<QG_EPI_ROPE>(rtype, set, nblk, cols, row_bytes, q, d, n, nm, ep, s);
    }
    return launch_type<QG_PLAIN>(rtype, set, nblk, cols, row_bytes, q, d, n, nm, ep, s);
}

int cuda_launch_gemv_q8(uint32_t rtype, const void *W, size_t row_bytes, int rows, int cols, const void *xq,
                        const void *xds, const float *bias, float *y, int n, const struct cuda_gemv_norm *norm,
                        cudaStream_t s)
{
    const cuda_gemv_set set = gemv_set_one(W, bias, y, rows);
    return cuda_launch_gemv_q8_multi(rtype, &set, row_bytes, cols, xq, xds, n, norm, NULL, NULL, s);
}

/* ---- repacking at upload: one thread per (row, 32-value chunk), from the file's blocks (src, rows of
 * the format's row size) into the layouts of cuda_internal.h (dst zeroed, so padding stays 0). Done on
 * the GPU because the byte shuffling of an 8B model takes seconds on one CPU core. ---- */

__device__ __forceinline__ void rp_nibbles(const uint8_t *q, uint8_t *out)
{
    for (int k = 0; k < 16; k++)
        out[k] = (uint8_t)((q[k] & 15) | (q[k + 16] & 15) << 4);
}

__global__ void k_repack(uint32_t type, const uint8_t *__restrict__ src, size_t src_rb, int rows, int nch,
                         uint8_t *__restrict__ dst, size_t dst_rb)
{
    const int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (int64_t)rows * nch)
        return;
    const int r = (int)(id / nch), c = (int)(id % nch);
    const uint8_t *row = src + (size_t)r * src_rb;
    uint8_t *o = dst + (size_t)r * dst_rb;
    if (type == DT_Q4_0 || type == DT_Q8_0) {
        const int bsz = type == DT_Q4_0 ? 18 : 34, qb = bsz - 2;
        const uint8_t *b = row + (size_t)c * bsz;
        for (int k = 0; k < qb; k++)
            o[(size_t)c * qb + k] = b[2 + k];
        o[(size_t)nch * qb + 2 * c] = b[0];
        o[(size_t)nch * qb + 2 * c + 1] = b[1];
        return;
    }
    const int sb = c >> 3, j = c & 7;
    uint8_t q[32];
    if (type == DT_Q4_K) {
        const uint8_t *b = row + (size_t)sb * 144, *sm = b + 4, *qs = b + 16;
        int sc, m;
        if (j < 4) {
            sc = sm[j] & 63;
            m = sm[j + 4] & 63;
        } else {
            sc = (sm[j + 4] & 15) | ((sm[j - 4] >> 6) << 4);
            m = (sm[j + 4] >> 4) | ((sm[j] >> 6) << 4);
        }
        for (int l = 0; l < 32; l++)
            q[l] = (uint8_t)((qs[32 * (j >> 1) + l] >> (4 * (j & 1))) & 15);
        rp_nibbles(q, o + (size_t)c * 16);
        o[(size_t)nch * 16 + 2 * c] = (uint8_t)sc;
        o[(size_t)nch * 16 + 2 * c + 1] = (uint8_t)m;
        if (j == 0)
            for (int k = 0; k < 4; k++) /* d, dmin */
                o[(size_t)nch * 18 + 4 * sb + k] = b[k];
        return;
    }
    /* Q6_K: chunk j covers values 32j..32j+31 of the super-block, i.e. half j / 4 (128 values), whose
     * value 32 * (j % 4) + l has its low nibble in ql (bytes l or l + 32, low or high nibble) and its
     * high pair in qh[l] at bit 2 * (j % 4). */
    const uint8_t *b = row + (size_t)sb * 210;
    const int half = j >> 2, jj = j & 3;
    const uint8_t *ql = b + 64 * half + 32 * (jj & 1), *qh = b + 128 + 32 * half;
    for (int l = 0; l < 32; l++)
        q[l] = (uint8_t)(((ql[l] >> (4 * (jj >> 1))) & 15) | ((qh[l] >> (2 * jj)) & 3) << 4);
    rp_nibbles(q, o + (size_t)c * 16);
    uint8_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < 32; k++) {
        const int kk = k & 15; /* value kk of its 16: word k / 16, byte kk % 4, bit pair kk / 4 */
        h[4 * (k >> 4) + (kk & 3)] |= (uint8_t)((q[k] >> 4) << (2 * (kk >> 2)));
    }
    for (int k = 0; k < 8; k++)
        o[(size_t)nch * 16 + 8 * (size_t)c + k] = h[k];
    o[(size_t)nch * 24 + 2 * c] = b[192 + 2 * j];
    o[(size_t)nch * 24 + 2 * c + 1] = b[192 + 2 * j + 1];
    if (j == 0) {
        o[(size_t)nch * 26 + 2 * sb] = b[208];
        o[(size_t)nch * 26 + 2 * sb + 1] = b[209];
    }
}

int cuda_launch_repack(uint32_t type, const void *src, int rows, int64_t cols, uint32_t rtype, void *dst,
                       cudaStream_t s)
{
    if (type != DT_Q4_0 && type != DT_Q8_0 && type != DT_Q4_K && type != DT_Q6_K)
        return -1;
    const int nch = (int)(cols / 32);
    const int64_t n = (int64_t)rows * nch;
    k_repack<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(type, (const uint8_t *)src, dtype_row_bytes(type, cols), rows,
                                                         nch, (uint8_t *)dst, cuda_repacked_row_bytes(rtype, cols));
    return 0;
}
