/* gguf_write.c — the GGUF writer: collects metadata and tensors, then writes a v3 file atomically.
 *
 * Each metadata value is encoded to its on-disk bytes as soon as it is set, so the writer keeps no
 * parallel value model and copying a nested array from a file being read is one recursive encode.
 * Tensor bytes are referenced (or produced by a fill callback) and only touched at write time. */
#include "gguf/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_impl.h"
#include "tensor/tensor.h"

/* A growable byte buffer for encoded values and the header. */
struct wbuf {
    uint8_t *data;
    size_t len, cap;
    bool oom;
};

struct wkv {
    char *key;
    struct wbuf value; /* value type (u32) followed by the encoded value */
};

struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t size;
    const void *data; /* NULL when fill produces the bytes */
    gguf_fill_fn fill;
    void *fill_ctx;
    uint64_t offset; /* assigned at write time */
};

struct gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* ---- byte buffer ---- */

static void wb_put(struct wbuf *b, const void *p, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd) {
            b->oom = true;
            return;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* Little-endian regardless of the host, so files are portable. */
static void wb_uint(struct wbuf *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    wb_put(b, tmp, n);
}

static void wb_u32(struct wbuf *b, uint32_t v) { wb_uint(b, v, 4); }
static void wb_u64(struct wbuf *b, uint64_t v) { wb_uint(b, v, 8); }

static void wb_str(struct wbuf *b, const char *s, uint64_t len)
{
    wb_u64(b, len);
    wb_put(b, s, (size_t)len);
}

/* ---- writer object ---- */

struct gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(struct gguf_writer)); }

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].value.data);
    }
    free(w->kv);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

/* Stores an encoded value under key, taking ownership of val: replaces in place (keeping the
 * original position) or appends. */
static int put_kv(struct gguf_writer *w, const char *key, struct wbuf *val)
{
    if (val->oom || !key || !key[0]) {
        free(val->data);
        return val->oom ? ERR_NOMEM : ERR_INVALID;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].value.data);
            w->kv[i].value = *val;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        struct wkv *nk = realloc(w->kv, cap * sizeof *nk);
        if (!nk) {
            free(val->data);
            return ERR_NOMEM;
        }
        w->kv = nk;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val->data);
        return ERR_NOMEM;
    }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].value = *val;
    w->n_kv++;
    return 0;
}

static int set_scalar(struct gguf_writer *w, const char *key, uint32_t type, uint64_t bits)
{
    struct wbuf b = {0};
    wb_u32(&b, type);
    wb_uint(&b, bits, (unsigned)gguf_scalar_size(type));
    return put_kv(w, key, &b);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, GGUF_TYPE_UINT32, v);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, GGUF_TYPE_UINT64, v);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return set_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
    return set_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return ERR_INVALID;
    struct wbuf b = {0};
    wb_u32(&b, GGUF_TYPE_STRING);
    wb_str(&b, v, strlen(v));
    return put_kv(w, key, &b);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n)
{
    size_t esz = gguf_scalar_size(elem_type);
    if (!esz || (n && !data) || n > SIZE_MAX / esz)
        return ERR_INVALID;
    struct wbuf b = {0};
    wb_u32(&b, GGUF_TYPE_ARRAY);
    wb_u32(&b, elem_type);
    wb_u64(&b, n);
    wb_put(&b, data, (size_t)n * esz); /* the caller's bytes are already little-endian */
    return put_kv(w, key, &b);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *strs, uint64_t n)
{
    if (n && !strs)
        return ERR_INVALID;
    struct wbuf b = {0};
    wb_u32(&b, GGUF_TYPE_ARRAY);
    wb_u32(&b, GGUF_TYPE_STRING);
    wb_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            free(b.data);
            return ERR_INVALID;
        }
        wb_str(&b, strs[i], strlen(strs[i]));
    }
    return put_kv(w, key, &b);
}

