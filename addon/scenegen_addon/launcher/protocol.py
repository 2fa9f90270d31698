"""The text protocols: the launcher writes one JSON command per line on a worker's stdin;
the worker (and the batch operator) answer with `SCENEGEN {json}` event lines on stdout.
The launcher also ends its own output with a `result` event, which the panel reads, marks
the worker logs with lines of its own, and names its validation stage on stderr (the
benchmark reads both)."""

import json

from ..core import layout

PREFIX = "SCENEGEN "

# commands (launcher -> worker)
RENDER = "render"  # {"cmd": RENDER, "scene_id": ...}
MERGE = "merge"  # {"cmd": MERGE}
COMMANDS = (RENDER, MERGE)

# events (worker -> launcher)
PROBE = "probe"  # versions of Blender and numpy, the package's folder; then the worker exits
READY = "ready"  # started, waiting for the first command
IDLE = "idle"  # waiting for the next command
SCENE_DONE = "scene_done"  # a scene is complete (its metadata written)
SCENE_FAILED = "scene_failed"  # sampling failed: every retry seed is exhausted
SCENE_ERROR = "scene_error"  # a scene raised: the worker exits, the launcher reruns it
DISK_ERROR = "disk_error"  # the disk is full or read-only: the run stops
MERGED = "merged"
MERGE_FAILED = "merge_failed"
EXIT = "exit"  # made by the launcher when a worker's process has exited
RESULT = "result"  # the launcher's last line: {"code", "meaning", "message"}
DOCTOR_RESULT = "doctor_result"  # a doctor probe's timings (launcher.doctor)


def command(name: str, **fields) -> str:
    """One command line for a worker's stdin."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}: allowed are {', '.join(COMMANDS)}")
    return json.dumps({"cmd": name, **fields}) + "\n"


def parse_command(line: str) -> dict:
    data = json.loads(line)
    if not isinstance(data, dict) or data.get("cmd") not in COMMANDS:
        raise ValueError(f"unknown command {line.strip()!r}: allowed are {', '.join(COMMANDS)}")
    return data


def event_line(name: str, **fields) -> str:
    """One event line: `SCENEGEN {"event": name, ...}`."""
    return PREFIX + json.dumps({"event": name, **fields}, separators=(",", ":"))


def parse_event(line: str) -> dict | None:
    """The event of an output line; None for any other line (Blender prints many)."""
    if not line.startswith(PREFIX):
        return None
    try:
        event = json.loads(line[len(PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


# --- the launcher's marks in its logs ---------------------------------------------------------
# A worker's log (.scenegen/logs/worker_<k>.log) holds the worker's output between the
# launcher's own lines `--- <UTC time> <what>`: its start (WORKER_START, then the device and
# the command), its exit code, and on a Ray cluster what befell its node.
LOG_MARK = "--- "
WORKER_START = "start"
WORKER_EXIT = "exit code"
# The build's stage after the merge, named on its stderr (its note, then the count).
VALIDATING = "validating"


def log_mark(what: str) -> str:
    """One line of the launcher's own in a log: `--- <UTC time> <what>`."""
    return f"{LOG_MARK}{layout.now_iso()} {what}\n"


def log_mark_says(line: str) -> str | None:
    """What a log_mark line says after its time; None for any other line."""
    if not line.startswith(LOG_MARK):
        return None
    return line[len(LOG_MARK):].partition(" ")[2].rstrip("\n")


def last_event(text: str, name: str) -> dict | None:
    """The last event called `name` in a whole output (a log file's text)."""
    found = None
    for line in text.splitlines():
        event = parse_event(line)
        if event is not None and event["event"] == name:
            found = event
    return found
