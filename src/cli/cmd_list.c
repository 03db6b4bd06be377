/* cmd_list.c — `hearth list [PREFIX]` (alias ls): the store's models in Ollama's table
 * (NAME, ID = first 12 hex of the manifest digest, SIZE in decimal units, MODIFIED as "4 days ago"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "store/store.h"

static void human_ago(int64_t ns, char *buf, size_t cap)
{
    int64_t d = (int64_t)time(NULL) - ns / 1000000000;
    static const struct {
        int64_t secs;
        const char *unit;
    } steps[] = {{365 * 86400, "year"}, {30 * 86400, "month"}, {7 * 86400, "week"}, {86400, "day"},
                 {3600, "hour"},        {60, "minute"},        {1, "second"}};
    if (d < 1) {
        snprintf(buf, cap, "Less than a second ago");
        return;
    }
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (d >= steps[i].secs) {
            int64_t n = d / steps[i].secs;
            if (n == 1)
                snprintf(buf, cap, "%s %s ago", steps[i].secs == 3600 ? "An" : "1", steps[i].unit);
            else
                snprintf(buf, cap, "%lld %ss ago", (long long)n, steps[i].unit);
            return;
        }
}

int cmd_list(int argc, char **argv)
{
    const char *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth list [PREFIX]\n\nLists the models in the store ($HEARTH_MODELS, default ~/.hearth/models).");
            return 0;
        }
        if (prefix) {
            fprintf(stderr, "hearth list: at most one PREFIX\n");
            return EXIT_USAGE;
        }
        prefix = argv[i];
    }
    struct err e = {0};
    struct store *s;
    struct store_entry *v;
    size_t n;
    if (store_open(NULL, &s, &e) || store_list(s, &v, &n, &e)) {
        fprintf(stderr, "hearth list: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    size_t w = 4;
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i].name) > w)
            w = strlen(v[i].name);
    printf("%-*s    %-12s    %-7s    %s\n", (int)w, "NAME", "ID", "SIZE", "MODIFIED");
    for (size_t i = 0; i < n; i++) {
        if (prefix && strncasecmp(v[i].name, prefix, strlen(prefix)) != 0)
            continue;
        char sz[32], ago[64];
        fmt_size((int64_t)v[i].size, sz, sizeof sz);
        human_ago(v[i].modified_ns, ago, sizeof ago);
        printf("%-*s    %.12s    %-7s    %s\n", (int)w, v[i].name, v[i].digest, sz, ago);
    }
    store_list_free(v, n);
    store_close(s);
    return 0;
}
