/* threadpool.h — a persistent pool of worker threads for data-parallel kernels.
 *
 * threadpool_run(pool, fn, ctx) calls fn(ctx, i, n) once on each of the n threads (the caller's
 * thread is thread 0) and returns when all have finished. Workers spin briefly, then sleep, between
 * jobs, so back-to-back kernels (one per op of a decode step) start without a syscall. Nothing is
 * allocated per job. */
#ifndef HEARTH_BASE_THREADPOOL_H
#define HEARTH_BASE_THREADPOOL_H

#include "base/err.h"

struct threadpool;

typedef void (*threadpool_fn)(void *ctx, int thread, int n_threads);

/* n_threads <= 0: one per physical core. */
int threadpool_new(int n_threads, struct threadpool **out, struct err *e);
void threadpool_free(struct threadpool *p);
int threadpool_size(const struct threadpool *p);
void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx);

/* Number of physical cores (hyper-threads of one core count once). */
int threadpool_physical_cores(void);

#endif
