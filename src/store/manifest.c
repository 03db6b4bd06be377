/* manifest.c — the store's manifests: opening the store, finding a name's manifest case-insensitively,
 * reading a model's layers, listing, copying and deleting models with reference-counted blobs. */
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "store/store_impl.h"

char *store_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

int store_mkdirs(const char *path, struct err *e)
{
    char *p = strdup(path);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory");
    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int rc = err_set(e, ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
                free(p);
                return rc;
            }
            *q = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return 0;
}

int store_open(const char *root, struct store **out, struct err *e)
{
    *out = NULL;
    char buf[4096];
    if (!root || !*root)
        root = getenv("HEARTH_MODELS");
    if (!root || !*root) {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return err_set(e, ERR_INVALID, "cannot find the model store: set HEARTH_MODELS or HOME");
        snprintf(buf, sizeof buf, "%s/.hearth/models", home);
        root = buf;
    }
    struct store *s = calloc(1, sizeof *s);
    if (!s || !(s->root = strdup(root)) || !(s->manifests = store_join(root, "manifests")) ||
        !(s->blobs = store_join(root, "blobs"))) {
        store_close(s);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    int rc;
    if ((rc = store_mkdirs(s->manifests, e)) || (rc = store_mkdirs(s->blobs, e))) {
        err_prefix(e, "model store %s", root);
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    free(s->root);
    free(s->manifests);
    free(s->blobs);
    free(s);
}

const char *store_root(const struct store *s)
{
    return s->root;
}

char *store_manifest_path(struct store *s, const struct store_name *n)
{
    size_t cap = strlen(s->manifests) + strlen(n->host) + strlen(n->ns) + strlen(n->model) + strlen(n->tag) + 8;
    char *p = malloc(cap);
    if (p)
        snprintf(p, cap, "%s/%s/%s/%s/%s", s->manifests, n->host, n->ns, n->model, n->tag);
    return p;
}

/* The entry of dir equal to want, exactly if present, else ignoring case; copied into out. */
static bool find_entry(const char *dir, const char *want, char *out, size_t cap)
{
    char probe[4096];
    struct stat st;
    int len = snprintf(probe, sizeof probe, "%s/%s", dir, want);
    if (len < 0 || (size_t)len >= sizeof probe)
        return false; /* longer than any path we create */
    if (stat(probe, &st) == 0) {
        snprintf(out, cap, "%s", want);
        return true;
    }
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *de;
    bool found = false;
    while ((de = readdir(d))) {
        if (strcasecmp(de->d_name, want) == 0) {
            snprintf(out, cap, "%s", de->d_name);
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

int store_find_manifest(struct store *s, const struct store_name *n, char **path, struct store_name *canon,
                        struct err *e)
{
    *path = NULL;
    struct store_name c;
    char dir[4096];
    char display[512];
    store_name_display(n, display, sizeof display);
    snprintf(dir, sizeof dir, "%s", s->manifests);
    const char *want[4] = {n->host, n->ns, n->model, n->tag};
    char *got[4] = {c.host, c.ns, c.model, c.tag};
    size_t caps[4] = {sizeof c.host, sizeof c.ns, sizeof c.model, sizeof c.tag};
    for (int i = 0; i < 4; i++) {
        if (!find_entry(dir, want[i], got[i], caps[i]))
            return err_set(e, ERR_NOTFOUND, "model '%s' not found", display);
        size_t len = strlen(dir);
        snprintf(dir + len, sizeof dir - len, "/%s", got[i]);
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISREG(st.st_mode))
        return err_set(e, ERR_NOTFOUND, "model '%s' not found", display);
    if (!(*path = strdup(dir)))
        return err_set(e, ERR_NOMEM, "out of memory");
    if (canon)
        *canon = c;
    return 0;
}

int store_read_manifest(const char *path, json_t **out, char **raw, size_t *raw_size, struct err *e)
{
    *out = NULL;
    char *data = NULL;
    size_t size = 0;
    int rc = file_read_all(path, &data, &size, e);
    if (rc)
        return rc;
    json_error_t je;
    json_t *j = json_loadb(data, size, 0, &je);
    if (!j || !json_is_object(j) || !json_is_array(json_object_get(j, "layers"))) {
        json_decref(j);
        free(data);
        return err_set(e, ERR_FORMAT, "manifest %s: %s", path,
                       j ? "not a v2 manifest (no \"layers\" array)" : je.text);
    }
    *out = j;
    if (raw) {
        *raw = data;
        if (raw_size)
            *raw_size = size;
    } else {
        free(data);
    }
    return 0;
}

int store_write_manifest(struct store *s, const struct store_name *n, json_t *manifest, struct err *e)
{
    char *path = store_manifest_path(s, n);
    char *text = json_dumps(manifest, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = 0;
    if (!path || !text) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto done;
    }
    char *slash = strrchr(path, '/');
    *slash = '\0';
    rc = store_mkdirs(path, e);
    *slash = '/';
    if (rc)
        goto done;
    struct file_atomic w;
    if ((rc = file_atomic_open(&w, path, e)))
        goto done;
    if ((rc = file_atomic_write(&w, text, strlen(text), e))) {
        file_atomic_abort(&w);
        goto done;
    }
    rc = file_atomic_commit(&w, e);
done:
    free(path);
    free(text);
    return rc;
}

void store_manifest_digests(json_t *manifest, json_t *arr)
{
    json_t *cfg = json_object_get(manifest, "config");
    const char *d = json_string_value(json_object_get(cfg, "digest"));
    if (d)
        json_array_append_new(arr, json_string(d));
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(manifest, "layers"), i, l)
    {
        d = json_string_value(json_object_get(l, "digest"));
        if (d)
            json_array_append_new(arr, json_string(d));
    }
}

/* ---- walking manifests/<host>/<ns>/<model>/<tag> ---- */

struct path_list {
    char **v;
    size_t n, cap;
};

static int walk(const char *dir, int depth, struct path_list *pl, struct err *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* a vanished or unreadable directory holds no models */
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = store_join(dir, de->d_name);
        if (!p) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            break;
        }
        struct stat st;
        if (stat(p, &st) != 0) {
            free(p);
            continue;
        }
        if (depth < 3 && S_ISDIR(st.st_mode)) {
            rc = walk(p, depth + 1, pl, e);
            free(p);
        } else if (depth == 3 && S_ISREG(st.st_mode) && !strstr(de->d_name, ".tmp-")) {
            if (pl->n == pl->cap) {
                size_t nc = pl->cap ? pl->cap * 2 : 16;
                char **nv = realloc(pl->v, nc * sizeof *nv);
                if (!nv) {
                    free(p);
                    rc = err_set(e, ERR_NOMEM, "out of memory");
                    break;
                }
                pl->v = nv;
                pl->cap = nc;
            }
            pl->v[pl->n++] = p;
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

int store_manifest_paths(struct store *s, char ***paths, size_t *n, struct err *e)
{
    struct path_list pl = {0};
    int rc = walk(s->manifests, 0, &pl, e);
    if (rc) {
        for (size_t i = 0; i < pl.n; i++)
            free(pl.v[i]);
        free(pl.v);
        return rc;
    }
    *paths = pl.v;
    *n = pl.n;
    return 0;
}

static void free_paths(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A set (JSON object keyed by lowercase hex) of every digest any manifest references. */
static int referenced_set(struct store *s, json_t **out, struct err *e)
{
    char **paths;
    size_t n;
    int rc = store_manifest_paths(s, &paths, &n, e);
    if (rc)
        return rc;
    json_t *set = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *m;
        struct err ignore;
        if (store_read_manifest(paths[i], &m, NULL, NULL, &ignore))
            continue; /* an unreadable manifest references nothing we can know */
        json_t *arr = json_array();
        store_manifest_digests(m, arr);
        size_t k;
        json_t *d;
        json_array_foreach(arr, k, d)
        {
            char hex[65];
            if (store_digest_parse(json_string_value(d), hex, &ignore) == 0)
                json_object_set_new(set, hex, json_true());
        }
        json_decref(arr);
        json_decref(m);
    }
    free_paths(paths, n);
    *out = set;
    return 0;
}

int store_remove_unreferenced(struct store *s, json_t *digests, struct err *e)
{
    json_t *set;
    int rc = referenced_set(s, &set, e);
    if (rc)
        return rc;
    size_t i;
    json_t *d;
    json_array_foreach(digests, i, d)
    {
        char hex[65];
        struct err ignore;
        if (store_digest_parse(json_string_value(d), hex, &ignore) || json_object_get(set, hex))
            continue;
        char *p = NULL;
        if (store_blob_path(s, json_string_value(d), &p, &ignore) == 0)
            unlink(p);
        free(p);
    }
    json_decref(set);
    return 0;
}

/* "sha256-<64 hex>-partial[-N]": a pull that can resume (registry.c). */
static bool is_pull_partial(const char *nm)
{
    char head[72], hex[65];
    struct err ignore;
    if (strlen(nm) <= 71 || strncmp(nm + 71, "-partial", 8) != 0)
        return false;
    memcpy(head, nm, 71);
    head[71] = '\0';
    return store_digest_parse(head, hex, &ignore) == 0;
}

int store_prune(struct store *s, struct err *e)
{
    json_t *set;
    int rc = referenced_set(s, &set, e);
    if (rc)
        return rc;
    DIR *d = opendir(s->blobs);
    int count = 0;
    time_t now = time(NULL);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] == '.')
            continue;
        char *p = store_join(s->blobs, nm);
        struct stat st;
        if (!p || stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        bool remove = false;
        char hex[65];
        struct err ignore;
        if (strlen(nm) == 71 && store_digest_parse(nm, hex, &ignore) == 0)
            remove = !json_object_get(set, hex);
        else if (is_pull_partial(nm))
            remove = now - st.st_mtime > 30 * 86400; /* a resumable pull (registry.c): keep it a month */
        else
            remove = now - st.st_mtime > 3600; /* stale temporary or foreign file; give uploads an hour */
        if (remove && unlink(p) == 0)
            count++;
        free(p);
    }
    if (d)
        closedir(d);
    json_decref(set);
    return count;
}

/* ---- resolve, list ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static void sha256_mem(const void *data, size_t size, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(data, size, md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Appends text to *acc, separated by sep. */
static int append_text(char **acc, const char *text, const char *sep)
{
    size_t a = *acc ? strlen(*acc) : 0, t = strlen(text), sl = *acc ? strlen(sep) : 0;
    char *n = realloc(*acc, a + sl + t + 1);
    if (!n)
        return -1;
    if (sl)
        memcpy(n + a, sep, sl);
    memcpy(n + a + sl, text, t + 1);
    *acc = n;
    return 0;
}

int store_resolve(struct store *s, const char *name, struct store_model *m, struct err *e)
{
    memset(m, 0, sizeof *m);
    struct store_name n;
    int rc = store_name_parse(name, &n, e);
    if (rc)
        return rc;
    char *path = NULL, *raw = NULL;
    size_t raw_size = 0;
    json_t *man = NULL;
    if ((rc = store_find_manifest(s, &n, &path, &m->parsed, e)))
        return rc;
    if ((rc = store_read_manifest(path, &man, &raw, &raw_size, e)))
        goto done;
    struct stat st;
    if (stat(path, &st) == 0)
        m->modified_ns = mtime_ns(&st);
    sha256_mem(raw, raw_size, m->digest);
    m->manifest_json = raw;
    raw = NULL;
    char disp[512];
    store_name_display(&m->parsed, disp, sizeof disp);
    m->name = strdup(disp);

    json_t *cfg = json_object_get(man, "config");
    m->size += (uint64_t)json_integer_value(json_object_get(cfg, "size"));
    const char *cfg_digest = json_string_value(json_object_get(cfg, "digest"));
    if (cfg_digest) {
        char *text = NULL;
        size_t sz;
        struct err ignore;
        if (store_blob_read(s, cfg_digest, &text, &sz, &ignore) == 0) {
            m->config_json = text;
            json_t *c = json_loads(text, 0, NULL);
            m->format = dup_or_null(json_string_value(json_object_get(c, "model_format")));
            m->family = dup_or_null(json_string_value(json_object_get(c, "model_family")));
            m->parameter_size = dup_or_null(json_string_value(json_object_get(c, "model_type")));
            m->quantization_level = dup_or_null(json_string_value(json_object_get(c, "file_type")));
            json_decref(c);
        }
    }
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(man, "layers"), i, l)
    {
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        const char *dg = json_string_value(json_object_get(l, "digest"));
        m->size += (uint64_t)json_integer_value(json_object_get(l, "size"));
        if (!mt || !dg)
            continue;
        if (strcmp(mt, MT_MODEL) == 0) {
            if (m->model_path)
                continue;
            if ((rc = store_blob_path(s, dg, &m->model_path, e)))
                goto done;
            m->model_digest = strdup(dg);
            m->parent = dup_or_null(json_string_value(json_object_get(l, "from")));
            continue;
        }
        char **slot = NULL;
        bool is_license = false;
        if (strcmp(mt, MT_TEMPLATE) == 0 || strcmp(mt, MT_PROMPT) == 0)
            slot = &m->template_text;
        else if (strcmp(mt, MT_SYSTEM) == 0)
            slot = &m->system;
        else if (strcmp(mt, MT_PARAMS) == 0)
            slot = &m->params_json;
        else if (strcmp(mt, MT_MESSAGES) == 0)
            slot = &m->messages_json;
        else if (strcmp(mt, MT_LICENSE) == 0)
            is_license = true;
        if (!slot && !is_license)
            continue; /* adapters, projectors and newer layer types are not used by hearth */
        char *text = NULL;
        size_t sz;
        if ((rc = store_blob_read(s, dg, &text, &sz, e))) {
            err_prefix(e, "model '%s' layer %s", disp, mt);
            goto done;
        }
        if (is_license) {
            int r = append_text(&m->license, text, "\n\n");
            free(text);
            if (r) {
                rc = err_set(e, ERR_NOMEM, "out of memory");
                goto done;
            }
        } else {
            free(*slot);
            *slot = text;
        }
    }
    if (!m->params_json)
        m->params_json = strdup("{}");
    if (!m->messages_json)
        m->messages_json = strdup("[]");
    if (!m->name || !m->params_json || !m->messages_json)
        rc = err_set(e, ERR_NOMEM, "out of memory");
done:
    json_decref(man);
    free(raw);
    free(path);
    if (rc)
        store_model_free(m);
    return rc;
}

void store_model_free(struct store_model *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->model_path);
    free(m->model_digest);
    free(m->template_text);
    free(m->system);
    free(m->params_json);
    free(m->messages_json);
    free(m->license);
    free(m->config_json);
    free(m->manifest_json);
    free(m->parent);
    free(m->format);
    free(m->family);
    free(m->parameter_size);
    free(m->quantization_level);
    memset(m, 0, sizeof *m);
}

static int cmp_entry(const void *a, const void *b)
{
    const struct store_entry *x = a, *y = b;
    if (x->modified_ns != y->modified_ns)
        return x->modified_ns > y->modified_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

int store_list(struct store *s, struct store_entry **out, size_t *count, struct err *e)
{
    *out = NULL;
    *count = 0;
    char **paths;
    size_t n;
    int rc = store_manifest_paths(s, &paths, &n, e);
    if (rc)
        return rc;
    struct store_entry *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        free_paths(paths, n);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    size_t root_len = strlen(s->manifests);
    for (size_t i = 0; i < n; i++) {
        /* paths[i] = <manifests>/<host>/<ns>/<model>/<tag> */
        char rel[1024];
        snprintf(rel, sizeof rel, "%s", paths[i] + root_len + 1);
        char *parts[4];
        char *save = NULL;
        int np = 0;
        for (char *t = strtok_r(rel, "/", &save); t && np < 4; t = strtok_r(NULL, "/", &save))
            parts[np++] = t;
        if (np != 4)
            continue;
        char full[1024];
        snprintf(full, sizeof full, "%s/%s/%s:%s", parts[0], parts[1], parts[2], parts[3]);
        struct store_model m;
        struct err ignore;
        if (store_resolve(s, full, &m, &ignore) != 0)
            continue; /* a corrupt manifest is skipped, as Ollama does */
        struct store_entry *en = &v[k++];
        en->name = m.name;
        m.name = NULL;
        en->parsed = m.parsed;
        memcpy(en->digest, m.digest, sizeof en->digest);
        en->size = m.size;
        en->modified_ns = m.modified_ns;
        en->family = m.family;
        en->parameter_size = m.parameter_size;
        en->quantization_level = m.quantization_level;
        m.family = m.parameter_size = m.quantization_level = NULL;
        store_model_free(&m);
    }
    free_paths(paths, n);
    qsort(v, k, sizeof *v, cmp_entry);
    *out = v;
    *count = k;
    return 0;
}

void store_list_free(struct store_entry *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].family);
        free(v[i].parameter_size);
        free(v[i].quantization_level);
    }
    free(v);
}

