"""The extension package and its registration: the zip validates; installed alone into an
isolated Blender user folder it enables and its Generate button builds a valid dataset with
nothing from this checkout; the source folder loads the way a worker loads it;
register / unregister / register is clean."""

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from scenegen_addon.dataset import format_doc

from tools import package

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon"
MANIFEST = ADDON / "scenegen_addon" / "blender_manifest.toml"
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
    with open(MANIFEST, "rb") as fh:
        manifest = tomllib.load(fh)
    assert manifest["id"] == "scenegen_addon"
    assert manifest["blender_version_min"] == "5.0.0"
    assert "files" in manifest["permissions"]
    assert zip_path.name == f"scenegen_addon-{manifest['version']}.zip"
    assert [p.name for p in zip_path.parent.iterdir()] == [zip_path.name]  # no temp left
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        manifest_bytes = archive.read("blender_manifest.toml")
    assert manifest_bytes == MANIFEST.read_bytes()
    # the manifest beside __init__.py, at the root of the archive, and the launcher with them
    assert {"blender_manifest.toml", "__init__.py", "scripts/run.py", "launcher/build.py"} <= names
    assert names == source_files() | {f"docs/{name}" for name in format_doc.FILES}


def test_zip_validates(zip_path):
    package.run_blender_ext("validate", str(zip_path))


def test_validator_rejects_a_broken_manifest(tmp_path):
    staged = package.stage(tmp_path)
    manifest = staged / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('id = "scenegen_addon"', 'id = "scene gen"'))
    with pytest.raises(RuntimeError, match="validate failed"):
        package.run_blender_ext("validate", str(staged))


INSTALL_AND_GENERATE = r'''
import json, sys, time
import bpy

zip_path, output, *sources = sys.argv[sys.argv.index("--") + 1:]
installed = bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True)
settings = bpy.context.scene.scenegen
settings.output_dir, settings.n_gpus, settings.quality = output, 0, "draft"
bpy.ops.scenegen.generate(resolution="96x64", samples=1, scenes_per_split=1)
package = sys.modules["bl_ext.user_default.scenegen_addon"]
generate = sys.modules["bl_ext.user_default.scenegen_addon.operators.generate"]
run = generate.current()
deadline = time.monotonic() + 600
while generate.poll(run) and time.monotonic() < deadline:
    time.sleep(0.5)
import importlib
dataset = importlib.import_module("bl_ext.user_default.scenegen_addon.dataset")
format_doc = importlib.import_module("bl_ext.user_default.scenegen_addon.dataset.format_doc")
opened = {split: len(scenes) for split, scenes in dataset.open_dataset(output).items()}
from_checkout = sorted(name for name, module in sys.modules.items()
                       if (getattr(module, "__file__", None) or "").startswith(tuple(sources)))
print("RESULT " + json.dumps({
    "installed": sorted(installed), "file": package.__file__, "operators": dir(bpy.ops.scenegen),
    "addons": [a.module for a in bpy.context.preferences.addons],
    "code": run.code, "status": run.status,
    "log": str(run.log), "command": run.command, "from_checkout": from_checkout,
    "opened": opened, "format_docs": str(format_doc.folder())}))
'''



def test_the_installed_zip_alone_builds_a_valid_dataset(zip_path, tmp_path):
    """Install and enable the zip with Blender's own extension API into empty user folders
    (no PYTHONPATH, not run from the checkout), press Generate on a tiny plan at 96x64 and
    drive the panel's poll() until the launcher exits."""
    script = tmp_path / "press_generate.py"
    script.write_text(INSTALL_AND_GENERATE)
    user = tmp_path / "blender_user"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(user)
    out = tmp_path / "data"
    sources = [str(ROOT / name) + os.sep for name in ("addon", "headless", "tools")]
    done = subprocess.run([sys.executable, str(script), "--", str(zip_path), str(out), *sources],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(line[len("RESULT "):])
    installed = user / "extensions" / "user_default" / "scenegen_addon"
    assert result["installed"] == ["FINISHED"]
    assert "bl_ext.user_default.scenegen_addon" in result["addons"]
    assert Path(result["file"]) == installed / "__init__.py"
    assert OPERATORS <= set(result["operators"])
    log = Path(result["log"]).read_text()
    assert result["code"] == 0, result["status"] + "\n" + log[-3000:]
    assert result["command"][1] == str(installed / "scripts" / "run.py")
    assert (f"scenegen: the launcher runs the package in {installed}, the workers the package "
            f"in {installed}") in log
    assert result["from_checkout"] == []
    assert "OK: 5 scenes checked, labels recomputed for 5" in log
    assert sorted(p.name for p in (out / "metadata").iterdir()) == sorted(
        f"{split}_00000.json" for split in ("train", "val", "test_iid", "test_comp", "test_hard"))
    # the dataset API and the exports' format document, from the installed extension alone
    assert result["opened"] == dict.fromkeys(("train", "val", "test_iid", "test_comp",
                                              "test_hard"), 1)
    assert result["format_docs"] == str(installed / "docs")


FROM_SOURCE = """
import json, sys
sys.path.insert(0, sys.argv[1])  # what scripts/run.py does: Blender ignores PYTHONPATH
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