/* Encodes a parsed value's payload (not its type tag); returns false for an unknown type. */
static bool encode_value(struct wbuf *b, const struct gguf_value *v)
{
    size_t esz = gguf_scalar_size(v->type);
    if (esz) {
        uint64_t bits;
        if (v->type == GGUF_TYPE_FLOAT32) {
            float f = (float)v->v.f64; /* exact: it was widened from a float */
            uint32_t b32;
            memcpy(&b32, &f, 4);
            bits = b32;
        } else if (v->type == GGUF_TYPE_FLOAT64) {
            memcpy(&bits, &v->v.f64, 8);
        } else if (v->type == GGUF_TYPE_BOOL) {
            bits = v->v.b ? 1 : 0;
        } else {
            bits = v->v.u64; /* signed values truncate to their two's-complement width */
        }
        wb_uint(b, bits, (unsigned)esz);
        return true;
    }
    if (v->type == GGUF_TYPE_STRING) {
        wb_str(b, v->v.str.ptr, v->v.str.len);
        return true;
    }
    if (v->type != GGUF_TYPE_ARRAY)
        return false;
    const struct gguf_array *a = &v->v.arr;
    wb_u32(b, a->elem_type);
    wb_u64(b, a->n);
    size_t aesz = gguf_scalar_size(a->elem_type);
    if (aesz) {
        wb_put(b, a->raw, (size_t)a->n * aesz);
        return true;
    }
    if (a->elem_type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < a->n; i++)
            wb_str(b, a->strs[i].ptr, a->strs[i].len);
        return true;
    }
    if (a->elem_type == GGUF_TYPE_ARRAY) {
        for (uint64_t i = 0; i < a->n; i++)
            if (!encode_value(b, &a->values[i]))
                return false;
        return true;
    }
    return false;
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
    if (!kv || kv->key.len == 0)
        return ERR_INVALID;
    char *key = gguf_str_dup(kv->key);
    if (!key)
        return ERR_NOMEM;
    struct wbuf b = {0};
    wb_u32(&b, kv->value.type);
    int rc;
    if (!encode_value(&b, &kv->value)) {
        free(b.data);
        rc = ERR_INVALID;
    } else {
        rc = put_kv(w, key, &b);
    }
    free(key);
    return rc;
}

int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return ERR_INVALID;
    /* The key is the single record of the alignment, so readers (ours included) honour it. */
    return gguf_writer_set_u32(w, "general.alignment", alignment);
}

/* ---- tensors ---- */

static int add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                      const void *data, gguf_fill_fn fill, void *ctx, struct err *e)
{
    if (!name || !name[0])
        return err_set(e, ERR_INVALID, "gguf writer: tensor name is empty");
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return err_set(e, ERR_INVALID, "gguf writer: tensor '%s' added twice", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': n_dims %" PRIu32 " is outside 1..%d", name,
                       n_dims, GGUF_MAX_DIMS);
    const struct dtype_info *dt = dtype_get(type);
    if (!dt)
        return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': unknown type id %" PRIu32, name, type);
    struct wtensor t = {.type = type, .n_dims = n_dims, .data = data, .fill = fill, .fill_ctx = ctx};
    uint64_t rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] <= 0)
            return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': dimension %" PRIu32 " is %" PRId64, name, d,
                           t.ne[d]);
        if (d > 0) {
            if (rows > (uint64_t)INT64_MAX / (uint64_t)t.ne[d])
                return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': element count overflows", name);
            rows *= (uint64_t)t.ne[d];
        }
    }
    if (t.ne[0] % dt->block_size != 0)
        return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': row length %" PRId64
                       " is not a multiple of the %s block size %" PRIu32, name, t.ne[0], dt->name, dt->block_size);
    size_t row = dtype_row_bytes(type, t.ne[0]);
    if (row == 0 || rows > SIZE_MAX / row || rows > (uint64_t)INT64_MAX / (uint64_t)t.ne[0])
        return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': size overflows", name);
    t.size = row * (size_t)rows;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        struct wtensor *nt = realloc(w->tensors, cap * sizeof *nt);
        if (!nt)
            return err_set(e, ERR_NOMEM, "gguf writer: out of memory");
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    if (!(t.name = strdup(name)))
        return err_set(e, ERR_NOMEM, "gguf writer: out of memory");
    w->tensors[w->n_tensors++] = t;
    return 0;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data, struct err *e)
{
    if (!data)
        return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': no data", name ? name : "");
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL, e);
}

