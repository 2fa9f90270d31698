"""The dataset's users' wing: read a finished scenegen dataset, ask questions about it, draw
it, export it. Nothing of the generation path imports it.

The public Python API is this package: `from scenegen_addon.dataset import open_dataset`
(inside Blender, with the extension installed: `bl_ext.user_default.scenegen_addon.dataset`).
Importing it imports numpy only (no bpy, pyarrow or datasets); the exports import their
packages when they run.
"""

from .loader import (
    CONSTRAINT_TYPES,
    QRR,
    TRR,
    WORLD,
    Axial,
    Camera,
    Closer,
    Constraint,
    Dataset,
    NotMerged,
    Object,
    Occlusion,
    Scene,
    Size,
    Split,
    Topology,
    Unreadable,
    View,
    ViewObject,
    open_dataset,
)

__all__ = [
    "CONSTRAINT_TYPES", "QRR", "TRR", "WORLD", "Axial", "Camera", "Closer", "Constraint",
    "Dataset", "NotMerged", "Object", "Occlusion", "Scene", "Size", "Split", "Topology",
    "Unreadable", "View", "ViewObject", "open_dataset",
]
