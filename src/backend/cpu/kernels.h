/* kernels.h — the CPU backend's per-format dot-product kernels and the table that picks them.
 *
 * A matmul over a weight of type T first converts each activation row to T's activation type
 * (float32 for the plain float formats and the generic path; 8-bit blocks for the integer paths),
 * then calls T's vec_dot once per (weight row, activation row). Every SIMD kernel has a scalar twin
 * in kernels_scalar.c that defines its exact result and is the reference in tests. */
#ifndef HEARTH_BACKEND_CPU_KERNELS_H
#define HEARTH_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Converts n floats of an activation row into the kernel's activation format. */
typedef void (*act_quantize_fn)(const float *x, void *dst, int64_t n);
/* Dot product of n elements: a weight row (in its own format) with an activation row. */
typedef float (*vec_dot_fn)(int64_t n, const void *w, const void *a);

/* A 4x4 tile of dot products for prefill: out[4 * r + c] = dot(w[r], a[c]), n elements each. */
typedef void (*gemm_tile_fn)(int64_t n, const void *const w[4], const void *const a[4], float out[16]);

/* An 8x8 tile: out[8 * c + r] = dot(w[r], a[c]) for eight weight rows and eight activation rows. */
typedef void (*gemm_tile8_fn)(int64_t n, const void *const w[8], const void *const a[8], float out[64]);

/* Packed 8-row groups for prefill (matmul.c packs a panel of rows once per call and runs every token
 * tile against it): pack8 writes, per 32-element block, the eight rows' weights as signed bytes in
 * gemm8's transposed order (eight 32-byte vectors), the rows' -128 x weight sums (eight int32) and
 * scales (eight floats), CPU_PACK8_BLOCK_BYTES in all, 32-byte aligned. gemm8p multiplies such a
 * group with eight activation rows as gemm8 would (out[8 * c + r], same results). */
#define CPU_PACK8_BLOCK_BYTES 320
typedef void (*pack8_fn)(int64_t n, const void *const w[8], void *dst);
typedef void (*gemm8p_fn)(int64_t n, const void *packed, const void *const a[8], float out[64]);

struct cpu_kernel {
    uint32_t act_type;        /* enum dtype of the converted activations */
    act_quantize_fn quantize; /* NULL when act_type is DT_F32 (rows are used as they are) */
    vec_dot_fn vec_dot;
    gemm_tile_fn gemm; /* NULL: matmuls of several tokens call vec_dot per pair */
    /* Preferred over gemm when set: 8 rows x 8 tokens, out[8 * c + r]. When act_type is DT_Q8_0
     * it reads activations stored +128 (every qs byte xor 0x80; see cpu_q8_0_bias); other
     * activation types are used as quantize wrote them. */
    gemm_tile8_fn gemm8;
    /* Bytes per 32-element activation block that quantize appends after the row for vec_dot (0:
     * none); rows are then 64-byte aligned. See cpu_act_row_bytes. */
    uint32_t act_extra;
    pack8_fn pack8;   /* NULL: prefill uses gemm8 on the weights as they are */
    gemm8p_fn gemm8p; /* set with pack8 */
    /* F16 and BF16 weights: one-token matmuls of rows of at least CPU_HALF_ACT_MIN_COLS columns
     * convert the activation row to F16 (quantize_half) and take vec_dot_half (weights x F16
     * activations). NULL for other formats and for the scalar table. */
    act_quantize_fn quantize_half;
    vec_dot_fn vec_dot_half;
};

/* Decode re-reads the whole activation row for every weight row. As float32, 4096 columns fill half
 * of a 32 KiB L1 data cache and 8192 all of it, so the weight rows streaming past evict it and it
 * comes back from L2 row after row, slowing the stream from memory. Halving it (as llama.cpp's F16
 * path does) keeps it in L1. One thread, F16 rows from memory (bench/act-footprint.sh): 2048 columns
 * 29.9 -> 30.2 GB/s (no gain, so narrower rows keep float activations), 4096 27.5 -> 29.9, 8192
 * 12.8 -> 20.7, 14336 12.4 -> 17.1. */
#define CPU_HALF_ACT_MIN_COLS 4096

/* Whether a one-token matmul of rows this wide takes the F16 activation path of this kernel. */
static inline int cpu_decode_half(const struct cpu_kernel *k, int64_t cols)
{
    return k->vec_dot_half != NULL && cols >= CPU_HALF_ACT_MIN_COLS;
}

