/* api_info.c — the non-generating routes: /api/tags, /api/ps, /api/show, the embedding endpoints
 * (/api/embed, /api/embeddings, /v1/embeddings) and /v1/models. Models are GGUF files: a path, or
 * NAME(.gguf) inside HEARTH_MODELS. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "engine/options.h"
#include "gguf/gguf.h"
#include "model/embed.h"
#include "model/model.h"
#include "server/server_internal.h"
#include "store/store.h"
#include "tensor/tensor.h"
#include "template/toolcall.h"
#include "tokenizer/tokenizer.h"
#include <strings.h>

static const char *file_type_name(uint32_t ft)
{
    static const char *const names[] = {
        [0] = "F32",     [1] = "F16",     [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",    [9] = "Q5_1",    [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",   [32] = "BF16"};
    if (ft < sizeof names / sizeof names[0] && names[ft])
        return names[ft];
    return "unknown";
}

static void fmt_params(uint64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000ull)
        snprintf(buf, cap, "%.1fB", n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, cap, "%.2fM", n / 1e6);
    else
        snprintf(buf, cap, "%.2fK", n / 1e3);
}

static char *kv_str(const struct gguf_file *f, const char *key)
{
    struct gguf_str s;
    if (!gguf_find_kv(f, key) || gguf_get_str(f, key, &s, NULL))
        return NULL;
    return gguf_str_dup(s);
}

/* Ollama's "details" object, from the GGUF metadata. */
static json_t *details(const struct gguf_file *f)
{
    char *arch = kv_str(f, "general.architecture");
    uint64_t n = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t c = 1;
        for (uint32_t d = 0; d < f->tensors[i].n_dims; d++)
            c *= (uint64_t)f->tensors[i].ne[d];
        n += c;
    }
    char ps[32];
    fmt_params(n, ps, sizeof ps);
    uint32_t ft = 1000;
    if (gguf_find_kv(f, "general.file_type"))
        gguf_get_u32(f, "general.file_type", &ft, NULL);
    json_t *o = json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", "gguf", "family",
                          arch ? arch : "", "families", arch ? arch : "", "parameter_size", ps, "quantization_level",
                          file_type_name(ft));
    free(arch);
    return o;
}

static json_t *kv_value(const struct gguf_value *v, bool verbose)
{
    switch (v->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        return json_integer((json_int_t)v->v.u64);
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        return json_integer((json_int_t)v->v.i64);
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64:
        return json_real(v->v.f64);
    case GGUF_TYPE_BOOL:
        return json_boolean(v->v.b);
    case GGUF_TYPE_STRING: {
        /* Text that is not UTF-8 shows as "" rather than failing the whole reply. */
        json_t *s = json_stringn(v->v.str.ptr, v->v.str.len);
        return s ? s : json_string("");
    }
    case GGUF_TYPE_ARRAY: {
        json_t *a = json_array();
        /* Ollama replaces long arrays (vocabularies) with [] unless verbose. */
        if (v->v.arr.n > 5 && !verbose)
            return a;
        for (uint64_t i = 0; i < v->v.arr.n; i++) {
            if (v->v.arr.elem_type == GGUF_TYPE_STRING)
                json_array_append_new(a, json_stringn(v->v.arr.strs[i].ptr, v->v.arr.strs[i].len));
            else if (v->v.arr.elem_type == GGUF_TYPE_INT32)
                json_array_append_new(a, json_integer(gguf_arr_i32(&v->v.arr, i)));
            else if (v->v.arr.elem_type == GGUF_TYPE_UINT32)
                json_array_append_new(a, json_integer(gguf_arr_u32(&v->v.arr, i)));
            else if (v->v.arr.elem_type == GGUF_TYPE_FLOAT32)
                json_array_append_new(a, json_real(gguf_arr_f32(&v->v.arr, i)));
        }
        return a;
    }
    }
    return json_null();
}

static void model_times(const char *path, int64_t *mtime_ns, int64_t *size)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        *size = (int64_t)st.st_size;
    } else {
        *mtime_ns = 0;
        *size = 0;
    }
}

/* Display name of a model file inside HEARTH_MODELS: "stem:latest" (or the stem if it has a tag). */
static void display_name(const char *file, char *buf, size_t cap)
{
    size_t n = strlen(file) - 5;
    snprintf(buf, cap, "%.*s%s", (int)n, file, memchr(file, ':', n) ? "" : ":latest");
}

