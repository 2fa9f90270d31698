"""GPU workers' kernel caches: where they are (standard library only)."""

import os
from collections.abc import Mapping

# CUDA's JIT cache is 256 MB to 1 GB by default; Cycles' kernels, compiled from PTX for a GPU
# the bpy wheel has no binary for (H100: sm_90), need more. 4 GiB is CUDA's largest value.
KERNEL_CACHE_BYTES = 4 * 2**30


def cache_env(folder, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Kernel caches that outlive a worker: CUDA's JIT cache and OptiX's, in `folder`, for
    each variable the user did not set, so a restarted or recycled worker (and the next run)
    loads compiled kernels instead of compiling them again."""
    wanted = {
        "CUDA_CACHE_PATH": os.path.join(folder, "cuda"),
        "CUDA_CACHE_MAXSIZE": str(KERNEL_CACHE_BYTES),
        "OPTIX_CACHE_PATH": os.path.join(folder, "optix"),
        "OPTIX_CACHE_MAXSIZE": str(KERNEL_CACHE_BYTES),
    }
    return {name: value for name, value in wanted.items() if name not in environ}
