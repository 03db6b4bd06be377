/* kernels_x86.h — the x86 SIMD dot-product kernels, written once and compiled twice: by
 * kernels_avx2.c (AVX2 + FMA + F16C) and by kernels_avx512.c, where the 8-bit products use AVX-512
 * VNNI's vpdpbusd on 256-bit registers (one instruction instead of maddubs + madd, and no int16
 * saturation). The including file defines X86_NAME(x) to give the functions distinct names.
 *
 * Integer sums per block are exact, so results match the scalar kernels in kernels_scalar.c up to
 * the order of the float accumulation. Not a standalone header: include only from those two files. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"

/* Eight int32 sums, each of four unsigned-by-signed byte products. */
static inline __m256i x86_dot_us8(__m256i u, __m256i s)
{
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* Signed-by-signed: move x's sign onto y so the unsigned operand is |x| (never saturates: the
 * quantizers keep values within -127..127). */
static inline __m256i x86_dot_ss8(__m256i x, __m256i y)
{
    return x86_dot_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* acc + eight int32 sums of four unsigned-by-signed byte products. maddubs cannot saturate for the
 * callers below (unsigned operand <= 63). */
static inline __m256i x86_dpbusd(__m256i acc, __m256i u, __m256i s)
{
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

static inline float x86_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float x86_h2f(uint16_t h) { return _cvtsh_ss(h); }

/* AVX-512 VNNI builds use 512-bit decode kernels for Q4_0 (dot_q4_0_t instead of dot_q4_0) and Q4_K
 * (dot_q4_k_t instead of dot_q4_k), each with extras in its activation row. */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define X86_ZMM_VNNI 1
#else
#define X86_ZMM_VNNI 0
#endif

/* Decode streams each weight row from memory once. The file's pages are 4 KiB, and hardware
 * prefetchers stop at page boundaries, so the row kernels also prefetch this many bytes ahead
 * (which runs on into the next rows of the thread's chunk). 1 KiB left the kernels waiting on
 * memory latency: one thread from DRAM on 4096-wide rows, Q4_0 19.4 -> 21.0 GB/s and Q4_K
 * 19.4 -> 20.4 GB/s with 4 KiB. */
#ifndef X86_PREFETCH_AHEAD
#define X86_PREFETCH_AHEAD 4096
#endif
#ifndef X86_PREFETCH_HINT
#define X86_PREFETCH_HINT _MM_HINT_T0
#endif
/* Q6_K rows are the largest per weight of the 4-6 bit formats, and on 14336-wide rows (an 8B Q4_K_M
 * model's ffn_down) the lines fetched 4 KiB ahead, with the weight row and the activation row, no
 * longer left the activations in L1. 2 KiB ahead: `bench/weight-stream.sh BUILD
 * /tmp/llama-8b-q4_k_m.gguf --type Q6_K --rounds 3`, builds alternating, kernels/read 0.86-0.89 at 4
 * KiB, 0.91-0.95 at 2 KiB; the 1B file's narrower Q6_K rows the same either way (0.98-1.02), and the
 * Q4_K rows gained nothing from 2 KiB. */
#ifndef X86_PREFETCH_AHEAD_Q6_K
#define X86_PREFETCH_AHEAD_Q6_K 2048
#endif

/* Prefetches the cache lines of [p + ahead, p + ahead + bytes). */
static inline void x86_prefetch_at(const void *p, int ahead, int bytes)
{
    for (int o = 0; o < bytes; o += 64)
        _mm_prefetch((const char *)p + ahead + o, X86_PREFETCH_HINT);
}

/* The same, X86_PREFETCH_AHEAD bytes ahead. */
static inline void x86_prefetch_ahead(const void *p, int bytes)
{
    x86_prefetch_at(p, X86_PREFETCH_AHEAD, bytes);
}

/* Q4_0 block's 32 quants as signed bytes (-8..7) in element order. */
static inline __m256i x86_q4_0_bytes(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

/* Q4_0 row kernel. The quants stay unsigned (0..15) for the byte products and the +8 comes back
 * out as -8 x the activation block's sum, which is cheaper than the two sign fix-ups a signed
 * product needs. That sum and the activation scale as a float depend on the activation alone, so
 * the Q4_0 activation quantizer stores them after the row (cpu_act_q4_0_extra) once per matmul
 * instead of every row recomputing them: per block the kernel then loads the 16 quant bytes into
 * both halves of a register, shifts the upper half by 4 and masks (the nibbles in element order),
 * and starts vpdpbusd from the stored correction. Four blocks per step on four accumulator
 * chains, their four weight scales converted and multiplied by the activation scales in one
 * vector. (Four rows per call sharing the activation work was faster in cache but slower from
 * memory: four interleaved row streams.) */
static inline __m256i x86_q4_0_nibbles(const struct block_q4_0 *x)
{
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x->qs));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(15));
}

/* Eight lanes whose total is the block's integer dot product: the correction rides in lane 0 (the
 * lanes share one scale and are summed at the end, so only the total matters). */
static inline __m256i x86_q4_0_isum(const struct block_q4_0 *x, const struct block_q8_0 *y, const int32_t *corr)
{
    return x86_dpbusd(_mm256_zextsi128_si256(_mm_cvtsi32_si128(*corr)), x86_q4_0_nibbles(x),
                      _mm256_loadu_si256((const __m256i *)y->qs));
}

#if !X86_ZMM_VNNI
static float X86_NAME(dot_q4_0)(int64_t n, const void *w, const void *a)
{
    const struct block_q4_0 *x = w;
    const struct block_q8_0 *y = a;
    const int64_t nb = n / QUANT_QK;
    const struct cpu_act_q4_0_extra ex = cpu_act_q4_0_extra(a, n);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
           acc3 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        x86_prefetch_ahead(x + b, 2 * 64);
        /* The four f16 scales gathered in a general register (integer ALUs; inserting them into
         * a vector one by one took vector slots the block math needs). */
        const uint64_t dh = (uint64_t)x[b].d | (uint64_t)x[b + 1].d << 16 | (uint64_t)x[b + 2].d << 32 |
                            (uint64_t)x[b + 3].d << 48;
        const __m128 d4 = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)dh)), _mm_loadu_ps(ex.dy + b));
        const __m256 d = _mm256_insertf128_ps(_mm256_castps128_ps256(d4), d4, 1);
        const __m256i p0 = x86_q4_0_isum(x + b, y + b, ex.corr + b);
        const __m256i p1 = x86_q4_0_isum(x + b + 1, y + b + 1, ex.corr + b + 1);
        const __m256i p2 = x86_q4_0_isum(x + b + 2, y + b + 2, ex.corr + b + 2);
        const __m256i p3 = x86_q4_0_isum(x + b + 3, y + b + 3, ex.corr + b + 3);
        acc0 = _mm256_fmadd_ps(_mm256_permute_ps(d, 0x00), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_permute_ps(d, 0x55), _mm256_cvtepi32_ps(p1), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_permute_ps(d, 0xaa), _mm256_cvtepi32_ps(p2), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_permute_ps(d, 0xff), _mm256_cvtepi32_ps(p3), acc3);
    }
    for (; b < nb; b++) {
        const __m256i p = x86_q4_0_isum(x + b, y + b, ex.corr + b);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b].d) * ex.dy[b]), _mm256_cvtepi32_ps(p), acc0);
    }
    return x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}
#endif

static float X86_NAME(dot_q8_0)(int64_t n, const void *w, const void *a)
{
    const struct block_q8_0 *x = w;
    const struct block_q8_0 *y = a;
    const int64_t nb = n / QUANT_QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i p0 = x86_dot_ss8(_mm256_loadu_si256((const __m256i *)x[b].qs),
                                       _mm256_loadu_si256((const __m256i *)y[b].qs));
        const __m256i p1 = x86_dot_ss8(_mm256_loadu_si256((const __m256i *)x[b + 1].qs),
                                       _mm256_loadu_si256((const __m256i *)y[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b].d) * x86_h2f(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b + 1].d) * x86_h2f(y[b + 1].d)), _mm256_cvtepi32_ps(p1),
                               acc1);
    }
    for (; b < nb; b++) {
        const __m256i p0 = x86_dot_ss8(_mm256_loadu_si256((const __m256i *)x[b].qs),
                                       _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b].d) * x86_h2f(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    }
    return x86_hsum_ps(_mm256_add_ps(acc0, acc1));
}

static float X86_NAME(dot_q4_1)(int64_t n, const void *w, const void *a)
{
    const struct block_q4_1 *x = w;
    const struct block_q8_1 *y = a;
    const int64_t nb = n / QUANT_QK;
    __m256 acc = _mm256_setzero_ps();
    float offs = 0;
    for (int64_t b = 0; b < nb; b++) {
        const __m128i q = _mm_loadu_si128((const __m128i *)x[b].qs);
        const __m256i qq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(15));
        const __m256i p = x86_dot_us8(qq, _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b].d) * x86_h2f(y[b].d)), _mm256_cvtepi32_ps(p), acc);
        offs += x86_h2f(x[b].m) * x86_h2f(y[b].s);
    }
    return x86_hsum_ps(acc) + offs;
}

/* Q5_0/Q5_1: the fifth bits spread to bit 4 of each byte (element j gets bit j of qh). */
static inline __m256i x86_q5_high(const uint8_t *qh4)
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    /* Byte k of the broadcast word goes to bytes 8k..8k+7, then each byte keeps its own bit. */
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(16));
}

static float X86_NAME(dot_q5_0)(int64_t n, const void *w, const void *a)
{
    const struct block_q5_0 *x = w;
    const struct block_q8_0 *y = a;
    const int64_t nb = n / QUANT_QK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m128i q = _mm_loadu_si128((const __m128i *)x[b].qs);
        __m256i qq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(15));
        qq = _mm256_sub_epi8(_mm256_or_si256(qq, x86_q5_high(x[b].qh)), _mm256_set1_epi8(16));
        const __m256i p = x86_dot_ss8(qq, _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b].d) * x86_h2f(y[b].d)), _mm256_cvtepi32_ps(p), acc);
    }
    return x86_hsum_ps(acc);
}

