/* registry.c — pull and push over the Docker/OCI registry HTTP API v2 (what Ollama's registry speaks),
 * with libcurl.
 *
 * Pull: GET the manifest (Ollama's Accept header), then every layer the store lacks in parallel
 * ranged parts on one curl multi handle. Parts land at their offsets in blobs/sha256-<hex>-partial
 * and each part's progress is recorded in blobs/sha256-<hex>-partial-<N> ({"N","Offset","Size",
 * "Completed"}, as Ollama does), so a killed pull resumes where it stopped. The finished file is
 * hashed before it is renamed into place; a mismatch deletes it and says so. A lock on the partial
 * file makes a second pull of the same blob wait for the first instead of writing beside it.
 * Failed parts are retried with exponential backoff; a part that receives nothing for 30 s is
 * restarted. 401 answers with a Bearer challenge (WWW-Authenticate) get a token from the realm.
 *
 * Push: HEAD each blob; missing ones are mounted from another repository of the same registry when
 * the layer records one, else uploaded with POST + PATCH chunks (Content-Range) + PUT ?digest=;
 * then the manifest bytes are PUT.
 *
 * Cancellation (store_xfer_opts.cancel) is checked by curl's progress callback on every transfer and
 * by the download loop, so a disconnected client stops the work within a fraction of a second;
 * part records are saved first, so a cancelled pull resumes like a killed one.
 *
 * Plain http is used only when the caller sets insecure. Test knobs (documented in docs/models.md):
 * HEARTH_PULL_PART_SIZE (bytes per part), HEARTH_PULL_MAX_RATE (bytes/s for a whole blob). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "store/store_impl.h"

#define MAX_PARTS 16
#define MIN_PART (100ull * 1000 * 1000)
#define MAX_PART (1000ull * 1000 * 1000)
#define MAX_ATTEMPTS 6
#define STALL_SECONDS 30
#define SAVE_EVERY (1u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end || x == 0 ? dflt : (uint64_t)x;
}

/* ---- one registry conversation ---- */

struct reg {
    struct store *s;
    const struct store_xfer_opts *o;
    struct store_name n;
    char base[STORE_HOST_MAX + 16]; /* scheme://host */
    char repo[2 * STORE_PART_MAX + 2];
    char *token;
    bool pushing; /* for the cancellation message */
};

struct resp {
    long status;
    char *body;
    size_t len;
    char location[2048];
    char challenge[2048];
    uint64_t content_length;
};

static void resp_reset(struct resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
    struct resp *r = ctx;
    size_t k = sz * n;
    if (r->len + k > (64u << 20)) /* manifests, tokens and errors are small */
        return 0;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, k);
    r->body = nb;
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

/* Copies a header's value (trimmed) when line is "name: value". */
static bool header_value(const char *line, size_t len, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return false;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t k = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(dst, v, k);
    dst[k] = '\0';
    return true;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx)
{
    struct resp *r = ctx;
    size_t k = sz * n;
    char num[32];
    if (k >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (after a redirect) */
        r->location[0] = r->challenge[0] = '\0';
        r->content_length = 0;
    }
    if (!header_value(p, k, "Docker-Upload-Location", r->location, sizeof r->location))
        header_value(p, k, "Location", r->location, sizeof r->location);
    header_value(p, k, "WWW-Authenticate", r->challenge, sizeof r->challenge);
    if (header_value(p, k, "Content-Length", num, sizeof num))
        r->content_length = strtoull(num, NULL, 10);
    return k;
}

static struct curl_slist *base_headers(struct reg *r, struct curl_slist *h)
{
    h = curl_slist_append(h, "User-Agent: hearth (ollama-compatible)");
    if (r->token) {
        char auth[4200];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->token);
        h = curl_slist_append(h, auth);
    }
    return h;
}

/* Reads key="value" from a WWW-Authenticate parameter list. */
static bool challenge_param(const char *ch, const char *key, char *dst, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = ch; (p = strstr(p, key)); p += kl) {
        if ((p == ch || p[-1] == ' ' || p[-1] == ',') && p[kl] == '=') {
            const char *v = p + kl + 1;
            bool quoted = *v == '"';
            if (quoted)
                v++;
            size_t k = 0;
            while (v[k] && (quoted ? v[k] != '"' : v[k] != ',') && k + 1 < cap)
                k++;
            memcpy(dst, v, k);
            dst[k] = '\0';
            return true;
        }
    }
    return false;
}

