/* client.c — the CLI's HTTP client for `hearth serve` over libcurl (see client.h). The CLI's model
 * commands go through the same routes as any Ollama client, so they share one code path below the
 * wire with the API. */
#include "cli/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void client_base_url(char *buf, size_t cap)
{
    const char *h = getenv("HEARTH_HOST");
    if (!h || !*h)
        h = getenv("OLLAMA_HOST");
    if (!h || !*h)
        h = "127.0.0.1:11434";
    const char *scheme = "http://";
    if (strncmp(h, "http://", 7) == 0)
        h += 7;
    else if (strncmp(h, "https://", 8) == 0) {
        h += 8;
        scheme = "https://";
    }
    /* The server's default port when only a host is given; a wildcard bind is reached locally. */
    const char *colon = strrchr(h, ':');
    const char *host = h;
    size_t hl = colon ? (size_t)(colon - h) : strlen(h);
    if (hl == 0 || (hl == 7 && strncmp(h, "0.0.0.0", 7) == 0)) {
        host = "127.0.0.1";
        hl = 9;
    }
    snprintf(buf, cap, "%s%.*s:%s", scheme, (int)hl, host, colon ? colon + 1 : "11434");
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '/')
        buf[--n] = '\0';
}

struct membuf {
    char *p;
    size_t n;
};

static size_t collect(char *data, size_t sz, size_t nm, void *user)
{
    struct membuf *b = user;
    size_t add = sz * nm;
    char *np = realloc(b->p, b->n + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, data, add);
    b->n += add;
    np[b->n] = '\0';
    b->p = np;
    return add;
}

static void global_init(void)
{
    static int done;
    if (!done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        done = 1;
    }
}

static int error_from_reply(long status, const char *body, struct err *e)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error"));
    int code = status == 404 ? ERR_NOTFOUND : status < 500 ? ERR_INVALID : ERR_IO;
    int rc = msg ? err_set(e, code, "%s", msg)
                 : err_set(e, code, "the server answered %ld%s%.200s", status, body && *body ? ": " : "",
                           body ? body : "");
    json_decref(j);
    return rc;
}

static CURL *new_handle(const char *method, const char *path, const char *payload, struct curl_slist **hdrs,
                        char *url, size_t url_cap)
{
    global_init();
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    char base[512];
    client_base_url(base, sizeof base);
    snprintf(url, url_cap, "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (payload) {
        *hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    }
    return c;
}

