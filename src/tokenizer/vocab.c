/* vocab.c — the vocabulary table every tokenizer kind shares: token strings in one arena, a hash
 * index from string to id, the merge-rank table, special-token and end-of-generation sets, and the
 * public accessors. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

static uint64_t hash_bytes(const char *s, size_t n)
{
    /* 64-bit FNV-1a over 8-byte words, then a final avalanche: fast enough for building a 150k
     * vocabulary and for per-symbol lookups while encoding. */
    uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x9E3779B97F4A7C15ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

int tok_new(int32_t n, enum tok_kind kind, struct tokenizer **out, struct err *e)
{
    *out = NULL;
    if (n <= 0 || n > (1 << 24))
        return err_set(e, ERR_FORMAT, "vocabulary size %d is out of range (1..16777216)", (int)n);
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(e, ERR_NOMEM, "out of memory allocating a tokenizer");
    t->kind = kind;
    t->n_vocab = n;
    t->off = calloc((size_t)n, sizeof *t->off);
    t->len = calloc((size_t)n, sizeof *t->len);
    t->scores = calloc((size_t)n, sizeof *t->scores);
    t->type = malloc((size_t)n);
    t->attr = calloc((size_t)n, 1);
    t->arena_cap = (size_t)n * 8 + 64;
    t->arena = malloc(t->arena_cap);
    if (!t->off || !t->len || !t->scores || !t->type || !t->attr || !t->arena) {
        tokenizer_free(t);
        return err_set(e, ERR_NOMEM, "out of memory allocating a vocabulary of %d tokens", (int)n);
    }
    memset(t->type, TOK_NORMAL, (size_t)n);
    t->arena[0] = '\0';
    t->arena_len = 1; /* offset 0 is the shared empty string */
    t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = -1;
    *out = t;
    return 0;
}

int tok_set(struct tokenizer *t, int32_t id, const char *s, size_t n, float score, uint8_t type,
            struct err *e)
{
    if (id < 0 || id >= t->n_vocab)
        return err_set(e, ERR_RANGE, "token id %d is outside the vocabulary of %d", (int)id,
                       (int)t->n_vocab);
    if (n > 0xFFFFFF)
        return err_set(e, ERR_FORMAT, "token %d is %zu bytes long", (int)id, n);
    if (t->arena_len + n + 1 > t->arena_cap) {
        size_t cap = t->arena_cap * 2;
        while (cap < t->arena_len + n + 1)
            cap *= 2;
        if (cap > UINT32_MAX)
            return err_set(e, ERR_RANGE, "vocabulary strings exceed 4 GiB");
        char *a = realloc(t->arena, cap);
        if (!a)
            return err_set(e, ERR_NOMEM, "out of memory storing token strings");
        t->arena = a;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, n);
    t->arena[t->arena_len + n] = '\0';
    t->off[id] = (uint32_t)t->arena_len;
    t->len[id] = (uint32_t)n;
    t->arena_len += n + 1;
    t->scores[id] = score;
    t->type[id] = type;
    if (n > t->max_token_len)
        t->max_token_len = (uint32_t)n;
    return 0;
}

int tok_index(struct tokenizer *t, struct err *e)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)t->n_vocab * 2)
        cap *= 2;
    free(t->map.slots);
    t->map.slots = calloc(cap, sizeof(uint32_t));
    if (!t->map.slots)
        return err_set(e, ERR_NOMEM, "out of memory indexing the vocabulary");
    t->map.mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = tok_text(t, id);
        uint32_t h = (uint32_t)hash_bytes(s, t->len[id]) & t->map.mask;
        for (;;) {
            uint32_t v = t->map.slots[h];
            if (v == 0) {
                t->map.slots[h] = (uint32_t)id + 1;
                break;
            }
            /* A duplicate string keeps its first (lowest) id, as the reference tokenizers do. */
            if (t->len[v - 1] == t->len[id] && memcmp(tok_text(t, v - 1), s, t->len[id]) == 0)
                break;
            h = (h + 1) & t->map.mask;
        }
    }
    return 0;
}

