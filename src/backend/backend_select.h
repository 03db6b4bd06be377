/* backend_select.h — choosing the backend at run time: the CUDA backend when the build has it, a GPU
 * is present and the user asked for it (a --gpu flag, or HEARTH_GPU=1), else the CPU backend; and the
 * GPU half of a layer split (model_open) with the device's free memory for the memory plan. */
#ifndef HEARTH_BACKEND_SELECT_H
#define HEARTH_BACKEND_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

/* Creates a backend. want_gpu, or the environment variable HEARTH_GPU set to a non-zero number (its
 * value minus one picks the device for values above 1, e.g. HEARTH_GPU=2 is the second GPU), asks for
 * the GPU; HEARTH_GPU=0 forces the CPU even with want_gpu. When the GPU is asked for but this build
 * has no CUDA backend or no device is usable, the CPU backend is made and *note (if not NULL) says
 * why; otherwise *note is "". n_threads is for the CPU backend (<= 0: physical cores). */
int backend_new_auto(int n_threads, bool want_gpu, struct backend **out, const char **note, struct err *e);

/* True when this build includes the CUDA backend. */
bool backend_have_cuda(void);

/* The GPU a CUDA backend runs on. */
struct gpu_info {
    int device;
    char name[96];
    uint64_t free, total; /* device memory in bytes, as the driver reports it after the backend was made */
};

/* Creates the CUDA backend for a layer split, on the device HEARTH_GPU names (HEARTH_GPU=N, N > 1: device
 * N - 1; else the first), and reports the device's memory. Fails (ERR_UNSUPPORTED, or ERR_INVALID for
 * a device that does not exist) with the reason when this build has no CUDA backend, HEARTH_GPU=0
 * forbids the GPU, or no GPU is usable. */
int backend_gpu_new(struct backend **out, struct gpu_info *info, struct err *e);

#endif