static float X86_NAME(dot_q5_1)(int64_t n, const void *w, const void *a)
{
    const struct block_q5_1 *x = w;
    const struct block_q8_1 *y = a;
    const int64_t nb = n / QUANT_QK;
    __m256 acc = _mm256_setzero_ps();
    float offs = 0;
    for (int64_t b = 0; b < nb; b++) {
        const __m128i q = _mm_loadu_si128((const __m128i *)x[b].qs);
        __m256i qq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(15));
        qq = _mm256_or_si256(qq, x86_q5_high(x[b].qh));
        const __m256i p = x86_dot_us8(qq, _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b].d) * x86_h2f(y[b].d)), _mm256_cvtepi32_ps(p), acc);
        offs += x86_h2f(x[b].m) * x86_h2f(y[b].s);
    }
    return x86_hsum_ps(acc) + offs;
}

/* Q4_K/Q5_K scale unpacking, inlined here (the scalar twin is cpu_q4_k_scales). */
static inline void x86_q4_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 15) | (s[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

/* Q4_K/Q5_K scales and mins as eight bytes each, unpacked in general registers: the byte-wise
 * store-then-vector-load of x86_q4_k_scales stalls store forwarding, which cost the decode kernel
 * about a fifth of its time. Byte j of *sc is scale j, byte j of *mn is min j. */
static inline void x86_q4_k_scales64(const uint8_t *s, uint64_t *sc, uint64_t *mn)
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
    const uint32_t sc_hi = (u2 & k4) | ((u0 >> 6) & k2) << 4;
    const uint32_t mn_hi = ((u2 >> 4) & k4) | ((u1 >> 6) & k2) << 4;
    *sc = (u0 & k6) | (uint64_t)sc_hi << 32;
    *mn = (u1 & k6) | (uint64_t)mn_hi << 32;
}

/* A Q4_K/Q5_K block's eight scales and eight mins as int16 words. */
static inline void x86_q4_k_scale_words(const uint8_t *s, __m128i *sc, __m128i *mn)
{
    uint64_t sc64, mn64;
    x86_q4_k_scales64(s, &sc64, &mn64);
    *sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc64));
    *mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn64));
}

/* A Q4_K/Q5_K block's [d, dmin] (adjacent f16 words at the block's start) times the activation
 * block's scale, from one conversion: two scalar f16 conversions, products and broadcasts per block
 * took vector slots the block math needs (one thread, Q4_K rows in cache: AVX-512 +4-6%). */
_Static_assert(offsetof(struct block_q2_k, dmin) == offsetof(struct block_q2_k, d) + 2, "Q2_K d, dmin adjacent");
_Static_assert(offsetof(struct block_q4_k, dmin) == offsetof(struct block_q4_k, d) + 2, "Q4_K d, dmin adjacent");
_Static_assert(offsetof(struct block_q5_k, dmin) == offsetof(struct block_q5_k, d) + 2, "Q5_K d, dmin adjacent");
static inline __m128 x86_k_scales_dy(const uint16_t *d_dmin, const float *dy)
{
    int32_t dd;
    memcpy(&dd, d_dmin, sizeof dd);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(dd)), _mm_broadcast_ss(dy));
}

/* acc + pairwise int16 products summed to int32 (vpdpwssd with VNNI, madd + add without). */
static inline __m256i x86_madd_acc(__m256i acc, __m256i a, __m256i b)
{
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

/* Shuffle controls that broadcast int16 lane j of a 128-bit half to all of it (j = 0..7). */
#define X86_BCAST16_CTL(j) _mm256_set1_epi16((short)((2 * (j) + 1) << 8 | 2 * (j)))

#if !X86_ZMM_VNNI
static float X86_NAME(dot_q4_k)(int64_t n, const void *w, const void *a)
{
    const struct block_q4_k *x = w;
    const struct block_q8_k *y = a;
    const int64_t nb = n / QUANT_QKK;
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i ctl[8] = {X86_BCAST16_CTL(0), X86_BCAST16_CTL(1), X86_BCAST16_CTL(2), X86_BCAST16_CTL(3),
                            X86_BCAST16_CTL(4), X86_BCAST16_CTL(5), X86_BCAST16_CTL(6), X86_BCAST16_CTL(7)};
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        x86_prefetch_ahead(x + b, (int)sizeof *x);
        __m128i s16, m16;
        x86_q4_k_scale_words(x[b].scales, &s16, &m16);
        const __m256i sc = _mm256_broadcastsi128_si256(s16);
        const __m256i mm = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * r));
            const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * r)));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * r + 32)));
            sumi = x86_madd_acc(sumi, plo, _mm256_shuffle_epi8(sc, ctl[2 * r]));
            sumi = x86_madd_acc(sumi, phi, _mm256_shuffle_epi8(sc, ctl[2 * r + 1]));
        }
        const __m128 f = x86_k_scales_dy(&x[b].d, &y[b].d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(f)),
                               _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums), mm)),
                               accm);
    }
    return x86_hsum_ps(_mm256_sub_ps(acc, accm));
}
#endif

static float X86_NAME(dot_q5_k)(int64_t n, const void *w, const void *a)
{
    const struct block_q5_k *x = w;
    const struct block_q8_k *y = a;
    const int64_t nb = n / QUANT_QKK;
    const __m256i m4 = _mm256_set1_epi8(15), b16 = _mm256_set1_epi8(16);
    const __m256i ctl[8] = {X86_BCAST16_CTL(0), X86_BCAST16_CTL(1), X86_BCAST16_CTL(2), X86_BCAST16_CTL(3),
                            X86_BCAST16_CTL(4), X86_BCAST16_CTL(5), X86_BCAST16_CTL(6), X86_BCAST16_CTL(7)};
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m128i s16, m16;
        x86_q4_k_scale_words(x[b].scales, &s16, &m16);
        const __m256i sc = _mm256_broadcastsi128_si256(s16);
        const __m256i mm = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[b].qh);
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * r));
            /* Bit 2r of qh[l] goes to bit 4 of the low quant, bit 2r+1 to bit 4 of the high one. */
            const __m256i hl = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * r), 4), b16);
            const __m256i hh = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * r + 1), 4), b16);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), hl);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hh);
            __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * r)));
            __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y[b].qs + 64 * r + 32)));
            sumi = x86_madd_acc(sumi, plo, _mm256_shuffle_epi8(sc, ctl[2 * r]));
            sumi = x86_madd_acc(sumi, phi, _mm256_shuffle_epi8(sc, ctl[2 * r + 1]));
        }
        const __m128 f = x86_k_scales_dy(&x[b].d, &y[b].d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(f)),
                               _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums), mm)), accm);
    }
    return x86_hsum_ps(_mm256_sub_ps(acc, accm));
}

/* Shuffle control for Q6_K: the low 128-bit half broadcasts int16 lane 2k, the high half lane 2k+1
 * (the two 16-element sub-blocks of one 32-byte group). */
#define X86_PAIR16_CTL(k)                                                                                     \
    _mm256_set_m128i(_mm_set1_epi16((short)((4 * (k) + 3) << 8 | (4 * (k) + 2))),                              \
                     _mm_set1_epi16((short)((4 * (k) + 1) << 8 | 4 * (k))))

static float X86_NAME(dot_q6_k)(int64_t n, const void *w, const void *a)
{
    const struct block_q6_k *x = w;
    const struct block_q8_k *y = a;
    const int64_t nb = n / QUANT_QKK;
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    const __m256i ctl[4] = {X86_PAIR16_CTL(0), X86_PAIR16_CTL(1), X86_PAIR16_CTL(2), X86_PAIR16_CTL(3)};
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        x86_prefetch_at(x + b, X86_PREFETCH_AHEAD_Q6_K, (int)sizeof *x);
        const __m128i s8 = _mm_loadu_si128((const __m128i *)x[b].scales);
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * h));
            /* This half's eight signed scales as int16, in both 128-bit halves. */
            const __m256i sh = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(s8, s8) : s8));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i p =
                    _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(y[b].qs + 128 * h + 32 * k)));
                sumi = x86_madd_acc(sumi, p, _mm256_shuffle_epi8(sh, ctl[k]));
            }
        }
        /* The quants are stored +32: subtract 32 * sum_i scale_i * bsum_i. */
        const __m256i corr =
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums), _mm256_cvtepi8_epi16(s8));
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * x86_h2f(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86_hsum_ps(acc);
}

/* Q2_K and Q3_K share the 2-bit layout: element 128h + 32j + l is bits 2j..2j+1 of qs[32h + l].
 * Each 32-element group spans two 16-element sub-blocks; its products go through maddubs (the
 * unsigned operand is at most 7) and then madd with the two sub-blocks' scales. */
static inline __m256i x86_k_pair_scales(int s0, int s1)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
}

static float X86_NAME(dot_q2_k)(int64_t n, const void *w, const void *a)
{
    const struct block_q2_k *x = w;
    const struct block_q8_k *y = a;
    const int64_t nb = n / QUANT_QKK;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *sc = x[b].scales;
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                const int g = 8 * h + 2 * j;
                const __m256i qj = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                const __m256i p =
                    _mm256_maddubs_epi16(qj, _mm256_loadu_si256((const __m256i *)(y[b].qs + 128 * h + 32 * j)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, x86_k_pair_scales(sc[g] & 15, sc[g + 1] & 15)));
            }
        }
        /* Mins: sum over sub-blocks of (scale >> 4) * bsum. */
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_srli_epi16(_mm_and_si128(_mm_loadu_si128((const __m128i *)sc),
                                                                                _mm_set1_epi8((char)0xF0)), 4));
        const __m256i summ = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums), mins);
        const __m128 f = x86_k_scales_dy(&x[b].d, &y[b].d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(f)), _mm256_cvtepi32_ps(summ), acc);
    }
    return x86_hsum_ps(acc);
}

