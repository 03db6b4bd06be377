/* gguf_get.c — reading a parsed GGUF file: key and tensor lookups through the name index, typed
 * getters that convert between compatible types only when the value fits, and element access for
 * scalar arrays stored (possibly unaligned) in the map. */
#include "gguf/gguf.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_impl.h"

const char *gguf_type_name(uint32_t t)
{
    static const char *const names[] = {
        [GGUF_TYPE_UINT8] = "UINT8",     [GGUF_TYPE_INT8] = "INT8",       [GGUF_TYPE_UINT16] = "UINT16",
        [GGUF_TYPE_INT16] = "INT16",     [GGUF_TYPE_UINT32] = "UINT32",   [GGUF_TYPE_INT32] = "INT32",
        [GGUF_TYPE_FLOAT32] = "FLOAT32", [GGUF_TYPE_BOOL] = "BOOL",       [GGUF_TYPE_STRING] = "STRING",
        [GGUF_TYPE_ARRAY] = "ARRAY",     [GGUF_TYPE_UINT64] = "UINT64",   [GGUF_TYPE_INT64] = "INT64",
        [GGUF_TYPE_FLOAT64] = "FLOAT64",
    };
    if (t < sizeof names / sizeof names[0] && names[t])
        return names[t];
    return "unknown";
}

bool gguf_str_eq(struct gguf_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}

char *gguf_str_dup(struct gguf_str s)
{
    if (s.len >= SIZE_MAX)
        return NULL;
    char *p = malloc((size_t)s.len + 1);
    if (!p)
        return NULL;
    if (s.len)
        memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = '\0';
    return p;
}

/* ---- lookups ---- */

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key)
{
    const struct gguf_file_impl *fi = (const struct gguf_file_impl *)f;
    size_t i = gguf_index_find(f, &fi->kv_index, false, key, strlen(key), NULL);
    return i == SIZE_MAX ? NULL : &f->kv[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    const struct gguf_file_impl *fi = (const struct gguf_file_impl *)f;
    size_t i = gguf_index_find(f, &fi->tensor_index, true, name, strlen(name), NULL);
    return i == SIZE_MAX ? NULL : &f->tensors[i];
}

/* ---- typed getters ---- */

static int find_or_fail(const struct gguf_file *f, const char *key, const struct gguf_value **v, struct err *e)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return err_set(e, ERR_NOTFOUND, "%s: key '%s' not found", f->path, key);
    *v = &kv->value;
    return 0;
}

static int wrong_type(const struct gguf_file *f, const char *key, const struct gguf_value *v, const char *want,
                      struct err *e)
{
    return err_set(e, ERR_FORMAT, "%s: key '%s' is %s, expected %s", f->path, key, gguf_type_name(v->type), want);
}

/* Reads any integer value as sign + magnitude so each getter can range-check once. */
static int get_integer(const struct gguf_file *f, const char *key, bool *neg, uint64_t *mag, struct err *e)
{
    const struct gguf_value *v = NULL;
    int rc = find_or_fail(f, key, &v, e);
    if (rc)
        return rc;
    if (gguf_type_is_unsigned(v->type)) {
        *neg = false;
        *mag = v->v.u64;
    } else if (gguf_type_is_signed(v->type)) {
        *neg = v->v.i64 < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)v->v.i64 : (uint64_t)v->v.i64;
    } else {
        return wrong_type(f, key, v, "an integer", e);
    }
    return 0;
}

static int out_of_range(const struct gguf_file *f, const char *key, bool neg, uint64_t mag, const char *target,
                        struct err *e)
{
    return err_set(e, ERR_FORMAT, "%s: key '%s' value %s%" PRIu64 " does not fit in %s", f->path, key, neg ? "-" : "",
                   mag, target);
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, struct err *e)
{
    bool neg;
    uint64_t mag;
    int rc = get_integer(f, key, &neg, &mag, e);
    if (rc)
        return rc;
    if (neg || mag > UINT32_MAX)
        return out_of_range(f, key, neg, mag, "uint32", e);
    *out = (uint32_t)mag;
    return 0;
}

int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out, struct err *e)
{
    bool neg;
    uint64_t mag;
    int rc = get_integer(f, key, &neg, &mag, e);
    if (rc)
        return rc;
    if (neg)
        return out_of_range(f, key, neg, mag, "uint64", e);
    *out = mag;
    return 0;
}

