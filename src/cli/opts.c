/* opts.c — strict flag-value parsing and duration and size formatting shared by the commands. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

bool opt_int(const char *cmd, const char *flag, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "hearth %s: %s: '%s' is not a whole number\n", cmd, flag, s);
        return false;
    }
    if (v < min || v > max) {
        fprintf(stderr, "hearth %s: %s: %ld is out of range (%ld..%ld)\n", cmd, flag, v, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool opt_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "hearth %s: %s: '%s' is not a number\n", cmd, flag, s);
        return false;
    }
    if (v < min || v > max) {
        fprintf(stderr, "hearth %s: %s: %g is out of range (%g..%g)\n", cmd, flag, v, min, max);
        return false;
    }
    *out = v;
    return true;
}

const char *opt_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    const char *a = argv[*i];
    if (strncmp(a, flag, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        static const char missing[] = "";
        return missing; /* callers treat "" as "value missing" */
    }
    return argv[++*i];
}

bool opt_kv_type(const char *cmd, const char *s, enum kv_type *out)
{
    if (strcmp(s, "f16") == 0 || strcmp(s, "F16") == 0)
        *out = KV_F16;
    else if (strcmp(s, "f32") == 0 || strcmp(s, "F32") == 0)
        *out = KV_F32;
    else {
        fprintf(stderr, "hearth %s: --kv-type: '%s' is not a KV cache type (f16 or f32)\n", cmd, s);
        return false;
    }
    return true;
}

void fmt_duration(int64_t ns, char *buf, unsigned cap)
{
    if (ns < 1000)
        snprintf(buf, cap, "%lldns", (long long)ns);
    else if (ns < 1000000)
        snprintf(buf, cap, "%.3fµs", ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, cap, "%.6gms", ns / 1e6);
    else if (ns < 60LL * 1000000000)
        snprintf(buf, cap, "%.9gs", ns / 1e9);
    else
        snprintf(buf, cap, "%lldm%.6gs", (long long)(ns / 60000000000LL), (ns % 60000000000LL) / 1e9);
}

void fmt_size(int64_t bytes, char *buf, unsigned cap)
{
    static const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%lld B", (long long)bytes);
    else if (v >= 10)
        snprintf(buf, cap, "%d %s", (int)v, units[u]);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
}
