"""What every export shares: the output-folder rule and the all-or-nothing write.

An export never writes inside the dataset it reads (the dataset's own checks would find
stray files, and a later export would read its own output), so OUT must lie outside DIR,
symlinks resolved. It is built in a hidden sibling folder and renamed to OUT at the end,
so OUT appears complete or not at all.
"""

import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ...core import layout

BLIND_FILE = "blind_baseline.json"


class ExportRefused(Exception):
    """The export cannot start as asked; the message names the argument and what is allowed."""


def check_out(dataset_dir, out) -> Path:
    """The resolved OUT, or ExportRefused when it is inside DIR or is not a new/empty folder."""
    root = Path(dataset_dir).resolve()
    target = Path(out).resolve()
    if target == root or target.is_relative_to(root):
        raise ExportRefused(f"--out {out} is inside the dataset folder {root}: "
                            "choose a folder outside it")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportRefused(f"--out {out} already exists and is not an empty folder: "
                            "choose a new or empty folder")
    return target


@contextmanager
def staged(out: Path):
    """Yield a temporary folder beside `out`; on success it becomes `out`, else it goes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked by check_out
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def image_name(root: Path, rel: str, blob: bytes | None = None) -> str:
    """The file name tools cache an image under: the first 16 hex digits of the PNG's
    SHA-256 (as in checksums.sha256), the scene id and the view ("views/s/view_2.png" ->
    "<sha>_s_view_2.png"), so a changed picture never meets a stale cached copy."""
    data = (root / rel).read_bytes() if blob is None else blob
    parts = Path(rel).parts
    return f"{hashlib.sha256(data).hexdigest()[:16]}_{'_'.join(parts[-2:])}"


def write_blind_table(out: Path, table) -> str:
    """OUT/blind_baseline.json (dataset.blind's table); returns its name."""
    layout.write_json(out / BLIND_FILE, table.to_json())
    return BLIND_FILE
