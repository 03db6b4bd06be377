/* safetensors.c — the .safetensors reader: maps the file, parses the JSON header with jansson and
 * validates every tensor against the file before anything is handed out (see safetensors.h). */
#include "store/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},     [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_I16] = {"I16", 2}, [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4}, [ST_U32] = {"U32", 4},   [ST_F32] = {"F32", 4},
    [ST_I64] = {"I64", 8},   [ST_U64] = {"U64", 8}, [ST_F64] = {"F64", 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

size_t safetensors_dtype_size(enum safetensors_dtype t)
{
    return (size_t)t < N_DTYPES ? dtypes[t].size : 0;
}

const char *safetensors_dtype_name(enum safetensors_dtype t)
{
    return (size_t)t < N_DTYPES ? dtypes[t].name : "unknown";
}

void safetensors_close(struct safetensors_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    file_map_close(&f->map);
    free(f->path);
    free(f);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct safetensors_tensor *)a)->name, ((const struct safetensors_tensor *)b)->name);
}

/* Sorts by data start so neighbours can be checked for overlap. */
static int cmp_offset(const void *a, const void *b)
{
    const struct safetensors_tensor *x = *(const struct safetensors_tensor *const *)a;
    const struct safetensors_tensor *y = *(const struct safetensors_tensor *const *)b;
    const char *px = x->data, *py = y->data;
    if (px != py)
        return px < py ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

/* A JSON integer that is a valid non-negative size. */
static bool get_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int parse_tensor(const char *fname, const char *key, json_t *val, const uint8_t *data, uint64_t data_size,
                        struct safetensors_tensor *t, struct err *e)
{
    if (!json_is_object(val))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", fname, key);
    json_t *dt = json_object_get(val, "dtype"), *shape = json_object_get(val, "shape"),
           *offs = json_object_get(val, "data_offsets");
    if (!json_is_string(dt))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", fname, key);
    size_t k;
    for (k = 0; k < N_DTYPES; k++)
        if (strcmp(json_string_value(dt), dtypes[k].name) == 0)
            break;
    if (k == N_DTYPES)
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", fname, key, json_string_value(dt));
    t->dtype = (enum safetensors_dtype)k;
    if (!json_is_array(shape))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", fname, key);
    if (json_array_size(shape) > SAFETENSORS_MAX_DIMS)
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': %zu dimensions (at most %d supported)", fname, key,
                       json_array_size(shape), SAFETENSORS_MAX_DIMS);
    t->n_dims = (uint32_t)json_array_size(shape);
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t dim;
        if (!get_u64(json_array_get(shape, d), &dim) || dim > INT64_MAX)
            return err_set(e, ERR_FORMAT, "%s: tensor '%s': shape[%u] is not a non-negative integer", fname, key, d);
        t->shape[d] = (int64_t)dim;
        if (dim && n > UINT64_MAX / dim)
            return err_set(e, ERR_FORMAT, "%s: tensor '%s': element count overflows", fname, key);
        n *= dim;
    }
    t->n_elems = n;
    uint64_t begin, end;
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !get_u64(json_array_get(offs, 0), &begin) ||
        !get_u64(json_array_get(offs, 1), &end))
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end] non-negative integers",
                       fname, key);
    if (begin > end || end > data_size)
        return err_set(e, ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data section (%llu bytes)", fname,
                       key, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    uint64_t esz = dtypes[k].size;
    if (n > UINT64_MAX / esz || n * esz != end - begin)
        return err_set(e, ERR_FORMAT, "%s: tensor '%s': %llu bytes in data_offsets, but shape and %s need %llu", fname,
                       key, (unsigned long long)(end - begin), dtypes[k].name,
                       n > UINT64_MAX / esz ? 0ULL : (unsigned long long)(n * esz));
    t->data = data + begin;
    t->size = (size_t)(end - begin);
    return 0;
}

int safetensors_parse(const void *data, size_t size, const char *name, struct safetensors_file **out,
                      struct err *e)
{
    *out = NULL;
    const uint8_t *p = data;
    if (size < 8)
        return err_set(e, ERR_FORMAT, "%s: file too short for a safetensors header (%zu bytes)", name, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > SAFETENSORS_MAX_HEADER)
        return err_set(e, ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit (not a safetensors file?)",
                       name, (unsigned long long)hlen, SAFETENSORS_MAX_HEADER);
    if (hlen > size - 8)
        return err_set(e, ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes): truncated?",
                       name, (unsigned long long)hlen, size);
    json_error_t je;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return err_set(e, ERR_FORMAT, "%s: header is not valid JSON: %s (byte %d)", name, je.text, je.position);
    int rc = 0;
    struct safetensors_file *f = calloc(1, sizeof *f);
    struct safetensors_tensor **order = NULL;
    if (!f || !(f->path = strdup(name))) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = err_set(e, ERR_FORMAT, "%s: header is not a JSON object", name);
        goto fail;
    }
    f->data_offset = 8 + hlen;
    const uint8_t *base = p + f->data_offset;
    uint64_t data_size = size - f->data_offset;
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                rc = err_set(e, ERR_FORMAT, "%s: \"__metadata__\" is not an object", name);
                goto fail;
            }
            continue;
        }
        if (!*key) {
            rc = err_set(e, ERR_FORMAT, "%s: a tensor has an empty name", name);
            goto fail;
        }
        struct safetensors_tensor *t = &f->tensors[f->n_tensors];
        if ((rc = parse_tensor(name, key, val, base, data_size, t, e)))
            goto fail;
        if (!(t->name = strdup(key))) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto fail;
        }
        f->n_tensors++;
    }
    /* Overlapping byte ranges would let one tensor's bytes be read as another's. */
    order = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *order);
    if (!order) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, cmp_offset);
    for (size_t i = 1; i < f->n_tensors; i++) {
        const struct safetensors_tensor *a = order[i - 1], *b = order[i];
        if (a->size && b->size && (const uint8_t *)a->data + a->size > (const uint8_t *)b->data) {
            rc = err_set(e, ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", name, a->name,
                         b->name);
            goto fail;
        }
    }
    free(order);
    order = NULL;
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_name);
    json_decref(root);
    *out = f;
    return 0;
fail:
    free(order);
    json_decref(root);
    safetensors_close(f);
    return rc;
}

int safetensors_open(const char *path, struct safetensors_file **out, struct err *e)
{
    *out = NULL;
    struct file_map m = {0};
    int rc = file_map_open(&m, path, e);
    if (rc)
        return rc;
    rc = safetensors_parse(m.data, m.size, path, out, e);
    if (rc) {
        file_map_close(&m);
        return rc;
    }
    (*out)->map = m;
    return 0;
}

const struct safetensors_tensor *safetensors_find(const struct safetensors_file *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0)
            return &f->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
