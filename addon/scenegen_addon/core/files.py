"""Opening one entry of a folder safely: the one way the launcher, the validator and the
readers open a file.

`open_fd` never follows a final symbolic link (O_NOFOLLOW), never blocks on a FIFO or a
device (O_NONBLOCK: a FIFO without a writer reads empty, one without a reader cannot be
opened for writing), and hands out the descriptor only once `fstat` on it says it is a
regular file, with a single link when it is written in place (a log appended to, the lock:
a hard link would carry the writes out of the folder). Anything else raises NotAFile, an
OSError that names the entry and what it is, so every caller that handles an unreadable
file handles it too.
"""

import errno
import os
import stat
from pathlib import Path

KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
         stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFLNK: "a symbolic link"}
# open()'s answers for an entry of the wrong kind under O_NOFOLLOW | O_NONBLOCK
WRONG_KIND = (errno.ELOOP, errno.EISDIR, errno.ENXIO)


class NotAFile(OSError):
    """An entry that is not a regular file, or a file to append to that has other names."""

    def __init__(self, path, what: str):
        super().__init__(f"{path} is {what}, not a regular file scenegen reads or writes")
        self.path, self.what = str(path), what

    def __str__(self) -> str:
        return self.args[0]


def kind(path) -> str:
    """What the entry at `path` is, in words ("a FIFO"), without following a link."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "missing"
    return KINDS.get(stat.S_IFMT(mode), "a regular file")


def open_fd(path, flags: int, mode: int = 0o644, in_place: bool = False) -> int:
    """A descriptor of the regular file at `path` (os.open `flags`, e.g. O_RDONLY), or
    NotAFile; `in_place`: the file is written where it is (appended to, or rewritten like
    the lock), so it must have one link only."""
    flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno in WRONG_KIND:
            raise NotAFile(path, kind(path)) from None
        raise
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise NotAFile(path, KINDS.get(stat.S_IFMT(found.st_mode), "not a regular file"))
        if in_place and found.st_nlink != 1:
            raise NotAFile(path, f"a file with {found.st_nlink} hard links (its other names "
                                 "may be outside the folder)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path, limit: int | None = None) -> bytes:
    """The whole regular file at `path`; ValueError when it holds more than `limit` bytes
    (checked before anything is read, and by reading at most `limit` + 1 bytes: a file
    that grows meanwhile is refused too)."""
    with os.fdopen(open_fd(path, os.O_RDONLY), "rb") as f:
        if limit is None:
            return f.read()
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise ValueError(f"{path}: {size} bytes, more than the {limit} such a file "
                             "can hold")
        data = f.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path}: grew past {limit} bytes while read, more than such a "
                             "file can hold")
        return data


def append_text(path: Path):
    """A line-buffered UTF-8 text file at `path` to append to (a log), created if needed."""
    return os.fdopen(open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, in_place=True),
                     "a", encoding="utf-8", buffering=1)
