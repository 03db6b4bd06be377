/* gguf.h — GGUF files: a validated, zero-copy reader over a memory map, and a writer.
 *
 * Reading: gguf_open maps the file, parses and validates the whole header (magic, version, counts,
 * every string and array length, every tensor's type, dimensions, offset and size against the file),
 * and leaves tensor data in place: gguf_tensor.data points into the map. Any problem is an ERR_FORMAT
 * naming the file, the field and what is wrong.
 * Writing: gguf_writer collects metadata and tensors and writes a v3 file atomically. */
#ifndef HEARTH_GGUF_GGUF_H
#define HEARTH_GGUF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/file.h"

enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the map: not NUL-terminated. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

struct gguf_value;

struct gguf_array {
    uint32_t elem_type; /* enum gguf_type */
    uint64_t n;
    const uint8_t *raw;        /* scalar elements: n packed little-endian values in the map */
    struct gguf_str *strs;     /* string elements: n entries (owned by the gguf_file) */
    struct gguf_value *values; /* nested arrays: n entries (owned by the gguf_file) */
};

struct gguf_value {
    uint32_t type; /* enum gguf_type */
    union {
        uint64_t u64; /* every unsigned integer type, widened */
        int64_t i64;  /* every signed integer type, widened */
        double f64;   /* FLOAT32 and FLOAT64, widened */
        bool b;
        struct gguf_str str;
        struct gguf_array arr;
    } v;
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value value;
};

struct gguf_tensor {
    char *name; /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the innermost (row length); unused dims are 1 */
    uint32_t type;             /* enum dtype */
    uint64_t offset;           /* relative to the start of the data section */
    const void *data;          /* in the map */
    size_t size;               /* bytes */
};

struct gguf_file {
    char *path;
    struct file_map map;
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    uint64_t data_offset; /* start of the tensor data section in the file */
};

/* Opens, maps and validates path. On failure *out is NULL and e says why. */
int gguf_open(const char *path, struct gguf_file **out, struct err *e);
/* Parses an in-memory image (used by fuzzing and tests); data must outlive the result. */
int gguf_parse(const void *data, size_t size, const char *name, struct gguf_file **out, struct err *e);
void gguf_close(struct gguf_file *f);

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* Typed getters. Each returns 0 and sets *out, ERR_NOTFOUND if the key is absent, or ERR_FORMAT
 * (with a message naming the key) if the value has the wrong type or does not fit. Integer getters
 * accept any integer type whose value fits; float getters accept FLOAT32/FLOAT64 and integers. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, struct err *e);
int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out, struct err *e);
int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, struct err *e);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, struct err *e);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct err *e);
int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out, struct err *e);
/* Array of a given element type (GGUF_TYPE_STRING for strings); ERR_FORMAT on other element types. */
int gguf_get_arr(const struct gguf_file *f, const char *key, uint32_t elem_type,
                 const struct gguf_array **out, struct err *e);

/* Element access for scalar arrays (handles unaligned storage). */
uint32_t gguf_arr_u32(const struct gguf_array *a, uint64_t i);
int32_t gguf_arr_i32(const struct gguf_array *a, uint64_t i);
float gguf_arr_f32(const struct gguf_array *a, uint64_t i);

bool gguf_str_eq(struct gguf_str s, const char *cstr);
/* malloc'd NUL-terminated copy, or NULL when out of memory. */
char *gguf_str_dup(struct gguf_str s);
const char *gguf_type_name(uint32_t t);

/* ---- writer ---- */

struct gguf_writer;

/* Produces a tensor's bytes at write time, so huge files never need all tensors in memory at once.
 * dst has room for exactly size bytes. */
typedef int (*gguf_fill_fn)(void *ctx, void *dst, size_t size, struct err *e);

struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w);

/* Metadata setters copy their arguments. Setting an existing key replaces it. Each returns 0 or
 * ERR_NOMEM. */
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* Scalar array: n elements of elem_type, packed little-endian in data. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                        uint64_t n);
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Copies one key/value (any type, nested arrays included) from a file being read. */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv);
int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment);

/* Adds a tensor. data (size bytes, must equal dtype_row_bytes(type, ne[0]) * rows) is referenced,
 * not copied: it must stay valid until gguf_writer_write returns. Use add_tensor_fill to produce
 * the bytes lazily instead. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data, struct err *e);
int gguf_writer_add_tensor_fill(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne, gguf_fill_fn fill, void *ctx, struct err *e);

/* Writes the file atomically (temporary file, fsync, rename). */
int gguf_writer_write(struct gguf_writer *w, const char *path, struct err *e);

#endif