typedef void (*model_fn)(void *user, const char *name, const char *path);

static void each_model(const struct srv *s, model_fn fn, void *user)
{
    if (!s->cfg.models_dir)
        return;
    DIR *d = opendir(s->cfg.models_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= 5 || strcmp(de->d_name + n - 5, ".gguf") != 0)
            continue;
        char path[4096], name[512];
        snprintf(path, sizeof path, "%s/%s", s->cfg.models_dir, de->d_name);
        display_name(de->d_name, name, sizeof name);
        fn(user, name, path);
    }
    closedir(d);
}

static void tag_one(void *user, const char *name, const char *path)
{
    json_t *arr = user;
    struct gguf_file *f;
    if (gguf_open(path, &f, NULL))
        return;
    int64_t mt, size;
    model_times(path, &mt, &size);
    char ts[48];
    fmt_time(mt, ts, sizeof ts);
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", name, "model", name, "modified_at", ts,
                                         "size", (json_int_t)size, "digest", "", "details", details(f)));
    gguf_close(f);
}

static json_t *store_details(const char *parent, const char *family, const char *psize, const char *quant)
{
    json_t *fams = family ? json_pack("[s]", family) : json_null();
    return json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "parent_model", parent ? parent : "", "format", "gguf", "family",
                     family ? family : "", "families", fams, "parameter_size", psize ? psize : "",
                     "quantization_level", quant ? quant : "");
}

/* Flat-directory files whose name a store model already has are not listed twice. */
static void tag_flat(void *user, const char *name, const char *path)
{
    json_t *arr = user;
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        if (strcasecmp(json_string_value(json_object_get(it, "name")), name) == 0)
            return;
    }
    tag_one(user, name, path);
}

void api_tags(struct srv *s, const struct http_req *q, struct reply *r)
{
    (void)q;
    json_t *arr = json_array();
    struct store_entry *ents = NULL;
    size_t n = 0;
    struct err e = {0};
    if (s->store && store_list(s->store, &ents, &n, &e) == 0) {
        for (size_t i = 0; i < n; i++) {
            char ts[48];
            fmt_time(ents[i].modified_ns, ts, sizeof ts);
            json_array_append_new(
                arr, json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", ents[i].name, "model", ents[i].name, "modified_at",
                               ts, "size", (json_int_t)ents[i].size, "digest", ents[i].digest, "details",
                               store_details(NULL, ents[i].family, ents[i].parameter_size,
                                             ents[i].quantization_level)));
        }
        store_list_free(ents, n);
    }
    each_model(s, tag_flat, arr);
    reply_json(r, 200, json_pack("{s:o}", "models", arr));
}

void api_ps(struct srv *s, const struct http_req *q, struct reply *r)
{
    (void)q;
    json_t *loaded = sched_list(s->sched), *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(loaded, i, it) {
        const char *path = json_string_value(json_object_get(it, "path"));
        struct gguf_file *f;
        if (gguf_open(path, &f, NULL))
            continue;
        json_int_t exp = json_integer_value(json_object_get(it, "expires_at"));
        char ts[48];
        /* Forever prints as a date far in the future, as Ollama's max duration does. */
        fmt_time(exp ? exp : (int64_t)4102444800LL * 1000000000LL, ts, sizeof ts);
        json_array_append_new(out, json_pack("{s:O,s:O,s:O,s:O,s:o,s:s,s:O,s:O}", "name", json_object_get(it, "name"),
                                             "model", json_object_get(it, "name"), "size", json_object_get(it, "size"),
                                             "digest", json_object_get(it, "digest"), "details", details(f),
                                             "expires_at", ts, "size_vram", json_object_get(it, "size_vram"),
                                             "context_length", json_object_get(it, "context_length")));
        gguf_close(f);
    }
    json_decref(loaded);
    reply_json(r, 200, json_pack("{s:o}", "models", out));
}

