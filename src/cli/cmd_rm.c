/* cmd_rm.c — `hearth rm MODEL...`: DELETE /api/delete on the server (started on demand), which
 * unloads the model and removes the blobs no other model uses. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

int cmd_rm(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs("usage: hearth rm MODEL [MODEL...]\n", argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    struct err e = {0};
    if (client_connect(&e)) {
        fprintf(stderr, "hearth rm: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        json_t *req = json_pack("{s:s}", "model", argv[i]);
        long st;
        if (client_call("DELETE", "/api/delete", req, &st, NULL, &e)) {
            fprintf(stderr, "hearth rm: %s\n", e.msg);
            status = EXIT_RUNTIME;
        } else {
            printf("deleted '%s'\n", argv[i]);
        }
        json_decref(req);
    }
    return status;
}
