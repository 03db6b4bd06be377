/* testutil.c — see testutil.h. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"

static const char *resolve(const char *env, const char *fallback, const char *rel)
{
    static char bufs[8][4096];
    static int next;
    char *buf = bufs[next++ % 8];
    const char *root = getenv(env);
    if (!root)
        root = fallback;
    snprintf(buf, sizeof bufs[0], "%s/%s", root, rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

const char *tu_shared(const char *rel) { return resolve("HEARTH_SHARED", "../shared", rel); }
const char *tu_testdata(const char *rel) { return resolve("HEARTH_TESTDATA", "testdata", rel); }

char *tu_read(const char *path, size_t *size)
{
    char *data = NULL;
    size_t n = 0;
    struct err e = {0};
    if (file_read_all(path, &data, &n, &e) != 0)
        fail_msg("%s", e.msg);
    if (size)
        *size = n;
    return data;
}

static char tmpdir[256];

static void remove_tmpdir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *tu_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-test-XXXXXX");
        if (!mkdtemp(tmpdir))
            fail_msg("mkdtemp failed");
        atexit(remove_tmpdir);
    }
    return tmpdir;
}
