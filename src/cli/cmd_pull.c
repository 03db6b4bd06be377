/* cmd_pull.c — `hearth pull NAME [--insecure]` and `hearth push NAME [--insecure]`: transfer a model
 * between the store and a registry, showing one progress bar per layer on a terminal (bytes, rate,
 * ETA) and plain status lines otherwise. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"

struct bar {
    bool tty;
    char status[96];
    char digest[80];
    double start, last;
    uint64_t total, completed;
    int last_pct;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void human(double b, char *buf, size_t cap)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) {
        b /= 1000;
        i++;
    }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void bar_draw(struct bar *b, bool final)
{
    double el = now_s() - b->start;
    double rate = el > 0 ? (double)b->completed / el : 0;
    char done[32], tot[32], rt[32], eta[32] = "";
    human((double)b->completed, done, sizeof done);
    human((double)b->total, tot, sizeof tot);
    human(rate, rt, sizeof rt);
    if (rate > 0 && b->completed < b->total) {
        int s = (int)((double)(b->total - b->completed) / rate);
        snprintf(eta, sizeof eta, " %dm%02ds", s / 60, s % 60);
    }
    int pct = b->total ? (int)(100.0 * (double)b->completed / (double)b->total) : 100;
    if (b->tty) {
        char fill[26];
        int k = pct / 4;
        for (int i = 0; i < 25; i++)
            fill[i] = i < k ? '#' : ' ';
        fill[25] = '\0';
        fprintf(stderr, "\r%s %3d%% [%s] %s/%s %s/s%s\033[K%s", b->status, pct, fill, done, tot, rt, eta,
                final ? "\n" : "");
    } else if (final || pct / 25 != b->last_pct / 25) {
        fprintf(stderr, "%s %3d%% %s/%s %s/s\n", b->status, pct, done, tot, rt);
    }
    b->last_pct = pct;
    fflush(stderr);
}

static void on_progress(void *ctx, const char *status, const char *digest, uint64_t total, uint64_t completed)
{
    struct bar *b = ctx;
    bool same = digest && b->digest[0] && strcmp(b->digest, digest) == 0 && strcmp(b->status, status) == 0;
    if (!same && b->digest[0] && b->completed < b->total)
        bar_draw(b, true); /* close the previous layer's line */
    if (!digest) {
        b->digest[0] = '\0';
        fprintf(stderr, "%s\n", status);
        return;
    }
    if (!same) {
        snprintf(b->status, sizeof b->status, "%s", status);
        snprintf(b->digest, sizeof b->digest, "%s", digest);
        b->start = now_s();
        b->last = 0;
        b->last_pct = -100;
        b->completed = 0;
    }
    b->total = total;
    bool was_done = same && b->completed >= total;
    b->completed = completed;
    if (was_done)
        return;
    if (completed >= total)
        bar_draw(b, true);
    else if (now_s() - b->last > 0.1) {
        bar_draw(b, false);
        b->last = now_s();
    }
}

static int transfer(int argc, char **argv, bool push)
{
    const char *cmd = push ? "push" : "pull";
    const char *name = NULL;
    struct store_xfer_opts o = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--insecure") == 0) {
            o.insecure = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: hearth %s NAME [--insecure]\n  --insecure  allow plain http to the registry\n", cmd);
            return 0;
        } else if (argv[i][0] == '-' || name) {
            fprintf(stderr, "usage: hearth %s NAME [--insecure]\n", cmd);
            return EXIT_USAGE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        fprintf(stderr, "usage: hearth %s NAME [--insecure]\n", cmd);
        return EXIT_USAGE;
    }
    struct bar b = {.tty = isatty(2) != 0};
    o.progress = on_progress;
    o.progress_ctx = &b;
    struct err e = {0};
    struct store *s;
    if (store_open(NULL, &s, &e) || (push ? store_push(s, name, &o, &e) : store_pull(s, name, &o, &e))) {
        fprintf(stderr, "hearth %s: %s\n", cmd, e.msg);
        return EXIT_RUNTIME;
    }
    store_close(s);
    return 0;
}

int cmd_pull(int argc, char **argv)
{
    return transfer(argc, argv, false);
}

int cmd_push(int argc, char **argv)
{
    return transfer(argc, argv, true);
}
