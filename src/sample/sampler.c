/* sampler.c — the sampler chain: repetition penalties, top-k, top-p, min-p, temperature and a seeded
 * draw (or greedy argmax), with all scratch space allocated up front so sampling allocates nothing.
 *
 * Order and semantics follow llama.cpp's default chain as Ollama drives it: penalties on the raw
 * logits, then truncation (top-k, top-p, min-p) judged on the untempered distribution, then
 * temperature, then the draw. Candidate order is always (logit descending, token id ascending), so
 * ties resolve the same way on every run and every platform. */
#include "sample/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/argmax.h"
#include "sample/rng.h"

/* One surviving token. Kept as a pair so selection and sorting move id and logit together. */
struct cand {
    float logit;
    int32_t id;
};

/* Probabilities relative to the maximum are bucketed by binary exponent for top-p without top-k: bucket b
 * holds p in [2^-b, 2^(1-b)); the last bucket takes everything smaller (including 0). */
#define SAMPLER_BUCKETS 64

struct sampler {
    struct sample_params p;
    int32_t n_vocab;
    int32_t n_ctx;
    uint64_t seed; /* the seed in use: p.seed, or the one drawn for p.seed == -1 */
    struct rng rng;

    /* Penalty history: the last `hist_cap` accepted tokens in a ring, plus per-token counts over it. */
    int32_t *hist;
    int32_t hist_cap;
    int32_t hist_len;
    int32_t hist_pos;
    int32_t *counts; /* [n_vocab] */

    struct cand *cand; /* [n_vocab] */
    float *prob;       /* [n_vocab] */
};

void sample_params_default(struct sample_params *p)
{
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.9f;
    p->min_p = 0.0f;
    /* Ollama lowered this from 1.1 to 1.0 (no penalty) in 2025; see ../shared/spec/ollama.md §3. */
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = -1;
}

