/* grammar-cost.c — what constrained JSON output costs per decode step: times decode steps (forward +
 * greedy pick) without and with grammar_apply + grammar_accept, in alternating rounds so that both
 * see the same machine load, and prints the per-token times and their ratio.
 * usage: grammar-cost MODEL.gguf [--tokens N] [--rounds R] [--threads T] [--schema FILE.json] */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "backend/backend.h"
#include "base/argmax.h"
#include "model/model.h"
#include "sample/grammar.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: grammar-cost MODEL.gguf [--tokens N] [--rounds R] [--threads T] [--schema FILE]\n");
        return 2;
    }
    int n_tok = 32, rounds = 3, threads = 2;
    const char *schema_path = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tokens") == 0)
            n_tok = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--schema") == 0)
            schema_path = argv[i + 1];
    }
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    struct model_ctx *c = NULL;
    struct grammar_vocab *gv = NULL;
    struct grammar *g = NULL;
    json_t *schema = schema_path ? json_load_file(schema_path, 0, NULL) : NULL;
    double t0 = now_ms();
    if (backend_cpu_new(threads, &be, &e) || model_load(argv[1], be, &m, &e) ||
        model_ctx_new(m, &(struct ctx_params){.n_ctx = 2 * n_tok * rounds + 64}, &c, &e)) {
        fprintf(stderr, "grammar-cost: %s\n", e.msg);
        return 1;
    }
    double t1 = now_ms();
    if (grammar_vocab_new(m->tok, &gv, &e) || grammar_new_json(gv, schema, &g, &e)) {
        fprintf(stderr, "grammar-cost: %s\n", e.msg);
        return 1;
    }
    double t2 = now_ms();
    int32_t nv = tokenizer_n_vocab(m->tok);
    float *logits = malloc((size_t)nv * sizeof *logits);
    double t_plain = 0, t_gram = 0, t_mask = 0;
    long n_plain = 0, n_gram = 0;
    int32_t tok = tokenizer_bos(m->tok) >= 0 ? tokenizer_bos(m->tok) : 1;
    for (int r = 0; r < rounds; r++) {
        for (int pass = 0; pass < 2; pass++) {
            bool constrained = (pass + r) % 2 == 1; /* alternate which goes first */
            model_ctx_truncate(c, 0);
            grammar_reset(g);
            for (int i = 0; i < n_tok; i++) {
                double a = now_ms();
                if (model_forward(c, &tok, 1, logits, false, &e)) {
                    fprintf(stderr, "grammar-cost: %s\n", e.msg);
                    return 1;
                }
                double b = now_ms();
                if (constrained) {
                    if (grammar_done(g))
                        grammar_reset(g); /* a complete value: start another, the cost is per token */
                    grammar_apply(g, logits);
                }
                int32_t next = argmax_f32(logits, nv);
                if (constrained && grammar_accept(g, next, &e)) {
                    fprintf(stderr, "grammar-cost: accept: %s\n", e.msg);
                    return 1;
                }
                double d = now_ms();
                tok = next;
                if (constrained) {
                    t_gram += d - a;
                    t_mask += d - b;
                    n_gram++;
                } else {
                    t_plain += d - a;
                    n_plain++;
                }
            }
        }
    }
    printf("model %s: %d vocab, load %.0f ms, grammar vocabulary index %.1f ms\n", argv[1], nv, t1 - t0, t2 - t1);
    printf("decode without grammar: %.2f ms/token (%ld tokens)\n", t_plain / n_plain, n_plain);
    printf("decode with grammar:    %.2f ms/token (%ld tokens), of which apply+pick+accept %.3f ms\n",
           t_gram / n_gram, n_gram, t_mask / n_gram);
    printf("ratio with/without: %.3f\n", (t_gram / n_gram) / (t_plain / n_plain));
    free(logits);
    grammar_free(g);
    grammar_vocab_free(gv);
    json_decref(schema);
    model_ctx_free(c);
    model_free(m);
    return 0;
}
