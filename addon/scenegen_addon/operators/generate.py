"""bpy.ops.scenegen.generate / generate_stop: the panel's Generate and Stop buttons.

Generate starts the launcher of this very package (`scripts/run.py build`, no source
checkout needed) as a subprocess with Blender's own Python and binary, so a dataset build never
blocks the UI; a persistent timer calls poll() about once a second, which turns the
launcher's .scenegen/progress.json and, at the end, its `result` event into the status text
the panel shows. poll() is a plain function because timers never fire in background mode:
tests drive it themselves. Stop sends SIGTERM, on which the launcher stops its workers
cleanly; Generate resumes.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from ..core import layout
from ..launcher import exit_codes, progress, protocol
from ..launcher.blender_program import program_command

POLL_SECONDS = 1.0


@dataclass
class Run:
    """One launcher started from the panel; `status` is what the panel shows."""

    process: subprocess.Popen
    output: Path
    log: Path
    command: list[str]
    started: float  # time.time() just before the launcher started
    status: str = "starting: checking the settings and Blender"
    code: int | None = None


_run: Run | None = None


def current() -> Run | None:
    """The latest run started from the panel (finished or not)."""
    return _run


def is_running() -> bool:
    return _run is not None and _run.process.poll() is None


def output_folder(setting: str) -> Path:
    if not setting.strip():
        raise ValueError("output folder is empty: choose the folder the dataset goes to")
    path = Path(bpy.path.abspath(setting)).expanduser()
    if not path.is_absolute():
        raise ValueError(f"output folder {setting!r} is relative: save the .blend file first "
                         "or choose an absolute folder")
    return path


def blender_program(binary_path: str, python: str) -> str | None:
    """Blender's executable for --blender, or None under the bpy module (there the launcher
    uses that Python's bpy), where binary_path is empty or the Python interpreter itself."""
    if not binary_path or Path(binary_path).name.lower().startswith("python"):
        return None
    try:
        if os.path.samefile(binary_path, python):
            return None
    except OSError:
        pass
    return binary_path


def launcher_command(output: Path, blender: str | None, settings, resolution: str = "",
                     samples: int = 0, scenes_per_split: int = 0) -> list[str]:
    """The launcher's command line from the panel settings (and the operator's overrides),
    run by this Python; `blender` = Blender's executable, None under the bpy module."""
    n_gpus = None if settings.n_gpus < 0 else settings.n_gpus
    options = {
        "blender": blender,
        "size": None if scenes_per_split else settings.size,
        "quality": settings.quality,
        "n_gpus": n_gpus,
        "workers": settings.workers if n_gpus == 0 else None,
        "seed": settings.build_seed,
        "resolution": resolution or None,
        "samples": samples or None,
        "scenes_per_split": scenes_per_split or None,
        "passes": "depth" if settings.depth else None,
        "yes": True,  # pressing Generate is the confirmation the launcher asks for
    }
    command = [*program_command(None, "build"), "--output", str(output)]
    for name, value in options.items():
        if value is None or value is False:
            continue
        command.append("--" + name.replace("_", "-"))
        if value is not True:
            command.append(str(value))
    return command


def start(command: list[str], output: Path) -> Run:
    """Start the launcher, its stdout and stderr going to a log file in the temp folder."""
    global _run
    fd, log = tempfile.mkstemp(prefix="scenegen-generate-", suffix=".log")
    started = time.time()
    with os.fdopen(fd, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    _run = Run(process, output, Path(log), command, started)
    return _run


def fresh_progress(run: Run) -> dict | None:
    """progress.json of this run; one left by an earlier run in the same folder is ignored."""
    try:
        if layout.progress_file(run.output).stat().st_mtime < run.started:
            return None
    except OSError:
        return None
    return progress.read(run.output)


def progress_text(state: dict) -> str:
    speed = state["scenes_per_hour"]
    text = (f"{state['state']}: {state['done']}/{state['total']} scenes, "
            f"{'?' if speed is None else f'{speed:.1f}'} scenes/h, "
            f"ETA {progress.duration(state['eta_seconds'])}, {state['failed']} failed")
    return f"{text}\n{state['message']}" if state.get("message") else text


def launcher_result(log: Path) -> dict | None:
    """The launcher's `result` event from its log, None when it wrote none (it was killed)."""
    try:
        return protocol.last_event(log.read_text(errors="replace"), protocol.RESULT)
    except OSError:
        return None


def exit_text(code: int, state: dict | None, log: Path) -> str:
    """What the exit code means, then the launcher's own message (a refusal's reason) or the
    last progress, then where the log is."""
    result = launcher_result(log)
    lines = [f"{exit_codes.meaning(code)} (exit code {code})"]
    if result is not None and result.get("message"):
        lines.append(result["message"])
    elif state is not None:
        lines.append(progress_text(state))
    if code != exit_codes.ExitCode.OK:
        lines.append(f"log: {log}")
    return "\n".join(lines)


def poll(run: Run) -> bool:
    """Update run.status from the progress file, or from the exit code once the launcher
    has exited; True while it runs."""
    code = run.process.poll()
    state = fresh_progress(run)
    if code is None:
        if state is not None:
            run.status = progress_text(state)
        return True
    run.code = code
    run.status = exit_text(code, state, run.log)
    return False


def _redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _tick() -> float | None:
    """The timer: poll the latest run, redraw the panel, stop when the launcher exits."""
    running = _run is not None and poll(_run)
    _redraw()
    return POLL_SECONDS if running else None


class SCENEGEN_OT_generate(bpy.types.Operator):
    """Build a dataset with the headless launcher in the background (one Blender per GPU);
    rerun on the same folder to resume"""

    bl_idname = "scenegen.generate"
    bl_label = "Generate"

    # Advanced overrides of build.py (not in the panel): empty or 0 keeps the preset.
    resolution: bpy.props.StringProperty(
        name="Resolution", description="WxH instead of the quality preset's (W/H <= 1.5)",
        options={"HIDDEN", "SKIP_SAVE"})
    samples: bpy.props.IntProperty(
        name="Samples", description="Cycles samples instead of the preset's", min=0,
        options={"HIDDEN", "SKIP_SAVE"})
    scenes_per_split: bpy.props.IntProperty(
        name="Scenes per split", description="The same count in every split instead of Size",
        min=0, options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context):
        if is_running():
            self.report({"ERROR"}, f"a build is already running into {_run.output}: Stop it "
                        "first")
            return {"CANCELLED"}
        settings = context.scene.scenegen
        try:
            output = output_folder(settings.output_dir)
            command = launcher_command(
                output, blender_program(bpy.app.binary_path, sys.executable), settings,
                self.resolution, self.samples, self.scenes_per_split)
            run = start(command, output)
        except (ValueError, OSError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        if not bpy.app.timers.is_registered(_tick):
            bpy.app.timers.register(_tick, first_interval=POLL_SECONDS, persistent=True)
        self.report({"INFO"}, f"Generating into {output} (log {run.log})")
        return {"FINISHED"}


class SCENEGEN_OT_generate_stop(bpy.types.Operator):
    """Stop the running build cleanly (SIGTERM); complete scenes are kept"""

    bl_idname = "scenegen.generate_stop"
    bl_label = "Stop"

    @classmethod
    def poll(cls, context):
        return is_running()

    def execute(self, context):
        _run.process.send_signal(signal.SIGTERM)
        _run.status = "stopping: the launcher is stopping its workers"
        return {"FINISHED"}


CLASSES = (SCENEGEN_OT_generate, SCENEGEN_OT_generate_stop)