void api_show(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, false);
    if (!body)
        return;
    json_t *mv = json_object_get(body, "model");
    if (!mv)
        mv = json_object_get(body, "name");
    const char *name = json_is_string(mv) ? json_string_value(mv) : "";
    bool verbose = json_is_true(json_object_get(body, "verbose"));
    char *path = NULL;
    struct err e = {0};
    struct gguf_file *f = NULL;
    struct store_model sm = {0};
    if (resolve_model_store(s, name, &path, &sm, &e)) {
        if (e.code == ERR_NOTFOUND)
            reply_error(r, 404, "model '%s' not found", name);
        else
            reply_error(r, http_status_for(e.code), "%s", e.msg);
        goto out;
    }
    if (gguf_open(path, &f, &e)) {
        reply_error(r, 500, "%s", e.msg);
        goto out;
    }
    json_t *info = json_object();
    for (uint64_t i = 0; i < f->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)f->kv[i].key.len, f->kv[i].key.ptr);
        if (strcmp(key, "general.name") == 0 || strcmp(key, "tokenizer.chat_template") == 0)
            continue;
        json_object_set_new(info, key, kv_value(&f->kv[i].value, verbose));
    }
    char *tpl = kv_str(f, "tokenizer.chat_template");
    int64_t mt, size;
    model_times(path, &mt, &size);
    char ts[48];
    fmt_time(mt, ts, sizeof ts);
    char modelfile[4200];
    snprintf(modelfile, sizeof modelfile, "# Modelfile generated by \"hearth show\"\nFROM %s\n", path);
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:[s],s:s}", "modelfile", modelfile, "parameters", "", "details",
                          details(f), "model_info", info, "capabilities", "completion", "modified_at", ts);
    json_object_set_new(o, "template", json_string(tpl ? tpl : "{{ .Prompt }}"));
    free(tpl);
    if (sm.name) {
        /* A store model: what its Modelfile layers say wins over the GGUF's own metadata. */
        char *mf = store_model_modelfile(&sm), *params = store_params_text(sm.params_json);
        if (mf)
            json_object_set_new(o, "modelfile", json_string(mf));
        if (params)
            json_object_set_new(o, "parameters", json_string(params));
        free(mf);
        free(params);
        if (sm.template_text)
            json_object_set_new(o, "template", json_string(sm.template_text));
        if (sm.system)
            json_object_set_new(o, "system", json_string(sm.system));
        if (sm.license)
            json_object_set_new(o, "license", json_string(sm.license));
        json_t *msgs = json_loads(sm.messages_json, 0, NULL);
        if (json_array_size(msgs))
            json_object_set_new(o, "messages", msgs);
        else
            json_decref(msgs);
        json_t *det = json_object_get(o, "details");
        if (sm.parent)
            json_object_set_new(det, "parent_model", json_string(sm.parent));
        if (sm.family)
            json_object_set_new(det, "family", json_string(sm.family));
        if (sm.parameter_size)
            json_object_set_new(det, "parameter_size", json_string(sm.parameter_size));
        if (sm.quantization_level)
            json_object_set_new(det, "quantization_level", json_string(sm.quantization_level));
        fmt_time(sm.modified_ns, ts, sizeof ts);
        json_object_set_new(o, "modified_at", json_string(ts));
    }
    /* What the prompt template can do, as Ollama reports it: tool calls and thinking. */
    const char *tsrc = json_string_value(json_object_get(o, "template"));
    json_t *caps = json_object_get(o, "capabilities");
    if (toolcall_format_detect(tsrc) != TOOLCALL_NONE)
        json_array_append_new(caps, json_string("tools"));
    if (toolcall_template_thinks(tsrc))
        json_array_append_new(caps, json_string("thinking"));
    if (verbose) {
        json_t *tensors = json_array();
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            json_t *shape = json_array();
            for (uint32_t d = 0; d < f->tensors[i].n_dims; d++)
                json_array_append_new(shape, json_integer(f->tensors[i].ne[d]));
            json_array_append_new(tensors, json_pack("{s:s,s:s,s:o}", "name", f->tensors[i].name, "type",
                                                     dtype_name(f->tensors[i].type), "shape", shape));
        }
        json_object_set_new(o, "tensors", tensors);
    }
    reply_json(r, 200, o);
out:
    store_model_free(&sm);
    gguf_close(f);
    free(path);
    json_decref(body);
}

/* ---- embeddings ---- */

