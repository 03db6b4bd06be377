/* cmd_cp.c — `hearth cp SOURCE DESTINATION`: a second name for a model (the manifest is copied, the
 * blobs are shared). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store.h"

int cmd_cp(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: hearth cp SOURCE DESTINATION\n", argc == 2 && argv[1][0] == '-' ? stdout : stderr);
        return argc == 2 && argv[1][0] == '-' ? 0 : EXIT_USAGE;
    }
    struct err e = {0};
    struct store *s;
    if (store_open(NULL, &s, &e) || store_copy(s, argv[1], argv[2], &e)) {
        fprintf(stderr, "hearth cp: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    store_close(s);
    printf("copied '%s' to '%s'\n", argv[1], argv[2]);
    return 0;
}
