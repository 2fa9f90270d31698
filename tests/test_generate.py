"""The panel's Generate and Stop buttons: real launcher runs (the package's own launcher on
the bpy module) at 48x32 with 1 sample, driven by generate.poll() since timers never fire
in background mode."""

import json
import sys
import tempfile
import time
from pathlib import Path

import pytest
from scenegen_addon.core import presets
from scenegen_addon.launcher import progress, protocol
from scenegen_addon.launcher.exit_codes import ExitCode
from scenegen_addon.launcher.lock import FolderLock

ROOT = Path(__file__).resolve().parent.parent
FAST = {"resolution": "48x32", "samples": 1}
RUN = str(ROOT / "addon/scenegen_addon/scripts/run.py")


@pytest.fixture
def generate(addon, empty_file, monkeypatch, tmp_path):
    """The generate module with CPU settings; no Blender on PATH, so the launcher takes
    this Python's bpy module; launcher logs go to the test's folder."""
    from scenegen_addon.operators import generate

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("BLENDER", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    settings = empty_file.context.scene.scenegen
    settings.quality = "draft"
    settings.n_gpus = 0
    settings.workers = 1
    yield generate
    run = generate.current()
    if run is not None and run.process.poll() is None:  # never leave a launcher behind
        run.process.kill()
        run.process.wait(60)


def settings():
    import bpy

    return bpy.context.scene.scenegen


class Layout:
    """Stands in for a UILayout (none exists in background mode): records what is drawn."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        if name in ("column", "row", "box"):
            return lambda **_: self
        return lambda *args, **kwargs: self.log.append(
            (name, args[-1] if args else None, kwargs))


def drawn(addon) -> dict[str, list]:
    """What the Generate dataset panel shows now: props, operators, labels."""
    import bpy

    log = []
    addon.ui.SCENEGEN_PT_generate.draw(type("P", (), {"layout": Layout(log)})(), bpy.context)
    shown = {"prop": [], "operator": [], "label": []}
    for name, arg, kwargs in log:
        shown[name].append(kwargs["text"] if name == "label" else arg)
    return shown


def wait(generate, run, until=lambda run: False, timeout=240.0) -> list[str]:
    """Drive poll() like the timer does, until the launcher exits or `until` holds; the
    statuses seen on the way."""
    deadline = time.monotonic() + timeout
    seen = []
    while generate.poll(run):
        seen.append(run.status)
        if until(run):
            break
        assert time.monotonic() < deadline, f"launcher still running: {run.status}"
        time.sleep(0.2)
    return seen


def test_generate_builds_a_dataset_and_reports_done(generate, tmp_path):
    import bpy

    out = tmp_path / "data"
    settings().output_dir = str(out)
    settings().build_seed = 47
    assert bpy.ops.scenegen.generate(scenes_per_split=1, **FAST) == {"FINISHED"}
    run = generate.current()
    assert generate.is_running()
    assert run.command[:5] == [sys.executable, RUN, "build", "--output", str(out)]
    assert "--blender" not in run.command  # the bpy module: the launcher uses its own Python
    seen = wait(generate, run)
    assert run.code == 0, run.status
    assert not generate.is_running()
    assert run.status.splitlines()[0] == "done: the dataset is complete and valid (exit code 0)"
    assert "done: 5/5 scenes" in run.status and "0 failed" in run.status
    assert seen[0] == "starting: checking the settings and Blender"
    assert any(s.startswith("running: ") and "/5 scenes" in s for s in seen), seen
    for split in presets.SPLITS:  # one scene per split, each with its metadata
        assert (out / "metadata" / f"{split}_00000.json").is_file()
    assert len(list((out / "metadata").iterdir())) == 5
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["config"]["seed"] == 47 and info["config"]["resolution"] == [48, 32]


def test_stop_terminates_the_launcher_and_generate_resumes(addon, generate, tmp_path):
    import bpy

    out = tmp_path / "data"
    settings().output_dir = str(out)
    assert bpy.ops.scenegen.generate(scenes_per_split=20, **FAST) == {"FINISHED"}
    run = generate.current()
    with pytest.raises(RuntimeError, match="already running"):
        bpy.ops.scenegen.generate(scenes_per_split=20, **FAST)
    wait(generate, run, until=lambda r: r.status.startswith("running: "))
    assert generate.is_running(), run.status
    panel = drawn(addon)  # Generate has turned into Stop, above the progress
    assert panel["operator"] == ["scenegen.generate_stop"]
    assert panel["label"] == run.status.splitlines() and "/100 scenes" in panel["label"][0]
    assert bpy.ops.scenegen.generate_stop() == {"FINISHED"}
    wait(generate, run, timeout=120)
    assert run.code == 143, run.status
    assert run.status.startswith("stopped (SIGTERM): start it again to resume (exit code 143)")
    done = len(list((out / "metadata").glob("*.json")))
    assert done < 100
    FolderLock(out / ".scenegen" / "lock").acquire()  # free again
    assert not generate.is_running()
    with pytest.raises(RuntimeError):  # nothing left to stop
        bpy.ops.scenegen.generate_stop()
    panel = drawn(addon)
    assert panel["operator"] == ["scenegen.generate"] and panel["label"][0].startswith("stop")
    assert panel["prop"] == ["output_dir", "size", "quality", "n_gpus", "workers",
                             "build_seed", "depth"]  # CPU workers: GPUs is 0
    settings().n_gpus = -1
    assert "workers" not in drawn(addon)["prop"]


def test_a_refused_launch_shows_the_launchers_message(generate, tmp_path):
    import bpy

    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("someone else's file")
    settings().output_dir = str(out)
    assert bpy.ops.scenegen.generate(scenes_per_split=1, **FAST) == {"FINISHED"}
    run = generate.current()
    wait(generate, run)
    assert run.code == 2
    lines = run.status.splitlines()
    assert lines[0] == f"{ExitCode.REFUSED.meaning} (exit code 2)"
    assert "is not empty and holds no scenegen plan (notes.txt)" in lines[1]
    assert lines[-1] == f"log: {run.log}" and run.log.parent == tmp_path


def test_an_empty_output_folder_is_cancelled_with_a_message(generate):
    import bpy

    settings().output_dir = ""
    with pytest.raises(RuntimeError, match="output folder is empty"):
        bpy.ops.scenegen.generate()
    assert generate.current() is None or generate.current().code is not None


@pytest.mark.parametrize(("binary", "python", "expected"), [
    ("/opt/blender/blender", "/opt/blender/5.0/python/bin/python3.11", "/opt/blender/blender"),
    ("", "/venv/bin/python", None),  # the bpy module from the package index
    ("/venv/bin/python3.11", "/venv/bin/python", None),
])
def test_blender_program_is_passed_only_for_a_real_blender(generate, binary, python, expected):
    assert generate.blender_program(binary, python) == expected


def test_launcher_args_follow_the_panel(generate):
    s = settings()
    s.n_gpus, s.size, s.build_seed = -1, "tiny", 7
    assert generate.launcher_command("/d", None, s) == [
        sys.executable, RUN, "build", "--output", "/d", "--size", "tiny", "--quality", "draft",
        "--seed", "7", "--yes"]
    s.n_gpus = 0
    command = generate.launcher_command("/d", "/opt/blender/blender", s, scenes_per_split=3)
    assert command == [sys.executable, RUN, "build", "--output", "/d", "--blender",
                       "/opt/blender/blender", "--quality", "draft", "--n-gpus", "0",
                       "--workers", "1", "--seed", "7", "--scenes-per-split", "3",
                       "--yes"]  # build.py takes no --size then
    s.depth = True
    assert generate.launcher_command("/d", None, s)[-3:] == ["--passes", "depth", "--yes"]
    s.depth = False


def test_status_text_of_each_exit_code(generate, tmp_path):
    log = tmp_path / "generate.log"
    ended = protocol.event_line(protocol.RESULT, code=3, message="")
    log.write_text(f"scenegen: 5 scenes planned\n{ended}\n")
    state = progress.document(3, 5, 2, 7200.0, 0.0, "done", "done, but incomplete")
    assert generate.exit_text(3, state, log) == (
        "incomplete: some scenes failed (listed in dataset_info.json) or not merged (exit code 3)\n"
        "done: 3/5 scenes, 7200.0 scenes/h, ETA 0s, 2 failed\ndone, but incomplete\n"
        f"log: {log}")
    refusal = protocol.event_line(protocol.RESULT, code=4, message="not enough disk space")
    log.write_text(f"scenegen: 5 scenes planned\nbuild.py: error: ...\n{refusal}\n")
    assert generate.exit_text(4, state, log) == (
        f"stopped: the disk is full or read-only (exit code 4)\n"
        f"not enough disk space\nlog: {log}")
    assert generate.exit_text(-9, None, log).startswith("killed by signal 9 (exit code -9)")
    running = progress.document(1, 40, 0, None, None, "running")
    assert generate.progress_text(running) == "running: 1/40 scenes, ? scenes/h, ETA ?, 0 failed"
