/* cuda_profile.h — per-launch GPU timing of the CUDA backend's steps (HEARTH_CUDA_PROFILE=1): the ops of a
 * step are enqueued behind a short spin kernel so that the GPU runs them back to back, as a replayed
 * graph would, with an event between launch groups; the elapsed times are summed per label and printed
 * when the backend is freed. Profiling replaces graph replay and costs speed; it is a measuring tool. */
#ifndef HEARTH_BACKEND_CUDA_PROFILE_H
#define HEARTH_BACKEND_CUDA_PROFILE_H

#include <cuda_runtime_api.h>
#include <stdio.h>

struct cuda_profile;

/* NULL when out of memory or events cannot be made (profiling is then off). */
struct cuda_profile *cuda_profile_new(int max_marks);
void cuda_profile_free(struct cuda_profile *p);

/* Starts a step: enqueues the spin kernel that holds the GPU while the host enqueues the step. */
void cuda_profile_begin(struct cuda_profile *p, cudaStream_t s);
/* Records an event before the launch group that starts at log index `index` (and one with the log's
 * length after the last group). */
void cuda_profile_mark(struct cuda_profile *p, cudaStream_t s, int index);
/* Number of marks of the current step and the log index of mark k. */
int cuda_profile_marks(const struct cuda_profile *p);
int cuda_profile_mark_index(const struct cuda_profile *p, int k);
/* Waits for the step and returns the milliseconds between mark k and mark k + 1. */
float cuda_profile_elapsed(struct cuda_profile *p, int k);
/* Adds ms to the label's total (labels are copied; at most 256 distinct ones are kept). */
void cuda_profile_add(struct cuda_profile *p, const char *label, float ms);
/* Ends a step of the given kind (0: decode, 1: prompt batch). */
void cuda_profile_end(struct cuda_profile *p, int kind);
/* Prints the table: per label, launches and GPU time per step, share of the step. */
void cuda_profile_print(const struct cuda_profile *p, FILE *f);

#endif
