/* threadpool.c — persistent worker threads with a generation counter: the caller publishes a job by
 * bumping the generation; workers spin on it (with a pause hint) for a while, then wait on a condition
 * variable. The caller takes the mutex and signals only when some worker is actually asleep, so in
 * steady state (one job per op of a decode step) a dispatch and its completion wait are a few atomic
 * operations and no system calls. */
#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define SPIN_ITERS 200000
/* Completion waits spin this many pause iterations before yielding the core: on a machine busier
 * than the pool, a worker may have been preempted and needs our core back. */
#define WAIT_SPINS 20000

/* Tells the core we are spinning (cheaper for a sibling hyper-thread, no memory-order stalls). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

struct threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    threadpool_fn fn;
    void *ctx;
    atomic_uint generation;
    atomic_int pending;  /* workers still running the current job */
    atomic_int sleeping; /* workers blocked (or about to block) on cv */
    atomic_bool stop;
};

struct worker_arg {
    struct threadpool *p;
    int index;
};

static void *worker_main(void *arg)
{
    struct worker_arg wa = *(struct worker_arg *)arg;
    free(arg);
    struct threadpool *p = wa.p;
    unsigned seen = 0; /* the generation at creation: no job can have been published before */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins > SPIN_ITERS) {
                /* Announce the sleep before re-checking under the mutex: a publisher that bumps the
                 * generation after our check sees sleeping > 0 and signals under the same mutex. */
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleeping, 1);
                while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                    pthread_cond_wait(&p->cv, &p->mu);
                atomic_fetch_sub(&p->sleeping, 1);
                pthread_mutex_unlock(&p->mu);
                spins = 0;
            } else {
                cpu_relax();
            }
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        p->fn(p->ctx, wa.index, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

int threadpool_physical_cores(void)
{
    /* Count distinct (physical id, core id) pairs; fall back to online CPUs. */
    FILE *fp = fopen("/proc/cpuinfo", "r");
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    if (!fp)
        return (int)online;
    char line[256];
    int phys = -1, ids[1024][2], n = 0;
    while (fgets(line, sizeof line, fp)) {
        int v;
        if (sscanf(line, "physical id : %d", &v) == 1)
            phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            int dup = 0;
            for (int i = 0; i < n; i++)
                if (ids[i][0] == phys && ids[i][1] == v)
                    dup = 1;
            if (!dup && n < 1024) {
                ids[n][0] = phys;
                ids[n][1] = v;
                n++;
            }
        }
    }
    fclose(fp);
    if (n < 1 || n > online)
        return (int)online;
    return n;
}

int threadpool_new(int n_threads, struct threadpool **out, struct err *e)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = threadpool_physical_cores();
    if (n_threads > 512)
        return err_set(e, ERR_INVALID, "thread count %d is too large (at most 512)", n_threads);
    struct threadpool *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory creating the thread pool");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleeping, 0);
    atomic_init(&p->stop, false);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory creating the thread pool");
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->p = p;
            wa->index = i;
        }
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n = i;
            threadpool_free(p);
            return err_set(e, ERR_NOMEM, "cannot start worker thread %d", i);
        }
    }
    *out = p;
    return 0;
}

void threadpool_free(struct threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int threadpool_size(const struct threadpool *p) { return p->n; }

void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    /* seq_cst pairs with the worker's seq_cst increment of sleeping: either we see it and signal, or
     * the worker sees the new generation before it waits. */
    atomic_fetch_add(&p->generation, 1);
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < WAIT_SPINS) {
            cpu_relax();
        } else {
            sched_yield();
            spins = 0;
        }
    }
}
