/* cuda_launch.cuh — programmatic dependent launch (Hopper) for the decode-step kernels: a kernel launched
 * with pdl_launch may start while the kernel before it on the stream is still finishing; it announces at
 * once that its own successor may start (pdl_trigger) and waits for its predecessor's results
 * (pdl_wait) only before it reads them, so launch latency and a product's first weight loads overlap
 * the previous kernel's tail. Every kernel launched this way must call pdl_wait before touching what
 * an earlier kernel wrote. On by default (H100: 1B Q4_0 decode 1,026-1,052 -> 1,160-1,175 tok/s, 8B
 * 345 -> 364-369); HEARTH_CUDA_PDL=0 launches plainly. */
#ifndef HEARTH_BACKEND_CUDA_LAUNCH_CUH
#define HEARTH_BACKEND_CUDA_LAUNCH_CUH

#include <cuda_runtime.h>
#include <stdlib.h>

__device__ __forceinline__ void pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static inline int pdl_enabled(void)
{
    static int on = -1;
    if (on < 0) {
        const char *env = getenv("HEARTH_CUDA_PDL");
        on = !(env && *env == '0');
    }
    return on;
}

template <typename... KArgs, typename... Args>
static inline void pdl_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                              Args... args)
{
    if (!pdl_enabled()) {
        kernel<<<grid, block, smem, s>>>(static_cast<KArgs>(args)...);
        return;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

#endif
