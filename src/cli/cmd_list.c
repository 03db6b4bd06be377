/* cmd_list.c — `hearth list [PREFIX]` (alias ls): GET /api/tags from the server (started on demand)
 * printed as Ollama's table (NAME, ID = first 12 hex of the manifest digest, SIZE in decimal units,
 * MODIFIED humanized: "About a minute ago", "4 days ago"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/client.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (timegm is not standard C). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Seconds since the epoch of an RFC 3339 time ("2024-05-01T12:00:00.5Z", "...+02:00"); -1 if not one. */
static int64_t parse_rfc3339(const char *s)
{
    int y, mo, d, h, mi, sec, used = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return -1;
    const char *p = s + used;
    if (*p == '.')
        while (*++p >= '0' && *p <= '9')
            ;
    int64_t off = 0;
    int oh, om;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
        off = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
}

/* Ollama's humanized duration: seconds up to a minute, then minutes, then rounded hours up to two
 * days, then days up to two weeks, weeks up to two months, months up to two years, then years. */
static void human_duration(int64_t secs, char *buf, size_t cap)
{
    if (secs < 1) {
        snprintf(buf, cap, "Less than a second");
        return;
    }
    if (secs < 60) {
        snprintf(buf, cap, secs == 1 ? "1 second" : "%lld seconds", (long long)secs);
        return;
    }
    int64_t mins = secs / 60;
    if (mins < 60) {
        snprintf(buf, cap, mins == 1 ? "About a minute" : "%lld minutes", (long long)mins);
        return;
    }
    int64_t hours = (secs + 1800) / 3600;
    if (hours == 1)
        snprintf(buf, cap, "About an hour");
    else if (hours < 48)
        snprintf(buf, cap, "%lld hours", (long long)hours);
    else if (hours < 24 * 14)
        snprintf(buf, cap, "%lld days", (long long)(hours / 24));
    else if (hours < 24 * 60)
        snprintf(buf, cap, "%lld weeks", (long long)(hours / (24 * 7)));
    else if (hours < 24 * 730)
        snprintf(buf, cap, "%lld months", (long long)(hours / (24 * 30)));
    else
        snprintf(buf, cap, "%lld years", (long long)(secs / (86400LL * 365)));
}

static void human_ago(const char *rfc3339, char *buf, size_t cap)
{
    int64_t t = parse_rfc3339(rfc3339);
    if (t < 0) {
        snprintf(buf, cap, "Unknown");
        return;
    }
    int64_t now = (int64_t)time(NULL);
    char d[48];
    human_duration(t > now ? t - now : now - t, d, sizeof d);
    snprintf(buf, cap, "%s %s", d, t > now ? "from now" : "ago");
}

int cmd_list(int argc, char **argv)
{
    const char *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth list [PREFIX]\n\nLists the models of the server's store (GET /api/tags; the server\n"
                 "is started if none answers at HEARTH_HOST).");
            return 0;
        }
        if (prefix) {
            fprintf(stderr, "hearth list: at most one PREFIX\n");
            return EXIT_USAGE;
        }
        prefix = argv[i];
    }
    struct err e = {0};
    json_t *reply = NULL;
    long st;
    if (client_connect(&e) || client_call("GET", "/api/tags", NULL, &st, &reply, &e)) {
        fprintf(stderr, "hearth list: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    json_t *models = json_object_get(reply, "models");
    size_t n = json_array_size(models);
    /* Like Go's tabwriter: each column as wide as its widest cell, then 4 spaces. */
    char (*cells)[4][512] = calloc(n + 1, sizeof *cells);
    if (!cells) {
        json_decref(reply);
        fprintf(stderr, "hearth list: out of memory\n");
        return EXIT_RUNTIME;
    }
    size_t rows = 0;
    snprintf(cells[0][0], 512, "NAME");
    snprintf(cells[0][1], 512, "ID");
    snprintf(cells[0][2], 512, "SIZE");
    snprintf(cells[0][3], 512, "MODIFIED");
    rows = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(models, i);
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!name || (prefix && strncasecmp(name, prefix, strlen(prefix)) != 0))
            continue;
        const char *digest = json_string_value(json_object_get(m, "digest"));
        snprintf(cells[rows][0], 512, "%s", name);
        snprintf(cells[rows][1], 512, "%.12s", digest ? digest : "");
        fmt_size((int64_t)json_integer_value(json_object_get(m, "size")), cells[rows][2], 512);
        human_ago(json_string_value(json_object_get(m, "modified_at")), cells[rows][3], 512);
        rows++;
    }
    int w[3] = {0, 0, 0};
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < 3; c++)
            if ((int)strlen(cells[r][c]) > w[c])
                w[c] = (int)strlen(cells[r][c]);
    for (size_t r = 0; r < rows; r++)
        printf("%-*s    %-*s    %-*s    %s\n", w[0], cells[r][0], w[1], cells[r][1], w[2], cells[r][2], cells[r][3]);
    free(cells);
    json_decref(reply);
    return 0;
}
