"""A small dataset (made without Blender, tests/fake_dataset.py) and its VLMEvalKit export,
for the evaluation's tests."""

from pathlib import Path

from scenegen_addon.core import merge
from scenegen_addon.dataset.exports import cli

from tests import fake_dataset

COUNTS = {"train": 1, "test_iid": 2, "test_hard": 1}


def make_export(folder: Path, per_type: int = 3, counts=None) -> Path:
    """`folder`/data (the dataset) and `folder`/export (its VLMEvalKit files); returns the
    export folder."""
    data = folder / "data"
    fake_dataset.make_output(data, counts or COUNTS)
    merge.merge(data)
    out = folder / "export"
    code = cli.main([str(data), "--format", "vlmevalkit", "--out", str(out), "--per-type",
                     str(per_type), "--jobs", "1"])
    assert code == 0
    return out
