"""Cycles settings of FORMAT 3 and the render-device choice (never a silent CPU fall-back)."""

from dataclasses import dataclass

from ..core import layout, presets
from . import compat

GPU_TYPES = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")  # in order of preference
AUTO_GPUS = ("OPTIX", "CUDA")  # what AUTO takes, in order, before the CPU
# GPU = the first GPU type present, an error when there is none.
DEVICES = ("AUTO", "GPU", "CPU", *GPU_TYPES)


@dataclass(frozen=True)
class RenderSettings:
    width: int
    height: int
    samples: int
    device: str = "AUTO"
    cycles: tuple = ()  # the quality's (attribute of scene.cycles, value) pairs
    # Keep Cycles' session, device and kernels alive from render to render (None: on GPUs,
    # where a new session per view would load or compile kernels again; it changes no pixel).
    persistent_data: bool | None = None
    # OIDN on the GPU (None: when rendering on one); the doctor times it on and off.
    denoise_on_gpu: bool | None = None
    # the plan's optional passes (core.layout.PASSES names, --passes); none changes a pixel
    # of the images
    passes: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("width", "height", "samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r} is unknown: allowed are {', '.join(DEVICES)}")
        unknown = [name for name in self.passes if name not in layout.PASSES]
        if unknown:
            raise ValueError(f"pass {unknown[0]!r} is unknown: allowed are "
                             f"{', '.join(layout.PASSES)}")


def choose_device(available, requested: str = "AUTO") -> tuple[str, list]:
    """Pick the device type and its devices from Cycles' devices (`compat.CyclesDevice`:
    type, id, name), so that they can be enabled by id.

    AUTO takes OPTIX when present, then CUDA, else the CPU; GPU takes the first type of
    GPU_TYPES present. An explicit type (or GPU) must be there: a missing GPU raises
    RuntimeError naming what there is, never a silent CPU fall-back.
    """
    if requested not in DEVICES:
        raise ValueError(f"device {requested!r} is unknown: allowed are {', '.join(DEVICES)}")
    by_type = {}
    for device in available:
        by_type.setdefault(device.type, []).append(device)
    if requested == "AUTO":
        requested = next((kind for kind in AUTO_GPUS if kind in by_type), "CPU")
    elif requested == "GPU":
        requested = next((kind for kind in GPU_TYPES if kind in by_type), "GPU")
    if requested == "CPU":
        return "CPU", by_type.get("CPU", [])
    if requested not in by_type:
        there = ", ".join(f"{d.type}: {d.name}" for d in available) or "no devices"
        raise RuntimeError(
            f"render device {requested} was asked for but is not here (found {there})"
        )
    return requested, by_type[requested]


def configure(scene, settings: RenderSettings) -> dict:
    """Cycles with OIDN and adaptive sampling, Standard view, PNG RGB 8-bit, the quality's
    own Cycles settings; the device.

    Returns {"device", "device_name"} for the scene record.
    """
    fixed = presets.RENDER_SETTINGS
    render = scene.render
    render.engine = fixed["engine"]
    render.resolution_x, render.resolution_y = settings.width, settings.height
    render.resolution_percentage = 100
    render.film_transparent = False
    render.use_file_extension = True  # the index EXR's name gets its extension
    # No metadata in the files (date, render time, memory, Cycles timings...): the same
    # pixels then make the same bytes. Blender writes none of it, the render engine's fields
    # included, only when every stamp bit is clear; use_stamp_labels is stored inverted (as
    # "hide labels"), so it must stay True while every other use_stamp_* flag goes off.
    for prop in render.bl_rna.properties:
        if prop.identifier.startswith("use_stamp") and prop.type == "BOOLEAN":
            setattr(render, prop.identifier, prop.identifier == "use_stamp_labels")
    for name in list(scene.cycles.keys()):  # a reused scene forgets earlier settings
        scene.cycles.property_unset(name)
    scene.cycles.samples = settings.samples
    scene.cycles.use_adaptive_sampling = fixed["use_adaptive_sampling"]
    for name, value in settings.cycles:
        setattr(scene.cycles, name, value)
    scene.cycles.use_denoising = fixed["use_denoising"]
    scene.cycles.denoiser = fixed["denoiser"]
    scene.view_settings.view_transform = fixed["view_transform"]
    scene.view_settings.look = fixed["look"]
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    compat.set_png_rgb8(render.image_settings)
    device, chosen = choose_device(compat.list_devices(), settings.device)
    compat.use_devices(scene, device, [d.id for d in chosen])
    on_gpu = device != "CPU" if settings.denoise_on_gpu is None else settings.denoise_on_gpu
    scene.cycles.denoising_use_gpu = on_gpu  # OIDN on the GPU too (Cycles' default: CPU)
    persistent = settings.persistent_data
    render.use_persistent_data = device != "CPU" if persistent is None else persistent
    return {"device": device, "device_name": ", ".join(d.name for d in chosen)}
