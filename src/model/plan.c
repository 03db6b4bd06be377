/* plan.c — the memory plan (see plan.h): sizes measured from a GGUF's tensors and the contexts' shapes,
 * the choice of how many layers go on the GPU, and the plan as text. */
#include "model/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/model.h"

/* CUDA rounds large allocations up to 2 MiB pages: each matrix wastes about half a page. */
#define GPU_PAD_PER_MATRIX ((uint64_t)1 << 20)
/* cuBLAS's workspace, the attention kernels' scratch and the batch buffers, roughly. */
#define GPU_WORK_FIXED ((uint64_t)64 << 20)

void plan_sizes_free(struct plan_sizes *s)
{
    free(s->layer_bytes);
    s->layer_bytes = NULL;
}

int plan_sizes_from_gguf(const struct gguf_file *f, int n_ctx, int n_batch, enum kv_type kv_type, int n_slots,
                         struct plan_sizes *s, struct err *e)
{
    memset(s, 0, sizeof *s);
    struct hparams hp;
    int rc = hparams_from_gguf(f, &hp, e);
    if (rc)
        return rc;
    const struct gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return err_set(e, ERR_FORMAT, "missing or malformed tensor 'token_embd.weight'");
    const uint64_t vocab = (uint64_t)emb->ne[1];
    s->n_layer = hp.n_layer;
    s->layer_bytes = calloc((size_t)hp.n_layer, sizeof *s->layer_bytes);
    if (!s->layer_bytes)
        return err_set(e, ERR_NOMEM, "out of memory");
    s->tied = gguf_find_tensor(f, "output.weight") == NULL;
    uint64_t matrices0 = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        int il;
        char rest[8];
        if (sscanf(t->name, "blk.%d.%1s", &il, rest) == 2 && il >= 0 && il < hp.n_layer) {
            s->layer_bytes[il] += t->size;
            if (il == 0 && t->n_dims >= 2)
                matrices0++;
        } else if (strcmp(t->name, "token_embd.weight") == 0) {
            s->embd_bytes += t->size;
        } else if (strcmp(t->name, "output.weight") == 0 || strcmp(t->name, "output_norm.weight") == 0) {
            s->output_bytes += t->size;
        } else {
            s->other_bytes += t->size;
        }
    }
    if (s->tied)
        s->output_bytes += s->embd_bytes;
    s->layer_pad = matrices0 * GPU_PAD_PER_MATRIX;

    if (n_ctx <= 0)
        n_ctx = hp.n_ctx_train > 0 && hp.n_ctx_train < 4096 ? hp.n_ctx_train : 4096;
    if (n_batch <= 0)
        n_batch = 512;
    if (n_batch > n_ctx)
        n_batch = n_ctx;
    if (n_slots < 1)
        n_slots = 1;
    const uint64_t slots = (uint64_t)n_slots, nb = (uint64_t)n_batch, d = (uint64_t)hp.n_embd;
    const uint64_t qd = (uint64_t)hp.n_head * (uint64_t)hp.head_dim;
    const uint64_t kvd = (uint64_t)hp.n_head_kv * (uint64_t)hp.head_dim;
    const uint64_t ff = (uint64_t)hp.n_ff, wide = qd > d ? qd : d;
    const uint64_t kv_positions = ((uint64_t)n_ctx + BACKEND_KV_BLOCK - 1) / BACKEND_KV_BLOCK * BACKEND_KV_BLOCK;
    s->kv_layer_bytes = 2 * kv_positions * kvd * (kv_type == KV_F32 ? 4 : 2) * slots;
    /* The buffers model_ctx_new allocates (context.c). */
    s->act_io_bytes = nb * (d + wide) * 4 * slots;
    s->act_layer_bytes = nb * (2 * qd + 2 * kvd + 2 * ff) * 4 * slots;
    s->logits_bytes = (nb < MODEL_LOGITS_ROWS ? nb : MODEL_LOGITS_ROWS) * vocab * 4 * slots;
    /* The CUDA backend's scratch (cuda_reserve and the split attention), shared by the contexts. */
    uint64_t max_cols = ff > d ? ff : d, max_elems = 0;
    if (qd > max_cols)
        max_cols = qd;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        uint64_t elems = (uint64_t)t->ne[0] * (uint64_t)t->ne[1];
        if (t->n_dims >= 2 && elems > max_elems)
            max_elems = elems;
    }
    const uint64_t qb = nb < 8 ? nb : 8;
    uint64_t work = GPU_WORK_FIXED + qb * max_cols + qb * (max_cols / 32 + 1) * 8;
    if (nb > 8)
        work += nb * max_cols * 4 + (max_elems < ((uint64_t)64 << 20) ? max_elems : ((uint64_t)64 << 20)) * 2;
    work += 8 * (uint64_t)hp.n_head * ((uint64_t)hp.head_dim + 2) * 4 * ((uint64_t)n_ctx / 32 + 2);
    s->gpu_work_bytes = work;
    return 0;
}

