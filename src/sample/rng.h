/* rng.h — the sampler's seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
 *
 * The C library's rand() is neither reproducible across platforms nor good enough for drawing from
 * distributions over 100k+ tokens, so the sampler carries its own small, fast, portable generator. */
#ifndef HEARTH_SAMPLE_RNG_H
#define HEARTH_SAMPLE_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* Same seed, same sequence, on every platform. */
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, 1) with 53 bits of resolution. */
double rng_uniform(struct rng *r);
/* A seed nobody chose: /dev/urandom, or the clock and address-space layout when that is unavailable. */
uint64_t rng_entropy_seed(void);

#endif
