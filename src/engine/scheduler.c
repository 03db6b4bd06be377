/* scheduler.c — loaded models, slots, keep_alive expiry, the pending-request cap and the memory
 * check (see scheduler.h). One mutex guards the table; a model loads outside it, one at a time. */
#include "engine/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend/backend.h"
#include "base/clock.h"
#include "gguf/gguf.h"
#include "sample/grammar.h"
#include "model/model.h"

struct sched_entry {
    char *path;
    char *name, *digest; /* as asked for, for /api/ps; may be NULL */
    int32_t **hist;      /* per slot: the tokens its KV cache holds */
    size_t *n_hist;
    struct model *m; /* owns its backends (model_open) */
    int num_gpu;     /* as the load asked for it (-1: as many layers as fit) */
    struct chat_template tpl;
    struct grammar_vocab *gvocab; /* built on the first constrained request, under fwd */
    pthread_mutex_t fwd;
    struct model_ctx **ctx;
    bool *busy;
    int refs;
    bool unload_pending;
    long long keep_alive_ns;
    int64_t expires_mono; /* INT64_MAX: never */
    int64_t last_used;
    uint64_t est_bytes;
    int n_ctx;
    struct sched_entry *next;
};

struct sched {
    struct sched_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sched_entry *entries;
    int n_entries;
    int pending;
    bool loading;
    bool stop;
    pthread_t reaper;
    pthread_cond_t reaper_cv;
};

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t add_sat(int64_t a, long long b)
{
    return b >= INT64_MAX - a ? INT64_MAX : a + b;
}

static void entry_free(struct sched_entry *en, int n_slots)
{
    for (int i = 0; en->hist && i < n_slots; i++)
        free(en->hist[i]);
    free(en->hist);
    free(en->n_hist);
    free(en->name);
    free(en->digest);
    free(en->path);
    free(en->ctx);
    free(en->busy);
    free(en);
}

static void entry_unload(struct sched *s, struct sched_entry *en)
{
    for (struct sched_entry **pp = &s->entries; *pp; pp = &(*pp)->next)
        if (*pp == en) {
            *pp = en->next;
            break;
        }
    s->n_entries--;
    for (int i = 0; i < s->cfg.num_parallel; i++)
        model_ctx_free(en->ctx[i]);
    chat_template_free(&en->tpl);
    grammar_vocab_free(en->gvocab);
    model_free(en->m);
    pthread_mutex_destroy(&en->fwd);
    entry_free(en, s->cfg.num_parallel);
    pthread_cond_broadcast(&s->cv);
}

static void *reaper_main(void *arg)
{
    struct sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->reaper_cv, &s->mu, &ts);
        int64_t now = clock_ns();
        for (struct sched_entry *en = s->entries, *next; en; en = next) {
            next = en->next;
            if (en->refs == 0 && en->expires_mono <= now)
                entry_unload(s, en);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sched_new(const struct sched_config *cfg, struct sched **out, struct err *e)
{
    struct sched *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, ERR_NOMEM, "out of memory");
    s->cfg = *cfg;
    if (s->cfg.max_loaded <= 0)
        s->cfg.max_loaded = 3;
    if (s->cfg.num_parallel <= 0)
        s->cfg.num_parallel = 1;
    if (s->cfg.max_queue <= 0)
        s->cfg.max_queue = 512;
    if (s->cfg.default_num_ctx <= 0)
        s->cfg.default_num_ctx = 4096;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->reaper_cv, NULL);
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        free(s);
        return err_set(e, ERR_NOMEM, "cannot start the scheduler thread");
    }
    *out = s;
    return 0;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->reaper_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->reaper, NULL);
    while (s->entries)
        entry_unload(s, s->entries);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->reaper_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int sched_default_ctx(const struct sched *s)
{
    return s->cfg.default_num_ctx;
}

static struct sched_entry *find(struct sched *s, const char *path)
{
    for (struct sched_entry *en = s->entries; en; en = en->next)
        if (strcmp(en->path, path) == 0)
            return en;
    return NULL;
}

