/* tu_model.h — the tiny-model forward-pass check shared by the CPU and CUDA model tests: every variant of
 * ../shared/reference/tiny-models run through one backend against the Hugging Face logits (implemented in
 * testutil.c, so it lives in the same test helper library). */
#ifndef HEARTH_TU_MODEL_H
#define HEARTH_TU_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "testutil.h"
#include "model/model.h"

/* One GGUF of a tiny reference model: <arch>-dev-<file_suffix>.gguf, run with this KV cache type and
 * compared against the reference logits within tol; check_greedy also follows the greedy continuations. */
struct tu_model_variant {
    const char *arch;
    const char *file_suffix;
    enum kv_type kv;
    float tol;
    bool check_greedy;
};

/* llama, qwen2 and qwen3, each as f32, f16 and q8_0, with the tolerances both backends are held to. */
#define TU_MODEL_N_VARIANTS 9
extern const struct tu_model_variant tu_model_variants[TU_MODEL_N_VARIANTS];

/* What differs between backends. */
struct tu_model_backend {
    const char *label; /* message prefix, e.g. "" or "cuda " */
    /* Makes the backend; may skip the test (no device) or fail it. */
    struct backend *(*make)(void);
    /* Optional: called after each prompt's pass has run (one_by_one false: batched; true: a token at a
     * time) with the prompt's id count, before its logits are compared. */
    void (*after_pass)(struct backend *be, bool one_by_one, size_t n_ids);
    /* Optional: loads the model instead of model_load(path, be) (e.g. split over two backends); a
     * backend it makes besides be goes to m->owned so that model_free frees it. */
    int (*load)(const char *path, struct backend *be, struct model **m, struct err *e);
};

/* A CPU backend with two threads, as the model tests use it (fails the test when it cannot be made). */
struct backend *tu_make_cpu(void);

/* Largest |a[i] - b[i]|; INFINITY when any difference is NaN. */
float tu_max_abs_diff(const float *a, const float *b, size_t n);

/* Loads the variant on the backend and checks every prompt's logits at every position (batched and one
 * token at a time), the last positions of the long prompt (chunks of 256), and, when the variant asks,
 * the greedy continuations. Skips when the reference data is absent. */
void tu_model_check_variant(const struct tu_model_variant *v, const struct tu_model_backend *b);

#endif
