"""Which Cycles GPU backend a build uses (`--gpu-backend`)."""

BACKENDS = {"auto": "GPU", "optix": "OPTIX", "cuda": "CUDA"}  # --gpu-backend -> Cycles device
