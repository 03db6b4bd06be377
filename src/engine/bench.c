/* bench.c — the measurements of `hearth bench` (see bench.h): a streaming-read bandwidth probe, a
 * timed load/prefill/decode run of one model, and fork-per-measurement isolation. */
#define _POSIX_C_SOURCE 200809L
#include "engine/bench.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/backend_select.h"
#include "base/argmax.h"
#include "base/clock.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "sample/grammar.h"
#include "sample/rng.h"
#include "sample/sample.h"
#include "tensor/tensor.h"

/* ---- memory bandwidth ---- */

struct membw_job {
    uint64_t *buf;        /* the buffer the fill pass writes */
    const uint64_t *src;  /* the words the read passes sum: buf, or a slice of a model's weights */
    size_t n_words;
    bool fill; /* first pass: write, so every page is faulted in by the thread that will read it */
    uint64_t sink[64];
};

static void membw_slice(void *arg, int t, int nt)
{
    struct membw_job *j = arg;
    /* Slices in whole 64-byte lines so the unrolled loop below needs no tail. */
    const size_t lines = j->n_words / 8, first = lines * (size_t)t / (size_t)nt * 8,
                 last = lines * (size_t)(t + 1) / (size_t)nt * 8;
    if (j->fill) {
        for (size_t i = first; i < last; i++)
            j->buf[i] = (uint64_t)i;
        return;
    }
    const uint64_t *p = j->src + first, *end = j->src + last;
    /* Eight independent accumulators keep several loads in flight per core; the loads, not the
     * adds, are the bottleneck, as in a decode matmul. */
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    for (; p < end; p += 8) {
        a0 += p[0];
        a1 += p[1];
        a2 += p[2];
        a3 += p[3];
        a4 += p[4];
        a5 += p[5];
        a6 += p[6];
        a7 += p[7];
    }
    if (t < 64)
        j->sink[t] = a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}

int bench_membw(int n_threads, size_t bytes, double *gbs, struct err *e)
{
    if (bytes == 0)
        bytes = (size_t)1 << 30;
    struct threadpool *pool = NULL;
    int rc = threadpool_new(n_threads, &pool, e);
    if (rc)
        return rc;
    struct membw_job j = {0};
    j.n_words = bytes / sizeof(uint64_t) / 8 * 8;
    j.buf = malloc(j.n_words * sizeof(uint64_t));
    if (!j.buf) {
        threadpool_free(pool);
        return err_set(e, ERR_NOMEM, "memory bandwidth probe: cannot allocate %zu MiB", bytes >> 20);
    }
    j.src = j.buf;
    j.fill = true;
    threadpool_run(pool, membw_slice, &j);
    j.fill = false;
    /* The median of the passes, as the decode figures it is set against are medians: on a shared host
     * the best pass catches a quiet moment the decode runs did not have. */
    enum { PASSES = 7 };
    double rates[PASSES];
    for (int pass = 0; pass < PASSES; pass++) {
        int64_t t0 = clock_ns();
        threadpool_run(pool, membw_slice, &j);
        int64_t dt = clock_ns() - t0;
        double rate = dt > 0 ? (double)(j.n_words * sizeof(uint64_t)) / (double)dt : 0;
        int k = pass;
        for (; k > 0 && rates[k - 1] > rate; k--)
            rates[k] = rates[k - 1];
        rates[k] = rate;
    }
    /* Keep the sums observable so the reads cannot be optimized away. */
    volatile uint64_t keep = 0;
    for (int i = 0; i < 64; i++)
        keep ^= j.sink[i];
    (void)keep;
    free(j.buf);
    threadpool_free(pool);
    *gbs = rates[PASSES / 2]; /* bytes per nanosecond = 1e9 bytes per second */
    return 0;
}

/* ---- one model ---- */

static uint64_t matrix_bytes(const struct bweight *w)
{
    return w->host && w->rows > 1 ? (uint64_t)w->rows * dtype_row_bytes(w->type, w->cols) : 0;
}

static uint64_t weight_count(const struct bweight *w) { return w->host ? (uint64_t)(w->rows * w->cols) : 0; }