/* Bytes of one converted activation row of n elements for this kernel. */
size_t cpu_act_row_bytes(const struct cpu_kernel *k, int64_t n);

/* The extras a Q4_0 kernel's activation row carries after its Q8_0 blocks (at the first 64-byte
 * boundary): per block the scale as a float, then per block -8 x the sum of its quants (the +8
 * offset of the weights' unsigned nibbles; one int32, so the row's working set stays small enough
 * for L1 on 14336-wide rows). */
#define CPU_ACT_Q4_0_EXTRA (sizeof(float) + sizeof(int32_t))
/* With AVX-512 the row also carries, for the eight-block decode kernel, one record per group of
 * eight blocks (CPU_ACT_Q4_0_GROUP bytes): the quants transposed (256 bytes, where 32-bit lane j (+8)
 * of each 64-byte vector holds four quants of block j; kernels_x86.h, quantize_q8_0_q4t), then the
 * eight scales as f16 (exactly the blocks' own) and the eight corrections as int16 (|8 x sum| <=
 * 32512). Decode reads only these records, one sequential stream of 36 bytes a block: on the
 * 14336-wide rows of an 8B model's ffn_down the separate float/int32 arrays made the activation
 * row too large to stay in L1 beside the weight stream (one thread from memory, in a throwaway
 * loop over such rows: 16.1 -> 20.5 GB/s).
 * A trailing part group has no record. */
struct cpu_act_q4_0_group {
    int8_t qt[256];   /* the quants, transposed */
    uint16_t d[8];    /* the blocks' f16 scales */
    int16_t corr[8];  /* -8 x each block's quant sum */
};
#define CPU_ACT_Q4_0_GROUP sizeof(struct cpu_act_q4_0_group)
_Static_assert(sizeof(struct cpu_act_q4_0_group) == 288, "Q4_0 activation group record size");
#define CPU_ACT_Q4_0_EXTRA_T (sizeof(float) + sizeof(int32_t) + CPU_ACT_Q4_0_GROUP / 8)
struct cpu_act_q4_0_extra {
    float *dy;                       /* nb */
    int32_t *corr;                   /* nb */
    struct cpu_act_q4_0_group *grp;  /* nb / 8, only where the kernel's act_extra is CPU_ACT_Q4_0_EXTRA_T */
};
static inline struct cpu_act_q4_0_extra cpu_act_q4_0_extra(const void *row, int64_t n)
{
    const size_t nb = (size_t)(n / 32), off = (nb * 34 + 63) & ~(size_t)63;
    uint8_t *base = (uint8_t *)row + off;
    uint8_t *groups = base + nb * (sizeof(float) + sizeof(int32_t));
    struct cpu_act_q4_0_extra ex = {(float *)(void *)base, (int32_t *)(void *)(base + nb * sizeof(float)),
                                    (struct cpu_act_q4_0_group *)(void *)groups};
    return ex;
}

/* With AVX-512 the Q4_K kernel's activation row (Q8_K blocks) also carries one record per
 * 256-element block (CPU_ACT_Q4_K_BLOCK bytes): its quants again in the order the decode kernel
 * meets them (the 32-element sub-blocks as 0, 2, 1, 3, 4, 6, 5, 7: the low nibbles of a 64-byte load
 * of weight quants are sub-blocks 2r and 2r + 2, the high nibbles 2r + 1 and 2r + 3), the eight
 * sub-blocks' quant sums as int16, and the block's scale (kernels_x86.h, quantize_q8_k_q4kt). Decode
 * reads only these records, one sequential stream (as the Q4_0 group records, so that a 14336-wide
 * row's activations stay in L1). Done once per matmul. */
#define CPU_ACT_Q4_K_BLOCK 288
#define CPU_ACT_Q4_K_EXTRA_T (CPU_ACT_Q4_K_BLOCK / 8)
struct cpu_act_q4_k_rec {
    int8_t qt[256];
    int16_t s32[8];
    float d;
    uint8_t pad[CPU_ACT_Q4_K_BLOCK - 256 - 8 * sizeof(int16_t) - sizeof(float)];
};
_Static_assert(sizeof(struct cpu_act_q4_k_rec) == CPU_ACT_Q4_K_BLOCK, "Q4_K activation record size");
static inline struct cpu_act_q4_k_rec *cpu_act_q4_k_recs(const void *row, int64_t n)
{
    const size_t nb = (size_t)(n / 256), off = (nb * 292 + 63) & ~(size_t)63;
    return (struct cpu_act_q4_k_rec *)(void *)((uint8_t *)row + off);
}

