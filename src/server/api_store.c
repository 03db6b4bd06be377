/* api_store.c — the routes that change the model store: /api/copy, DELETE /api/delete,
 * HEAD /api/blobs/:digest (POST uploads stream in server.c), /api/create in Ollama's JSON form with
 * streamed status objects, and /api/pull and /api/push with Ollama's progress objects. Loaded copies of a deleted model are
 * unloaded first so no slot keeps using weights whose blob is gone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "engine/options.h"
#include "server/server_internal.h"
#include "store/store.h"

static bool need_store(const struct srv *s, struct reply *r)
{
    if (s->store)
        return true;
    reply_error(r, 500, "the model store is not available (check HEARTH_MODELS and its permissions)");
    return false;
}

/* Ollama accepts "model" and the older "name" for the same field. */
static const char *model_field(const json_t *body, const char *key, const char *alt)
{
    json_t *v = json_object_get(body, key);
    if (!json_is_string(v) && alt)
        v = json_object_get(body, alt);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void api_copy(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, false);
    if (!body)
        return;
    const char *src = model_field(body, "source", NULL), *dst = model_field(body, "destination", NULL);
    struct err e = {0};
    if (!src || !*src || !dst || !*dst) {
        reply_error(r, 400, "\"source\" and \"destination\" are required");
    } else if (need_store(s, r)) {
        int rc = store_copy(s->store, src, dst, &e);
        if (rc)
            reply_error(r, http_status_for(rc), "%s", e.msg);
        else
            reply_text(r, 200, "application/json; charset=utf-8", "");
    }
    json_decref(body);
}

void api_delete(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, false);
    if (!body)
        return;
    const char *name = model_field(body, "model", "name");
    struct err e = {0};
    if (!name || !*name) {
        reply_error(r, 400, "model is required");
    } else if (need_store(s, r)) {
        struct store_model m;
        if (store_resolve(s->store, name, &m, &e) == 0) {
            /* The weights blob may be shared with another name; unloading is harmless then (the
             * next request reloads) and required otherwise. */
            if (m.model_path)
                sched_unload(s->sched, m.model_path);
            store_model_free(&m);
        }
        int rc = store_delete(s->store, name, &e);
        if (rc)
            reply_error(r, http_status_for(rc), "%s", e.msg);
        else
            reply_text(r, 200, "application/json; charset=utf-8", "");
    }
    json_decref(body);
}

void api_blob_head(struct srv *s, const char *digest, struct reply *r)
{
    char hex[65];
    struct err e = {0};
    if (store_digest_parse(digest, hex, &e)) {
        reply_error(r, 400, "%s", e.msg);
        return;
    }
    if (s->store && store_blob_exists(s->store, digest))
        reply_text(r, 200, "text/plain; charset=utf-8", "");
    else
        reply_text(r, 404, "text/plain; charset=utf-8", "");
}

/* ---- create ---- */

struct create_job {
    struct srv *s;
    char *name;
    char *from, *from_digest, *template_text, *system, *params_json, *messages_json, *quantize;
    char **licenses;
    size_t n_licenses;
    json_t *files;     /* a safetensors checkpoint: file name -> blob digest; NULL otherwise */
    struct stream *st; /* NULL when not streamed */
    bool client_gone;
};

static void create_job_free(void *p)
{
    struct create_job *j = p;
    if (!j)
        return;
    free(j->name);
    free(j->from);
    free(j->from_digest);
    free(j->template_text);
    free(j->system);
    free(j->params_json);
    free(j->messages_json);
    free(j->quantize);
    json_decref(j->files);
    for (size_t i = 0; i < j->n_licenses; i++)
        free(j->licenses[i]);
    free(j->licenses);
    free(j);
}

static void write_line(struct create_job *j, json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!t)
        return;
    if (j->st && !j->client_gone) {
        size_t n = strlen(t);
        if (stream_write(j->st, t, n) || stream_write(j->st, "\n", 1))
            j->client_gone = true;
    }
    free(t);
}

