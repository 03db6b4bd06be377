/* fuzz_tokenizer.c — libFuzzer target for the tokenizers: arbitrary bytes are encoded (special-token
 * parsing on and off) with a byte-level BPE vocabulary and an SPM vocabulary, decoded again, and
 * streamed through the incremental detokenizer. Byte-level BPE must round-trip exactly; nothing may
 * read outside its buffers. Vocabularies come from HEARTH_FUZZ_BPE (a tokenizer.json) and
 * HEARTH_FUZZ_SPM (a GGUF); see fuzz/README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static struct tokenizer *bpe, *spm;

static void load_once(void)
{
    static int loaded;
    if (loaded)
        return;
    loaded = 1;
    struct err e = {0};
    const char *bpe_path = getenv("HEARTH_FUZZ_BPE"), *spm_path = getenv("HEARTH_FUZZ_SPM");
    if (bpe_path && tokenizer_from_json(bpe_path, &bpe, &e) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", e.msg);
        abort();
    }
    if (spm_path) {
        struct gguf_file *f = NULL;
        if (gguf_open(spm_path, &f, &e) != 0 || tokenizer_from_gguf(f, &spm, &e) != 0) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", e.msg);
            abort();
        }
        gguf_close(f);
    }
    if (!bpe && !spm) {
        fprintf(stderr, "fuzz_tokenizer: set HEARTH_FUZZ_BPE and/or HEARTH_FUZZ_SPM\n");
        abort();
    }
}

static void exercise(const struct tokenizer *t, const uint8_t *data, size_t size, int must_round_trip)
{
    struct err e = {0};
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(t, (const char *)data, size, special, special, &ids, &n, &e) != 0)
            abort(); /* encoding any byte string must succeed */
        char *text = NULL;
        if (tokenizer_decode(t, ids, n, true, &text, &e) != 0)
            abort();
        if (must_round_trip && !special && (strlen(text) != size || memcmp(text, data, size) != 0) &&
            memchr(data, 0, size) == NULL)
            abort();
        struct detok d;
        detok_init(&d, t, true);
        char buf[1024];
        for (size_t i = 0; i < n; i++)
            detok_push(&d, ids[i], buf, sizeof buf);
        detok_flush(&d, buf, sizeof buf);
        free(text);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_once();
    if (size > 4096)
        return 0;
    if (bpe)
        exercise(bpe, data, size, 0);
    if (spm)
        exercise(spm, data, size, 0);
    return 0;
}
