/* threadpool.h — a persistent pool of worker threads for data-parallel kernels.
 *
 * threadpool_run(pool, fn, ctx) calls fn(ctx, slot, n) once for each slot 0..n-1 (n = pool size)
 * and returns when all calls have returned. Slots are claimed from a counter rather than owned by a
 * thread: the caller runs slot 0 and then any slot no worker has claimed yet, so a worker that is
 * asleep or descheduled when a job is published never holds the job up. Per-slot scratch (indexed
 * by slot) stays safe: one slot runs on one thread at a time.
 *
 * Inside a job, threadpool_share hands out chunks of items from a counter that lives in the job's
 * own struct, so a thread that runs keeps taking chunks while a descheduled one holds at most the
 * chunk it started. Workers spin briefly, then sleep, between jobs, so back-to-back kernels (one per
 * op of a decode step) start without a system call. Nothing is allocated per job. */
#ifndef HEARTH_BASE_THREADPOOL_H
#define HEARTH_BASE_THREADPOOL_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/err.h"

struct threadpool;

typedef void (*threadpool_fn)(void *ctx, int slot, int n_slots);

/* n_threads <= 0: one per physical core. */
int threadpool_new(int n_threads, struct threadpool **out, struct err *e);
void threadpool_free(struct threadpool *p);
int threadpool_size(const struct threadpool *p);
void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx);

/* Number of physical cores (hyper-threads of one core count once). */
int threadpool_physical_cores(void);

/* A work-sharing counter over items [0, total): put one in the job struct, reset it with
 * threadpool_share_init before threadpool_run, and have every slot loop on threadpool_share_next.
 * Aligned to a cache line of its own so claiming a chunk does not evict the job's other fields. */
struct threadpool_share {
    _Alignas(64) atomic_llong next;
};

static inline void threadpool_share_init(struct threadpool_share *s) { atomic_init(&s->next, 0); }

/* The first item of the next chunk of `chunk` items, or -1 once all `total` are handed out. The
 * chunk ends at min(first + chunk, total). Each item is handed out exactly once. */
static inline int64_t threadpool_share_next(struct threadpool_share *s, int64_t chunk, int64_t total)
{
    const int64_t first = atomic_fetch_add_explicit(&s->next, chunk, memory_order_relaxed);
    return first < total ? first : -1;
}

/* A chunk size for `total` items over n_threads: about per_thread chunks per thread, a multiple of
 * align, at least align and at most max_chunk (when max_chunk >= align). */
int64_t threadpool_chunk(int64_t total, int n_threads, int per_thread, int64_t align, int64_t max_chunk);

#endif
