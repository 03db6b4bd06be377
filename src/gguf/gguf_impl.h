/* gguf_impl.h — private to src/gguf/: the reader's hidden state behind struct gguf_file and the
 * small helpers its files share. Nothing outside src/gguf/ includes this. */
#ifndef HEARTH_GGUF_GGUF_IMPL_H
#define HEARTH_GGUF_GGUF_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"

/* Hash index over key or tensor names: open addressing, slots hold entry index + 1 (0 = empty). */
struct gguf_name_index {
    size_t *slots;
    size_t mask;
};

/* The public struct first, so a struct gguf_file pointer converts back to the whole. */
struct gguf_file_impl {
    struct gguf_file pub;
    bool owns_map;
    struct gguf_name_index kv_index;
    struct gguf_name_index tensor_index;
};

/* Looks up a key (tensors false) or tensor name; returns its index, or SIZE_MAX, in which case
 * *slot_out (if non-NULL) is the empty slot where it would go. */
size_t gguf_index_find(const struct gguf_file *f, const struct gguf_name_index *ix, bool tensors, const char *name,
                       size_t len, size_t *slot_out);

/* Bytes of one scalar of type; 0 for STRING, ARRAY and unknown ids. */
size_t gguf_scalar_size(uint32_t type);
bool gguf_type_is_unsigned(uint32_t t);
bool gguf_type_is_signed(uint32_t t);
/* An n-byte little-endian unsigned integer at p (n <= 8), independent of host byte order. */
uint64_t gguf_load_le(const uint8_t *p, unsigned n);

#endif