static uint64_t blocks_bytes(const struct plan_sizes *s, int first, int last, bool pad)
{
    uint64_t b = 0;
    for (int il = first; il < last; il++)
        b += s->layer_bytes[il] + (pad ? s->layer_pad : 0);
    return b;
}

/* Fills p's bytes for g blocks on the GPU, the output head (out) and the embeddings (embd) there. */
static void fill(const struct plan_sizes *s, int g, bool out, bool embd, struct mem_plan *p)
{
    const int L = s->n_layer;
    p->n_layer = L;
    p->n_gpu_layers = g;
    p->output_gpu = out;
    p->embd_gpu = embd;
    const bool gpu_used = g > 0 || out || embd;
    const bool cpu_layers = g < L;
    /* The CPU runs whatever is not on the GPU: blocks, the head, the embedding lookup. */
    const bool cpu_used = cpu_layers || !out || !embd;

    p->gpu_weights = blocks_bytes(s, L - g, L, true);
    if (out)
        p->gpu_weights += s->output_bytes;
    if (embd && !(s->tied && out))
        p->gpu_weights += s->embd_bytes;
    if (gpu_used)
        p->gpu_weights += s->other_bytes;
    p->gpu_kv = (uint64_t)g * s->kv_layer_bytes;
    p->gpu_scratch = 0;
    if (gpu_used)
        p->gpu_scratch = s->act_io_bytes + s->gpu_work_bytes + (g > 0 ? s->act_layer_bytes : 0) +
                         (out ? s->logits_bytes : 0);

    p->cpu_weights = blocks_bytes(s, 0, L - g, false);
    if (!embd)
        p->cpu_weights += s->embd_bytes;
    if (!out)
        p->cpu_weights += s->tied ? s->output_bytes - s->embd_bytes : s->output_bytes;
    if (cpu_layers)
        p->cpu_weights += s->other_bytes;
    p->cpu_kv = (uint64_t)(L - g) * s->kv_layer_bytes;
    p->cpu_scratch = 0;
    if (cpu_used)
        p->cpu_scratch = s->act_io_bytes + (cpu_layers ? s->act_layer_bytes : 0) + (!out ? s->logits_bytes : 0);
}

static uint64_t need(const struct plan_sizes *s, int g, bool out, bool embd)
{
    struct mem_plan p;
    memset(&p, 0, sizeof p);
    fill(s, g, out, embd, &p);
    return plan_gpu_bytes(&p);
}

void plan_choose(const struct plan_sizes *s, int num_gpu, uint64_t gpu_avail, struct mem_plan *p)
{
    const int L = s->n_layer;
    int g = 0;
    bool out = false, embd = false;
    if (gpu_avail == 0) {
        /* No GPU: everything on the CPU. */
    } else if (num_gpu < 0) {
        for (int k = L; k >= 1; k--)
            if (need(s, k, false, false) <= gpu_avail) {
                g = k;
                break;
            }
        out = g == L && need(s, L, true, false) <= gpu_avail;
        embd = out && (s->tied || need(s, L, true, true) <= gpu_avail);
    } else {
        g = num_gpu < L ? num_gpu : L;
        out = num_gpu > L;
        embd = out;
    }
    p->num_gpu = num_gpu;
    fill(s, g, out, embd, p);
}

