/* cuda_profile.c — per-launch GPU timing for the CUDA backend (see cuda_profile.h). */
#include "backend/cuda/cuda_profile.h"

#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

#define PROFILE_LABELS 256
#define PROFILE_LABEL_LEN 80

struct profile_row {
    char label[PROFILE_LABEL_LEN];
    double ms;
    long launches;
};

struct cuda_profile {
    cudaEvent_t *ev;
    int *index;
    int cap, n_marks;
    int synced;
    struct profile_row rows[PROFILE_LABELS];
    int n_rows;
    long steps[2];
    double step_ms[2];
    double cur_ms;
};

struct cuda_profile *cuda_profile_new(int max_marks)
{
    struct cuda_profile *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ev = calloc((size_t)max_marks, sizeof *p->ev);
    p->index = calloc((size_t)max_marks, sizeof *p->index);
    if (!p->ev || !p->index) {
        cuda_profile_free(p);
        return NULL;
    }
    for (; p->cap < max_marks; p->cap++)
        if (cudaEventCreate(&p->ev[p->cap]) != cudaSuccess) {
            cudaGetLastError();
            cuda_profile_free(p);
            return NULL;
        }
    return p;
}

void cuda_profile_free(struct cuda_profile *p)
{
    if (!p)
        return;
    for (int k = 0; k < p->cap; k++)
        cudaEventDestroy(p->ev[k]);
    free(p->ev);
    free(p->index);
    free(p);
}

void cuda_profile_begin(struct cuda_profile *p, cudaStream_t s)
{
    p->n_marks = 0;
    p->synced = 0;
    p->cur_ms = 0;
    /* 20 ms covers enqueueing a few thousand launches. */
    cuda_launch_spin(20.0f, s);
}

void cuda_profile_mark(struct cuda_profile *p, cudaStream_t s, int index)
{
    if (p->n_marks >= p->cap)
        return;
    p->index[p->n_marks] = index;
    cudaEventRecord(p->ev[p->n_marks], s);
    p->n_marks++;
}

int cuda_profile_marks(const struct cuda_profile *p) { return p->n_marks; }

int cuda_profile_mark_index(const struct cuda_profile *p, int k) { return p->index[k]; }

float cuda_profile_elapsed(struct cuda_profile *p, int k)
{
    if (!p->synced) {
        if (p->n_marks > 0)
            cudaEventSynchronize(p->ev[p->n_marks - 1]);
        p->synced = 1;
    }
    float ms = 0;
    if (k + 1 < p->n_marks && cudaEventElapsedTime(&ms, p->ev[k], p->ev[k + 1]) != cudaSuccess) {
        cudaGetLastError();
        ms = 0;
    }
    return ms;
}

void cuda_profile_add(struct cuda_profile *p, const char *label, float ms)
{
    p->cur_ms += ms;
    int i = 0;
    while (i < p->n_rows && strcmp(p->rows[i].label, label) != 0)
        i++;
    if (i == p->n_rows) {
        if (p->n_rows == PROFILE_LABELS)
            return;
        snprintf(p->rows[i].label, sizeof p->rows[i].label, "%s", label);
        p->n_rows++;
    }
    p->rows[i].ms += ms;
    p->rows[i].launches++;
}

void cuda_profile_end(struct cuda_profile *p, int kind)
{
    p->steps[kind ? 1 : 0]++;
    p->step_ms[kind ? 1 : 0] += p->cur_ms;
    p->cur_ms = 0;
}

static int by_time(const void *a, const void *b)
{
    const double x = ((const struct profile_row *)a)->ms, y = ((const struct profile_row *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

void cuda_profile_print(const struct cuda_profile *p, FILE *f)
{
    struct profile_row *rows = malloc((size_t)p->n_rows * sizeof *rows + 1);
    if (!rows)
        return;
    memcpy(rows, p->rows, (size_t)p->n_rows * sizeof *rows);
    qsort(rows, (size_t)p->n_rows, sizeof *rows, by_time);
    for (int kind = 0; kind < 2; kind++) {
        if (!p->steps[kind])
            continue;
        const char tag = kind ? 'P' : 'D';
        const double per = p->step_ms[kind] / (double)p->steps[kind];
        fprintf(f, "hearth: CUDA profile, %s: %ld steps, %.1f us of GPU time a step\n",
                kind ? "prompt batches" : "decode steps", p->steps[kind], per * 1000.0);
        fprintf(f, "  %-60s %9s %11s %6s\n", "launch group", "per step", "us a step", "share");
        for (int i = 0; i < p->n_rows; i++) {
            if (rows[i].label[0] != tag)
                continue;
            const double us = rows[i].ms * 1000.0 / (double)p->steps[kind];
            fprintf(f, "  %-60s %9.1f %11.1f %5.1f%%\n", rows[i].label + 2,
                    (double)rows[i].launches / (double)p->steps[kind], us,
                    p->step_ms[kind] > 0 ? 100.0 * rows[i].ms / p->step_ms[kind] : 0.0);
        }
    }
    free(rows);
}
