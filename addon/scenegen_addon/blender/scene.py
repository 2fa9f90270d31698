"""Build exactly one SceneSpec in a bpy Scene, and empty or remove it without leaks.

Meshes are the core's (shapes.mesh: ARCHITECTURE rule 8), one datablock per shape shared
by the scene's objects; every object sits at the spec's position, yaw and scale with
pass_index = i + 1, which the Object Index pass writes into the masks.
"""

import math

import bpy
from mathutils import Matrix

from ..core import camera, shapes
from ..core.spec import GROUND_SIZE, SceneSpec
from . import compat, materials, passes, render

RENDER_SCENE = "scenegen render"  # the scene batch renders reuse (render_scene)
RENDER_KEY = "scenegen_render"  # custom property marking it: a user's scene is never reused
VIEW_KEY = "scenegen_view"  # custom property: the view index of a camera object


def _shape_mesh(shape: str, name: str) -> bpy.types.Mesh:
    unit = shapes.mesh(shape)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(unit.vertices.tolist(), [], [list(face) for face in unit.faces])
    mesh.shade_smooth()
    mesh.materials.append(None)  # one slot, filled per object
    return mesh


def _ground(scene) -> bpy.types.Object:
    half = GROUND_SIZE / 2
    mesh = bpy.data.meshes.new(f"{scene.name}_ground")
    corners = [(-half, -half, 0.0), (half, -half, 0.0), (half, half, 0.0), (-half, half, 0.0)]
    mesh.from_pydata(corners, [], [(0, 1, 2, 3)])
    mesh.materials.append(materials.ground_material())
    ground = bpy.data.objects.new("ground", mesh)
    scene.collection.objects.link(ground)
    return ground


def _objects(scene, spec: SceneSpec) -> None:
    meshes, cache = {}, {}
    for i, obj in enumerate(spec.objects):
        if obj.shape not in meshes:
            meshes[obj.shape] = _shape_mesh(obj.shape, f"{scene.name}_{obj.shape}")
        item = bpy.data.objects.new(obj.id, meshes[obj.shape])
        item.location = (obj.position[0], obj.position[1], 0.0)
        item.rotation_euler = (0.0, 0.0, math.radians(obj.rotation))
        item.scale = (obj.size_value,) * 3
        item.pass_index = i + 1
        scene.collection.objects.link(item)
        # The material sits on the object, so objects share their shape's mesh.
        slot = item.material_slots[0]
        slot.link = "OBJECT"
        slot.material = materials.object_material(obj.color, obj.rgb, obj.material, cache)


def _lights(scene, spec: SceneSpec) -> None:
    for light in spec.lights:
        data = bpy.data.lights.new(f"{scene.name}_{light.name}", "AREA")
        data.shape = "SQUARE"
        data.size = light.size
        data.energy = light.energy
        data.color = (1.0, 1.0, 1.0)
        item = bpy.data.objects.new(light.name, data)
        item.location = light.location
        item.rotation_mode = "XYZ"
        item.rotation_euler = [math.radians(a) for a in light.rotation]
        scene.collection.objects.link(item)


def _cameras(scene, settings: render.RenderSettings) -> None:
    for view in camera.rig(settings.width, settings.height):
        data = bpy.data.cameras.new(f"{scene.name}_{view.view_id}")
        data.lens = camera.LENS_MM
        data.sensor_width = camera.SENSOR_WIDTH_MM
        data.sensor_fit = "HORIZONTAL"
        data.shift_x = data.shift_y = 0.0
        item = bpy.data.objects.new(view.view_id, data)
        item[VIEW_KEY] = view.index
        item.matrix_world = Matrix(view.matrix_world.tolist())
        scene.collection.objects.link(item)
        if view.index == 0:
            scene.camera = item


def view_cameras(scene) -> list:
    """The scene's 4 view cameras in view order (found by their custom property)."""
    cams = [o for o in scene.objects if o.type == "CAMERA" and VIEW_KEY in o]
    return sorted(cams, key=lambda o: o[VIEW_KEY])


def build_scene(spec: SceneSpec, settings: render.RenderSettings, scene=None):
    """`scene` (empty, from clear_scene) or a new bpy Scene holding exactly `spec`,
    configured for Cycles (view 0 active).

    The chosen device is kept on the scene as "scenegen_device" / "scenegen_device_name".
    """
    compat.check_version()
    new = scene is None
    if new:
        scene = bpy.data.scenes.new(spec.scene_id)
    try:
        device = render.configure(scene, settings)
        scene["scenegen_device"] = device["device"]
        scene["scenegen_device_name"] = device["device_name"]
        scene.world = materials.world(f"{scene.name}_world")
        passes.enable(scene.view_layers[0], settings.passes)
        _ground(scene)
        _objects(scene, spec)
        _lights(scene, spec)
        _cameras(scene, settings)
        scene.view_layers[0].update()  # matrix_world valid at once (preview, ray casts)
    except BaseException:
        if new:  # e.g. an absent GPU: leave nothing half-built behind
            remove_scene(scene)
        else:
            clear_scene(scene)
        raise
    return scene


def render_scene() -> bpy.types.Scene:
    """The one scene a process renders its scenes in, emptied after each (clear_scene).

    Blender keeps a render result for every Scene datablock it has rendered, even after
    the scene is removed, unless a new scene happens to get the removed one's address:
    a new scene per render leaked one result (36 bytes per pixel, 28 MB at 1024x768)
    now and then (docs/PERFORMANCE.md, section 3).
    """
    found = next((s for s in bpy.data.scenes if s.get(RENDER_KEY)), None)
    if found is None:
        found = bpy.data.scenes.new(RENDER_SCENE)
        found[RENDER_KEY] = True
    return found


def clear_scene(scene) -> None:
    """Empty the scene: its objects, world and compositor go, with every datablock left
    without users; the Scene itself stays, to be built into again."""
    for item in list(scene.collection.objects):
        bpy.data.objects.remove(item)
    scene.world = None
    scene.compositing_node_group = None
    scene.camera = None
    bpy.data.orphans_purge(do_recursive=True)


def remove_scene(scene) -> None:
    """Remove the scene and every datablock left without users (meshes, materials, ...).

    Removing objects alone leaks their data (ARCHITECTURE: RSS 270 -> 760 MB over 300
    renders). The purge takes every orphan of the file, as Blender's own "Purge" does.
    """
    bpy.data.scenes.remove(scene)
    bpy.data.orphans_purge(do_recursive=True)
