/* create.c — building a model in the store: from a GGUF file, a blob, or another stored model
 * (inheriting its layers), optionally quantized, plus template/system/params/messages/license
 * layers and an Ollama-style config blob; the manifest is written last, so a failed create leaves
 * the previous version of the name intact. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "store/store_impl.h"
#include "tensor/tensor.h"

static void report(const struct store_create_req *req, const char *status)
{
    if (req->progress)
        req->progress(req->progress_ctx, status, 0, 0);
}

static const char *llama_ftype_name(uint32_t ft)
{
    switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return NULL;
    }
}

/* Ollama's HumanNumber: "8B", "8.1B", "260.00M"-style parameter counts. */
static void human_number(uint64_t n, char *buf, size_t cap)
{
    double v;
    if (n >= 1000000000ULL) {
        v = (double)n / 1e9;
        snprintf(buf, cap, v == (double)(uint64_t)v ? "%.0fB" : "%.1fB", v);
    } else if (n >= 1000000ULL) {
        v = (double)n / 1e6;
        snprintf(buf, cap, v == (double)(uint64_t)v ? "%.0fM" : "%.2fM", v);
    } else if (n >= 1000ULL) {
        snprintf(buf, cap, "%.0fK", (double)n / 1e3);
    } else {
        snprintf(buf, cap, "%llu", (unsigned long long)n);
    }
}

/* The config blob's model fields, read from the GGUF. */
static int gguf_config(const char *path, json_t *cfg, struct err *e)
{
    struct gguf_file *f;
    int rc = gguf_open(path, &f, e);
    if (rc)
        return rc;
    struct err ignore;
    struct gguf_str arch;
    char archs[64] = "";
    if (gguf_get_str(f, "general.architecture", &arch, &ignore) == 0 && arch.len < sizeof archs) {
        memcpy(archs, arch.ptr, arch.len);
        archs[arch.len] = '\0';
    }
    uint64_t n_params = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t n = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            n *= (uint64_t)f->tensors[i].ne[d];
        n_params += n;
    }
    char ps[32];
    human_number(n_params, ps, sizeof ps);
    uint32_t ft;
    const char *ftn = NULL;
    if (gguf_get_u32(f, "general.file_type", &ft, &ignore) == 0)
        ftn = llama_ftype_name(ft);
    if (!ftn) {
        /* No (known) file type: name it after the type most of the weight bytes have. */
        size_t best = 0;
        for (uint64_t i = 0; i < f->n_tensors; i++)
            if (f->tensors[i].size > best) {
                best = f->tensors[i].size;
                ftn = dtype_name(f->tensors[i].type);
            }
    }
    json_object_set_new(cfg, "model_format", json_string("gguf"));
    json_object_set_new(cfg, "model_family", json_string(archs));
    json_t *fams = json_array();
    json_array_append_new(fams, json_string(archs));
    json_object_set_new(cfg, "model_families", fams);
    json_object_set_new(cfg, "model_type", json_string(ps));
    json_object_set_new(cfg, "file_type", json_string(ftn ? ftn : "unknown"));
    gguf_close(f);
    return 0;
}

static int add_layer(json_t *layers, const char *media, const char *digest, uint64_t size, const char *from)
{
    json_t *l = json_object();
    json_object_set_new(l, "mediaType", json_string(media));
    json_object_set_new(l, "digest", json_string(digest));
    json_object_set_new(l, "size", json_integer((json_int_t)size));
    if (from)
        json_object_set_new(l, "from", json_string(from));
    return json_array_append_new(layers, l);
}

static int add_text_layer(struct store *s, json_t *layers, const char *media, const char *text, struct err *e)
{
    char dig[72];
    int rc = store_blob_import_mem(s, text, strlen(text), dig, e);
    if (!rc)
        add_layer(layers, media, dig, strlen(text), NULL);
    return rc;
}

/* Resolves FROM against base_dir, expanding "~/". malloc'd. */
static char *from_path(const char *from, const char *base_dir)
{
    char buf[4096];
    const char *home = getenv("HOME");
    if (strncmp(from, "~/", 2) == 0 && home)
        snprintf(buf, sizeof buf, "%s/%s", home, from + 2);
    else if (from[0] != '/' && base_dir && *base_dir)
        snprintf(buf, sizeof buf, "%s/%s", base_dir, from);
    else
        snprintf(buf, sizeof buf, "%s", from);
    return strdup(buf);
}

