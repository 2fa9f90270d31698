"""The headless launcher end to end: real workers (the bpy module, or tests/blender, a
blender-compatible executable), real renders at 96x64 with 2 samples, 1 scene per split.

Seed 47 makes test_comp_00000 a 15-object scene. Faults are injected with the worker's
test-only hook SCENEGEN_TEST_FAULT (see blender/worker.py).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scenegen_addon.core import layout, manifest, plan, png, presets
from scenegen_addon.dataset import loader
from scenegen_addon.launcher import blender_program, estimate, options, pool, progress, protocol
from scenegen_addon.launcher.lock import FolderLock

from tests import same_output

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "headless" / "build.py"
RUN = ROOT / "addon" / "scenegen_addon" / "scripts" / "run.py"
VALIDATE = ROOT / "headless" / "validate.py"
FAKE_BLENDER = ROOT / "tests" / "blender"
TINY = ["--scenes-per-split", "1", "--quality", "draft", "--resolution", "96x64",
        "--samples", "2", "--seed", "47", "--n-gpus", "0"]
SCENE_IDS = [f"{split}_00000" for split in presets.SPLITS]
# Fields of a scene record that may differ between runs (FORMAT 6.1: timing and device).
VOLATILE_RENDER = ("seconds", "device", "device_name")


def environ(**extra) -> dict:
    env = dict(os.environ)
    env.pop("BLENDER", None)
    env.pop("SCENEGEN_TEST_FAULT", None)
    env["PATH"] = os.pathsep.join(["/usr/bin", "/bin"])  # no blender, no nvidia-smi
    env["SCENEGEN_BLENDER_PYTHON"] = sys.executable
    env["XDG_CACHE_HOME"] = "/nonexistent"  # no doctor's figures: the built-in estimates
    env.update(extra)
    return env


def command(out, *args) -> list[str]:
    return [sys.executable, str(BUILD), "--output", str(out), *args]


def build(out, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(command(out, *args), capture_output=True, text=True,
                          env=env or environ(), timeout=timeout, stdin=subprocess.DEVNULL)


def start(out, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen(command(out, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or environ(),
                            stdin=subprocess.DEVNULL)


def wait_for(condition, timeout=300.0, what="condition", every=0.1):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def complete(out) -> list[str]:
    """The complete scenes (FORMAT 1: their metadata exists). pathlib's glob also matches a
    killed writer's temporary name (".<id>.json.<pid>.<thread>.tmp.json"), which is not one."""
    return sorted(p.stem for p in (Path(out) / "metadata").glob("*.json")
                  if layout.final_name(p.name) is None)


def pid_alive(pid: int) -> bool:
    """True for a running process (a zombie, already dead, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def worker_pids(out) -> set[int]:
    pids = set()
    for log in (Path(out) / ".scenegen" / "logs").glob("worker_*.log"):
        for event in map(protocol.parse_event, log.read_text().splitlines()):
            if event and event["event"] == "ready":
                pids.add(event["pid"])
    return pids


def files(out) -> set[str]:
    out = Path(out)
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def expected_layout(scene_ids, n_logs: int, passes=()) -> set[str]:
    """FORMAT 1 exactly, plus the launcher's internal files."""
    expected = {"dataset_info.json", "checksums.sha256"} | {
        f"splits/{s}.json" for s in presets.SPLITS}
    for sid in scene_ids:
        expected |= set(layout.scene_files(sid, passes))
    internal = ["plan.json", "run.json", "progress.json", "failures.json", "lock"]
    internal += [f"logs/worker_{k}.log" for k in range(n_logs)]
    internal += [f"scenes/{sid}.json" for sid in scene_ids]  # the scenes' manifests
    return expected | {f".scenegen/{name}" for name in internal}


def stable_record(path) -> dict:
    """A scene record without its timing and device fields."""
    record = json.loads(Path(path).read_text())
    for key in VOLATILE_RENDER:
        record["render"].pop(key)
    return record


def assert_same_dataset(out, reference, scene_ids=SCENE_IDS):
    for sid in scene_ids:
        rel = layout.scene_paths(sid)["metadata"]
        assert stable_record(Path(out) / rel) == stable_record(Path(reference) / rel), sid


def assert_same_splits(out, reference):
    for split in presets.SPLITS:
        rel = Path("splits") / f"{split}.json"
        assert (Path(out) / rel).read_text() == (Path(reference) / rel).read_text(), split


# --- a clean build with 2 CPU workers (and a second launcher during it) ----------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "data"
    # the launcher's own temporary folder, where its workers would leave Blender's blender_*
    # folders if they did not keep them in .scenegen/tmp/
    system_tmp = tmp_path_factory.mktemp("system_tmp")
    env = environ(TMPDIR=str(system_tmp))
    first = start(out, "--workers", "2", *TINY, env=env)
    wait_for(lambda: (out / ".scenegen" / "plan.json").exists(), what="the plan")
    second = build(out, "--workers", "2", *TINY, env=env)
    check = subprocess.run([sys.executable, str(VALIDATE), str(out)], capture_output=True,
                           text=True, timeout=600)
    first_still_running = first.poll() is None
    stdout, stderr = first.communicate(timeout=600)
    return SimpleNamespace(out=out, code=first.returncode, stdout=stdout, stderr=stderr,
                           pid=first.pid, second=second, check=check,
                           overlap=first_still_running,
                           blender_tmp=set(system_tmp.glob("blender_*")))


def test_build_exits_0_with_the_exact_layout(built):
    assert built.code == 0, built.stderr
    assert files(built.out) == expected_layout(SCENE_IDS, n_logs=2)
    # the workers' temporary folders went to .scenegen/tmp/, emptied at the end
    assert built.blender_tmp == set() and not any(layout.scratch_dir(built.out).iterdir())
    with FolderLock(built.out / ".scenegen" / "lock"):  # released
        pass


def test_build_reports_plan_disk_and_progress(built):
    assert "5 scenes planned: 5 to render, 0 already complete" in built.stdout
    assert "estimated disk use" in built.stdout and "free" in built.stdout
    assert "5/5 scenes" in built.stderr and "scenes/h" in built.stderr
    progress = json.loads((built.out / ".scenegen" / "progress.json").read_text())
    assert (progress["done"], progress["total"], progress["failed"]) == (5, 5, 0)
    assert progress["state"] == "done"