/* Answers a Bearer challenge: GET realm?service=&scope=, keep the token. */
static int get_token(struct reg *r, const char *challenge, struct err *e)
{
    char realm[1024], service[512] = "", scope[512] = "";
    if (strncasecmp(challenge, "Bearer ", 7) != 0 || !challenge_param(challenge, "realm", realm, sizeof realm))
        return err_set(e, ERR_IO, "registry %s asks for authentication hearth does not support (%s)", r->base,
                       challenge);
    challenge_param(challenge, "service", service, sizeof service);
    challenge_param(challenge, "scope", scope, sizeof scope);
    if (!r->o->insecure && strncmp(realm, "https://", 8) != 0)
        return err_set(e, ERR_IO, "registry %s sent a token realm over plain http (%s); use --insecure to allow it",
                       r->base, realm);
    CURL *c = curl_easy_init();
    if (!c)
        return err_set(e, ERR_NOMEM, "out of memory");
    char *es = curl_easy_escape(c, service, 0), *sc = curl_easy_escape(c, scope, 0);
    char url[4096];
    snprintf(url, sizeof url, "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?", es ? es : "",
             sc ? sc : "");
    curl_free(es);
    curl_free(sc);
    struct resp rs = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rs);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rs.status);
    curl_easy_cleanup(c);
    int rc = 0;
    json_t *j = NULL;
    if (cc != CURLE_OK || rs.status != 200 || !(j = json_loads(rs.body ? rs.body : "", 0, NULL))) {
        rc = err_set(e, ERR_IO, "cannot get a registry token from %s: %s", realm,
                     cc != CURLE_OK ? curl_easy_strerror(cc) : "unexpected answer");
    } else {
        const char *t = json_string_value(json_object_get(j, "token"));
        if (!t)
            t = json_string_value(json_object_get(j, "access_token"));
        free(r->token);
        r->token = t ? strdup(t) : NULL;
        if (!r->token)
            rc = err_set(e, ERR_IO, "the token answer of %s has no token", realm);
    }
    json_decref(j);
    resp_reset(&rs);
    return rc;
}

struct upload_src {
    int fd;
    uint64_t off, left;
    const atomic_bool *cancel; /* store_xfer_opts.cancel, or NULL */
};

static size_t on_read(char *buf, size_t sz, size_t n, void *ctx)
{
    struct upload_src *u = ctx;
    size_t want = sz * n < u->left ? sz * n : (size_t)u->left;
    if (!want)
        return 0;
    if (u->cancel && atomic_load(u->cancel))
        return CURL_READFUNC_ABORT;
    ssize_t got = pread(u->fd, buf, want, (off_t)u->off);
    if (got <= 0)
        return CURL_READFUNC_ABORT;
    u->off += (uint64_t)got;
    u->left -= (uint64_t)got;
    return (size_t)got;
}

static bool cancelled(const struct store_xfer_opts *o)
{
    return o->cancel && atomic_load(o->cancel);
}

static int cancel_error(const struct reg *r, struct err *e)
{
    return err_set(e, ERR_IO, "%s %s/%s:%s cancelled", r->pushing ? "push of" : "pull of", r->n.ns, r->n.model,
                   r->n.tag);
}

/* curl's progress callback: a nonzero return aborts the transfer (CURLE_ABORTED_BY_CALLBACK). */
static int on_xferinfo(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return cancelled(ctx) ? 1 : 0;
}

static void watch_cancel(CURL *c, const struct store_xfer_opts *o)
{
    if (!o->cancel)
        return;
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)o);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
}

/* One request with retries (network errors and 5xx, backoff 1, 2, 4 s) and one token retry on 401.
 * body/len for small bodies, or up (a file range) for uploads. */
static int request(struct reg *r, const char *method, const char *url, const char *const *extra,
                   const void *body, size_t len, const struct upload_src *up, struct resp *out, struct err *e)
{
    bool authed = false;
    for (int attempt = 0;; attempt++) {
        resp_reset(out);
        CURL *c = curl_easy_init();
        if (!c)
            return err_set(e, ERR_NOMEM, "out of memory");
        struct curl_slist *h = base_headers(r, NULL);
        for (size_t i = 0; extra && extra[i]; i++)
            h = curl_slist_append(h, extra[i]);
        h = curl_slist_append(h, "Expect:");
        struct upload_src src = up ? *up : (struct upload_src){0};
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)STALL_SECONDS);
        watch_cancel(c, r->o);
        if (strcmp(method, "HEAD") == 0) {
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (up) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &src);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->left);
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        } else if (strcmp(method, "GET") != 0) {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        CURLcode cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        if (cancelled(r->o))
            return cancel_error(r, e);
        if (cc == CURLE_OK && out->status == 401 && !authed && out->challenge[0]) {
            int rc = get_token(r, out->challenge, e);
            if (rc)
                return rc;
            authed = true;
            attempt--;
            continue;
        }
        bool transient = cc != CURLE_OK || out->status >= 500 || out->status == 429;
        if (!transient)
            return 0;
        if (attempt + 1 >= 4)
            return err_set(e, ERR_IO, "%s %s: %s", method, url,
                           cc != CURLE_OK ? curl_easy_strerror(cc) : "server error (status 5xx), giving up after 4 tries");
        sleep_s((double)(1 << attempt));
        if (cancelled(r->o))
            return cancel_error(r, e);
    }
}