int store_create(struct store *s, const char *name, const struct store_create_req *req, struct err *e)
{
    struct store_name n;
    int rc = store_name_parse(name, &n, e);
    if (rc)
        return rc;
    struct store_model parent = {0};
    bool have_parent = false;
    char *src_path = NULL, *model_blob_path = NULL, *tmp_q = NULL;
    char model_digest[72] = "";
    json_t *layers = json_array(), *params = NULL, *cfg = json_object(), *man = NULL, *old = json_array();
    const char *from_name = NULL;
    bool imported = false; /* FROM a directory: already converted (and quantized) into tmp_q */

    if (req->from_digest) {
        if ((rc = store_blob_path(s, req->from_digest, &src_path, e)))
            goto done;
        if (!store_blob_exists(s, req->from_digest)) {
            rc = err_set(e, ERR_NOTFOUND, "blob %s not found in the store (upload it first)", req->from_digest);
            goto done;
        }
        snprintf(model_digest, sizeof model_digest, "sha256:%s", strrchr(src_path, '-') + 1);
    } else if (req->from && *req->from) {
        char *p = from_path(req->from, req->base_dir);
        struct stat st;
        if (p && stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                /* A Hugging Face / MLX safetensors checkpoint: converted (and quantized, if asked)
                 * into a temporary GGUF beside the blobs, which is then stored like any GGUF. */
                size_t cap = strlen(s->blobs) + 64;
                tmp_q = malloc(cap);
                if (!tmp_q) {
                    free(p);
                    rc = err_set(e, ERR_NOMEM, "out of memory");
                    goto done;
                }
                snprintf(tmp_q, cap, "%s/sha256-import%ld-partial", s->blobs, (long)getpid());
                report(req, "converting model");
                struct store_import_opts io = {.quantize = req->quantize, .n_threads = req->n_threads,
                                               .progress = req->progress, .progress_ctx = req->progress_ctx};
                rc = store_import_dir(p, tmp_q, &io, e);
                free(p);
                if (rc)
                    goto done;
                imported = true;
                p = strdup(tmp_q);
            }
            src_path = p;
        } else {
            free(p);
            report(req, "using existing layers");
            if ((rc = store_resolve(s, req->from, &parent, e)))
                goto done;
            have_parent = true;
            from_name = parent.name;
            if (!parent.model_path) {
                rc = err_set(e, ERR_FORMAT, "model '%s' has no GGUF weights layer to build on", parent.name);
                goto done;
            }
            src_path = strdup(parent.model_path);
            snprintf(model_digest, sizeof model_digest, "%s", parent.model_digest);
        }
    } else {
        rc = err_set(e, ERR_INVALID, "neither 'from' or 'files' was specified");
        goto done;
    }
    if (!src_path) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto done;
    }

    /* The weights: validated, quantized if asked, then copied in (a blob already present is reused). */
    struct gguf_file *probe = NULL;
    if ((rc = gguf_open(src_path, &probe, e))) {
        err_prefix(e, "supplied file was not in GGUF format");
        goto done;
    }
    gguf_close(probe);
    if (req->quantize && *req->quantize && !imported) {
        enum store_ftype ft;
        if ((rc = store_ftype_parse(req->quantize, &ft, e)))
            goto done;
        char status[128];
        snprintf(status, sizeof status, "quantizing model to %s", store_ftype_name(ft));
        report(req, status);
        size_t cap = strlen(s->blobs) + 64;
        tmp_q = malloc(cap);
        if (!tmp_q) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto done;
        }
        snprintf(tmp_q, cap, "%s/sha256-quantize%ld-partial", s->blobs, (long)getpid());
        if ((rc = store_quantize_file(src_path, tmp_q, ft, req->n_threads, req->progress, req->progress_ctx, e)))
            goto done;
        report(req, "copying model to the store");
        if ((rc = store_blob_import_file(s, tmp_q, model_digest, e)))
            goto done;
        from_name = NULL;
    } else if (!model_digest[0]) {
        report(req, "copying model to the store");
        if ((rc = store_blob_import_file(s, src_path, model_digest, e)))
            goto done;
    }
    if ((rc = store_blob_path(s, model_digest, &model_blob_path, e)))
        goto done;
    struct stat st;
    if (stat(model_blob_path, &st) != 0) {
        rc = err_set(e, ERR_IO, "cannot stat %s: %s", model_blob_path, strerror(errno));
        goto done;
    }
    report(req, "parsing GGUF");
    if ((rc = gguf_config(model_blob_path, cfg, e)))
        goto done;
    add_layer(layers, MT_MODEL, model_digest, (uint64_t)st.st_size, from_name);

    /* Text layers: the request's, else the parent's. */
    const char *tmpl = req->template_text ? req->template_text : have_parent ? parent.template_text : NULL;
    const char *sys = req->system ? req->system : have_parent ? parent.system : NULL;
    if (tmpl && (rc = add_text_layer(s, layers, MT_TEMPLATE, tmpl, e)))
        goto done;
    if (sys && (rc = add_text_layer(s, layers, MT_SYSTEM, sys, e)))
        goto done;
    if (req->n_licenses) {
        for (size_t i = 0; i < req->n_licenses; i++)
            if ((rc = add_text_layer(s, layers, MT_LICENSE, req->licenses[i], e)))
                goto done;
    } else if (have_parent && parent.license && (rc = add_text_layer(s, layers, MT_LICENSE, parent.license, e))) {
        goto done;
    }
    params = have_parent ? json_loads(parent.params_json, 0, NULL) : json_object();
    if (!json_is_object(params)) {
        json_decref(params);
        params = json_object();
    }
    if (req->params_json) {
        json_t *over = json_loads(req->params_json, 0, NULL);
        if (!json_is_object(over)) {
            json_decref(over);
            rc = err_set(e, ERR_INVALID, "parameters must be a JSON object");
            goto done;
        }
        json_object_update(params, over); /* the request's values win; lists replace, never merge */
        json_decref(over);
    }
    if (json_object_size(params)) {
        char *text = json_dumps(params, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        rc = text ? add_text_layer(s, layers, MT_PARAMS, text, e) : err_set(e, ERR_NOMEM, "out of memory");
        free(text);
        if (rc)
            goto done;
    }
    const char *msgs = req->messages_json ? req->messages_json : have_parent ? parent.messages_json : NULL;
    if (msgs && strcmp(msgs, "[]") != 0 && (rc = add_text_layer(s, layers, MT_MESSAGES, msgs, e)))
        goto done;

    /* Config blob, then the manifest. */
    json_object_set_new(cfg, "architecture", json_string("amd64"));
    json_object_set_new(cfg, "os", json_string("linux"));
    json_t *rootfs = json_object(), *diff = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) json_array_append(diff, json_object_get(l, "digest"));
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", diff);
    json_object_set_new(cfg, "rootfs", rootfs);
    char *cfg_text = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char cfg_digest[72];
    rc = cfg_text ? store_blob_import_mem(s, cfg_text, strlen(cfg_text), cfg_digest, e)
                  : err_set(e, ERR_NOMEM, "out of memory");
    size_t cfg_size = cfg_text ? strlen(cfg_text) : 0;
    free(cfg_text);
    if (rc)
        goto done;
    man = json_object();
    json_object_set_new(man, "schemaVersion", json_integer(2));
    json_object_set_new(man, "mediaType", json_string(MT_MANIFEST));
    json_t *c = json_object();
    json_object_set_new(c, "mediaType", json_string(MT_CONFIG));
    json_object_set_new(c, "digest", json_string(cfg_digest));
    json_object_set_new(c, "size", json_integer((json_int_t)cfg_size));
    json_object_set_new(man, "config", c);
    json_object_set(man, "layers", layers);

    /* Remember what the previous version referenced, to drop blobs only it used. */
    char *old_path = NULL;
    struct err ignore;
    if (store_find_manifest(s, &n, &old_path, NULL, &ignore) == 0) {
        json_t *om;
        if (store_read_manifest(old_path, &om, NULL, NULL, &ignore) == 0) {
            store_manifest_digests(om, old);
            json_decref(om);
        }
    }
    report(req, "writing manifest");
    rc = store_write_manifest(s, &n, man, e);
    /* The name existed in another casing: the new manifest replaces it rather than sitting beside it. */
    char *new_path = store_manifest_path(s, &n);
    if (!rc && old_path && new_path && strcmp(old_path, new_path) != 0)
        unlink(old_path);
    free(new_path);
    free(old_path);
    if (rc)
        goto done;
    if ((rc = store_remove_unreferenced(s, old, e)))
        goto done;
    report(req, "success");
done:
    if (tmp_q) {
        unlink(tmp_q);
        free(tmp_q);
    }
    free(src_path);
    free(model_blob_path);
    store_model_free(&parent);
    json_decref(layers);
    json_decref(params);
    json_decref(cfg);
    json_decref(man);
    json_decref(old);
    return rc;
}