int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n)
{
    if (!t->map.slots)
        return -1;
    uint32_t h = (uint32_t)hash_bytes(s, n) & t->map.mask;
    for (;;) {
        uint32_t v = t->map.slots[h];
        if (v == 0)
            return -1;
        if (t->len[v - 1] == n && memcmp(tok_text(t, v - 1), s, n) == 0)
            return (int32_t)v - 1;
        h = (h + 1) & t->map.mask;
    }
}

static int pairmap_grow(struct tok_pairmap *m, struct err *e)
{
    uint32_t cap = m->mask ? (m->mask + 1) * 2 : 1024;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint32_t *rank = malloc(cap * sizeof *rank);
    int32_t *result = malloc(cap * sizeof *result);
    if (!keys || !rank || !result) {
        free(keys);
        free(rank);
        free(result);
        return err_set(e, ERR_NOMEM, "out of memory building the merge table");
    }
    for (uint32_t i = 0; m->mask && i <= m->mask; i++) {
        if (!m->keys[i])
            continue;
        uint32_t h = (uint32_t)hash_u64(m->keys[i]) & (cap - 1);
        while (keys[h])
            h = (h + 1) & (cap - 1);
        keys[h] = m->keys[i];
        rank[h] = m->rank[i];
        result[h] = m->result[i];
    }
    free(m->keys);
    free(m->rank);
    free(m->result);
    m->keys = keys;
    m->rank = rank;
    m->result = result;
    m->mask = cap - 1;
    return 0;
}

int tok_add_merge(struct tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                  uint32_t rank, struct err *e)
{
    int32_t l = tok_lookup(t, a, na), r = tok_lookup(t, b, nb);
    if (l < 0 || r < 0)
        return 0;
    char stackbuf[256];
    char *cat = na + nb <= sizeof stackbuf ? stackbuf : malloc(na + nb);
    if (!cat)
        return err_set(e, ERR_NOMEM, "out of memory reading merges");
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    int32_t res = tok_lookup(t, cat, na + nb);
    if (cat != stackbuf)
        free(cat);
    if (res < 0)
        return 0;
    struct tok_pairmap *m = &t->merges;
    if (!m->mask || (m->count + 1) * 2 > m->mask + 1) {
        int rc = pairmap_grow(m, e);
        if (rc)
            return rc;
    }
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    uint32_t h = (uint32_t)hash_u64(key) & m->mask;
    while (m->keys[h]) {
        if (m->keys[h] == key)
            return 0; /* the first (best-ranked) occurrence wins */
        h = (h + 1) & m->mask;
    }
    m->keys[h] = key;
    m->rank[h] = rank;
    m->result[h] = res;
    m->count++;
    return 0;
}

uint32_t tok_merge_rank(const struct tokenizer *t, int32_t left, int32_t right, int32_t *result)
{
    const struct tok_pairmap *m = &t->merges;
    if (!m->mask || left < 0 || right < 0)
        return UINT32_MAX;
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t h = (uint32_t)hash_u64(key) & m->mask;
    while (m->keys[h]) {
        if (m->keys[h] == key) {
            *result = m->result[h];
            return m->rank[h];
        }
        h = (h + 1) & m->mask;
    }
    return UINT32_MAX;
}

/* Sort key for the special-token table (kept beside the id so qsort needs no global context and
 * two tokenizers can load on different threads). */
struct special_key {
    unsigned char first;
    uint32_t len;
    int32_t id;
};

static int cmp_special(const void *pa, const void *pb)
{
    const struct special_key *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : (a->id > b->id);
}

