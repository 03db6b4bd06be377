/* act-footprint.c — what the size of the activation row costs a one-token matmul. Decode reads the
 * whole activation row again for every weight row; once it no longer fits in L1 cache beside the
 * weight stream it comes back from L2 row after row. On one thread, over F16 (or BF16) weight rows
 * of several widths (random values, 768 MiB of ordinary memory, so every pass comes from DRAM), this
 * times the CPU backend's two decode kernels for the type in turn: float activations (vec_dot) and
 * F16 activations (vec_dot_half, which matmul uses from kernels.h CPU_HALF_ACT_MIN_COLS columns
 * on). Best of three alternating passes each, in GB/s of weights.
 * usage: act-footprint [--type F16|BF16] [--mib N] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/kernels.h"
#include "tensor/tensor.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t mib = 768;
    uint32_t type = DT_F16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mib") && i + 1 < argc && atoi(argv[i + 1]) >= 64)
            mib = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--type") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "F16") || !strcmp(argv[i + 1], "BF16")))
            type = (uint32_t)dtype_from_name(argv[++i]);
        else {
            fprintf(stderr, "usage: act-footprint [--type F16|BF16] [--mib N (at least 64)]\n");
            return 2;
        }
    }
    const struct cpu_kernel *k = cpu_kernel_for(type);
    if (!k->vec_dot_half) {
        fprintf(stderr, "act-footprint: this CPU's %s kernels have no F16-activation path (AVX2 needed)\n",
                dtype_name(type));
        return 1;
    }
    const size_t total = mib << 20;
    uint16_t *w = malloc(total);
    float *x = malloc(16384 * sizeof *x);
    uint16_t *xh = malloc(16384 * sizeof *xh);
    if (!w || !x || !xh) {
        fprintf(stderr, "act-footprint: out of memory for %zu MiB of weights\n", mib);
        return 1;
    }
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < total / sizeof *w; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const float v = ((float)(s >> 40) / 16777216.0f - 0.5f) * 0.07f;
        w[i] = type == DT_F16 ? f32_to_fp16(v) : f32_to_bf16(v);
    }
    for (int i = 0; i < 16384; i++)
        x[i] = (float)((i * 7919) % 200 - 100) / 50.0f;
    k->quantize_half(x, xh, 16384);
    static const int64_t widths[] = {2048, 4096, 8192, 14336};
    printf("%s rows, one thread\ncolumns  float activations GB/s  F16 activations GB/s  ratio\n", dtype_name(type));
    double sink = 0;
    for (size_t c = 0; c < sizeof widths / sizeof widths[0]; c++) {
        const int64_t n = widths[c], rows = (int64_t)(total / sizeof *w / (size_t)n);
        double best[2] = {0, 0};
        for (int pass = 0; pass < 6; pass++) {
            const int half = pass % 2;
            const double t0 = now_s();
            for (int64_t r = 0; r < rows; r++)
                sink += half ? k->vec_dot_half(n, w + r * n, xh) : k->vec_dot(n, w + r * n, x);
            const double gbs = (double)rows * (double)n * sizeof *w / (now_s() - t0) / 1e9;
            if (gbs > best[half])
                best[half] = gbs;
        }
        printf("%7lld  %22.1f  %20.1f  %5.2f\n", (long long)n, best[0], best[1], best[1] / best[0]);
    }
    free(w);
    free(x);
    free(xh);
    volatile double keep = sink; /* the sums stay live */
    (void)keep;
    return 0;
}
