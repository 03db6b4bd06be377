/* test_base.c — the base module: error formatting, memory maps and whole-file reads, atomic writes
 * (nothing half-written is ever visible), and the thread pool (every thread runs every job, jobs run
 * back to back without loss, results match a serial computation). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/file.h"
#include "base/threadpool.h"

static void test_err(void **state)
{
    (void)state;
    struct err e = {0};
    assert_int_equal(err_set(&e, ERR_FORMAT, "tensor '%s': bad", "x"), ERR_FORMAT);
    assert_string_equal(e.msg, "tensor 'x': bad");
    err_prefix(&e, "%s", "model.gguf");
    assert_string_equal(e.msg, "model.gguf: tensor 'x': bad");
    assert_int_equal(e.code, ERR_FORMAT);
    /* A very long prefix is cut, never overflowing the message buffer. */
    char longp[3000];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    err_prefix(&e, "%s", longp);
    assert_true(strlen(e.msg) < sizeof e.msg);
    assert_int_equal(err_set(NULL, ERR_IO, "ignored"), ERR_IO);
}

static void test_files(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/atomic.bin", tu_tmpdir());
    struct err e = {0};
    struct file_atomic w;
    assert_int_equal(file_atomic_open(&w, path, &e), 0);
    assert_int_equal(file_atomic_write(&w, "hello ", 6, &e), 0);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* invisible until committed */
    assert_int_equal(file_atomic_write(&w, "world", 5, &e), 0);
    assert_int_equal(file_atomic_commit(&w, &e), 0);
    size_t n;
    char *data = tu_read(path, &n);
    assert_int_equal(n, 11);
    assert_string_equal(data, "hello world");
    free(data);

    /* An aborted write leaves the old file untouched and no temporary behind. */
    assert_int_equal(file_atomic_open(&w, path, &e), 0);
    assert_int_equal(file_atomic_write(&w, "junk", 4, &e), 0);
    file_atomic_abort(&w);
    data = tu_read(path, &n);
    assert_string_equal(data, "hello world");
    free(data);

    struct file_map m;
    assert_int_equal(file_map_open(&m, path, &e), 0);
    assert_int_equal(m.size, 11);
    assert_memory_equal(m.data, "hello world", 11);
    file_map_close(&m);

    assert_int_equal(file_map_open(&m, "/nonexistent/x", &e), ERR_IO);
    assert_non_null(strstr(e.msg, "/nonexistent/x"));
    assert_int_equal(file_map_open(&m, tu_tmpdir(), &e), ERR_IO); /* a directory */
    assert_non_null(strstr(e.msg, "not a regular file"));
    char *buf;
    assert_int_equal(file_read_all("/nonexistent/y", &buf, &n, &e), ERR_IO);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/file", tu_tmpdir());
    assert_int_equal(file_atomic_open(&w, bad, &e), ERR_IO);
}

struct sum_job {
    const int *values;
    int n;
    long long partial[64];
    atomic_int calls;
};

static void sum_part(void *ctx, int t, int nt)
{
    struct sum_job *j = ctx;
    long long s = 0;
    for (int i = j->n * t / nt; i < j->n * (t + 1) / nt; i++)
        s += j->values[i];
    j->partial[t] = s;
    atomic_fetch_add(&j->calls, 1);
}

static void test_threadpool(void **state)
{
    (void)state;
    assert_true(threadpool_physical_cores() >= 1);
    enum { N = 100003 };
    int *values = malloc(N * sizeof *values);
    long long want = 0;
    for (int i = 0; i < N; i++) {
        values[i] = (i * 7919) % 1000 - 500;
        want += values[i];
    }
    for (int threads = 1; threads <= 4; threads++) {
        struct err e = {0};
        struct threadpool *p = NULL;
        assert_int_equal(threadpool_new(threads, &p, &e), 0);
        assert_int_equal(threadpool_size(p), threads);
        /* Many jobs back to back: each runs on every thread exactly once. */
        for (int round = 0; round < 300; round++) {
            struct sum_job j = {.values = values, .n = N};
            atomic_init(&j.calls, 0);
            threadpool_run(p, sum_part, &j);
            long long got = 0;
            for (int t = 0; t < threads; t++)
                got += j.partial[t];
            assert_int_equal(atomic_load(&j.calls), threads);
            assert_true(got == want);
        }
        threadpool_free(p);
    }
    struct err e = {0};
    struct threadpool *p = NULL;
    assert_int_equal(threadpool_new(100000, &p, &e), ERR_INVALID);
    free(values);
}

static void test_clock(void **state)
{
    (void)state;
    int64_t a = clock_ns(), b = clock_ns();
    assert_true(b >= a);
    assert_true(clock_peak_rss_bytes() > 1 << 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
