/* gguf_read.c — the GGUF reader: parses and validates a whole file header over a memory map.
 *
 * Nothing read from the file is trusted: every length is checked against the bytes that remain
 * before it is used, every count is bounded by what the remaining bytes could hold (so a hostile
 * count cannot make us allocate more than a small multiple of the file size), and all size math is
 * overflow-checked. Strings, scalar arrays and tensor data stay in the map; only the small index
 * structures (key/value table, string and nested-array tables, tensor table, name hash) are
 * allocated. Lookups and typed getters are in gguf_get.c. */
#include "gguf/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_impl.h"
#include "tensor/tensor.h"

/* Arrays of arrays may nest; real files use at most two levels. The limit keeps a crafted file from
 * exhausting the stack through recursion. */
#define GGUF_MAX_NESTING 8

/* Smallest possible encodings, used to bound counts before allocating. */
#define MIN_KV_BYTES 13     /* key length (8) + value type (4) + one-byte value */
#define MIN_TENSOR_BYTES 32 /* name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8) */
#define MIN_ARRAY_BYTES 12  /* element type (4) + count (8) */

/* Read position in the image plus what is being read, for error messages. */
struct cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *name; /* file name for messages */
    struct err *e;
    char what[320]; /* the field being parsed, e.g. "key 'general.alignment'" */
};

/* ---- small helpers ---- */

uint64_t gguf_load_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t hash_bytes(const void *data, size_t n)
{
    /* FNV-1a: short keys, no adversarial-collision concern beyond a slower lookup. */
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

size_t gguf_scalar_size(uint32_t type)
{
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0; /* STRING, ARRAY or unknown */
    }
}

bool gguf_type_is_unsigned(uint32_t t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}

bool gguf_type_is_signed(uint32_t t)
{
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

/* Formats a message "<file>: <what>: <problem>" into the cursor's error. */
static int fail(struct cursor *c, int code, const char *problem)
{
    if (c->what[0])
        return err_set(c->e, code, "%s: %s: %s", c->name, c->what, problem);
    return err_set(c->e, code, "%s: %s", c->name, problem);
}

static size_t remaining(const struct cursor *c) { return c->size - c->pos; }

/* Checks that n more bytes exist; the message says what was being read and where. */
static int need(struct cursor *c, uint64_t n, const char *item)
{
    if (n <= remaining(c))
        return 0;
    char msg[256];
    snprintf(msg, sizeof msg, "truncated: %s needs %" PRIu64 " bytes at offset %zu, but the file has %zu bytes",
             item, n, c->pos, c->size);
    return fail(c, ERR_FORMAT, msg);
}

static int read_uint(struct cursor *c, unsigned n, const char *item, uint64_t *out)
{
    int rc = need(c, n, item);
    if (rc)
        return rc;
    *out = gguf_load_le(c->base + c->pos, n);
    c->pos += n;
    return 0;
}

static int read_u32(struct cursor *c, const char *item, uint32_t *out)
{
    uint64_t v = 0;
    int rc = read_uint(c, 4, item, &v);
    *out = (uint32_t)v;
    return rc;
}

static int read_u64(struct cursor *c, const char *item, uint64_t *out) { return read_uint(c, 8, item, out); }

static int read_str(struct cursor *c, const char *item, struct gguf_str *out)
{
    uint64_t len;
    int rc = read_u64(c, item, &len);
    if (rc)
        return rc;
    if (len > remaining(c)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s length %" PRIu64 " at offset %zu exceeds the %zu bytes left in the file",
                 item, len, c->pos - 8, remaining(c));
        return fail(c, ERR_FORMAT, msg);
    }
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += (size_t)len;
    return 0;
}

/* Bounds an element count by the bytes left, given the smallest encoding of one element. */
static int check_count(struct cursor *c, uint64_t n, size_t min_bytes, const char *item)
{
    if (n <= remaining(c) / min_bytes)
        return 0;
    char msg[320];
    snprintf(msg, sizeof msg,
             "%s %" PRIu64 " is impossible: at least %zu bytes each, but only %zu bytes are left in the file",
             item, n, min_bytes, remaining(c));
    return fail(c, ERR_FORMAT, msg);
}

/* ---- values ---- */

static void free_value(struct gguf_value *v)
{
    if (v->type != GGUF_TYPE_ARRAY)
        return;
    free(v->v.arr.strs);
    if (v->v.arr.values) {
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            free_value(&v->v.arr.values[i]);
        free(v->v.arr.values);
    }
    v->v.arr.strs = NULL;
    v->v.arr.values = NULL;
}