int sample_params_validate(const struct sample_params *p, struct err *e)
{
    if (!p)
        return err_set(e, ERR_INVALID, "sampling options are missing");
    if (!isfinite(p->temperature))
        return err_set(e, ERR_INVALID, "option \"temperature\" must be a finite number (got %g)",
                       (double)p->temperature);
    if (isnan(p->top_p) || p->top_p < 0.0f)
        return err_set(e, ERR_INVALID,
                       "option \"top_p\" must be between 0 and 1 (got %g; 1 or more disables it)",
                       (double)p->top_p);
    if (isnan(p->min_p) || p->min_p > 1.0f)
        return err_set(e, ERR_INVALID,
                       "option \"min_p\" must be between 0 and 1 (got %g; 0 disables it)",
                       (double)p->min_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f)
        return err_set(e, ERR_INVALID,
                       "option \"repeat_penalty\" must be a positive number (got %g; 1 disables it)",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return err_set(e, ERR_INVALID,
                       "option \"repeat_last_n\" must be -1 (the context size), 0 (off) or positive "
                       "(got %d)",
                       (int)p->repeat_last_n);
    if (!isfinite(p->presence_penalty))
        return err_set(e, ERR_INVALID, "option \"presence_penalty\" must be a finite number (got %g)",
                       (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return err_set(e, ERR_INVALID, "option \"frequency_penalty\" must be a finite number (got %g)",
                       (double)p->frequency_penalty);
    return 0;
}

int sampler_new(const struct sample_params *p, int32_t n_vocab, int32_t n_ctx, struct sampler **out,
                struct err *e)
{
    *out = NULL;
    int rc = sample_params_validate(p, e);
    if (rc)
        return rc;
    if (n_vocab <= 0)
        return err_set(e, ERR_INVALID, "sampler: vocabulary size must be positive (got %d)",
                       (int)n_vocab);
    int32_t cap = p->repeat_last_n;
    if (cap == -1) {
        if (n_ctx <= 0)
            return err_set(e, ERR_INVALID,
                           "sampler: option \"repeat_last_n\" is -1 (the context size) but the "
                           "context size is %d",
                           (int)n_ctx);
        cap = n_ctx;
    }

    struct sampler *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->n_ctx = n_ctx;
    s->hist_cap = cap;
    size_t nv = (size_t)n_vocab;
    s->counts = calloc(nv, sizeof *s->counts);
    s->cand = malloc(nv * sizeof *s->cand);
    s->prob = malloc(nv * sizeof *s->prob);
    s->hist = cap > 0 ? malloc((size_t)cap * sizeof *s->hist) : NULL;
    if (!s->counts || !s->cand || !s->prob || (cap > 0 && !s->hist)) {
        sampler_free(s);
        return err_set(e, ERR_NOMEM, "sampler: out of memory for a vocabulary of %d tokens",
                       (int)n_vocab);
    }
    /* A random seed is drawn once and kept, so sampler_reset replays this sampler's own stream. */
    s->seed = p->seed == -1 ? rng_entropy_seed() : (uint64_t)p->seed;
    sampler_reset(s);
    *out = s;
    return 0;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->hist);
    free(s->counts);
    free(s->cand);
    free(s->prob);
    free(s);
}

void sampler_reset(struct sampler *s)
{
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
    s->hist_len = 0;
    s->hist_pos = 0;
    rng_seed(&s->rng, s->seed);
}

int64_t sampler_seed(const struct sampler *s) { return (int64_t)s->seed; }

void sampler_accept(struct sampler *s, int32_t token)
{
    /* Ids outside the vocabulary (a caller bug) would index counts out of bounds: ignore them. */
    if (s->hist_cap == 0 || token < 0 || token >= s->n_vocab)
        return;
    if (s->hist_len == s->hist_cap)
        s->counts[s->hist[s->hist_pos]]--;
    else
        s->hist_len++;
    s->hist[s->hist_pos] = token;
    s->counts[token]++;
    s->hist_pos = s->hist_pos + 1 == s->hist_cap ? 0 : s->hist_pos + 1;
}

void sampler_apply_penalties(struct sampler *s, float *logits)
{
    float rp = s->p.repeat_penalty, pres = s->p.presence_penalty, freq = s->p.frequency_penalty;
    if (rp == 1.0f && pres == 0.0f && freq == 0.0f)
        return;
    /* Each distinct token in the window is penalised once: its count is negated as a "done" mark
     * and restored afterwards, which avoids a separate n_vocab-sized visited set. */
    for (int32_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->hist[i];
        int32_t c = s->counts[t];
        if (c <= 0)
            continue;
        float l = logits[t];
        /* Dividing a negative logit would raise it, so llama.cpp multiplies those instead: both make the
         * token less likely. */
        l = l <= 0.0f ? l * rp : l / rp;
        l -= (float)c * freq + pres;
        logits[t] = l;
        s->counts[t] = -c;
    }
    for (int32_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->hist[i];
        if (s->counts[t] < 0)
            s->counts[t] = -s->counts[t];
    }
}

/* True when a ranks below b: lower logit, or the same logit and a higher id. */
static inline int cand_worse(const struct cand *a, const struct cand *b)
{
    return a->logit < b->logit || (a->logit == b->logit && a->id > b->id);
}

/* Heap whose root is the worst candidate. */
static void heap_sift_down(struct cand *h, size_t n, size_t i)
{
    struct cand x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cand_worse(&h[c + 1], &h[c]))
            c++;
        if (!cand_worse(&h[c], &x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void heap_build(struct cand *h, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        heap_sift_down(h, n, i);
}

/* Heapsort into best-first order: repeatedly move the worst (the root) to the end. Chosen over qsort
 * because it never allocates and its worst case is O(n log n). */
static void cand_sort(struct cand *c, size_t n)
{
    heap_build(c, n);
    for (size_t end = n; end > 1; end--) {
        struct cand t = c[0];
        c[0] = c[end - 1];
        c[end - 1] = t;
        heap_sift_down(c, end - 1, 0);
    }
}

/* The k best of logits[0..n) into cand[0..k), best first. A heap of the k best seen so far rejects most
 * tokens with one comparison against its root, so this is O(n) in practice and O(n log k) at worst,
 * without sorting the whole vocabulary. */
static void select_top_k(struct cand *cand, const float *logits, int32_t n, int32_t k)
{
    /* NaN enters as -inf (it can never be chosen); later NaNs fail every comparison below and stay out. */
    for (int32_t i = 0; i < k; i++)
        cand[i] = (struct cand){isnan(logits[i]) ? -INFINITY : logits[i], i};
    heap_build(cand, (size_t)k);
    enum { SPAN = 16 };
    for (int32_t i = k; i < n; i++) {
        /* Once the heap is warm almost no token beats its root, so spans of SPAN are first tested as a
         * whole (independent compares the compiler can vectorise) and skipped when none does. The
         * root only rises, so a skipped token could not have entered later either. */
        if ((i - k) % SPAN == 0 && i + SPAN <= n) {
            const float root = cand[0].logit;
            int any = 0;
            for (int j = 0; j < SPAN; j++)
                any |= logits[i + j] > root;
            if (!any) {
                i += SPAN - 1;
                continue;
            }
        }
        float l = logits[i];
        /* Scanning in id order, an equal logit always has a higher id than the root's: it loses. */
        if (l > cand[0].logit) {
            cand[0] = (struct cand){l, i};
            heap_sift_down(cand, (size_t)k, 0);
        }
    }
    cand_sort(cand, (size_t)k);
}

/* Top-p over the whole vocabulary without sorting it: bucket tokens by the binary exponent of their
 * relative probability, find the bucket where the cumulative mass reaches top_p, and sort only the
 * tokens at or above it. Fills cand best first and returns how many it holds; *z gets the
 * normaliser (the sum of all relative probabilities). */
static int32_t gather_nucleus(struct sampler *s, const float *logits, float maxl, double *z)
{
    double mass[SAMPLER_BUCKETS] = {0};
    double total = 0.0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float pr = expf(logits[i] - maxl);
        s->prob[i] = pr;
        int ex;
        (void)frexpf(pr, &ex); /* pr = m * 2^ex, m in [0.5, 1) */
        int b = pr > 0.0f ? 1 - ex : SAMPLER_BUCKETS - 1;
        if (b > SAMPLER_BUCKETS - 1)
            b = SAMPLER_BUCKETS - 1;
        mass[b] += pr;
        total += pr;
    }
    double target = (double)s->p.top_p * total;
    int last = SAMPLER_BUCKETS - 1;
    double cum = 0.0;
    for (int b = 0; b < SAMPLER_BUCKETS - 1; b++) {
        cum += mass[b];
        if (cum >= target) {
            last = b;
            break;
        }
    }
    /* Everything in buckets 0..last is at least 2^-last; the last bucket admits everything. */
    float floor_p = last == SAMPLER_BUCKETS - 1 ? -1.0f : ldexpf(1.0f, -last);
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (s->prob[i] >= floor_p)
            s->cand[n++] = (struct cand){logits[i], i};
    cand_sort(s->cand, (size_t)n);
    *z = total;
    return n;
}

/* Runs penalties and truncation; leaves the survivors in s->cand (best first when sorted) and returns
 * their count, or returns 0 with *greedy set when the choice is deterministic. */
static int32_t build_candidates(struct sampler *s, float *logits, int32_t *greedy)
{
    sampler_apply_penalties(s, logits);

    /* A NaN logit can never be chosen, like -inf: the argmax and the top-k selection skip NaNs, and
     * before the other whole-vocabulary passes (which NaN would break) they become -inf. Greedy
     * decoding stops after the argmax: these scans run over the vocabulary for every token. */
    int32_t n = s->n_vocab;
    const int32_t best = argmax_f32(logits, n);
    const float maxl = n > 0 ? logits[best] : -INFINITY;
    *greedy = best;
    /* No finite maximum (all -inf or NaN, or +inf somewhere) leaves no meaningful distribution. */
    if (s->p.temperature <= 0.0f || !isfinite(maxl))
        return 0;

    const struct sample_params *p = &s->p;
    int32_t nc;
    int sorted = 0;
    double z = -1.0; /* normaliser for top-p; computed from the candidates when negative */
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(s->cand, logits, n, p->top_k);
        nc = p->top_k;
        sorted = 1;
    } else {
        for (int32_t i = 0; i < n; i++)
            logits[i] = isnan(logits[i]) ? -INFINITY : logits[i];
        if (p->top_p < 1.0f) {
            nc = gather_nucleus(s, logits, maxl, &z);
            sorted = 1;
        } else {
            for (int32_t i = 0; i < n; i++)
                s->cand[i] = (struct cand){logits[i], i};
            nc = n;
        }
    }

    if (p->top_p < 1.0f && sorted) {
        if (z < 0.0) {
            z = 0.0;
            for (int32_t i = 0; i < nc; i++)
                z += expf(s->cand[i].logit - maxl);
        }
        /* Keep the smallest prefix whose mass reaches top_p, always at least one token. The bucket
         * pass summed in a different order, so if rounding leaves the target unreached, all
         * gathered tokens stay. */
        double target = (double)p->top_p * z, cum = 0.0;
        for (int32_t i = 0; i < nc; i++) {
            cum += expf(s->cand[i].logit - maxl);
            if (cum >= target) {
                nc = i + 1;
                break;
            }
        }
    }

    if (p->min_p > 0.0f) {
        /* p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p); the best token always survives. */
        float floor_l = maxl + logf(p->min_p);
        int32_t k = 0;
        for (int32_t i = 0; i < nc; i++)
            if (s->cand[i].logit >= floor_l || s->cand[i].id == best)
                s->cand[k++] = s->cand[i];
        nc = k;
    }
    return nc;
}

/* Fills s->prob[0..nc) with the tempered weights of the candidates and returns their sum. */
static double tempered_weights(struct sampler *s, int32_t nc, float maxl)
{
    float inv_t = 1.0f / s->p.temperature;
    double sum = 0.0;
    for (int32_t i = 0; i < nc; i++) {
        /* The best token's weight is exactly 1 even when a tiny temperature makes inv_t infinite
         * (0 * inf would be NaN). */
        float d = s->cand[i].logit - maxl;
        float w = d == 0.0f ? 1.0f : expf(d * inv_t);
        s->prob[i] = w;
        sum += w;
    }
    return sum;
}

bool sampler_is_plain_greedy(const struct sampler *s)
{
    const struct sample_params *p = &s->p;
    const bool no_repeat = p->repeat_penalty == 1.0f || p->repeat_last_n == 0;
    return p->temperature <= 0.0f && no_repeat && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f;
}

int32_t sampler_sample(struct sampler *s, float *logits)
{
    int32_t best;
    int32_t nc = build_candidates(s, logits, &best);
    if (nc <= 0)
        return best;
    double sum = tempered_weights(s, nc, logits[best]);
    double u = rng_uniform(&s->rng) * sum;
    double cum = 0.0;
    int32_t last = 0;
    for (int32_t i = 0; i < nc; i++) {
        if (s->prob[i] <= 0.0f)
            continue;
        cum += s->prob[i];
        last = i;
        if (u < cum)
            return s->cand[i].id;
    }
    /* Rounding can leave u a hair above the running sum: the last token with any weight takes it. */
    return s->cand[last].id;
}

int32_t sampler_candidates(struct sampler *s, float *logits, int32_t *ids, float *probs)
{
    int32_t best;
    int32_t nc = build_candidates(s, logits, &best);
    if (nc <= 0) {
        ids[0] = best;
        probs[0] = 1.0f;
        return 1;
    }
    double sum = tempered_weights(s, nc, logits[best]);
    int32_t k = 0;
    for (int32_t i = 0; i < nc; i++) {
        if (s->prob[i] <= 0.0f)
            continue;
        ids[k] = s->cand[i].id;
        probs[k] = (float)(s->prob[i] / sum);
        k++;
    }
    return k;
}
