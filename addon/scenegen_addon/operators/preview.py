"""Preview in the open file: sample one scene from the panel's settings, build it, render a view.

The preview is built in a new scene, "SceneGen preview", which becomes the window's scene;
the user's own scenes are never touched, and the previous preview scene is removed. Its
constraints go to the Text "SceneGen constraints" (JSON, one record per line) and a
summary to the panel. View constraints there come from the silhouettes alone: occlusion
needs a rendered mask, so the preview leaves it out.
"""

import json
import os

import bpy
import numpy as np

from ..blender import render
from ..blender import scene as blender_scene
from ..core import camera, constraints, plan, presets, sampling
from ..core.spec import SceneSpec
from ..dataset import highlights

SCENE_NAME = "SceneGen preview"
TEXT_NAME = "SceneGen constraints"
MARKER = "scenegen_preview"  # ID property set on preview scenes
SUMMARY_WIDTH = 48  # characters per line of the summary's relations in the sidebar


def preview_entry(settings) -> plan.PlannedScene:
    """The plan entry of the preview: the panel's split, object count, tau and seed.

    tau is rounded to 6 decimals: Blender stores it as a 32-bit float (0.1 -> 0.10000000149).
    """
    presets.check_object_count(settings.split, settings.n_objects)
    tau = round(settings.tau, 6)
    return plan.PlannedScene("preview", settings.split, 0, settings.n_objects, tau, settings.seed)


def render_settings(settings) -> render.RenderSettings:
    quality = presets.quality(settings.quality)
    return render.RenderSettings(
        quality.width, quality.height, settings.samples or quality.samples,
        cycles=quality.cycles,
    )


def is_preview(scene) -> bool:
    return scene is not None and bool(scene.get(MARKER))


def activate_view(scene, k: int) -> None:
    if is_preview(scene):
        scene.camera = blender_scene.view_cameras(scene)[k]


# ---------------------------------------------------------------- constraints


def preview_constraints(spec: SceneSpec) -> dict:
    """World constraints and, per canonical view, those that need no rendered mask."""
    views = []
    for view in camera.rig(*presets.CANONICAL_RESOLUTION):
        empty = np.zeros((view.height, view.width), dtype=np.uint16)
        objects = constraints.view_objects(spec, view, empty)
        record = constraints.view_constraints(spec, view, empty, objects)
        del record["occlusion"]
        views.append(record)
    return {"world": constraints.world_constraints(spec), "views": views}


def summary_lines(spec: SceneSpec, found: dict) -> list[str]:
    """Counts per type, then the relations the scene picture states (dataset.highlights: the
    hardest world qrr and one trr; no occlusion, which needs a rendered mask), wrapped to
    the sidebar's width."""
    view0 = found["views"][0]
    lines = [
        "World: " + ", ".join(f"{k} {len(v)}" for k, v in found["world"].items()),
        "View 0: " + ", ".join(f"{k} {len(v)}" for k, v in view0.items() if k != "view_id"),
    ]
    scene = highlights.unrendered_scene(spec, found)
    return lines + highlights.wrap(highlights.relation_lines(scene, occlusions=False),
                                   SUMMARY_WIDTH)


def _is_record(value) -> bool:
    return isinstance(value, dict) and not any(
        isinstance(x, dict) or (isinstance(x, list) and any(isinstance(y, (dict, list)) for y in x))
        for x in value.values()
    )


def to_text(value, pad: str = "") -> str:
    """JSON with one record per line, so the Text editor shows it readably."""
    if _is_record(value) or not isinstance(value, (dict, list)) or not value:
        return json.dumps(value, allow_nan=False)
    inner = pad + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {to_text(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return "[\n" + ",\n".join(inner + to_text(v, inner) for v in value) + "\n" + pad + "]"


def write_text(spec: SceneSpec, found: dict):
    text = bpy.data.texts.get(TEXT_NAME) or bpy.data.texts.new(TEXT_NAME)
    document = {
        "scene_id": spec.scene_id,
        "split": spec.split,
        "seed": spec.seed,
        "retries": spec.retries,
        "tau": spec.tau,
        "objects": [o.record() for o in spec.objects],
        "constraints": found,
    }
    text.from_string(to_text(document) + "\n")
    return text


# ---------------------------------------------------------------- operators


# Copied onto the preview scene in this order: split first, as it resets tau and the count.
SETTINGS = ("split", "n_objects", "seed", "tau", "quality", "samples")


def _remove_previews(context) -> None:
    """Remove earlier preview scenes (and their data), so names stay free for the new one."""
    old = [s for s in bpy.data.scenes if is_preview(s)]
    if context.window is not None and is_preview(context.window.scene):
        others = [s for s in bpy.data.scenes if not is_preview(s)]
        context.window.scene = others[0] if others else bpy.data.scenes.new("Scene")
    for scene in old:
        blender_scene.remove_scene(scene)


def _look_through_camera(context) -> None:
    for area in context.screen.areas if context.screen else ():
        if area.type == "VIEW_3D":
            area.spaces.active.region_3d.view_perspective = "CAMERA"


class SCENEGEN_OT_preview_scene(bpy.types.Operator):
    bl_idname = "scenegen.preview_scene"
    bl_label = "Preview"
    bl_description = (
        "Sample a scene from the SceneGen settings and build it, with its 4 cameras, "
        "in a new scene that replaces the previous preview"
    )
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        # Read everything from the settings now: their scene may be an old preview, removed
        # below (touching it afterwards would crash Blender).
        settings = context.scene.scenegen
        values = {name: getattr(settings, name) for name in SETTINGS}
        try:
            entry = preview_entry(settings)
            quality = render_settings(settings)
            spec = sampling.sample_scene(entry, entry.seed)
            _remove_previews(context)
            built = blender_scene.build_scene(spec, quality)
        except (ValueError, RuntimeError, sampling.SamplingFailed) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        built.name = SCENE_NAME
        built[MARKER] = True
        for name, value in values.items():
            setattr(built.scenegen, name, value)
        if context.window is not None:
            context.window.scene = built
        found = preview_constraints(spec)
        write_text(spec, found)
        built.scenegen.summary = "\n".join(summary_lines(spec, found))
        built.scenegen.view = "view_0"  # build_scene made view 0 the scene camera
        _look_through_camera(context)
        self.report({"INFO"}, f"Preview: {spec.n_objects} objects, seed {spec.seed}")
        return {"FINISHED"}


class SCENEGEN_OT_render_view(bpy.types.Operator):
    bl_idname = "scenegen.render_view"
    bl_label = "Render view"
    bl_description = "Render the active view of the previewed scene with Cycles"

    filepath: bpy.props.StringProperty(
        name="File",
        description="Also write the image to this PNG file (for scripts)",
        subtype="FILE_PATH",
        options={"SKIP_SAVE"},
    )

    @classmethod
    def poll(cls, context):
        if not is_preview(context.scene):
            cls.poll_message_set("Preview a scene first")
            return False
        return True

    def invoke(self, context, _event):
        if self.filepath:
            return self.execute(context)
        # Like F12: renders without blocking the interface and shows the Render Result.
        bpy.ops.render.render("INVOKE_DEFAULT")
        return {"FINISHED"}

    def execute(self, context):
        bpy.ops.render.render()
        if self.filepath:
            path = bpy.path.abspath(self.filepath)
            partial = f"{path}.partial.png"
            bpy.data.images["Render Result"].save_render(partial, scene=context.scene)
            os.replace(partial, path)
        return {"FINISHED"}


CLASSES = (SCENEGEN_OT_preview_scene, SCENEGEN_OT_render_view)