int plan_offloaded(const struct mem_plan *p) { return p->n_gpu_layers + (p->output_gpu ? 1 : 0); }

uint64_t plan_gpu_bytes(const struct mem_plan *p) { return p->gpu_weights + p->gpu_kv + p->gpu_scratch; }

uint64_t plan_cpu_bytes(const struct mem_plan *p) { return p->cpu_weights + p->cpu_kv + p->cpu_scratch; }

void plan_processor(uint64_t size, uint64_t size_vram, char *buf, size_t cap)
{
    if (size_vram == 0)
        snprintf(buf, cap, "100%% CPU");
    else if (size_vram == size)
        snprintf(buf, cap, "100%% GPU");
    else if (size == 0 || size_vram > size)
        snprintf(buf, cap, "Unknown");
    else {
        /* Rounded as Ollama rounds: the CPU share to the nearest percent, the GPU share the rest. */
        int cpu = (int)((double)(size - size_vram) * 100.0 / (double)size + 0.5);
        if (cpu == 0)
            cpu = 1; /* some of it is on the CPU: never print 0%/100% */
        if (cpu == 100)
            cpu = 99;
        snprintf(buf, cap, "%d%%/%d%% CPU/GPU", cpu, 100 - cpu);
    }
}

static const char *bytes_str(uint64_t b, char *buf, size_t cap)
{
    if (b >= (uint64_t)1 << 30)
        snprintf(buf, cap, "%.2f GiB", (double)b / (1 << 30));
    else if (b >= (uint64_t)1 << 20)
        snprintf(buf, cap, "%.1f MiB", (double)b / (1 << 20));
    else if (b >= 1024)
        snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
    else
        snprintf(buf, cap, "%u B", (unsigned)b);
    return buf;
}

void plan_describe(const struct mem_plan *p, char *buf, size_t cap)
{
    char a[32], b[32], c[32], d[32], f[32], proc[32];
    size_t len = 0;
#define PUT(...)                                                                                       \
    do {                                                                                               \
        if (len < cap)                                                                                 \
            len += (size_t)snprintf(buf + len, cap - len, __VA_ARGS__);                                \
    } while (0)
    if (cap)
        buf[0] = '\0';
    plan_processor(plan_cpu_bytes(p) + plan_gpu_bytes(p), plan_gpu_bytes(p), proc, sizeof proc);
    PUT("memory plan:          %s; offloaded %d/%d layers to the GPU (num_gpu %d%s)\n", proc, plan_offloaded(p),
        p->n_layer + 1, p->num_gpu, p->num_gpu < 0 ? ": as many as fit" : "");
    if (plan_offloaded(p) > 0) {
        if (p->n_gpu_layers > 0)
            PUT("  on the GPU:         blocks %d-%d%s%s\n", p->n_layer - p->n_gpu_layers, p->n_layer - 1,
                p->output_gpu ? ", output head" : "", p->embd_gpu ? ", token embeddings" : "");
        else
            PUT("  on the GPU:         %s\n", p->output_gpu ? "output head" : "nothing");
        PUT("  GPU memory:         weights %s, KV cache %s, scratch %s (%s: %s free of %s before loading)\n",
            bytes_str(p->gpu_weights, a, sizeof a), bytes_str(p->gpu_kv, b, sizeof b),
            bytes_str(p->gpu_scratch, c, sizeof c), p->gpu[0] ? p->gpu : "GPU", bytes_str(p->gpu_free, d, sizeof d),
            bytes_str(p->gpu_total, f, sizeof f));
    } else if (p->gpu[0]) {
        PUT("  GPU:                %s, %s free of %s (nothing placed there)\n", p->gpu,
            bytes_str(p->gpu_free, d, sizeof d), bytes_str(p->gpu_total, f, sizeof f));
    }
    if (plan_cpu_bytes(p) > 0)
        PUT("  CPU memory:         weights %s (mapped from the file), KV cache %s, scratch %s\n",
            bytes_str(p->cpu_weights, a, sizeof a), bytes_str(p->cpu_kv, b, sizeof b),
            bytes_str(p->cpu_scratch, c, sizeof c));
    if (p->note[0])
        PUT("  note:               %s\n", p->note);
#undef PUT
}