static int parse_value(struct cursor *c, uint32_t type, struct gguf_value *out, int depth);

static int parse_array(struct cursor *c, struct gguf_array *a, int depth)
{
    int rc;
    if (depth >= GGUF_MAX_NESTING) {
        char msg[128];
        snprintf(msg, sizeof msg, "arrays nested deeper than %d levels", GGUF_MAX_NESTING);
        return fail(c, ERR_FORMAT, msg);
    }
    if ((rc = read_u32(c, "array element type", &a->elem_type)) != 0)
        return rc;
    if ((rc = read_u64(c, "array length", &a->n)) != 0)
        return rc;
    a->raw = c->base + c->pos;
    size_t esz = gguf_scalar_size(a->elem_type);
    if (esz) {
        if ((rc = check_count(c, a->n, esz, "array length")) != 0)
            return rc;
        size_t bytes = (size_t)a->n * esz;
        if (a->elem_type == GGUF_TYPE_BOOL) {
            for (size_t i = 0; i < bytes; i++) {
                if (a->raw[i] > 1) {
                    char msg[128];
                    snprintf(msg, sizeof msg, "bool element %zu has value %u (must be 0 or 1)", i, a->raw[i]);
                    return fail(c, ERR_FORMAT, msg);
                }
            }
        }
        c->pos += bytes;
        return 0;
    }
    if (a->elem_type == GGUF_TYPE_STRING) {
        if ((rc = check_count(c, a->n, 8, "string array length")) != 0)
            return rc;
        if (a->n == 0)
            return 0;
        a->strs = calloc((size_t)a->n, sizeof *a->strs);
        if (!a->strs)
            return fail(c, ERR_NOMEM, "out of memory for string array");
        for (uint64_t i = 0; i < a->n; i++)
            if ((rc = read_str(c, "array string", &a->strs[i])) != 0)
                return rc;
        return 0;
    }
    if (a->elem_type == GGUF_TYPE_ARRAY) {
        if ((rc = check_count(c, a->n, MIN_ARRAY_BYTES, "nested array length")) != 0)
            return rc;
        if (a->n == 0)
            return 0;
        a->values = calloc((size_t)a->n, sizeof *a->values);
        if (!a->values)
            return fail(c, ERR_NOMEM, "out of memory for nested array");
        for (uint64_t i = 0; i < a->n; i++)
            if ((rc = parse_value(c, GGUF_TYPE_ARRAY, &a->values[i], depth + 1)) != 0)
                return rc;
        return 0;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "unknown array element type %" PRIu32 " at offset %zu", a->elem_type, c->pos - 12);
    return fail(c, ERR_FORMAT, msg);
}

/* Fills out (already zeroed); on failure whatever was allocated stays reachable from out. */
static int parse_value(struct cursor *c, uint32_t type, struct gguf_value *out, int depth)
{
    out->type = type;
    size_t esz = gguf_scalar_size(type);
    if (esz) {
        uint64_t raw;
        int rc = read_uint(c, (unsigned)esz, gguf_type_name(type), &raw);
        if (rc)
            return rc;
        switch (type) {
        case GGUF_TYPE_INT8:
            out->v.i64 = (int8_t)raw;
            break;
        case GGUF_TYPE_INT16:
            out->v.i64 = (int16_t)raw;
            break;
        case GGUF_TYPE_INT32:
            out->v.i64 = (int32_t)raw;
            break;
        case GGUF_TYPE_INT64:
            out->v.i64 = (int64_t)raw;
            break;
        case GGUF_TYPE_FLOAT32: {
            uint32_t bits = (uint32_t)raw;
            float f;
            memcpy(&f, &bits, 4);
            out->v.f64 = f;
            break;
        }
        case GGUF_TYPE_FLOAT64:
            memcpy(&out->v.f64, &raw, 8);
            break;
        case GGUF_TYPE_BOOL:
            if (raw > 1) {
                char msg[128];
                snprintf(msg, sizeof msg, "bool has value %" PRIu64 " (must be 0 or 1)", raw);
                return fail(c, ERR_FORMAT, msg);
            }
            out->v.b = raw != 0;
            break;
        default: /* unsigned */
            out->v.u64 = raw;
            break;
        }
        return 0;
    }
    if (type == GGUF_TYPE_STRING)
        return read_str(c, "string", &out->v.str);
    if (type == GGUF_TYPE_ARRAY)
        return parse_array(c, &out->v.arr, depth);
    char msg[128];
    snprintf(msg, sizeof msg, "unknown value type %" PRIu32 " at offset %zu", type, c->pos - 4);
    return fail(c, ERR_FORMAT, msg);
}

