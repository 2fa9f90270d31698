"""What every export shares: its refusal (which carries the exit code), the file name of an
image in tools' caches, the blind baseline's file. Where an export writes is
exports.target; what it checks in the dataset first, exports.verify."""

from pathlib import Path

from ...core import layout
from ...launcher.exit_codes import ExitCode

BLIND_FILE = "blind_baseline.json"


class ExportRefused(Exception):
    """The export cannot go on; the message names the argument or the file and what is
    allowed. `code`: 2 by default (a bad argument), 1 for a damaged dataset, 3 for one
    that is not merged, 4 for a target disk that is full or read-only."""

    def __init__(self, message: str, code: ExitCode = ExitCode.REFUSED):
        super().__init__(message)
        self.code = code


def image_name(rel: str, sha256: str) -> str:
    """The file name tools cache an image under: the first 16 hex digits of the PNG's
    SHA-256 (as in checksums.sha256), the scene id and the view ("views/s/view_2.png" ->
    "<sha>_s_view_2.png"), so a changed picture never meets a stale cached copy."""
    return f"{sha256[:16]}_{'_'.join(Path(rel).parts[-2:])}"


def write_blind_table(out: Path, table) -> str:
    """OUT/blind_baseline.json (dataset.blind's table); returns its name."""
    layout.write_json(out / BLIND_FILE, table.to_json())
    return BLIND_FILE