static void create_progress(void *ctx, const char *status, uint64_t done, uint64_t total)
{
    struct create_job *j = ctx;
    if (!j->st)
        return;
    json_t *o = json_pack("{s:s}", "status", status);
    if (total > 0) {
        json_object_set_new(o, "total", json_integer((json_int_t)total));
        json_object_set_new(o, "completed", json_integer((json_int_t)done));
    }
    write_line(j, o);
}

/* Before a create or pull writes the model of that name again: the scheduler lets go of its current
 * weights, if that model is loaded (a name that does not resolve yet has nothing to unload). */
static void unload_model_named(struct srv *s, const char *name)
{
    struct store_model old;
    struct err ignore = {0};
    if (store_resolve(s->store, name, &old, &ignore) == 0) {
        if (old.model_path)
            sched_unload(s->sched, old.model_path);
        store_model_free(&old);
    }
}

/* Puts blob src at dst: a hard link (blobs are immutable, and the temporary folder is inside the
 * store, so on the same file system), else a copy. */
static int place_blob(const char *src, const char *dst, struct err *e)
{
    if (link(src, dst) == 0)
        return 0;
    struct file_map m;
    int rc = file_map_open(&m, src, e);
    if (rc)
        return rc;
    FILE *f = fopen(dst, "wb");
    if (!f || (m.size && fwrite(m.data, 1, m.size, f) != m.size) || fclose(f) != 0) {
        rc = err_set(e, ERR_IO, "cannot write %s: %s", dst, strerror(errno));
        if (f)
            fclose(f);
    }
    file_map_close(&m);
    return rc;
}

/* Removes the folder assemble_checkpoint made (its files, the checkpoint folder, the top one). */
static void remove_checkpoint(const char *top, const char *dir, json_t *files)
{
    const char *fname;
    json_t *dv;
    char path[4096];
    json_object_foreach(files, fname, dv) {
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        unlink(path);
    }
    rmdir(dir);
    rmdir(top);
}

/* Ollama's `files` form of a safetensors checkpoint: the uploaded blobs laid out under their file
 * names in a temporary folder of the store, <root>/tmp-import-XXXXXX/<model>, which the importer
 * then reads like a directory FROM (the folder's name becomes general.name). */
static int assemble_checkpoint(struct create_job *j, char *top, size_t top_cap, char *dir, size_t dir_cap,
                               struct err *e)
{
    struct store_name sn;
    int rc = store_name_parse(j->name, &sn, e);
    if (rc)
        return rc;
    snprintf(top, top_cap, "%s/tmp-import-XXXXXX", store_root(j->s->store));
    if (!mkdtemp(top))
        return err_set(e, ERR_IO, "cannot create a temporary folder in %s: %s", store_root(j->s->store),
                       strerror(errno));
    snprintf(dir, dir_cap, "%s/%s", top, sn.model);
    if (mkdir(dir, 0700) != 0) {
        rc = err_set(e, ERR_IO, "cannot create %s: %s", dir, strerror(errno));
        rmdir(top);
        return rc;
    }
    const char *fname;
    json_t *dv;
    json_object_foreach(j->files, fname, dv) {
        char *blob = NULL, dst[8192];
        snprintf(dst, sizeof dst, "%s/%s", dir, fname);
        rc = store_blob_path(j->s->store, json_string_value(dv), &blob, e);
        rc = rc ? rc : place_blob(blob, dst, e);
        free(blob);
        if (rc) {
            err_prefix(e, "files[\"%s\"]", fname);
            remove_checkpoint(top, dir, j->files);
            return rc;
        }
    }
    return 0;
}