/* Texts that end a turn in the chat formats hearth knows, for vocabularies whose metadata names
 * only EOS. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "<|EOT|>", "_<EOT>", "<|end_of_text|>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<|return|>", "<|call|>",
};

int tok_finish(struct tokenizer *t, struct err *e)
{
    if (!t->map.slots) {
        int rc = tok_index(t, e);
        if (rc)
            return rc;
    }
    for (int b = 0; b < 256; b++) {
        if (t->kind == TOK_KIND_SPM) {
            char name[8];
            static const char hex[] = "0123456789ABCDEF";
            name[0] = '<';
            name[1] = '0';
            name[2] = 'x';
            name[3] = hex[b >> 4];
            name[4] = hex[b & 15];
            name[5] = '>';
            t->byte_id[b] = tok_lookup(t, name, 6);
        } else {
            char u[4];
            size_t n = uni_encode(uni_byte_to_cp((uint8_t)b), u);
            t->byte_id[b] = tok_lookup(t, u, n);
        }
    }

    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if ((ty == TOK_CONTROL || ty == TOK_USER || ty == TOK_UNKNOWN) && t->len[id] > 0)
            n++;
    }
    free(t->special);
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    struct special_key *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!t->special || !keys) {
        free(keys);
        return err_set(e, ERR_NOMEM, "out of memory listing special tokens");
    }
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if ((ty == TOK_CONTROL || ty == TOK_USER || ty == TOK_UNKNOWN) && t->len[id] > 0)
            keys[n++] = (struct special_key){(unsigned char)tok_text(t, id)[0], t->len[id], id};
    }
    qsort(keys, n, sizeof *keys, cmp_special);
    for (size_t i = 0; i < n; i++)
        t->special[i] = keys[i].id;
    free(keys);
    t->n_special = n;
    size_t k = 0;
    for (int c = 0; c <= 256; c++) {
        while (k < n && (unsigned char)tok_text(t, t->special[k])[0] < c)
            k++;
        t->special_start[c] = (uint32_t)k;
    }

    int32_t ids[3] = {t->eos, t->eot, t->eom};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0 && ids[i] < t->n_vocab)
            t->attr[ids[i]] |= TOK_ATTR_EOG;
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = tok_lookup(t, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0 && (t->type[id] == TOK_CONTROL || t->type[id] == TOK_USER)) {
            t->attr[id] |= TOK_ATTR_EOG;
            if (t->eot < 0 && (strcmp(eog_texts[i], "<|eot_id|>") == 0 || strcmp(eog_texts[i], "<|im_end|>") == 0 ||
                               strcmp(eog_texts[i], "<end_of_turn>") == 0 || strcmp(eog_texts[i], "<|end|>") == 0))
                t->eot = id;
            if (t->eom < 0 && strcmp(eog_texts[i], "<|eom_id|>") == 0)
                t->eom = id;
        }
    }
    return 0;
}

void tokenizer_free(struct tokenizer *t)
{
    if (!t)
        return;
    free(t->arena);
    free(t->off);
    free(t->len);
    free(t->scores);
    free(t->type);
    free(t->attr);
    free(t->map.slots);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.result);
    free(t->special);
    pretok_free(t->pre);
    free(t);
}

int32_t tokenizer_n_vocab(const struct tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const struct tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const struct tokenizer *t) { return t->eos; }
bool tokenizer_add_bos(const struct tokenizer *t) { return t->add_bos && t->bos >= 0; }
bool tokenizer_add_eos(const struct tokenizer *t) { return t->add_eos && t->eos >= 0; }

bool tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_EOG);
}

bool tokenizer_is_special(const struct tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab)
        return false;
    uint8_t ty = t->type[id];
    return ty == TOK_CONTROL || ty == TOK_UNKNOWN || ty == TOK_UNUSED;
}

const char *tokenizer_token_str(const struct tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    return tok_text(t, id);
}

int32_t tokenizer_find(const struct tokenizer *t, const char *str)
{
    return tok_lookup(t, str, strlen(str));
}