int gguf_writer_add_tensor_fill(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne, gguf_fill_fn fill, void *ctx, struct err *e)
{
    if (!fill)
        return err_set(e, ERR_INVALID, "gguf writer: tensor '%s': no fill function", name ? name : "");
    return add_tensor(w, name, type, n_dims, ne, NULL, fill, ctx, e);
}

/* ---- output ---- */

/* The alignment recorded in general.alignment, or the default; ERR_INVALID if it is unusable. */
static int writer_alignment(const struct gguf_writer *w, uint32_t *out, struct err *e)
{
    *out = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0)
            continue;
        const struct wbuf *v = &w->kv[i].value;
        uint32_t type = (uint32_t)v->data[0] | (uint32_t)v->data[1] << 8 | (uint32_t)v->data[2] << 16 |
                        (uint32_t)v->data[3] << 24;
        uint32_t a = 0;
        if (type == GGUF_TYPE_UINT32)
            a = (uint32_t)v->data[4] | (uint32_t)v->data[5] << 8 | (uint32_t)v->data[6] << 16 |
                (uint32_t)v->data[7] << 24;
        if (a == 0 || (a & (a - 1)) != 0)
            return err_set(e, ERR_INVALID, "gguf writer: general.alignment must be a UINT32 nonzero power of two");
        *out = a;
    }
    return 0;
}

static const uint8_t zeros[256];

static int write_padding(struct file_atomic *fa, uint64_t n, struct err *e)
{
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        int rc = file_atomic_write(fa, zeros, k, e);
        if (rc)
            return rc;
        n -= k;
    }
    return 0;
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (a - x % a) % a; }

static int write_tensor_data(struct gguf_writer *w, struct file_atomic *fa, uint32_t align, struct err *e)
{
    for (size_t i = 0; i < w->n_tensors; i++) {
        struct wtensor *t = &w->tensors[i];
        int rc;
        if (t->fill) {
            /* One buffer per tensor, freed right away, so peak memory is the largest tensor. */
            void *buf = malloc(t->size);
            if (!buf)
                return err_set(e, ERR_NOMEM, "%s: tensor '%s': out of memory for %zu bytes", fa->path, t->name,
                               t->size);
            rc = t->fill(t->fill_ctx, buf, t->size, e);
            if (rc)
                err_prefix(e, "%s: tensor '%s'", fa->path, t->name);
            else
                rc = file_atomic_write(fa, buf, t->size, e);
            free(buf);
        } else {
            rc = file_atomic_write(fa, t->data, t->size, e);
        }
        if (rc == 0)
            rc = write_padding(fa, pad_to(t->size, align), e);
        if (rc)
            return rc;
    }
    return 0;
}

int gguf_writer_write(struct gguf_writer *w, const char *path, struct err *e)
{
    uint32_t align;
    int rc = writer_alignment(w, &align, e);
    if (rc)
        return rc;

    struct wbuf h = {0};
    wb_put(&h, "GGUF", 4);
    wb_u32(&h, 3);
    wb_u64(&h, w->n_tensors);
    wb_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        wb_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        wb_put(&h, w->kv[i].value.data, w->kv[i].value.len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        struct wtensor *t = &w->tensors[i];
        t->offset = off;
        off += t->size + pad_to(t->size, align);
        wb_str(&h, t->name, strlen(t->name));
        wb_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            wb_u64(&h, (uint64_t)t->ne[d]);
        wb_u32(&h, t->type);
        wb_u64(&h, t->offset);
    }
    if (h.oom) {
        free(h.data);
        return err_set(e, ERR_NOMEM, "%s: out of memory building the GGUF header", path);
    }

    struct file_atomic fa;
    rc = file_atomic_open(&fa, path, e);
    if (rc == 0)
        rc = file_atomic_write(&fa, h.data, h.len, e);
    /* Tensor data starts aligned; a file without tensors ends right after its metadata. */
    if (rc == 0 && w->n_tensors)
        rc = write_padding(&fa, pad_to(h.len, align), e);
    free(h.data);
    if (rc == 0)
        rc = write_tensor_data(w, &fa, align, e);
    if (rc) {
        if (fa.tmp_path)
            file_atomic_abort(&fa);
        return rc;
    }
    return file_atomic_commit(&fa, e);
}
