"""Materials of FORMAT 4 (Principled BSDF), the matte ground and the soft grey world.

Colours are used as linear base colours rgb / 255 (FORMAT 4); with the Standard view
transform the picture keeps CLEVR's look.
"""

import bpy

from ..core import spec as core_spec
from . import compat

GROUND_COLOR = (0.4, 0.4, 0.4)  # linear, matte grey
GROUND_ROUGHNESS = 0.9
WORLD_COLOR = (0.5, 0.5, 0.5)  # a soft grey sky: fills the shadows without casting its own
WORLD_STRENGTH = 0.4


def principled(name: str, color, metallic: float, roughness: float) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    tree = compat.node_tree(material)
    bsdf = next(node for node in tree.nodes if node.bl_idname == "ShaderNodeBsdfPrincipled")
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Roughness"].default_value = roughness
    material.diffuse_color = (*color, 1.0)  # the viewport's solid-mode colour
    return material


def object_material(color: str, rgb, material: str, cache: dict) -> bpy.types.Material:
    """The material of one (colour, material) pair, made once per scene via `cache`."""
    key = (color, material)
    if key not in cache:
        params = core_spec.MATERIALS[material]
        linear = tuple(c / 255.0 for c in rgb)
        name = f"{color}_{material}"
        cache[key] = principled(name, linear, params["metallic"], params["roughness"])
    return cache[key]


def ground_material() -> bpy.types.Material:
    return principled("ground", GROUND_COLOR, 0.0, GROUND_ROUGHNESS)


def world(name: str) -> bpy.types.World:
    result = bpy.data.worlds.new(name)
    tree = compat.node_tree(result)
    background = next(node for node in tree.nodes if node.bl_idname == "ShaderNodeBackground")
    background.inputs["Color"].default_value = (*WORLD_COLOR, 1.0)
    background.inputs["Strength"].default_value = WORLD_STRENGTH
    result.color = WORLD_COLOR
    return result