int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, struct err *e)
{
    bool neg;
    uint64_t mag;
    int rc = get_integer(f, key, &neg, &mag, e);
    if (rc)
        return rc;
    if (!neg && mag > (uint64_t)INT64_MAX)
        return out_of_range(f, key, neg, mag, "int64", e);
    /* A negative magnitude is at most 2^63 because it came from an int64. */
    *out = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return 0;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, struct err *e)
{
    const struct gguf_value *v = NULL;
    int rc = find_or_fail(f, key, &v, e);
    if (rc)
        return rc;
    if (v->type == GGUF_TYPE_FLOAT32 || v->type == GGUF_TYPE_FLOAT64) {
        double d = v->v.f64;
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return err_set(e, ERR_FORMAT, "%s: key '%s' value %g does not fit in float32", f->path, key, d);
        *out = (float)d;
    } else if (gguf_type_is_unsigned(v->type)) {
        *out = (float)v->v.u64;
    } else if (gguf_type_is_signed(v->type)) {
        *out = (float)v->v.i64;
    } else {
        return wrong_type(f, key, v, "a number", e);
    }
    return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct err *e)
{
    const struct gguf_value *v = NULL;
    int rc = find_or_fail(f, key, &v, e);
    if (rc)
        return rc;
    if (v->type != GGUF_TYPE_BOOL)
        return wrong_type(f, key, v, "BOOL", e);
    *out = v->v.b;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out, struct err *e)
{
    const struct gguf_value *v = NULL;
    int rc = find_or_fail(f, key, &v, e);
    if (rc)
        return rc;
    if (v->type != GGUF_TYPE_STRING)
        return wrong_type(f, key, v, "STRING", e);
    *out = v->v.str;
    return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, uint32_t elem_type, const struct gguf_array **out,
                 struct err *e)
{
    const struct gguf_value *v = NULL;
    int rc = find_or_fail(f, key, &v, e);
    if (rc)
        return rc;
    if (v->type != GGUF_TYPE_ARRAY)
        return wrong_type(f, key, v, "ARRAY", e);
    if (v->v.arr.elem_type != elem_type)
        return err_set(e, ERR_FORMAT, "%s: key '%s' is an array of %s, expected an array of %s", f->path, key,
                       gguf_type_name(v->v.arr.elem_type), gguf_type_name(elem_type));
    *out = &v->v.arr;
    return 0;
}

/* ---- array elements ---- */

/* Element i of a scalar array as raw little-endian bits; the caller interprets them by type. */
static uint64_t arr_bits(const struct gguf_array *a, uint64_t i)
{
    size_t esz = gguf_scalar_size(a->elem_type);
    if (!esz || i >= a->n)
        return 0;
    return gguf_load_le(a->raw + i * esz, (unsigned)esz);
}

static int64_t sign_extend(uint64_t bits, size_t bytes)
{
    unsigned shift = 64 - 8 * (unsigned)bytes;
    return (int64_t)(bits << shift) >> shift;
}

static double arr_number(const struct gguf_array *a, uint64_t i)
{
    uint64_t bits = arr_bits(a, i);
    if (a->elem_type == GGUF_TYPE_FLOAT32) {
        uint32_t b32 = (uint32_t)bits;
        float fl;
        memcpy(&fl, &b32, 4);
        return fl;
    }
    if (a->elem_type == GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, &bits, 8);
        return d;
    }
    if (gguf_type_is_signed(a->elem_type))
        return (double)sign_extend(bits, gguf_scalar_size(a->elem_type));
    return (double)bits;
}

/* Integer accessors read integer arrays of any width (truncating like a C cast); a float array
 * yields 0 here, because converting an out-of-range float to an integer is undefined. */
uint32_t gguf_arr_u32(const struct gguf_array *a, uint64_t i) { return (uint32_t)gguf_arr_i32(a, i); }

int32_t gguf_arr_i32(const struct gguf_array *a, uint64_t i)
{
    if (gguf_type_is_signed(a->elem_type))
        return (int32_t)sign_extend(arr_bits(a, i), gguf_scalar_size(a->elem_type));
    if (gguf_type_is_unsigned(a->elem_type) || a->elem_type == GGUF_TYPE_BOOL)
        return (int32_t)(uint32_t)arr_bits(a, i);
    return 0;
}

float gguf_arr_f32(const struct gguf_array *a, uint64_t i) { return (float)arr_number(a, i); }
