/* file.c — memory maps, whole-file reads and atomic writes (see file.h). */
#define _POSIX_C_SOURCE 200809L
#include "base/file.h"

#include <stdatomic.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int file_map_open(struct file_map *m, const char *path, struct err *e)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = err_set(e, ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int rc = err_set(e, ERR_IO, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            return rc;
        }
        m->data = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void file_map_close(struct file_map *m)
{
    if (m->data)
        munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int file_read_all(const char *path, char **data, size_t *size, struct err *e)
{
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(fp);
        return err_set(e, ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(fp);
                return err_set(e, ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, fp);
        len += n;
        if (n == 0)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return err_set(e, ERR_IO, "%s: read error", path);
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return 0;
}

int file_atomic_open(struct file_atomic *w, const char *path, struct err *e)
{
    memset(w, 0, sizeof *w);
    size_t n = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp_path = malloc(n);
    if (!w->path || !w->tmp_path) {
        file_atomic_abort(w);
        return err_set(e, ERR_NOMEM, "%s: out of memory", path);
    }
    /* pid plus a process-wide counter: two threads writing the same path never share a temp file. */
    static atomic_uint counter;
    snprintf(w->tmp_path, n, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    w->fp = fopen(w->tmp_path, "wb");
    if (!w->fp) {
        int rc = err_set(e, ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(errno));
        file_atomic_abort(w);
        return rc;
    }
    return 0;
}

int file_atomic_write(struct file_atomic *w, const void *data, size_t size, struct err *e)
{
    if (size && fwrite(data, 1, size, w->fp) != size)
        return err_set(e, ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

int file_atomic_commit(struct file_atomic *w, struct err *e)
{
    int rc = 0;
    if (fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0)
        rc = err_set(e, ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    if (fclose(w->fp) != 0 && rc == 0)
        rc = err_set(e, ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    w->fp = NULL;
    if (rc == 0 && rename(w->tmp_path, w->path) != 0)
        rc = err_set(e, ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(errno));
    if (rc != 0)
        unlink(w->tmp_path);
    free(w->path);
    free(w->tmp_path);
    w->path = w->tmp_path = NULL;
    return rc;
}

void file_atomic_abort(struct file_atomic *w)
{
    if (w->fp)
        fclose(w->fp);
    if (w->tmp_path)
        unlink(w->tmp_path);
    free(w->path);
    free(w->tmp_path);
    memset(w, 0, sizeof *w);
}
