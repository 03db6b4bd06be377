/* bpe.c — byte-level BPE (GPT-2 style): each pre-token's bytes start as one symbol per byte (the
 * token of that byte's byte-level character); the adjacent pair with the best merge rank merges
 * first (leftmost on ties), using a binary heap with lazy invalidation so long words stay
 * O(n log n). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/merge_queue.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

struct bpe_sym {
    int32_t id;
    int32_t prev, next;
};

static void try_pair(const struct tokenizer *t, const struct bpe_sym *sym, struct tok_merge *heap,
                     size_t *nh, int32_t left)
{
    if (left < 0 || sym[left].next < 0)
        return;
    int32_t lid = sym[left].id, rid = sym[sym[left].next].id, res;
    uint32_t rank = tok_merge_rank(t, lid, rid, &res);
    if (rank != UINT32_MAX)
        tok_merge_push(heap, nh, (struct tok_merge){-(double)rank, (uint32_t)left, lid, rid, res});
}

/* Encodes one pre-token. */
static int bpe_word(const struct tokenizer *t, struct tok_scratch *s, const char *w, size_t n,
                    struct tok_ids *out, struct err *e)
{
    if (t->ignore_merges) {
        /* Whole-word lookup on the byte-level spelling. */
        if (tok_grow((void **)&s->buf, &s->buf_cap, n * 2 + 1))
            return err_set(e, ERR_NOMEM, "out of memory encoding");
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += uni_encode(uni_byte_to_cp((uint8_t)w[i]), s->buf + k);
        int32_t id = tok_lookup(t, s->buf, k);
        if (id >= 0 && (t->type[id] == TOK_NORMAL || t->type[id] == TOK_USER))
            return tok_ids_push(out, id) ? err_set(e, ERR_NOMEM, "out of memory encoding") : 0;
    }
    if (tok_grow(&s->sym, &s->sym_cap, n * sizeof(struct bpe_sym)) ||
        tok_grow(&s->heap, &s->heap_cap, (n + 1) * 3 * sizeof(struct tok_merge)))
        return err_set(e, ERR_NOMEM, "out of memory encoding");
    struct bpe_sym *sym = s->sym;
    struct tok_merge *heap = s->heap;
    size_t heap_max = s->heap_cap / sizeof(struct tok_merge);
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i].id = t->byte_id[(uint8_t)w[i]];
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        try_pair(t, sym, heap, &nh, (int32_t)i);
    while (nh > 0) {
        struct tok_merge p = tok_merge_pop(heap, &nh);
        struct bpe_sym *l = &sym[p.left];
        if (l->id != p.left_key || l->next < 0 || sym[l->next].id != p.right_key)
            continue; /* stale: one side has merged since */
        struct bpe_sym *r = &sym[l->next];
        l->id = p.result;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = (int32_t)p.left;
        r->id = -2; /* removed */
        /* Every merge removes a symbol and adds at most two pairs, so the heap never outgrows
         * 3n; the check only guards that arithmetic. */
        if (nh + 2 > heap_max)
            return err_set(e, ERR_INVALID, "BPE work queue overflow");
        try_pair(t, sym, heap, &nh, l->prev);
        try_pair(t, sym, heap, &nh, (int32_t)p.left);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = sym[i].next) {
        int32_t id = sym[i].id;
        if (id < 0)
            id = t->unk; /* a byte whose character is missing from the vocabulary */
        if (id >= 0 && tok_ids_push(out, id))
            return err_set(e, ERR_NOMEM, "out of memory encoding");
    }
    return 0;
}

int bpe_encode(const struct tokenizer *t, struct tok_scratch *s, const char *text, size_t len,
               struct tok_ids *out, struct err *e)
{
    struct tok_span *spans;
    size_t n;
    int rc = pretok_split(t, s, text, len, &spans, &n, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        /* spans lives in the scratch, which bpe_word does not touch. */
        rc = bpe_word(t, s, text + spans[i].off, spans[i].len, out, e);
        if (rc)
            return rc;
    }
    return 0;
}