static struct sched_entry *lru_idle(struct sched *s)
{
    struct sched_entry *best = NULL;
    for (struct sched_entry *en = s->entries; en; en = en->next)
        if (en->refs == 0 && (!best || en->last_used < best->last_used))
            best = en;
    return best;
}

static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return UINT64_MAX;
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            found = true;
            break;
        }
    fclose(f);
    return found ? (uint64_t)kb * 1024 : UINT64_MAX;
}

/* Weights plus an f16 KV cache for every slot, from the file's metadata (no weights touched); *n_ctx is
 * the context length the slots will have. */
static int estimate(struct sched *s, const char *path, int num_ctx, uint64_t *bytes, int *n_ctx, struct err *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(e, ERR_NOTFOUND, "%s: no such model file", path);
    struct gguf_file *f;
    if (gguf_open(path, &f, e))
        return ERR_FORMAT;
    struct hparams hp;
    int rc = hparams_from_gguf(f, &hp, e);
    gguf_close(f);
    if (rc)
        return err_prefix(e, "%s", path);
    int ctx = num_ctx > 0 ? num_ctx : s->cfg.default_num_ctx;
    if (hp.n_ctx_train > 0 && ctx > hp.n_ctx_train)
        ctx = hp.n_ctx_train;
    uint64_t kv = 2ull * (uint64_t)hp.n_layer * (uint64_t)hp.n_head_kv * (uint64_t)hp.head_dim *
                  (uint64_t)ctx * 2ull * (uint64_t)s->cfg.num_parallel;
    *bytes = (uint64_t)st.st_size + kv;
    *n_ctx = ctx;
    return 0;
}

static uint64_t budget_left(struct sched *s)
{
    if (s->cfg.memory_limit) {
        uint64_t used = 0;
        for (struct sched_entry *en = s->entries; en; en = en->next)
            used += en->est_bytes;
        return used >= s->cfg.memory_limit ? 0 : s->cfg.memory_limit - used;
    }
    return mem_available();
}

static int load_entry(struct sched *s, const char *path, uint64_t est, int n_ctx, int num_gpu,
                      struct sched_entry **out, struct err *e)
{
    struct sched_entry *en = calloc(1, sizeof *en);
    if (!en)
        return err_set(e, ERR_NOMEM, "out of memory");
    en->path = strdup(path);
    en->ctx = calloc((size_t)s->cfg.num_parallel, sizeof *en->ctx);
    en->busy = calloc((size_t)s->cfg.num_parallel, sizeof *en->busy);
    en->hist = calloc((size_t)s->cfg.num_parallel, sizeof *en->hist);
    en->n_hist = calloc((size_t)s->cfg.num_parallel, sizeof *en->n_hist);
    pthread_mutex_init(&en->fwd, NULL);
    en->est_bytes = est;
    en->num_gpu = num_gpu;
    en->expires_mono = INT64_MAX;
    int rc = 0;
    if (!en->path || !en->ctx || !en->busy || !en->hist || !en->n_hist)
        rc = err_set(e, ERR_NOMEM, "out of memory");
    /* The memory plan leaves room for every slot's context of the length asked for. */
    const struct load_params lp = {
        .n_threads = s->cfg.n_threads,
        .num_gpu = num_gpu,
        .n_slots = s->cfg.num_parallel,
        .ctx = {.n_ctx = n_ctx},
    };
    if (!rc)
        rc = model_open(path, &lp, &en->m, e);
    if (!rc && en->m->plan.note[0] && num_gpu > 0)
        fprintf(stderr, "hearth: %s: %s\n", path, en->m->plan.note);
    if (!rc)
        rc = chat_template_load(en->m, &en->tpl, e);
    if (rc) {
        chat_template_free(&en->tpl);
        model_free(en->m);
        pthread_mutex_destroy(&en->fwd);
        entry_free(en, s->cfg.num_parallel);
        return rc;
    }
    *out = en;
    return 0;
}

