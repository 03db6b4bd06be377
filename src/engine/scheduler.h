/* scheduler.h — the server's loaded models: load on first use (one load at a time), keep each for
 * its keep_alive after its last request, at most HEARTH_MAX_LOADED_MODELS resident (idle ones are
 * evicted, least recently used first), HEARTH_NUM_PARALLEL slots (contexts) per model, at most
 * HEARTH_MAX_QUEUE requests waiting, and a memory check before a load. */
#ifndef HEARTH_ENGINE_SCHEDULER_H
#define HEARTH_ENGINE_SCHEDULER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "engine/chat.h"

/* Returned by sched_acquire when the queue is full (the server answers 503). */
#define SCHED_ERR_BUSY (-100)

struct sched_config {
    int max_loaded;           /* HEARTH_MAX_LOADED_MODELS; <= 0: 3 */
    int num_parallel;         /* HEARTH_NUM_PARALLEL; <= 0: 1 */
    int max_queue;            /* HEARTH_MAX_QUEUE; <= 0: 512 */
    long long keep_alive_ns;  /* HEARTH_KEEP_ALIVE default; INT64_MAX: forever */
    int default_num_ctx;      /* HEARTH_CONTEXT_LENGTH; <= 0: 4096 */
    int n_threads;            /* CPU threads per model; <= 0: automatic */
    uint64_t memory_limit;    /* HEARTH_MAX_MEMORY bytes; 0: the system's available memory */
};

struct sched;
struct sched_entry;

struct sched_lease {
    struct sched_entry *ent;
    struct model *m;
    struct model_ctx *ctx;
    const struct chat_template *tpl;
    pthread_mutex_t *forward_lock; /* hold around forward passes (generate does with gen_request) */
    int slot;
    /* The slot's KV-cache token history for prefix reuse (gen_request.kv_tokens/n_kv_tokens). */
    int32_t *kv_tokens;
    size_t *n_kv_tokens;
    long long load_ns; /* time spent waiting for and loading the model */
};

int sched_new(const struct sched_config *cfg, struct sched **out, struct err *e);
/* Unloads everything; no lease may be outstanding. */
void sched_free(struct sched *s);

/* Gets a slot of the model at path (loading it if needed) with a context of num_ctx tokens (0: the
 * default; clamped to the model's training context). num_gpu is the layer split a load uses (the
 * num_gpu option: -1 as many layers on the GPU as fit, model/plan.h); a loaded model asked for with
 * another num_gpu >= 0 is reloaded once idle. Fails with SCHED_ERR_BUSY when too many requests wait,
 * ERR_NOTFOUND/ERR_FORMAT/... from loading, ERR_NOMEM when the model does not fit the memory budget. */
int sched_acquire(struct sched *s, const char *path, int num_ctx, int num_gpu, struct sched_lease *l,
                  struct err *e);
/* Returns the slot; the model stays loaded for keep_alive_ns (< 0: the default, 0: unload now,
 * INT64_MAX: forever) after its last request. */
void sched_release(struct sched *s, struct sched_lease *l, long long keep_alive_ns);
/* Unloads the model now if idle, else once its requests finish. True if it was loaded. */
bool sched_unload(struct sched *s, const char *path);
/* Records the name a loaded model was asked for by (and its store digest, may be NULL), for
 * /api/ps; the latest name wins. */
void sched_label(struct sched *s, const char *path, const char *name, const char *digest);
/* /api/ps entries: [{path, name, digest, size, size_vram (bytes on the GPU), offloaded_layers, layers,
 * expires_at (unix ns, 0 = forever), context_length, file_type, arch}]. */
json_t *sched_list(struct sched *s);
/* The leased model's grammar vocabulary (grammar.h), built on first use and kept with the model.
 * Read-only afterwards; valid while the lease is held. */
struct grammar_vocab;
int sched_grammar_vocab(struct sched_lease *l, const struct grammar_vocab **out, struct err *e);
/* The server default context length. */
int sched_default_ctx(const struct sched *s);

#endif