/* Flips Q8_0 activation rows to the +128 form gemm8 tiles read (n elements). */
void cpu_q8_0_bias(void *blocks, int64_t n);

/* The kernel used for weights of this type on this CPU; NULL if the type cannot be multiplied. */
const struct cpu_kernel *cpu_kernel_for(uint32_t weight_type);
/* The scalar reference kernel for this type (tests compare the chosen kernel with it). */
const struct cpu_kernel *cpu_kernel_scalar(uint32_t weight_type);

/* Scalar building blocks shared by the kernel files. */
float cpu_dot_f32_scalar(int64_t n, const float *a, const float *b);
float cpu_vec_dot_generic(uint32_t weight_type, int64_t n, const void *w, const float *a);

/* Integer reference kernels (kernels_scalar.c): weight format x 8-bit activation format. */
float cpu_dot_q4_0_q8_0_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q4_1_q8_1_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q5_0_q8_0_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q5_1_q8_1_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q8_0_q8_0_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q2_k_q8_k_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q3_k_q8_k_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q4_k_q8_k_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q5_k_q8_k_scalar(int64_t n, const void *w, const void *a);
float cpu_dot_q6_k_q8_k_scalar(int64_t n, const void *w, const void *a);
/* Unpacks Q4_K/Q5_K's twelve scale bytes into eight 6-bit scales and eight 6-bit mins. */
void cpu_q4_k_scales(const uint8_t *scales, uint8_t sc[8], uint8_t mn[8]);
/* Activation converters (row of n floats to 8-bit blocks). */
void cpu_quantize_q8_0(const float *x, void *dst, int64_t n);
void cpu_quantize_q8_1(const float *x, void *dst, int64_t n);
void cpu_quantize_q8_k(const float *x, void *dst, int64_t n);

/* Attention over one KV head, a block of cache positions at a time (attention.c). Key and value rows
 * are hd contiguous elements each, F16 when half, else float:
 *   qk: s[r * np + p] = q[r] . k[p] for nr float query rows and np key rows;
 *   pv: o[r] += sum over p of w[r * np + p] * v[p], for nr float output rows and np value rows;
 *   max: the largest of init and s[0..n) (NaN scores are passed over);
 *   softmax_exp: s[i] = exp(s[i] - max) for n scores, returning their sum (the softmax numerators). */
typedef float (*softmax_exp_fn)(float *s, int64_t n, float max);
struct cpu_attn_kernels {
    void (*qk)(int hd, int nr, const float *q, int np, const void *k, int half, float *s);
    void (*pv)(int hd, int nr, const float *w, int np, const void *v, int half, float *o);
    float (*max)(const float *s, int64_t n, float init);
    softmax_exp_fn softmax_exp;
};
const struct cpu_attn_kernels *cpu_attn_kernels_for(void);
extern const struct cpu_attn_kernels cpu_attn_kernels_scalar;
const struct cpu_attn_kernels *cpu_attn_kernels_avx2(void);
const struct cpu_attn_kernels *cpu_attn_kernels_avx512(void);

/* Elementwise float kernels for the backend's row ops:
 *   sum_sq: sum of x[i]^2 (RMSNorm), scale_mul: out[i] = x[i] * s * g[i],
 *   swiglu: out[i] = silu(gate[i]) * up[i], add: x[i] += y[i]. */
struct cpu_vec_kernels {
    float (*sum_sq)(int64_t n, const float *x);
    void (*scale_mul)(int64_t n, const float *x, float s, const float *g, float *out);
    void (*swiglu)(int64_t n, const float *gate, const float *up, float *out);
    void (*add)(int64_t n, float *x, const float *y);
};
const struct cpu_vec_kernels *cpu_vec_kernels_for(void);
extern const struct cpu_vec_kernels cpu_vec_kernels_scalar;
const struct cpu_vec_kernels *cpu_vec_kernels_avx2(void);
const struct cpu_vec_kernels *cpu_vec_kernels_avx512(void);

/* SIMD kernel tables (NULL entries fall back to the scalar kernel). */
const struct cpu_kernel *cpu_kernels_avx2(uint32_t weight_type);
const struct cpu_kernel *cpu_kernels_avx512(uint32_t weight_type);

/* Instruction-set level detected at run time. */
enum cpu_isa { CPU_ISA_SCALAR = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2 };
enum cpu_isa cpu_isa_detect(void);

#endif
