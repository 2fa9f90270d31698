"""The launcher's pure helpers (core/launch.py) on fake inputs: GPUs, plan settings,
estimates, progress, resume files, lock. No bpy."""

import errno
import json
import os
import subprocess
import sys
import time

import pytest
from scenegen_addon.core import launch, plan, presets

NVIDIA_SMI = "\n".join(
    f"GPU {i}: NVIDIA A100-SXM4-80GB (UUID: GPU-{i}aaa{i:04d}-1111-2222-3333-44445555666{i})"
    for i in range(8)
) + "\n"


def test_progress_lines_round_trip_and_other_output_is_ignored():
    line = launch.event_line({"event": "scene_done", "scene_id": "train_00000", "retries": 2})
    assert line == 'SCENEGEN {"event":"scene_done","scene_id":"train_00000","retries":2}'
    assert launch.parse_event(line + "\n") == {
        "event": "scene_done", "scene_id": "train_00000", "retries": 2}
    for other in ("Fra:1 Mem:12M | Rendering", "SCENEGEN {broken", "SCENEGEN [1, 2]", ""):
        assert launch.parse_event(other) is None


def test_gpu_list_parsed_from_nvidia_smi():
    gpus = launch.parse_gpu_list(NVIDIA_SMI)
    assert [i for i, _ in gpus] == list(range(8))
    assert gpus[3][1] == "GPU-3aaa0003-1111-2222-3333-444455556663"
    assert launch.parse_gpu_list("") == []
    assert launch.parse_gpu_list("NVIDIA-SMI has failed because it couldn't communicate") == []


@pytest.mark.parametrize(
    "cvd, expected",
    [
        (None, ["0", "1", "2", "3", "4", "5", "6", "7"]),
        ("3,5", ["3", "5"]),
        ("6, 1", ["6", "1"]),
        ("", []),
        ("-1", []),
        ("2,9,3", ["2"]),  # CUDA stops at the first entry naming no GPU
        ("GPU-4aaa0004,0", ["GPU-4aaa0004", "0"]),  # UUID prefixes are allowed
    ],
)
def test_visible_gpus_respect_cuda_visible_devices(cvd, expected):
    assert launch.visible_gpus(NVIDIA_SMI, cvd) == expected


def test_no_driver_means_no_gpu():
    assert launch.visible_gpus("", None) == []


def test_worker_k_gets_the_kth_visible_gpu():
    visible = launch.visible_gpus(NVIDIA_SMI, "3,5,6")
    assert launch.worker_gpus(3, 1, visible) == ["3", "5", "6"]
    assert launch.worker_gpus(2, 2, visible) == ["3", "3", "5", "5"]
    assert launch.worker_gpus(0, 1, visible) == []


def test_more_gpus_than_visible_says_how_many():
    with pytest.raises(ValueError, match=r"n-gpus 4 .* 3 GPU\(s\) visible"):
        launch.worker_gpus(4, 1, ["3", "5", "6"])
    with pytest.raises(ValueError, match="0 GPU"):
        launch.worker_gpus(1, 1, [])


def settings(**over):
    base = dict(seed=42, size="tiny", counts={"train": 8, "val": 8}, quality="draft",
                resolution=(96, 64), samples=2, blender_version="5.0.1",
                numpy_version="1.26.4")
    base.update(over)
    return launch.plan_settings(**base)


def test_plan_document_holds_every_planned_scene_and_the_fingerprint():
    doc = launch.plan_document(settings())
    assert doc["fingerprint"] == plan.fingerprint(doc["settings"])
    assert [s["scene_id"] for s in doc["scenes"]] == (
        [f"train_{i:05d}" for i in range(8)] + [f"val_{i:05d}" for i in range(8)]
    )
    assert doc["settings"]["render"]["engine"] == "CYCLES"
    assert doc["settings"]["cycles"] == dict(presets.quality("draft").cycles)
    # it survives JSON and is identical in a second computation
    assert json.loads(json.dumps(doc)) == launch.plan_document(settings())


