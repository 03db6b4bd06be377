/* backend_select.c — picks the backend a command runs on: CUDA when compiled in, wanted and usable,
 * the CPU otherwise (see backend_select.h). */
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend_select.h"
#ifdef HEARTH_HAVE_CUDA
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
