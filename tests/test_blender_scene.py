"""build_scene holds exactly the SceneSpec; clear_scene and remove_scene leave nothing behind
(real bpy)."""

import math

import bpy
import numpy as np
import pytest
from blender_specs import EIGHT, make_scene
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Euler, Vector
from scenegen_addon.blender import render, scene
from scenegen_addon.core import camera, shapes

SETTINGS = render.RenderSettings(240, 160, 4, cycles=(("adaptive_threshold", 0.04),
                                                      ("use_light_tree", False)))


@pytest.fixture
def built():
    bpy.ops.wm.read_homefile(use_empty=True)
    spec = make_scene("train_00001", EIGHT)
    return spec, scene.build_scene(spec, SETTINGS)


def _world_vertices(item) -> np.ndarray:
    local = np.array([v.co[:] for v in item.data.vertices])
    m = np.array(item.matrix_world)
    return local @ m[:3, :3].T + m[:3, 3]


def test_objects_match_the_spec_exactly(built):
    spec, result = built
    meshes = [o for o in result.objects if o.type == "MESH" and o.name != "ground"]
    assert [o.name for o in sorted(meshes, key=lambda o: o.pass_index)] == [
        f"obj_{i}" for i in range(8)
    ]
    for i, obj in enumerate(spec.objects):
        item = result.objects[obj.id]
        assert item.pass_index == i + 1
        # every vertex where the core puts it: same mesh, position, yaw and scale
        assert np.abs(_world_vertices(item) - obj.world_vertices()).max() < 1e-5
        assert len(item.data.vertices) == len(shapes.mesh(obj.shape).vertices)
        assert len(item.data.polygons) == len(shapes.mesh(obj.shape).faces)
        assert all(p.use_smooth for p in item.data.polygons)
        bsdf = item.active_material.node_tree.nodes["Principled BSDF"]
        assert tuple(bsdf.inputs["Base Color"].default_value)[:3] == pytest.approx(
            [c / 255 for c in obj.rgb]
        )
        metallic, roughness = {"metal": (1.0, 0.2), "rubber": (0.0, 0.7)}[obj.material]
        assert bsdf.inputs["Metallic"].default_value == pytest.approx(metallic)
        assert bsdf.inputs["Roughness"].default_value == pytest.approx(roughness)
    # one mesh per shape, shared; one material per (colour, material) in use
    by_shape = {o.shape: result.objects[o.id].data for o in spec.objects}
    for obj in spec.objects:
        assert result.objects[obj.id].data is by_shape[obj.shape]
    assert len({m.name for m in bpy.data.materials if m.users}) == len(
        {(o.color, o.material) for o in spec.objects}
    ) + 1  # + ground


def test_ground_world_and_lights(built):
    spec, result = built
    ground = result.objects["ground"]
    xs = [v.co.x for v in ground.data.vertices]
    assert (min(xs), max(xs)) == (-50.0, 50.0)
    assert all(v.co.z == 0.0 for v in ground.data.vertices) and ground.pass_index == 0
    assert result.world is not None
    lights = [o for o in result.objects if o.type == "LIGHT"]
    assert sorted(o.name for o in lights) == ["back", "fill", "key"]
    for light in spec.lights:
        item = result.objects[light.name]
        assert item.data.type == "AREA"
        assert (item.data.energy, item.data.size) == (light.energy, light.size)
        assert tuple(item.location) == pytest.approx(light.location)
        expected = Euler([math.radians(a) for a in light.rotation], "XYZ").to_matrix()
        assert np.allclose(np.array(item.matrix_world.to_3x3()), np.array(expected), atol=1e-6)
        # the test layout aims every light's -Z at the origin
        aim = item.matrix_world.to_3x3() @ Vector((0, 0, -1))
        assert aim.angle(-item.location) < 1e-4