/* ---- name index ---- */

static struct gguf_str entry_name(const struct gguf_file *f, bool tensors, size_t i)
{
    if (tensors) {
        struct gguf_str s = {f->tensors[i].name, strlen(f->tensors[i].name)};
        return s;
    }
    return f->kv[i].key;
}

static int index_init(struct gguf_name_index *ix, uint64_t n)
{
    size_t cap = 16;
    while (cap < n * 2) /* n is bounded by the file size, so this cannot overflow */
        cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix->slots ? 0 : ERR_NOMEM;
}

/* Looks name up; returns the entry index, or SIZE_MAX with *slot_out at the empty slot to fill. */
size_t gguf_index_find(const struct gguf_file *f, const struct gguf_name_index *ix, bool tensors, const char *name,
                       size_t len, size_t *slot_out)
{
    size_t s = (size_t)hash_bytes(name, len) & ix->mask;
    for (;; s = (s + 1) & ix->mask) {
        size_t v = ix->slots[s];
        if (v == 0) {
            if (slot_out)
                *slot_out = s;
            return SIZE_MAX;
        }
        struct gguf_str other = entry_name(f, tensors, v - 1);
        if (other.len == len && (len == 0 || memcmp(other.ptr, name, len) == 0))
            return v - 1;
    }
}

/* ---- header ---- */

static void set_what(struct cursor *c, const char *fmt_kind, uint64_t i, const struct gguf_str *name)
{
    if (name) {
        int n = name->len > 200 ? 200 : (int)name->len;
        snprintf(c->what, sizeof c->what, "%s '%.*s'%s", fmt_kind, n, name->ptr, name->len > 200 ? "..." : "");
    } else {
        snprintf(c->what, sizeof c->what, "%s #%" PRIu64, fmt_kind, i);
    }
}

static int parse_kvs(struct cursor *c, struct gguf_file_impl *fi)
{
    struct gguf_file *f = &fi->pub;
    int rc;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        struct gguf_kv *kv = &f->kv[i];
        set_what(c, "metadata entry", i, NULL);
        if ((rc = read_str(c, "key", &kv->key)) != 0)
            return rc;
        if (kv->key.len == 0)
            return fail(c, ERR_FORMAT, "empty key");
        if (memchr(kv->key.ptr, '\0', (size_t)kv->key.len))
            return fail(c, ERR_FORMAT, "key contains a NUL byte");
        set_what(c, "key", i, &kv->key);
        size_t slot;
        if (gguf_index_find(f, &fi->kv_index, false, kv->key.ptr, (size_t)kv->key.len, &slot) != SIZE_MAX)
            return fail(c, ERR_FORMAT, "duplicate key");
        fi->kv_index.slots[slot] = (size_t)i + 1;
        uint32_t type;
        if ((rc = read_u32(c, "value type", &type)) != 0)
            return rc;
        if ((rc = parse_value(c, type, &kv->value, 0)) != 0)
            return rc;
    }
    c->what[0] = '\0';
    return 0;
}

static int parse_alignment(struct cursor *c, struct gguf_file_impl *fi)
{
    struct gguf_file *f = &fi->pub;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv)
        return 0;
    snprintf(c->what, sizeof c->what, "key 'general.alignment'");
    uint64_t a;
    if (gguf_type_is_unsigned(kv->value.type))
        a = kv->value.v.u64;
    else if (gguf_type_is_signed(kv->value.type) && kv->value.v.i64 >= 0)
        a = (uint64_t)kv->value.v.i64;
    else
        return fail(c, ERR_FORMAT, "must be a non-negative integer");
    if (a == 0 || a > UINT32_MAX || (a & (a - 1)) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "alignment %" PRIu64 " is not a nonzero power of two", a);
        return fail(c, ERR_FORMAT, msg);
    }
    f->alignment = (uint32_t)a;
    c->what[0] = '\0';
    return 0;
}

