/* file.h — files: read-only memory maps, whole-file reads, and atomic writes (temp, fsync, rename). */
#ifndef HEARTH_BASE_FILE_H
#define HEARTH_BASE_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "base/err.h"

struct file_map {
    const void *data; /* NULL when size is 0 */
    size_t size;
};

/* Maps path read-only (MAP_SHARED, so weights stay in the page cache and are never copied). */
int file_map_open(struct file_map *m, const char *path, struct err *e);
void file_map_close(struct file_map *m);

/* Reads a whole file into a NUL-terminated malloc'd buffer; *size excludes the terminator. */
int file_read_all(const char *path, char **data, size_t *size, struct err *e);

/* Atomic writer: bytes go to "<path>.tmp-<pid>-<n>"; commit fsyncs and renames over path, abort unlinks. */
struct file_atomic {
    FILE *fp;
    char *path;
    char *tmp_path;
};
int file_atomic_open(struct file_atomic *w, const char *path, struct err *e);
int file_atomic_write(struct file_atomic *w, const void *data, size_t size, struct err *e);
int file_atomic_commit(struct file_atomic *w, struct err *e);
void file_atomic_abort(struct file_atomic *w);

#endif
