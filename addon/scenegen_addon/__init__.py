"""SceneGen: CLEVR-like multi-view scenes with ordinal spatial ground truth.

This file holds register()/unregister() only. Importing the package imports no bpy, so
the launcher and the validator use `scenegen_addon.core` in plain Python; register()
imports the Blender parts. Relative imports only: an installed extension is
`bl_ext.user_default.scenegen_addon`, a source checkout is `scenegen_addon`.
"""

import importlib

# Modules whose CLASSES tuples are registered, in this order (ui first: it holds the
# PropertyGroup the operators read).
MODULES = (
    "ui", "operators.preview", "operators.batch", "operators.merge", "operators.generate",
)


def _modules():
    return [importlib.import_module(f".{name}", __package__) for name in MODULES]


def _classes():
    return [cls for module in _modules() for cls in module.CLASSES]


def register():
    import bpy

    from . import ui

    for cls in _classes():
        bpy.utils.register_class(cls)
    bpy.types.Scene.scenegen = bpy.props.PointerProperty(type=ui.SCENEGEN_PG_settings)


def unregister():
    import bpy

    del bpy.types.Scene.scenegen
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