static int create_run(struct create_job *j, struct err *e)
{
    char top[4096], dir[4352];
    if (j->files) {
        int rc = assemble_checkpoint(j, top, sizeof top, dir, sizeof dir, e);
        if (rc)
            return rc;
    }
    struct store_create_req req = {
        .from = j->files ? dir : j->from,
        .from_digest = j->from_digest,
        .template_text = j->template_text,
        .system = j->system,
        .params_json = j->params_json,
        .messages_json = j->messages_json,
        .licenses = (const char *const *)j->licenses,
        .n_licenses = j->n_licenses,
        .quantize = j->quantize,
        .progress = create_progress,
        .progress_ctx = j,
    };
    /* Re-creating a loaded model replaces its weights blob: unload the old one first. */
    unload_model_named(j->s, j->name);
    int rc = store_create(j->s->store, j->name, &req, e);
    if (j->files)
        remove_checkpoint(top, dir, j->files);
    return rc;
}

static void create_stream(struct stream *st, void *p)
{
    struct create_job *j = p;
    j->st = st;
    struct err e = {0};
    if (create_run(j, &e))
        write_line(j, json_pack("{s:s}", "error", e.msg));
    /* store_create reports "success" itself through the progress callback. */
}

static char *dup_opt_string(const json_t *body, const char *key, bool *bad)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return strdup(json_string_value(v));
}

/* Fills j from Ollama's JSON create request; on failure fills r (400) and returns false. */
static bool create_parse(struct srv *s, const json_t *body, struct create_job *j, struct reply *r)
{
    const char *name = model_field(body, "model", "name");
    if (!name || !*name) {
        reply_error(r, 400, "model is required");
        return false;
    }
    struct store_name sn;
    struct err e = {0};
    if (store_name_parse(name, &sn, &e)) {
        reply_error(r, 400, "invalid model name '%s': %s", name, e.msg);
        return false;
    }
    j->name = strdup(name);
    bool bad = false;
    j->from = dup_opt_string(body, "from", &bad);
    j->template_text = dup_opt_string(body, "template", &bad);
    j->system = dup_opt_string(body, "system", &bad);
    j->quantize = dup_opt_string(body, "quantize", &bad);
    if (bad) {
        reply_error(r, 400, "\"from\", \"template\", \"system\" and \"quantize\" must be strings");
        return false;
    }
    if (j->quantize) {
        enum store_ftype ft;
        if (store_ftype_parse(j->quantize, &ft, &e)) {
            reply_error(r, 400, "quantize: %s", e.msg);
            return false;
        }
    }
    json_t *files = json_object_get(body, "files");
    if (files && !json_is_null(files)) {
        if (!json_is_object(files)) {
            reply_error(r, 400, "\"files\" must be an object of file names to \"sha256:<hex>\" digests");
            return false;
        }
        const char *fname;
        json_t *dv;
        bool checkpoint = false;
        json_object_foreach(files, fname, dv) {
            size_t n = strlen(fname);
            const char *d = json_string_value(dv);
            if (!d) {
                reply_error(r, 400, "files[\"%s\"] must be a digest string", fname);
                return false;
            }
            char hex[65];
            if (store_digest_parse(d, hex, &e)) {
                reply_error(r, 400, "files[\"%s\"]: %s", fname, e.msg);
                return false;
            }
            if (!store_blob_exists(s->store, d)) {
                reply_error(r, 400, "files[\"%s\"]: blob %s is not in the store; upload it first with POST /api/blobs/%s",
                            fname, d, d);
                return false;
            }
            if (n > 5 && strcmp(fname + n - 5, ".gguf") == 0) {
                if (!j->from_digest)
                    j->from_digest = strdup(d);
                continue;
            }
            /* Anything else is a file of a safetensors checkpoint, laid out under its own name. */
            if (!*fname || fname[0] == '.' || strchr(fname, '/') || strchr(fname, '\\')) {
                reply_error(r, 400, "files[\"%s\"]: a file name must be a plain name (no folders, not hidden)",
                            fname);
                return false;
            }
            checkpoint = true;
        }
        if (checkpoint && j->from_digest) {
            reply_error(r, 400, "files: give either one .gguf file or the files of a safetensors checkpoint "
                                "(config.json, *.safetensors, tokenizer.json, ...), not both");
            return false;
        }
        if (checkpoint) {
            bool has_weights = false;
            json_object_foreach(files, fname, dv) {
                size_t n = strlen(fname);
                has_weights = has_weights || (n > 12 && strcmp(fname + n - 12, ".safetensors") == 0);
            }
            if (!json_object_get(files, "config.json") || !json_object_get(files, "tokenizer.json") || !has_weights) {
                reply_error(r, 400, "files: a safetensors checkpoint needs config.json, tokenizer.json and its "
                                    ".safetensors weights (or a .gguf file instead)");
                return false;
            }
            j->files = json_incref(files);
        }
    }
    if (!j->from && !j->from_digest && !j->files) {
        reply_error(r, 400, "neither 'from' or 'files' was specified");
        return false;
    }
    json_t *params = json_object_get(body, "parameters");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params)) {
            reply_error(r, 400, "\"parameters\" must be an object");
            return false;
        }
        /* Type-check with the same rules a request's options get, so a bad value fails now. */
        struct gen_options o;
        options_default(&o);
        int rc = options_apply_json(&o, params, &e);
        options_free(&o);
        if (rc) {
            reply_error(r, 400, "parameters: %s", e.msg);
            return false;
        }
        j->params_json = json_dumps(params, JSON_COMPACT);
    }
    json_t *msgs = json_object_get(body, "messages");
    if (msgs && !json_is_null(msgs)) {
        json_t *copy = json_deep_copy(msgs);
        int rc = json_is_array(copy) ? chat_validate_messages(copy, &e)
                                     : err_set(&e, ERR_INVALID, "\"messages\" must be an array");
        if (!rc)
            j->messages_json = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
        if (rc) {
            reply_error(r, 400, "%s", e.msg);
            return false;
        }
    }
    json_t *lic = json_object_get(body, "license");
    if (json_is_string(lic) || json_is_array(lic)) {
        size_t n = json_is_string(lic) ? 1 : json_array_size(lic);
        j->licenses = calloc(n ? n : 1, sizeof *j->licenses);
        for (size_t i = 0; j->licenses && i < n; i++) {
            const char *t = json_is_string(lic) ? json_string_value(lic) : json_string_value(json_array_get(lic, i));
            if (t && (j->licenses[j->n_licenses] = strdup(t)))
                j->n_licenses++;
        }
    }
    return true;
}

