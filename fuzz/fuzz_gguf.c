/* fuzz_gguf.c — libFuzzer target for the GGUF reader: any byte string must either parse or fail
 * with ERR_FORMAT and a message; on success every value and tensor byte is touched so the
 * sanitizers see any pointer that escapes the input. Build and run: see fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

static volatile unsigned sink;

static void touch_value(const struct gguf_value *v)
{
    if (v->type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < v->v.str.len; i++)
            sink += (uint8_t)v->v.str.ptr[i];
        return;
    }
    if (v->type != GGUF_TYPE_ARRAY)
        return;
    const struct gguf_array *a = &v->v.arr;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->elem_type == GGUF_TYPE_STRING)
            for (uint64_t j = 0; j < a->strs[i].len; j++)
                sink += (uint8_t)a->strs[i].ptr[j];
        else if (a->elem_type == GGUF_TYPE_ARRAY)
            touch_value(&a->values[i]);
        else
            sink += gguf_arr_u32(a, i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *f = NULL;
    struct err e = {0};
    int rc = gguf_parse(data, size, "fuzz.gguf", &f, &e);
    if (rc != 0) {
        /* Failures must be clean: a format error with a message, and nothing returned. */
        if (f || (rc != ERR_FORMAT && rc != ERR_NOMEM) || e.msg[0] == '\0')
            abort();
        return 0;
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        touch_value(&f->kv[i].value);
        char *key = gguf_str_dup(f->kv[i].key);
        if (key && gguf_find_kv(f, key) != &f->kv[i])
            abort();
        free(key);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (gguf_find_tensor(f, t->name) != t)
            abort();
        const uint8_t *p = t->data;
        for (size_t j = 0; j < t->size; j++)
            sink += p[j];
    }
    gguf_close(f);
    return 0;
}