static float X86_NAME(dot_q3_k)(int64_t n, const void *w, const void *a)
{
    const struct block_q3_k *x = w;
    const struct block_q8_k *y = a;
    const int64_t nb = n / QUANT_QKK;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        int16_t sc[16];
        for (int i = 0; i < 16; i++) {
            const int low = i < 8 ? (x[b].scales[i] & 15) : (x[b].scales[i - 8] >> 4);
            const int high = (x[b].scales[8 + i % 4] >> (2 * (i / 4))) & 3;
            sc[i] = (int16_t)((low | high << 4) - 32);
        }
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[b].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                const int g = 8 * h + 2 * j;
                /* Stored value + 4 = low2 + 4 * hbit (0..7); the 4 comes back out below via bsums. */
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
                const __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3),
                                                  _mm256_slli_epi16(hb, 2));
                const __m256i p =
                    _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(y[b].qs + 128 * h + 32 * j)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, x86_k_pair_scales(sc[g], sc[g + 1])));
            }
        }
        const __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums),
                                               _mm256_loadu_si256((const __m256i *)sc));
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * x86_h2f(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86_hsum_ps(acc);
}

static float X86_NAME(dot_f16)(int64_t n, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
           acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8))),
                               _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 16))),
                               _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 24))),
                               _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), _mm256_loadu_ps(y + i), acc0);
    float s = x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++)
        s += x86_h2f(x[i]) * y[i];
    return s;
}

/* A float row to F16, rounding to nearest even (as f32_to_fp16): the activation row of a wide F16
 * or BF16 matmul in decode (kernels.h CPU_HALF_ACT_MIN_COLS). */
static void X86_NAME(to_half)(const float *x, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        h[i] = f32_to_fp16(x[i]);
}

/* F16 weight row x F16 activation row, both widened to float, four accumulators as dot_f16. */
static float X86_NAME(dot_f16_half)(int64_t n, const void *w, const void *a)
{
    const uint16_t *x = w, *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * k))),
                                     _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8 * k))), acc[k]);
    for (; i + 8 <= n; i += 8)
        acc[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                                 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), acc[0]);
    float s = x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        s += x86_h2f(x[i]) * x86_h2f(y[i]);
    return s;
}

/* Eight BF16 values to float: they are the top halves of float32 bit patterns. */
static inline __m256 x86_bf16_ps(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static float X86_NAME(dot_bf16)(int64_t n, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(x86_bf16_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(x86_bf16_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(x86_bf16_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    float s = x86_hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += bf16_to_f32(x[i]) * y[i];
    return s;
}

/* BF16 weight row x F16 activation row (a wide BF16 row in decode, as dot_f16_half). */
static float X86_NAME(dot_bf16_half)(int64_t n, const void *w, const void *a)
{
    const uint16_t *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(x86_bf16_ps(x + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), acc0);
        acc1 = _mm256_fmadd_ps(x86_bf16_ps(x + i + 8), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8))),
                               acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(x86_bf16_ps(x + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), acc0);
    float s = x86_hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += bf16_to_f32(x[i]) * x86_h2f(y[i]);
    return s;
}

static float X86_NAME(dot_f32)(int64_t n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
           acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    float s = x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

/* Activation rows to Q8_0 blocks: scale = max|x| / 127, round to nearest. */
static void X86_NAME(quantize_q8_0)(const float *x, void *dst, int64_t n)
{
    struct block_q8_0 *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / QUANT_QK; b++, x += QUANT_QK) {
        __m256 v[4], mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        const float d = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        /* Pack 32 int32 to 32 int8; the packs interleave 128-bit lanes, the permute restores order. */
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[b].qs, p);
        y[b].d = f32_to_fp16(d);
    }
}

/* Activation rows for Q4_0 weights: Q8_0 blocks, then the extras dot_q4_0 reads (kernels.h). */
static void X86_NAME(quantize_q8_0_q4)(const float *x, void *dst, int64_t n)
{
    X86_NAME(quantize_q8_0)(x, dst, n);
    const struct block_q8_0 *y = dst;
    const struct cpu_act_q4_0_extra ex = cpu_act_q4_0_extra(dst, n);
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t b = 0; b < n / QUANT_QK; b++) {
        const __m256i s8 = x86_dpbusd(_mm256_setzero_si256(), eight, _mm256_loadu_si256((const __m256i *)y[b].qs));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        ex.corr[b] = -_mm_cvtsi128_si32(s);
        ex.dy[b] = x86_h2f(y[b].d);
    }
}

#if X86_ZMM_VNNI
/* Q4_0 activation rows for the eight-block decode kernel below: as quantize_q8_0_q4, plus a record
 * per group of eight blocks (kernels.h CPU_ACT_Q4_0_GROUP). Its quants are four 64-byte vectors:
 * [low 0, high 0, low 1, high 1]; in "low m", 32-bit lane j + 8h holds block j's quants
 * 4(2m+h)..+3, in "high m" its quants 16 + 4(2m+h)..+3, the elements that the low and high
 * nibbles of weight quant bytes 4(2m+h)..+3 stand for. Then the eight blocks' f16 scales and
 * int16 corrections. Done once per matmul. */
static void X86_NAME(quantize_q8_0_q4t)(const float *x, void *dst, int64_t n)
{
    X86_NAME(quantize_q8_0_q4)(x, dst, n);
    const struct block_q8_0 *y = dst;
    const struct cpu_act_q4_0_extra ex = cpu_act_q4_0_extra(dst, n);
    struct cpu_act_q4_0_group *rec = ex.grp;
    const int64_t nb = n / QUANT_QK;
    for (int64_t g = 0; g + 8 <= nb; g += 8, rec++) {
        for (int j = 0; j < 8; j++) {
            for (int dw = 0; dw < 8; dw++) {
                const int m = (dw & 3) >> 1, hi = dw >> 2, h = dw & 1;
                memcpy(rec->qt + 4 * (32 * m + 16 * hi + 8 * h + j), y[g + j].qs + 4 * dw, 4);
            }
            rec->d[j] = y[g + j].d;
            rec->corr[j] = (int16_t)ex.corr[g + j];
        }
    }
}

/* Q4_0 row kernel, eight blocks per step with one 32-bit lane per block, so the eight blocks share
 * one int-to-float conversion and one FMA (the four-block kernel converts and scales every block's
 * eight partial sums). The eight blocks' 144 bytes are read as four overlapping 64-byte loads, at
 * bytes 0, 72, 8 and 80 of the group: one word permute of the first two gathers every block's
 * quant dwords 0-1, and the same permute of the last two (the same bytes 8 further on) its dwords
 * 2-3, so P_m lane j + 8h = block j's quant bytes 4(2m+h)..+3 (three loads and a fix-up permute for
 * block 7, which lies past the first 128 bytes, measured 6% slower from memory). Low nibbles
 * (P & 0x0f) meet the activation's "low m" vector, high nibbles kept in place (P & 0xf0, 16 x the
 * quant) its "high m" vector, and the high sums come back with an exact arithmetic shift by 4. The
 * -8 x activation sum correction starts the low chain. A third permute of the first two loads
 * gathers the eight f16 scales. Trailing blocks take the four-block kernel's path. */
/* Word indices of the quant permute: lane j + 8h takes the words of block j's quant bytes
 * 2 + 4h..+3 from the 64 bytes at the group's byte 0 (blocks 0-3, indices 0-31) or at byte 72
 * (blocks 4-7, indices 32-63). */
static const int16_t X86_Q4_0_WORDS[32] = {1,  2,  10, 11, 19, 20, 28, 29, 33, 34, 42, 43, 51, 52, 60, 61,
                                           3,  4,  12, 13, 21, 22, 30, 31, 35, 36, 44, 45, 53, 54, 62, 63};
/* Words of the eight blocks' f16 scales (block j's at byte 18j) in the same two loads. */
static const int16_t X86_Q4_0_SCALE_WORDS[32] = {0, 9, 18, 27, 32, 41, 50, 59};

static float X86_NAME(dot_q4_0_t)(int64_t n, const void *w, const void *a)
{
    const uint8_t *xr = w;
    const struct block_q4_0 *x = w;
    const struct block_q8_0 *y = a;
    const int64_t nb = n / QUANT_QK;
    const struct cpu_act_q4_0_extra ex = cpu_act_q4_0_extra(a, n);
    const __m512i iw = _mm512_loadu_si512(X86_Q4_0_WORDS);
    const __m512i id = _mm512_loadu_si512(X86_Q4_0_SCALE_WORDS);
    const __m512i lo4 = _mm512_set1_epi8(0x0f), hi4 = _mm512_set1_epi8((char)0xf0);
    __m256 acc0 = _mm256_setzero_ps();
    const struct cpu_act_q4_0_group *rec = ex.grp;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, xr += 144, rec++) {
        x86_prefetch_ahead(xr, 3 * 48);
        const int8_t *t = rec->qt;
        const __m512i w0 = _mm512_loadu_si512(xr), w1 = _mm512_loadu_si512(xr + 72);
        const __m512i p0 = _mm512_permutex2var_epi16(w0, iw, w1);
        const __m512i p1 = _mm512_permutex2var_epi16(_mm512_loadu_si512(xr + 8), iw, _mm512_loadu_si512(xr + 80));
        __m512i lo = _mm512_zextsi256_si512(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)rec->corr)));
        lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(p0, lo4), _mm512_loadu_si512(t));
        lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(p1, lo4), _mm512_loadu_si512(t + 128));
        __m512i hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(p0, hi4), _mm512_loadu_si512(t + 64));
        hi = _mm512_dpbusd_epi32(hi, _mm512_and_si512(p1, hi4), _mm512_loadu_si512(t + 192));
        const __m512i s = _mm512_add_epi32(lo, _mm512_srai_epi32(hi, 4));
        const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(w0, id, w1))),
                                       _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)rec->d)));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s8), d, acc0);
    }
    for (; b < nb; b++) {
        const __m256i p = x86_q4_0_isum(x + b, y + b, ex.corr + b);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[b].d) * ex.dy[b]), _mm256_cvtepi32_ps(p), acc0);
    }
    return x86_hsum_ps(acc0);
}
#define X86_Q4_0_QUANTIZE X86_NAME(quantize_q8_0_q4t)
#define X86_DOT_Q4_0 X86_NAME(dot_q4_0_t)
#define X86_ACT_Q4_0_EXTRA CPU_ACT_Q4_0_EXTRA_T
#else
#define X86_Q4_0_QUANTIZE X86_NAME(quantize_q8_0_q4)
#define X86_DOT_Q4_0 X86_NAME(dot_q4_0)
#define X86_ACT_Q4_0_EXTRA CPU_ACT_Q4_0_EXTRA
#endif

