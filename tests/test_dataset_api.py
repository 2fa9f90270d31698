"""The dataset's public API (scenegen_addon.dataset): importable after `pip install -e .` from
any folder with no sys.path edit, importing numpy only, and the README's example runs as
written on a finished folder."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from scenegen_addon.core import merge
from scenegen_addon.dataset import format_doc

from tests import fake_dataset

ROOT = Path(__file__).resolve().parent.parent


def _clean_env() -> dict:
    """The environment without PYTHONPATH: what a user's shell has after pip install -e ."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_installed_package_imports_with_numpy_only(tmp_path):
    probe = ("import json, sys; from scenegen_addon.dataset import open_dataset, Scene, View, QRR; "
             "print(json.dumps(sorted(m for m in ('bpy', 'pyarrow', 'datasets', 'numpy') "
             "if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=_clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["numpy"]


def test_the_old_loader_path_is_gone():
    assert not (ROOT / "addon" / "scenegen_addon" / "core" / "loader.py").exists()


def test_the_readme_example_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Reading the dataset"):]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert "sys.path" not in example and '"data/tiny"' in example
    out = tmp_path / "data" / "tiny"
    fake_dataset.make_output(out, {"train": 1})
    merge.merge(out)
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, env=_clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "metadata" / "train_00000.json").read_text(encoding="utf-8"))
    axial = record["constraints"]["views"][2]["axial"]
    assert axial and done.stdout.splitlines() == [
        f"{c['obj1']} {c['relation']} {c['obj2']}" for c in axial]


def test_the_format_document_is_found_in_the_checkout_and_copied_whole(tmp_path):
    assert format_doc.copy_to(tmp_path) == ["FORMAT.md", "format_cameras_clock.svg"]
    for name in format_doc.FILES:
        assert (tmp_path / name).read_bytes() == (ROOT / "docs" / name).read_bytes()
    assert "](format_cameras_clock.svg)" in (tmp_path / "FORMAT.md").read_text(encoding="utf-8")
