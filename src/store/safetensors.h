/* safetensors.h — a validated, zero-copy reader for Hugging Face .safetensors files.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte after the header),
 * an optional "__metadata__" object of strings, then the data. safetensors_open maps the file and
 * checks everything before returning: the header fits the file, it is a JSON object without
 * duplicate keys, every dtype is known, every shape's element count times the element size equals
 * its byte range without overflow, every range lies inside the data section, and no two ranges
 * overlap. Errors are ERR_FORMAT (ERR_UNSUPPORTED for a dtype hearth cannot convert) and name the
 * file and the tensor. */
#ifndef HEARTH_STORE_SAFETENSORS_H
#define HEARTH_STORE_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/file.h"

enum safetensors_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_I64,
    ST_U64,
    ST_F64,
};

#define SAFETENSORS_MAX_DIMS 8
/* The header may not exceed this (the reference implementation's own limit is 100 MB). */
#define SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

struct safetensors_tensor {
    char *name;                            /* NUL-terminated copy */
    enum safetensors_dtype dtype;
    uint32_t n_dims;                       /* 0 for a scalar */
    int64_t shape[SAFETENSORS_MAX_DIMS];   /* outermost first, as in the file (PyTorch order) */
    uint64_t n_elems;
    const void *data;                      /* in the map; NOT necessarily aligned */
    size_t size;                           /* bytes */
};

struct safetensors_file {
    char *path;
    struct file_map map; /* empty when parsed from memory */
    size_t n_tensors;
    struct safetensors_tensor *tensors; /* sorted by name */
    uint64_t data_offset;               /* 8 + header length */
};

int safetensors_open(const char *path, struct safetensors_file **out, struct err *e);
/* Parses an in-memory image (fuzzing, tests); data must outlive the result. */
int safetensors_parse(const void *data, size_t size, const char *name, struct safetensors_file **out,
                      struct err *e);
void safetensors_close(struct safetensors_file *f);

/* Binary search by name; NULL if absent. */
const struct safetensors_tensor *safetensors_find(const struct safetensors_file *f, const char *name);

/* Bytes per element; "F16", "BF16", ... as the file spells the dtype. */
size_t safetensors_dtype_size(enum safetensors_dtype t);
const char *safetensors_dtype_name(enum safetensors_dtype t);

#endif