static int parse_tensor_info(struct cursor *c, struct gguf_file_impl *fi, uint64_t i)
{
    struct gguf_file *f = &fi->pub;
    struct gguf_tensor *t = &f->tensors[i];
    struct gguf_str name;
    char msg[320];
    int rc;
    set_what(c, "tensor", i, NULL);
    if ((rc = read_str(c, "tensor name", &name)) != 0)
        return rc;
    if (name.len == 0)
        return fail(c, ERR_FORMAT, "empty tensor name");
    if (memchr(name.ptr, '\0', (size_t)name.len))
        return fail(c, ERR_FORMAT, "tensor name contains a NUL byte");
    set_what(c, "tensor", i, &name);
    size_t slot;
    if (gguf_index_find(f, &fi->tensor_index, true, name.ptr, (size_t)name.len, &slot) != SIZE_MAX)
        return fail(c, ERR_FORMAT, "duplicate tensor name");
    if (!(t->name = gguf_str_dup(name)))
        return fail(c, ERR_NOMEM, "out of memory");
    fi->tensor_index.slots[slot] = (size_t)i + 1;

    if ((rc = read_u32(c, "n_dims", &t->n_dims)) != 0)
        return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) {
        snprintf(msg, sizeof msg, "n_dims %" PRIu32 " is outside 1..%d", t->n_dims, GGUF_MAX_DIMS);
        return fail(c, ERR_FORMAT, msg);
    }
    uint64_t elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        uint64_t ne;
        if ((rc = read_u64(c, "dimension", &ne)) != 0)
            return rc;
        if (ne == 0 || ne > INT64_MAX) {
            snprintf(msg, sizeof msg, "dimension %" PRIu32 " is %" PRIu64 " (must be 1..2^63-1)", d, ne);
            return fail(c, ERR_FORMAT, msg);
        }
        if (elems > (uint64_t)INT64_MAX / ne) {
            snprintf(msg, sizeof msg, "element count overflows at dimension %" PRIu32 " (%" PRIu64 ")", d, ne);
            return fail(c, ERR_FORMAT, msg);
        }
        elems *= ne;
        t->ne[d] = (int64_t)ne;
    }
    if ((rc = read_u32(c, "type", &t->type)) != 0)
        return rc;
    const struct dtype_info *dt = dtype_get(t->type);
    if (!dt) {
        snprintf(msg, sizeof msg, "unknown tensor type id %" PRIu32, t->type);
        return fail(c, ERR_FORMAT, msg);
    }
    if (t->ne[0] % dt->block_size != 0) {
        snprintf(msg, sizeof msg, "row length %" PRId64 " is not a multiple of the %s block size %" PRIu32, t->ne[0],
                 dt->name, dt->block_size);
        return fail(c, ERR_FORMAT, msg);
    }
    size_t row = dtype_row_bytes(t->type, t->ne[0]);
    uint64_t rows = elems / (uint64_t)t->ne[0];
    if (row == 0 || rows > SIZE_MAX / row) {
        snprintf(msg, sizeof msg, "data size of %" PRIu64 " elements of %s overflows", elems, dt->name);
        return fail(c, ERR_FORMAT, msg);
    }
    t->size = row * (size_t)rows;
    if ((rc = read_u64(c, "offset", &t->offset)) != 0)
        return rc;
    if (t->offset % f->alignment != 0) {
        snprintf(msg, sizeof msg, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32, t->offset,
                 f->alignment);
        return fail(c, ERR_FORMAT, msg);
    }
    return 0;
}

/* Runs after every tensor info is read, when the data section's start is known. */
static int place_tensors(struct cursor *c, struct gguf_file_impl *fi)
{
    struct gguf_file *f = &fi->pub;
    uint64_t a = f->alignment;
    uint64_t start = ((uint64_t)c->pos + a - 1) / a * a; /* pos < 2^63 and a <= 2^31: no overflow */
    f->data_offset = start;
    if (f->n_tensors == 0)
        return 0; /* vocabulary-only files may end right after the header, without padding */
    char msg[320];
    if (start > c->size) {
        c->what[0] = '\0';
        snprintf(msg, sizeof msg, "tensor data section would start at offset %" PRIu64 ", past the end of the file (size %zu)",
                 start, c->size);
        return fail(c, ERR_FORMAT, msg);
    }
    uint64_t avail = c->size - start;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        if (t->offset > avail || t->size > avail - t->offset) {
            snprintf(c->what, sizeof c->what, "tensor '%.200s'", t->name);
            snprintf(msg, sizeof msg,
                     "data [offset %" PRIu64 ", %zu bytes] extends past end of file (size %zu, data section starts at %" PRIu64 ")",
                     t->offset, t->size, c->size, start);
            return fail(c, ERR_FORMAT, msg);
        }
        t->data = c->base + start + t->offset;
    }
    c->what[0] = '\0';
    return 0;
}

