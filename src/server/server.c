/* server.c — HTTP plumbing for `hearth serve` on libmicrohttpd: one thread per connection, request
 * bodies gathered up to a limit, routing, JSON and error replies, and streamed replies (NDJSON or
 * SSE) fed by a worker thread through a small buffer, so a client that disconnects is noticed at
 * the next write and its generation cancelled. */
#include "server/server_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <strings.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/options.h"
#include "store/store.h"

/* ---- replies ---- */

void reply_json(struct reply *r, int status, json_t *obj)
{
    r->status = status;
    r->ctype = "application/json; charset=utf-8";
    r->body = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    r->len = r->body ? strlen(r->body) : 0;
    json_decref(obj);
}

void reply_text(struct reply *r, int status, const char *ctype, const char *text)
{
    r->status = status;
    r->ctype = ctype;
    r->body = strdup(text);
    r->len = r->body ? strlen(r->body) : 0;
}

void reply_error(struct reply *r, int status, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_json(r, status, json_pack("{s:s}", "error", msg));
}

void reply_oai_error(struct reply *r, int status, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 400 ? "invalid_request_error" : status == 404 ? "not_found_error" : "api_error";
    reply_json(r, status,
               json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", msg, "type", type, "param", "code"));
}

int http_status_for(int code)
{
    switch (code) {
    case SCHED_ERR_BUSY:
        return 503;
    case ERR_NOTFOUND:
        return 404;
    case ERR_INVALID:
    case ERR_RANGE:
        return 400;
    default:
        return 500;
    }
}

int64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void fmt_time(int64_t unix_ns, char *buf, size_t cap)
{
    time_t secs = (time_t)(unix_ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%09lldZ", base, (long long)(unix_ns % 1000000000LL));
}

json_t *parse_body(const struct http_req *q, struct reply *r, bool openai)
{
    if (q->len == 0) {
        if (openai)
            reply_oai_error(r, 400, "missing request body");
        else
            reply_error(r, 400, "missing request body");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(q->body, q->len, 0, &je);
    if (!j) {
        if (openai)
            reply_oai_error(r, 400, "invalid JSON in request body at line %d column %d: %s", je.line, je.column,
                            je.text);
        else
            reply_error(r, 400, "invalid JSON in request body at line %d column %d: %s", je.line, je.column,
                        je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        if (openai)
            reply_oai_error(r, 400, "the request body must be a JSON object");
        else
            reply_error(r, 400, "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- model names ---- */

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int resolve_flat(const struct srv *s, const char *name, char **path, struct err *e)
{
    char buf[4096];
    const char *dir = s->cfg.models_dir;
    if (dir && !strchr(name, '/') && strlen(name) < 1000) {
        const char *forms[3] = {"%s/%s", "%s/%s.gguf", NULL};
        for (int i = 0; forms[i]; i++) {
            snprintf(buf, sizeof buf, forms[i], dir, name);
            if (is_file(buf)) {
                *path = realpath(buf, NULL);
                return *path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
            }
        }
        size_t n = strlen(name);
        if (n > 7 && strcmp(name + n - 7, ":latest") == 0) {
            snprintf(buf, sizeof buf, "%s/%.*s.gguf", dir, (int)(n - 7), name);
            if (is_file(buf)) {
                *path = realpath(buf, NULL);
                return *path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
            }
        }
    }
    return err_set(e, ERR_NOTFOUND, "model '%s' not found", name);
}

int resolve_model_store(const struct srv *s, const char *name, char **path, struct store_model *sm, struct err *e)
{
    *path = NULL;
    memset(sm, 0, sizeof *sm);
    if (!name || !*name)
        return err_set(e, ERR_NOTFOUND, "model '' not found");
    if (is_file(name)) {
        *path = realpath(name, NULL);
        return *path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
    }
    /* A store model wins over a same-named file in the flat directory, as the store is what
     * `hearth list` shows. */
    if (s->store) {
        struct err se = {0};
        int rc = store_resolve(s->store, name, sm, &se);
        if (rc == 0) {
            if (!sm->model_path) {
                store_model_free(sm);
                memset(sm, 0, sizeof *sm);
                return err_set(e, ERR_FORMAT, "model '%s' has no weights (its manifest lacks a model layer)", name);
            }
            *path = strdup(sm->model_path);
            if (!*path) {
                store_model_free(sm);
                memset(sm, 0, sizeof *sm);
                return err_set(e, ERR_NOMEM, "out of memory");
            }
            return 0;
        }
        memset(sm, 0, sizeof *sm);
    }
    return resolve_flat(s, name, path, e);
}

int resolve_model(const struct srv *s, const char *name, char **path, struct err *e)
{
    struct store_model sm;
    int rc = resolve_model_store(s, name, path, &sm, e);
    if (rc == 0)
        store_model_free(&sm);
    return rc;
}

/* ---- streams ---- */

struct stream {
    struct srv *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;
    size_t len, off, cap;
    bool done, cancelled;
    int refs;
    stream_fn run;
    void *job;
    void (*job_free)(void *);
};

static void stream_unref(struct stream *st)
{
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left)
        return;
    if (st->job_free)
        st->job_free(st->job);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st->buf);
    free(st);
}

int stream_write(struct stream *st, const char *data, size_t len)
{
    pthread_mutex_lock(&st->mu);
    if (st->cancelled || st->srv->stopping) {
        pthread_mutex_unlock(&st->mu);
        return -1;
    }
    if (st->off > 0 && st->off == st->len)
        st->off = st->len = 0;
    if (st->len + len > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + len)
            cap *= 2;
        char *nb = realloc(st->buf, cap);
        if (!nb) {
            pthread_mutex_unlock(&st->mu);
            return -1;
        }
        st->buf = nb;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, data, len);
    st->len += len;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct stream *st = cls;
    pthread_mutex_lock(&st->mu);
    while (st->off == st->len && !st->done)
        pthread_cond_wait(&st->cv, &st->mu);
    size_t n = st->len - st->off;
    if (n == 0) {
        pthread_mutex_unlock(&st->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (n > max)
        n = max;
    memcpy(out, st->buf + st->off, n);
    st->off += n;
    pthread_mutex_unlock(&st->mu);
    return (ssize_t)n;
}

static void stream_closed(void *cls)
{
    /* MHD is done with the response: the reply was sent, or the client disconnected. */
    struct stream *st = cls;
    pthread_mutex_lock(&st->mu);
    st->cancelled = true;
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

static void *stream_main(void *arg)
{
    struct stream *st = arg;
    struct srv *s = st->srv;
    st->run(st, st->job);
    pthread_mutex_lock(&st->mu);
    st->done = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
    pthread_mutex_lock(&s->mu);
    s->active_streams--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int stream_start(struct srv *s, struct reply *r, int status, const char *ctype, stream_fn run, void *job,
                 void (*job_free)(void *))
{
    struct stream *st = calloc(1, sizeof *st);
    if (!st) {
        job_free(job);
        reply_error(r, 500, "out of memory");
        return -1;
    }
    st->srv = s;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    st->refs = 2; /* the worker and the HTTP response */
    st->run = run;
    st->job = job;
    st->job_free = job_free;
    pthread_mutex_lock(&s->mu);
    s->active_streams++;
    pthread_mutex_unlock(&s->mu);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, stream_main, st) != 0) {
        pthread_attr_destroy(&attr);
        pthread_mutex_lock(&s->mu);
        s->active_streams--;
        pthread_mutex_unlock(&s->mu);
        st->refs = 1;
        stream_unref(st);
        reply_error(r, 500, "cannot start a worker thread");
        return -1;
    }
    pthread_attr_destroy(&attr);
    r->status = status;
    r->ctype = ctype;
    r->stream = st;
    return 0;
}

/* ---- requests ---- */

/* How long a connection may sit idle while its request is being read (HEARTH_READ_TIMEOUT seconds,
 * 0 = never): a client that stalls mid-request gives its thread back. The limit is lifted while a
 * reply is produced (a long non-streamed generation, or a stream whose prompt takes minutes to
 * evaluate, sends nothing for a while) and set again for the next request of a kept-alive
 * connection. */
static unsigned read_timeout_s = 30;

/* The socket of the request this thread is answering: non-streamed replies run on the connection's
 * own thread, so their handler can ask whether the client is still there. */
static _Thread_local int current_fd = -1;

bool server_client_gone(void)
{
    if (current_fd < 0)
        return false;
    struct pollfd p = {.fd = current_fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return true;
    /* Readable with nothing to read is the peer's FIN; a pipelined next request is data. */
    char c;
    ssize_t n = recv(current_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

struct conn_state {
    char *body;
    size_t len, cap;
    bool too_big;
    bool forbidden;                /* failed the Origin/Host check */
    struct store_blob_writer *bw;  /* POST /api/blobs/:digest streams here instead of into body */
    int blob_rc;
    struct err blob_err;
};

/* ---- Origin and Host checks (as Ollama: browsers on other sites may not drive a local server) ---- */

static bool host_part_is_local(const char *h, size_t n)
{
    char buf[300];
    if (n == 0 || n >= sizeof buf)
        return n == 0;
    memcpy(buf, h, n);
    buf[n] = '\0';
    for (char *p = buf; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(buf, "localhost") == 0)
        return true;
    static const char *const suffixes[] = {".localhost", ".local", ".internal"};
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n > sl && strcmp(buf + n - sl, suffixes[i]) == 0)
            return true;
    }
    char self[256];
    if (gethostname(self, sizeof self) == 0 && strcasecmp(self, buf) == 0)
        return true;
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) == 1) {
        uint32_t v = ntohl(a.s_addr);
        return (v >> 24) == 127 || (v >> 24) == 10 || (v >> 20) == 0xAC1 || (v >> 16) == 0xC0A8 || v == 0;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, buf, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6) || (a6.s6_addr[0] & 0xfe) == 0xfc;
    return false;
}

/* Host header "name[:port]" or "[v6]:port". */
static bool host_allowed(const struct srv *s, const char *host)
{
    /* Bound to a non-loopback address the server is meant to be reached by other names. */
    if (strcmp(s->cfg.host, "127.0.0.1") != 0 && strcmp(s->cfg.host, "localhost") != 0)
        return true;
    if (!host)
        return true;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        return end && host_part_is_local(host + 1, (size_t)(end - host - 1));
    }
    const char *colon = strrchr(host, ':');
    return host_part_is_local(host, colon ? (size_t)(colon - host) : strlen(host));
}

/* Matches origin against one pattern of HEARTH_ORIGINS/OLLAMA_ORIGINS, where '*' matches any run. */
static bool glob_match(const char *pat, const char *str)
{
    if (*pat == '\0')
        return *str == '\0';
    if (*pat == '*')
        return glob_match(pat + 1, str) || (*str && glob_match(pat, str + 1));
    return tolower((unsigned char)*pat) == tolower((unsigned char)*str) && glob_match(pat + 1, str + 1);
}

static bool origin_allowed(const char *origin)
{
    static const char *const builtin[] = {
        "http://localhost",   "https://localhost",   "http://localhost:*",   "https://localhost:*",
        "http://127.0.0.1",   "https://127.0.0.1",   "http://127.0.0.1:*",   "https://127.0.0.1:*",
        "http://0.0.0.0",     "https://0.0.0.0",     "http://0.0.0.0:*",     "https://0.0.0.0:*",
        "app://*",            "file://*",            "tauri://*",            "vscode-webview://*",
        "vscode-file://*",
    };
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (glob_match(builtin[i], origin))
            return true;
    const char *envs[2] = {getenv("HEARTH_ORIGINS"), getenv("OLLAMA_ORIGINS")};
    for (int k = 0; k < 2; k++) {
        const char *v = envs[k];
        while (v && *v) {
            const char *comma = strchr(v, ',');
            size_t n = comma ? (size_t)(comma - v) : strlen(v);
            char pat[512];
            while (n && (*v == ' ')) {
                v++;
                n--;
            }
            while (n && v[n - 1] == ' ')
                n--;
            if (n < sizeof pat) {
                memcpy(pat, v, n);
                pat[n] = '\0';
                if (n && glob_match(pat, origin))
                    return true;
            }
            v = comma ? comma + 1 : NULL;
        }
    }
    return false;
}

static void add_common_headers(struct MHD_Response *resp, struct MHD_Connection *conn)
{
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin && origin_allowed(origin)) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct reply *r)
{
    struct MHD_Response *resp;
    if (r->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, r->stream, stream_closed);
        if (!resp) {
            stream_closed(r->stream);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    } else {
        resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"",
                                               r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(r->body);
            return MHD_NO;
        }
    }
    if (r->ctype)
        MHD_add_response_header(resp, "Content-Type", r->ctype);
    add_common_headers(resp, conn);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

struct route {
    const char *method; /* "GET" also answers HEAD */
    const char *path;
    void (*fn)(struct srv *, const struct http_req *, struct reply *);
};

static void root(struct srv *s, const struct http_req *q, struct reply *r)
{
    (void)s;
    (void)q;
    reply_text(r, 200, "text/plain; charset=utf-8", "Ollama is running");
}

static void version(struct srv *s, const struct http_req *q, struct reply *r)
{
    (void)s;
    (void)q;
    reply_json(r, 200, json_pack("{s:s}", "version", HEARTH_VERSION));
}

static const struct route routes[] = {
    {"GET", "/", root},
    {"GET", "/api/version", version},
    {"GET", "/api/tags", api_tags},
    {"GET", "/api/ps", api_ps},
    {"POST", "/api/show", api_show},
    {"POST", "/api/generate", api_generate},
    {"POST", "/api/chat", api_chat},
    {"POST", "/api/embed", api_embed},
    {"POST", "/api/embeddings", api_embeddings},
    {"POST", "/v1/chat/completions", oai_chat},
    {"POST", "/v1/completions", oai_completions},
    {"POST", "/v1/embeddings", oai_embeddings},
    {"GET", "/v1/models", oai_models},
    {"POST", "/api/copy", api_copy},
    {"DELETE", "/api/delete", api_delete},
    {"POST", "/api/create", api_create},
    {"POST", "/api/pull", api_pull},
    {"POST", "/api/push", api_push},
};

static void dispatch(struct srv *s, const struct http_req *q, struct reply *r)
{
    bool path_known = false;
    const char *m = strcmp(q->method, "HEAD") == 0 ? "GET" : q->method;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, q->path) != 0)
            continue;
        path_known = true;
        if (strcmp(routes[i].method, m) == 0) {
            routes[i].fn(s, q, r);
            return;
        }
    }
    if (strncmp(q->path, "/api/blobs/", 11) == 0 && q->path[11] && strcmp(q->method, "HEAD") == 0) {
        api_blob_head(s, q->path + 11, r);
        return;
    }
    if (strncmp(q->path, "/v1/models/", 11) == 0 && q->path[11]) {
        if (strcmp(m, "GET") == 0) {
            oai_model(s, q, r, q->path + 11);
            return;
        }
        path_known = true;
    }
    if (path_known)
        reply_text(r, 405, "text/plain; charset=utf-8", "405 method not allowed");
    else
        reply_text(r, 404, "text/plain; charset=utf-8", "404 page not found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *ver, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)ver;
    struct srv *s = cls;
    struct conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        *con_cls = cs;
        const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
        const char *hosth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
        if ((origin && !origin_allowed(origin)) || !host_allowed(s, hosth)) {
            cs->forbidden = true;
            return MHD_YES;
        }
        if (strcmp(method, "POST") == 0 && strncmp(url, "/api/blobs/", 11) == 0) {
            /* Blob uploads are model weights (gigabytes): they stream to the store, not to memory. */
            char hex[65];
            if (!s->store)
                cs->blob_rc = err_set(&cs->blob_err, ERR_IO, "the model store is not available");
            else if (!(cs->blob_rc = store_digest_parse(url + 11, hex, &cs->blob_err)))
                cs->blob_rc = store_blob_writer_open(s->store, &cs->bw, &cs->blob_err);
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body)
            cs->too_big = true;
        return MHD_YES;
    }
    if (*upload_size && (cs->forbidden || cs->bw || cs->blob_rc)) {
        if (cs->bw && !cs->blob_rc &&
            (cs->blob_rc = store_blob_writer_write(cs->bw, upload, *upload_size, &cs->blob_err))) {
            store_blob_writer_abort(cs->bw);
            cs->bw = NULL;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_big && cs->len + *upload_size > s->cfg.max_body)
            cs->too_big = true;
        if (!cs->too_big) {
            if (cs->len + *upload_size + 1 > cs->cap) {
                size_t cap = cs->cap ? cs->cap : 8192;
                while (cap < cs->len + *upload_size + 1)
                    cap *= 2;
                char *nb = realloc(cs->body, cap);
                if (!nb)
                    return MHD_NO;
                cs->body = nb;
                cs->cap = cap;
            }
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    struct reply r = {0};
    if (cs->forbidden) {
        reply_text(&r, 403, "text/plain; charset=utf-8", "403 Forbidden");
    } else if (cs->blob_rc) {
        reply_error(&r, http_status_for(cs->blob_rc), "%s", cs->blob_err.msg);
    } else if (cs->bw) {
        char got[72];
        int rc = store_blob_writer_finish(cs->bw, url + 11, got, &cs->blob_err);
        cs->bw = NULL;
        if (rc)
            reply_error(&r, http_status_for(rc), "%s", cs->blob_err.msg);
        else
            reply_text(&r, 201, "text/plain; charset=utf-8", "");
    } else if (cs->too_big) {
        reply_error(&r, 413, "request body too large: the limit is %zu bytes (HEARTH_MAX_BODY)", s->cfg.max_body);
    } else if (strcmp(method, "OPTIONS") == 0) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        add_common_headers(resp, conn);
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta");
        enum MHD_Result ret = MHD_queue_response(conn, 204, resp);
        MHD_destroy_response(resp);
        return ret;
    } else {
        struct http_req q = {.method = method, .path = url, .body = cs->body ? cs->body : "", .len = cs->len};
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        current_fd = ci ? ci->connect_fd : -1;
        dispatch(s, &q, &r);
        current_fd = -1;
    }
    if (!r.status)
        reply_error(&r, 500, "internal error: no reply");
    return send_reply(conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls;
    (void)t;
    /* The next request on a kept-alive connection is read under the idle limit again. */
    if (conn)
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, read_timeout_s);
    struct conn_state *cs = *con_cls;
    if (cs) {
        if (cs->bw)
            store_blob_writer_abort(cs->bw);
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

/* ---- configuration and the main loop ---- */

static int env_int(const char *name, long lo, long hi, int *out, struct err *e)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long l = strtol(v, &end, 10);
    if (errno || *end || l < lo || l > hi)
        return err_set(e, ERR_INVALID, "%s=\"%s\": expected an integer from %ld to %ld", name, v, lo, hi);
    *out = (int)l;
    return 0;
}

int server_config_from_env(struct server_config *cfg, struct err *e)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = 11434;
    cfg->max_body = 32u << 20;
    cfg->sched.keep_alive_ns = 5LL * 60 * 1000000000LL;
    const char *h = getenv("HEARTH_HOST");
    if (!h || !*h)
        h = getenv("OLLAMA_HOST"); /* so tools configured for Ollama find hearth */
    if (h && *h) {
        if (strncmp(h, "http://", 7) == 0)
            h += 7;
        const char *colon = strrchr(h, ':');
        size_t hl = colon ? (size_t)(colon - h) : strlen(h);
        if (hl >= sizeof cfg->host)
            return err_set(e, ERR_INVALID, "HEARTH_HOST=\"%s\": host name too long", h);
        if (hl) {
            memcpy(cfg->host, h, hl);
            cfg->host[hl] = '\0';
        }
        if (colon) {
            char *end;
            long p = strtol(colon + 1, &end, 10);
            if ((*end && *end != '/') || p < 0 || p > 65535)
                return err_set(e, ERR_INVALID, "HEARTH_HOST=\"%s\": the port must be 0..65535", h);
            cfg->port = (int)p;
        }
    }
    cfg->models_dir = getenv("HEARTH_MODELS");
    if (cfg->models_dir && !*cfg->models_dir)
        cfg->models_dir = NULL;
    const char *ka = getenv("HEARTH_KEEP_ALIVE");
    if (ka && *ka && options_parse_duration(ka, &cfg->sched.keep_alive_ns, e))
        return err_prefix(e, "HEARTH_KEEP_ALIVE");
    int mb = 0;
    if (env_int("HEARTH_NUM_PARALLEL", 1, 64, &cfg->sched.num_parallel, e) ||
        env_int("HEARTH_MAX_LOADED_MODELS", 0, 1024, &cfg->sched.max_loaded, e) ||
        env_int("HEARTH_MAX_QUEUE", 1, 1 << 20, &cfg->sched.max_queue, e) ||
        env_int("HEARTH_CONTEXT_LENGTH", 0, 1 << 24, &cfg->sched.default_num_ctx, e) ||
        env_int("HEARTH_NUM_THREADS", 0, 1024, &cfg->sched.n_threads, e) ||
        env_int("HEARTH_MAX_BODY", 1024, 1 << 30, &mb, e))
        return ERR_INVALID;
    if (mb)
        cfg->max_body = (size_t)mb;
    const char *mm = getenv("HEARTH_MAX_MEMORY");
    if (mm && *mm) {
        char *end;
        unsigned long long v = strtoull(mm, &end, 10);
        if (*end == 'K' || *end == 'k')
            v <<= 10, end++;
        else if (*end == 'M' || *end == 'm')
            v <<= 20, end++;
        else if (*end == 'G' || *end == 'g')
            v <<= 30, end++;
        if (*end || !v)
            return err_set(e, ERR_INVALID, "HEARTH_MAX_MEMORY=\"%s\": expected bytes, optionally with K, M or G", mm);
        cfg->sched.memory_limit = v;
    }
    return 0;
}

int server_run(const struct server_config *cfg, struct err *e)
{
    struct srv s = {.cfg = *cfg};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1" : cfg->host;
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return err_set(e, ERR_INVALID, "HEARTH_HOST: \"%s\" is not an IPv4 address or localhost", cfg->host);

    /* Signals are taken synchronously by sigwait below; every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sched_new(&cfg->sched, &s.sched, e))
        return ERR_NOMEM;
    struct err se = {0};
    if (store_open(NULL, &s.store, &se)) {
        fprintf(stderr, "hearth: warning: the model store is unavailable (%s); only GGUF paths will work\n", se.msg);
        s.store = NULL;
    }
    const char *rt = getenv("HEARTH_READ_TIMEOUT");
    if (rt && *rt) {
        char *end;
        errno = 0;
        long v = strtol(rt, &end, 10);
        if (errno || *end || v < 0 || v > 86400) {
            sched_free(s.sched);
            store_close(s.store);
            return err_set(e, ERR_INVALID, "HEARTH_READ_TIMEOUT=\"%s\": expected whole seconds from 0 to 86400", rt);
        }
        read_timeout_s = (unsigned)v;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        &s, MHD_OPTION_CONNECTION_TIMEOUT, read_timeout_s, MHD_OPTION_END);
    if (!d) {
        sched_free(s.sched);
        store_close(s.store);
        return err_set(e, ERR_IO, "cannot listen on %s:%d (is another server using the port?)", cfg->host,
                       cfg->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "hearth: listening on %s:%u (version %s)\n", cfg->host,
            info ? (unsigned)info->port : (unsigned)cfg->port, HEARTH_VERSION);

    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "hearth: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    s.stopping = 1;
    /* Quiesce first so no new connection is accepted, then let running generations see `stopping`
     * (their next token write fails), wait for them, and close the connections. */
    MHD_quiesce_daemon(d);
    pthread_mutex_lock(&s.mu);
    while (s.active_streams > 0)
        pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    MHD_stop_daemon(d);
    sched_free(s.sched);
    store_close(s.store);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    fprintf(stderr, "hearth: stopped\n");
    return 0;
}
