"""Where an export writes: OUT, outside the dataset and new or empty, written all or nothing.

An export never writes inside the dataset it reads (the dataset's own checks would find
stray files, and a later export would read its own output), so OUT must lie outside DIR,
symlinks resolved. One export writes into OUT at a time: it holds an `flock` on OUT (made
empty if it did not exist) for the whole export, and a second one is refused (exit 2). The
files are written into a staging folder beside OUT that this export created itself, with an
exclusive, uniquely named creation (`tempfile.mkdtemp`), and only that folder is ever
removed; at the end it is renamed to OUT, so OUT appears complete or not at all. A
read-only or full target disk is exit 4, found before the questions are generated where
it can be: the staging folder is made first, and the free space must hold at least the
images the export copies.
"""

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ...core import layout
from ...launcher import progress
from ...launcher.exit_codes import ExitCode
from .common import ExportRefused


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


@dataclass
class Target:
    out: Path
    staging: Path  # where the files are written; renamed to `out` by `publish`

    def check_space(self, n_bytes: int) -> None:
        """Exit 4 when OUT's disk has less free space than `n_bytes`."""
        free = shutil.disk_usage(self.staging).free
        if free < n_bytes:
            raise ExportRefused(f"--out {self.out}: {progress.size_text(free)} free, the "
                                f"export needs at least {progress.size_text(n_bytes)} (the "
                                "images it copies); free space or choose another disk",
                                ExitCode.DISK)

    def publish(self) -> None:
        os.replace(self.staging, self.out)  # OUT is the empty folder this export holds


@contextmanager
def claimed(dataset_dir, out):
    """Yield the Target of this export, holding OUT; on leaving without `publish` the
    staging folder goes, and OUT too when this export made it. ExportRefused: OUT is inside
    DIR or not empty (2), another export holds it (2), its disk is read-only or it cannot be
    written (4, or 2 without permission)."""
    target = check_out(dataset_dir, out)
    made = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _unwritable(out, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportRefused(f"--out {out}: another export is writing into it; wait for it "
                                "to end or choose another folder") from None
        check_out(dataset_dir, out)  # still empty, now that it is ours
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".export",
                                            dir=target.parent))
        except OSError as exc:
            raise _unwritable(out, exc) from None
        place = Target(target, staging)
        try:
            yield place
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already once published
    finally:
        os.close(fd)
        if made and target.is_dir() and not any(target.iterdir()):
            target.rmdir()


def _unwritable(out, exc: OSError) -> ExportRefused:
    code = ExitCode.DISK if layout.is_disk_error(exc) else ExitCode.REFUSED
    return ExportRefused(f"--out {out} cannot be written: {exc.strerror or exc}", code)
