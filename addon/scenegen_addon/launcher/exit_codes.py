"""The one table of exit codes: the launcher returns them, validate.py returns its subset,
the panel's Generate operator explains them, and the README's table is checked against it."""

import signal
from enum import IntEnum


class ExitCode(IntEnum):
    meaning: str

    def __new__(cls, code: int, meaning: str):
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = 0, "done: the dataset is complete and valid"
    CORRUPT = 1, "corrupt: the validator found bad files or labels"
    REFUSED = 2, "refused: bad input, or a start that would be unsafe"
    INCOMPLETE = 3, "incomplete: some scenes failed (listed in dataset_info.json) or not merged"
    DISK = 4, "stopped: the disk is full or read-only"
    WORKERS_FAILED = 5, "failed: workers could not start or the merge failed"
    DEVICES_FAILED = 6, "stopped: every worker failed scene after scene (a device fault?)"
    INTERNAL = 70, "internal error: a bug in scenegen (the log has the traceback)"
    SIGINT = 128 + signal.SIGINT, "stopped (SIGINT, Ctrl-C): start it again to resume"
    SIGTERM = 128 + signal.SIGTERM, "stopped (SIGTERM): start it again to resume"


def meaning(code: int) -> str:
    """What an exit code of the launcher means, for any integer a process may return."""
    try:
        return ExitCode(code).meaning
    except ValueError:
        return f"killed by signal {-code}" if code < 0 else f"unknown exit code {code}"


def for_signal(signum: int) -> ExitCode:
    return ExitCode(128 + signum)
