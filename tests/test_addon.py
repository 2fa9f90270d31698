"""The extension package and its registration: the zip validates, installs into an isolated
Blender user folder and enables; the source folder loads the way the launcher loads it;
register / unregister / register is clean."""

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tools import package

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon"
OPERATORS = {"preview_scene", "render_view", "batch", "merge", "generate", "generate_stop"}


def source_files() -> set[str]:
    """Every file the add-on is made of, relative to its folder (caches, dot-files excluded)."""
    folder = ADDON / "scenegen_addon"
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix != ".pyc"
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def run_python(script: str, *args: str, env: dict | None = None, cwd: Path) -> dict:
    """Run `script` in a fresh Python (no PYTHONPATH) and parse the JSON of its last line."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True, text=True, env=environment, cwd=cwd, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "package.py"), "--output-dir", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip())


def test_zip_is_named_by_the_manifest_and_holds_exactly_the_addon(zip_path):
    with open(ROOT / "blender_manifest.toml", "rb") as fh:
        manifest = tomllib.load(fh)
    assert manifest["id"] == "scenegen_addon"
    assert manifest["blender_version_min"] == "5.0.0"
    assert "files" in manifest["permissions"]
    assert zip_path.name == f"scenegen_addon-{manifest['version']}.zip"
    assert [p.name for p in zip_path.parent.iterdir()] == [zip_path.name]  # no temp left
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        manifest_bytes = archive.read("blender_manifest.toml")
    assert manifest_bytes == (ROOT / "blender_manifest.toml").read_bytes()
    # the manifest beside __init__.py, at the root of the archive
    assert {"blender_manifest.toml", "__init__.py"} <= names
    assert names - {"blender_manifest.toml"} == source_files()


def test_zip_validates(zip_path):
    package.run_blender_ext("validate", str(zip_path))


def test_validator_rejects_a_broken_manifest(tmp_path):
    staged = package.stage(tmp_path)
    manifest = staged / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('id = "scenegen_addon"', 'id = "scene gen"'))
    with pytest.raises(RuntimeError, match="validate failed"):
        package.run_blender_ext("validate", str(staged))


INSTALL = """
import json, sys
import bpy
bpy.ops.extensions.package_install_files(
    filepath=sys.argv[1], repo="user_default", enable_on_install=True)
module = sys.modules["bl_ext.user_default.scenegen_addon"]
print(json.dumps({
    "addons": [a.module for a in bpy.context.preferences.addons],
    "file": module.__file__,
    "operators": dir(bpy.ops.scenegen),
    "settings": bpy.context.scene.scenegen.split,
    "source_on_path": sys.argv[2] in sys.path,
}))
"""


def test_zip_installs_into_an_isolated_user_folder_and_enables(zip_path, tmp_path):
    user = tmp_path / "blender_user"
    state = run_python(
        INSTALL, str(zip_path), str(ADDON), env={"BLENDER_USER_RESOURCES": str(user)},
        cwd=tmp_path,
    )
    assert "bl_ext.user_default.scenegen_addon" in state["addons"]
    installed = user / "extensions" / "user_default" / "scenegen_addon"
    assert Path(state["file"]) == installed / "__init__.py"
    assert (installed / "blender_manifest.toml").is_file()
    assert not state["source_on_path"]
    assert OPERATORS <= set(state["operators"])
    assert state["settings"] == "train"


FROM_SOURCE = """
import json, sys
sys.path.insert(0, sys.argv[1])  # what headless/worker.py does: Blender ignores PYTHONPATH
import scenegen_addon
loaded_bpy = "bpy" in sys.modules
import bpy
scenegen_addon.register()
print(json.dumps({
    "bpy_on_import": loaded_bpy,
    "file": scenegen_addon.__file__,
    "operators": dir(bpy.ops.scenegen),
    "panel": hasattr(bpy.types, "SCENEGEN_PT_panel"),
}))
"""


def test_addon_enables_from_the_source_folder(tmp_path):
    state = run_python(FROM_SOURCE, str(ADDON), cwd=tmp_path)
    assert not state["bpy_on_import"]
    assert Path(state["file"]) == ADDON / "scenegen_addon" / "__init__.py"
    assert OPERATORS <= set(state["operators"])
    assert state["panel"]


def registered(bpy) -> dict:
    return {
        "operators": {op for op in OPERATORS if hasattr(bpy.types, f"SCENEGEN_OT_{op}")},
        "panel": hasattr(bpy.types, "SCENEGEN_PT_panel"),
        "settings": hasattr(bpy.types.Scene, "scenegen"),
    }


def test_register_unregister_register(addon):
    import bpy

    assert registered(bpy) == {"operators": OPERATORS, "panel": True, "settings": True}
    addon.unregister()
    try:
        assert registered(bpy) == {"operators": set(), "panel": False, "settings": False}
    finally:
        addon.register()
    assert registered(bpy) == {"operators": OPERATORS, "panel": True, "settings": True}
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.context.scene.scenegen.n_objects == 6
