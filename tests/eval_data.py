"""A small dataset (made without Blender, tests/fake_dataset.py) and its exports, for the
evaluation's tests."""

from pathlib import Path

from scenegen_addon.core import merge
from scenegen_addon.dataset.exports import cli

from tests import fake_dataset

COUNTS = {"train": 1, "test_iid": 2, "test_hard": 1}


def make_dataset(folder: Path, counts=None) -> Path:
    """`folder`/data: a merged dataset of `counts` scenes per split."""
    data = folder / "data"
    fake_dataset.make_output(data, counts or COUNTS)
    merge.merge(data)
    return data


def export(data: Path, out: Path, per_type: int = 3, fmt: str = "vlmevalkit",
           extra=()) -> Path:
    """The dataset's export in `fmt` into `out`; returns `out`."""
    code = cli.main([str(data), "--format", fmt, "--out", str(out), "--per-type",
                     str(per_type), "--jobs", "1", *extra])
    assert code == 0
    return out


def make_export(folder: Path, per_type: int = 3, counts=None) -> Path:
    """`folder`/data (the dataset) and `folder`/export (its VLMEvalKit files); returns the
    export folder."""
    return export(make_dataset(folder, counts), folder / "export", per_type)