/* A registry error body's first message, for messages a user can act on. */
static const char *reg_error(const struct resp *rs, char *buf, size_t cap)
{
    snprintf(buf, cap, "status %ld", rs->status);
    json_t *j = rs->body ? json_loads(rs->body, 0, NULL) : NULL;
    json_t *first = json_array_get(json_object_get(j, "errors"), 0);
    const char *m = json_string_value(json_object_get(first, "message"));
    if (m)
        snprintf(buf, cap, "%s (status %ld)", m, rs->status);
    json_decref(j);
    return buf;
}

static int reg_open(struct reg *r, struct store *s, const char *name, const struct store_xfer_opts *o,
                    struct err *e)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->o = o;
    int rc = store_name_parse(name, &r->n, e);
    if (rc)
        return rc;
    bool http_name = strncasecmp(name, "http://", 7) == 0;
    if (http_name && !o->insecure)
        return err_set(e, ERR_INVALID, "'%s' uses plain http: pass --insecure to allow it", name);
    snprintf(r->base, sizeof r->base, "%s://%s", o->insecure ? "http" : "https", r->n.host);
    snprintf(r->repo, sizeof r->repo, "%s/%s", r->n.ns, r->n.model);
    static bool inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = true;
    }
    return 0;
}

static void report(const struct store_xfer_opts *o, const char *status, const char *digest, uint64_t total,
                   uint64_t completed)
{
    if (o->progress)
        o->progress(o->progress_ctx, status, digest, total, completed);
}

/* ---- pull: one blob in parallel ranged parts ---- */

struct part {
    struct download *dl;
    int idx;
    uint64_t off, size, done, saved;
    double saved_at;
    int attempts;
    double retry_at;
    CURL *h;
    struct curl_slist *hdrs;
    char cerr[CURL_ERROR_SIZE];
    /* The blob size this response claims (Content-Range total, or Content-Length of a whole-body
     * 200), -1 when it does not say; and the size the registry turned out to have when it
     * disagrees with the manifest (UINT64_MAX: more bytes than the manifest's size). A registry
     * that lies about sizes fails the pull at once instead of being retried. */
    int64_t claimed;
    uint64_t wrong_size;
    bool wrong_size_set;
};

struct download {
    struct reg *r;
    int fd;
    char *partial; /* blobs/sha256-<hex>-partial */
    int werrno;
    uint64_t rate, rate_bytes; /* HEARTH_PULL_MAX_RATE: a test knob to make pulls slow */
    double rate_start;
    /* progress: reported at most every 0.1 s, from the loop and from inside curl's transfers (a
     * rate-limited transfer can stay inside one curl_multi_perform for seconds, and a server only
     * notices a disconnected client when it writes to it) */
    const char *digest;
    char status[64];
    uint64_t total;
    double last_report;
    struct part parts[MAX_PARTS * 8];
    int n_parts;
};

static void download_report(struct download *d)
{
    if (now_s() - d->last_report <= 0.1)
        return;
    uint64_t done = 0;
    for (int i = 0; i < d->n_parts; i++)
        done += d->parts[i].done;
    report(d->r->o, d->status, d->digest, d->total, done);
    d->last_report = now_s();
}

static void part_state_path(const struct download *d, int idx, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-%d", d->partial, idx);
}

static void part_save(struct part *p)
{
    char path[4200], text[256];
    part_state_path(p->dl, p->idx, path, sizeof path);
    int k = snprintf(text, sizeof text, "{\"N\":%d,\"Offset\":%" PRIu64 ",\"Size\":%" PRIu64 ",\"Completed\":%" PRIu64 "}\n",
                     p->idx, p->off, p->size, p->done);
    struct file_atomic w;
    struct err ignore;
    if (file_atomic_open(&w, path, &ignore) == 0) {
        if (file_atomic_write(&w, text, (size_t)k, &ignore) || file_atomic_commit(&w, &ignore))
            file_atomic_abort(&w);
    }
    p->saved = p->done;
    p->saved_at = now_s();
}

static void part_load(struct part *p)
{
    char path[4200];
    part_state_path(p->dl, p->idx, path, sizeof path);
    json_t *j = json_load_file(path, 0, NULL);
    if (j && (uint64_t)json_integer_value(json_object_get(j, "Offset")) == p->off &&
        (uint64_t)json_integer_value(json_object_get(j, "Size")) == p->size) {
        uint64_t c = (uint64_t)json_integer_value(json_object_get(j, "Completed"));
        p->done = p->saved = c <= p->size ? c : 0;
    }
    json_decref(j);
}

