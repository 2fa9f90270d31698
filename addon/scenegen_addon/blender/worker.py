"""A scenegen render worker: runs inside Blender and renders the scenes the launcher sends.

Started by the launcher through the package's own scripts/run.py, as `blender -b
--factory-startup --python .../scripts/run.py -- worker ARGS` or, with the embedded bpy
module, as `python .../scripts/run.py worker ARGS`.

Protocol (launcher.protocol): the launcher writes one command per line on stdin (render a
scene, or merge); the worker handles one at a time and answers with event lines on stdout,
then asks for the next with an idle event (ready at the start). A render
command is answered with "idle" as soon as the scene has rendered: its post-processing
runs in a thread while the next scene renders, and its "scene_done" comes from there, so
up to two scenes are in flight. A failure there is reported at once and ends the worker
(exit 1). The worker lets the pending scene finish before a merge and before it exits. When
stdin closes the worker exits at once: with code 0 when idle with nothing pending (the
launcher recycles it), with code 1 in the middle of a command or with a scene still being
written (the launcher is gone, so nothing may keep writing). On Linux it also asks the
kernel to kill it when its parent dies.

Test-only hook: SCENEGEN_TEST_FAULT="hang:<scene_id>:<marker>" (or "crash:...") makes the
worker hang (or die) on that scene when the marker file does not exist yet, creating it,
so the rerun proceeds normally; without ":<marker>" it happens every time; "*" stands for
every scene. Several faults are separated by ";".
"""

import argparse
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path

from ..core import layout, merge
from ..launcher import protocol
from . import batch
from .finisher import Finisher


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run.py worker")
    parser.add_argument("--output", help="dataset folder (holds .scenegen/plan.json)")
    parser.add_argument("--device", default="CPU", choices=("CPU", "GPU", "OPTIX", "CUDA"))
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--probe", action="store_true",
                        help="print Blender and numpy versions, then exit")
    return parser.parse_args(argv)


def die_with_parent(parent_pid: int | None) -> None:
    """Linux: SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG).

    The parent is the launcher, unless a wrapper script started Blender; the closing pipe
    covers that case (and other systems)."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:  # the launcher died before prctl took effect
        os._exit(1)


class Commands:
    """Reads stdin in a thread, so the end of the pipe is noticed even mid-render: a command
    that is running, a scene still being written (`writing()`), or a command after the end,
    ends the process at once."""

    def __init__(self, writing):
        self.queue: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.busy = self.closed = False
        self.writing = writing
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            if line.strip():
                self.queue.put(protocol.parse_command(line))
        with self.lock:
            self.closed = True
            if self.busy or self.writing():
                os._exit(1)
        self.queue.put(None)

    def next(self) -> dict | None:
        """The next command, marked busy until done(); None when the pipe has closed."""
        command = self.queue.get()
        with self.lock:
            if command is not None and self.closed:
                os._exit(1)
            self.busy = command is not None
        return command

    def done(self) -> None:
        with self.lock:
            self.busy = False


def inject_fault(scene_id: str) -> None:
    """The test-only hook of the module docstring."""
    for fault in filter(None, os.environ.get("SCENEGEN_TEST_FAULT", "").split(";")):
        kind, target, *marker = fault.split(":", 2)
        if target not in (scene_id, "*"):
            continue
        if marker:
            if os.path.exists(marker[0]):
                continue
            Path(marker[0]).touch()
        if kind == "hang":
            while True:
                time.sleep(3600)
        if kind == "crash":
            os._exit(9)


def heap_trimmer():
    """Linux (glibc): a call that hands the heap's free pages back to the system, so memory
    a scene freed leaves the worker's RSS instead of staying in it (docs/PERFORMANCE.md:
    35-60 MB); elsewhere a call that does nothing."""
    import ctypes

    trim = getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform == "linux" else None
    return (lambda: trim(0)) if trim else (lambda: None)


def fail(error) -> None:
    """A scene's post-processing failed (in its thread): report it and end the worker, so the
    launcher reruns the scene now rather than after a timeout."""
    batch.report_error(error.scene_id, error.cause)
    sys.stdout.flush()
    os._exit(1)


def run(args) -> int:
    output = Path(args.output)
    finisher = Finisher(on_error=fail)
    commands = Commands(finisher.pending)
    trim_heap = heap_trimmer()
    batch.emit(protocol.READY, worker=args.worker, pid=os.getpid())
    while (command := commands.next()) is not None:
        if command["cmd"] == protocol.RENDER:
            inject_fault(command["scene_id"])
            if batch.render_scenes(output, [command["scene_id"]], args.device, finisher,
                                   record=False, wait=False):
                return 1  # the error event is out
            trim_heap()
        else:
            finisher.wait()
            try:  # what bpy.ops.scenegen.merge runs, but its error tells a full disk apart
                merge.merge(output)
            except (OSError, ValueError, KeyError) as exc:
                batch.emit(protocol.DISK_ERROR if layout.is_disk_error(exc)
                           else protocol.MERGE_FAILED, reason=f"merge of {output} failed: {exc}")
                return 1
            batch.emit(protocol.MERGED)
        commands.done()
        batch.emit(protocol.IDLE)  # ask for the next command
    finisher.wait()  # its scene is written: let it report scene_done
    return 0


def main(argv: list[str]) -> int:
    """The worker's process: check the device, serve commands. It runs the batch code
    directly and never registers the add-on's operators or panel."""
    args = parse_args(argv)
    die_with_parent(args.parent_pid)
    import bpy
    import numpy

    from . import compat, render

    if args.device != "CPU":  # fail before "ready" (a start failure), not scene by scene
        try:
            render.choose_device(compat.list_devices(), args.device)
        except RuntimeError as exc:
            message = f"device {args.device} was asked for but this worker sees none: {exc}"
            raise RuntimeError(message) from None
    if args.probe:
        batch.emit(protocol.PROBE, blender_version=bpy.app.version_string,
                   numpy_version=numpy.__version__,
                   package=str(Path(__file__).resolve().parent.parent))
        return 0
    return run(args)
