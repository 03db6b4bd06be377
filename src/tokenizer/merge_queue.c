/* merge_queue.c — a binary heap of candidate merges (see merge_queue.h). */
#include "tokenizer/merge_queue.h"

#include <stdbool.h>
#include <stdlib.h>

#include "base/err.h"

static bool before(const struct tok_merge *a, const struct tok_merge *b)
{
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

void tok_merge_push(struct tok_merge *h, size_t *n, struct tok_merge m)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&m, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = m;
}

struct tok_merge tok_merge_pop(struct tok_merge *h, size_t *n)
{
    struct tok_merge top = h[0];
    struct tok_merge last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && before(&h[c + 1], &h[c]))
            c++;
        if (!before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

int tok_grow(void **p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *np = realloc(*p, c);
    if (!np)
        return ERR_NOMEM;
    *p = np;
    *cap = c;
    return 0;
}
