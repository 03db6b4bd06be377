/* cmd_tokenize.c — `hearth tokenize (MODEL.gguf | tokenizer.json) TEXT [--special]` prints token ids as a
 * JSON array; `hearth detokenize (MODEL.gguf | tokenizer.json) IDS...` prints their text. Both load only
 * the vocabulary, never the weights' pages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A .json path is a Hugging Face tokenizer; anything else must be a GGUF. */
static int open_tokenizer(const char *path, struct tokenizer **tok, struct err *e)
{
    if (ends_with(path, ".json"))
        return tokenizer_from_json(path, tok, e);
    struct gguf_file *f = NULL;
    int rc = gguf_open(path, &f, e);
    if (rc)
        return rc;
    rc = tokenizer_from_gguf(f, tok, e);
    if (rc)
        err_prefix(e, "%s", path);
    gguf_close(f);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL, *text = NULL;
    bool special = false, add_special = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--special") == 0)
            special = true;
        else if (strcmp(argv[i], "--add-special") == 0)
            add_special = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth tokenize (MODEL.gguf | tokenizer.json) TEXT [--special] [--add-special]\n"
                 "  --special      parse special-token text such as <|im_start|> as special tokens\n"
                 "  --add-special  add BOS/EOS as the vocabulary's metadata asks");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "hearth tokenize: unknown flag '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else if (!path)
            path = argv[i];
        else if (!text)
            text = argv[i];
        else {
            fprintf(stderr, "hearth tokenize: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path || !text) {
        fprintf(stderr, "usage: hearth tokenize (MODEL.gguf | tokenizer.json) TEXT [--special]\n");
        return EXIT_USAGE;
    }
    struct err e = {0};
    struct tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (open_tokenizer(path, &tok, &e) ||
        tokenizer_encode(tok, text, strlen(text), add_special, special, &ids, &n, &e)) {
        fprintf(stderr, "hearth tokenize: %s\n", e.msg);
        tokenizer_free(tok);
        return EXIT_RUNTIME;
    }
    putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(i ? ", %d" : "%d", ids[i]);
    puts("]");
    free(ids);
    tokenizer_free(tok);
    return 0;
}

int cmd_detokenize(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout, "usage: hearth detokenize (MODEL.gguf | tokenizer.json) ID...\n");
        return argc < 2 ? EXIT_USAGE : 0;
    }
    size_t cap = 64, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return EXIT_RUNTIME;
    for (int i = 2; i < argc; i++) {
        /* Accept "1 2 3", "1,2,3" and "[1, 2, 3]". */
        char *s = argv[i];
        while (*s) {
            while (*s == '[' || *s == ']' || *s == ',' || *s == ' ')
                s++;
            if (!*s)
                break;
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s || v < 0 || v > 0x7fffffff) {
                fprintf(stderr, "hearth detokenize: '%s' is not a token id\n", argv[i]);
                free(ids);
                return EXIT_USAGE;
            }
            if (n == cap) {
                int32_t *grown = realloc(ids, (cap *= 2) * sizeof *ids);
                if (!grown) {
                    free(ids);
                    return EXIT_RUNTIME;
                }
                ids = grown;
            }
            ids[n++] = (int32_t)v;
            s = end;
        }
    }
    struct err e = {0};
    struct tokenizer *tok = NULL;
    char *text = NULL;
    int status = 0;
    if (open_tokenizer(argv[1], &tok, &e) || tokenizer_decode(tok, ids, n, true, &text, &e)) {
        fprintf(stderr, "hearth detokenize: %s\n", e.msg);
        status = EXIT_RUNTIME;
    } else {
        fputs(text, stdout);
        putchar('\n');
    }
    free(text);
    free(ids);
    tokenizer_free(tok);
    return status;
}
