"""The SceneGen tab of the 3D viewport sidebar and the settings it edits (scene.scenegen).

The settings live on the Scene so they are saved with the .blend file; the preview
operator copies them onto the preview scene it switches to, so the panel keeps them.
Its Generate dataset sub-panel starts the headless launcher (operators.generate) and shows
its status, which lives in that module, not on the Scene, so undo and file loads keep it.
"""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .core import camera, presets
from .operators import generate, preview

VIEW_ITEMS = [(f"view_{k}", f"View {k}", f"Camera of view {k}") for k in range(camera.N_VIEWS)]


def _split_changed(self, _context):
    """A split brings its own tau and object-count range (FORMAT 2)."""
    rule = presets.split_rule(self.split)
    self.tau = rule.tau
    self.n_objects = min(max(self.n_objects, rule.min_objects), rule.max_objects)


def _view_changed(self, _context):
    preview.activate_view(self.id_data, int(self.view.removeprefix("view_")))


class SCENEGEN_PG_settings(bpy.types.PropertyGroup):
    split: EnumProperty(
        name="Split",
        items=[(s, s, f"Sample like the {s} split") for s in presets.SPLITS],
        default="train",
        update=_split_changed,
    )
    n_objects: IntProperty(
        name="Objects",
        description="Object count; must lie in the split's range (4-10, test_comp 10-15)",
        default=6,
        min=min(r.min_objects for r in presets.SPLIT_RULES.values()),
        max=max(r.max_objects for r in presets.SPLIT_RULES.values()),
    )
    seed: IntProperty(
        name="Seed",
        description="Scene seed of the preview (its retries derive from it)",
        default=presets.DEFAULT_SEED,
        min=0,
    )
    tau: FloatProperty(
        name="Tau",
        description="Tolerance of the ~= comparator (FORMAT 6.4)",
        default=presets.split_rule("train").tau,
        min=0.0,
        max=1.0,
        precision=3,
        step=1,
    )
    quality: EnumProperty(
        name="Quality",
        items=[
            (name, name, f"{q.width}x{q.height}, {q.samples} samples")
            for name, q in presets.QUALITIES.items()
        ],
        default="draft",
    )
    samples: IntProperty(
        name="Samples",
        description="Render samples of the preview; 0 takes the quality preset's",
        default=0,
        min=0,
    )
    view: EnumProperty(name="View", items=VIEW_ITEMS, default="view_0", update=_view_changed)
    summary: StringProperty(
        name="Summary",
        description="Constraint summary of the previewed scene, one line per row",
    )
    # --- Generate: the options of headless/build.py (quality above is shared) ----------
    output_dir: StringProperty(
        name="Output",
        description="Dataset folder (new, empty, or a build to resume)",
        subtype="DIR_PATH",
    )
    size: EnumProperty(
        name="Size",
        items=[
            (name, name, f"{sum(counts.values())} scenes")
            for name, counts in presets.DATASET_SIZES.items()
        ],
        default=presets.DEFAULT_SIZE,
    )
    n_gpus: IntProperty(
        name="GPUs",
        description="GPUs to render on: -1 all visible, 0 the CPU",
        default=-1,
        min=-1,
    )
    workers: IntProperty(
        name="CPU workers",
        description="Blender processes rendering on the CPU (when GPUs is 0)",
        default=1,
        min=1,
    )
    build_seed: IntProperty(
        name="Global seed",
        description="Global seed of the dataset (FORMAT 2); every scene seed derives from it",
        default=presets.DEFAULT_SEED,
        min=0,
    )
    depth: BoolProperty(
        name="Depth maps",
        description="Also write depth/<scene_id>/view_k.png: 16-bit millimetres along each "
                    "camera's axis (--passes depth)",
        default=False,
    )


class SCENEGEN_PT_panel(bpy.types.Panel):
    bl_idname = "SCENEGEN_PT_panel"
    bl_label = "SceneGen"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "SceneGen"

    def draw(self, context):
        settings = context.scene.scenegen
        layout = self.layout
        column = layout.column(align=True)
        for name in ("split", "n_objects", "seed", "tau", "quality", "samples"):
            column.prop(settings, name)
        row = layout.row(align=True)
        row.operator("scenegen.preview_scene", icon="SCENE_DATA")
        row.operator("scenegen.render_view", icon="RENDER_STILL")
        if settings.summary:
            layout.row().prop(settings, "view", expand=True)
            box = layout.box()
            for line in settings.summary.splitlines():
                box.label(text=line)


class SCENEGEN_PT_generate(bpy.types.Panel):
    """Build a whole dataset with the headless launcher; Generate turns into Stop while
    it runs."""

    bl_idname = "SCENEGEN_PT_generate"
    bl_label = "Generate dataset"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "SceneGen"
    bl_parent_id = "SCENEGEN_PT_panel"

    def draw(self, context):
        settings = context.scene.scenegen
        layout = self.layout
        column = layout.column(align=True)
        for name in ("output_dir", "size", "quality", "n_gpus"):
            column.prop(settings, name)
        if settings.n_gpus == 0:
            column.prop(settings, "workers")
        column.prop(settings, "build_seed")
        column.prop(settings, "depth")
        if generate.is_running():
            layout.operator("scenegen.generate_stop", icon="CANCEL")
        else:
            layout.operator("scenegen.generate", icon="PLAY")
        run = generate.current()
        if run is not None:
            box = layout.box()
            for line in run.status.splitlines():
                box.label(text=line)


CLASSES = (SCENEGEN_PG_settings, SCENEGEN_PT_panel, SCENEGEN_PT_generate)
