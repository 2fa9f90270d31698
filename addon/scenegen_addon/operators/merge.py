"""bpy.ops.scenegen.merge(output=DIR): the dataset's index files (FORMAT 7) from its scenes.

Thin: the logic is core.merge.merge, so the launcher's last worker, a `blender -b` script
and plain Python produce the same splits/*.json and dataset_info.json.
"""

import bpy

from ..core import merge


class SCENEGEN_OT_merge(bpy.types.Operator):
    """Write splits/*.json and dataset_info.json for a scenegen output folder"""

    bl_idname = "scenegen.merge"
    bl_label = "Merge SceneGen Dataset"

    output: bpy.props.StringProperty(
        name="Output", description="The dataset folder (holding .scenegen/plan.json)",
        subtype="DIR_PATH",
    )

    def execute(self, context):
        if not self.output:
            self.report({"ERROR"}, "output must name a scenegen output folder")
            return {"CANCELLED"}
        try:
            info = merge.merge(bpy.path.abspath(self.output))
        except (OSError, ValueError, KeyError) as exc:
            self.report({"ERROR"}, f"merge of {self.output} failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"merged {sum(info['splits'].values())} scenes")
        return {"FINISHED"}


CLASSES = (SCENEGEN_OT_merge,)
