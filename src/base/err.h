/* err.h — errors as values: a status code plus a message a user can act on.
 *
 * Every function that can fail returns int (0 on success, a negative ERR_* code on failure) and
 * fills the caller-owned struct err with a message naming what was wrong and where. */
#ifndef HEARTH_BASE_ERR_H
#define HEARTH_BASE_ERR_H

enum err_code {
    ERR_OK = 0,
    ERR_IO = -1,          /* open/read/write/mmap failed */
    ERR_FORMAT = -2,      /* a file or input is malformed */
    ERR_NOMEM = -3,       /* allocation failed */
    ERR_UNSUPPORTED = -4, /* well-formed but not something hearth runs */
    ERR_INVALID = -5,     /* bad argument or option */
    ERR_NOTFOUND = -6,    /* a key, tensor, token or file is missing */
    ERR_RANGE = -7,       /* a value is out of its allowed range */
};

struct err {
    int code;
    char msg[1024];
};

/* Sets e (if non-NULL) and returns code, so callers can write `return err_set(e, ERR_IO, ...)`. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (for adding the file or tensor name on the way up). */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(struct err *e);

#endif
