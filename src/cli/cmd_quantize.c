/* cmd_quantize.c — `hearth quantize IN.gguf OUT.gguf TYPE`: rewrites a model's weights into one of
 * llama.cpp's quantization mixes, with a progress line on a terminal. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"

static void progress(void *ctx, const char *status, uint64_t done, uint64_t total)
{
    (void)ctx;
    if (total)
        fprintf(stderr, "\r\033[K[%llu/%llu] %s", (unsigned long long)done, (unsigned long long)total, status);
    if (total && done == total)
        fputc('\n', stderr);
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3];
    int np = 0;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth quantize IN.gguf OUT.gguf TYPE [--threads N]\n\n"
                 "TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K\n"
                 "Per-tensor types follow llama.cpp's llama-quantize for the same TYPE.");
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            if (!opt_int("quantize", "--threads", v, 1, 1024, &threads))
                return EXIT_USAGE;
        } else if (np < 3) {
            pos[np++] = argv[i];
        } else {
            fprintf(stderr, "hearth quantize: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (np != 3) {
        fprintf(stderr, "usage: hearth quantize IN.gguf OUT.gguf TYPE\n");
        return EXIT_USAGE;
    }
    struct err e = {0};
    enum store_ftype ft;
    if (store_ftype_parse(pos[2], &ft, &e)) {
        fprintf(stderr, "hearth quantize: %s\n", e.msg);
        return EXIT_USAGE;
    }
    if (store_quantize_file(pos[0], pos[1], ft, (int)threads, isatty(2) ? progress : NULL, NULL, &e)) {
        fprintf(stderr, "hearth quantize: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    return 0;
}
