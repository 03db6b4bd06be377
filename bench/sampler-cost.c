/* sampler-cost.c — what picking a token costs on the host per decode step, for a vocabulary the size
 * of Llama 3's (128,256 logits): sampler_sample with Ollama's default options (temperature 0.8, top_k
 * 40, top_p 0.9, repeat penalty over the last 64 tokens) and greedily (temperature 0), medians of
 * several rounds of timed picks on fixed random logits. At GPU decode speeds (a token every 1-3 ms)
 * these microseconds are part of every token.
 * usage: sampler-cost [--vocab N] [--picks N] [--rounds R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sample/rng.h"
#include "sample/sample.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Microseconds a pick, median over rounds; a copy of the logits (the sampler edits them) is timed
 * separately and taken off. */
static double time_picks(struct sampler *s, const float *base, float *work, int n, int picks, int rounds)
{
    double per[64];
    for (int r = 0; r < rounds; r++) {
        double t = now_us();
        for (int i = 0; i < picks; i++) {
            memcpy(work, base, (size_t)n * sizeof *work);
            work[(i * 7919) % n] += 30.0f; /* a different winner each pick */
            sampler_accept(s, sampler_sample(s, work));
        }
        const double picked = now_us() - t;
        t = now_us();
        for (int i = 0; i < picks; i++)
            memcpy(work, base, (size_t)n * sizeof *work);
        per[r] = (picked - (now_us() - t)) / picks;
    }
    qsort(per, (size_t)rounds, sizeof per[0], by_value);
    return per[rounds / 2];
}

int main(int argc, char **argv)
{
    int n = 128256, picks = 200, rounds = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--vocab") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--picks") == 0)
            picks = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: sampler-cost [--vocab N] [--picks N] [--rounds R]\n");
            return 2;
        }
    }
    if (n < 64 || picks < 1 || rounds < 1 || rounds > 64) {
        fprintf(stderr, "sampler-cost: --vocab >= 64, --picks >= 1, 1 <= --rounds <= 64\n");
        return 2;
    }
    float *base = malloc((size_t)n * sizeof *base), *work = malloc((size_t)n * sizeof *work);
    if (!base || !work) {
        fprintf(stderr, "sampler-cost: out of memory\n");
        return 1;
    }
    struct rng g;
    rng_seed(&g, 1);
    for (int i = 0; i < n; i++)
        base[i] = (float)(rng_uniform(&g) * 20.0 - 10.0);
    for (int greedy = 0; greedy <= 1; greedy++) {
        struct sample_params p;
        sample_params_default(&p);
        if (greedy)
            p.temperature = 0.0f;
        struct sampler *s = NULL;
        struct err e = {0};
        if (sampler_new(&p, n, 4096, &s, &e)) {
            fprintf(stderr, "sampler-cost: %s\n", e.msg);
            return 1;
        }
        printf("%-46s %8.1f us a token\n",
               greedy ? "greedy (temperature 0)" : "defaults (temperature 0.8, top_k 40, top_p 0.9)",
               time_picks(s, base, work, n, picks, rounds));
        sampler_free(s);
    }
    printf("(%d logits, %d picks a round, median of %d rounds)\n", n, picks, rounds);
    free(base);
    free(work);
    return 0;
}