void api_create(struct srv *s, const struct http_req *q, struct reply *r)
{
    json_t *body = parse_body(q, r, false);
    if (!body)
        return;
    if (!need_store(s, r)) {
        json_decref(body);
        return;
    }
    struct create_job *j = calloc(1, sizeof *j);
    if (!j) {
        reply_error(r, 500, "out of memory");
        json_decref(body);
        return;
    }
    j->s = s;
    json_t *sv = json_object_get(body, "stream");
    bool stream = !json_is_false(sv);
    if (!create_parse(s, body, j, r)) {
        create_job_free(j);
    } else if (stream) {
        stream_start(s, r, 200, "application/x-ndjson", create_stream, j, create_job_free);
    } else {
        struct err e = {0};
        int rc = create_run(j, &e);
        if (rc)
            reply_error(r, http_status_for(rc) == 500 && rc == ERR_FORMAT ? 400 : http_status_for(rc), "%s", e.msg);
        else
            reply_json(r, 200, json_pack("{s:s}", "status", "success"));
        create_job_free(j);
    }
    json_decref(body);
}

/* ---- pull and push ---- */

struct xfer_job {
    struct srv *s;
    char *name;
    bool push, insecure, client_gone;
    atomic_bool cancel; /* the client went away (or the server is stopping): the transfer stops */
    struct stream *st;
};

