/* fuzz_safetensors.c — libFuzzer target for the safetensors reader: any byte string must either
 * parse or fail with ERR_FORMAT/ERR_NOMEM and a message; on success every tensor byte is touched so
 * the sanitizers see a range that escapes the input. The reader is compiled in directly because
 * scripts/fuzz.sh builds targets from the core sources only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/safetensors.c"

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct safetensors_file *f = NULL;
    struct err e = {0};
    int rc = safetensors_parse(data, size, "fuzz.safetensors", &f, &e);
    if (rc != 0) {
        if (f || (rc != ERR_FORMAT && rc != ERR_NOMEM) || e.msg[0] == '\0')
            abort();
        return 0;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const struct safetensors_tensor *t = &f->tensors[i];
        if (safetensors_find(f, t->name) != t || t->n_elems * safetensors_dtype_size(t->dtype) != t->size)
            abort();
        const uint8_t *p = t->data;
        if (t->size && (p < data || p + t->size > data + size))
            abort();
        for (size_t j = 0; j < t->size; j++)
            sink += p[j];
    }
    safetensors_close(f);
    return 0;
}
