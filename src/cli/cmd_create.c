/* cmd_create.c — `hearth create NAME [-f Modelfile] [-q TYPE]`: builds a model in the store from a
 * Modelfile (FROM a GGUF file or a stored model, plus template, system, parameters, messages). */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "cli/cli.h"
#include "store/store.h"

static void progress(void *ctx, const char *status, uint64_t done, uint64_t total)
{
    (void)ctx;
    if (!total)
        fprintf(stderr, "%s\n", status);
    else if (isatty(2))
        fprintf(stderr, "\r\033[K[%llu/%llu] %s%s", (unsigned long long)done, (unsigned long long)total, status,
                done == total ? "\n" : "");
}

int cmd_create(int argc, char **argv)
{
    const char *name = NULL, *file = "Modelfile", *quant = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth create NAME [-f Modelfile] [-q|--quantize TYPE]");
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "-f")) || (v = opt_value(argc, argv, &i, "--file"))) {
            file = v;
        } else if ((v = opt_value(argc, argv, &i, "-q")) || (v = opt_value(argc, argv, &i, "--quantize"))) {
            quant = v;
        } else if (!name && argv[i][0] != '-') {
            name = argv[i];
        } else {
            fprintf(stderr, "hearth create: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!name) {
        fprintf(stderr, "usage: hearth create NAME [-f Modelfile] [-q TYPE]\n");
        return EXIT_USAGE;
    }
    struct err e = {0};
    char *text = NULL;
    size_t size;
    struct modelfile mf;
    char warn[2048];
    if (file_read_all(file, &text, &size, &e)) {
        fprintf(stderr, "hearth create: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    if (modelfile_parse(text, &mf, warn, sizeof warn, &e)) {
        fprintf(stderr, "hearth create: %s: %s\n", file, e.msg);
        free(text);
        return EXIT_RUNTIME;
    }
    free(text);
    if (warn[0])
        fprintf(stderr, "%s", warn);
    char *dir_copy = strdup(file);
    struct store_create_req req = {0};
    modelfile_to_req(&mf, &req);
    req.base_dir = dir_copy ? dirname(dir_copy) : NULL;
    req.quantize = quant;
    req.progress = progress;
    struct store *s = NULL;
    int rc = store_open(NULL, &s, &e);
    if (!rc)
        rc = store_create(s, name, &req, &e);
    if (rc)
        fprintf(stderr, "hearth create: %s\n", e.msg);
    store_close(s);
    free(dir_copy);
    modelfile_free(&mf);
    return rc ? EXIT_RUNTIME : 0;
}