static int parse_header(struct cursor *c, struct gguf_file_impl *fi)
{
    struct gguf_file *f = &fi->pub;
    char msg[320];
    int rc;
    if (c->size < 4 || memcmp(c->base, "GGUF", 4) != 0) {
        if (c->size < 4)
            snprintf(msg, sizeof msg, "not a GGUF file: only %zu bytes", c->size);
        else
            snprintf(msg, sizeof msg, "not a GGUF file: bad magic %02x %02x %02x %02x (expected \"GGUF\")", c->base[0],
                     c->base[1], c->base[2], c->base[3]);
        return fail(c, ERR_FORMAT, msg);
    }
    c->pos = 4;
    if ((rc = read_u32(c, "version", &f->version)) != 0)
        return rc;
    if (f->version == 1)
        return fail(c, ERR_FORMAT,
                    "GGUF version 1 is not supported (it predates 64-bit counts); re-convert the model with a current converter");
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0 && (f->version >> 24) >= 1 && (f->version >> 24) <= 3)
            snprintf(msg, sizeof msg, "big-endian GGUF (version bytes %08" PRIx32 ") is not supported", f->version);
        else
            snprintf(msg, sizeof msg, "unsupported GGUF version %" PRIu32 " (hearth reads versions 2 and 3)", f->version);
        return fail(c, ERR_FORMAT, msg);
    }
    if ((rc = read_u64(c, "tensor count", &f->n_tensors)) != 0)
        return rc;
    if ((rc = read_u64(c, "metadata count", &f->n_kv)) != 0)
        return rc;
    /* Bound both counts by what the rest of the file could hold before allocating anything. */
    if ((rc = check_count(c, f->n_kv, MIN_KV_BYTES, "metadata count")) != 0)
        return rc;
    if ((rc = check_count(c, f->n_tensors, MIN_TENSOR_BYTES, "tensor count")) != 0)
        return rc;
    if (f->n_kv > (remaining(c) - f->n_tensors * MIN_TENSOR_BYTES) / MIN_KV_BYTES) {
        snprintf(msg, sizeof msg, "%" PRIu64 " metadata entries and %" PRIu64 " tensors cannot fit in %zu bytes",
                 f->n_kv, f->n_tensors, remaining(c));
        return fail(c, ERR_FORMAT, msg);
    }
    if (f->n_kv && !(f->kv = calloc((size_t)f->n_kv, sizeof *f->kv)))
        return fail(c, ERR_NOMEM, "out of memory for metadata");
    if (f->n_tensors && !(f->tensors = calloc((size_t)f->n_tensors, sizeof *f->tensors)))
        return fail(c, ERR_NOMEM, "out of memory for tensor table");
    if (index_init(&fi->kv_index, f->n_kv) || index_init(&fi->tensor_index, f->n_tensors))
        return fail(c, ERR_NOMEM, "out of memory for name index");

    if ((rc = parse_kvs(c, fi)) != 0)
        return rc;
    if ((rc = parse_alignment(c, fi)) != 0)
        return rc;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((rc = parse_tensor_info(c, fi, i)) != 0)
            return rc;
    return place_tensors(c, fi);
}

int gguf_parse(const void *data, size_t size, const char *name, struct gguf_file **out, struct err *e)
{
    *out = NULL;
    if (!name)
        name = "<memory>";
    struct gguf_file_impl *fi = calloc(1, sizeof *fi);
    if (!fi || !(fi->pub.path = strdup(name))) {
        free(fi);
        return err_set(e, ERR_NOMEM, "%s: out of memory", name);
    }
    fi->pub.map.data = data;
    fi->pub.map.size = size;
    struct cursor c = {.base = data, .size = size, .name = name, .e = e};
    int rc = parse_header(&c, fi);
    if (rc) {
        gguf_close(&fi->pub);
        return rc;
    }
    *out = &fi->pub;
    return 0;
}

int gguf_open(const char *path, struct gguf_file **out, struct err *e)
{
    *out = NULL;
    struct file_map m;
    int rc = file_map_open(&m, path, e);
    if (rc)
        return rc;
    rc = gguf_parse(m.data, m.size, path, out, e);
    if (rc) {
        file_map_close(&m);
        return rc;
    }
    ((struct gguf_file_impl *)*out)->owns_map = true;
    return 0;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    struct gguf_file_impl *fi = (struct gguf_file_impl *)f;
    if (f->kv) {
        for (uint64_t i = 0; i < f->n_kv; i++)
            free_value(&f->kv[i].value);
        free(f->kv);
    }
    if (f->tensors) {
        for (uint64_t i = 0; i < f->n_tensors; i++)
            free(f->tensors[i].name);
        free(f->tensors);
    }
    free(fi->kv_index.slots);
    free(fi->tensor_index.slots);
    if (fi->owns_map)
        file_map_close(&f->map);
    free(f->path);
    free(fi);
}

