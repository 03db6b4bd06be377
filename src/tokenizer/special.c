/* special.c — splitting input text on special and user-defined tokens before tokenizing, so
 * "<|im_start|>" becomes one token instead of being spelled out. User-defined tokens are matched
 * always (the reference tokenizers do the same); control and unknown tokens only with
 * parse_special. At each position the longest matching token wins. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int push(struct tok_frag **v, size_t *n, size_t *cap, struct tok_frag f)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct tok_frag *nv = realloc(*v, c * sizeof *nv);
        if (!nv)
            return ERR_NOMEM;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = f;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int special_partition(const struct tokenizer *t, const char *text, size_t len, bool parse_special,
                      struct tok_frag **frags, size_t *n_out, struct err *e)
{
    struct tok_frag *v = NULL;
    size_t n = 0, cap = 0;
    size_t raw_start = 0; /* start of the pending raw-text fragment */
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        int32_t hit = -1;
        for (uint32_t k = t->special_start[c]; k < t->special_start[c + 1]; k++) {
            int32_t id = t->special[k];
            if (!parse_special && t->type[id] != TOK_USER)
                continue;
            uint32_t tl = t->len[id];
            if (tl <= len - i && memcmp(text + i, tok_text(t, id), tl) == 0) {
                hit = id;
                break; /* sorted longest first */
            }
        }
        if (hit < 0) {
            i++;
            continue;
        }
        size_t raw_end = i;
        if (t->attr[hit] & TOK_ATTR_LSTRIP)
            while (raw_end > raw_start && is_space(text[raw_end - 1]))
                raw_end--;
        if (raw_end > raw_start && push(&v, &n, &cap, (struct tok_frag){raw_start, raw_end - raw_start, -1}))
            goto nomem;
        if (push(&v, &n, &cap, (struct tok_frag){i, t->len[hit], hit}))
            goto nomem;
        i += t->len[hit];
        if (t->attr[hit] & TOK_ATTR_RSTRIP)
            while (i < len && is_space(text[i]))
                i++;
        raw_start = i;
    }
    if (len > raw_start && push(&v, &n, &cap, (struct tok_frag){raw_start, len - raw_start, -1}))
        goto nomem;
    *frags = v;
    *n_out = n;
    return 0;
nomem:
    free(v);
    return err_set(e, ERR_NOMEM, "out of memory splitting special tokens");
}
