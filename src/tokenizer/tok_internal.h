/* tok_internal.h — the tokenizer's internal state, shared by the files of src/tokenizer/ only. */
#ifndef HEARTH_TOKENIZER_TOK_INTERNAL_H
#define HEARTH_TOKENIZER_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "tokenizer/tokenizer.h"

/* tokenizer.ggml.token_type values. */
enum tok_type {
    TOK_NORMAL = 1,
    TOK_UNKNOWN = 2,
    TOK_CONTROL = 3,
    TOK_USER = 4,
    TOK_UNUSED = 5,
    TOK_BYTE = 6,
};

/* Per-token attribute bits. */
enum {
    TOK_ATTR_LSTRIP = 1, /* a matched special token swallows whitespace before it */
    TOK_ATTR_RSTRIP = 2, /* ... and after it */
    TOK_ATTR_EOG = 4,    /* ends generation */
};

enum tok_kind { TOK_KIND_SPM, TOK_KIND_BPE, TOK_KIND_WPM };

/* Open-addressing table from token string to id (slot = id + 1, 0 = empty). */
struct tok_strmap {
    uint32_t *slots;
    uint32_t mask;
};

/* Open-addressing table from a pair of token ids to the merge's rank and result. */
struct tok_pairmap {
    uint64_t *keys; /* (left << 32 | right) + 1; 0 = empty */
    uint32_t *rank;
    int32_t *result;
    uint32_t mask;
    uint32_t count;
};

#define TOK_MAX_REGEX 8

struct pretok; /* compiled pre-tokenizer regexes (pretok.c) */

struct tokenizer {
    enum tok_kind kind;
    int32_t n_vocab;
    char *arena; /* every token string, NUL-terminated */
    size_t arena_len, arena_cap;
    uint32_t *off; /* token string offsets into arena */
    uint32_t *len;
    float *scores;
    uint8_t *type;
    uint8_t *attr;
    uint32_t max_token_len;
    struct tok_strmap map;
    struct tok_pairmap merges;

    /* SPM: the <0xXX> token for each byte; BPE: the token of each byte's byte-level character. */
    int32_t byte_id[256];
    bool ignore_merges;  /* BPE: a pre-token that is itself a token is not split (llama 3, tekken) */
    bool nfc;            /* NFC-normalize text before pre-tokenizing (Qwen2) */
    bool add_space_prefix;
    bool wpm_lowercase;  /* WordPiece: uncased vocabulary (strip accents, lowercase) */
    bool spm_merges;     /* SPM driven by merge ranks instead of scores (tokenizer.json BPE + byte fallback) */
    struct pretok *pre;

    /* Tokens matched in raw text before tokenizing, sorted by first byte then longest first. */
    int32_t *special;
    size_t n_special;
    uint32_t special_start[257];

    int32_t bos, eos, eot, eom, unk, pad;
    bool add_bos, add_eos;
};

/* ---- vocab.c: building and looking up ---- */
/* Allocates a tokenizer with n token slots (all empty strings, NORMAL, score 0). */
int tok_new(int32_t n, enum tok_kind kind, struct tokenizer **out, struct err *e);
/* Sets token id's string (copied), score and type. */
int tok_set(struct tokenizer *t, int32_t id, const char *s, size_t n, float score, uint8_t type,
            struct err *e);
/* Builds the string index; call after every tok_set. */
int tok_index(struct tokenizer *t, struct err *e);
/* Token id of the exact bytes s[0..n), or -1. */
int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n);
/* Records merge "a b" with the given rank (needs tok_index first). Merges whose parts or result
 * are not tokens are ignored, as they can never apply. */
int tok_add_merge(struct tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                  uint32_t rank, struct err *e);
/* Rank of merging left+right (and its result in *result), or UINT32_MAX if they never merge. */
uint32_t tok_merge_rank(const struct tokenizer *t, int32_t left, int32_t right, int32_t *result);
/* Derives the byte tokens, special-token table and end-of-generation set; call last. */
int tok_finish(struct tokenizer *t, struct err *e);

static inline const char *tok_text(const struct tokenizer *t, int32_t id)
{
    return t->arena + t->off[id];
}

/* ---- pretok.c ---- */
/* Compiles the named llama.cpp pre-tokenizer (tokenizer.ggml.pre); sets t->pre, ignore_merges, nfc. */
int pretok_from_name(struct tokenizer *t, const char *name, struct err *e);
/* Compiles an explicit list of regexes (from a tokenizer.json). */
int pretok_from_regexes(struct tokenizer *t, const char *const *regexes, size_t n, struct err *e);
void pretok_free(struct pretok *p);

/* A run of bytes inside a fragment. */
struct tok_span {
    size_t off, len;
};
/* Growable scratch memory for one encode call. */
struct tok_scratch {
    struct tok_span *spans, *spans2;
    size_t spans_cap, spans2_cap;
    char *buf;
    size_t buf_cap;
    void *sym;
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
    void *match_data;
};
void tok_scratch_free(struct tok_scratch *s);
/* Splits text into pre-tokens; *spans points into the scratch. */
int pretok_split(const struct tokenizer *t, struct tok_scratch *s, const char *text, size_t len,
                 struct tok_span **spans, size_t *n, struct err *e);

/* ---- output vector ---- */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};
int tok_ids_push(struct tok_ids *o, int32_t id);

/* ---- bpe.c / spm.c ---- */
int bpe_encode(const struct tokenizer *t, struct tok_scratch *s, const char *text, size_t len,
               struct tok_ids *out, struct err *e);
int spm_encode(const struct tokenizer *t, struct tok_scratch *s, const char *text, size_t len,
               bool space_prefix, struct tok_ids *out, struct err *e);
/* ---- wordpiece.c ---- */
int wpm_encode(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *out, struct err *e);

/* ---- special.c ---- */
/* A fragment of the input: raw text (id < 0) or one matched special token. */
struct tok_frag {
    size_t off, len;
    int32_t id;
};
int special_partition(const struct tokenizer *t, const char *text, size_t len, bool parse_special,
                      struct tok_frag **frags, size_t *n, struct err *e);

#endif
