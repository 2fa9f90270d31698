"""Which Blender runs the workers, and a probe that starts one worker to prove it works.

The workers run this package's own `scripts/run.py worker`, so an installed extension needs
no source checkout: a Blender executable runs it with `-b --factory-startup --python`, the
bpy module with this Python.
"""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core import about
from . import protocol

PACKAGE = Path(__file__).resolve().parent.parent
RUN_SCRIPT = PACKAGE / "scripts" / "run.py"
PROBE_TIMEOUT = 600


class BlenderError(Exception):
    """No usable Blender: the message says what was tried and what to do."""


@dataclass
class Blender:
    command: list[str]  # runs the worker script; the worker's own arguments follow
    label: str
    executable: str | None  # for program_command: None is this Python's bpy module


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `blender --version` output, None if it is not Blender's."""
    m = re.search(r"^Blender (\d+)\.(\d+)(?:\.(\d+))?", text, re.MULTILINE)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def candidates(given: str | None, environ) -> list[tuple[str, str]]:
    """(where, path) in the order they are tried: --blender, $BLENDER, blender on PATH."""
    found = [("--blender", given), ("$BLENDER", environ.get("BLENDER")),
             ("blender on PATH", shutil.which("blender"))]
    return [(name, path) for name, path in found if path]


def find(given: str | None, environ) -> Blender:
    """The first candidate, else this Python's bpy module."""
    for name, path in candidates(given, environ):
        return check_executable(name, path)
    if importlib.util.find_spec("bpy") is None:
        raise BlenderError("no Blender found: give --blender PATH, set $BLENDER, put blender "
                           "on PATH, or install the bpy module (README: Requirements)")
    version = importlib.metadata.version("bpy")
    check_version("the bpy module", version, parse_version(f"Blender {version}"))
    return Blender(program_command(None, "worker"), f"bpy {version} ({sys.executable})", None)


def check_executable(name: str, path: str) -> Blender:
    exe = Path(path).expanduser()
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise BlenderError(f"{name} {path}: no such executable file")
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BlenderError(f"{name} {path} does not run as Blender: {exc}") from None
    version = parse_version(out)
    check_version(f"{name} {path}", out.strip().splitlines()[0] if out.strip() else "", version)
    resolved = str(exe.resolve())
    return Blender(program_command(resolved, "worker"),
                   f"{exe} ({'.'.join(map(str, version))})", resolved)


def program_command(blender: str | None, program: str) -> list[str]:
    """The command that runs one of scripts/run.py's programs in Blender (the executable, or
    this Python with its bpy module when `blender` is None: the launcher itself, `build`,
    always runs so); its own arguments follow. The one home of these command lines."""
    if blender is None:
        return [sys.executable, str(RUN_SCRIPT), program]
    return [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python",
            str(RUN_SCRIPT), "--", program]


def check_version(name: str, text: str, version) -> None:
    if version is None:
        raise BlenderError(f"{name} is not Blender (its --version printed {text[:80]!r})")
    if not about.blender_supported(version):
        raise BlenderError(f"{name} is Blender {'.'.join(map(str, version))}; scenegen "
                           f"supports {about.SUPPORTED}")


def probe(blender: Blender) -> dict:
    """Start a worker once: the Blender and numpy versions, and proof that the add-on loads
    (the `probe` event also names the package folder the worker imported). Its temporary
    files (Blender's blender_* folder, which outlives a worker) go to a folder removed after."""
    try:
        with tempfile.TemporaryDirectory(prefix="scenegen_probe_") as scratch:
            run = subprocess.run(blender.command + ["--probe"], capture_output=True, text=True,
                                 timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, "TMPDIR": scratch})
    except subprocess.TimeoutExpired:
        raise BlenderError(f"{blender.label} did not start a worker within "
                           f"{PROBE_TIMEOUT} s") from None
    event = protocol.last_event(run.stdout, protocol.PROBE)
    if event is None:
        tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-15:])
        raise BlenderError(f"{blender.label} cannot run the scenegen worker:\n{tail}")
    return event
