/* cuda_attention_prefill.cu — causal attention for prompt batches, tiled as in FlashAttention: a block
 * takes 64 query rows (a run of tokens times the query heads that share one KV head), and walks the
 * cache in tiles of 64 positions held in shared memory, so each K and V row is read from memory once per
 * block rather than once per query token. Scores, an online softmax per row and the weighted V sums are
 * float32 on the CUDA cores, from the cache's own values (F16 or F32), so results match the one-token
 * kernels to rounding. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"

#define PF_ROWS 64    /* query rows a block: tokens x heads of one KV head */
#define PF_COLS 64    /* cache positions a tile */
#define PF_THREADS 256 /* 16 row groups of 4 rows x 16 column groups */

template <int HD> struct pf_smem {
    float q[PF_ROWS][HD + 1]; /* +1: threads reading neighbouring rows or columns hit distinct banks */
    float k[PF_COLS][HD + 1];
    float v[PF_COLS][HD + 1];
    float p[PF_ROWS][PF_COLS + 1];
    int32_t row_pos[PF_ROWS];
    int32_t max_pos;
};

template <int F16, int HD>
__global__ void __launch_bounds__(PF_THREADS)
    k_attention_prefill(const float *__restrict__ q, const void *__restrict__ kc, const void *__restrict__ vc,
                        float *__restrict__ out, const int32_t *__restrict__ pos, int n, int n_heads, int n_kv_heads,
                        float scale, int tokens_per_block)
{
    extern __shared__ float4 pf_raw[];
    pf_smem<HD> &sm = *reinterpret_cast<pf_smem<HD> *>(pf_raw);
    const int G = n_heads / n_kv_heads, kvh = blockIdx.y, t0 = blockIdx.x * tokens_per_block;
    const int tid = threadIdx.x, rg = tid >> 4, cg = tid & 15; /* rows 4rg..4rg+3; columns cg + 16j */
    const int kv_dim = n_kv_heads * HD;
    const int n_rows = tokens_per_block * G;
    /* Row r is head h0 + r / tokens_per_block of token t0 + r % tokens_per_block. */
    if (tid == 0)
        sm.max_pos = -1;
    __syncthreads();
    for (int r = tid; r < PF_ROWS; r += PF_THREADS) {
        const int tq = r % tokens_per_block, tok = t0 + tq;
        const bool ok = r < n_rows && tok < n;
        sm.row_pos[r] = ok ? pos[tok] : -1;
        if (ok)
            atomicMax(&sm.max_pos, pos[tok]);
    }
    for (int e = tid; e < PF_ROWS * HD; e += PF_THREADS) {
        const int r = e / HD, d = e - r * HD;
        const int tq = r % tokens_per_block, tok = t0 + tq, h = kvh * G + r / tokens_per_block;
        sm.q[r][d] = r < n_rows && tok < n ? q[((size_t)tok * n_heads + h) * HD + d] * scale : 0.0f;
    }
    __syncthreads();
    const int max_pos = sm.max_pos;
    constexpr int DPT = HD / 16; /* output dimensions a thread: cg + 16j */
    float acc[4][DPT], m[4], l[4];
    int rpos[4];
#pragma unroll
    for (int a = 0; a < 4; a++) {
        m[a] = -INFINITY;
        l[a] = 0.0f;
        rpos[a] = sm.row_pos[4 * rg + a];
#pragma unroll
        for (int j = 0; j < DPT; j++)
            acc[a][j] = 0.0f;
    }
    for (int c0 = 0; c0 <= max_pos; c0 += PF_COLS) {
        /* The tile's K and V rows, as float. */
        for (int e = tid; e < PF_COLS * HD; e += PF_THREADS) {
            const int c = e / HD, d = e - c * HD, p = c0 + c;
            float kv = 0.0f, vv = 0.0f;
            if (p <= max_pos) {
                const size_t off = (size_t)p * kv_dim + (size_t)kvh * HD + d;
                if (F16) {
                    kv = __half2float(((const __half *)kc)[off]);
                    vv = __half2float(((const __half *)vc)[off]);
                } else {
                    kv = ((const float *)kc)[off];
                    vv = ((const float *)vc)[off];
                }
            }
            sm.k[c][d] = kv;
            sm.v[c][d] = vv;
        }
        __syncthreads();
        /* Scores of rows 4rg.. against columns cg + 16j. */
        float s[4][4];
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int j = 0; j < 4; j++)
                s[a][j] = 0.0f;
#pragma unroll 8
        for (int d = 0; d < HD; d++) {
            float qv[4], kv[4];
#pragma unroll
            for (int a = 0; a < 4; a++)
                qv[a] = sm.q[4 * rg + a][d];
#pragma unroll
            for (int j = 0; j < 4; j++)
                kv[j] = sm.k[cg + 16 * j][d];
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    s[a][j] += qv[a] * kv[j];
        }
        /* Causal mask, the rows' running maxima and sums (a row's 16 column groups are one half-warp). */
#pragma unroll
        for (int a = 0; a < 4; a++) {
            float mx = m[a];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                if (c0 + cg + 16 * j > rpos[a])
                    s[a][j] = -INFINITY;
                mx = fmaxf(mx, s[a][j]);
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            /* A row with no position yet (padding rows) keeps m = -inf: nothing to weigh. */
            const float corr = mx == -INFINITY ? 1.0f : expf(m[a] - mx);
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float e = s[a][j] == -INFINITY ? 0.0f : expf(s[a][j] - mx);
                sm.p[4 * rg + a][cg + 16 * j] = e;
                sum += e;
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1)
                sum += __shfl_xor_sync(0xffffffffu, sum, o);
            l[a] = l[a] * corr + sum;
            m[a] = mx;
#pragma unroll
            for (int j = 0; j < DPT; j++)
                acc[a][j] *= corr;
        }
        __syncwarp();
        /* Weighted V rows: P's row segments are written by this half-warp's own threads. */
        const int cmax = min(PF_COLS, max_pos - c0 + 1);
