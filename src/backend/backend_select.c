/* backend_select.c — picks the backend a command runs on: CUDA when compiled in, wanted and usable,
 * the CPU otherwise; makes the GPU half of a split and reads its free memory (see backend_select.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_select.h"
#ifdef HEARTH_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda.h"
#endif

bool backend_have_cuda(void)
{
#ifdef HEARTH_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

int backend_new_auto(int n_threads, bool want_gpu, struct backend **out, const char **note, struct err *e)
{
    static char why[sizeof e->msg + 64];
    why[0] = '\0';
    if (note)
        *note = why;
    int device = 0;
    const char *env = getenv("HEARTH_GPU");
    if (env && *env) {
        long v = strtol(env, NULL, 10);
        want_gpu = v > 0;
        if (v > 1)
            device = (int)(v - 1);
    }
    if (want_gpu) {
#ifdef HEARTH_HAVE_CUDA
        struct err ge = {0};
        if (backend_cuda_new(device, out, &ge) == 0)
            return 0;
        snprintf(why, sizeof why, "GPU not used: %s; running on the CPU", ge.msg);
#else
        (void)device;
        snprintf(why, sizeof why, "GPU not used: this build of hearth has no CUDA backend (configure with "
                                  "-DHEARTH_CUDA=ON); running on the CPU");
#endif
    }
    return backend_cpu_new(n_threads, out, e);
}

int backend_gpu_new(struct backend **out, struct gpu_info *info, struct err *e)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    const char *env = getenv("HEARTH_GPU");
    long v = env && *env ? strtol(env, NULL, 10) : 1;
    if (v <= 0)
        return err_set(e, ERR_UNSUPPORTED, "HEARTH_GPU=%s keeps the model on the CPU", env);
    info->device = v > 1 ? (int)(v - 1) : 0;
#ifdef HEARTH_HAVE_CUDA
    int rc = backend_cuda_new(info->device, out, e);
    if (rc)
        return rc;
    size_t fr = 0, tot = 0;
    if (cudaSetDevice(info->device) != cudaSuccess || cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        cudaError_t ce = cudaGetLastError();
        (*out)->ops->free(*out);
        *out = NULL;
        return err_set(e, ERR_UNSUPPORTED, "cannot read the memory of GPU %d (%s)", info->device,
                       cudaGetErrorString(ce));
    }
    info->free = fr;
    info->total = tot;
    snprintf(info->name, sizeof info->name, "%s", backend_cuda_device_name(info->device));
    return 0;
#else
    return err_set(e, ERR_UNSUPPORTED, "this build of hearth has no CUDA backend (configure with -DHEARTH_CUDA=ON)");
#endif
}
