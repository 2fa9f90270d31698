"""One launcher per output folder: an exclusive `flock` on `.scenegen/lock`, held open for
the whole run. The kernel releases it when the process dies, however it dies, so there is
never a stale lock to take over and two launchers can never both win. A holder may remove
the file before it lets go (a refused run leaves nothing behind), so a lock counts only on
the file still at the path."""

import fcntl
import json
import os
import socket
from datetime import datetime, timezone


class LockHeld(Exception):
    def __init__(self, holder: dict, path):
        super().__init__(f"another launcher (PID {holder.get('pid', '?')} on "
                         f"{holder.get('host', '?')}, since {holder.get('started', '?')}) is "
                         f"using this folder ({path})")
        self.holder = holder


class FolderLock:
    """`with FolderLock(path):` holds the lock; LockHeld names the holder otherwise."""

    def __init__(self, path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
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
