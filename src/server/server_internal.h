/* server_internal.h — what the HTTP plumbing (server.c) shares with the route handlers
 * (api_ollama.c, api_openai.c): requests, replies, streams and model-name resolution. */
#ifndef HEARTH_SERVER_INTERNAL_H
#define HEARTH_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "engine/scheduler.h"
#include "server/server.h"

struct store;
struct store_model;

struct srv {
    struct server_config cfg;
    struct sched *sched;
    struct store *store; /* the model store (HEARTH_MODELS or ~/.hearth/models); NULL if it cannot open */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active_streams;
    volatile int stopping;
};

struct stream;

/* What a handler answers: a whole body, or a stream fed by a worker thread. */
struct reply {
    int status;
    const char *ctype;
    char *body; /* malloc'd */
    size_t len;
    struct stream *stream;
};

struct http_req {
    const char *method;
    const char *path;
    const char *body;
    size_t len;
};

/* Replies. */
void reply_json(struct reply *r, int status, json_t *obj); /* steals obj */
void reply_error(struct reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void reply_oai_error(struct reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void reply_text(struct reply *r, int status, const char *ctype, const char *text);
/* Maps an engine error code to an HTTP status (SCHED_ERR_BUSY 503, NOTFOUND 404, INVALID 400...). */
int http_status_for(int code);

/* Streams: run() executes on a worker thread and writes with stream_write (a nonzero return means
 * the client went away or the server is stopping: stop generating). */
typedef void (*stream_fn)(struct stream *st, void *job);
int stream_start(struct srv *s, struct reply *r, int status, const char *ctype, stream_fn run, void *job,
                 void (*job_free)(void *));
int stream_write(struct stream *st, const char *data, size_t len);
/* For a non-streamed reply being produced on the connection's thread: true once the client has
 * closed its connection (so the work can stop). False elsewhere. */
bool server_client_gone(void);

/* Request body as a JSON object. On failure fills r with 400 (missing body / parse error). */
json_t *parse_body(const struct http_req *q, struct reply *r, bool openai);

/* Resolves a model name to a .gguf path (malloc'd): an existing file path, a model of the store,
 * or NAME(.gguf) in the flat HEARTH_MODELS directory. */
int resolve_model(const struct srv *s, const char *name, char **path, struct err *e);
/* The same, also filling *sm (zeroed when the model is not a store model) so that the Modelfile's
 * SYSTEM, PARAMETERs and MESSAGEs can be applied. store_model_free(sm) afterwards. */
int resolve_model_store(const struct srv *s, const char *name, char **path, struct store_model *sm, struct err *e);
/* RFC 3339 UTC timestamp with nanoseconds into buf (>= 40 bytes). */
void fmt_time(int64_t unix_ns, char *buf, size_t cap);
int64_t now_unix_ns(void);

/* Route handlers. */
void api_generate(struct srv *s, const struct http_req *q, struct reply *r);
void api_chat(struct srv *s, const struct http_req *q, struct reply *r);
void api_tags(struct srv *s, const struct http_req *q, struct reply *r);
void api_ps(struct srv *s, const struct http_req *q, struct reply *r);
void api_show(struct srv *s, const struct http_req *q, struct reply *r);
void api_embed(struct srv *s, const struct http_req *q, struct reply *r);
void api_embeddings(struct srv *s, const struct http_req *q, struct reply *r);
void api_copy(struct srv *s, const struct http_req *q, struct reply *r);
void api_delete(struct srv *s, const struct http_req *q, struct reply *r);
void api_create(struct srv *s, const struct http_req *q, struct reply *r);
void api_pull(struct srv *s, const struct http_req *q, struct reply *r);
void api_push(struct srv *s, const struct http_req *q, struct reply *r);
/* HEAD /api/blobs/:digest: 200 if the blob is in the store, else 404. */
void api_blob_head(struct srv *s, const char *digest, struct reply *r);
void oai_chat(struct srv *s, const struct http_req *q, struct reply *r);
void oai_completions(struct srv *s, const struct http_req *q, struct reply *r);
void oai_models(struct srv *s, const struct http_req *q, struct reply *r);
void oai_model(struct srv *s, const struct http_req *q, struct reply *r, const char *id);
void oai_embeddings(struct srv *s, const struct http_req *q, struct reply *r);

#endif
