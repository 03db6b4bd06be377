/* encode.c — tokenizer_encode: BOS, the split on special tokens, normalization, then SPM, BPE or
 * WordPiece on each stretch of plain text, then EOS. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

int tok_ids_push(struct tok_ids *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 64;
        int32_t *nv = realloc(o->v, c * sizeof *nv);
        if (!nv)
            return ERR_NOMEM;
        o->v = nv;
        o->cap = c;
    }
    o->v[o->n++] = id;
    return 0;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t **ids, size_t *n_ids, struct err *e)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len)
        return err_set(e, ERR_INVALID, "tokenizer_encode: text is NULL");
    struct tok_ids out = {0};
    struct tok_scratch s = {0};
    struct tok_frag *frags = NULL;
    size_t nf = 0;
    int rc = 0;
    if (add_special && t->add_bos && t->bos >= 0 && tok_ids_push(&out, t->bos)) {
        rc = err_set(e, ERR_NOMEM, "out of memory encoding");
        goto done;
    }
    if (len) {
        rc = special_partition(t, text, len, parse_special, &frags, &nf, e);
        if (rc)
            goto done;
    }
    bool prev_special = true; /* SPM: the first stretch and every stretch after a special token get the space prefix */
    for (size_t f = 0; f < nf; f++) {
        if (frags[f].id >= 0) {
            if (tok_ids_push(&out, frags[f].id)) {
                rc = err_set(e, ERR_NOMEM, "out of memory encoding");
                goto done;
            }
            prev_special = true;
            continue;
        }
        const char *p = text + frags[f].off;
        size_t n = frags[f].len;
        char *norm = NULL;
        size_t norm_len = 0;
        if (t->nfc && uni_nfc(p, n, &norm, &norm_len)) {
            p = norm;
            n = norm_len;
        }
        if (t->kind == TOK_KIND_SPM)
            rc = spm_encode(t, &s, p, n, t->add_space_prefix && prev_special, &out, e);
        else if (t->kind == TOK_KIND_WPM)
            rc = wpm_encode(t, p, n, &out, e);
        else
            rc = bpe_encode(t, &s, p, n, &out, e);
        free(norm);
        if (rc)
            goto done;
        prev_special = false;
    }
    if (add_special && t->add_eos && t->eos >= 0 && tok_ids_push(&out, t->eos)) {
        rc = err_set(e, ERR_NOMEM, "out of memory encoding");
        goto done;
    }
done:
    free(frags);
    tok_scratch_free(&s);
    if (rc) {
        free(out.v);
        return rc;
    }
    if (!out.v) {
        out.v = malloc(sizeof(int32_t)); /* callers may always free *ids */
        if (!out.v)
            return err_set(e, ERR_NOMEM, "out of memory encoding");
    }
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}
