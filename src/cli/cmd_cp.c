/* cmd_cp.c — `hearth cp SOURCE DESTINATION`: POST /api/copy on the server (started on demand); the
 * manifest is copied, the blobs are shared. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

int cmd_cp(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: hearth cp SOURCE DESTINATION\n", argc == 2 && argv[1][0] == '-' ? stdout : stderr);
        return argc == 2 && argv[1][0] == '-' ? 0 : EXIT_USAGE;
    }
    struct err e = {0};
    json_t *req = json_pack("{s:s,s:s}", "source", argv[1], "destination", argv[2]);
    long st;
    int rc = client_connect(&e);
    if (!rc)
        rc = client_call("POST", "/api/copy", req, &st, NULL, &e);
    json_decref(req);
    if (rc) {
        fprintf(stderr, "hearth cp: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    printf("copied '%s' to '%s'\n", argv[1], argv[2]);
    return 0;
}
