/* vocab_gguf.c — tokenizer_from_gguf: builds a tokenizer from a GGUF's tokenizer.ggml.* metadata
 * (model, pre, tokens, scores, token_type, merges, special ids and the add_* flags; model "bert" is
 * WordPiece), with the same defaults llama.cpp uses when a key is absent. */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tok_internal.h"

static int get_id(const struct gguf_file *f, const char *key, int32_t n_vocab, int32_t *out, struct err *e)
{
    int64_t v;
    int rc = gguf_get_i64(f, key, &v, e);
    if (rc == ERR_NOTFOUND) {
        err_clear(e);
        return 0;
    }
    if (rc)
        return rc;
    /* Converters write out-of-range ids (e.g. -1 or n_vocab) to mean "none". */
    *out = v >= 0 && v < n_vocab ? (int32_t)v : -1;
    return 0;
}

static int get_flag(const struct gguf_file *f, const char *key, bool *out, struct err *e)
{
    int rc = gguf_get_bool(f, key, out, e);
    if (rc == ERR_NOTFOUND) {
        err_clear(e);
        return 0;
    }
    return rc;
}

int tokenizer_from_gguf(const struct gguf_file *f, struct tokenizer **out, struct err *e)
{
    *out = NULL;
    struct gguf_str model;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model, e);
    if (rc)
        return err_prefix(e, "%s: no tokenizer", f->path ? f->path : "gguf");
    enum tok_kind kind;
    if (gguf_str_eq(model, "llama"))
        kind = TOK_KIND_SPM;
    else if (gguf_str_eq(model, "gpt2"))
        kind = TOK_KIND_BPE;
    else if (gguf_str_eq(model, "bert"))
        kind = TOK_KIND_WPM;
    else
        return err_set(e, ERR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%.*s\" is not supported (hearth runs \"llama\", \"gpt2\" and \"bert\")",
                       f->path ? f->path : "gguf", (int)(model.len > 64 ? 64 : model.len), model.ptr);

    const struct gguf_array *toks, *scores = NULL, *types = NULL, *merges = NULL;
    rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, e);
    if (rc)
        return err_prefix(e, "%s", f->path ? f->path : "gguf");
    if (toks->n == 0 || toks->n > (1u << 24))
        return err_set(e, ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", f->path ? f->path : "gguf",
                       (unsigned long long)toks->n);
    int32_t n = (int32_t)toks->n;
    const char *optional[3] = {"tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"};
    const struct gguf_array **dst[3] = {&scores, &types, &merges};
    uint32_t want[3] = {GGUF_TYPE_FLOAT32, GGUF_TYPE_INT32, GGUF_TYPE_STRING};
    for (int i = 0; i < 3; i++) {
        rc = gguf_get_arr(f, optional[i], want[i], dst[i], e);
        if (rc == ERR_NOTFOUND) {
            err_clear(e);
            *dst[i] = NULL;
            continue;
        }
        if (rc)
            return err_prefix(e, "%s", f->path ? f->path : "gguf");
        if (i < 2 && (*dst[i])->n != toks->n)
            return err_set(e, ERR_FORMAT, "%s: %s has %llu entries but there are %d tokens", f->path ? f->path : "gguf",
                           optional[i], (unsigned long long)(*dst[i])->n, (int)n);
    }

    struct tokenizer *t;
    rc = tok_new(n, kind, &t, e);
    if (rc)
        return rc;
    for (int32_t id = 0; id < n; id++) {
        float score = scores ? gguf_arr_f32(scores, (uint64_t)id) : 0.0f;
        int32_t ty = types ? gguf_arr_i32(types, (uint64_t)id) : TOK_NORMAL;
        if (ty < TOK_NORMAL || ty > TOK_BYTE)
            ty = TOK_NORMAL; /* 0 (undefined) and unknown values read as ordinary text */
        rc = tok_set(t, id, toks->strs[id].ptr, (size_t)toks->strs[id].len, score, (uint8_t)ty, e);
        if (rc)
            goto fail;
    }
    rc = tok_index(t, e);
    if (rc)
        goto fail;

    if (kind == TOK_KIND_BPE) {
        if (!merges) {
            rc = err_set(e, ERR_FORMAT, "%s: a gpt2 tokenizer needs tokenizer.ggml.merges", f->path ? f->path : "gguf");
            goto fail;
        }
        for (uint64_t i = 0; i < merges->n; i++) {
            const char *s = merges->strs[i].ptr;
            size_t len = (size_t)merges->strs[i].len;
            /* "left right": byte-level tokens never contain a plain space, so the first one splits. */
            const char *sp = memchr(s + (len ? 1 : 0), ' ', len ? len - 1 : 0);
            if (!sp) {
                rc = err_set(e, ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] has no space separating its two parts",
                             f->path ? f->path : "gguf", (unsigned long long)i);
                goto fail;
            }
            rc = tok_add_merge(t, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp - s) - 1, (uint32_t)i, e);
            if (rc)
                goto fail;
        }
        struct gguf_str pre = {0};
        char prebuf[64] = "default";
        rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre, e);
        if (rc == 0) {
            size_t l = pre.len < sizeof prebuf - 1 ? (size_t)pre.len : sizeof prebuf - 1;
            memcpy(prebuf, pre.ptr, l);
            prebuf[l] = '\0';
        } else if (rc == ERR_NOTFOUND) {
            err_clear(e);
        } else {
            goto fail;
        }
        rc = pretok_from_name(t, prebuf, e);
        if (rc) {
            err_prefix(e, "%s", f->path ? f->path : "gguf");
            goto fail;
        }
        t->add_space_prefix = false;
        /* llama 3 style vocabularies add BOS unless the metadata says otherwise. */
        t->add_bos = t->ignore_merges;
    } else if (kind == TOK_KIND_WPM) {
        /* BERT: [CLS] text [SEP]; llama.cpp's converter names them cls/seperator (sic), and does not
         * record casing, so uncased (the common BERT vocabulary) unless do_lower_case says otherwise. */
        t->add_space_prefix = false;
        t->add_bos = t->add_eos = true;
        t->wpm_lowercase = true;
        t->unk = tok_lookup(t, "[UNK]", 5);
        t->bos = tok_lookup(t, "[CLS]", 5);
        t->eos = tok_lookup(t, "[SEP]", 5);
        if ((rc = get_id(f, "tokenizer.ggml.cls_token_id", n, &t->bos, e)) ||
            (rc = get_id(f, "tokenizer.ggml.seperator_token_id", n, &t->eos, e)) ||
            (rc = get_flag(f, "tokenizer.ggml.do_lower_case", &t->wpm_lowercase, e))) {
            err_prefix(e, "%s", f->path ? f->path : "gguf");
            goto fail;
        }
    } else {
        t->add_space_prefix = true;
        t->add_bos = true;
        t->unk = 0;
        t->bos = 1;
        t->eos = 2;
    }

    if ((rc = get_id(f, "tokenizer.ggml.bos_token_id", n, &t->bos, e)) ||
        (rc = get_id(f, "tokenizer.ggml.eos_token_id", n, &t->eos, e)) ||
        (rc = get_id(f, "tokenizer.ggml.eot_token_id", n, &t->eot, e)) ||
        (rc = get_id(f, "tokenizer.ggml.eom_token_id", n, &t->eom, e)) ||
        (rc = get_id(f, "tokenizer.ggml.unknown_token_id", n, &t->unk, e)) ||
        (rc = get_id(f, "tokenizer.ggml.padding_token_id", n, &t->pad, e)) ||
        (rc = get_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos, e)) ||
        (rc = get_flag(f, "tokenizer.ggml.add_eos_token", &t->add_eos, e)) ||
        (rc = get_flag(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, e))) {
        err_prefix(e, "%s", f->path ? f->path : "gguf");
        goto fail;
    }
    rc = tok_finish(t, e);
    if (rc)
        goto fail;
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return rc;
}
