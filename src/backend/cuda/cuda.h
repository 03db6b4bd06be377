/* cuda.h — the CUDA backend: every op of backend.h on one NVIDIA GPU. Weights are copied to the
 * device once when the model is loaded; activations and the KV cache live in device memory; a decode
 * step runs on one stream and synchronises with the host only when the logits are read.
 * Compiled only when the build has HEARTH_CUDA=ON (which defines HEARTH_HAVE_CUDA). */
#ifndef HEARTH_BACKEND_CUDA_CUDA_H
#define HEARTH_BACKEND_CUDA_CUDA_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates the CUDA backend on device index `device` (0 = first GPU). Fails with ERR_UNSUPPORTED
 * when no usable GPU is present, with a message naming the CUDA error. */
int backend_cuda_new(int device, struct backend **out, struct err *e);

/* Reports the first CUDA or cuBLAS error an op hit since the backend was made (ops return nothing,
 * so a failed launch is kept until asked for); 0 when all went well. be must be a CUDA backend. */
int backend_cuda_check(struct backend *be, struct err *e);

/* How many one-token steps were replayed from the recorded CUDA graph and how many were captured
 * (first step, or a step whose ops differ from the graph's). be must be a CUDA backend. */
void backend_cuda_graph_stats(struct backend *be, long *replays, long *captures);

/* Number of CUDA devices the driver reports (0 when there is none or no driver). */
int backend_cuda_device_count(void);

/* Name of device `device` ("NVIDIA H100 80GB HBM3"), or "" if unknown; the string is static. */
const char *backend_cuda_device_name(int device);

#ifdef __cplusplus
}
#endif

#endif
