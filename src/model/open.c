/* open.c — model_open: the CPU backend, the GPU one when it is wanted and usable, the memory plan
 * (plan.h) from the file's tensor sizes and the GPU's free memory, and the load with the plan's split. */
#include <stdio.h>
#include <string.h>

#include "backend/backend_select.h"
#include "gguf/gguf.h"
#include "model/model.h"

/* Measures the file for the plan; false when it cannot be (the load then reports why) or it is an encoder
 * (BERT runs on the CPU). */
static bool measure(const char *path, const struct load_params *lp, struct plan_sizes *sz)
{
    struct gguf_file *f = NULL;
    struct err ignored = {0};
    if (gguf_open(path, &f, &ignored))
        return false;
    struct hparams hp;
    bool ok = hparams_from_gguf(f, &hp, &ignored) == 0 && hp.arch != ARCH_BERT &&
              plan_sizes_from_gguf(f, lp->ctx.n_ctx, lp->ctx.n_batch, lp->ctx.kv_type, lp->n_slots, sz, &ignored) == 0;
    gguf_close(f);
    return ok;
}

int model_open(const char *path, const struct load_params *lp, struct model **out, struct err *e)
{
    *out = NULL;
    struct mem_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.num_gpu = lp->num_gpu;
    struct backend *cpu = NULL, *gpu = NULL;
    int rc = backend_cpu_new(lp->n_threads, &cpu, e);
    if (rc)
        return rc;
    struct plan_sizes sz;
    memset(&sz, 0, sizeof sz);
    const bool measured = measure(path, lp, &sz);
    if (lp->num_gpu != 0 && measured) {
        struct gpu_info gi;
        struct err ge = {0};
        if (backend_gpu_new(&gpu, &gi, &ge) == 0) {
            snprintf(plan.gpu, sizeof plan.gpu, "%s", gi.name);
            plan.gpu_free = gi.free;
            plan.gpu_total = gi.total;
        } else {
            snprintf(plan.note, sizeof plan.note, "GPU not used: %s", ge.msg);
        }
    }
    uint64_t avail = gpu && plan.gpu_free > PLAN_GPU_MARGIN ? plan.gpu_free - PLAN_GPU_MARGIN : 0;
    if (measured)
        plan_choose(&sz, lp->num_gpu, avail, &plan); /* avail 0 (no GPU): all on the CPU */
    struct model *m = NULL;
    for (int attempt = 0;; attempt++) {
        const bool use_gpu = gpu && (plan_offloaded(&plan) > 0 || plan.embd_gpu);
        const struct placement pl = {
            .lo = cpu,
            .hi = use_gpu ? gpu : NULL,
            .n_hi = plan.n_gpu_layers,
            .output_hi = plan.output_gpu,
            .embd_hi = plan.embd_gpu,
        };
        rc = model_load_placed(path, &pl, &m, e);
        if (rc == ERR_NOMEM && use_gpu && lp->num_gpu < 0 && attempt < 8) {
            /* The plan asked for more GPU memory than there was: try again with an eighth less. */
            avail = plan_gpu_bytes(&plan) - plan_gpu_bytes(&plan) / 8;
            plan_choose(&sz, lp->num_gpu, avail, &plan);
            continue;
        }
        break;
    }
    plan_sizes_free(&sz);
    if (rc) {
        if (gpu)
            gpu->ops->free(gpu);
        cpu->ops->free(cpu);
        return rc;
    }
    if (m->n_be < 2 && gpu) {
        gpu->ops->free(gpu); /* nothing was placed there: release the device */
        gpu = NULL;
    }
    m->owned[0] = cpu;
    m->owned[1] = gpu;
    if (!measured) {
        plan.n_layer = m->hp.n_layer;
        plan.cpu_weights = m->weight_bytes;
    }
    m->plan = plan;
    *out = m;
    return 0;
}
