/* cmd_stop.c — `hearth stop MODEL`: unloads a model from a running server, as Ollama does, by
 * checking /api/ps and then sending an empty generate request with keep_alive 0. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/client.h"

/* "name" and "name:latest" are the same model. */
static int same_model(const char *a, const char *b)
{
    size_t la = strcspn(a, ":"), lb = strcspn(b, ":");
    const char *ta = a[la] ? a + la + 1 : "latest", *tb = b[lb] ? b + lb + 1 : "latest";
    return la == lb && strncasecmp(a, b, la) == 0 && strcasecmp(ta, tb) == 0;
}

int cmd_stop(int argc, char **argv)
{
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth stop MODEL\n\nUnloads a running model from `hearth serve` (HEARTH_HOST).");
            return 0;
        }
        if (model) {
            fprintf(stderr, "hearth stop: accepts exactly one MODEL\n");
            return EXIT_USAGE;
        }
        model = argv[i];
    }
    if (!model) {
        fprintf(stderr, "usage: hearth stop MODEL\n");
        return EXIT_USAGE;
    }
    struct err e = {0};
    long st;
    json_t *ps;
    if (client_call("GET", "/api/ps", NULL, &st, &ps, &e)) {
        fprintf(stderr, "hearth stop: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    const char *found = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ps, "models"), i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name && same_model(name, model))
            found = name;
    }
    int rc = 0;
    if (!found) {
        fprintf(stderr, "hearth stop: couldn't find model \"%s\" to stop\n", model);
        rc = EXIT_RUNTIME;
    } else {
        json_t *req = json_pack("{s:s,s:i,s:b}", "model", found, "keep_alive", 0, "stream", 0);
        json_t *reply = NULL;
        if (client_call("POST", "/api/generate", req, &st, &reply, &e)) {
            fprintf(stderr, "hearth stop: %s\n", e.msg);
            rc = EXIT_RUNTIME;
        }
        json_decref(reply);
        json_decref(req);
    }
    json_decref(ps);
    return rc;
}
