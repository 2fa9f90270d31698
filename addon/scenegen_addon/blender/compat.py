"""Every Blender-version difference in one place (ARCHITECTURE rule 4).

SceneGen targets Blender 5.0+ (the manifest's minimum). What moves between versions is
here: node trees of materials and worlds (always present in 5.0; use_nodes before), the
5.0 compositor (a node group set as scene.compositing_node_group, a File Output node with
`directory`, `file_name` and `file_output_items`), the image-format fields, and the Cycles
device preferences.
"""

from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import bpy

from ..core import about, presets

INDEX_ITEM = "index"  # the File Output item carrying the Object Index pass


def check_version() -> None:
    if not about.blender_supported(bpy.app.version):
        raise RuntimeError(f"SceneGen supports {about.SUPPORTED}; this is "
                           f"{bpy.app.version_string}")


def node_tree(idblock):
    """The shader node tree of a new material or world (5.0 creates it with the block)."""
    if idblock.node_tree is None:
        idblock.use_nodes = True
    return idblock.node_tree


def set_png_rgb8(image_settings) -> None:
    """PNG, 8-bit, RGB, no alpha (FORMAT 3; core.presets.RENDER_SETTINGS)."""
    fixed = presets.RENDER_SETTINGS
    image_settings.media_type = "IMAGE"
    image_settings.file_format = fixed["file_format"]
    image_settings.color_mode = fixed["color_mode"]
    image_settings.color_depth = fixed["color_depth"]
    image_settings.compression = 15


def add_index_output(scene, directory: str, items: dict[str, str]):
    """A compositor writing render passes as single-layer float EXRs: `items` maps each
    File Output item's name to the Render Layers output it carries ("Object Index", ...).

    Returns the File Output node; its files are directory + file_name + item + ".exr"
    (exr_path; no frame number: the name holds no '#').
    """
    tree = bpy.data.node_groups.new(f"{scene.name}_compositor", "CompositorNodeTree")
    scene.compositing_node_group = tree
    scene.render.use_compositing = True
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.directory = directory
    out.format.media_type = "IMAGE"
    out.format.file_format = "OPEN_EXR"
    out.format.color_depth = "32"
    out.format.exr_codec = "ZIP"
    for name, output in items.items():
        item = out.file_output_items.new("FLOAT", name)
        tree.links.new(layers.outputs[output], out.inputs[item.name])
    return out


def exr_path(directory: str, file_name: str, item: str = INDEX_ITEM) -> str:
    return f"{directory}{file_name}{item}.exr"


def _cycles_preferences():
    return bpy.context.preferences.addons["cycles"].preferences


class CyclesDevice(NamedTuple):
    """One render device as Cycles reports it: `id` is what the preferences match on."""

    type: str  # "CPU", "OPTIX", "CUDA", ...
    id: str
    name: str


# every device type Cycles can list (its refresh_devices asks the same ones, and the CPU)
CYCLES_TYPES = ("CPU", "OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")


@cache
def list_devices() -> tuple[CyclesDevice, ...]:
    """Every Cycles render device here; CPU included.

    Asked of Cycles (get_devices_for_type), never read from `prefs.devices`: that list is
    saved with the preferences and keeps devices long gone, and refresh_devices only adds to
    it. Looked up once per process: devices do not come and go while a worker runs.
    """
    prefs = _cycles_preferences()
    found: list[CyclesDevice] = []
    for kind in CYCLES_TYPES:
        for entry in prefs.get_devices_for_type(kind):  # a GPU type's list ends with the CPU
            device = CyclesDevice(entry.type, entry.id, entry.name)
            if entry.type == kind and device not in found:
                found.append(device)
    return tuple(found)


def use_devices(scene, device_type: str, ids: Sequence[str]) -> None:
    """Render `scene` on exactly the devices `ids` of `device_type` ("CPU" or a GPU type).

    GPU devices are enabled by id among those Cycles finds now, every other entry (the CPU,
    stale saved ones) off; Cycles must then report an active device. Otherwise it would
    render on the CPU without a word, so this raises RuntimeError instead.
    """
    prefs = _cycles_preferences()
    if device_type == "CPU":
        prefs.compute_device_type = "NONE"
        scene.cycles.device = "CPU"
        return
    prefs.compute_device_type = device_type
    present = [e.id for e in prefs.get_devices_for_type(device_type) if e.type == device_type]
    missing = [i for i in ids if i not in present]
    if missing:
        raise RuntimeError(
            f"Cycles finds no {device_type} device with id {', '.join(missing)} (its "
            f"{device_type} devices: {', '.join(present) or 'none'}); refusing to render on the "
            "CPU instead")
    for entry in prefs.devices:
        entry.use = entry.type == device_type and entry.id in ids
    if not prefs.has_active_device():
        raise RuntimeError(
            f"Cycles reports no active {device_type} device after enabling "
            f"{', '.join(ids) or 'none'}; refusing to render on the CPU instead")
    scene.cycles.device = "GPU"