int sched_acquire(struct sched *s, const char *path, int num_ctx, int num_gpu, struct sched_lease *l,
                  struct err *e)
{
    const int64_t t0 = clock_ns();
    memset(l, 0, sizeof *l);
    pthread_mutex_lock(&s->mu);
    if (s->pending >= s->cfg.max_queue) {
        pthread_mutex_unlock(&s->mu);
        return err_set(e, SCHED_ERR_BUSY, "server busy, please try again.  maximum pending requests exceeded");
    }
    s->pending++;
    int rc = 0;
    struct sched_entry *en;
    for (;;) {
        if (s->stop) {
            rc = err_set(e, ERR_INVALID, "the server is shutting down");
            break;
        }
        en = find(s, path);
        if (en && !en->unload_pending && num_gpu >= 0 && num_gpu != en->num_gpu) {
            /* Another layer split was asked for: reload once the model is idle (as Ollama does for an
             * explicit num_gpu; -1 takes the model as it is loaded). */
            if (en->refs == 0)
                entry_unload(s, en);
            else
                en->unload_pending = true;
            continue;
        }
        if (en && !en->unload_pending) {
            int slot = -1;
            for (int i = 0; i < s->cfg.num_parallel; i++)
                if (!en->busy[i]) {
                    slot = i;
                    break;
                }
            if (slot >= 0) {
                en->busy[slot] = true;
                en->refs++;
                en->expires_mono = INT64_MAX;
                en->last_used = clock_ns();
                l->ent = en;
                l->slot = slot;
                break;
            }
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        if (en || s->loading) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        if (s->n_entries >= s->cfg.max_loaded) {
            struct sched_entry *victim = lru_idle(s);
            if (victim)
                entry_unload(s, victim);
            else
                pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        uint64_t est = 0;
        int est_ctx = 0;
        rc = estimate(s, path, num_ctx, &est, &est_ctx, e);
        if (rc)
            break;
        struct sched_entry *victim;
        while (est > budget_left(s) && (victim = lru_idle(s)))
            entry_unload(s, victim);
        uint64_t avail = budget_left(s);
        if (est > avail) {
            rc = err_set(e, ERR_NOMEM, "model requires more system memory (%.1f GiB) than is available (%.1f GiB)",
                         est / 1073741824.0, avail / 1073741824.0);
            break;
        }
        s->loading = true;
        pthread_mutex_unlock(&s->mu);
        struct sched_entry *fresh = NULL;
        rc = load_entry(s, path, est, est_ctx, num_gpu, &fresh, e);
        pthread_mutex_lock(&s->mu);
        s->loading = false;
        pthread_cond_broadcast(&s->cv);
        if (rc)
            break;
        fresh->next = s->entries;
        s->entries = fresh;
        s->n_entries++;
    }
    s->pending--;
    pthread_mutex_unlock(&s->mu);
    if (rc)
        return rc;

    /* The slot's context is (re)made outside the table lock; a different num_ctx only remakes the
     * context, never reloads the weights. The forward lock keeps the backend's scratch stable. */
    en = l->ent;
    int want = num_ctx > 0 ? num_ctx : s->cfg.default_num_ctx;
    if (en->m->hp.n_ctx_train > 0 && want > en->m->hp.n_ctx_train)
        want = en->m->hp.n_ctx_train;
    if (!en->ctx[l->slot] || en->ctx[l->slot]->n_ctx != want) {
        pthread_mutex_lock(&en->fwd);
        model_ctx_free(en->ctx[l->slot]);
        en->ctx[l->slot] = NULL;
        free(en->hist[l->slot]);
        en->n_hist[l->slot] = 0;
        struct ctx_params cp = {.n_ctx = want};
        rc = model_ctx_new(en->m, &cp, &en->ctx[l->slot], e);
        en->hist[l->slot] = rc ? NULL : malloc((size_t)want * sizeof **en->hist);
        if (!rc && !en->hist[l->slot])
            rc = err_set(e, ERR_NOMEM, "out of memory");
        pthread_mutex_unlock(&en->fwd);
        if (rc) {
            sched_release(s, l, -1);
            return rc;
        }
    }
    en->n_ctx = want;
    l->m = en->m;
    l->ctx = en->ctx[l->slot];
    l->tpl = &en->tpl;
    l->forward_lock = &en->fwd;
    l->kv_tokens = en->hist[l->slot];
    l->n_kv_tokens = &en->n_hist[l->slot];
    l->load_ns = clock_ns() - t0;
    return 0;
}

int sched_grammar_vocab(struct sched_lease *l, const struct grammar_vocab **out, struct err *e)
{
    struct sched_entry *en = l->ent;
    int rc = 0;
    /* The forward lock serialises the one-time build between this model's slots. */
    pthread_mutex_lock(&en->fwd);
    if (!en->gvocab)
        rc = grammar_vocab_new(en->m->tok, &en->gvocab, e);
    *out = en->gvocab;
    pthread_mutex_unlock(&en->fwd);
    return rc;
}

void sched_release(struct sched *s, struct sched_lease *l, long long keep_alive_ns)
{
    struct sched_entry *en = l->ent;
    if (!en)
        return;
    pthread_mutex_lock(&s->mu);
    en->busy[l->slot] = false;
    en->refs--;
    en->last_used = clock_ns();
    en->keep_alive_ns = keep_alive_ns < 0 ? s->cfg.keep_alive_ns : keep_alive_ns;
    if (en->refs == 0) {
        if (en->keep_alive_ns == 0 || en->unload_pending)
            entry_unload(s, en);
        else
            en->expires_mono = add_sat(clock_ns(), en->keep_alive_ns);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    memset(l, 0, sizeof *l);
}

bool sched_unload(struct sched *s, const char *path)
{
    pthread_mutex_lock(&s->mu);
    struct sched_entry *en = find(s, path);
    if (en) {
        if (en->refs == 0)
            entry_unload(s, en);
        else
            en->unload_pending = true;
    }
    pthread_mutex_unlock(&s->mu);
    return en != NULL;
}

void sched_label(struct sched *s, const char *path, const char *name, const char *digest)
{
    pthread_mutex_lock(&s->mu);
    struct sched_entry *en = find(s, path);
    if (en && name) {
        char *n = strdup(name), *d = digest ? strdup(digest) : NULL;
        if (n) {
            free(en->name);
            free(en->digest);
            en->name = n;
            en->digest = d;
        } else {
            free(d);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

json_t *sched_list(struct sched *s)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&s->mu);
    const int64_t now_mono = clock_ns(), now_wall = wall_ns();
    for (struct sched_entry *en = s->entries; en; en = en->next) {
        int64_t exp = en->expires_mono;
        if (en->refs > 0)
            exp = add_sat(now_mono, en->keep_alive_ns ? en->keep_alive_ns : s->cfg.keep_alive_ns);
        json_t *o = json_object();
        json_object_set_new(o, "path", json_string(en->path));
        json_object_set_new(o, "name", json_string(en->name ? en->name : en->path));
        json_object_set_new(o, "digest", json_string(en->digest ? en->digest : ""));
        /* Ollama's size and size_vram: all the model's memory, and the GPU's share of it. */
        const struct mem_plan *p = &en->m->plan;
        const uint64_t planned = plan_cpu_bytes(p) + plan_gpu_bytes(p);
        json_object_set_new(o, "size", json_integer((json_int_t)(planned ? planned : en->est_bytes)));
        json_object_set_new(o, "size_vram", json_integer((json_int_t)plan_gpu_bytes(p)));
        json_object_set_new(o, "offloaded_layers", json_integer(plan_offloaded(p)));
        json_object_set_new(o, "layers", json_integer(p->n_layer + 1));
        json_object_set_new(o, "expires_at",
                            json_integer(exp == INT64_MAX ? 0 : (json_int_t)(now_wall + (exp - now_mono))));
        json_object_set_new(o, "context_length", json_integer(en->n_ctx));
        json_object_set_new(o, "file_type", json_string(model_type_name(en->m)));
        json_object_set_new(o, "arch", json_string(en->m->hp.arch_name));
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&s->mu);
    return arr;
}
