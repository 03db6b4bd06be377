/* argmax.h — the index of the largest float in an array, with the rule every greedy pick in hearth
 * follows (sampler, backends, tools): the first index on ties, and a NaN is never the largest. */
#ifndef HEARTH_BASE_ARGMAX_H
#define HEARTH_BASE_ARGMAX_H

#include <stdint.h>

/* The first index of the largest of x[n]; NaNs never win (all NaN, or n <= 0: 0). */
int32_t argmax_f32(const float *x, int32_t n);

#endif