/* Activation rows to Q8_K blocks, bit-identical to quant_quantize_q8_k: the element of largest
 * magnitude (the first one on ties) maps to -127, rounding to nearest even, 16-element sums. */
static void X86_NAME(quantize_q8_k)(const float *x, void *dst, int64_t n)
{
    struct block_q8_k *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / QUANT_QKK; b++, x += QUANT_QKK) {
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < QUANT_QKK; i += 8)
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (!(amax > 0.0f)) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float max = amax;
        const __m256 av = _mm256_set1_ps(amax);
        for (int i = 0; i < QUANT_QKK; i += 8) {
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), av, _CMP_EQ_OQ));
            if (mask) {
                int k = 0;
                while (!(mask >> k & 1))
                    k++;
                max = x[i + k];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
        for (int g = 0; g < QUANT_QKK / 32; g++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), is));
                q[k] = _mm256_min_epi32(_mm256_max_epi32(q[k], lo), hi);
            }
            /* Two 16-element sums: lanes of q0+q1 and of q2+q3. */
            const __m256i s01 = _mm256_add_epi32(q[0], q[1]), s23 = _mm256_add_epi32(q[2], q[3]);
            __m256i h = _mm256_hadd_epi32(s01, s23); /* [s01 pairs | s23 pairs] per 128-bit lane */
            h = _mm256_hadd_epi32(h, h);
            const __m128i t = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            y[b].bsums[2 * g] = (int16_t)_mm_cvtsi128_si32(t);
            y[b].bsums[2 * g + 1] = (int16_t)_mm_extract_epi32(t, 1);
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[b].qs + 32 * g), p);
        }
        y[b].d = 1.0f / iscale;
    }
}

#if X86_ZMM_VNNI
/* Q8_K activation rows for the AVX-512 Q4_K decode kernel: quantize_q8_k, then the record per block
 * it reads (cpu_act_q4_k_rec): the quants in sub-block order 0, 2, 1, 3, 4, 6, 5, 7, each
 * sub-block's quant sum (two of the 16-element sums) and the block's scale. */
static void X86_NAME(quantize_q8_k_q4kt)(const float *x, void *dst, int64_t n)
{
    X86_NAME(quantize_q8_k)(x, dst, n);
    const struct block_q8_k *y = dst;
    struct cpu_act_q4_k_rec *rec = cpu_act_q4_k_recs(dst, n);
    static const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int64_t b = 0; b < n / QUANT_QKK; b++) {
        for (int k = 0; k < 8; k++) {
            memcpy(rec[b].qt + 32 * k, y[b].qs + 32 * order[k], 32);
            rec[b].s32[k] = (int16_t)(y[b].bsums[2 * k] + y[b].bsums[2 * k + 1]);
        }
        rec[b].d = y[b].d;
    }
}

/* Word indices that spread the eight sub-block scales (as int16) over the 32 words of a packed pair
 * of sums: 128-bit lane k holds four sums of one sub-block, then four of the next (see below). */
static const int16_t X86_Q4_K_SCALE_WORDS[2][32] = {
    {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 3, 3, 3, 3},
    {4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 6, 6, 6, 6, 7, 7, 7, 7}};

/* Q4_K row kernel with byte products summed four at a time (vpdpbusd): a 64-byte load of quants
 * holds sub-blocks 2r and 2r + 2 in its low nibbles and 2r + 1, 2r + 3 in its high ones, each meeting
 * the activation's reordered quants (quantize_q8_k_q4kt) as loaded, so 32-bit lanes 0-7 sum one
 * sub-block and 8-15 the next. The sums fit in int16 (four products of at most 15 x 128), so two
 * vectors pack into one (lane k: four sums of a low-nibble sub-block, four of a high-nibble one)
 * and one vpdpwssd against the spread 6-bit scales adds sc_j x sum_j for four sub-blocks. The mins
 * meet the sub-block quant sums precomputed in the activation row. The AVX2 kernel above takes
 * maddubs + pmaddwd per 32 weights plus a shuffle per sub-block to broadcast its scale; one thread on
 * 4096-wide rows in cache: 24 -> 31 GB/s. */
static float X86_NAME(dot_q4_k_t)(int64_t n, const void *w, const void *a)
{
    const struct block_q4_k *x = w;
    const int64_t nb = n / QUANT_QKK;
    const struct cpu_act_q4_k_rec *rec = cpu_act_q4_k_recs(a, n);
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i iv0 = _mm512_loadu_si512(X86_Q4_K_SCALE_WORDS[0]), iv1 = _mm512_loadu_si512(X86_Q4_K_SCALE_WORDS[1]);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        x86_prefetch_ahead(x + b, (int)sizeof *x);
        __m128i s16, mn;
        x86_q4_k_scale_words(x[b].scales, &s16, &mn);
        const __m512i sc = _mm512_castsi128_si512(s16);
        const int8_t *t = rec[b].qt;
        const __m512i q0 = _mm512_loadu_si512(x[b].qs), q1 = _mm512_loadu_si512(x[b].qs + 64);
        const __m512i zero = _mm512_setzero_si512();
        const __m512i l0 = _mm512_dpbusd_epi32(zero, _mm512_and_si512(q0, m4), _mm512_loadu_si512(t));
        const __m512i h0 = _mm512_dpbusd_epi32(zero, _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), _mm512_loadu_si512(t + 64));
        const __m512i l1 = _mm512_dpbusd_epi32(zero, _mm512_and_si512(q1, m4), _mm512_loadu_si512(t + 128));
        const __m512i h1 = _mm512_dpbusd_epi32(zero, _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), _mm512_loadu_si512(t + 192));
        __m512i s = _mm512_dpwssd_epi32(zero, _mm512_packs_epi32(l0, h0), _mm512_permutexvar_epi16(iv0, sc));
        s = _mm512_dpwssd_epi32(s, _mm512_packs_epi32(l1, h1), _mm512_permutexvar_epi16(iv1, sc));
        const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
        const __m128 f = x86_k_scales_dy(&x[b].d, &rec[b].d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), _mm256_cvtepi32_ps(s8), acc);
        const __m128i m = _mm_madd_epi16(_mm_loadu_si128((const __m128i *)rec[b].s32), mn);
        accm = _mm_fmadd_ps(_mm_permute_ps(f, 0x55), _mm_cvtepi32_ps(m), accm);
    }
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
    return x86_hsum_ps(acc) - _mm_cvtss_f32(accm);
}
#define X86_Q4_K_QUANTIZE X86_NAME(quantize_q8_k_q4kt)
#define X86_DOT_Q4_K X86_NAME(dot_q4_k_t)
#define X86_ACT_Q4_K_EXTRA CPU_ACT_Q4_K_EXTRA_T
#else
#define X86_Q4_K_QUANTIZE X86_NAME(quantize_q8_k)
#define X86_DOT_Q4_K X86_NAME(dot_q4_k)
#define X86_ACT_Q4_K_EXTRA 0
#endif

/* Rows of F16, BF16 or F32 values (float-weight tiles, attention's cache rows) read as floats. The
 * kernels below that take such rows pass the format as a constant to an always-inline body, so each
 * format compiles to its own loop. */
enum x86_float_weight { X86_W_F16, X86_W_BF16, X86_W_F32 };

static inline __attribute__((always_inline)) __m256 x86_weights8(const void *row, int64_t i, enum x86_float_weight f)
{
    if (f == X86_W_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    if (f == X86_W_BF16)
        return x86_bf16_ps((const uint16_t *)row + i);
    return _mm256_loadu_ps((const float *)row + i);
}

static inline __attribute__((always_inline)) float x86_weight1(const void *row, int64_t i, enum x86_float_weight f)
{
    if (f == X86_W_F16)
        return x86_h2f(((const uint16_t *)row)[i]);
    if (f == X86_W_BF16)
        return bf16_to_f32(((const uint16_t *)row)[i]);
    return ((const float *)row)[i];
}

/* ---- attention blocks (kernels.h cpu_attn_kernels) ---- */

/* The four sums of a, b, c and d's eight lanes, in that order. */
static inline __m128 x86_hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d)
{
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* Query rows per step of the score kernel: with AVX-512's 32 vector registers, four rows x four key
 * rows of accumulators fit beside the keys; AVX2 has 16, so two rows. */
#if X86_ZMM_VNNI
#define X86_QK_ROWS 4
#else
#define X86_QK_ROWS 2
#endif

/* Scores of nr query rows against np key rows (F16 or F32, widened as loaded): X86_QK_ROWS query
 * rows x four key rows at a time, so each key chunk is widened once for several rows (in a decode
 * step, the query heads that share a KV head) and each row's four scores are reduced together and
 * stored as one vector. Accumulators are indexed only by unrolled constants, so they stay in
 * registers. */
static inline __attribute__((always_inline)) void x86_attn_qk(int hd, int nr, const float *q, int np, const void *k,
                                                              float *s, enum x86_float_weight f)
{
    const int hv = hd & ~7;
    for (int r = 0; r < nr; r += X86_QK_ROWS) {
        const int m = nr - r < X86_QK_ROWS ? nr - r : X86_QK_ROWS;
        const float *qr[X86_QK_ROWS];
        for (int i = 0; i < X86_QK_ROWS; i++)
            qr[i] = q + (size_t)(r + (i < m ? i : m - 1)) * hd; /* missing rows repeat the last; not stored */
        int p = 0;
        for (; p + 4 <= np; p += 4) {
            const size_t k0 = (size_t)p * hd;
            __m256 a[X86_QK_ROWS][4];
#pragma GCC unroll 4
            for (int i = 0; i < X86_QK_ROWS; i++)
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++)
                    a[i][j] = _mm256_setzero_ps();
            for (int c = 0; c < hv; c += 8) {
                __m256 kx[4];
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++)
                    kx[j] = x86_weights8(k, (int64_t)(k0 + (size_t)j * hd + (size_t)c), f);
#pragma GCC unroll 4
                for (int i = 0; i < X86_QK_ROWS; i++) {
                    const __m256 qv = _mm256_loadu_ps(qr[i] + c);
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++)
                        a[i][j] = _mm256_fmadd_ps(qv, kx[j], a[i][j]);
                }
            }
#pragma GCC unroll 4
            for (int i = 0; i < X86_QK_ROWS; i++) {
                if (i >= m)
                    break;
                float *dst = s + (size_t)(r + i) * np + p;
                _mm_storeu_ps(dst, x86_hsum4_ps(a[i][0], a[i][1], a[i][2], a[i][3]));
                for (int c = hv; c < hd; c++)
                    for (int j = 0; j < 4; j++)
                        dst[j] += qr[i][c] * x86_weight1(k, (int64_t)(k0 + (size_t)j * hd + (size_t)c), f);
            }
        }
        /* The last np % 4 keys one at a time, with the F16 and F32 matmul row kernels. */
        for (; p < np; p++)
            for (int i = 0; i < m; i++)
                s[(size_t)(r + i) * np + p] = f == X86_W_F16
                                                  ? X86_NAME(dot_f16)(hd, (const uint16_t *)k + (size_t)p * hd, qr[i])
                                                  : X86_NAME(dot_f32)(hd, (const float *)k + (size_t)p * hd, qr[i]);
    }
}

