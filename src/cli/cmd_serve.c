/* cmd_serve.c — `hearth serve`: starts the HTTP server (Ollama's and OpenAI's APIs), configured by
 * environment variables like Ollama's. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

static void usage(FILE *fp)
{
    fputs("usage: hearth serve\n"
          "\n"
          "Serves Ollama's /api and OpenAI's /v1 HTTP APIs until SIGINT or SIGTERM.\n"
          "A model name is a path to a .gguf file, or NAME[:latest] for NAME.gguf in HEARTH_MODELS.\n"
          "\n"
          "environment:\n"
          "  HEARTH_HOST               address:port to listen on (default 127.0.0.1:11434)\n"
          "  HEARTH_MODELS             directory of .gguf models listed by /api/tags and /v1/models\n"
          "  HEARTH_KEEP_ALIVE         how long an idle model stays loaded (default 5m; negative = forever)\n"
          "  HEARTH_NUM_PARALLEL       requests one model serves at once (default 1)\n"
          "  HEARTH_MAX_LOADED_MODELS  models kept loaded at once (default 3)\n"
          "  HEARTH_MAX_QUEUE          requests that may wait before 503 (default 512)\n"
          "  HEARTH_CONTEXT_LENGTH     default num_ctx (default 4096, clamped to the model's)\n"
          "  HEARTH_NUM_THREADS        CPU threads per model (default: physical cores)\n"
          "  HEARTH_MAX_MEMORY         memory budget for loaded models, e.g. 8G (default: available memory)\n"
          "  HEARTH_MAX_BODY           largest request body in bytes (default 33554432)\n",
          fp);
}

int cmd_serve(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "hearth serve: unexpected argument '%s' (serve is configured by environment variables)\n",
                argv[i]);
        usage(stderr);
        return EXIT_USAGE;
    }
    struct server_config cfg;
    struct err e = {0};
    if (server_config_from_env(&cfg, &e)) {
        fprintf(stderr, "hearth serve: %s\n", e.msg);
        return EXIT_USAGE;
    }
    if (server_run(&cfg, &e)) {
        fprintf(stderr, "hearth serve: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    return 0;
}
