/* cmd_ps.c — `hearth ps`: the models a running server has loaded, through GET /api/ps, in Ollama's
 * table (NAME, ID, SIZE, PROCESSOR as "100% GPU" / "48%/52% CPU/GPU" / "100% CPU" from size and
 * size_vram, CONTEXT, UNTIL as "4 minutes from now" / "Forever"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "model/plan.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (timegm is not C11). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.frac]Z"; -1 if unparsable. */
static long long parse_rfc3339(const char *s)
{
    int y, mo, d, h, mi, se;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) != 6)
        return -1;
    return days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
}

/* Ollama's format.HumanTime for a time in the future. */
static void human_until(long long when, char *buf, size_t cap)
{
    long long d = when - (long long)time(NULL);
    if (when < 0) {
        snprintf(buf, cap, "Unknown");
        return;
    }
    if (d < 0) {
        snprintf(buf, cap, "Stopping...");
        return;
    }
    if (d > 20LL * 365 * 86400) {
        snprintf(buf, cap, "Forever");
        return;
    }
    if (d < 1)
        snprintf(buf, cap, "Less than a second from now");
    else if (d < 2)
        snprintf(buf, cap, "1 second from now");
    else if (d < 60)
        snprintf(buf, cap, "%lld seconds from now", d);
    else if (d < 120)
        snprintf(buf, cap, "About a minute from now");
    else if (d < 3600)
        snprintf(buf, cap, "%lld minutes from now", d / 60);
    else if (d < 7200)
        snprintf(buf, cap, "About an hour from now");
    else if (d < 86400)
        snprintf(buf, cap, "%lld hours from now", d / 3600);
    else
        snprintf(buf, cap, "%lld days from now", d / 86400);
}

int cmd_ps(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth ps\n\nLists the models a running `hearth serve` has loaded (HEARTH_HOST).");
            return 0;
        }
        fprintf(stderr, "hearth ps: unexpected argument '%s'\n", argv[i]);
        return EXIT_USAGE;
    }
    struct err e = {0};
    long st;
    json_t *reply;
    if (client_call("GET", "/api/ps", NULL, &st, &reply, &e)) {
        fprintf(stderr, "hearth ps: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    json_t *models = json_object_get(reply, "models");
    size_t w = 4, i;
    json_t *m;
    json_array_foreach(models, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name && strlen(name) > w)
            w = strlen(name);
    }
    printf("%-*s    %-12s    %-7s    %-9s    %-7s    %s\n", (int)w, "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL");
    json_array_foreach(models, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *digest = json_string_value(json_object_get(m, "digest"));
        json_int_t size = json_integer_value(json_object_get(m, "size"));
        json_int_t vram = json_integer_value(json_object_get(m, "size_vram"));
        char sz[32], proc[32], until[64];
        fmt_size((int64_t)size, sz, sizeof sz);
        plan_processor(size > 0 ? (uint64_t)size : 0, vram > 0 ? (uint64_t)vram : 0, proc, sizeof proc);
        human_until(parse_rfc3339(json_string_value(json_object_get(m, "expires_at"))), until, sizeof until);
        printf("%-*s    %-12.12s    %-7s    %-9s    %-7lld    %s\n", (int)w, name ? name : "?",
               digest ? digest : "", sz, proc, (long long)json_integer_value(json_object_get(m, "context_length")),
               until);
    }
    json_decref(reply);
    return 0;
}
