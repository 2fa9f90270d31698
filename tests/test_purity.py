"""House rule 1: the core and the package import without bpy or mathutils."""

import pathlib
import subprocess
import sys

ADDON = pathlib.Path(__file__).resolve().parents[1] / "addon"

PROBE = """
import importlib, pkgutil, sys
import scenegen_addon
import scenegen_addon.core as core
names = [m.name for m in pkgutil.iter_modules(core.__path__, "scenegen_addon.core.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("bpy", "mathutils", "_bpy"))
print(len(names), loaded)
"""


def test_core_and_package_import_no_bpy():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ADDON, capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=1)
    assert int(out[0]) >= 7  # presets, rng, plan, camera, shapes, spec, sampling, ...
    assert out[1].strip() == "[]"