static size_t on_part_data(char *buf, size_t sz, size_t n, void *ctx)
{
    struct part *p = ctx;
    size_t k = sz * n;
    long status = 0;
    curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 206 && !(status == 200 && p->off + p->done == 0))
        return 0; /* an error body or a server ignoring Range: never write it into the blob */
    /* Checked here as well as in the progress callback: curl can stay in one transfer, calling
     * only this, for as long as data keeps arriving. */
    if (cancelled(p->dl->r->o))
        return 0;
    uint64_t total = p->dl->total;
    if (status == 200 && p->claimed < 0) {
        curl_off_t cl = -1;
        curl_easy_getinfo(p->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        p->claimed = cl;
    }
    if (p->claimed >= 0 && (uint64_t)p->claimed != total) {
        p->wrong_size = (uint64_t)p->claimed;
        p->wrong_size_set = true;
        return 0;
    }
    if (p->done + k > p->size) {
        p->wrong_size = UINT64_MAX;
        p->wrong_size_set = true;
        return 0;
    }
    size_t w = 0;
    while (w < k) {
        ssize_t got = pwrite(p->dl->fd, buf + w, k - w, (off_t)(p->off + p->done + w));
        if (got < 0) {
            p->dl->werrno = errno;
            return 0;
        }
        w += (size_t)got;
    }
    p->done += k;
    struct download *d = p->dl;
    if (d->rate) {
        d->rate_bytes += k;
        double ahead = (double)d->rate_bytes / (double)d->rate - (now_s() - d->rate_start);
        if (ahead > 0)
            sleep_s(ahead);
    }
    /* Progress is recorded every MB or second, so a killed pull loses at most that much. */
    if (p->done - p->saved >= SAVE_EVERY || now_s() - p->saved_at > 1.0)
        part_save(p);
    download_report(d);
    return k;
}

/* Picks the blob's full size out of "Content-Range: bytes A-B/TOTAL"; a new status line (after a
 * redirect) forgets what an earlier response said. */
static size_t on_part_header(char *h, size_t sz, size_t n, void *ctx)
{
    struct part *p = ctx;
    size_t k = sz * n;
    char v[128];
    if (k >= 5 && strncmp(h, "HTTP/", 5) == 0)
        p->claimed = -1;
    if (header_value(h, k, "Content-Range", v, sizeof v)) {
        const char *slash = strchr(v, '/');
        if (slash && slash[1] >= '0' && slash[1] <= '9')
            p->claimed = (int64_t)strtoull(slash + 1, NULL, 10);
    }
    return k;
}