/* Weighted value rows (F16 or F32) into nr output rows: four output rows x sixteen columns at a
 * time, eight accumulators (eight independent FMA chains), each value chunk widened once for four
 * rows. */
static inline __attribute__((always_inline)) void x86_attn_pv(int hd, int nr, const float *w, int np, const void *v,
                                                              float *o, enum x86_float_weight f)
{
    for (int r = 0; r < nr; r += 4) {
        const int m = nr - r < 4 ? nr - r : 4;
        const float *wr[4];
        float *orow[4];
        for (int i = 0; i < 4; i++) {
            /* Missing rows repeat the last real one; only real rows are stored. */
            const int ri = r + (i < m ? i : m - 1);
            wr[i] = w + (size_t)ri * np;
            orow[i] = o + (size_t)ri * hd;
        }
        const float *w0 = wr[0], *w1 = wr[1], *w2 = wr[2], *w3 = wr[3];
        int c = 0;
        for (; c + 16 <= hd; c += 16) {
            /* Named accumulators: as an array they were kept on the stack across the loop. */
            __m256 a0 = _mm256_loadu_ps(orow[0] + c), b0 = _mm256_loadu_ps(orow[0] + c + 8);
            __m256 a1 = _mm256_loadu_ps(orow[1] + c), b1 = _mm256_loadu_ps(orow[1] + c + 8);
            __m256 a2 = _mm256_loadu_ps(orow[2] + c), b2 = _mm256_loadu_ps(orow[2] + c + 8);
            __m256 a3 = _mm256_loadu_ps(orow[3] + c), b3 = _mm256_loadu_ps(orow[3] + c + 8);
            for (int p = 0; p < np; p++) {
                const size_t at = (size_t)p * hd + (size_t)c;
                const __m256 v0 = x86_weights8(v, (int64_t)at, f), v1 = x86_weights8(v, (int64_t)at + 8, f);
                __m256 x = _mm256_broadcast_ss(w0 + p);
                a0 = _mm256_fmadd_ps(x, v0, a0);
                b0 = _mm256_fmadd_ps(x, v1, b0);
                x = _mm256_broadcast_ss(w1 + p);
                a1 = _mm256_fmadd_ps(x, v0, a1);
                b1 = _mm256_fmadd_ps(x, v1, b1);
                x = _mm256_broadcast_ss(w2 + p);
                a2 = _mm256_fmadd_ps(x, v0, a2);
                b2 = _mm256_fmadd_ps(x, v1, b2);
                x = _mm256_broadcast_ss(w3 + p);
                a3 = _mm256_fmadd_ps(x, v0, a3);
                b3 = _mm256_fmadd_ps(x, v1, b3);
            }
            /* Missing rows alias the last real one, which is stored last. */
            const __m256 lo[4] = {a0, a1, a2, a3}, hi[4] = {b0, b1, b2, b3};
            for (int i = m - 1; i >= 0; i--) {
                _mm256_storeu_ps(orow[i] + c, lo[i]);
                _mm256_storeu_ps(orow[i] + c + 8, hi[i]);
            }
        }
        for (; c + 8 <= hd; c += 8) {
            __m256 a[4];
            for (int i = 0; i < 4; i++)
                a[i] = _mm256_loadu_ps(orow[i] + c);
            for (int p = 0; p < np; p++) {
                const __m256 v0 = x86_weights8(v, (int64_t)((size_t)p * hd + (size_t)c), f);
                for (int i = 0; i < 4; i++)
                    a[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(wr[i] + p), v0, a[i]);
            }
            for (int i = m - 1; i >= 0; i--)
                _mm256_storeu_ps(orow[i] + c, a[i]);
        }
        for (; c < hd; c++)
            for (int i = 0; i < m; i++) {
                float acc = orow[i][c];
                for (int p = 0; p < np; p++)
                    acc += wr[i][p] * x86_weight1(v, (int64_t)((size_t)p * hd + (size_t)c), f);
                orow[i][c] = acc;
            }
    }
}

static void X86_NAME(attn_qk)(int hd, int nr, const float *q, int np, const void *k, int half, float *s)
{
    if (half)
        x86_attn_qk(hd, nr, q, np, k, s, X86_W_F16);
    else
        x86_attn_qk(hd, nr, q, np, k, s, X86_W_F32);
}

static void X86_NAME(attn_pv)(int hd, int nr, const float *w, int np, const void *v, int half, float *o)
{
    if (half)
        x86_attn_pv(hd, nr, w, np, v, o, X86_W_F16);
    else
        x86_attn_pv(hd, nr, w, np, v, o, X86_W_F32);
}

/* exp(x) for x <= 0 (softmax arguments): x = k ln2 + r with |r| <= ln2/2, a degree-6 polynomial for
 * e^r (relative error ~2e-7), 2^k built in the exponent bits; very negative x flush to 0. */
static inline __m256 x86_exp_neg(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static float X86_NAME(row_max)(const float *s, int64_t n, float init)
{
    /* max_ps returns its second operand when either is NaN: a NaN score leaves the maximum as it was. */
    __m256 m = _mm256_set1_ps(init);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(_mm256_loadu_ps(s + i), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(_mm_movehl_ps(h, h), h);
    h = _mm_max_ss(_mm_movehdup_ps(h), h);
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++)
        if (s[i] > r)
            r = s[i];
    return r;
}

static float X86_NAME(softmax_exp)(float *s, int64_t n, float max)
{
    const __m256 m = _mm256_set1_ps(max);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = x86_exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + i), m));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = x86_hsum_ps(acc);
    for (; i < n; i++) {
        s[i] = expf(s[i] - max);
        sum += s[i];
    }
    return sum;
}

/* ---- 4x4 tiles for prefill: four weight rows against four activation rows ----
 *
 * Each weight block is unpacked once and used for four tokens, each activation block is loaded once
 * and used for four rows, and the horizontal sums happen once per pair at the end instead of once
 * per vec_dot call. out[4 * r + c] = dot(w[r], a[c]). Sums per block are the same exact integers the
 * single-row kernels compute, so results differ from vec_dot only in float summation order. */

static inline void x86_tile_store(__m256 acc[4][4], float out[16])
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            out[4 * r + c] = x86_hsum_ps(acc[r][c]);
}

#define X86_TILE_ZERO(acc)                                                                                    \
    for (int r_ = 0; r_ < 4; r_++)                                                                            \
        for (int c_ = 0; c_ < 4; c_++)                                                                        \
            acc[r_][c_] = _mm256_setzero_ps()

/* The 16 products d_w[r] * d_a[c] of a tile's block scales, laid out as out[4 * r + c]: one 128-bit
 * multiply per row, so the pair loop only broadcasts them from memory (folded into the FMA). */
static inline void x86_tile_scales(const uint16_t dw[4], const uint16_t da[4], float s[16])
{
    const __m128 a = _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, (short)da[3], (short)da[2], (short)da[1], (short)da[0]));
    for (int r = 0; r < 4; r++)
        _mm_storeu_ps(s + 4 * r, _mm_mul_ps(_mm_set1_ps(x86_h2f(dw[r])), a));
}

static void X86_NAME(gemm_q4_0)(int64_t n, const void *const w[4], const void *const a[4], float out[16])
{
    const struct block_q4_0 *x[4] = {w[0], w[1], w[2], w[3]};
    const struct block_q8_0 *y[4] = {a[0], a[1], a[2], a[3]};
    const int64_t nb = n / QUANT_QK;
    const __m256i m4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    __m256 acc[4][4];
    X86_TILE_ZERO(acc);
    for (int64_t b = 0; b < nb; b++) {
        /* Weights as unsigned nibbles 0..15; the -8 offset is folded in as -8 * sum(activations),
         * which starts each pair's integer sum. */
        __m256i q[4];
        float sc[16];
        const uint16_t dw[4] = {x[0][b].d, x[1][b].d, x[2][b].d, x[3][b].d};
        const uint16_t da[4] = {y[0][b].d, y[1][b].d, y[2][b].d, y[3][b].d};
        x86_tile_scales(dw, da, sc);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m128i v = _mm_loadu_si128((const __m128i *)x[r][b].qs);
            q[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i av = _mm256_loadu_si256((const __m256i *)y[c][b].qs);
            const __m256i init = _mm256_sub_epi32(_mm256_setzero_si256(), x86_dpbusd(_mm256_setzero_si256(), eight, av));
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const __m256i p = x86_dpbusd(init, q[r], av);
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(sc[4 * r + c]), _mm256_cvtepi32_ps(p), acc[r][c]);
            }
        }
    }
    x86_tile_store(acc, out);
}

