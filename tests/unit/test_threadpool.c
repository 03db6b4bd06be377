/* test_threadpool.c — the thread pool's work sharing: with one thread stalled (asleep before it
 * takes any work, or asleep holding a chunk, as when the OS deschedules it), the other threads
 * finish every other item before it wakes, and every item is done exactly once; every slot of every
 * job runs exactly once, including when workers have gone to sleep between jobs or the caller has to
 * wait for a slow slot; chunk sizes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "base/threadpool.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

enum { MAX_SLOTS = 8, N_ITEMS = 4099, CHUNK = 16 };
enum stall_mode { STALL_BEFORE, STALL_HOLDING };

struct stall_job {
    struct threadpool_share share;
    int stall_slot;
    enum stall_mode mode;
    atomic_int hits[N_ITEMS];    /* times each item was done */
    atomic_int done_items;       /* items done so far, by anyone */
    atomic_int by_slot[MAX_SLOTS];
    atomic_int calls[MAX_SLOTS];
    int held;                    /* items the stalled slot held while asleep */
    int done_when_woken;         /* done_items when the stalled slot woke up (-1: it never stalled) */
};

static void do_item(struct stall_job *j, int64_t i, int slot)
{
    /* A little work per item, so a chunk is not free. */
    volatile unsigned x = (unsigned)i;
    for (int k = 0; k < 50; k++)
        x = x * 1664525u + 1013904223u;
    atomic_fetch_add(&j->hits[i], 1);
    atomic_fetch_add(&j->by_slot[slot], 1);
    atomic_fetch_add(&j->done_items, 1);
}

static void stall_fn(void *ctx, int slot, int n)
{
    struct stall_job *j = ctx;
    assert_true(slot >= 0 && slot < n && n <= MAX_SLOTS);
    atomic_fetch_add(&j->calls[slot], 1);
    int stalled = 0;
    if (slot == j->stall_slot && j->mode == STALL_BEFORE) {
        sleep_ms(60);
        j->done_when_woken = atomic_load(&j->done_items);
        stalled = 1;
    }
    int64_t first;
    while ((first = threadpool_share_next(&j->share, CHUNK, N_ITEMS)) >= 0) {
        const int64_t end = first + CHUNK < N_ITEMS ? first + CHUNK : N_ITEMS;
        if (slot == j->stall_slot && j->mode == STALL_HOLDING && !stalled) {
            /* Descheduled in the middle of a chunk: the others must finish everything else. */
            stalled = 1;
            j->held = (int)(end - first);
            sleep_ms(60);
            j->done_when_woken = atomic_load(&j->done_items);
        }
        for (int64_t i = first; i < end; i++)
            do_item(j, i, slot);
    }
}

static void run_stalled(struct threadpool *p, int stall_slot, enum stall_mode mode)
{
    static struct stall_job j;
    memset(&j, 0, sizeof j);
    threadpool_share_init(&j.share);
    for (int i = 0; i < N_ITEMS; i++)
        atomic_init(&j.hits[i], 0);
    atomic_init(&j.done_items, 0);
    for (int s = 0; s < MAX_SLOTS; s++) {
        atomic_init(&j.by_slot[s], 0);
        atomic_init(&j.calls[s], 0);
    }
    j.stall_slot = stall_slot;
    j.mode = mode;
    j.done_when_woken = -1;
    threadpool_run(p, stall_fn, &j);

    const int n = threadpool_size(p);
    for (int i = 0; i < N_ITEMS; i++)
        if (atomic_load(&j.hits[i]) != 1)
            fail_msg("%d threads, slot %d stalled: item %d done %d times", n, stall_slot, i,
                     atomic_load(&j.hits[i]));
    int sum = 0;
    for (int s = 0; s < n; s++) {
        assert_int_equal(atomic_load(&j.calls[s]), 1);
        sum += atomic_load(&j.by_slot[s]);
    }
    assert_int_equal(sum, N_ITEMS);
    if (mode == STALL_BEFORE) {
        /* It slept before taking anything: when it woke, the others had done every item. */
        assert_int_equal(j.done_when_woken, N_ITEMS);
        assert_int_equal(atomic_load(&j.by_slot[stall_slot]), 0);
    } else if (j.done_when_woken >= 0) {
        /* It held one chunk while asleep: everything else was done when it woke. */
        if (j.done_when_woken != N_ITEMS - j.held)
            fail_msg("%d threads, slot %d held %d items: %d of %d others done when it woke", n, stall_slot,
                     j.held, j.done_when_woken, N_ITEMS - j.held);
        assert_true(atomic_load(&j.by_slot[stall_slot]) >= j.held);
    }
}