uint64_t bench_decode_bytes(const struct model *m)
{
    uint64_t b = matrix_bytes(&m->output) + dtype_row_bytes(m->tok_embd.type, m->tok_embd.cols);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const struct bweight *ws = (const struct bweight *)&m->layers[il];
        for (size_t k = 0; k < sizeof(struct layer_weights) / sizeof(struct bweight); k++)
            b += matrix_bytes(&ws[k]);
    }
    return b;
}

/* ---- bandwidth in the decode's own seconds ---- */

/* Bytes of the model's weights one in-run probe pass reads: a few milliseconds of reading, far
 * beyond the last-level cache, so every pass comes from memory. HEARTH_BENCH_PROBE_BYTES sets
 * another size (a multiple of 64 bytes, at least 4 KiB), which lets tests take this path with a
 * small model. */
#define DECODE_PROBE_BYTES ((size_t)128 << 20)

static size_t decode_probe_bytes(void)
{
    const char *v = getenv("HEARTH_BENCH_PROBE_BYTES");
    char *end = NULL;
    const unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && n >= 4096 ? (size_t)n / 64 * 64 : DECODE_PROBE_BYTES;
}

/* Reads the model's weight matrices, a slice at a time, between decode steps, with its own threads
 * (as many as the backend's): on a shared host the memory speed changes within seconds, so sampling
 * it in the same seconds as the decode sets each run against the bandwidth it actually had. It reads
 * the matrices decode reads, where they lie: no buffer of its own and no page decode would not
 * touch, so the row's peak RSS is unchanged (page-cache and anonymous memory read alike). */
struct probe_span {
    const uint8_t *data;
    size_t bytes;
};

struct decode_probe {
    struct threadpool *pool;
    size_t pass_bytes;        /* read per pass */
    struct probe_span *spans; /* every matrix decode reads */
    int n_spans;
    int at;         /* the span the next pass starts in */
    size_t off;     /* and where in it */
    int64_t ns;     /* time spent in passes */
    double bytes;   /* bytes read in them */
    struct membw_job job;
};

static void probe_add(struct decode_probe *dp, const struct bweight *w)
{
    const uint64_t n = matrix_bytes(w) / 64 * 64;
    if (n > 0)
        dp->spans[dp->n_spans++] = (struct probe_span){w->host, (size_t)n};
}

/* dp->pool stays NULL (and the row gets the separate probe) when the matrices are too small to
 * stream from memory. Called for CPU rows only: a GPU's weights are not in host memory. */
static int decode_probe_init(struct decode_probe *dp, const struct model *m, int n_threads, struct err *e)
{
    memset(dp, 0, sizeof *dp);
    dp->pass_bytes = decode_probe_bytes();
    if (bench_decode_bytes(m) < 4 * dp->pass_bytes)
        return 0;
    const size_t per_layer = sizeof(struct layer_weights) / sizeof(struct bweight);
    dp->spans = malloc(((size_t)m->hp.n_layer * per_layer + 1) * sizeof *dp->spans);
    if (!dp->spans)
        return err_set(e, ERR_NOMEM, "out of memory");
    probe_add(dp, &m->output);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const struct bweight *ws = (const struct bweight *)&m->layers[il];
        for (size_t k = 0; k < per_layer; k++)
            probe_add(dp, &ws[k]);
    }
    if (dp->n_spans == 0)
        return 0;
    return threadpool_new(n_threads, &dp->pool, e);
}

static void probe_wake(void *ctx, int slot, int n_slots)
{
    (void)ctx;
    (void)slot;
    (void)n_slots;
}

/* One pass: pass_bytes of the matrices, continuing where the last pass stopped. */
static void decode_probe_pass(struct decode_probe *dp)
{
    /* The backend's workers spin briefly after a step before they sleep; let them, so they do not
     * share the cores with this pass. */
    const struct timespec settle = {0, 200000};
    nanosleep(&settle, NULL);
    /* Wake this pool's own workers first (they sleep between passes), so the timed pass holds no
     * wake-up latency: that would read as lower bandwidth and flatter the roofline %. */
    threadpool_run(dp->pool, probe_wake, NULL);
    const int64_t t0 = clock_ns();
    for (size_t left = dp->pass_bytes; left > 0;) {
        const struct probe_span *sp = &dp->spans[dp->at];
        size_t n = sp->bytes - dp->off < left ? sp->bytes - dp->off : left;
        dp->job.src = (const uint64_t *)(const void *)(sp->data + dp->off);
        dp->job.n_words = n / sizeof(uint64_t);
        dp->job.fill = false;
        threadpool_run(dp->pool, membw_slice, &dp->job);
        dp->bytes += (double)n;
        left -= n;
        dp->off += n;
        if (dp->off == sp->bytes) {
            dp->off = 0;
            dp->at = (dp->at + 1) % dp->n_spans;
        }
    }
    dp->ns += clock_ns() - t0;
}