static void X86_NAME(gemm_q8_0)(int64_t n, const void *const w[4], const void *const a[4], float out[16])
{
    const struct block_q8_0 *x[4] = {w[0], w[1], w[2], w[3]};
    const struct block_q8_0 *y[4] = {a[0], a[1], a[2], a[3]};
    const int64_t nb = n / QUANT_QK;
    __m256 acc[4][4];
    X86_TILE_ZERO(acc);
    for (int64_t b = 0; b < nb; b++) {
        __m256i q[4];
        float sc[16];
        const uint16_t dw[4] = {x[0][b].d, x[1][b].d, x[2][b].d, x[3][b].d};
        const uint16_t da[4] = {y[0][b].d, y[1][b].d, y[2][b].d, y[3][b].d};
        x86_tile_scales(dw, da, sc);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        /* vpdpbusd wants one unsigned operand: use activation + 128 (the quantizer keeps -127..127)
         * and start each pair's sum at -128 * sum(weights). */
        __m256i init[4];
        const __m256i b128 = _mm256_set1_epi8((char)0x80);
#endif
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            q[r] = _mm256_loadu_si256((const __m256i *)x[r][b].qs);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
            init[r] = _mm256_sub_epi32(_mm256_setzero_si256(), x86_dpbusd(_mm256_setzero_si256(), b128, q[r]));
#endif
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i av = _mm256_loadu_si256((const __m256i *)y[c][b].qs);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
            const __m256i au = _mm256_xor_si256(av, b128);
#endif
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
                const __m256i p = x86_dpbusd(init[r], au, q[r]);
#else
                const __m256i p = x86_dot_ss8(q[r], av);
#endif
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(sc[4 * r + c]), _mm256_cvtepi32_ps(p), acc[r][c]);
            }
        }
    }
    x86_tile_store(acc, out);
}

static void X86_NAME(gemm_q4_k)(int64_t n, const void *const w[4], const void *const a[4], float out[16])
{
    const struct block_q4_k *x[4] = {w[0], w[1], w[2], w[3]};
    const struct block_q8_k *y[4] = {a[0], a[1], a[2], a[3]};
    const int64_t nb = n / QUANT_QKK;
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[4][4];
    X86_TILE_ZERO(acc);
    for (int64_t b = 0; b < nb; b++) {
        __m256i sumi[4][4];
        __m256i mm[4]; /* mins as int16 pairs, for the bsums product */
        uint8_t sc[4][8];
        for (int r = 0; r < 4; r++) {
            for (int c = 0; c < 4; c++)
                sumi[r][c] = _mm256_setzero_si256();
            uint8_t mn[8];
            x86_q4_k_scales(x[r][b].scales, sc[r], mn);
            const __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
            mm[r] = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        }
        for (int k = 0; k < 4; k++) {
            __m256i alo[4], ahi[4];
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                alo[c] = _mm256_loadu_si256((const __m256i *)(y[c][b].qs + 64 * k));
                ahi[c] = _mm256_loadu_si256((const __m256i *)(y[c][b].qs + 64 * k + 32));
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const __m256i sv0 = _mm256_set1_epi16(sc[r][2 * k]), sv1 = _mm256_set1_epi16(sc[r][2 * k + 1]);
                const __m256i qv = _mm256_loadu_si256((const __m256i *)(x[r][b].qs + 32 * k));
                const __m256i lo = _mm256_and_si256(qv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, alo[c]), sv0);
                    const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ahi[c]), sv1);
                    sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_add_epi32(plo, phi));
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y[c][b].bsums);
            const float dy = y[c][b].d;
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mm[r]));
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dy * x86_h2f(x[r][b].d)), _mm256_cvtepi32_ps(sumi[r][c]),
                                            acc[r][c]);
                acc[r][c] = _mm256_fnmadd_ps(_mm256_set1_ps(dy * x86_h2f(x[r][b].dmin)), mins, acc[r][c]);
            }
        }
    }
    x86_tile_store(acc, out);
}

static void X86_NAME(gemm_q6_k)(int64_t n, const void *const w[4], const void *const a[4], float out[16])
{
    const struct block_q6_k *x[4] = {w[0], w[1], w[2], w[3]};
    const struct block_q8_k *y[4] = {a[0], a[1], a[2], a[3]};
    const int64_t nb = n / QUANT_QKK;
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[4][4];
    X86_TILE_ZERO(acc);
    for (int64_t b = 0; b < nb; b++) {
        __m256i sumi[4][4];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                sumi[r][c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            for (int r = 0; r < 4; r++) {
                const int8_t *s = x[r][b].scales;
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[r][b].ql + 64 * h));
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[r][b].ql + 64 * h + 32));
                const __m256i hb = _mm256_loadu_si256((const __m256i *)(x[r][b].qh + 32 * h));
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
                q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const int g = 8 * h + 2 * k;
                    const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(s[g + 1]), _mm_set1_epi16(s[g]));
#pragma GCC unroll 4
                    for (int c = 0; c < 4; c++) {
                        const __m256i av = _mm256_loadu_si256((const __m256i *)(y[c][b].qs + 128 * h + 32 * k));
                        sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], av), scv));
                    }
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[r][b].scales));
            const float dw = x86_h2f(x[r][b].d);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                /* The quants are stored +32: subtract 32 * sum_i scale_i * bsum_i. */
                const __m256i corr =
                    _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[c][b].bsums), sc16);
                const __m256i s = _mm256_sub_epi32(sumi[r][c], _mm256_slli_epi32(corr, 5));
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(y[c][b].d * dw), _mm256_cvtepi32_ps(s), acc[r][c]);
            }
        }
    }
    x86_tile_store(acc, out);
}

static inline __attribute__((always_inline)) void x86_gemm_float(int64_t n, const void *const w[4], const void *const a[4],
                                                                 float out[16], enum x86_float_weight f)
{
    const float *y[4] = {a[0], a[1], a[2], a[3]};
    __m256 acc[4][4];
    X86_TILE_ZERO(acc);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            wv[r] = x86_weights8(w[r], i, f);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256 av = _mm256_loadu_ps(y[c] + i);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                acc[r][c] = _mm256_fmadd_ps(wv[r], av, acc[r][c]);
        }
    }
    x86_tile_store(acc, out);
    for (; i < n; i++)
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                out[4 * r + c] += x86_weight1(w[r], i, f) * y[c][i];
}

static void X86_NAME(gemm_f16)(int64_t n, const void *const w[4], const void *const a[4], float out[16])
{
    x86_gemm_float(n, w, a, out, X86_W_F16);
}

static void X86_NAME(gemm_bf16)(int64_t n, const void *const w[4], const void *const a[4], float out[16])
{
    x86_gemm_float(n, w, a, out, X86_W_BF16);
}

static void X86_NAME(gemm_f32)(int64_t n, const void *const w[4], const void *const a[4], float out[16])
{
    x86_gemm_float(n, w, a, out, X86_W_F32);
}

/* ---- 8x8 tiles with one row per lane (Q4_0, Q8_0) ----
 *
 * The 4x4 tiles above keep one accumulator per (row, token) pair and pay an int-to-float conversion
 * and a scale FMA per pair per 32-element block. Here a register holds four consecutive weight bytes
 * of eight rows (one row per 32-bit lane, built by an 8x8 transpose of the rows' blocks), and the
 * token's four matching activation bytes are broadcast to all lanes, so eight vpdpbusd give eight
 * rows' block sums for one token, and one conversion and one FMA apply eight rows' scales at once.
 * Results come out as eight rows per token with no horizontal sums. vpdpbusd needs one unsigned
 * operand, so these tiles take Q8_0 activations stored +128 (qs ^ 0x80, the quantizer keeps
 * -127..127) and start each row's sum at -128 * sum(weights). Only in the VNNI build: without it,
 * maddubs would saturate on Q8_0 weights. out[8 * c + r] = dot(w[r], a[c]). */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)

