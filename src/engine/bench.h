/* bench.h — speed measurement behind `hearth bench`: prefill and decode throughput, time to first
 * token, load time and peak memory of one model on one backend, and the decode roofline (the token
 * rate memory bandwidth allows when every weight is read once per token).
 *
 * Each measurement can run in a forked child process so that its peak RSS is its own (the kernel
 * keeps one high-water mark per process and never lowers it) and a crash or an out-of-memory kill
 * costs one row, not the whole run. */
#ifndef HEARTH_ENGINE_BENCH_H
#define HEARTH_ENGINE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model;

struct bench_params {
    int n_prompt;  /* prompt tokens per run: random ids from the vocabulary (>= 1) */
    int n_gen;     /* tokens decoded greedily after the prompt, EOS ignored (>= 1) */
    int n_repeat;  /* runs per model; figures are medians over them (>= 1) */
    int n_threads; /* CPU threads; <= 0: one per physical core */
    uint64_t seed; /* prompt ids: same seed, same prompt */
    bool gpu;      /* the CUDA backend (backend_new_auto) instead of the CPU one */
    /* Constrained decode (NULL: none): "json" for any JSON value, else the text of a JSON Schema.
     * Every pick, the first token's included, is grammar_apply, argmax, grammar_accept, and the
     * grammar restarts once a value is complete, so every timed step pays the constraint. */
    const char *format;
};

struct bench_result {
    char type[32];    /* the weight type mix, e.g. "Q4_K" */
    char backend[48]; /* e.g. "cpu (avx2)" */
    int n_threads;
    uint64_t weight_bytes; /* all tensors of the file */
    uint64_t n_params;     /* weights of all tensors */
    uint64_t decode_bytes; /* weight bytes one decoded token reads (see bench_decode_bytes) */
    double load_ms;        /* model_load + model_ctx_new */
    double prefill_tps;    /* prompt tokens per second */
    double decode_tps;     /* generated tokens per second */
    double first_token_ms; /* prompt start to the first generated token (prefill + pick) */
    int format_values;     /* with a format: complete values decoded in the last run */
    int64_t peak_rss_bytes;
    /* CPU rows (0 for a GPU row, whose weights are read from device memory, which the probe does not
     * measure): */
    double membw_gbs;    /* memory read bandwidth, 1e9 bytes/s, read between the decode steps (the median
                          * over repeats) */
    double roofline_tps; /* membw / decode_bytes */
    bool membw_in_run;   /* membw was read between the decode steps (false: a model too small for
                          * that, measured by the separate probe after each repeat) */
    double roofline_pct; /* the median over repeats of decode as a percentage of the roofline of the
                          * bandwidth read between that repeat's own decode steps */
};

/* Bytes of weights one decode step reads: every matrix once (the output projection included, also
 * when it is tied to the embedding table) plus one row of the embedding table. Norm vectors and the
 * KV cache are left out: at benchmark context lengths they are a fraction of a percent. */
uint64_t bench_decode_bytes(const struct model *m);

/* Memory read bandwidth in 1e9 bytes/s: n_threads threads (<= 0: physical cores) stream through
 * their slices of a buffer of `bytes` (0: 1 GiB, far beyond any cache); the median of seven passes. */
int bench_membw(int n_threads, size_t bytes, double *gbs, struct err *e);

/* Loads path on the CPU backend (the GPU one with p->gpu; ERR_UNSUPPORTED when there is none) and
 * measures it (see struct bench_params), a CPU row with its roofline (bandwidth probes between the
 * repeats, in child processes: this process must have no other threads than its backend's pool, whose
 * workers the children do not need); peak_rss_bytes is this process's high-water mark. */
int bench_model(const char *path, const struct bench_params *p, struct bench_result *r, struct err *e);

/* The same two measurements in a forked child, the result passed back through a pipe. Fork copies only
 * the calling thread: the child uses nothing another thread of the caller may hold (it makes its own
 * pool; malloc stays usable across fork). */
int bench_membw_isolated(int n_threads, size_t bytes, double *gbs, struct err *e);
int bench_model_isolated(const char *path, const struct bench_params *p, struct bench_result *r,
                         struct err *e);


#endif
