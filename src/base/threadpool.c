/* threadpool.c — persistent worker threads sharing each job's slots.
 *
 * One 64-bit word holds the job's generation (high half) and its next unclaimed slot (low half).
 * The caller publishes a job by storing (generation + 1, slot 1): slot 0 is its own. Workers spin
 * on the generation (with a pause hint) for a while, then wait on a condition variable; any thread
 * claims a slot with one fetch-add on the word and learns from the same value which generation the
 * slot belongs to. The caller, after slot 0, claims the slots no worker has taken yet, then waits
 * until every slot has finished: a worker that was descheduled before it claimed anything costs the
 * job nothing. The caller spins briefly on the done count, then sleeps on a condition variable, so a
 * worker preempted mid-slot can be moved onto the caller's idle core by the kernel. In steady state
 * (one job per op of a decode step) a dispatch and its completion are a few atomic operations and
 * no system calls. */
#include "base/threadpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* A worker with no job spins this long before sleeping. Within a decode step jobs come every few
 * microseconds. The spin is kept short because a spinning worker holds a core: when another process
 * has preempted the caller, the worker's sleep is what gives the caller a core back. */
#define WORKER_SPIN_NS 100000
/* The caller waits this long for slots still running on other threads before sleeping: longer
 * than a chunk takes, so a sleep means that thread is most likely not running, and the idle core
 * lets the kernel move it over. */
#define CALLER_SPIN_NS 20000

/* Tells the core we are spinning (cheaper for a sibling hyper-thread, no memory-order stalls). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct threadpool {
    /* Set at creation. */
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers sleep here between jobs */
    pthread_cond_t done_cv; /* the caller sleeps here until the last slot finishes */
    /* The current job: written by the caller before it publishes the generation. */
    threadpool_fn fn;
    void *ctx;
    uint32_t gen; /* the caller's copy of the current generation */
    /* Hot words, each on a cache line of its own. */
    _Alignas(64) atomic_uint_least64_t state; /* generation << 32 | next unclaimed slot */
    _Alignas(64) atomic_int done;             /* slots of the current job that have returned */
    atomic_int caller_waiting;                /* the caller is (about to be) asleep on done_cv */
    _Alignas(64) atomic_int sleeping;         /* workers blocked (or about to block) on work_cv */
    atomic_bool stop;
};

struct worker_arg {
    struct threadpool *p;
};

/* Marks one slot finished; the thread that finishes the last one wakes a sleeping caller. seq_cst
 * pairs with the caller's store to caller_waiting: either we see it and signal under the mutex, or
 * the caller sees the count before it waits. */
static void finish_slot(struct threadpool *p)
{
    if (atomic_fetch_add(&p->done, 1) + 1 == p->n && atomic_load(&p->caller_waiting)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Claims and runs slots until none of the newest generation is left; returns that generation. A
 * claim that lands on a job published meanwhile is that job's slot: fn and ctx were written before
 * its state, and the acquire of the fetch-add makes them visible. They cannot change while we run
 * the slot: the caller publishes the next job only once every slot has finished. */
static uint32_t run_slots(struct threadpool *p)
{
    for (;;) {
        const uint64_t s = atomic_fetch_add_explicit(&p->state, 1, memory_order_acq_rel);
        const uint32_t slot = (uint32_t)s;
        if (slot >= (uint32_t)p->n)
            return (uint32_t)(s >> 32);
        p->fn(p->ctx, (int)slot, p->n);
        finish_slot(p);
    }
}

static void *worker_main(void *arg)
{
    struct worker_arg wa = *(struct worker_arg *)arg;
    free(arg);
    struct threadpool *p = wa.p;
    uint32_t seen = 0; /* the generation at creation: no job can have been published before */
    for (;;) {
        int64_t spin_start = 0;
        int spins = 0;
        while ((uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            if (++spins % 64 != 0) {
                cpu_relax();
                continue;
            }
            const int64_t t = now_ns();
            if (spin_start == 0)
                spin_start = t;
            if (t - spin_start < WORKER_SPIN_NS) {
                cpu_relax();
                continue;
            }
            /* Announce the sleep before re-checking under the mutex: a publisher that bumps the
             * generation after our check sees sleeping > 0 and signals under the same mutex. */
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleeping, 1);
            while ((uint32_t)(atomic_load(&p->state) >> 32) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->work_cv, &p->mu);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->mu);
            spin_start = 0;
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = run_slots(p);
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
    const size_t size = (sizeof(struct threadpool) + 63) & ~(size_t)63;
    struct threadpool *p = aligned_alloc(64, size);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory creating the thread pool");
    memset(p, 0, size);
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->state, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->caller_waiting, 0);
    atomic_init(&p->sleeping, 0);
    atomic_init(&p->stop, false);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory creating the thread pool");
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (wa)
            wa->p = p;
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
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
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
    /* Every slot of the previous job has finished and its state has slot >= n, so no worker reads
     * these until it claims a slot of the generation published below. */
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    p->gen++;
    /* seq_cst pairs with the worker's seq_cst increment of sleeping: either we see it and signal, or
     * the worker sees the new generation before it waits. */
    atomic_store(&p->state, (uint64_t)p->gen << 32 | 1u);
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    finish_slot(p);
    run_slots(p); /* the slots no worker has claimed yet */
    if (atomic_load_explicit(&p->done, memory_order_acquire) == p->n)
        return;
    const int64_t t0 = now_ns();
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n) {
        if (++spins % 64 == 0 && now_ns() - t0 > CALLER_SPIN_NS) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->caller_waiting, 1);
            while (atomic_load(&p->done) < p->n)
                pthread_cond_wait(&p->done_cv, &p->mu);
            atomic_store(&p->caller_waiting, 0);
            pthread_mutex_unlock(&p->mu);
            return;
        }
        cpu_relax();
    }
}

int64_t threadpool_chunk(int64_t total, int n_threads, int per_thread, int64_t align, int64_t max_chunk)
{
    if (align < 1)
        align = 1;
    const int64_t parts = (int64_t)(n_threads > 0 ? n_threads : 1) * (per_thread > 0 ? per_thread : 1);
    int64_t chunk = (total + parts - 1) / parts;
    if (max_chunk >= align && chunk > max_chunk)
        chunk = max_chunk;
    chunk = (chunk + align - 1) / align * align;
    if (max_chunk >= align && chunk > max_chunk)
        chunk = max_chunk / align * align;
    return chunk < align ? align : chunk;
}