/* v[r] holds row r's eight 32-bit groups; afterwards v[k] holds group k of rows 0..7. */
static inline void x86_transpose8_epi32(__m256i v[8])
{
    const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(v[4], v[5]), t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(v[6], v[7]), t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    v[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    v[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    v[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    v[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    v[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    v[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    v[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    v[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* Four activation bytes broadcast to every lane (a load with broadcast, no shuffle). */
static inline __m256i x86_bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* One 32-element block of eight rows (signed bytes, transposed) against eight tokens' blocks. */
static inline void x86_rows8_block(const __m256i wt[8], __m256 dw, __m256i corr, const struct block_q8_0 *const y[8],
                                   int64_t b, __m256 acc[8])
{
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        const int8_t *qs = y[c][b].qs;
        __m256i p0 = corr, p1 = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int k = 0; k < 8; k += 2) {
            p0 = _mm256_dpbusd_epi32(p0, x86_bcast4(qs + 4 * k), wt[k]);
            p1 = _mm256_dpbusd_epi32(p1, x86_bcast4(qs + 4 * k + 4), wt[k + 1]);
        }
        const __m256 s = _mm256_mul_ps(dw, _mm256_set1_ps(x86_h2f(y[c][b].d)));
        acc[c] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1)), acc[c]);
    }
}

static inline __m256 x86_rows8_scales(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3, uint16_t d4, uint16_t d5,
                                      uint16_t d6, uint16_t d7)
{
    return _mm256_cvtph_ps(_mm_set_epi16((short)d7, (short)d6, (short)d5, (short)d4, (short)d3, (short)d2,
                                         (short)d1, (short)d0));
}

/* Block b of eight Q4_0 rows for the 8x8 tiles: wt gets the signed nibbles (q - 8) transposed (32-bit
 * lane r of a vector holds row r's quants), and the result is each row's correction for activations
 * stored +128: the +128 comes back out as -128 * sum(q - 8) per row. The unsigned nibbles of a row add
 * up in bytes (8 x 15 fits), so one vpdpbusd sums a row's 32 of them, where summing the signed weights
 * took eight. */
static inline __m256i x86_q4_0_rows8(const struct block_q4_0 *const x[8], int64_t b, __m256i wt[8])
{
    const __m256i m4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) {
        const __m128i v = _mm_loadu_si128((const __m128i *)x[r][b].qs);
        wt[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
    }
    x86_transpose8_epi32(wt);
    const __m256i t = _mm256_add_epi8(_mm256_add_epi8(_mm256_add_epi8(wt[0], wt[1]), _mm256_add_epi8(wt[2], wt[3])),
                                      _mm256_add_epi8(_mm256_add_epi8(wt[4], wt[5]), _mm256_add_epi8(wt[6], wt[7])));
    const __m256i sq = _mm256_dpbusd_epi32(_mm256_setzero_si256(), t, _mm256_set1_epi8(1));
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        wt[k] = _mm256_sub_epi8(wt[k], eight);
    return _mm256_sub_epi32(_mm256_set1_epi32(128 * 8 * QUANT_QK), _mm256_slli_epi32(sq, 7));
}

static void X86_NAME(gemm8_q4_0)(int64_t n, const void *const w[8], const void *const a[8], float out[64])
{
    const struct block_q4_0 *x[8];
    const struct block_q8_0 *y[8];
    for (int i = 0; i < 8; i++) {
        x[i] = w[i];
        y[i] = a[i];
    }
    const int64_t nb = n / QUANT_QK;
    __m256 acc[8];
    for (int c = 0; c < 8; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wt[8];
        const __m256i corr = x86_q4_0_rows8(x, b, wt);
        const __m256 dw = x86_rows8_scales(x[0][b].d, x[1][b].d, x[2][b].d, x[3][b].d, x[4][b].d, x[5][b].d,
                                           x[6][b].d, x[7][b].d);
        x86_rows8_block(wt, dw, corr, y, b, acc);
    }
    for (int c = 0; c < 8; c++)
        _mm256_storeu_ps(out + 8 * c, acc[c]);
}

/* Packs eight Q4_0 rows for gemm8p (kernels.h): per block the transposed signed nibbles, the
 * -128 x row sums and the row scales, as gemm8_q4_0 builds them per block. */
static void X86_NAME(pack8_q4_0)(int64_t n, const void *const w[8], void *dst)
{
    const struct block_q4_0 *x[8];
    for (int i = 0; i < 8; i++)
        x[i] = w[i];
    const int64_t nb = n / QUANT_QK;
    __m256i *o = dst;
    for (int64_t b = 0; b < nb; b++, o += CPU_PACK8_BLOCK_BYTES / sizeof(__m256i)) {
        __m256i wt[8];
        const __m256i corr = x86_q4_0_rows8(x, b, wt);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            _mm256_store_si256(o + k, wt[k]);
        _mm256_store_si256(o + 8, corr);
        _mm256_store_ps((float *)(o + 9), x86_rows8_scales(x[0][b].d, x[1][b].d, x[2][b].d, x[3][b].d, x[4][b].d,
                                                           x[5][b].d, x[6][b].d, x[7][b].d));
    }
}

/* An 8x8 tile from a packed 8-row group against eight +128 Q4_0 activation rows (their float scales
 * from the row extras): the same sums and scale products as gemm8_q4_0, so the same results, with
 * the unpacking, transposing and scale conversions done once per panel instead of once per tile. */
static void X86_NAME(gemm8p)(int64_t n, const void *packed, const void *const a[8], float out[64])
{
    const struct block_q8_0 *y[8];
    const float *dy[8];
    for (int i = 0; i < 8; i++) {
        y[i] = a[i];
        dy[i] = cpu_act_q4_0_extra(a[i], n).dy;
    }
    const int64_t nb = n / QUANT_QK;
    __m256 acc[8];
    for (int c = 0; c < 8; c++)
        acc[c] = _mm256_setzero_ps();
    const __m256i *p = packed;
    for (int64_t b = 0; b < nb; b++, p += CPU_PACK8_BLOCK_BYTES / sizeof(__m256i)) {
        __m256i wt[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            wt[k] = _mm256_load_si256(p + k);
        const __m256i corr = _mm256_load_si256(p + 8);
        const __m256 dw = _mm256_load_ps((const float *)(p + 9));
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const int8_t *qs = y[c][b].qs;
            __m256i p0 = corr, p1 = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k += 2) {
                p0 = _mm256_dpbusd_epi32(p0, x86_bcast4(qs + 4 * k), wt[k]);
                p1 = _mm256_dpbusd_epi32(p1, x86_bcast4(qs + 4 * k + 4), wt[k + 1]);
            }
            const __m256 s = _mm256_mul_ps(dw, _mm256_set1_ps(dy[c][b]));
            acc[c] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1)), acc[c]);
        }
    }
    for (int c = 0; c < 8; c++)
        _mm256_storeu_ps(out + 8 * c, acc[c]);
}

static void X86_NAME(gemm8_q8_0)(int64_t n, const void *const w[8], const void *const a[8], float out[64])
{
    const struct block_q8_0 *x[8];
    const struct block_q8_0 *y[8];
    for (int i = 0; i < 8; i++) {
        x[i] = w[i];
        y[i] = a[i];
    }
    const int64_t nb = n / QUANT_QK;
    __m256 acc[8];
    for (int c = 0; c < 8; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wt[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            wt[r] = _mm256_loadu_si256((const __m256i *)x[r][b].qs);
        x86_transpose8_epi32(wt);
        const __m256 dw = x86_rows8_scales(x[0][b].d, x[1][b].d, x[2][b].d, x[3][b].d, x[4][b].d, x[5][b].d,
                                           x[6][b].d, x[7][b].d);
        /* -128 * sum of each row's weights: the +128 of the activations taken back out. */
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        const __m256i b128 = _mm256_set1_epi8((char)0x80);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k += 2) {
            s0 = _mm256_dpbusd_epi32(s0, b128, wt[k]);
            s1 = _mm256_dpbusd_epi32(s1, b128, wt[k + 1]);
        }
        x86_rows8_block(wt, dw, _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_add_epi32(s0, s1)), y, b, acc);
    }
    for (int c = 0; c < 8; c++)
        _mm256_storeu_ps(out + 8 * c, acc[c]);
}
/* Sub-block scales and mins of eight Q4_K rows (s64[r]/m64[r] from x86_q4_k_scales64) as one
 * vector per sub-block with row r in 32-bit lane r: sc[j] holds scale j, mn[j] min j twice as
 * int16 halves (for vpdpwssd against bsum pairs). The rows go in through general registers and
 * byte shuffles pick them apart; storing them to a stack array and loading it back as vectors
 * stalled store forwarding once per block. Rows 0,1,4,5 sit in one vector and 2,3,6,7 in the
 * other so that each 128-bit half gathers four rows in order. */
static inline void x86_rows8_k_scales(const uint64_t s64[8], const uint64_t m64[8], __m256i sc[8], __m256i mn[8])
{
    const __m256i sa = _mm256_set_epi64x((long long)s64[5], (long long)s64[4], (long long)s64[1], (long long)s64[0]);
    const __m256i sb = _mm256_set_epi64x((long long)s64[7], (long long)s64[6], (long long)s64[3], (long long)s64[2]);
    const __m256i ma = _mm256_set_epi64x((long long)m64[5], (long long)m64[4], (long long)m64[1], (long long)m64[0]);
    const __m256i mb = _mm256_set_epi64x((long long)m64[7], (long long)m64[6], (long long)m64[3], (long long)m64[2]);
    /* Byte j of qword 0 / 1 into dword 0 / 1 (a), dword 2 / 3 (b); 0x80+ selects zero. Adding j to
     * every control byte moves to sub-block j and keeps the zeroing bytes at 0x80..0x87. */
    const char z = (char)0x80;
    __m256i ca = _mm256_setr_epi8(0, z, z, z, 8, z, z, z, z, z, z, z, z, z, z, z, 0, z, z, z, 8, z, z, z, z, z, z, z,
                                  z, z, z, z);
    __m256i cb = _mm256_setr_epi8(z, z, z, z, z, z, z, z, 0, z, z, z, 8, z, z, z, z, z, z, z, z, z, z, z, 0, z, z, z,
                                  8, z, z, z);
    __m256i cma = _mm256_setr_epi8(0, z, 0, z, 8, z, 8, z, z, z, z, z, z, z, z, z, 0, z, 0, z, 8, z, 8, z, z, z, z, z,
                                   z, z, z, z);
    __m256i cmb = _mm256_setr_epi8(z, z, z, z, z, z, z, z, 0, z, 0, z, 8, z, 8, z, z, z, z, z, z, z, z, z, 0, z, 0, z,
                                   8, z, 8, z);
    const __m256i one = _mm256_set1_epi8(1);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        sc[j] = _mm256_or_si256(_mm256_shuffle_epi8(sa, ca), _mm256_shuffle_epi8(sb, cb));
        mn[j] = _mm256_or_si256(_mm256_shuffle_epi8(ma, cma), _mm256_shuffle_epi8(mb, cmb));
        ca = _mm256_add_epi8(ca, one);
        cb = _mm256_add_epi8(cb, one);
        cma = _mm256_add_epi8(cma, one);
        cmb = _mm256_add_epi8(cmb, one);
    }
}

/* Q4_K in the same one-row-per-lane layout. Quants are unsigned 0..15, so plain Q8_K activations
 * serve as vpdpbusd's signed operand (no +128). Each 32-element sub-block gives eight rows' sums for
 * a token, multiplied by the rows' sub-block scales (a lane-wise vpmulld); the mins term uses
 * vpdpwssd on the activations' 16-element sums. */