#pragma unroll 4
        for (int c = 0; c < cmax; c++) {
            float pv[4], vv[DPT];
#pragma unroll
            for (int a = 0; a < 4; a++)
                pv[a] = sm.p[4 * rg + a][c];
#pragma unroll
            for (int j = 0; j < DPT; j++)
                vv[j] = sm.v[c][cg + 16 * j];
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int j = 0; j < DPT; j++)
                    acc[a][j] += pv[a] * vv[j];
        }
        __syncthreads(); /* before the next tile overwrites K, V and P */
    }
#pragma unroll
    for (int a = 0; a < 4; a++) {
        const int r = 4 * rg + a, tq = r % tokens_per_block, tok = t0 + tq;
        if (r >= n_rows || tok >= n)
            continue;
        const int h = kvh * G + r / tokens_per_block;
        float *o = out + ((size_t)tok * n_heads + h) * HD;
        const float inv = 1.0f / l[a];
#pragma unroll
        for (int j = 0; j < DPT; j++)
            o[cg + 16 * j] = acc[a][j] * inv;
    }
}

template <int F16, int HD>
static int pf_launch(const float *q, const void *kc, const void *vc, float *out, const int32_t *pos, int n, int n_heads,
                     int n_kv_heads, float scale, cudaStream_t s)
{
    const int G = n_heads / n_kv_heads, tpb = PF_ROWS / G;
    const size_t smem = sizeof(pf_smem<HD>);
    /* The opt-in above 48 KiB of shared memory (a cheap host call; set on every launch so that each GPU
     * in use has it). */
    if (cudaFuncSetAttribute(k_attention_prefill<F16, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    const dim3 grid((unsigned)((n + tpb - 1) / tpb), (unsigned)n_kv_heads);
    k_attention_prefill<F16, HD><<<grid, PF_THREADS, smem, s>>>(q, kc, vc, out, pos, n, n_heads, n_kv_heads, scale, tpb);
    return 0;
}

int cuda_launch_attention_prefill(const float *q, const void *kc, const void *vc, int f16, float *out,
                                  const int32_t *pos, int n, int n_heads, int n_kv_heads, int head_dim, float scale,
                                  cudaStream_t s)
{
    if (n_kv_heads <= 0 || n_heads % n_kv_heads || n_heads / n_kv_heads > PF_ROWS)
        return -1;
    if (head_dim == 128)
        return f16 ? pf_launch<1, 128>(q, kc, vc, out, pos, n, n_heads, n_kv_heads, scale, s)
                   : pf_launch<0, 128>(q, kc, vc, out, pos, n, n_heads, n_kv_heads, scale, s);
    if (head_dim == 64)
        return f16 ? pf_launch<1, 64>(q, kc, vc, out, pos, n, n_heads, n_kv_heads, scale, s)
                   : pf_launch<0, 64>(q, kc, vc, out, pos, n, n_heads, n_kv_heads, scale, s);
    return -1;
}
