"""The preview operators and the SceneGen panel, headless with the real bpy.

The expected scene is sampled independently here (core.sampling with the panel's
settings) and compared with what the operator left in the file.
"""

import json
import math

import numpy as np
import pytest
from scenegen_addon.core import camera, plan, png, presets, sampling, spec


def preview(bpy, split="train", n_objects=5, seed=7):
    settings = bpy.context.scene.scenegen
    settings.split = split
    settings.n_objects = n_objects
    settings.seed = seed
    assert bpy.ops.scenegen.preview_scene() == {"FINISHED"}
    entry = plan.PlannedScene("preview", split, 0, n_objects, presets.split_rule(split).tau, seed)
    return bpy.context.scene, sampling.sample_scene(entry, seed)


def material_of(item):
    bsdf = next(n for n in item.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    return list(bsdf.inputs["Base Color"].default_value)[:3], bsdf.inputs["Metallic"].default_value


def test_preview_builds_the_sampled_scene_with_its_cameras(addon, empty_file):
    bpy = empty_file
    scene, expected = preview(bpy, n_objects=5, seed=7)
    assert scene.name == "SceneGen preview"
    assert [s.name for s in bpy.data.scenes] == ["Scene", "SceneGen preview"]
    kinds = sorted(o.type for o in scene.objects)
    assert kinds.count("CAMERA") == 4 and kinds.count("LIGHT") == 3
    assert kinds.count("MESH") == 5 + 1  # the objects and the ground
    for i, obj in enumerate(expected.objects):
        item = scene.objects[obj.id]
        assert tuple(item.location) == pytest.approx((*obj.position, 0.0), abs=1e-6)
        assert item.rotation_euler.z == pytest.approx(math.radians(obj.rotation), abs=1e-6)
        assert tuple(item.scale) == pytest.approx((obj.size_value,) * 3, abs=1e-6)
        assert item.pass_index == i + 1
        rgb, metallic = material_of(item)
        assert rgb == pytest.approx([c / 255 for c in spec.COLORS[obj.color]], abs=1e-6)
        assert metallic == {"metal": 1.0, "rubber": 0.0}[obj.material]
    draft = presets.quality("draft")  # the panel's default quality
    for view in camera.rig(draft.width, draft.height):
        cam = scene.objects[view.view_id]
        assert np.allclose(np.array(cam.matrix_world), view.matrix_world, atol=1e-5)
        assert cam.data.lens == 35.0 and cam.data.sensor_width == 32.0
    assert scene.camera.name == "view_0"
    assert (scene.render.resolution_x, scene.render.resolution_y) == (480, 320)
    # the settings followed the user onto the preview scene
    assert (scene.scenegen.split, scene.scenegen.n_objects, scene.scenegen.seed) == ("train", 5, 7)


def test_preview_writes_the_constraints_and_summarises_them(addon, empty_file):
    bpy = empty_file
    n = 6
    scene, _ = preview(bpy, n_objects=n, seed=11)
    document = json.loads(bpy.data.texts["SceneGen constraints"].as_string())
    assert [o["id"] for o in document["objects"]] == [f"obj_{i}" for i in range(n)]
    assert document["tau"] == 0.1  # not Blender's float32 0.10000000149
    world = document["constraints"]["world"]
    assert len(world["qrr"]) == 3 * math.comb(n, 4)
    assert len(world["trr"]) == n * (n - 1) * (n - 2)
    assert len(world["topology"]) == math.comb(n, 2)
    views = document["constraints"]["views"]
    assert [v["view_id"] for v in views] == ["view_0", "view_1", "view_2", "view_3"]
    assert all("occlusion" not in v for v in views)  # needs a rendered mask
    lines = scene.scenegen.summary.splitlines()
    assert lines[0].startswith(f"World: qrr {3 * math.comb(n, 4)}, trr {n * (n - 1) * (n - 2)}")
    # then the scene picture's relations (tests/test_show.py checks their choice and words)
    text = " ".join(line.strip() for line in lines[2:])
    hardest = max(r["difficulty"] for r in world["qrr"])
    assert text.startswith(f"Hardest distance comparison (difficulty {hardest}, ratio ")
    assert text.endswith(" o'clock.") and text.count("Clock: standing at ") == 1


def test_preview_again_replaces_the_previous_preview(addon, empty_file):
    bpy = empty_file
    preview(bpy, n_objects=4, seed=1)
    scene, expected = preview(bpy, n_objects=7, seed=2)
    assert [s.name for s in bpy.data.scenes] == ["Scene", "SceneGen preview"]
    # nothing of the first preview is left in the file
    assert len(bpy.data.objects) == 7 + 1 + 3 + 4
    assert len(bpy.data.cameras) == 4 and len(bpy.data.lights) == 3
    assert {o.name for o in scene.objects if o.type == "MESH"} - {"ground"} == {
        o.id for o in expected.objects
    }


def test_view_setting_switches_the_active_camera(addon, empty_file):
    bpy = empty_file
    scene, _ = preview(bpy)
    for k in (3, 1, 0):
        scene.scenegen.view = f"view_{k}"
        assert scene.camera.name == f"view_{k}"


def test_render_view_renders_the_active_view(addon, empty_file, tmp_path):
    bpy = empty_file
    scene, _ = preview(bpy, n_objects=4, seed=3)
    scene.render.resolution_percentage = 20  # 96x64
    scene.cycles.samples = 2
    images = []
    for k in (0, 2):
        scene.scenegen.view = f"view_{k}"
        path = tmp_path / f"view_{k}.png"
        assert bpy.ops.scenegen.render_view(filepath=str(path)) == {"FINISHED"}
        images.append(png.read_png(path))
        assert bpy.data.images["Render Result"].type == "RENDER_RESULT"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view_0.png", "view_2.png"]
    for image in images:
        assert image.shape == (64, 96, 3) and image.dtype == np.uint8
        assert image.std() > 5  # not blank
    assert np.abs(images[0].astype(int) - images[1].astype(int)).mean() > 2  # other camera


def test_render_view_needs_a_preview(addon, empty_file):
    bpy = empty_file
    with pytest.raises(RuntimeError, match="Preview a scene first"):
        bpy.ops.scenegen.render_view()


def test_object_count_outside_the_split_is_refused(addon, empty_file):
    bpy = empty_file
    settings = bpy.context.scene.scenegen
    settings.split = "train"
    settings.n_objects = 12
    with pytest.raises(RuntimeError, match=r"n_objects 12 .* allowed are 4\.\.10"):
        bpy.ops.scenegen.preview_scene()
    assert [s.name for s in bpy.data.scenes] == ["Scene"]


def test_split_brings_its_tau_and_object_range(addon, empty_file):
    settings = empty_file.context.scene.scenegen
    settings.n_objects = 4
    settings.split = "test_comp"
    assert (settings.n_objects, settings.tau) == (10, pytest.approx(0.10))
    settings.n_objects = 15
    settings.split = "test_hard"
    assert (settings.n_objects, settings.tau) == (10, pytest.approx(0.05))


class Recorder:
    """Stands in for a UILayout: records what the panel puts on screen."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        if name in ("column", "row", "box"):
            return lambda **_: self
        return lambda *args, **kwargs: self.log.append((name, args, kwargs))


def test_panel_shows_settings_buttons_and_summary(addon, empty_file):
    bpy = empty_file
    panel_cls = addon.ui.SCENEGEN_PT_panel
    assert (panel_cls.bl_space_type, panel_cls.bl_region_type) == ("VIEW_3D", "UI")
    assert panel_cls.bl_category == "SceneGen"
    scene, _ = preview(bpy)
    log = []
    panel = type("P", (), {"layout": Recorder(log)})()
    panel_cls.draw(panel, bpy.context)
    props = [args[1] for name, args, _ in log if name == "prop"]
    assert props == ["split", "n_objects", "seed", "tau", "quality", "samples", "view"]
    assert [args[0] for name, args, _ in log if name == "operator"] == [
        "scenegen.preview_scene", "scenegen.render_view",
    ]
    labels = [kwargs["text"] for name, _, kwargs in log if name == "label"]
    assert labels == scene.scenegen.summary.splitlines()
