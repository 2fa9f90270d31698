"""Which files a piece of code opens or lists: one audit hook for the test process
(sys.addaudithook cannot be removed), recording only inside `opened()`."""

import os
import sys
from contextlib import contextmanager

_OPENED: list | None = None


def _record(event: str, args) -> None:
    if _OPENED is not None and event in ("open", "os.listdir", "os.scandir") and args:
        path = args[0]
        if isinstance(path, str | bytes | os.PathLike):
            _OPENED.append(os.path.realpath(os.fsdecode(path)))


sys.addaudithook(_record)


@contextmanager
def opened(paths: list | None = None):
    """Yield the list (`paths`, or a new one) of the real paths opened or listed in the
    block; an inner block records into its own list, then the outer one goes on."""
    global _OPENED
    outer, _OPENED = _OPENED, [] if paths is None else paths
    try:
        yield _OPENED
    finally:
        _OPENED = outer


def outside(paths: list, root, near) -> list[str]:
    """The paths under `near` (the test's own folder) that are not `root` or inside it."""
    root, near = os.path.realpath(root), os.path.realpath(near)
    return sorted({p for p in paths if p.startswith(near + os.sep) and p != root
                   and not p.startswith(root + os.sep)})