/* OpenAI's encoding_format "base64": the little-endian float32 bytes, base64-encoded. */
static json_t *base64_floats(const float *v, int n, double norm)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = (size_t)n * 4;
    unsigned char *bytes = malloc(nb);
    char *out = malloc((nb + 2) / 3 * 4 + 1);
    if (!bytes || !out) {
        free(bytes);
        free(out);
        return json_string("");
    }
    for (int i = 0; i < n; i++) {
        float f = norm > 0 ? (float)(v[i] / norm) : 0.0f;
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int k = 0; k < 4; k++)
            bytes[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    size_t o = 0;
    for (size_t i = 0; i < nb; i += 3) {
        uint32_t w = (uint32_t)bytes[i] << 16;
        if (i + 1 < nb)
            w |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < nb)
            w |= bytes[i + 2];
        out[o++] = tab[(w >> 18) & 63];
        out[o++] = tab[(w >> 12) & 63];
        out[o++] = i + 1 < nb ? tab[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < nb ? tab[w & 63] : '=';
    }
    out[o] = '\0';
    json_t *s = json_string(out);
    free(bytes);
    free(out);
    return s;
}

enum emb_kind { E_EMBED, E_LEGACY, E_OPENAI };

static void emb_fail(struct reply *r, enum emb_kind k, int status, const char *msg)
{
    if (k == E_OPENAI)
        reply_oai_error(r, status, "%s", msg);
    else
        reply_error(r, status, "%s", msg);
}

static void embed_route(struct srv *s, const struct http_req *q, struct reply *r, enum emb_kind kind)
{
    const int64_t t0 = clock_ns();
    json_t *body = parse_body(q, r, kind == E_OPENAI);
    if (!body)
        return;
    char *path = NULL;
    struct sched_lease l = {0};
    float *vec = NULL;
    json_t *vectors = NULL;
    long long keep_alive = -1;
    struct err e = {0};
    struct gen_options opt;
    options_default(&opt);
    const char *name = json_string_value(json_object_get(body, "model"));
    json_t *input = json_object_get(body, kind == E_LEGACY ? "prompt" : "input");
    if (!name || !*name) {
        emb_fail(r, kind, 400, "model is required");
        goto out;
    }
    if (resolve_model(s, name, &path, &e)) {
        char msg[600];
        snprintf(msg, sizeof msg, "model \"%s\" not found, try pulling it first", name);
        emb_fail(r, kind, 404, msg);
        goto out;
    }
    if (options_apply_json(&opt, json_object_get(body, "options"), &e) ||
        options_parse_keep_alive(json_object_get(body, "keep_alive"), &keep_alive, &e)) {
        emb_fail(r, kind, 400, e.msg);
        goto out;
    }
    bool truncate = !json_is_false(json_object_get(body, "truncate"));
    json_t *dims_v = json_object_get(body, "dimensions");
    json_int_t dims = json_is_integer(dims_v) ? json_integer_value(dims_v) : 0;
    if (dims_v && !json_is_null(dims_v) && (!json_is_integer(dims_v) || dims < 1)) {
        emb_fail(r, kind, 400, "dimensions must be a positive integer");
        goto out;
    }
    const char *enc = json_string_value(json_object_get(body, "encoding_format"));
    bool b64 = enc && strcmp(enc, "base64") == 0;
    if (kind == E_OPENAI && enc && strcmp(enc, "float") != 0 && !b64) {
        emb_fail(r, kind, 400, "encoding_format must be \"float\" or \"base64\"");
        goto out;
    }
    json_t *inputs = json_array();
    if (json_is_string(input)) {
        if (*json_string_value(input) || kind == E_OPENAI)
            json_array_append(inputs, input);
    } else if (json_is_array(input) && kind != E_LEGACY) {
        size_t i;
        json_t *it;
        json_array_foreach(input, i, it) {
            if (!json_is_string(it)) {
                json_decref(inputs);
                emb_fail(r, kind, 400, "invalid input type");
                goto out;
            }
            json_array_append(inputs, it);
        }
        if (kind == E_OPENAI && json_array_size(inputs) == 0) {
            json_decref(inputs);
            emb_fail(r, kind, 400, "invalid input");
            goto out;
        }
    } else if (input && !json_is_null(input)) {
        json_decref(inputs);
        emb_fail(r, kind, 400, "invalid input type");
        goto out;
    }
    int rc = sched_acquire(s->sched, path, opt.num_ctx, opt.num_gpu, &l, &e);
    if (rc) {
        json_decref(inputs);
        emb_fail(r, kind, http_status_for(rc) == 400 ? 500 : http_status_for(rc), e.msg);
        goto out;
    }
    /* Embedding overwrites the slot's KV cache: nothing of it is reusable by the next request. */
    *l.n_kv_tokens = 0;
    const int d = l.m->hp.n_embd;
    vec = malloc((size_t)d * sizeof *vec);
    vectors = json_array();
    int total_tokens = 0;
    size_t i;
    json_t *it;
    json_array_foreach(inputs, i, it) {
        int32_t *ids = NULL;
        size_t n = 0;
        const char *txt = json_string_value(it);
        if (tokenizer_encode(l.m->tok, txt, strlen(txt), true, false, &ids, &n, &e)) {
            emb_fail(r, kind, 500, e.msg);
            json_decref(inputs);
            goto out;
        }
        /* BERT models also stop at their position table and keep their closing [SEP]: the model
         * decides what fits. */
        if (!truncate && (int)n > model_embed_max_tokens(l.ctx)) {
            free(ids);
            json_decref(inputs);
            emb_fail(r, kind, 400, "the input length exceeds the context length");
            goto out;
        }
        int used = 0;
        pthread_mutex_lock(l.forward_lock);
        rc = model_embed_ex(l.ctx, ids, (int)n, truncate, vec, &used, &e);
        pthread_mutex_unlock(l.forward_lock);
        free(ids);
        if (rc) {
            json_decref(inputs);
            emb_fail(r, kind, http_status_for(rc), e.msg);
            goto out;
        }
        n = (size_t)used;
        total_tokens += (int)n;
        int keep = dims > 0 && dims < d ? (int)dims : d;
        double norm = 0;
        for (int k = 0; k < keep; k++)
            norm += (double)vec[k] * vec[k];
        norm = sqrt(norm);
        json_t *v = json_array();
        for (int k = 0; k < keep; k++)
            json_array_append_new(v, json_real(norm > 0 ? vec[k] / norm : 0));
        if (kind == E_OPENAI && b64) {
            json_decref(v);
            v = base64_floats(vec, keep, norm);
        }
        if (kind == E_OPENAI)
            json_array_append_new(vectors, json_pack("{s:s,s:o,s:i}", "object", "embedding", "embedding", v, "index",
                                                     (int)i));
        else
            json_array_append_new(vectors, v);
    }
    json_decref(inputs);
    json_t *o;
    if (kind == E_EMBED)
        o = json_pack("{s:s,s:O,s:I,s:I,s:i}", "model", name, "embeddings", vectors, "total_duration",
                      (json_int_t)(clock_ns() - t0), "load_duration", (json_int_t)l.load_ns, "prompt_eval_count",
                      total_tokens);
    else if (kind == E_LEGACY)
        o = json_pack("{s:O}", "embedding", json_array_size(vectors) ? json_array_get(vectors, 0) : json_array());
    else
        o = json_pack("{s:s,s:O,s:s,s:{s:i,s:i}}", "object", "list", "data", vectors, "model", name, "usage",
                      "prompt_tokens", total_tokens, "total_tokens", total_tokens);
    reply_json(r, 200, o);
out:
    if (l.ent)
        sched_release(s->sched, &l, keep_alive);
    json_decref(vectors);
    free(vec);
    free(path);
    options_free(&opt);
    json_decref(body);
}

