/* spm.c — SentencePiece-style BPE (tokenizer.ggml.model "llama"): spaces become U+2581, a leading
 * U+2581 is added where SentencePiece adds one, symbols start as single characters, and the adjacent
 * pair whose concatenation is the best-scoring token merges first (or, for a tokenizer.json that
 * lists merges, the best-ranked merge). Characters that never became a token fall back to their
 * <0xXX> byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/merge_queue.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

struct spm_sym {
    uint32_t start, len;
    int32_t id; /* token of exactly this text, or -1 */
    int32_t prev, next;
};

static void try_pair(const struct tokenizer *t, const char *buf, const struct spm_sym *sym,
                     struct tok_merge *heap, size_t *nh, int32_t left)
{
    if (left < 0 || sym[left].next < 0)
        return;
    const struct spm_sym *l = &sym[left], *r = &sym[l->next];
    /* Lengths identify the symbols: a side that has merged since has grown. */
    struct tok_merge p = {0, (uint32_t)left, (int32_t)l->len, (int32_t)r->len, -1};
    if (t->spm_merges) {
        uint32_t rank = tok_merge_rank(t, l->id, r->id, &p.result);
        if (rank == UINT32_MAX)
            return;
        p.priority = -(double)rank;
    } else {
        int32_t id = tok_lookup(t, buf + l->start, l->len + r->len);
        /* Only ordinary pieces come out of merging; control, byte and unused tokens are never
         * spelled by text. */
        if (id < 0 || t->type[id] != TOK_NORMAL)
            return;
        p.priority = t->scores[id];
        p.result = id;
    }
    tok_merge_push(heap, nh, p);
}

int spm_encode(const struct tokenizer *t, struct tok_scratch *s, const char *text, size_t len,
               bool space_prefix, struct tok_ids *out, struct err *e)
{
    static const char meta[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's visible space */
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    size_t n = len + 2 * spaces + (space_prefix ? 3 : 0);
    if (n == 0)
        return 0;
    if (tok_grow((void **)&s->buf, &s->buf_cap, n + 1) || tok_grow(&s->sym, &s->sym_cap, n * sizeof(struct spm_sym)) ||
        tok_grow(&s->heap, &s->heap_cap, (n + 1) * 3 * sizeof(struct tok_merge)))
        return err_set(e, ERR_NOMEM, "out of memory encoding");
    char *buf = s->buf;
    size_t k = 0;
    if (space_prefix) {
        memcpy(buf, meta, 3);
        k = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + k, meta, 3);
            k += 3;
        } else {
            buf[k++] = text[i];
        }
    }
    struct spm_sym *sym = s->sym;
    struct tok_merge *heap = s->heap;
    size_t nsym = 0, nh = 0;
    for (size_t i = 0; i < k;) {
        uint32_t cp;
        size_t cl = uni_decode(buf + i, k - i, &cp);
        if (cl == 0)
            cl = 1; /* an invalid byte is a symbol of its own, encoded as its byte token */
        sym[nsym] = (struct spm_sym){(uint32_t)i, (uint32_t)cl, tok_lookup(t, buf + i, cl), (int32_t)nsym - 1,
                                     i + cl < k ? (int32_t)nsym + 1 : -1};
        nsym++;
        i += cl;
    }
    for (size_t i = 0; i + 1 < nsym; i++)
        try_pair(t, buf, sym, heap, &nh, (int32_t)i);
    while (nh > 0) {
        struct tok_merge p = tok_merge_pop(heap, &nh);
        struct spm_sym *l = &sym[p.left];
        if ((int32_t)l->len != p.left_key || l->next < 0 || (int32_t)sym[l->next].len != p.right_key)
            continue; /* stale */
        struct spm_sym *r = &sym[l->next];
        l->len += r->len;
        l->id = p.result;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = (int32_t)p.left;
        r->len = 0;
        try_pair(t, buf, sym, heap, &nh, l->prev);
        try_pair(t, buf, sym, heap, &nh, (int32_t)p.left);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = sym[i].id;
        if (id >= 0 && t->type[id] != TOK_CONTROL && t->type[id] != TOK_UNUSED) {
            if (tok_ids_push(out, id))
                return err_set(e, ERR_NOMEM, "out of memory encoding");
            continue;
        }
        for (uint32_t b = 0; b < sym[i].len; b++) {
            int32_t bid = t->byte_id[(uint8_t)buf[sym[i].start + b]];
            if (bid < 0)
                bid = t->unk;
            if (bid >= 0 && tok_ids_push(out, bid))
                return err_set(e, ERR_NOMEM, "out of memory encoding");
            if (bid == t->unk && t->byte_id[(uint8_t)buf[sym[i].start + b]] < 0)
                break; /* one <unk> for the whole character, as SentencePiece does */
        }
    }
    return 0;
}
