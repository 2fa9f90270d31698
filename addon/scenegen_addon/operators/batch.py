"""bpy.ops.scenegen.batch: render scenes of a plan into its output folder.

Thin: a blocking execute (there is no event loop in `blender -b`) around the batch loop,
blender.batch.render_scenes, which the launcher's workers run too. Complete scenes are
skipped, each finished scene prints one `SCENEGEN {json}` line, and a failure is reported
as an error. A batch that renders anything marks the folder's merge as pending (FORMAT 1.3)
until the merge runs. Resolution and samples come from the plan, never from the operator.
"""

from pathlib import Path

import bpy

from ..blender import batch, render
from ..blender.finisher import Finisher
from ..core import layout, plan


class SCENEGEN_OT_batch(bpy.types.Operator):
    """Render scenes of a scenegen plan (.scenegen/plan.json) into its output folder"""

    bl_idname = "scenegen.batch"
    bl_label = "Render Batch"

    output: bpy.props.StringProperty(
        name="Output", subtype="DIR_PATH",
        description="Dataset folder holding .scenegen/plan.json (python headless/build.py "
        "--plan-only writes it)",
    )
    scene_ids: bpy.props.StringProperty(
        name="Scene ids",
        description="Comma-separated scene ids of the plan; empty renders every incomplete scene",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=[(d, d, "") for d in render.DEVICES],
        default="AUTO",
        description="Cycles device; GPU means the best GPU type present, failing if none",
    )

    def execute(self, context):
        output = Path(bpy.path.abspath(self.output)) if self.output else None
        if output is None or not layout.plan_file(output).exists():
            self.report({"ERROR"}, f"output {self.output!r} holds no .scenegen/plan.json")
            return {"CANCELLED"}
        wanted = [s.strip() for s in self.scene_ids.split(",") if s.strip()]
        try:
            _, by_id = batch.read_plan(output)  # the whole plan proves itself first
            for scene_id in wanted:
                plan.planned_id(scene_id, by_id)
        except ValueError as exc:  # plan.PlanError included
            self.report({"ERROR"}, f"scenegen batch refused: {exc}")
            return {"CANCELLED"}
        scene_ids = wanted or list(by_id)
        if not all(layout.is_complete(output, sid) for sid in scene_ids):
            layout.mark_merge_pending(output)  # the last merge no longer lists every scene
        error = batch.render_scenes(output, scene_ids, self.device, Finisher(), record=True)
        if error:
            self.report({"ERROR"}, f"scenegen batch: {error}")
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (SCENEGEN_OT_batch,)