static void decode_probe_free(struct decode_probe *dp)
{
    volatile uint64_t keep = 0;
    for (int i = 0; i < 64; i++)
        keep ^= dp->job.sink[i];
    (void)keep;
    threadpool_free(dp->pool);
    free(dp->spans);
    memset(dp, 0, sizeof *dp);
}

static uint64_t param_count(const struct model *m)
{
    uint64_t n = weight_count(&m->tok_embd) + weight_count(&m->output_norm);
    if (!m->hp.tied_output)
        n += weight_count(&m->output);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const struct bweight *ws = (const struct bweight *)&m->layers[il];
        for (size_t k = 0; k < sizeof(struct layer_weights) / sizeof(struct bweight); k++)
            n += weight_count(&ws[k]);
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The grammar of p->format over m's vocabulary (*g stays NULL without a format). Built outside the
 * timed regions: indexing the vocabulary is a once-per-model cost, like loading. */
static int format_grammar(const struct bench_params *p, const struct model *m, struct grammar_vocab **v,
                          struct grammar **g, struct err *e)
{
    if (!p->format)
        return 0;
    json_t *schema = NULL;
    if (strcmp(p->format, "json") != 0) {
        json_error_t je;
        schema = json_loads(p->format, 0, &je);
        if (!schema)
            return err_set(e, ERR_INVALID, "bench: format schema is not JSON: line %d: %s", je.line, je.text);
    }
    int rc = grammar_vocab_new(m->tok, v, e);
    if (!rc)
        rc = grammar_new_json(*v, schema, g, e);
    json_decref(schema);
    return rc;
}

/* One pick as constrained decoding makes it: mask, argmax, advance; a completed value restarts the
 * grammar (counted in *values) so that the constraint stays active for every step. */
static int pick(struct grammar *g, float *logits, int n_vocab, int32_t *tok, int *values, struct err *e)
{
    if (grammar_apply(g, logits) <= 0)
        return err_set(e, ERR_INVALID, "bench: the format grammar allows no token");
    *tok = argmax_f32(logits, n_vocab);
    int rc = grammar_accept(g, *tok, e);
    if (!rc && grammar_done(g)) {
        grammar_reset(g);
        (*values)++;
    }
    return rc;
}

/* Runs tokens and picks the next one greedily: on the backend that holds the logits (they are not
 * copied out, as in plain greedy generation; more: another step follows, which the backend may start at
 * once), or through the format grammar on the host. */
static int step(struct model_ctx *c, struct grammar *g, const int32_t *toks, int n, float *logits, int32_t *tok,
                bool more, int *values, struct err *e)
{
    if (!g)
        return model_forward_greedy(c, toks, n, tok, more, e);
    int rc = model_forward(c, toks, n, logits, false, e);
    return rc ? rc : pick(g, logits, c->m->hp.n_vocab, tok, values, e);
}

/* One repeat: load, warm up, prefill, decode; times in ns into t[0..3] (load, prefill, first, decode).
 * With a CPU backend *bw gets the memory bandwidth (1e9 bytes/s) read between the decode steps (the
 * decode time excludes those reads); otherwise 0. */
static int bench_once(const char *path, struct backend *be, const struct bench_params *p, int32_t **prompt,
                      struct bench_result *r, int64_t t[4], double *bw, struct err *e)
{
    struct decode_probe dp = {0};
    *bw = 0;
    struct model *m = NULL;
    struct model_ctx *c = NULL;
    float *logits = NULL;
    struct grammar_vocab *gv = NULL;
    struct grammar *g = NULL;
    int values = 0;
    struct ctx_params cp = {.n_ctx = p->n_prompt + p->n_gen + 1, .n_batch = 0, .kv_type = KV_F16};
    int64_t t0 = clock_ns();
    int rc = model_load(path, be, &m, e);
    if (!rc)
        rc = model_ctx_new(m, &cp, &c, e);
    t[0] = clock_ns() - t0;
    if (!rc)
        rc = format_grammar(p, m, &gv, &g, e);
    if (rc)
        goto done;
    const int n_vocab = m->hp.n_vocab;
    logits = malloc((size_t)n_vocab * sizeof *logits);
    if (!logits) {
        rc = err_set(e, ERR_NOMEM, "out of memory for %d logits", n_vocab);
        goto done;
    }
    if (!*prompt) {
        *prompt = malloc((size_t)p->n_prompt * sizeof **prompt);
        if (!*prompt) {
            rc = err_set(e, ERR_NOMEM, "out of memory for a %d-token prompt", p->n_prompt);
            goto done;
        }
        struct rng rg;
        rng_seed(&rg, p->seed);
        for (int i = 0; i < p->n_prompt; i++)
            (*prompt)[i] = (int32_t)(rng_next(&rg) % (uint64_t)n_vocab);
        snprintf(r->type, sizeof r->type, "%s", model_type_name(m));
        r->weight_bytes = m->weight_bytes;
        r->n_params = param_count(m);
        r->decode_bytes = bench_decode_bytes(m);
    }
    /* Warm-up: one decode step reads every weight once, so page faults on the mapped file and
     * first-touch costs land here and not in the timed prefill. */
    rc = model_forward(c, *prompt, 1, logits, false, e);
    if (rc)
        goto done;
    model_ctx_truncate(c, 0);

    t0 = clock_ns();
    int32_t tok = 0;
    rc = step(c, g, *prompt, p->n_prompt, logits, &tok, true, &values, e);
    if (rc)
        goto done;
    t[1] = t[2] = clock_ns() - t0;

    if (!p->gpu && (rc = decode_probe_init(&dp, m, be->n_threads, e)) != 0)
        goto done;
    t[3] = 0;
    for (int i = 0; i < p->n_gen; i++) {
        /* CPU: a probe pass before each step, so the samples span the decode's seconds. */
        if (dp.pool)
            decode_probe_pass(&dp);
        t0 = clock_ns();
        rc = step(c, g, &tok, 1, logits, &tok, i + 1 < p->n_gen, &values, e);
        t[3] += clock_ns() - t0;
        if (rc)
            goto done;
    }
    if (dp.pool && dp.ns > 0)
        *bw = dp.bytes / (double)dp.ns;
    r->format_values = values;
done:
    decode_probe_free(&dp);
    grammar_free(g);
    grammar_vocab_free(gv);
    free(logits);
    model_ctx_free(c);
    model_free(m);
    return rc;
}

int bench_model(const char *path, const struct bench_params *p, struct bench_result *r, struct err *e)
{
    if (p->n_prompt < 1 || p->n_gen < 1 || p->n_repeat < 1)
        return err_set(e, ERR_INVALID, "bench: prompt, generation and repeat counts must be at least 1");
    memset(r, 0, sizeof *r);
    struct backend *be = NULL;
    const char *note = "";
    int rc = p->gpu ? backend_new_auto(p->n_threads, true, &be, &note, e) : backend_cpu_new(p->n_threads, &be, e);
    if (rc)
        return rc;
    if (note && *note) { /* asked for the GPU, got the CPU */
        be->ops->free(be);
        return err_set(e, ERR_UNSUPPORTED, "%s: %s", path, note);
    }
    if (p->gpu)
        snprintf(r->backend, sizeof r->backend, "%s", be->ops->name);
    else
        snprintf(r->backend, sizeof r->backend, "%s (%s)", be->ops->name, backend_cpu_isa());
    r->n_threads = be->n_threads;
    double *v = calloc((size_t)p->n_repeat * 6 + 1, sizeof *v);
    int32_t *prompt = NULL;
    if (!v) {
        be->ops->free(be);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    double *load = v, *prefill = v + p->n_repeat, *first = v + 2 * p->n_repeat, *decode = v + 3 * p->n_repeat;
    double *bw = v + 4 * p->n_repeat, *pct = bw + p->n_repeat + 1;
    /* A CPU row's roofline: each repeat's decode against the memory bandwidth read between its own
     * decode steps (bench_once), the median over repeats. A shared host's bandwidth changes within
     * seconds; probes taken before and after a repeat measured other seconds than its decode. Models
     * under four probe passes of weights (512 MiB) get the separate probe after each repeat. */
    for (int i = 0; i < p->n_repeat && !rc; i++) {
        int64_t t[4] = {0};
        rc = bench_once(path, be, p, &prompt, r, t, &bw[i], e);
        load[i] = (double)t[0] / 1e6;
        prefill[i] = t[1] > 0 ? (double)p->n_prompt * 1e9 / (double)t[1] : 0;
        first[i] = (double)t[2] / 1e6;
        decode[i] = t[3] > 0 ? (double)p->n_gen * 1e9 / (double)t[3] : 0;
        r->membw_in_run = bw[i] > 0;
        if (!rc && !p->gpu && bw[i] == 0)
            rc = bench_membw_isolated(p->n_threads, 0, &bw[i], e);
        pct[i] = bw[i] > 0 && r->decode_bytes ? 100.0 * decode[i] * (double)r->decode_bytes / (bw[i] * 1e9) : 0;
    }
    if (!rc && !p->gpu) {
        r->roofline_pct = median(pct, p->n_repeat);
        r->membw_gbs = median(bw, p->n_repeat);
    }
    if (!rc) {
        r->load_ms = median(load, p->n_repeat);
        r->prefill_tps = median(prefill, p->n_repeat);
        r->first_token_ms = median(first, p->n_repeat);
        r->decode_tps = median(decode, p->n_repeat);
        r->peak_rss_bytes = clock_peak_rss_bytes();
        if (!p->gpu && r->decode_bytes)
            r->roofline_tps = r->membw_gbs * 1e9 / (double)r->decode_bytes;
    }
    free(prompt);
    free(v);
    be->ops->free(be);
    return rc;
}

/* ---- isolation ---- */

/* What a child sends back: its status and message, and the figures. */
struct child_msg {
    int rc;
    char msg[sizeof(((struct err *)0)->msg)];
    double gbs;
    struct bench_result r;
};

enum child_kind { CHILD_MEMBW, CHILD_MODEL };

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static size_t read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static int run_child(enum child_kind kind, const char *path, const struct bench_params *p, int n_threads,
                     size_t bytes, struct child_msg *out, struct err *e)
{
    int fds[2];
    if (pipe(fds) != 0)
        return err_set(e, ERR_IO, "bench: cannot create a pipe: %s", strerror(errno));
    fflush(NULL); /* or the child would flush the parent's buffered output a second time */
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return err_set(e, ERR_IO, "bench: cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        struct child_msg *m = calloc(1, sizeof *m);
        if (!m)
            _exit(3);
        struct err ce = {0};
        m->rc = kind == CHILD_MEMBW ? bench_membw(n_threads, bytes, &m->gbs, &ce)
                                    : bench_model(path, p, &m->r, &ce);
        memcpy(m->msg, ce.msg, sizeof m->msg);
        bool ok = write_all(fds[1], m, sizeof *m);
        _exit(ok ? 0 : 3);
    }
    close(fds[1]);
    size_t got = read_all(fds[0], out, sizeof *out);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof *out) {
        if (WIFSIGNALED(status))
            return err_set(e, ERR_IO, "%s: the benchmark process was killed by signal %d%s",
                           path ? path : "memory bandwidth probe", WTERMSIG(status),
                           WTERMSIG(status) == 9 ? " (out of memory?)" : "");
        return err_set(e, ERR_IO, "%s: the benchmark process exited without a result",
                       path ? path : "memory bandwidth probe");
    }
    if (out->rc) {
        out->msg[sizeof out->msg - 1] = 0;
        return err_set(e, out->rc, "%s", out->msg);
    }
    return 0;
}

int bench_membw_isolated(int n_threads, size_t bytes, double *gbs, struct err *e)
{
    struct child_msg *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(e, ERR_NOMEM, "out of memory");
    int rc = run_child(CHILD_MEMBW, NULL, NULL, n_threads, bytes, m, e);
    if (!rc)
        *gbs = m->gbs;
    free(m);
    return rc;
}

int bench_model_isolated(const char *path, const struct bench_params *p, struct bench_result *r,
                         struct err *e)
{
    struct child_msg *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(e, ERR_NOMEM, "out of memory");
    int rc = run_child(CHILD_MODEL, path, p, 0, 0, m, e);
    if (!rc)
        *r = m->r;
    free(m);
    return rc;
}
