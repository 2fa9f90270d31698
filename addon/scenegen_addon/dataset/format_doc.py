"""The dataset's format document (FORMAT.md and its figure), which every export copies into
its output so that a downloaded export explains its own labels.

It lives in docs/ of a source checkout; tools/package.py puts a copy into the extension zip,
as docs/ beside the package's __init__.py.
"""

import shutil
from pathlib import Path

FILES = ("FORMAT.md", "format_cameras_clock.svg")  # the document and the figure it links
PACKAGE = Path(__file__).resolve().parent.parent


def folder() -> Path:
    """The docs folder holding FILES: the extension zip's, else the source checkout's."""
    for candidate in (PACKAGE / "docs", PACKAGE.parent.parent / "docs"):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    raise FileNotFoundError(f"the format document ({', '.join(FILES)}) is neither in "
                            f"{PACKAGE / 'docs'} nor in a source checkout's docs/: install "
                            "scenegen from its checkout (pip install -e .) or its extension zip")


def copy_to(target: Path) -> list[str]:
    """Copy FILES into `target`; their names there."""
    source = folder()
    for name in FILES:
        shutil.copyfile(source / name, Path(target) / name)
    return list(FILES)