/* ---- delete, copy ---- */

int store_delete(struct store *s, const char *name, struct err *e)
{
    struct store_name n;
    int rc = store_name_parse(name, &n, e);
    if (rc)
        return rc;
    char *path = NULL;
    json_t *man = NULL;
    if ((rc = store_find_manifest(s, &n, &path, NULL, e)))
        return rc;
    json_t *digests = json_array();
    if (store_read_manifest(path, &man, NULL, NULL, e) == 0)
        store_manifest_digests(man, digests);
    if (unlink(path) != 0) {
        rc = err_set(e, ERR_IO, "cannot remove %s: %s", path, strerror(errno));
        goto done;
    }
    /* Remove the now-empty tag, model, namespace and host directories (rmdir fails on non-empty). */
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(path, '/');
        if (!slash)
            break;
        *slash = '\0';
        if (strcmp(path, s->manifests) == 0 || rmdir(path) != 0)
            break;
    }
    rc = store_remove_unreferenced(s, digests, e);
done:
    json_decref(digests);
    json_decref(man);
    free(path);
    return rc;
}

int store_copy(struct store *s, const char *src, const char *dst, struct err *e)
{
    struct store_name sn, dn, existing;
    int rc;
    if ((rc = store_name_parse(src, &sn, e)) || (rc = store_name_parse(dst, &dn, e)))
        return rc;
    char *spath = NULL, *dpath = NULL, *data = NULL;
    size_t size = 0;
    if ((rc = store_find_manifest(s, &sn, &spath, NULL, e))) {
        char disp[512];
        store_name_display(&sn, disp, sizeof disp);
        err_set(e, ERR_NOTFOUND, "model \"%s\" not found", disp);
        return rc;
    }
    if ((rc = file_read_all(spath, &data, &size, e)))
        goto done;
    /* A destination that exists in another casing is overwritten in place, not duplicated. */
    struct err ignore;
    if (store_find_manifest(s, &dn, &dpath, &existing, &ignore) != 0) {
        dpath = store_manifest_path(s, &dn);
        if (!dpath) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto done;
        }
        char *slash = strrchr(dpath, '/');
        *slash = '\0';
        rc = store_mkdirs(dpath, e);
        *slash = '/';
        if (rc)
            goto done;
    }
    struct file_atomic w;
    if ((rc = file_atomic_open(&w, dpath, e)))
        goto done;
    if ((rc = file_atomic_write(&w, data, size, e))) {
        file_atomic_abort(&w);
        goto done;
    }
    rc = file_atomic_commit(&w, e);
done:
    free(spath);
    free(dpath);
    free(data);
    return rc;
}

int store_gguf_path(const char *name_or_path, char **path, struct err *e)
{
    *path = NULL;
    struct stat st;
    if (stat(name_or_path, &st) == 0 && S_ISREG(st.st_mode)) {
        if (!(*path = strdup(name_or_path)))
            return err_set(e, ERR_NOMEM, "out of memory");
        return 0;
    }
    struct store_name n;
    if (store_name_parse(name_or_path, &n, e) != 0)
        return err_set(e, ERR_NOTFOUND, "'%s' is neither a file nor a model name in the store", name_or_path);
    struct store *s;
    int rc = store_open(NULL, &s, e);
    if (rc)
        return rc;
    struct store_model m;
    rc = store_resolve(s, name_or_path, &m, e);
    store_close(s);
    if (rc)
        return rc;
    if (!m.model_path) {
        rc = err_set(e, ERR_FORMAT, "model '%s' has no GGUF weights layer", m.name);
        store_model_free(&m);
        return rc;
    }
    *path = m.model_path;
    m.model_path = NULL;
    store_model_free(&m);
    return 0;
}
