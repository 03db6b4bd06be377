/* cmd_pull.c — `hearth pull NAME [--insecure]` and `hearth push NAME [--insecure]`: ask the server
 * (POST /api/pull, /api/push; started on demand) to transfer a model between its store and a
 * registry, rendering the streamed progress objects as one bar per layer on a terminal and plain
 * status lines otherwise. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

static int transfer(int argc, char **argv, bool push)
{
    const char *cmd = push ? "push" : "pull";
    const char *name = NULL;
    bool insecure = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--insecure") == 0) {
            insecure = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: hearth %s NAME [--insecure]\n  --insecure  allow plain http to the registry\n", cmd);
            return 0;
        } else if (argv[i][0] == '-' || name) {
            fprintf(stderr, "usage: hearth %s NAME [--insecure]\n", cmd);
            return EXIT_USAGE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        fprintf(stderr, "usage: hearth %s NAME [--insecure]\n", cmd);
        return EXIT_USAGE;
    }
    struct err e = {0};
    if (client_connect(&e)) {
        fprintf(stderr, "hearth %s: %s\n", cmd, e.msg);
        return EXIT_RUNTIME;
    }
    struct client_bar b;
    client_bar_init(&b);
    json_t *req = json_pack("{s:s,s:b,s:b}", "model", name, "insecure", insecure, "stream", 1);
    int rc = client_stream(push ? "/api/push" : "/api/pull", req, client_bar_obj, &b, &e);
    json_decref(req);
    if (rc) {
        fprintf(stderr, "hearth %s: %s\n", cmd, e.msg);
        return EXIT_RUNTIME;
    }
    return 0;
}

int cmd_pull(int argc, char **argv)
{
    return transfer(argc, argv, false);
}

int cmd_push(int argc, char **argv)
{
    return transfer(argc, argv, true);
}