@pytest.mark.parametrize("change", [
    {"seed": 43}, {"samples": 4}, {"resolution": (120, 80)}, {"quality": "normal"},
    {"blender_version": "5.0.2"}, {"numpy_version": "2.0.0"}, {"counts": {"train": 9}},
])
def test_every_output_setting_changes_the_fingerprint(change):
    old, new = settings(), settings(**change)
    assert plan.fingerprint(old) != plan.fingerprint(new)
    key = next(iter(change))
    assert any(line.startswith(f"{key}:") for line in plan.fingerprint_difference(old, new))


@pytest.mark.parametrize("text, expected", [
    ("Blender 5.0.1\n\tbuild date: 2025-11-18\n", (5, 0, 1)),
    ("Blender 4.2.3 LTS\n", (4, 2, 3)),
    ("Read prefs: ...\nBlender 5.1\n", (5, 1, 0)),
    ("Python 3.11.7\n", None),
    ("", None),
])
def test_blender_version_parsed(text, expected):
    assert launch.parse_blender_version(text) == expected


def test_rate_and_eta():
    assert launch.rate(10, 3600.0) == pytest.approx(10.0)
    assert launch.rate(3, 60.0) == pytest.approx(180.0)
    assert launch.rate(0, 100.0) is None
    assert launch.eta(5, 10.0) == pytest.approx(1800.0)
    assert launch.eta(0, None) == 0.0
    assert launch.eta(4, None) is None


@pytest.mark.parametrize("seconds, text", [
    (3725, "1h02m"), (245, "4m05s"), (12.4, "12s"), (0, "0s"), (None, "?"), (7200, "2h00m"),
])
def test_duration(seconds, text):
    assert launch.duration(seconds) == text


@pytest.mark.parametrize("n, text", [
    (512, "512 B"), (12_345_678, "12.3 MB"), (83_600_000_000, "83.6 GB"), (5e15, "5000.0 TB"),
])
def test_size_text(n, text):
    assert launch.size_text(n) == text


def test_progress_bar_shows_done_total_rate_eta_failures():
    line = launch.progress_bar(10, 40, 2, 12.5, 3725, width=20)
    assert line == "[#####...............] 10/40 scenes  12.5 scenes/h  ETA 1h02m  failures 2"
    assert launch.progress_bar(0, 40, 0, None, None, width=4).startswith("[....] 0/40")


def test_progress_document_states():
    doc = launch.progress_document(3, 40, 1, 7.25, 100.0, "running")
    assert doc == {"done": 3, "total": 40, "failed": 1, "scenes_per_hour": 7.25,
                   "eta_seconds": 100.0, "state": "running", "message": ""}
    with pytest.raises(ValueError, match="state 'paused'"):
        launch.progress_document(0, 1, 0, None, None, "paused")


def test_scene_time_estimate_scales_with_pixels_samples_and_cores():
    over = launch.SCENE_OVERHEAD_SECONDS
    one = launch.scene_seconds(480, 320, 64, gpu=False) - over
    assert launch.scene_seconds(960, 640, 64, gpu=False) - over == pytest.approx(4 * one)
    assert launch.scene_seconds(480, 320, 128, gpu=False) - over == pytest.approx(2 * one)
    assert launch.scene_seconds(480, 320, 64, gpu=False, cpu_cores=2) - over == pytest.approx(
        one / 2)
    assert launch.scene_seconds(480, 320, 64, gpu=True) < launch.scene_seconds(
        480, 320, 64, gpu=False, cpu_cores=16)


def test_disk_estimate_adds_up_scenes():
    scenes = plan.build_plan({"train": 7}, 42)
    total = launch.disk_estimate(scenes, 96, 64)
    assert total == sum(launch.scene_bytes(96, 64, n) for n in range(4, 11))
    assert launch.scene_bytes(96, 64, 15) > launch.scene_bytes(96, 64, 4)


def touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_partial_files_of_incomplete_scenes(tmp_path):
    mine = [
        touch(tmp_path / "images/single_view/train_00001.png"),
        touch(tmp_path / "images/single_view/.train_00001.4242.tmp.png"),
        touch(tmp_path / "images/multi_view/train_00001/view_0.png").parent,
        touch(tmp_path / "masks/train_00001/view_2.png").parent,
        touch(tmp_path / "metadata/.train_00001.json.k2j3.tmp"),
    ]
    others = [
        touch(tmp_path / "images/single_view/train_00010.png"),
        touch(tmp_path / "images/single_view/test_iid_00001.png"),
        touch(tmp_path / "images/multi_view/train_00002/view_0.png"),
        touch(tmp_path / "metadata/train_00002.json"),
    ]
    found = launch.partial_files(tmp_path, ["train_00001"])
    assert found == sorted(mine)
    assert not set(found) & set(others)
    assert launch.partial_files(tmp_path, ["test_iid_00001"]) == [others[1]]
    assert launch.partial_files(tmp_path / "nowhere", ["train_00001"]) == []


def test_complete_means_metadata_exists(tmp_path):
    touch(tmp_path / "images/single_view/val_00000.png")
    assert not launch.is_complete(tmp_path, "val_00000")
    touch(tmp_path / "metadata/val_00000.json")
    assert launch.is_complete(tmp_path, "val_00000")


def test_foreign_entries(tmp_path):
    for name in ("images", "metadata", ".scenegen"):
        (tmp_path / name).mkdir()
    touch(tmp_path / "dataset_info.json")
    assert launch.foreign_entries(tmp_path) == []
    touch(tmp_path / "thesis.tex")
    (tmp_path / "photos").mkdir()
    assert launch.foreign_entries(tmp_path) == ["photos", "thesis.tex"]


def test_disk_errors_are_recognised():
    assert launch.is_disk_error(OSError(errno.ENOSPC, "No space left on device"))
    assert launch.is_disk_error(OSError(errno.EROFS, "Read-only file system"))
    assert not launch.is_disk_error(OSError(errno.ENOENT, "No such file"))
    assert not launch.is_disk_error(RuntimeError("render failed"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_refuses_a_second_owner_and_names_the_first(tmp_path):
    lock = tmp_path / ".scenegen" / "lock"
    launch.acquire_lock(lock)
    with pytest.raises(launch.LockHeld, match=f"PID {os.getpid()}") as info:
        launch.acquire_lock(lock, pid=os.getpid() + 1)
    assert info.value.pid == os.getpid()
    launch.release_lock(lock, pid=os.getpid() + 1)  # not theirs to remove
    assert lock.exists()
    launch.release_lock(lock)
    assert not lock.exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    lock = tmp_path / "lock"
    launch.acquire_lock(lock, pid=dead_pid())
    launch.acquire_lock(lock)
    assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    lock = tmp_path / "lock"
    launch.acquire_lock(lock, pid=dead_pid(), host="gpu-node-7")
    with pytest.raises(launch.LockHeld, match="gpu-node-7"):
        launch.acquire_lock(lock)


def test_a_zombie_counts_as_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 20
    while launch.pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not launch.pid_alive(proc.pid)  # exited, not yet reaped
    proc.wait()
    assert launch.pid_alive(os.getpid())


def test_launcher_command_for_the_panel(tmp_path):
    cmd = launch.launcher_command("/opt/blender/python", "/src/headless/build.py", tmp_path,
                                  blender="/opt/blender/blender", size="tiny", quality="draft",
                                  n_gpus=0, seed=None, yes=True, overwrite=False)
    assert cmd == ["/opt/blender/python", "/src/headless/build.py", "--output", str(tmp_path),
                   "--blender", "/opt/blender/blender", "--size", "tiny", "--quality", "draft",
                   "--n-gpus", "0", "--yes"]


def test_read_progress(tmp_path):
    assert launch.read_progress(tmp_path) is None
    doc = launch.progress_document(1, 5, 0, None, None, "running")
    touch(tmp_path / ".scenegen" / "progress.json", json.dumps(doc))
    assert launch.read_progress(tmp_path) == doc