void api_embed(struct srv *s, const struct http_req *q, struct reply *r)
{
    embed_route(s, q, r, E_EMBED);
}

void api_embeddings(struct srv *s, const struct http_req *q, struct reply *r)
{
    embed_route(s, q, r, E_LEGACY);
}

void oai_embeddings(struct srv *s, const struct http_req *q, struct reply *r)
{
    embed_route(s, q, r, E_OPENAI);
}

/* ---- /v1/models ---- */

static void oai_one(void *user, const char *name, const char *path)
{
    int64_t mt, size;
    model_times(path, &mt, &size);
    json_array_append_new(user, json_pack("{s:s,s:s,s:I,s:s}", "id", name, "object", "model", "created",
                                          (json_int_t)(mt / 1000000000LL), "owned_by", "library"));
}

void oai_models(struct srv *s, const struct http_req *q, struct reply *r)
{
    (void)q;
    json_t *arr = json_array(); /* [] rather than Ollama's null when there are none */
    each_model(s, oai_one, arr);
    reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", arr));
}

void oai_model(struct srv *s, const struct http_req *q, struct reply *r, const char *id)
{
    (void)q;
    char *path = NULL;
    struct err e = {0};
    if (resolve_model(s, id, &path, &e)) {
        reply_oai_error(r, 404, "model \"%s\" not found", id);
        return;
    }
    json_t *arr = json_array();
    oai_one(arr, id, path);
    free(path);
    reply_json(r, 200, json_incref(json_array_get(arr, 0)));
    json_decref(arr);
}