static void X86_NAME(gemm8_q4_k)(int64_t n, const void *const w[8], const void *const a[8], float out[64])
{
    const struct block_q4_k *x[8];
    const struct block_q8_k *y[8];
    for (int i = 0; i < 8; i++) {
        x[i] = w[i];
        y[i] = a[i];
    }
    const int64_t nb = n / QUANT_QKK;
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[8];
    for (int c = 0; c < 8; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        /* Eight rows' scales and mins, transposed in registers (see x86_rows8_k_scales). */
        uint64_t s64[8], m64[8];
        uint32_t dd[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            x86_q4_k_scales64(x[r][b].scales, &s64[r], &m64[r]);
            memcpy(&dd[r], &x[r][b].d, 4); /* d and dmin, adjacent halves */
        }
        __m256i sc[8], mn[8];
        x86_rows8_k_scales(s64, m64, sc, mn);
        const __m256i ddv = _mm256_set_epi32((int)dd[7], (int)dd[6], (int)dd[5], (int)dd[4], (int)dd[3], (int)dd[2],
                                             (int)dd[1], (int)dd[0]);
        const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(ddv));
        const __m256 dm = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(ddv, 16)));
        __m256i sumi[8];
        for (int c = 0; c < 8; c++)
            sumi[c] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            __m256i wt[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(x[r][b].qs + 32 * (j / 2)));
                wt[r] = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(q, 4) : q, m4);
            }
            x86_transpose8_epi32(wt);
            const __m256i scj = sc[j];
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
                const int8_t *qs = y[c][b].qs + 32 * j;
                __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int k = 0; k < 8; k += 2) {
                    p0 = _mm256_dpbusd_epi32(p0, wt[k], x86_bcast4(qs + 4 * k));
                    p1 = _mm256_dpbusd_epi32(p1, wt[k + 1], x86_bcast4(qs + 4 * k + 4));
                }
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_mullo_epi32(_mm256_add_epi32(p0, p1), scj));
            }
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const int8_t *bs = (const int8_t *)y[c][b].bsums;
            __m256i mins = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                mins = _mm256_dpwssd_epi32(mins, mn[j], x86_bcast4(bs + 4 * j));
            const __m256 dy = _mm256_set1_ps(y[c][b].d);
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dy), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
            acc[c] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, dy), _mm256_cvtepi32_ps(mins), acc[c]);
        }
    }
    for (int c = 0; c < 8; c++)
        _mm256_storeu_ps(out + 8 * c, acc[c]);
}
#define X86_GEMM8_Q4_K X86_NAME(gemm8_q4_k)
/* Q6_K in the one-row-per-lane layout: quants 0..63 (stored +32) against plain Q8_K activations;
 * each 32-element group holds two 16-element sub-blocks with their own signed scales, and the +32
 * comes back out as 32 * sum(scale * bsum) through vpdpwssd. */
static void X86_NAME(gemm8_q6_k)(int64_t n, const void *const w[8], const void *const a[8], float out[64])
{
    const struct block_q6_k *x[8];
    const struct block_q8_k *y[8];
    for (int i = 0; i < 8; i++) {
        x[i] = w[i];
        y[i] = a[i];
    }
    const int64_t nb = n / QUANT_QKK;
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[8];
    for (int c = 0; c < 8; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        /* Scales transposed in registers: each row's sixteen int8 scales widened to int16, then
         * the 8x8 32-bit transpose leaves pair p (scales 2p, 2p+1) of row r in lane r of sp[p];
         * shifts split the pairs into sc[]. (A stack array reloaded as vectors stalls store
         * forwarding once per block.) */
        __m256i sp[8], sc[16];
        uint16_t dh[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            sp[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[r][b].scales));
            memcpy(&dh[r], &x[r][b].d, 2);
        }
        x86_transpose8_epi32(sp);
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            sc[2 * p] = _mm256_srai_epi32(_mm256_slli_epi32(sp[p], 16), 16);
            sc[2 * p + 1] = _mm256_srai_epi32(sp[p], 16);
        }
        const __m256 dw = x86_rows8_scales(dh[0], dh[1], dh[2], dh[3], dh[4], dh[5], dh[6], dh[7]);
        __m256i sumi[8];
        for (int c = 0; c < 8; c++)
            sumi[c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 4; k++) {
                __m256i wt[8];
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) {
                    const __m256i l = _mm256_loadu_si256((const __m256i *)(x[r][b].ql + 64 * h + 32 * (k & 1)));
                    const __m256i hb = _mm256_loadu_si256((const __m256i *)(x[r][b].qh + 32 * h));
                    const __m256i lo = _mm256_and_si256(k < 2 ? l : _mm256_srli_epi16(l, 4), m4);
                    __m256i hi;
                    switch (k) {
                    case 0: hi = _mm256_slli_epi16(hb, 4); break;
                    case 1: hi = _mm256_slli_epi16(hb, 2); break;
                    case 2: hi = hb; break;
                    default: hi = _mm256_srli_epi16(hb, 2); break;
                    }
                    wt[r] = _mm256_or_si256(lo, _mm256_and_si256(hi, m30));
                }
                x86_transpose8_epi32(wt);
                const int g = 8 * h + 2 * k;
                const __m256i s0 = sc[g], s1 = sc[g + 1];
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) {
                    const int8_t *qs = y[c][b].qs + 128 * h + 32 * k;
                    __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++) {
                        p0 = _mm256_dpbusd_epi32(p0, wt[q], x86_bcast4(qs + 4 * q));
                        p1 = _mm256_dpbusd_epi32(p1, wt[q + 4], x86_bcast4(qs + 16 + 4 * q));
                    }
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(_mm256_mullo_epi32(p0, s0),
                                                                         _mm256_mullo_epi32(p1, s1)));
                }
            }
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const int8_t *bs = (const int8_t *)y[c][b].bsums;
            __m256i corr = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++)
                corr = _mm256_dpwssd_epi32(corr, sp[p], x86_bcast4(bs + 4 * p));
            const __m256i si = _mm256_sub_epi32(sumi[c], _mm256_slli_epi32(corr, 5));
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(y[c][b].d)), _mm256_cvtepi32_ps(si), acc[c]);
        }
    }
    for (int c = 0; c < 8; c++)
        _mm256_storeu_ps(out + 8 * c, acc[c]);
}
#define X86_GEMM8_Q6_K X86_NAME(gemm8_q6_k)
#define X86_GEMM8_Q4_0 X86_NAME(gemm8_q4_0)
#define X86_GEMM8_Q8_0 X86_NAME(gemm8_q8_0)
#define X86_PACK8_Q4_0 X86_NAME(pack8_q4_0)
#define X86_GEMM8P_Q4_0 X86_NAME(gemm8p)
#else
#define X86_PACK8_Q4_0 NULL
#define X86_GEMM8P_Q4_0 NULL
#define X86_GEMM8_Q4_0 NULL
#define X86_GEMM8_Q8_0 NULL
#define X86_GEMM8_Q4_K NULL
#define X86_GEMM8_Q6_K NULL
#endif

/* exp(x) for any float x: arguments are clamped to [-87, 88], so the result stays finite and normal
 * (silu's exp(-g) then gives g / (1 + big) ~ -0 for very negative g, as expf would). */
static inline __m256 x86_exp(__m256 x)
{
    return x86_exp_neg(_mm256_min_ps(x, _mm256_set1_ps(88.0f)));
}

static float X86_NAME(vec_sum_sq)(int64_t n, const float *x)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
        a2 = _mm256_fmadd_ps(v2, v2, a2);
        a3 = _mm256_fmadd_ps(v3, v3, a3);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    float s = x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        s += x[i] * x[i];
    return s;
}

static void X86_NAME(vec_scale_mul)(int64_t n, const float *x, float s, const float *g, float *out)
{
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(g + i)));
    for (; i < n; i++)
        out[i] = x[i] * s * g[i];
}

static void X86_NAME(vec_swiglu)(int64_t n, const float *gate, const float *up, float *out)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = x86_exp(_mm256_xor_ps(g, sign));
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void X86_NAME(vec_add)(int64_t n, float *x, const float *y)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        x[i] += y[i];
}

static const struct cpu_vec_kernels X86_NAME(vec_kernels) = {
    X86_NAME(vec_sum_sq), X86_NAME(vec_scale_mul), X86_NAME(vec_swiglu), X86_NAME(vec_add),
};

static const struct cpu_attn_kernels X86_NAME(attn_kernels) = {
    X86_NAME(attn_qk), X86_NAME(attn_pv), X86_NAME(row_max), X86_NAME(softmax_exp),
};

static const struct cpu_kernel X86_NAME(kernels)[DT_MAX] = {
    [DT_F32] = {DT_F32, NULL, X86_NAME(dot_f32), X86_NAME(gemm_f32)},
    [DT_F16] = {.act_type = DT_F32, .vec_dot = X86_NAME(dot_f16), .gemm = X86_NAME(gemm_f16),
                .quantize_half = X86_NAME(to_half), .vec_dot_half = X86_NAME(dot_f16_half)},
    [DT_BF16] = {.act_type = DT_F32, .vec_dot = X86_NAME(dot_bf16), .gemm = X86_NAME(gemm_bf16),
                 .quantize_half = X86_NAME(to_half), .vec_dot_half = X86_NAME(dot_bf16_half)},
    [DT_Q4_0] = {DT_Q8_0, X86_Q4_0_QUANTIZE, X86_DOT_Q4_0, X86_NAME(gemm_q4_0), X86_GEMM8_Q4_0, X86_ACT_Q4_0_EXTRA,
                 X86_PACK8_Q4_0, X86_GEMM8P_Q4_0},
    [DT_Q4_1] = {DT_Q8_1, cpu_quantize_q8_1, X86_NAME(dot_q4_1)},
    [DT_Q5_0] = {DT_Q8_0, X86_NAME(quantize_q8_0), X86_NAME(dot_q5_0)},
    [DT_Q5_1] = {DT_Q8_1, cpu_quantize_q8_1, X86_NAME(dot_q5_1)},
    [DT_Q8_0] = {DT_Q8_0, X86_NAME(quantize_q8_0), X86_NAME(dot_q8_0), X86_NAME(gemm_q8_0), X86_GEMM8_Q8_0},
    [DT_Q2_K] = {DT_Q8_K, X86_NAME(quantize_q8_k), X86_NAME(dot_q2_k)},
    [DT_Q3_K] = {DT_Q8_K, X86_NAME(quantize_q8_k), X86_NAME(dot_q3_k)},
    [DT_Q4_K] = {DT_Q8_K, X86_Q4_K_QUANTIZE, X86_DOT_Q4_K, X86_NAME(gemm_q4_k), X86_GEMM8_Q4_K, X86_ACT_Q4_K_EXTRA},
    [DT_Q5_K] = {DT_Q8_K, X86_NAME(quantize_q8_k), X86_NAME(dot_q5_k)},
    [DT_Q6_K] = {DT_Q8_K, X86_NAME(quantize_q8_k), X86_NAME(dot_q6_k), X86_NAME(gemm_q6_k), X86_GEMM8_Q6_K},
};
