"""Progress of a run: the bar on the terminal, `.scenegen/progress.json` for the panel, and
the formatting of rates, durations and sizes."""

import sys
import time

from ..core import layout

# progress.json's states (the panel shows them)
RUNNING, MERGING, DONE, FAILED = "running", "merging", "done", "failed"
STATES = (RUNNING, MERGING, DONE, FAILED)
INTERVAL_SECONDS = 1.0


def rate(done: int, elapsed: float) -> float | None:
    """Scenes per hour, None before the first scene or the first second."""
    if done <= 0 or elapsed <= 0:
        return None
    return done / elapsed * 3600.0


def eta(remaining: int, per_hour: float | None) -> float | None:
    if remaining <= 0:
        return 0.0
    if not per_hour:
        return None
    return remaining / per_hour * 3600.0


def duration(seconds: float | None) -> str:
    """`1h02m`, `4m05s`, `12s`; `?` when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def size_text(n_bytes: float) -> str:
    """`512 B`, `12.3 MB`, ... (decimal units, as disks are sold)."""
    units = ("B", "KB", "MB", "GB", "TB")
    power = 0
    while n_bytes >= 1000 and power < len(units) - 1:
        n_bytes /= 1000
        power += 1
    return f"{n_bytes:.0f} B" if power == 0 else f"{n_bytes:.1f} {units[power]}"


def meter(done: int, total: int, per_hour: float | None, eta_seconds: float | None,
          unit: str = "scenes", width: int = 30) -> str:
    filled = width * done // total if total else width
    speed = "?" if per_hour is None else f"{per_hour:.1f}"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}  "
            f"{speed} {unit}/h  ETA {duration(eta_seconds)}")


def bar(done: int, total: int, failed: int, per_hour: float | None,
        eta_seconds: float | None, width: int = 30) -> str:
    return f"{meter(done, total, per_hour, eta_seconds, width=width)}  failures {failed}"


def document(done, total, failed, per_hour, eta_seconds, state, message="") -> dict:
    """The contents of progress.json."""
    if state not in STATES:
        raise ValueError(f"state {state!r}: allowed are {', '.join(STATES)}")
    return {
        "done": done, "total": total, "failed": failed,
        "scenes_per_hour": None if per_hour is None else round(per_hour, 3),
        "eta_seconds": None if eta_seconds is None else round(eta_seconds, 1),
        "state": state, "message": message,
    }


def read(output_dir) -> dict | None:
    """The launcher's progress.json (for the panel), None before the launcher writes it."""
    try:
        return layout.read_json(layout.progress_file(output_dir))
    except (OSError, ValueError):
        return None


class Display:
    """The bar (redrawn in place on a terminal, a line per change otherwise) and progress.json,
    updated at most once a second unless forced; messages go on their own lines below."""

    def __init__(self, output_dir, say):
        self.path = layout.progress_file(output_dir)
        self.say = say
        self.tty = sys.stderr.isatty()
        self.shown, self.shown_width = None, 0
        self.state, self.message = RUNNING, ""
        self.last = 0.0

    def note(self, message: str) -> None:
        if self.shown_width:
            sys.stderr.write("\n")
            self.shown_width = 0
        self.say(message)

    def update(self, done: int, total: int, failed: int, per_hour, eta_seconds,
               state: str | None = None, message: str | None = None, force: bool = False,
               draw: bool = True):
        """A new state or message stays until the next one; `draw=False` writes
        progress.json only (a later stage draws its own line)."""
        self.state = state or self.state
        self.message = self.message if message is None else message
        now = time.monotonic()
        if not force and now - self.last < INTERVAL_SECONDS:
            return
        self.last = now
        layout.write_json(self.path, document(done, total, failed, per_hour, eta_seconds,
                                              self.state, self.message), compact=False)
        if not draw:
            return
        line = bar(done, total, failed, per_hour, eta_seconds)
        if self.state == RUNNING and self.message:  # e.g. kernels being compiled
            line += f"  {self.message}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.shown_width))
            sys.stderr.flush()
            self.shown_width = len(line)
        elif (done, failed, self.state, self.message) != self.shown:
            self.shown = (done, failed, self.state, self.message)
            print(line, file=sys.stderr, flush=True)


class Ticker:
    """One stage's count on stderr (the validation's scenes, an export's questions): the
    meter redrawn in place on a terminal at most once a second, else a line at most every
    LOG_SECONDS (a log file gets no flood), and a last line when the stage ends.
    `status(text)`, when given, gets a short summary at most once a second and at the end
    (the build puts it in progress.json, which the panel shows). `detail()`, when given,
    is text the meter line ends with (the model runner's tokens)."""

    LOG_SECONDS = 10.0

    def __init__(self, stage: str, unit: str = "scenes", status=None, detail=None):
        self.stage, self.unit, self.status, self.detail = stage, unit, status, detail
        self.tty = sys.stderr.isatty()
        self.started = self.last = self.told = time.monotonic()
        self.done, self.total, self.width = 0, 0, 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self.last >= (INTERVAL_SECONDS if self.tty else self.LOG_SECONDS):
            self.last = now
            self._show()
        if self.status is not None and now - self.told >= INTERVAL_SECONDS:
            self.told = now
            self.status(self.summary())

    def close(self) -> None:
        """The last line (the count reached and the time it took); the next output starts on
        a line of its own. Nothing when nothing was counted."""
        if self.total:
            self._show(end=True)
            if self.status is not None:
                self.status(self.summary())

    def _numbers(self) -> tuple[float, float | None, float | None]:
        elapsed = time.monotonic() - self.started
        per_hour = rate(self.done, elapsed)
        return elapsed, per_hour, eta(self.total - self.done, per_hour)

    def summary(self) -> str:
        """`validating: 120/400 scenes, ETA 2m05s`."""
        left = self._numbers()[2]
        return f"{self.stage}: {self.done}/{self.total} {self.unit}, ETA {duration(left)}"

    def _show(self, end: bool = False) -> None:
        elapsed, per_hour, left = self._numbers()
        line = f"{self.stage}: {meter(self.done, self.total, per_hour, left, self.unit)}"
        if self.detail is not None:
            line += f"  {self.detail()}"
        if end:
            line += f"  ({duration(elapsed)})"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.width) + ("\n" if end else ""))
            self.width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
