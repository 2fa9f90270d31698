"""One launcher per output folder: an exclusive `flock` on `.scenegen/lock`, held open for
the whole run. The kernel releases it when the process dies, however it dies, so there is
never a stale lock to take over and two launchers can never both win. A holder may remove
the file before it lets go (a refused run leaves nothing behind), so a lock counts only on
the file still at the path. A reader of the whole folder (validate.py) holds a shared lock
(`reading`): never while a build runs, and no build starts while it reads."""

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone

from ..core import files


class LockHeld(Exception):
    def __init__(self, holder: dict | None, path):
        super().__init__(
            f"a validation (validate.py) is reading this folder ({path}); try again when it "
            "ends" if holder is None else
            f"another launcher (PID {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('started', '?')}) is using this folder ({path})")
        self.holder = holder


class FolderLock:
    """`with FolderLock(path):` holds the lock; LockHeld names the holder otherwise."""

    def __init__(self, path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = files.open_fd(self.path, os.O_RDWR | os.O_CREAT, in_place=True)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = None if _only_readers(fd) else _read_holder(fd)
                os.close(fd)
                raise LockHeld(holder, self.path) from None
            if _is_file_at(fd, self.path):
                break
            # the holder removed the file before letting go (folder._remove_created): this
            # lock is on a file no other launcher opens any more; try the path's file again
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


@contextmanager
def reading(path, wait: bool = False, say=None):
    """Hold a shared lock on the lock file `path` for the block: LockHeld naming the build
    that holds it, or with `wait` block until it ends (`say(text)` tells so first). A folder
    without a lock file has no build running (a build holds its lock file from its start)."""
    try:
        fd = files.open_fd(path, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held = LockHeld(_read_holder(fd), path)
            if not wait:
                raise held from None
            if say is not None:
                say(f"waiting: {held}")
            fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _only_readers(fd: int) -> bool:
    """The lock `fd` could not be taken exclusively, but a shared one is free: readers
    hold it, not a launcher."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def _is_file_at(fd: int, path) -> bool:
    """The open file is the one at `path` now (not one removed or replaced since)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
