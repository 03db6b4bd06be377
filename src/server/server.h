/* server.h — `hearth serve`: Ollama's native /api and OpenAI's /v1 HTTP APIs over
 * libmicrohttpd, generating through the engine's scheduler. */
#ifndef HEARTH_SERVER_SERVER_H
#define HEARTH_SERVER_SERVER_H

#include <stddef.h>

#include "base/err.h"
#include "engine/scheduler.h"

struct server_config {
    char host[256];         /* IPv4 address or "localhost" */
    int port;
    size_t max_body;        /* request bodies above this get 413 */
    const char *models_dir; /* HEARTH_MODELS: *.gguf served by name; NULL: paths only */
    struct sched_config sched;
};

/* Fills cfg from the environment: HEARTH_HOST (default 127.0.0.1:11434), HEARTH_MODELS,
 * HEARTH_KEEP_ALIVE, HEARTH_NUM_PARALLEL, HEARTH_MAX_LOADED_MODELS, HEARTH_MAX_QUEUE,
 * HEARTH_CONTEXT_LENGTH, HEARTH_MAX_MEMORY, HEARTH_MAX_BODY. ERR_INVALID names a bad variable. */
int server_config_from_env(struct server_config *cfg, struct err *e);

/* Serves until SIGINT or SIGTERM, then stops accepting, cancels running generations, waits for
 * them and unloads every model. */
int server_run(const struct server_config *cfg, struct err *e);

#endif
