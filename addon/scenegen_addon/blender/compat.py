"""Every Blender-version difference in one place (ARCHITECTURE rule 4).

SceneGen targets Blender 5.0+ (the manifest's minimum). What moves between versions is
here: node trees of materials and worlds (always present in 5.0; use_nodes before), the
5.0 compositor (a node group set as scene.compositing_node_group, a File Output node with
`directory`, `file_name` and `file_output_items`), the image-format fields, and the Cycles
device preferences.
"""

from functools import lru_cache

import bpy

from ..core import presets

MIN_VERSION = (5, 0, 0)
INDEX_ITEM = "index"  # the File Output item carrying the Object Index pass


def check_version() -> None:
    if bpy.app.version < MIN_VERSION:
        raise RuntimeError(
            f"SceneGen needs Blender {'.'.join(map(str, MIN_VERSION))} or newer, "
            f"this is {bpy.app.version_string}"
        )


def node_tree(idblock):
    """The shader node tree of a new material or world (5.0 creates it with the block)."""
    if idblock.node_tree is None:
        idblock.use_nodes = True
    return idblock.node_tree


def set_png_rgb8(image_settings) -> None:
    """PNG, 8-bit, RGB, no alpha (SPEC 3; core.presets.RENDER_SETTINGS)."""
    fixed = presets.RENDER_SETTINGS
    image_settings.media_type = "IMAGE"
    image_settings.file_format = fixed["file_format"]
    image_settings.color_mode = fixed["color_mode"]
    image_settings.color_depth = fixed["color_depth"]
    image_settings.compression = 15


def add_index_output(scene, directory: str):
    """A compositor writing the Object Index pass as a single-layer float EXR.

    Returns the File Output node; its file is directory + file_name + "index" + ".exr"
    (no frame number: the name holds no '#').
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
    item = out.file_output_items.new("FLOAT", INDEX_ITEM)
    tree.links.new(layers.outputs["Object Index"], out.inputs[item.name])
    return out



def set_index_file_name(output_node, file_name: str) -> None:
    output_node.file_name = file_name


def index_file_path(directory: str, file_name: str) -> str:
    return f"{directory}{file_name}{INDEX_ITEM}.exr"


def _cycles_preferences():
    return bpy.context.preferences.addons["cycles"].preferences


@lru_cache(maxsize=1)
def _devices() -> tuple[tuple[str, str], ...]:
    prefs = _cycles_preferences()
    prefs.refresh_devices()
    found = []
    for device in prefs.devices:
        if (device.type, device.name) not in found:
            found.append((device.type, device.name))
    return tuple(found)


def list_devices() -> list[tuple[str, str]]:
    """Every Cycles render device Blender finds here, as (type, name); CPU included.

    Looked up once per process: devices do not come and go while a worker runs.
    """
    return list(_devices())


def use_devices(scene, device_type: str, names: list[str]) -> None:
    """Render `scene` on exactly the named devices of `device_type` ("CPU" or a GPU type)."""
    prefs = _cycles_preferences()
    if device_type == "CPU":
        prefs.compute_device_type = "NONE"
        scene.cycles.device = "CPU"
        return
    prefs.compute_device_type = device_type
    for device in prefs.devices:
        device.use = device.type == device_type and device.name in names
    scene.cycles.device = "GPU"
