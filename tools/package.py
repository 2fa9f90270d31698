"""Build the SceneGen extension zip: `python tools/package.py [--output-dir dist]`.

Uses the extension validator and builder shipped inside the bpy wheel
(bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py, run with plain Python, so
no Blender binary is needed). The add-on folder (its manifest beside __init__.py) is staged
in a temp folder without caches, validated, built, and the zip is validated again before it
appears in the output folder under its final name. The zip holds the whole package,
launcher included: installed alone, it builds a dataset.
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "addon" / "scenegen_addon"
sys.path.insert(0, str(SOURCE.parent))
from scenegen_addon.dataset import format_doc  # noqa: E402

MANIFEST = SOURCE / "blender_manifest.toml"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def find_blender_ext() -> Path:
    """blender_ext.py inside the installed bpy wheel, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the bpy package is not installed in this Python: run this with the project's "
            "venv (README: Requirements)"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise RuntimeError(f"blender_ext.py not found inside {list(spec.submodule_search_locations)}")


def manifest() -> dict:
    with open(MANIFEST, "rb") as fh:
        return tomllib.load(fh)


def zip_name() -> str:
    data = manifest()
    return f"{data['id']}-{data['version']}.zip"


def run_blender_ext(*args: str) -> None:
    """Run one blender_ext.py command; raise with its output when it fails."""
    cmd = [sys.executable, str(find_blender_ext()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"blender_ext {args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


def stage(folder: Path) -> Path:
    """Copy the add-on without caches, with the dataset's format document that the exports
    copy into their output (dataset/format_doc.py) in its docs/ folder."""
    staged = folder / SOURCE.name
    shutil.copytree(SOURCE, staged, ignore=IGNORE)
    (staged / "docs").mkdir()
    for name in format_doc.FILES:
        shutil.copyfile(ROOT / "docs" / name, staged / "docs" / name)
    return staged


def build(output_dir: Path) -> Path:
    """Validate, build and re-validate; the zip appears complete or not at all."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / zip_name()
    with tempfile.TemporaryDirectory(prefix="scenegen-package-") as tmp:
        staged = stage(Path(tmp))
        run_blender_ext("validate", str(staged))
        partial = output_dir / f".{target.name}.partial.zip"
        try:
            run_blender_ext(
                "build", "--source-dir", str(staged), "--output-filepath", str(partial)
            )
            run_blender_ext("validate", str(partial))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(ROOT / "dist"), help="default: dist/")
    args = parser.parse_args(argv)
    try:
        path = build(Path(args.output_dir))
    except RuntimeError as err:
        print(f"package: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
