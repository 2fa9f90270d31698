"""What every export shares: its refusal, which carries the exit code."""

from ...launcher.exit_codes import ExitCode


class ExportRefused(Exception):
    """The export cannot go on; the message names the argument or the file and what is
    allowed. `code`: 2 by default (a bad argument), 1 for a damaged dataset, 3 for one
    that is not merged, 4 for a target disk that is full or read-only."""

    def __init__(self, message: str, code: ExitCode = ExitCode.REFUSED):
        super().__init__(message)
        self.code = code