int client_call(const char *method, const char *path, const json_t *body, long *status, json_t **out,
                struct err *e)
{
    if (out)
        *out = NULL;
    *status = 0;
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hdrs = NULL;
    char url[1024];
    CURL *c = new_handle(method, path, payload, &hdrs, url, sizeof url);
    if (!c) {
        free(payload);
        return err_set(e, ERR_NOMEM, "cannot start an HTTP request");
    }
    struct membuf b = {0};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (cc != CURLE_OK) {
        rc = err_set(e, ERR_IO, "could not connect to the hearth server at %s: %s (start it with `hearth serve`)",
                     url, curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (*status >= 400)
            rc = error_from_reply(*status, b.p, e);
        else if (out && b.p && b.n)
            *out = json_loads(b.p, 0, NULL);
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(payload);
    free(b.p);
    return rc;
}

int client_ping(void)
{
    long st;
    struct err e = {0};
    return client_call("GET", "/", NULL, &st, NULL, &e) == 0 && st == 200;
}

int client_ensure_server(const char *self_exe, struct err *e)
{
    if (client_ping())
        return 0;
    char log[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(log, sizeof log, "%s/hearth-serve-%u.log", tmp && *tmp ? tmp : "/tmp", (unsigned)getuid());
    pid_t pid = fork();
    if (pid < 0)
        return err_set(e, ERR_IO, "cannot start `hearth serve`: fork failed");
    if (pid == 0) {
        /* Detached: its own session, so the terminal's Ctrl-C reaches the REPL, not the server. */
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(self_exe, self_exe, "serve", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 150; i++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        if (client_ping())
            return 0;
    }
    char base[512];
    client_base_url(base, sizeof base);
    return err_set(e, ERR_IO, "started `hearth serve` but it does not answer at %s (see %s)", base, log);
}

static volatile sig_atomic_t *cancel_flag;

void client_set_cancel(volatile sig_atomic_t *flag)
{
    cancel_flag = flag;
}

/* Polled by libcurl a few times a second even while no data arrives, so Ctrl-C during a slow
 * prompt evaluation still aborts at once; closing the connection makes the server free the slot. */
static int on_progress(void *user, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    (void)user, (void)dlt, (void)dln, (void)ult, (void)uln;
    return cancel_flag && *cancel_flag;
}

struct stream_state {
    struct membuf line;
    client_obj_fn fn;
    void *user;
    int user_rc;
    int err_rc;
    struct err *e;
};

static size_t on_chunk(char *data, size_t sz, size_t nm, void *user)
{
    struct stream_state *s = user;
    size_t n = sz * nm;
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            if (!collect(data + i, 1, 1, &s->line))
                return 0;
            continue;
        }
        json_t *o = s->line.n ? json_loads(s->line.p, 0, NULL) : NULL;
        s->line.n = 0;
        if (!o)
            continue;
        const char *msg = json_string_value(json_object_get(o, "error"));
        if (msg) {
            s->err_rc = err_set(s->e, ERR_INVALID, "%s", msg);
            json_decref(o);
            return 0;
        }
        int rc = s->fn(s->user, o);
        json_decref(o);
        if (rc) {
            s->user_rc = rc;
            return 0;
        }
    }
    return n;
}

int client_stream(const char *path, const json_t *body, client_obj_fn on_obj, void *user, struct err *e)
{
    char *payload = json_dumps(body, JSON_COMPACT);
    struct curl_slist *hdrs = NULL;
    char url[1024];
    CURL *c = payload ? new_handle("POST", path, payload, &hdrs, url, sizeof url) : NULL;
    if (!c) {
        free(payload);
        return err_set(e, ERR_NOMEM, "cannot start an HTTP request");
    }
    struct stream_state s = {.fn = on_obj, .user = user, .e = e};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_chunk);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int rc = 0;
    if (s.err_rc)
        rc = s.err_rc;
    else if (s.user_rc)
        rc = s.user_rc;
    else if (cc == CURLE_ABORTED_BY_CALLBACK)
        rc = err_set(e, CLIENT_CANCELLED, "cancelled");
    else if (cc != CURLE_OK)
        rc = err_set(e, ERR_IO, "connection to the hearth server at %s failed: %s", url, curl_easy_strerror(cc));
    else if (status >= 400)
        rc = error_from_reply(status, s.line.n ? s.line.p : NULL, e);
    else if (s.line.n) {
        /* A last object without a trailing newline. */
        json_t *o = json_loads(s.line.p, 0, NULL);
        const char *msg = json_string_value(json_object_get(o, "error"));
        if (msg)
            rc = err_set(e, ERR_INVALID, "%s", msg);
        else if (o)
            rc = on_obj(user, o);
        json_decref(o);
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(payload);
    free(s.line.p);
    return rc;
}

int client_connect(struct err *e)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return client_ping() ? 0 : err_set(e, ERR_IO, "cannot find the hearth binary to start `hearth serve`");
    self[n] = '\0';
    return client_ensure_server(self, e);
}

/* ---- blob uploads ---- */

struct upload_state {
    client_upload_fn fn;
    void *user;
    uint64_t total;
};

static int on_upload_progress(void *user, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    (void)dlt, (void)dln, (void)ult;
    struct upload_state *u = user;
    if (u->fn)
        u->fn(u->user, (uint64_t)uln, u->total);
    return cancel_flag && *cancel_flag;
}

int client_upload_blob(const char *path, const char *digest, client_upload_fn progress, void *user,
                       struct err *e)
{
    char route[160];
    snprintf(route, sizeof route, "/api/blobs/%s", digest);
    long status = 0;
    struct err ignore = {0};
    /* 404 is the expected answer for a new blob; anything else is looked at by the POST. */
    if (client_call("HEAD", route, NULL, &status, NULL, &ignore) == 0 && status == 200)
        return 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        fclose(fp);
        return err_set(e, ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    struct curl_slist *hdrs = NULL;
    char url[1024];
    CURL *c = new_handle("POST", route, NULL, &hdrs, url, sizeof url);
    if (!c) {
        fclose(fp);
        return err_set(e, ERR_NOMEM, "cannot start an HTTP request");
    }
    struct upload_state u = {.fn = progress, .user = user, .total = (uint64_t)st.st_size};
    struct membuf b = {0};
    hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
    /* No "Expect: 100-continue" round trip: the server reads the body as it comes. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(c, CURLOPT_READDATA, fp);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_upload_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &u);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        rc = err_set(e, CLIENT_CANCELLED, "cancelled");
    else if (cc != CURLE_OK)
        rc = err_set(e, ERR_IO, "uploading %s to %s failed: %s", path, url, curl_easy_strerror(cc));
    else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 400)
            rc = error_from_reply(status, b.p, e);
        else if (progress)
            progress(user, u.total, u.total);
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    fclose(fp);
    free(b.p);
    return rc;
}

/* ---- progress rendering ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void human(double b, char *buf, size_t cap)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) {
        b /= 1000;
        i++;
    }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void bar_draw(struct client_bar *b, bool final)
{
    double el = now_s() - b->start;
    double rate = el > 0 ? (double)b->completed / el : 0;
    char done[32], tot[32], rt[32], eta[32] = "";
    human((double)b->completed, done, sizeof done);
    human((double)b->total, tot, sizeof tot);
    human(rate, rt, sizeof rt);
    if (rate > 0 && b->completed < b->total) {
        int s = (int)((double)(b->total - b->completed) / rate);
        snprintf(eta, sizeof eta, " %dm%02ds", s / 60, s % 60);
    }
    int pct = b->total ? (int)(100.0 * (double)b->completed / (double)b->total) : 100;
    if (b->tty) {
        char fill[26];
        int k = pct / 4;
        for (int i = 0; i < 25; i++)
            fill[i] = i < k ? '#' : ' ';
        fill[25] = '\0';
        fprintf(stderr, "\r%s %3d%% [%s] %s/%s %s/s%s\033[K%s", b->status, pct, fill, done, tot, rt, eta,
                final ? "\n" : "");
    } else if (final || pct / 25 != b->last_pct / 25) {
        fprintf(stderr, "%s %3d%% %s/%s %s/s\n", b->status, pct, done, tot, rt);
    }
    b->last_pct = pct;
    fflush(stderr);
}

void client_bar_init(struct client_bar *b)
{
    memset(b, 0, sizeof *b);
    b->tty = isatty(2) != 0;
}

void client_bar_update(struct client_bar *b, const char *status, const char *digest, uint64_t total,
                       uint64_t completed)
{
    /* A status with a total but no digest (quantizing) is drawn as a bar keyed by its text. */
    const char *key = digest ? digest : total ? status : NULL;
    bool same = key && b->digest[0] && strcmp(b->digest, key) == 0 && strcmp(b->status, status) == 0;
    if (!same && b->digest[0] && b->completed < b->total)
        bar_draw(b, true); /* close the previous layer's line */
    if (!key) {
        b->digest[0] = '\0';
        fprintf(stderr, "%s\n", status);
        return;
    }
    if (!same) {
        snprintf(b->status, sizeof b->status, "%s", status);
        snprintf(b->digest, sizeof b->digest, "%s", key);
        b->start = now_s();
        b->last = 0;
        b->last_pct = -100;
        b->completed = 0;
    }
    b->total = total;
    bool was_done = same && b->completed >= total;
    b->completed = completed;
    if (was_done)
        return;
    if (completed >= total)
        bar_draw(b, true);
    else if (now_s() - b->last > 0.1) {
        bar_draw(b, false);
        b->last = now_s();
    }
}

int client_bar_obj(void *user, json_t *obj)
{
    const char *status = json_string_value(json_object_get(obj, "status"));
    if (!status)
        return 0;
    json_int_t total = json_integer_value(json_object_get(obj, "total"));
    json_int_t done = json_integer_value(json_object_get(obj, "completed"));
    client_bar_update(user, status, json_string_value(json_object_get(obj, "digest")),
                      (uint64_t)(total > 0 ? total : 0), (uint64_t)(done > 0 ? done : 0));
    return 0;
}
