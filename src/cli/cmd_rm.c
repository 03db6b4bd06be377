/* cmd_rm.c — `hearth rm MODEL...`: removes models; blobs no other model uses are deleted. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store.h"

int cmd_rm(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs("usage: hearth rm MODEL [MODEL...]\n", argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    struct err e = {0};
    struct store *s;
    if (store_open(NULL, &s, &e)) {
        fprintf(stderr, "hearth rm: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (store_delete(s, argv[i], &e)) {
            fprintf(stderr, "hearth rm: %s\n", e.msg);
            status = EXIT_RUNTIME;
        } else {
            printf("deleted '%s'\n", argv[i]);
        }
    }
    store_close(s);
    return status;
}