static void xfer_job_free(void *p)
{
    struct xfer_job *j = p;
    if (j)
        free(j->name);
    free(j);
}

static void xfer_line(struct xfer_job *j, json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (t && j->st && !j->client_gone && (stream_write(j->st, t, strlen(t)) || stream_write(j->st, "\n", 1))) {
        j->client_gone = true;
        atomic_store(&j->cancel, true);
    }
    free(t);
}

/* Ollama's progress objects: {"status"} or {"status","digest","total","completed"}. */
static void xfer_progress(void *ctx, const char *status, const char *digest, uint64_t total, uint64_t completed)
{
    struct xfer_job *j = ctx;
    if (!j->st) {
        /* Not streamed: the transfer runs on the connection's thread, which can see the client
         * hang up; progress comes at least every 0.1 s while a layer downloads. */
        if (server_client_gone()) {
            j->client_gone = true;
            atomic_store(&j->cancel, true);
        }
        return;
    }
    json_t *o = json_pack("{s:s}", "status", status);
    if (digest)
        json_object_set_new(o, "digest", json_string(digest));
    if (total > 0) {
        json_object_set_new(o, "total", json_integer((json_int_t)total));
        json_object_set_new(o, "completed", json_integer((json_int_t)completed));
    }
    xfer_line(j, o);
}

static int xfer_run(struct xfer_job *j, struct err *e)
{
    struct store_xfer_opts o = {
        .insecure = j->insecure, .progress = xfer_progress, .progress_ctx = j, .cancel = &j->cancel};
    int rc;
    if (j->push) {
        rc = store_push(j->s->store, j->name, &o, e);
    } else {
        /* A pull may replace the weights of a loaded model of the same name. */
        unload_model_named(j->s, j->name);
        rc = store_pull(j->s->store, j->name, &o, e);
    }
    if (rc && atomic_load(&j->cancel))
        fprintf(stderr, "hearth: %s of %s stopped: the client disconnected%s\n", j->push ? "push" : "pull", j->name,
                j->push ? "" : " (the partial download is kept; pulling again resumes it)");
    return rc;
}

static void xfer_stream(struct stream *st, void *p)
{
    struct xfer_job *j = p;
    j->st = st;
    struct err e = {0};
    if (xfer_run(j, &e))
        xfer_line(j, json_pack("{s:s}", "error", e.msg));
}

static void xfer_route(struct srv *s, const struct http_req *q, struct reply *r, bool push)
{
    json_t *body = parse_body(q, r, false);
    if (!body)
        return;
    const char *name = model_field(body, "model", "name");
    struct store_name sn;
    struct err e = {0};
    if (!name || !*name) {
        reply_error(r, 400, "model is required");
    } else if (store_name_parse(name, &sn, &e)) {
        reply_error(r, 400, "invalid model name '%s': %s", name, e.msg);
    } else if (need_store(s, r)) {
        struct xfer_job *j = calloc(1, sizeof *j);
        if (!j || !(j->name = strdup(name))) {
            free(j);
            reply_error(r, 500, "out of memory");
        } else {
            j->s = s;
            j->push = push;
            atomic_init(&j->cancel, false);
            j->insecure = json_is_true(json_object_get(body, "insecure"));
            if (!json_is_false(json_object_get(body, "stream"))) {
                stream_start(s, r, 200, "application/x-ndjson", xfer_stream, j, xfer_job_free);
            } else {
                int rc = xfer_run(j, &e);
                if (rc)
                    reply_error(r, http_status_for(rc), "%s", e.msg);
                else
                    reply_json(r, 200, json_pack("{s:s}", "status", "success"));
                xfer_job_free(j);
            }
        }
    }
    json_decref(body);
}

void api_pull(struct srv *s, const struct http_req *q, struct reply *r)
{
    xfer_route(s, q, r, false);
}

void api_push(struct srv *s, const struct http_req *q, struct reply *r)
{
    xfer_route(s, q, r, true);
}