/* A pool of n threads (the test fails if it cannot be made). */
static struct threadpool *make_pool(int n)
{
    struct err e = {0};
    struct threadpool *p = NULL;
    assert_int_equal(threadpool_new(n, &p, &e), 0);
    return p;
}

/* One thread of the job stalled (slot 0 is always the caller's; other slots go to whichever thread
 * claims them): the running threads take its rows, and every row is done once. */
static void test_stalled_thread(void **state)
{
    (void)state;
    for (int threads = 2; threads <= 4; threads++) {
        struct threadpool *p = make_pool(threads);
        for (int stall = 0; stall < 2; stall++) {
            run_stalled(p, stall, STALL_BEFORE);
            run_stalled(p, stall, STALL_HOLDING);
        }
        run_stalled(p, threads - 1, STALL_HOLDING);
        threadpool_free(p);
    }
}

struct slots_job {
    atomic_int calls[MAX_SLOTS];
    int slow_slot;   /* this slot sleeps (the caller then waits on the pool's condition variable) */
    long long sum[MAX_SLOTS];
};

static void slots_fn(void *ctx, int slot, int n)
{
    struct slots_job *j = ctx;
    assert_true(slot >= 0 && slot < n && n <= MAX_SLOTS);
    atomic_fetch_add(&j->calls[slot], 1);
    if (slot == j->slow_slot)
        sleep_ms(1);
    long long s = 0;
    for (int i = slot; i < 10000; i += n)
        s += i;
    j->sum[slot] = s;
}

/* Every slot of every job runs exactly once: back to back (workers spinning), after pauses long
 * enough for the workers to sleep, and with a slow slot the caller must sleep waiting for. */
static void test_every_slot_once(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        struct threadpool *p = make_pool(threads);
        for (int round = 0; round < 600; round++) {
            struct slots_job j;
            memset(&j, 0, sizeof j);
            for (int s = 0; s < MAX_SLOTS; s++)
                atomic_init(&j.calls[s], 0);
            j.slow_slot = round % 50 == 7 ? round % threads : -1;
            if (round % 100 == 3)
                sleep_ms(5); /* workers go to sleep */
            threadpool_run(p, slots_fn, &j);
            long long total = 0;
            for (int s = 0; s < threads; s++) {
                assert_int_equal(atomic_load(&j.calls[s]), 1);
                total += j.sum[s];
            }
            for (int s = threads; s < MAX_SLOTS; s++)
                assert_int_equal(atomic_load(&j.calls[s]), 0);
            assert_true(total == 9999LL * 10000 / 2);
        }
        threadpool_free(p);
    }
}

/* Every item handed out once, in order of claims, by threadpool_share_next, with the last chunk
 * cut at the total. */
static void test_share_counter(void **state)
{
    (void)state;
    struct threadpool_share s;
    threadpool_share_init(&s);
    assert_int_equal(threadpool_share_next(&s, 10, 25), 0);
    assert_int_equal(threadpool_share_next(&s, 10, 25), 10);
    assert_int_equal(threadpool_share_next(&s, 10, 25), 20);
    assert_int_equal(threadpool_share_next(&s, 10, 25), -1);
    assert_int_equal(threadpool_share_next(&s, 10, 25), -1);
    threadpool_share_init(&s);
    assert_int_equal(threadpool_share_next(&s, 4, 0), -1);
}

static void test_chunk_sizes(void **state)
{
    (void)state;
    /* Decode-sized: 2048 rows, 2 threads, 8 chunks each -> 128 rows. */
    assert_int_equal(threadpool_chunk(2048, 2, 8, 4, 0), 128);
    /* Capped (a byte budget), and the cap rounded down to the alignment. */
    assert_int_equal(threadpool_chunk(2048, 2, 8, 4, 50), 48);
    /* Rounded up to the alignment (tile rows) and never below it. */
    assert_int_equal(threadpool_chunk(100, 2, 4, 8, 0), 16);
    assert_int_equal(threadpool_chunk(5, 4, 8, 8, 0), 8);
    assert_int_equal(threadpool_chunk(0, 2, 8, 4, 0), 4);
    /* A cap below the alignment is ignored. */
    assert_int_equal(threadpool_chunk(4096, 1, 1, 8, 3), 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_counter),
        cmocka_unit_test(test_chunk_sizes),
        cmocka_unit_test(test_every_slot_once),
        cmocka_unit_test(test_stalled_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