def test_cameras_project_like_the_core(built):
    """Blender's own projection of the object centroids equals camera.View.project."""
    spec, result = built
    cams = scene.view_cameras(result)
    assert [c.name for c in cams] == [f"view_{k}" for k in range(4)]
    assert result.camera is cams[0]
    views = camera.rig(SETTINGS.width, SETTINGS.height)
    centroids = np.array([o.centroid for o in spec.objects])
    for view, cam in zip(views, cams, strict=True):
        assert cam.data.lens == 35.0 and cam.data.sensor_width == 32.0
        assert cam.data.sensor_fit == "HORIZONTAL"
        assert (cam.data.shift_x, cam.data.shift_y) == (0.0, 0.0)
        core = view.project(centroids)
        for point, (u, v, depth) in zip(centroids, core, strict=True):
            ndc = world_to_camera_view(result, cam, Vector(point))
            assert ndc.x * SETTINGS.width == pytest.approx(u, abs=1e-3)
            assert (1.0 - ndc.y) * SETTINGS.height == pytest.approx(v, abs=1e-3)
            assert ndc.z == pytest.approx(depth, abs=1e-4)


def test_render_settings(built):
    _, result = built
    assert result.render.engine == "CYCLES"
    assert (result.render.resolution_x, result.render.resolution_y) == (240, 160)
    assert result.render.resolution_percentage == 100
    assert result.cycles.samples == 4
    assert result.cycles.use_denoising and result.cycles.denoiser == "OPENIMAGEDENOISE"
    assert result.cycles.use_adaptive_sampling
    assert result.cycles.adaptive_threshold == pytest.approx(0.04)
    assert not result.cycles.use_light_tree
    assert result.view_settings.view_transform == "Standard"
    assert result.view_settings.look == "None"
    fmt = result.render.image_settings
    assert (fmt.file_format, fmt.color_mode, fmt.color_depth) == ("PNG", "RGB", "8")
    assert not result.render.film_transparent
    assert result.view_layers[0].use_pass_object_index


def test_remove_scene_leaves_nothing(built):
    _, result = built
    scene.remove_scene(result)
    assert [s.name for s in bpy.data.scenes] == ["Scene"]
    for kind in ("objects", "meshes", "materials", "lights", "cameras", "worlds", "node_groups"):
        assert len(getattr(bpy.data, kind)) == 0, kind


def test_render_settings_reject_bad_input():
    with pytest.raises(ValueError, match="device 'optix'.*allowed are AUTO, GPU, CPU, OPTIX"):
        render.RenderSettings(240, 160, 4, device="optix")
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        render.RenderSettings(240, 160, 0)
    with pytest.raises(ValueError, match="pass 'normals' is unknown: allowed are depth"):
        render.RenderSettings(240, 160, 4, passes=("normals",))


def test_the_render_scene_is_emptied_and_built_into_again():
    """Batches render every scene in one reused Scene: Blender keeps a render result per
    Scene datablock, so a new scene per render would leak it."""
    bpy.ops.wm.read_homefile(use_empty=True)
    users = bpy.data.scenes.new(scene.RENDER_SCENE)  # a user's scene of that name: kept
    users.collection.objects.link(bpy.data.objects.new("theirs", None))
    target = scene.render_scene()
    assert target != users and users.objects["theirs"]
    first = scene.build_scene(make_scene("train_00001", EIGHT), SETTINGS, target)
    assert first == target and first.name.startswith(scene.RENDER_SCENE)
    scene.clear_scene(first)
    assert len(first.objects) == 0 and first.world is None and first.camera is None
    assert [o.name for o in bpy.data.objects] == ["theirs"]
    for kind in ("meshes", "materials", "lights", "cameras", "worlds", "node_groups"):
        assert len(getattr(bpy.data, kind)) == 0, kind

    spec = make_scene("train_00002", EIGHT[:3])
    plain = render.RenderSettings(96, 64, 2)  # no Cycles overrides: Cycles' defaults again
    second = scene.build_scene(spec, plain, scene.render_scene())
    assert second == target and second.as_pointer() == first.as_pointer()
    assert len(bpy.data.scenes) == 3  # Scene, the user's and the render scene
    meshes = sorted(o.name for o in second.objects if o.type == "MESH")
    assert meshes == ["ground", "obj_0", "obj_1", "obj_2"]
    assert second.camera.name == "view_0"
    assert second.cycles.samples == 2
    assert second.cycles.adaptive_threshold == pytest.approx(0.01)  # not SETTINGS' 0.04
    assert second.cycles.use_light_tree