static int part_start(struct download *d, struct part *p, CURLM *m, const char *url, struct err *e)
{
    p->h = curl_easy_init();
    if (!p->h)
        return err_set(e, ERR_NOMEM, "out of memory");
    char range[96];
    snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-%" PRIu64, p->off + p->done, p->off + p->size - 1);
    p->hdrs = curl_slist_append(base_headers(d->r, NULL), range);
    curl_easy_setopt(p->h, CURLOPT_URL, url);
    curl_easy_setopt(p->h, CURLOPT_HTTPHEADER, p->hdrs);
    /* Redirects (a CDN) are followed; curl does not send our Authorization to another host. */
    curl_easy_setopt(p->h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(p->h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(p->h, CURLOPT_WRITEFUNCTION, on_part_data);
    curl_easy_setopt(p->h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->h, CURLOPT_HEADERFUNCTION, on_part_header);
    curl_easy_setopt(p->h, CURLOPT_HEADERDATA, p);
    p->claimed = -1;
    curl_easy_setopt(p->h, CURLOPT_PRIVATE, p);
    curl_easy_setopt(p->h, CURLOPT_ERRORBUFFER, p->cerr);
    curl_easy_setopt(p->h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(p->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(p->h, CURLOPT_LOW_SPEED_TIME, (long)STALL_SECONDS);
    watch_cancel(p->h, d->r->o);
    p->cerr[0] = '\0';
    curl_multi_add_handle(m, p->h);
    return 0;
}

static void part_stop(CURLM *m, struct part *p)
{
    if (!p->h)
        return;
    curl_multi_remove_handle(m, p->h);
    curl_easy_cleanup(p->h);
    curl_slist_free_all(p->hdrs);
    p->h = NULL;
    p->hdrs = NULL;
}

static void remove_part_files(struct download *d, int n)
{
    char path[4200];
    for (int i = 0; i < n; i++) {
        part_state_path(d, i, path, sizeof path);
        unlink(path);
    }
    /* Records past n are left by an earlier attempt that split the blob into more parts (another
     * HEARTH_PULL_PART_SIZE): they are numbered on from n, so remove until one is missing. */
    for (int i = n;; i++) {
        part_state_path(d, i, path, sizeof path);
        if (unlink(path) != 0)
            break;
    }
}

static int download_parts(struct download *d, const char *url, const char *digest, uint64_t total,
                          struct err *e)
{
    CURLM *m = curl_multi_init();
    if (!m)
        return err_set(e, ERR_NOMEM, "out of memory");
    snprintf(d->status, sizeof d->status, "pulling %.12s", digest + 7);
    d->digest = digest;
    d->total = total;
    d->last_report = 0;
    int rc = 0, running = 0;
    for (;;) {
        if (cancelled(d->r->o)) {
            rc = cancel_error(d->r, e);
            break;
        }
        /* Start parts that are due, at most MAX_PARTS at a time. */
        double t = now_s();
        int active = 0, pending = 0;
        for (int i = 0; i < d->n_parts; i++)
            active += d->parts[i].h != NULL;
        for (int i = 0; i < d->n_parts && !rc; i++) {
            struct part *p = &d->parts[i];
            if (p->h || p->done == p->size)
                continue;
            pending++;
            if (active < MAX_PARTS && t >= p->retry_at) {
                rc = part_start(d, p, m, url, e);
                active++;
            }
        }
        if (rc)
            break;
        if (!active && !pending)
            break;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct part *p = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
            CURLcode cc = msg->data.result;
            long code = 0;
            curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &code);
            part_stop(m, p);
            part_save(p);
            if (d->werrno) {
                rc = err_set(e, ERR_IO, "cannot write %s: %s", d->partial, strerror(d->werrno));
                break;
            }
            if (cc == CURLE_OK && p->done == p->size)
                continue;
            /* These will not get better by asking again: fail now rather than after the retries.
             * (An error body makes the write callback refuse it, so cc is a write error then.) */
            if (p->wrong_size_set) {
                if (p->wrong_size == UINT64_MAX)
                    rc = err_set(e, ERR_FORMAT,
                                 "the registry sent more bytes for %s than the %" PRIu64
                                 " bytes its manifest says; the manifest or the registry is wrong",
                                 digest, total);
                else
                    rc = err_set(e, ERR_FORMAT,
                                 "the registry's blob %s is %" PRIu64 " bytes but its manifest says %" PRIu64
                                 "; the manifest or the registry is wrong",
                                 digest, p->wrong_size, total);
                break;
            }
            /* A complete answer that ended short of the part, or a 416 for a range past the blob's end,
             * gives the size the registry says the blob has. */
            if ((cc == CURLE_OK || code == 416) && p->claimed >= 0 && (uint64_t)p->claimed != total) {
                rc = err_set(e, ERR_FORMAT,
                             "the registry's blob %s is %" PRId64 " bytes but its manifest says %" PRIu64
                             "; the manifest or the registry is wrong",
                             digest, p->claimed, total);
                break;
            }
            if ((cc == CURLE_OK || cc == CURLE_WRITE_ERROR) && code == 404) {
                rc = err_set(e, ERR_NOTFOUND, "the registry has no blob %s, which the manifest names (GET %s: status 404)",
                             digest, url);
                break;
            }
            if ((cc == CURLE_OK || cc == CURLE_WRITE_ERROR) && code >= 400 && code < 500 && code != 429) {
                rc = err_set(e, ERR_IO, "GET %s: status %ld", url, code);
                break;
            }
            if (cc == CURLE_TOO_MANY_REDIRECTS) {
                rc = err_set(e, ERR_IO, "downloading %s: the registry redirects in a loop (more than 5 redirects from %s)",
                             digest, url);
                break;
            }
            /* A stall restarts the part without using up an attempt. */
            if (cc == CURLE_OPERATION_TIMEDOUT) {
                p->retry_at = now_s();
                continue;
            }
            if (++p->attempts >= MAX_ATTEMPTS) {
                rc = err_set(e, ERR_IO, "downloading %s failed %d times: %s", digest, MAX_ATTEMPTS,
                             p->cerr[0] ? p->cerr : cc != CURLE_OK ? curl_easy_strerror(cc) : "short answer");
                break;
            }
            p->retry_at = now_s() + (double)(1 << p->attempts);
        }
        if (rc)
            break;
        download_report(d);
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    /* Parts still running (a cancel or another part's error) record how far they got, so the
     * next pull resumes from there rather than from their last periodic save. */
    for (int i = 0; i < d->n_parts; i++) {
        if (d->parts[i].h) {
            part_stop(m, &d->parts[i]);
            part_save(&d->parts[i]);
        }
    }
    curl_multi_cleanup(m);
    if (!rc)
        report(d->r->o, d->status, digest, total, total);
    return rc;
}

static int pull_blob(struct reg *r, const char *digest, uint64_t total, struct err *e)
{
    char hex[65];
    int rc = store_digest_parse(digest, hex, e);
    if (rc)
        return rc;
    char status[64];
    snprintf(status, sizeof status, "pulling %.12s", hex);
    if (store_blob_exists(r->s, digest)) {
        report(r->o, status, digest, total, total);
        return 0;
    }
    struct download *d = calloc(1, sizeof *d);
    char *final = NULL;
    if (!d || store_blob_path(r->s, digest, &final, e)) {
        free(d);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    d->r = r;
    d->fd = -1;
    size_t plen = strlen(final) + 16;
    d->partial = malloc(plen);
    if (!d->partial) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(d->partial, plen, "%s-partial", final);
    d->fd = open(d->partial, O_RDWR | O_CREAT, 0644);
    if (d->fd < 0) {
        rc = err_set(e, ERR_IO, "cannot create %s: %s", d->partial, strerror(errno));
        goto done;
    }
    if (flock(d->fd, LOCK_EX | LOCK_NB) != 0) {
        report(r->o, "waiting for another download of the same layer", digest, total, 0);
        /* Polled rather than blocking, so a cancel is noticed while waiting. */
        while (flock(d->fd, LOCK_EX | LOCK_NB) != 0) {
            if (cancelled(r->o)) {
                rc = cancel_error(r, e);
                goto done;
            }
            sleep_s(0.1);
        }
    }
    if (store_blob_exists(r->s, digest)) { /* the other download finished it */
        unlink(d->partial);
        report(r->o, status, digest, total, total);
        goto done;
    }
    uint64_t part = total / MAX_PARTS;
    part = part < MIN_PART ? MIN_PART : part > MAX_PART ? MAX_PART : part;
    part = env_u64("HEARTH_PULL_PART_SIZE", part);
    if (total / part >= (uint64_t)(sizeof d->parts / sizeof d->parts[0]))
        part = total / (sizeof d->parts / sizeof d->parts[0] - 1) + 1;
    for (uint64_t off = 0; off < total || (total == 0 && d->n_parts == 0); off += part) {
        struct part *p = &d->parts[d->n_parts];
        p->dl = d;
        p->idx = d->n_parts++;
        p->off = off;
        p->size = total - off < part ? total - off : part;
        part_load(p);
        if (total == 0)
            break;
    }
    if (ftruncate(d->fd, (off_t)total) != 0) {
        rc = err_set(e, ERR_IO, "cannot size %s to %" PRIu64 " bytes: %s", d->partial, total, strerror(errno));
        goto done;
    }
    d->rate = env_u64("HEARTH_PULL_MAX_RATE", 0);
    d->rate_start = now_s();
    char url[4096];
    snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", r->base, r->repo, digest);
    if (total > 0 && (rc = download_parts(d, url, digest, total, e)))
        goto done;
    if (fsync(d->fd) != 0) {
        rc = err_set(e, ERR_IO, "cannot write %s: %s", d->partial, strerror(errno));
        goto done;
    }
    report(r->o, "verifying sha256 digest", digest, total, total);
    char got[65];
    if ((rc = store_sha256_file(d->partial, got, e)))
        goto done;
    if (strcmp(got, hex) != 0) {
        unlink(d->partial);
        remove_part_files(d, d->n_parts);
        rc = err_set(e, ERR_FORMAT,
                     "digest mismatch, file must be downloaded again: want sha256:%s, got sha256:%s (the download "
                     "was deleted)",
                     hex, got);
        goto done;
    }
    if (rename(d->partial, final) != 0) {
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", d->partial, final, strerror(errno));
        goto done;
    }
    remove_part_files(d, d->n_parts);
done:
    if (d->fd >= 0)
        close(d->fd); /* releases the lock */
    free(d->partial);
    free(d);
    free(final);
    return rc;
}

static const char MANIFEST_ACCEPT[] = "Accept: application/vnd.docker.distribution.manifest.v2+json";

int store_pull(struct store *s, const char *name, const struct store_xfer_opts *o, struct err *e)
{
    static const struct store_xfer_opts none = {0};
    struct reg r;
    int rc = reg_open(&r, s, name, o ? o : &none, e);
    if (rc)
        return rc;
    o = r.o;
    report(o, "pulling manifest", NULL, 0, 0);
    char url[4096], ebuf[600];
    snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", r.base, r.repo, r.n.tag);
    const char *hdr[] = {MANIFEST_ACCEPT, NULL};
    struct resp rs = {0};
    json_t *man = NULL, *old_digests = json_array(), *old = NULL;
    char *old_path = NULL;
    if ((rc = request(&r, "GET", url, hdr, NULL, 0, NULL, &rs, e)))
        goto done;
    if (rs.status == 404) {
        rc = err_set(e, ERR_NOTFOUND, "pull model manifest: file does not exist (%s on %s)", r.repo, r.base);
        goto done;
    }
    if (rs.status != 200) {
        rc = err_set(e, ERR_IO, "pull model manifest from %s: %s", url, reg_error(&rs, ebuf, sizeof ebuf));
        goto done;
    }
    json_error_t jerr;
    man = json_loadb(rs.body ? rs.body : "", rs.len, 0, &jerr);
    json_t *layers = json_object_get(man, "layers");
    if (!man || !json_is_array(layers)) {
        rc = err_set(e, ERR_FORMAT, "the manifest of %s is not a Docker v2 manifest (%s)", name,
                     !man ? jerr.text : "no \"layers\" array");
        goto done;
    }
    json_t *all = json_array();
    if (json_object_get(man, "config"))
        json_array_append(all, json_object_get(man, "config"));
    json_array_extend(all, layers);
    for (size_t i = 0; i < json_array_size(all) && !rc; i++) {
        json_t *l = json_array_get(all, i);
        const char *dg = json_string_value(json_object_get(l, "digest"));
        json_int_t size = json_integer_value(json_object_get(l, "size"));
        if (!dg || size < 0) {
            rc = err_set(e, ERR_FORMAT, "the manifest of %s has a layer without digest or size", name);
            break;
        }
        rc = pull_blob(&r, dg, (uint64_t)size, e);
    }
    json_decref(all);
    if (rc)
        goto done;
    /* Layers only the previous version of this tag used are removed after the new manifest lands. */
    struct store_name canon;
    struct err ignore;
    if (store_find_manifest(s, &r.n, &old_path, &canon, &ignore) == 0 &&
        store_read_manifest(old_path, &old, NULL, NULL, &ignore) == 0)
        store_manifest_digests(old, old_digests);
    report(o, "writing manifest", NULL, 0, 0);
    char *path = store_manifest_path(s, &r.n);
    if (!path) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto done;
    }
    if (old_path && strcmp(old_path, path) != 0)
        unlink(old_path); /* same name in another casing: one manifest per name */
    char *slash = strrchr(path, '/');
    *slash = '\0';
    rc = store_mkdirs(path, e);
    *slash = '/';
    struct file_atomic w;
    /* The bytes are stored exactly as served, so the manifest digest matches the registry's. */
    if (!rc && !(rc = file_atomic_open(&w, path, e))) {
        if ((rc = file_atomic_write(&w, rs.body, rs.len, e)))
            file_atomic_abort(&w);
        else
            rc = file_atomic_commit(&w, e);
    }
    free(path);
    if (rc)
        goto done;
    if (json_array_size(old_digests)) {
        report(o, "removing unused layers", NULL, 0, 0);
        store_remove_unreferenced(s, old_digests, &ignore);
    }
    report(o, "success", NULL, 0, 0);
done:
    json_decref(man);
    json_decref(old);
    json_decref(old_digests);
    free(old_path);
    resp_reset(&rs);
    free(r.token);
    return rc;
}

/* ---- push ---- */

/* Makes a Location header absolute. */
static void absolute_url(const struct reg *r, const char *loc, char *dst, size_t cap)
{
    if (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0)
        snprintf(dst, cap, "%s", loc);
    else
        snprintf(dst, cap, "%s%s%s", r->base, loc[0] == '/' ? "" : "/", loc);
}

static int push_blob(struct reg *r, json_t *layer, struct err *e)
{
    const char *digest = json_string_value(json_object_get(layer, "digest"));
    const char *from = json_string_value(json_object_get(layer, "from"));
    char hex[65], ebuf[600];
    int rc = store_digest_parse(digest ? digest : "", hex, e);
    if (rc)
        return rc;
    char *path = NULL;
    if ((rc = store_blob_path(r->s, digest, &path, e)))
        return rc;
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = err_set(e, ERR_NOTFOUND, "blob %s of the model is missing from the store (%s)", digest, path);
        free(path);
        return rc;
    }
    uint64_t total = (uint64_t)st.st_size;
    char status[64], url[4096];
    snprintf(status, sizeof status, "pushing %.12s", hex);
    struct resp rs = {0};
    snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", r->base, r->repo, digest);
    if ((rc = request(r, "HEAD", url, NULL, NULL, 0, NULL, &rs, e)))
        goto done;
    if (rs.status == 200) {
        report(r->o, status, digest, total, total);
        goto done;
    }
    /* A layer that came from another repository of this registry is mounted, not uploaded. */
    struct store_name fn;
    struct err ignore;
    bool mount = false;
    if (from && store_name_parse(from, &fn, &ignore) == 0 && strcasecmp(fn.host, r->n.host) == 0) {
        char frepo[2 * STORE_PART_MAX + 2];
        snprintf(frepo, sizeof frepo, "%s/%s", fn.ns, fn.model);
        if (strcmp(frepo, r->repo) != 0) {
            snprintf(url, sizeof url, "%s/v2/%s/blobs/uploads/?mount=%s&from=%s", r->base, r->repo, digest, frepo);
            mount = true;
        }
    }
    if (!mount)
        snprintf(url, sizeof url, "%s/v2/%s/blobs/uploads/", r->base, r->repo);
    if ((rc = request(r, "POST", url, NULL, NULL, 0, NULL, &rs, e)))
        goto done;
    if (mount && rs.status == 201) {
        report(r->o, status, digest, total, total);
        goto done;
    }
    if (rs.status != 202 || !rs.location[0]) {
        rc = err_set(e, ERR_IO, "starting the upload of %s to %s: %s", digest, r->base, reg_error(&rs, ebuf, sizeof ebuf));
        goto done;
    }
    char loc[4096];
    absolute_url(r, rs.location, loc, sizeof loc);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        rc = err_set(e, ERR_IO, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    uint64_t chunk = total / MAX_PARTS;
    chunk = chunk < MIN_PART ? MIN_PART : chunk > MAX_PART ? MAX_PART : chunk;
    chunk = env_u64("HEARTH_PULL_PART_SIZE", chunk);
    for (uint64_t off = 0; off < total && !rc; off += chunk) {
        uint64_t n = total - off < chunk ? total - off : chunk;
        char range[96];
        snprintf(range, sizeof range, "Content-Range: %" PRIu64 "-%" PRIu64, off, off + n - 1);
        const char *hdr[] = {range, "Content-Type: application/octet-stream", NULL};
        struct upload_src up = {fd, off, n, r->o->cancel};
        if ((rc = request(r, "PATCH", loc, hdr, NULL, 0, &up, &rs, e)))
            break;
        if (rs.status != 202 && rs.status != 204) {
            rc = err_set(e, ERR_IO, "uploading %s (bytes %" PRIu64 "-%" PRIu64 "): %s", digest, off, off + n - 1,
                         reg_error(&rs, ebuf, sizeof ebuf));
            break;
        }
        if (rs.location[0])
            absolute_url(r, rs.location, loc, sizeof loc);
        report(r->o, status, digest, total, off + n);
    }
    close(fd);
    if (rc)
        goto done;
    char fin[4200];
    snprintf(fin, sizeof fin, "%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest);
    if ((rc = request(r, "PUT", fin, NULL, NULL, 0, NULL, &rs, e)))
        goto done;
    if (rs.status != 201 && rs.status != 204)
        rc = err_set(e, ERR_IO, "finishing the upload of %s: %s", digest, reg_error(&rs, ebuf, sizeof ebuf));
    else
        report(r->o, status, digest, total, total);
done:
    resp_reset(&rs);
    free(path);
    return rc;
}

int store_push(struct store *s, const char *name, const struct store_xfer_opts *o, struct err *e)
{
    static const struct store_xfer_opts none = {0};
    struct reg r;
    int rc = reg_open(&r, s, name, o ? o : &none, e);
    if (rc)
        return rc;
    o = r.o;
    r.pushing = true;
    report(o, "retrieving manifest", NULL, 0, 0);
    char *path = NULL, *raw = NULL;
    size_t raw_size = 0;
    json_t *man = NULL;
    struct store_name canon;
    if ((rc = store_find_manifest(s, &r.n, &path, &canon, e)) ||
        (rc = store_read_manifest(path, &man, &raw, &raw_size, e)))
        goto done;
    json_t *all = json_array();
    json_array_extend(all, json_object_get(man, "layers"));
    if (json_object_get(man, "config"))
        json_array_append(all, json_object_get(man, "config"));
    for (size_t i = 0; i < json_array_size(all) && !rc; i++)
        rc = push_blob(&r, json_array_get(all, i), e);
    json_decref(all);
    if (rc)
        goto done;
    report(o, "pushing manifest", NULL, 0, 0);
    char url[4096], ebuf[600];
    snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", r.base, r.repo, r.n.tag);
    const char *hdr[] = {"Content-Type: application/vnd.docker.distribution.manifest.v2+json", NULL};
    struct resp rs = {0};
    if (!(rc = request(&r, "PUT", url, hdr, raw, raw_size, NULL, &rs, e)) && rs.status != 201 && rs.status != 200)
        rc = err_set(e, ERR_IO, "pushing the manifest of %s: %s", name, reg_error(&rs, ebuf, sizeof ebuf));
    resp_reset(&rs);
    if (!rc)
        report(o, "success", NULL, 0, 0);
done:
    json_decref(man);
    free(raw);
    free(path);
    free(r.token);
    return rc;
}