def test_build_passes_the_validator(built):
    run = subprocess.run([sys.executable, str(VALIDATE), str(built.out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr


def test_splits_and_dataset_info_list_every_scene(built):
    for split in presets.SPLITS:
        entries = json.loads((built.out / "splits" / f"{split}.json").read_text())
        assert [e["scene_id"] for e in entries] == [f"{split}_00000"]
    info = json.loads((built.out / "dataset_info.json").read_text())
    assert info["failed"] == []
    assert info["config"]["workers"] == 2 and info["config"]["n_gpus"] == 0
    record = json.loads((built.out / "metadata" / "test_comp_00000.json").read_text())
    assert record["n_objects"] == 15


def test_exactly_one_worker_runs_the_merge(built):
    logs = [(built.out / ".scenegen" / "logs" / f"worker_{k}.log").read_text() for k in range(2)]
    assert sum(log.count('SCENEGEN {"event":"merged"}') for log in logs) == 1


def test_work_is_shared_between_both_workers(built):
    done = {}
    for k in range(2):
        log = (built.out / ".scenegen" / "logs" / f"worker_{k}.log").read_text()
        events = [protocol.parse_event(line) for line in log.splitlines()]
        done[k] = [e["scene_id"] for e in events if e and e["event"] == "scene_done"]
    assert done[0] and done[1]
    assert sorted(done[0] + done[1]) == sorted(SCENE_IDS)


def test_a_second_launcher_on_the_same_folder_is_refused(built):
    assert built.overlap, "the first build ended before the second launcher started"
    assert built.second.returncode == 2
    assert f"PID {built.pid}" in built.second.stderr


def test_validate_during_the_build_checks_nothing_and_says_so(built):
    """Its listing and reads would straddle the last scene and the merge (CORRUPT in 3 of 3
    builds): it names the build instead, exit 3."""
    assert built.overlap, "the first build ended before the validator started"
    assert built.check.returncode == 3 and built.check.stdout == ""
    assert f"validate.py: build in progress: another launcher (PID {built.pid} on" in (
        built.check.stderr)


def test_disk_estimate_is_generous_but_not_absurd(built):
    scene_files = [built.out / f for f in files(built.out)
                   if not f.startswith((".scenegen", "splits", "dataset_info"))]
    actual = sum(p.stat().st_size for p in scene_files if "single_view" not in p.parts)
    scenes = plan.build_plan({s: 1 for s in presets.SPLITS}, 47)
    estimated = estimate.disk_estimate(scenes, 96, 64)
    assert actual <= estimated <= 4 * actual


# --- the same through a blender-compatible executable -----------------------------------

@pytest.mark.heavy
def test_build_through_a_blender_executable_gives_the_same_dataset(built, tmp_path):
    """Also recycles each worker after 2 scenes."""
    out = tmp_path / "data"
    env = environ(PYTHONPATH="/nonexistent")  # a Blender ignores it; the worker must not need it
    run = build(out, "--workers", "2", "--recycle-after", "2", "--blender", str(FAKE_BLENDER),
                *TINY, env=env)
    assert run.returncode == 0, run.stderr
    assert files(out) == expected_layout(SCENE_IDS, n_logs=2)
    logs = [(out / ".scenegen" / "logs" / f"worker_{k}.log").read_text() for k in range(2)]
    assert (f"{FAKE_BLENDER} -b --factory-startup --python-exit-code 1 --python {RUN} -- worker "
            "--output") in logs[0]
    for log in logs:  # no worker process rendered more than 2 scenes
        for process in log.split(" start (")[1:]:
            assert process.count('"event":"scene_done"') <= 2
    assert sum(log.count(" start (") for log in logs) >= 3
    assert same_output.differences(out, built.out) == []


# --- faults -----------------------------------------------------------------------------

def test_sigkill_of_the_launcher_stops_workers_and_a_rerun_resumes(built, tmp_path):
    out = tmp_path / "data"
    proc = start(out, "--workers", "2", *TINY)
    wait_for(lambda: len(complete(out)) >= 1 and len(worker_pids(out)) == 2, what="a scene")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pids = worker_pids(out)
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=30, what="workers")
    assert 1 <= len(complete(out)) < 5
    # a worker may die between a scene's record and its manifest: at 96x64, where its
    # images cannot be checked against its masks, such a scene is rendered again
    before = {sid: (out / "metadata" / f"{sid}.json").stat().st_mtime_ns
              for sid in complete(out) if manifest.path(out, sid).exists()}
    unmanifested = [sid for sid in complete(out) if sid not in before]
    assert not (out / "dataset_info.json").exists()

    rerun = build(out, "--workers", "2", *TINY)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{5 - len(before)} to render" in rerun.stdout
    assert f"{len(before)} already complete" in rerun.stdout
    for sid in unmanifested:
        assert f"{sid} is damaged (no manifest and no line in checksums.sha256" in rerun.stdout
    for sid, mtime in before.items():  # complete scenes are never rendered again
        assert (out / "metadata" / f"{sid}.json").stat().st_mtime_ns == mtime
    assert files(out) == expected_layout(SCENE_IDS, n_logs=2)
    assert_same_dataset(out, built.out)
    assert_same_splits(out, built.out)


def test_hung_and_dying_workers_are_restarted_and_scenes_rerun(built, tmp_path):
    out = tmp_path / "data"
    faults = ";".join([
        f"hang:train_00000:{tmp_path / 'hung'}",  # once: timed out, then rerun
        f"crash:val_00000:{tmp_path / 'crashed'}",  # once: the worker dies, then rerun
        "crash:test_hard_00000",  # always: recorded failed after 3 reruns
    ])
    run = build(out, "--workers", "2", "--scene-timeout", "20", "--first-scene-timeout", "20",
                *TINY, env=environ(SCENEGEN_TEST_FAULT=faults))
    assert run.returncode == 3, run.stderr  # the validator: incomplete
    assert "scene train_00000: timed out" in run.stderr
    assert "scene val_00000: worker exited with code 9; rerun 1/3" in run.stderr
    failures = json.loads((out / ".scenegen" / "failures.json").read_text())
    assert [f["scene_id"] for f in failures] == ["test_hard_00000"]
    assert "after 3 reruns" in failures[0]["reason"]
    info = json.loads((out / "dataset_info.json").read_text())
    assert [f["scene_id"] for f in info["failed"]] == ["test_hard_00000"]
    done = [s for s in SCENE_IDS if s != "test_hard_00000"]
    assert complete(out) == sorted(done)
    assert_same_dataset(out, built.out, done)  # rerun with the same seed


@pytest.mark.parametrize("sig", [
    signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.heavy)])
def test_sigint_and_sigterm_stop_workers_cleanly(tmp_path, sig):
    out = tmp_path / "data"
    proc = start(out, "--workers", "2", *TINY)
    wait_for(lambda: len(complete(out)) >= 1 and len(worker_pids(out)) == 2, what="a scene")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert f"stopped by {sig.name}" in stderr
    assert not any(pid_alive(p) for p in worker_pids(out))
    incomplete = [s for s in SCENE_IDS if s not in complete(out)]
    assert layout.partial_files(out, incomplete) == []
    progress = json.loads((out / ".scenegen" / "progress.json").read_text())
    assert progress["state"] == "failed" and sig.name in progress["message"]
    with FolderLock(out / ".scenegen" / "lock"):  # released
        pass


def index_files(out) -> dict[str, bytes]:
    return {rel: (Path(out) / rel).read_bytes() for rel in layout.index_files(presets.SPLITS)}


def test_an_interrupted_rerun_keeps_the_last_merge_and_reads_as_merge_pending(built, tmp_path):
    """A rerun leaves the last merge's files in place and marks the folder as changing
    before it touches a scene: stopped before its own merge, it leaves the last merge's
    index files byte for byte, which the validator, the loader and the exports read as a
    pending merge (incomplete, exit 3), never as corrupt or as an unmerged folder."""
    out = tmp_path / "data"
    shutil.copytree(built.out, out)
    (out / layout.scene_paths("val_00000")["metadata"]).unlink()
    index = index_files(out)
    before = worker_pids(out)  # the copied logs name the first build's workers
    proc = start(out, *TINY, env=environ(SCENEGEN_TEST_FAULT="hang:val_00000"))
    wait_for(lambda: worker_pids(out) - before, what="the worker")
    assert index_files(out) == index and layout.merge_pending(out)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert index_files(out) == index
    check = subprocess.run([sys.executable, str(VALIDATE), str(out)], capture_output=True,
                           text=True, timeout=600)
    assert check.returncode == 3, check.stdout + check.stderr
    assert "INCOMPLETE merge pending: a build began changing its scenes at" in check.stdout
    assert "CORRUPT" not in check.stdout
    with pytest.raises(loader.NotMerged, match="merge pending"):
        loader.open_dataset(out)


def test_a_fifo_or_a_linked_log_stops_a_rerun_at_once_keeping_the_index(built, tmp_path):
    """A FIFO where a worker's log goes hung the launcher for good, deaf to Ctrl-C, after it
    had removed the index files; a log hard-linked to a file outside took its lines. Both
    are refused in seconds, naming them; the dataset stays as it was."""
    out = tmp_path / "data"
    shutil.copytree(built.out, out)
    logs = layout.logs_dir(out)
    (logs / "worker_0.log").unlink()
    os.mkfifo(logs / "worker_0.log")
    outside = tmp_path / "outside.log"
    outside.write_text("mine\n")
    (logs / "worker_1.log").unlink()
    os.link(outside, logs / "worker_1.log")
    index = index_files(out)
    started = time.monotonic()
    run = build(out, "--workers", "2", *TINY, timeout=120)
    assert run.returncode == 2, run.stderr
    assert time.monotonic() - started < 30
    assert ".scenegen/logs/worker_0.log (a FIFO)" in run.stderr
    assert ".scenegen/logs/worker_1.log (2 hard links)" in run.stderr
    assert index_files(out) == index and outside.read_text() == "mine\n"
    assert not layout.merge_pending(out)


def test_a_rerun_never_certifies_damage_when_the_manifests_are_lost(built, tmp_path):
    """A blacked-out view and every manifest lost: the last merge's checksums.sha256 still
    holds the true hashes, so the rerun renders that scene again instead of writing
    manifests and checksums from the damaged file. A scene with neither a manifest nor a
    checksum line is rendered again at 96x64, where its images cannot be checked against
    its masks. The result equals the clean build."""
    out = tmp_path / "data"
    shutil.copytree(built.out, out)
    view = out / layout.scene_paths("val_00000")["images"][2]
    view.write_bytes(png.encode_png_rgb(np.zeros((64, 96, 3), dtype=np.uint8)))
    shutil.rmtree(layout.internal(out) / "scenes")
    sums = out / layout.CHECKSUMS
    sums.write_text("".join(line for line in sums.read_text().splitlines(keepends=True)
                            if "test_iid_00000" not in line))
    run = build(out, *TINY)
    assert run.returncode == 0, run.stderr
    assert ("val_00000 is damaged (images/multi_view/val_00000/view_2.png: not the SHA-256 "
            "the last merge's checksums.sha256 lists)") in run.stdout
    assert ("test_iid_00000 is damaged (no manifest and no line in checksums.sha256, and at "
            "96x64 (below 240 px wide) its images cannot be checked") in run.stdout
    assert ("5 scenes planned: 2 to render (2 of them damaged, to repair), 3 already "
            "complete") in run.stdout
    assert same_output.differences(out, built.out) == []


def test_an_unreadable_file_is_refused_naming_it_not_taken_for_a_full_disk(built, tmp_path):
    """Exit 4 is for full or read-only disks only. (Run without the capabilities that let
    root read any file.)"""
    out = tmp_path / "data"
    shutil.copytree(built.out, out)
    image = out / layout.scene_paths("train_00000")["images"][1]
    image.chmod(0)
    caps = "-dac_override,-dac_read_search"
    run = subprocess.run(["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}",
                          *command(out, *TINY, "--plan-only")], capture_output=True,
                         text=True, env=environ(), timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 2, run.stderr
    assert f"build.py: error: {image}: Permission denied: scenegen needs to read" in run.stderr


@contextmanager
def tmpfs(mount: Path, options: str):
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip("needs permission to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGINT, marks=pytest.mark.heavy), signal.SIGTERM])
def test_a_signal_during_the_validation_stops_the_run_saying_so(tmp_path, sig):
    """After the merge no worker is left, so the signal ends the validation at once: the
    signal's exit code, the result line, and progress.json no longer "validating"."""
    out = tmp_path / "data"
    # The validation's processes start slowly (a sitecustomize on their path sleeps in
    # multiprocessing's children only), so the signal surely comes while it runs.
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        "import sys, time\nif '--multiprocessing-fork' in sys.argv:\n    time.sleep(5)\n")
    proc = start(out, *TINY, env=environ(PYTHONPATH=str(slow)))

    def validating():
        doc = progress.read(out)
        return doc is not None and doc["message"] == "validating"

    wait_for(validating, what="the validation", every=0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert f"stopped by {sig.name}; rerun the same command to resume" in stderr
    assert protocol.last_event(stdout, protocol.RESULT)["code"] == 128 + sig
    doc = progress.read(out)
    assert doc["state"] == "failed" and sig.name in doc["message"]
    assert "OK: 5 scenes checked" not in stdout  # stopped before its verdict


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "size=24m") as mount:
        yield mount


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass


def test_a_full_disk_stops_the_run_with_exit_4_keeping_complete_scenes(small_disk):
    out = small_disk / "data"
    proc = start(out, "--workers", "1", *TINY)
    wait_for(lambda: len(complete(out)) >= 1, what="a scene")
    fill(small_disk)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 4, stderr
    assert "disk full or read-only" in stderr
    kept = complete(out)
    assert kept
    for sid in kept:
        json.loads((out / "metadata" / f"{sid}.json").read_text())
    assert not any(pid_alive(p) for p in worker_pids(out))


@pytest.mark.parametrize("inodes, named", [(4, ".scenegen/plan.json"),
                                           (5, ".scenegen/merge_pending.json")])
def test_a_full_disk_before_the_render_exits_4(tmp_path, inodes, named):
    """A disk with room for this many files: the root, the folder, .scenegen/ and its lock
    fit, then the plan (4) or the mark of a changing folder (5) does not. Exit 4 naming it,
    not 70."""
    with tmpfs(tmp_path / "disk", f"size=24m,nr_inodes={inodes}") as disk:
        run = build(disk / "data", *TINY)
    assert run.returncode == 4, run.stderr
    assert "disk full or read-only" in run.stderr
    assert f"data/{named}" in run.stderr and "No space left on device" in run.stderr
    assert protocol.last_event(run.stdout, protocol.RESULT)["code"] == 4


def fake_nvidia_smi(tmp_path, listing: str, query: str = "", code: int = 0) -> dict:
    """An environment whose nvidia-smi prints `listing` for -L (then exits `code`) and
    `query` for --query-gpu."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nif [ \"$1\" = -L ]; then printf '%s' '{listing}'; exit {code}\n"
                   f"fi\nprintf '%s' '{query}'\n")
    smi.chmod(0o755)
    return environ(PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")


@pytest.mark.parametrize("backend, device", [
    pytest.param(None, "GPU", marks=pytest.mark.heavy), ("cuda", "CUDA")])
def test_gpu_workers_are_pinned_and_fail_loudly_without_a_gpu(tmp_path, backend, device):
    env = fake_nvidia_smi(tmp_path, "GPU 0: Fake A (UUID: GPU-aaaa)\n"
                                    "GPU 1: Fake B (UUID: GPU-bbbb)\n")
    env.update(CUDA_VISIBLE_DEVICES="1,0", CUDA_DEVICE_ORDER="PCI_BUS_ID")
    args = [a for a in TINY if a not in ("--n-gpus", "0")]
    args += ["--gpu-backend", backend] if backend else []
    run = build(tmp_path / "data", *args, env=env)
    assert run.returncode == 5, run.stderr
    assert "workers keep failing to start" in run.stderr
    assert "scenegen: worker 0: GPU 1 Fake B" in run.stdout  # said before work starts
    why = ("--gpu-backend cuda" if backend else "Cycles' default: OptiX where it lists it, else "
           "CUDA (the doctor has not compared OptiX and CUDA on Fake B, Fake A")
    assert f"scenegen: GPU backend {device}: {why}" in run.stdout
    logs = tmp_path / "data" / ".scenegen" / "logs"
    assert "start (CUDA_VISIBLE_DEVICES=GPU-bbbb: GPU 1" in (logs / "worker_0.log").read_text()
    assert "start (CUDA_VISIBLE_DEVICES=GPU-aaaa: GPU 0" in (logs / "worker_1.log").read_text()
    assert f"device {device} was asked for but this worker sees none" in (
        logs / "worker_0.log").read_text()
    assert f"--device {device} " in (logs / "worker_1.log").read_text()


TWO_GPUS = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)\n"
            "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb)\n")
MIG_QUERY = ("GPU-aaaa, NVIDIA H100 80GB HBM3, 550.54.15, Default, Disabled\n"
             "GPU-bbbb, NVIDIA H100 80GB HBM3, 550.54.15, Default, Enabled\n")


@pytest.mark.parametrize(("visible", "says"), [
    ("0,9,1", "CUDA_VISIBLE_DEVICES='0,9,1': its entry '9' names no GPU of the 2 that "
              "`nvidia-smi -L` lists"),
    (None, "GPU 1 NVIDIA H100 80GB HBM3 (GPU-bbbb) has MIG enabled but no MIG devices"),
])
def test_gpu_set_ups_that_would_shrink_a_run_are_refused_with_exit_2(tmp_path, visible, says):
    env = fake_nvidia_smi(tmp_path, TWO_GPUS, MIG_QUERY if visible is None else "")
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    args = [a for a in TINY if a not in ("--n-gpus", "0")]
    run = build(tmp_path / "data", *args, env=env)
    assert run.returncode == 2, run.stderr
    assert says in run.stderr
    assert protocol.last_event(run.stdout, protocol.RESULT)["code"] == 2
    assert not (tmp_path / "data").exists()  # refused before anything was written


def test_an_inforom_warning_is_said_and_the_doctors_backend_is_used(tmp_path):
    """nvidia-smi exits 14 listing both GPUs: they are used, the warning printed; the
    doctor's figures make `auto` CUDA, said with its reason among the build's first lines."""
    env = fake_nvidia_smi(tmp_path, TWO_GPUS + "WARNING: infoROM is corrupted at gpu "
                          "0000:41:00.0\n", code=14)
    cache = tmp_path / "cache"
    env["XDG_CACHE_HOME"] = str(cache)
    # measured with the build's Blender (this Python's bpy module): a choice is taken only so
    bpy = blender_program.Blender(blender_program.program_command(None, "worker"), "bpy", None)
    version = blender_program.probe(bpy)["blender_version"]
    layout.write_json(cache / "scenegen" / "doctor.json", {
        "format": estimate.FIGURES_FORMAT, "entries": [],
        "choices": [{"model": "NVIDIA H100 80GB HBM3", "blender_version": version, "backend": {
            "default": "OPTIX", "chosen": "CUDA",
            "seconds_per_scene": {"OPTIX": 14.0, "CUDA": 12.0}}}]})
    args = [a for a in TINY if a not in ("--n-gpus", "0")]
    run = build(tmp_path / "data", *args, "--plan-only", env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:5] == [
        "scenegen: 2 NVIDIA GPU(s) visible (2x NVIDIA H100 80GB HBM3)",
        "scenegen: warning: nvidia-smi exited with status 14 (a corrupted infoROM): WARNING: "
        "infoROM is corrupted at gpu 0000:41:00.0; the GPUs it lists are used (have the card's "
        "infoROM checked: nvidia-smi -q)",
        "scenegen: worker 0: GPU 0 NVIDIA H100 80GB HBM3 (GPU-aaaa)",
        "scenegen: worker 1: GPU 1 NVIDIA H100 80GB HBM3 (GPU-bbbb)",
        "scenegen: GPU backend CUDA: faster than OPTIX by more than 5%: the doctor measured "
        "NVIDIA H100 80GB HBM3 (CUDA 12.00 s, OPTIX 14.00 s per scene)"]
    assert "on 2 CUDA worker(s)" in run.stdout


def test_workers_that_fail_every_scene_stop_the_run_with_exit_6(tmp_path):
    """The circuit breaker: each slot fails 3 different scenes in a row and is given up; the
    run stops at once instead of failing every scene, and the next command renders them."""
    out = tmp_path / "data"
    run = build(out, "--workers", "2", *TINY, env=environ(SCENEGEN_TEST_FAULT="crash:*"))
    assert run.returncode == 6, run.stderr
    assert run.stderr.count("given up: 3 different scenes failed in a row") == 2
    assert "every worker failed 3 different scenes in a row" in run.stderr
    assert "worker exited with code 9" in run.stderr
    assert complete(out) == [] and not (out / "splits").exists()
    again = build(out, "--workers", "2", *TINY)  # a repaired device: every scene renders
    assert again.returncode == 0, again.stderr
    assert sorted(complete(out)) == sorted(SCENE_IDS)


# --- bad input: exit 2 with a message, before any work ---------------------------------

def old_blender(tmp_path) -> str:
    exe = tmp_path / "blender-4.2"
    exe.write_text("#!/bin/sh\necho 'Blender 4.2.3 LTS'\n")
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.parametrize("args, message", [
    (["--size", "huge"], "argument --size: invalid choice: 'huge'"),
    (["--quality", "ultra"], "argument --quality: invalid choice: 'ultra'"),
    (["--n-gpus", "3"], "allowed are 0..0"),
    (["--n-gpus", "-1"], "--n-gpus must be at least 0, got -1"),
    (["--blender", "/nonexistent/blender"], "--blender /nonexistent/blender: no such executable"),
    (["--blender", "/bin/echo"], "--blender /bin/echo is not Blender"),
    (["--blender", "OLD"], "is Blender 4.2.3; scenegen supports Blender 5.0 or newer"),
    (["--resolution", "600x320"], "resolution 600x320 is wider than 3:2"),
    (["--resolution", "wide"], "resolution must look like WxH"),
    (["--workers", "0"], f"--workers must be 1..{options.MAX_WORKERS}, got 0"),
    (["--samples", "0"], f"--samples must be 1..{presets.MAX_SAMPLES}, got 0"),
    (["--size", "tiny", "--scenes-per-split", "2"], "either --size or --scenes-per-split"),
    (["--n-gpus", "0", "--workers-per-gpu", "2"], "--workers-per-gpu needs GPUs"),
    (["--passes", "normals"], "--passes: unknown pass 'normals': allowed are depth"),
])
def test_bad_input_exits_2_before_any_work(tmp_path, args, message):
    args = [old_blender(tmp_path) if a == "OLD" else a for a in args]
    out = tmp_path / "data"
    run = build(out, *args)
    assert run.returncode == 2
    assert message in run.stderr
    assert not out.exists()  # a refused run leaves nothing behind
    assert protocol.last_event(run.stdout, protocol.RESULT)["code"] == 2


def test_blender_from_the_environment_is_checked(tmp_path):
    run = build(tmp_path / "data", *TINY, env=environ(BLENDER=old_blender(tmp_path)))
    assert run.returncode == 2
    assert "$BLENDER" in run.stderr and "Blender 4.2.3" in run.stderr


def test_an_output_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "file.txt").write_text("not a folder")
    run = build(tmp_path / "file.txt" / "data", *TINY)
    assert run.returncode == 2
    assert "cannot be written" in run.stderr


def test_a_fingerprint_mismatch_is_refused_naming_the_difference(tmp_path):
    out = tmp_path / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    plan_text = (out / ".scenegen" / "plan.json").read_text()
    changed = [a if a != "2" else "4" for a in TINY]  # --samples 2 -> 4
    run = build(out, *changed)
    assert run.returncode == 2
    assert "samples: 2 -> 4" in run.stderr and "--overwrite" in run.stderr
    assert (out / ".scenegen" / "plan.json").read_text() == plan_text


def test_overwrite_removes_only_scenegen_files_and_refuses_foreign_ones(tmp_path):
    out = tmp_path / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    old_image = out / "images" / "single_view" / "train_00000.png"
    old_image.parent.mkdir(parents=True)
    old_image.write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    changed = [a if a != "2" else "4" for a in TINY]
    run = build(out, *changed, "--overwrite", "--plan-only")
    assert run.returncode == 2
    assert "holds 1 entries its plan does not predict: notes.txt" in run.stderr
    assert old_image.exists()
    (out / "notes.txt").unlink()
    run = build(out, *changed, "--overwrite", "--plan-only")
    assert run.returncode == 0, run.stderr
    assert not old_image.exists()
    settings = json.loads((out / ".scenegen" / "plan.json").read_text())["settings"]
    assert settings["samples"] == 4


def test_a_folder_of_other_files_is_refused(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8")
    run = build(out, *TINY)
    assert run.returncode == 2
    assert "holds no scenegen plan (holiday.jpg)" in run.stderr
    assert sorted(os.listdir(out)) == ["holiday.jpg"]  # a refused run leaves no .scenegen/


def test_overwrite_deletes_nothing_when_the_run_is_not_started(tmp_path):
    out = tmp_path / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    plan_text = (out / ".scenegen" / "plan.json").read_text()
    run = build(out, "--scenes-per-split", "10", "--quality", "high", "--n-gpus", "0",
                "--overwrite")
    assert run.returncode == 2 and "--yes" in run.stderr
    assert (out / ".scenegen" / "plan.json").read_text() == plan_text


def test_a_run_above_an_hour_needs_yes_when_not_interactive(tmp_path):
    out = tmp_path / "data"
    run = build(out, "--scenes-per-split", "10", "--quality", "high", "--n-gpus", "0")
    assert run.returncode == 2
    assert "rerun with --yes" in run.stderr
    assert not out.exists()  # refused after taking the lock: what it created is gone


# --- the batch operator in this process (as in a `blender -b` script) -------------------

def test_batch_operator_renders_given_scenes_of_a_plan(addon, empty_file, tmp_path, capsys):
    out = tmp_path / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    bpy = empty_file
    with pytest.raises(RuntimeError, match="not in the plan"):
        bpy.ops.scenegen.batch(output=str(out), scene_ids="train_00099")
    assert bpy.ops.scenegen.batch(output=str(out), scene_ids="val_00000") == {"FINISHED"}
    lines = [e for e in map(protocol.parse_event, capsys.readouterr().out.splitlines()) if e]
    assert [(e["event"], e["scene_id"], e["retries"]) for e in lines] == [
        ("scene_done", "val_00000", 0)]
    assert complete(out) == ["val_00000"]
    mtime = (out / "metadata" / "val_00000.json").stat().st_mtime_ns
    bpy.ops.scenegen.batch(output=str(out), scene_ids="val_00000")  # complete: skipped
    assert (out / "metadata" / "val_00000.json").stat().st_mtime_ns == mtime
    lines = [e for e in map(protocol.parse_event, capsys.readouterr().out.splitlines()) if e]
    assert lines == [{"event": "scene_done", "scene_id": "val_00000", "already_complete": True}]


@pytest.mark.parametrize("quality", list(presets.QUALITIES))
def test_a_batch_renders_with_its_plans_quality_settings(addon, quality):
    from scenegen_addon.blender import batch

    settings = plan.plan_settings(seed=1, size=None, counts={"train": 1}, quality=quality,
                                  resolution=(96, 64), samples=2, blender_version="5.0.1",
                                  numpy_version="1.26.4")
    chosen = batch.render_settings(json.loads(json.dumps(settings)), "CPU")
    assert (chosen.width, chosen.height, chosen.samples) == (96, 64, 2)
    assert chosen.cycles == presets.quality(quality).cycles


def test_batch_operator_without_a_plan_fails_clearly(addon, empty_file, tmp_path):
    with pytest.raises(RuntimeError, match="holds no .scenegen/plan.json"):
        empty_file.ops.scenegen.batch(output=str(tmp_path))


# --- the pieces that make faults safe ---------------------------------------------------

def test_a_worker_exits_when_the_pipe_closes_even_mid_scene(tmp_path):
    out = tmp_path / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    env = environ(SCENEGEN_TEST_FAULT="hang:train_00000")
    proc = subprocess.Popen([sys.executable, str(RUN), "worker",
                             "--output", str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert '"event":"ready"' in proc.stdout.readline()
    proc.stdin.write(json.dumps({"cmd": "render", "scene_id": "train_00000"}) + "\n")
    proc.stdin.flush()
    time.sleep(1.0)  # the worker is now busy (hung) with the scene
    proc.stdin.close()
    assert proc.wait(timeout=30) != 0
    assert complete(out) == []


def start_worker(out, env=None) -> subprocess.Popen:
    """A worker (scripts/run.py worker) on the bpy module, its stdin and stdout ours."""
    proc = subprocess.Popen([sys.executable, str(RUN), "worker",
                             "--output", str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env or environ())
    assert read_event(proc)["event"] == "ready"
    return proc


def read_event(proc) -> dict:
    while (line := proc.stdout.readline()):
        if (event := protocol.parse_event(line)) is not None:
            return event
    raise AssertionError("the worker closed its stdout")


def order(proc, *commands) -> None:
    for cmd in commands:
        proc.stdin.write(json.dumps(cmd) + "\n")
    proc.stdin.flush()


def test_a_worker_asks_for_the_next_scene_while_the_last_is_written(tmp_path):
    """Idle comes before the scene's scene_done (its post-processing overlaps the next
    render); a merge and the exit wait for the pending scene."""
    out = tmp_path / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    proc = start_worker(out)
    order(proc, {"cmd": "render", "scene_id": "test_comp_00000"})  # 15 objects
    assert read_event(proc) == {"event": "idle"}
    order(proc, {"cmd": "render", "scene_id": "train_00000"})
    first = read_event(proc)  # during the next render
    assert (first["event"], first["scene_id"]) == ("scene_done", "test_comp_00000")
    events = []
    while (event := read_event(proc))["event"] != "idle":
        events.append(event)
    order(proc, {"cmd": "merge"})  # at once, the scene may still be written
    while (event := read_event(proc))["event"] != "merged":
        events.append(event)
    assert [(e["event"], e["scene_id"]) for e in events] == [("scene_done", "train_00000")]
    assert read_event(proc) == {"event": "idle"}
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert complete(out) == ["test_comp_00000", "train_00000"]


def test_a_full_disk_during_the_merge_is_a_disk_error(small_disk):
    """The worker says disk_error, which stops the run with exit 4 (a full disk: free space
    and rerun), not merge_failed (exit 5)."""
    out = small_disk / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    proc = start_worker(out)
    fill(small_disk)
    order(proc, {"cmd": "merge"})
    event = read_event(proc)
    assert event["event"] == "disk_error", event
    assert "No space left on device" in event["reason"]
    assert proc.wait(timeout=60) == 1


def test_a_failing_post_processing_ends_the_worker_at_once(tmp_path):
    """No further command needed: the launcher hears of it now, not at a timeout. The error
    comes from the post-processing thread, so it may come before or after the main thread's
    "idle" (the launcher handles either order)."""
    out = tmp_path / "data"
    assert build(out, *TINY, "--plan-only").returncode == 0
    (out / "metadata").write_text("not a folder")  # the scene record cannot be written
    proc = start_worker(out)
    order(proc, {"cmd": "render", "scene_id": "train_00000"})
    events = [read_event(proc)]
    if events[0]["event"] == "idle":
        events.append(read_event(proc))
    error = events[-1]
    assert (error["event"], error["scene_id"]) == ("scene_error", "train_00000")
    assert proc.wait(timeout=60) == 1


@pytest.mark.parametrize("writing, code", [(None, 0), ("train_00000", 1)])
def test_a_closed_pipe_ends_a_worker_with_a_scene_being_written(writing, code):
    """The launcher closes a worker only when nothing is in flight: a pipe that closes while
    a scene is still being written means the launcher is gone (exit 1 at once)."""
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'addon')!r}); "
              "from scenegen_addon.blender import worker; "
              f"commands = worker.Commands(lambda: {writing!r}); "
              "assert commands.next() is None")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.close()
    assert proc.wait(timeout=30) == code, proc.stderr.read()


def sleeping_pool(out, todo=(), total=2, scene_timeout=60.0, first_scene_timeout=60.0):
    """A pool whose workers sleep instead of rendering: its bookkeeping alone is tested."""
    config = pool.Config(
        output=out, command=[sys.executable, "-c", "import time; time.sleep(60)"],
        device="CPU", devices=[None], scene_timeout=scene_timeout,
        first_scene_timeout=first_scene_timeout, recycle_after=10, scene_bytes=1)
    return pool.Pool(config, list(todo), total, 0, 1.0, say=print)


def kill_in_flight(workers, worker, scene_ids) -> None:
    """Kill `worker` while it holds `scene_ids`, and let the pool see it go."""
    worker.ready = True
    worker.scenes.update(dict.fromkeys(scene_ids, time.monotonic()))
    workers.kill(worker)
    wait_for(lambda: workers.step(timeout=0.2) or not worker.alive, timeout=30, what="the exit")


def test_a_workers_first_scene_has_the_longer_timeout(tmp_path):
    workers = sleeping_pool(tmp_path, total=1, scene_timeout=1.0, first_scene_timeout=30.0)
    worker = workers.spawn(0)
    worker.ready = True
    worker.scenes["train_00000"] = time.monotonic() - 5.0  # 5 s into its first scene: < 30 s
    workers.check_timeouts()
    with pytest.raises(subprocess.TimeoutExpired):
        worker.proc.wait(timeout=0.5)
    worker.rendered = 1  # the same 5 s on a later scene: beyond 1 s
    workers.check_timeouts()
    assert worker.proc.wait(timeout=10) == -signal.SIGKILL
    assert worker.error == "timed out (scene limit 1 s)"


def test_every_scene_in_flight_is_rerun_when_a_worker_dies(tmp_path):
    workers = sleeping_pool(tmp_path)
    worker = workers.spawn(0)
    kill_in_flight(workers, worker, ["train_00000", "train_00001"])
    assert sorted(workers.todo) == ["train_00000", "train_00001"]
    assert workers.attempts == {"train_00000": 1, "train_00001": 1}
    replacement = workers.live()  # started at once for the scenes waiting again
    assert [w.slot for w in replacement] == [0] and replacement[0] is not worker
    workers.stop(grace=0)


def test_a_scene_that_completed_in_flight_is_kept_when_its_worker_dies_or_stops(tmp_path):
    """A worker that wrote a scene's metadata and died (or was stopped) before its
    scene_done event was read: the scene is complete, so it is counted, not removed and
    rendered again; the incomplete scene beside it is cleaned up and rerun."""
    done = [tmp_path / rel for rel in layout.scene_files("train_00000")]
    partial = tmp_path / layout.scene_paths("train_00001")["images"][0]
    for path in (*done, partial):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    workers = sleeping_pool(tmp_path)
    kill_in_flight(workers, workers.spawn(0), ["train_00000", "train_00001"])
    assert list(workers.todo) == ["train_00001"] and workers.complete == 1
    assert all(p.exists() for p in done) and not partial.exists()
    partial.parent.mkdir(parents=True)
    partial.write_text("x")
    replacement = workers.live()[0]
    replacement.scenes.update({"train_00000": time.monotonic(), "train_00001": time.monotonic()})
    workers.stop(grace=0)  # Ctrl-C with both in flight
    assert all(p.exists() for p in done) and not partial.exists()


def test_a_scene_sent_behind_another_is_timed_from_when_it_was_sent(tmp_path):
    """A worker's start-up counts against its first scene only, not the one sent while the
    first is still being written."""
    workers = sleeping_pool(tmp_path, ["train_00001"], first_scene_timeout=600.0)
    worker = workers.spawn(0)
    worker.spawned -= 100.0  # a slow start-up
    worker.ready = worker.idle = True
    worker.scenes["train_00000"] = worker.spawned
    workers.dispatch()
    assert list(worker.scenes) == ["train_00000", "train_00001"]
    assert time.monotonic() - worker.scenes["train_00001"] < 5.0
    workers.stop(grace=0)


# --- repair: a rerun finds damaged complete scenes and renders them again -------------------

def test_a_rerun_repairs_damaged_scenes_and_verify_finds_altered_ones(built, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(built.out, out)
    images = layout.scene_paths("train_00000")["images"]
    (out / images[1]).unlink()
    meta = out / layout.scene_paths("val_00000")["metadata"]
    meta.write_bytes(meta.read_bytes()[:1000])
    mask = out / layout.scene_paths("test_iid_00000")["masks"][2]
    data = bytearray(mask.read_bytes())
    data[70] ^= 0x01  # same size, a whole PNG to look at: only its hash tells
    mask.write_bytes(bytes(data))
    run = build(out, "--workers", "2", *TINY)
    assert run.returncode == 1, run.stderr  # the validator still sees the altered mask ...
    assert "CORRUPT masks/test_iid_00000/view_2.png" in run.stdout
    assert f"train_00000 is damaged ({images[1]}: missing)" in run.stdout
    assert "val_00000 is damaged (metadata/val_00000.json: " in run.stdout
    assert ("5 scenes planned: 2 to render (2 of them damaged, to repair), 3 already "
            "complete") in run.stdout
    assert "repaired 2 of 2 damaged scene(s): train_00000, val_00000" in run.stderr
    assert "test_iid_00000 is damaged" not in run.stdout
    run = build(out, "--workers", "2", *TINY, "--verify")  # ... and --verify repairs it
    assert run.returncode == 0, run.stderr
    assert "test_iid_00000 is damaged (masks/test_iid_00000/view_2.png: altered" in run.stdout
    assert same_output.differences(out, built.out) == []


def doctor_figures(cache: Path, seconds_per_scene: float) -> None:
    """The doctor's figures file for TINY's settings on one CPU worker."""
    entry = {"kind": estimate.device_kind(None), "backend": "CPU", "quality": "draft",
             "width": 96, "height": 64, "samples": 2, "default": True,
             "seconds_per_scene": {"1": seconds_per_scene}, "first_scene_seconds": 400.0}
    layout.write_json(cache / "scenegen" / "doctor.json",
                      {"format": estimate.FIGURES_FORMAT, "entries": [entry]})


def test_a_missing_manifest_is_written_only_once_the_run_goes_ahead(built, tmp_path):
    """A whole scene without its manifest gets one, but not from a refused run (here: over
    an hour by the doctor's figures, without --yes), which leaves nothing behind."""
    out, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(built.out, out)
    missing = manifest.path(out, "train_00000")
    missing.unlink()
    for path in (out / layout.scene_paths("val_00000")["metadata"],  # one scene to render
                 manifest.path(out, "val_00000")):
        path.unlink()
    doctor_figures(cache, 7200.0)
    before = files(out)
    refused = build(out, *TINY, env=environ(XDG_CACHE_HOME=str(cache)))
    assert refused.returncode == 2 and "rerun with --yes" in refused.stderr
    assert not missing.exists() and files(out) == before
    run = build(out, *TINY, "--yes", env=environ(XDG_CACHE_HOME=str(cache)))
    assert run.returncode == 0, run.stderr
    assert "train_00000 is damaged" not in run.stdout
    assert manifest.read(out, "train_00000") == json.loads(
        manifest.path(built.out, "train_00000").read_text())


def test_the_doctors_figures_set_the_eta(tmp_path):
    """A figures file measured at the run's settings replaces the built-in constant."""
    cache = tmp_path / "cache"
    doctor_figures(cache, 360.0)
    run = build(tmp_path / "data", *TINY, "--plan-only", env=environ(XDG_CACHE_HOME=str(cache)))
    assert run.returncode == 0, run.stderr
    assert f"times from the doctor's figures ({cache / 'scenegen' / 'doctor.json'})" in run.stdout
    assert "estimated time 30m00s on 1 CPU worker(s)" in run.stdout  # 5 scenes x 360 s


@pytest.mark.heavy
def test_passes_depth_adds_depth_maps_that_resume_repair_validate_and_load(built, tmp_path):
    """--passes depth: the layout gains depth/<scene_id>/view_k.png (listed in the splits,
    the checksums and dataset_info's config), every other file is the default build's, the
    loader reads metres, a rerun without the option is refused, and a missing or swapped
    depth map is repaired or reported."""
    out = tmp_path / "data"
    run = build(out, *TINY, "--passes", "depth")
    assert run.returncode == 0, run.stderr
    assert files(out) == expected_layout(SCENE_IDS, n_logs=1, passes=("depth",))
    assert_same_dataset(out, built.out)
    for rel in layout.scene_files("val_00000"):
        assert (out / rel).read_bytes() == (built.out / rel).read_bytes() or rel.endswith(
            ".json"), rel
    maps = layout.scene_paths("val_00000", ("depth",))["depth"]
    entry = json.loads((out / "splits" / "val.json").read_text())[0]
    assert entry["depth"] == maps and list(entry)[5] == "depth"  # after the masks
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["config"]["passes"] == ["depth"]
    sums = (out / "checksums.sha256").read_text()
    assert all(f"  {rel}\n" in sums for rel in maps)
    view = loader.open_dataset(out)["val"][0].views[1]
    stored = png.read_png16(out / maps[1])
    np.testing.assert_array_equal(view.depth, np.where(stored == 0, np.nan,
                                                       stored.astype(np.float32) / 1000))
    with pytest.raises(ValueError, match="--passes depth"):
        _ = loader.open_dataset(built.out)["val"][0].views[1].depth

    refused = build(out, *TINY)
    assert refused.returncode == 2
    assert "passes: ['depth'] -> '<absent>'" in refused.stderr

    (out / maps[1]).unlink()
    swapped = layout.scene_paths("test_hard_00000", ("depth",))["depth"]
    first, second = (out / swapped[0]).read_bytes(), (out / swapped[3]).read_bytes()
    (out / swapped[0]).write_bytes(second)
    (out / swapped[3]).write_bytes(first)
    check = subprocess.run([sys.executable, str(VALIDATE), str(out)], capture_output=True,
                           text=True, timeout=600)
    assert check.returncode == 1
    assert f"CORRUPT {swapped[0]}: obj_0: " in check.stdout
    assert f"CORRUPT {maps[1]}: missing" in check.stdout
    run = build(out, *TINY, "--passes", "depth")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"val_00000 is damaged ({maps[1]}: missing)" in run.stdout
    assert "test_hard_00000 is damaged" in run.stdout
    assert (out / swapped[0]).read_bytes() == first
