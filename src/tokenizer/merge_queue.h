/* merge_queue.h — the priority queue both BPE variants merge with: candidate merges of adjacent
 * symbols, best first (ties to the leftmost), invalidated lazily when either side has changed. */
#ifndef HEARTH_TOKENIZER_MERGE_QUEUE_H
#define HEARTH_TOKENIZER_MERGE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct tok_merge {
    double priority;   /* higher merges first: a score, or minus a merge rank */
    uint32_t left;     /* index of the left symbol */
    int32_t left_key;  /* what the two symbols were when queued (ids or lengths); a popped merge */
    int32_t right_key; /* whose symbols no longer match is stale and skipped */
    int32_t result;    /* the token the merge produces */
};

void tok_merge_push(struct tok_merge *heap, size_t *n, struct tok_merge m);
struct tok_merge tok_merge_pop(struct tok_merge *heap, size_t *n);

/* Grows a scratch buffer to at least need bytes (doubling); 0 or ERR_NOMEM. */
int tok_grow(void **p, size_t *cap, size_t need);

#endif
