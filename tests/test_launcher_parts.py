"""The launcher's parts on fake inputs: protocol, exit codes, plan settings, estimates,
progress, resume files, the atomic writer, the lock. No bpy."""

import errno
import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from scenegen_addon.core import layout, plan, presets
from scenegen_addon.launcher import (
    blender_program,
    estimate,
    exit_codes,
    progress,
    protocol,
)
from scenegen_addon.launcher.exit_codes import ExitCode, for_signal
from scenegen_addon.launcher.lock import FolderLock, LockHeld

ADDON = Path(__file__).resolve().parent.parent / "addon"


def test_progress_lines_round_trip_and_other_output_is_ignored():
    line = protocol.event_line(protocol.SCENE_DONE, scene_id="train_00000", retries=2)
    assert line == 'SCENEGEN {"event":"scene_done","scene_id":"train_00000","retries":2}'
    assert protocol.parse_event(line + "\n") == {
        "event": "scene_done", "scene_id": "train_00000", "retries": 2}
    for other in ("Fra:1 Mem:12M | Rendering", "SCENEGEN {broken", "SCENEGEN [1, 2]", ""):
        assert protocol.parse_event(other) is None
    text = "noise\n" + protocol.event_line(protocol.RESULT, code=0) + "\n" + line + "\n"
    assert protocol.last_event(text, protocol.RESULT) == {"event": "result", "code": 0}
    assert protocol.last_event("noise", protocol.RESULT) is None


def test_commands_round_trip_and_unknown_ones_are_refused():
    line = protocol.command(protocol.RENDER, scene_id="val_00003")
    assert line.endswith("\n") and protocol.parse_command(line) == {
        "cmd": "render", "scene_id": "val_00003"}
    with pytest.raises(ValueError, match="allowed are render, merge"):
        protocol.command("paint")
    with pytest.raises(ValueError, match="allowed are render, merge"):
        protocol.parse_command('{"cmd": "paint"}')


def test_exit_codes_are_one_table():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 6, 70, 130, 143]
    assert ExitCode(3).meaning.startswith("incomplete")
    assert ExitCode.SIGTERM == 128 + signal.SIGTERM and for_signal(signal.SIGINT) == 130
    assert exit_codes.meaning(-9) == "killed by signal 9"
    assert exit_codes.meaning(99) == "unknown exit code 99"


def settings(**over):
    base = dict(seed=42, size="tiny", counts={"train": 8, "val": 8}, quality="draft",
                resolution=(96, 64), samples=2, blender_version="5.0.1",
                numpy_version="1.26.4")
    base.update(over)
    return plan.plan_settings(**base)


def test_plan_document_holds_every_planned_scene_and_the_fingerprint():
    doc = plan.document(settings())
    assert doc["fingerprint"] == plan.fingerprint(doc["settings"])
    assert [s["scene_id"] for s in doc["scenes"]] == (
        [f"train_{i:05d}" for i in range(8)] + [f"val_{i:05d}" for i in range(8)]
    )
    assert doc["settings"]["render"]["engine"] == "CYCLES"
    assert doc["settings"]["cycles"] == dict(presets.quality("draft").cycles)
    # it survives JSON and is identical in a second computation
    assert json.loads(json.dumps(doc)) == plan.document(settings())


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
    assert blender_program.parse_version(text) == expected


def test_rate_and_eta():
    assert progress.rate(10, 3600.0) == pytest.approx(10.0)
    assert progress.rate(3, 60.0) == pytest.approx(180.0)
    assert progress.rate(0, 100.0) is None
    assert progress.eta(5, 10.0) == pytest.approx(1800.0)
    assert progress.eta(0, None) == 0.0
    assert progress.eta(4, None) is None


@pytest.mark.parametrize("seconds, text", [
    (3725, "1h02m"), (245, "4m05s"), (12.4, "12s"), (0, "0s"), (None, "?"), (7200, "2h00m"),
])
def test_duration(seconds, text):
    assert progress.duration(seconds) == text


@pytest.mark.parametrize("n, text", [
    (512, "512 B"), (12_345_678, "12.3 MB"), (83_600_000_000, "83.6 GB"), (5e15, "5000.0 TB"),
])
def test_size_text(n, text):
    assert progress.size_text(n) == text


def test_progress_bar_shows_done_total_rate_eta_failures():
    line = progress.bar(10, 40, 2, 12.5, 3725, width=20)
    assert line == "[#####...............] 10/40 scenes  12.5 scenes/h  ETA 1h02m  failures 2"
    assert progress.bar(0, 40, 0, None, None, width=4).startswith("[....] 0/40")


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_a_ticker_counts_a_stage_on_stderr(monkeypatch, tty):
    """In place on a terminal, a line at most every LOG_SECONDS in a log; always a last line
    with the time taken; nothing at all for a stage with nothing to count."""
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    stream = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    told = []
    progress.Ticker("idle", status=told.append).close()
    assert stream.getvalue() == "" and told == []
    ticker = progress.Ticker("questions", unit="scenes", status=told.append)
    clock[0] += 0.5
    ticker(1, 40)  # too soon for any
    clock[0] += 1.5
    ticker(10, 40)  # 2 s in: 18,000 scenes/h, 30 left: 6 s
    clock[0] += 2.0
    ticker(20, 40)
    ticker.close()
    at_10 = "questions: [" + "#" * 7 + "." * 23 + "] 10/40 scenes  18000.0 scenes/h  ETA 6s"
    at_20 = "questions: [" + "#" * 15 + "." * 15 + "] 20/40 scenes  18000.0 scenes/h  ETA 4s"
    last = f"{at_20}  (4s)"
    assert stream.getvalue() == (f"\r{at_10}\r{at_20}\r{last}\n" if tty else f"{last}\n")
    # the short summary (the build's progress.json), once a second whatever stderr is
    assert told == ["questions: 10/40 scenes, ETA 6s", "questions: 20/40 scenes, ETA 4s",
                    "questions: 20/40 scenes, ETA 4s"]


def test_a_later_stage_updates_progress_json_without_the_bar(tmp_path, monkeypatch):
    """The validation draws its own line; the panel reads its count from progress.json."""
    stream = Terminal()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    display = progress.Display(tmp_path, print)
    display.update(5, 5, 0, 3600.0, 0.0, state="merging", message="validating", force=True)
    drawn = stream.getvalue()
    assert drawn.startswith("\r[") and "5/5 scenes" in drawn
    display.update(5, 5, 0, 3600.0, 0.0, message="validating: 2/5 scenes, ETA 3s",
                   force=True, draw=False)
    assert stream.getvalue() == drawn
    assert progress.read(tmp_path) == progress.document(
        5, 5, 0, 3600.0, 0.0, "merging", "validating: 2/5 scenes, ETA 3s")


def test_progress_document_states():
    doc = progress.document(3, 40, 1, 7.25, 100.0, "running")
    assert doc == {"done": 3, "total": 40, "failed": 1, "scenes_per_hour": 7.25,
                   "eta_seconds": 100.0, "state": "running", "message": ""}
    with pytest.raises(ValueError, match="state 'paused'"):
        progress.document(0, 1, 0, None, None, "paused")


def test_scene_time_estimate_scales_with_pixels_samples_and_cores():
    over = estimate.SCENE_OVERHEAD_SECONDS
    one = estimate.scene_seconds(480, 320, 64, gpu=False) - over
    assert estimate.scene_seconds(960, 640, 64, gpu=False) - over == pytest.approx(4 * one)
    assert estimate.scene_seconds(480, 320, 128, gpu=False) - over == pytest.approx(2 * one)
    assert estimate.scene_seconds(480, 320, 64, gpu=False, cpu_cores=2) - over == pytest.approx(
        one / 2)
    assert estimate.scene_seconds(480, 320, 64, gpu=True) < estimate.scene_seconds(
        480, 320, 64, gpu=False, cpu_cores=16)


def test_disk_estimate_adds_up_scenes():
    scenes = plan.build_plan({"train": 7}, 42)
    total = estimate.disk_estimate(scenes, 96, 64)
    assert total == sum(estimate.scene_bytes(96, 64, n) for n in range(4, 11))
    assert estimate.scene_bytes(96, 64, 15) > estimate.scene_bytes(96, 64, 4)


def touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def temp(path: Path, pid=4242, thread=140001) -> Path:
    """The temporary name a writer in process `pid` gives `path` (layout.temp_name)."""
    name = layout.temp_name(path).name.split(".")
    name[-3 if path.suffix else -2] = str(thread)
    name[-4 if path.suffix else -3] = str(pid)
    return path.with_name(".".join(name))


def test_temporary_names_map_back_to_their_final_names(tmp_path):
    for name in ("view_0.png", "train_00001.json", "lock", "checksums.sha256"):
        assert layout.final_name(layout.temp_name(tmp_path / name).name) == name
        assert layout.final_name(temp(tmp_path / name).name) == name
    for other in ("view_0.png", ".view_0.png.12.tmp.png", ".view_0.png.1.2.tmp.json",
                  ".view_0.png.x.2.tmp.png", "view_0.png.1.2.tmp.png"):
        assert layout.final_name(other) is None, other


def test_partial_files_are_the_scenes_own_names_and_temporary_names_only(tmp_path):
    sid = "train_00001"
    mine = [
        touch(tmp_path / f"images/single_view/{sid}.png"),
        touch(temp(tmp_path / f"images/single_view/{sid}.png")),
        touch(tmp_path / f"images/multi_view/{sid}/view_0.png"),
        touch(temp(tmp_path / f"images/multi_view/{sid}/view_3.png")),
        touch(tmp_path / f"masks/{sid}/view_2.png"),
        touch(temp(tmp_path / f"metadata/{sid}.json")),
    ]
    others = [
        touch(tmp_path / "images/single_view/train_00010.png"),
        touch(tmp_path / "images/single_view/test_iid_00001.png"),
        touch(tmp_path / f"images/single_view/{sid}_holiday.png"),
        touch(tmp_path / f"images/single_view/{sid}.png.bak"),
        touch(tmp_path / f"images/multi_view/{sid}/view_4.png"),
        touch(tmp_path / f"images/multi_view/{sid}/notes/view_0.png"),
        touch(tmp_path / f"images/multi_view/{sid}/.view_2.png.1.2.tmp.jpg"),
        touch(tmp_path / "images/multi_view/train_00002/view_0.png"),
        touch(tmp_path / "metadata/train_00002.json"),
    ]
    found = layout.partial_files(tmp_path, [sid])
    assert found == sorted(mine)
    layout.remove_partial(tmp_path, [sid])
    assert not any(p.exists() for p in mine)
    assert all(p.exists() for p in others)
    assert not (tmp_path / f"masks/{sid}").exists()  # emptied: removed
    assert (tmp_path / f"images/multi_view/{sid}").is_dir()  # holds others: kept
    assert layout.partial_files(tmp_path / "nowhere", [sid]) == []


def test_partial_files_never_go_through_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    victim = touch(elsewhere / "single_view" / "train_00001.png")
    victim_scene = touch(elsewhere / "train_00001" / "view_0.png")
    out = tmp_path / "data"
    out.mkdir()
    (out / "images").symlink_to(elsewhere)
    (out / "masks").mkdir()
    (out / "masks" / "train_00001").symlink_to(elsewhere / "train_00001")
    touch(elsewhere / "metadata.json")
    (out / "metadata").mkdir()
    (out / "metadata" / "train_00001.json").symlink_to(elsewhere / "metadata.json")
    assert layout.partial_files(out, ["train_00001"]) == []
    layout.remove_partial(out, ["train_00001"])
    assert victim.exists() and victim_scene.exists()
    assert (out / "metadata" / "train_00001.json").is_symlink()


def test_complete_means_metadata_exists(tmp_path):
    touch(tmp_path / "images/single_view/val_00000.png")
    assert not layout.is_complete(tmp_path, "val_00000")
    touch(tmp_path / "metadata/val_00000.json")
    assert layout.is_complete(tmp_path, "val_00000")


def make_scene_files(out: Path, scene_id: str) -> list[Path]:
    return [touch(out / rel) for rel in layout.scene_files(scene_id)]


def test_predicted_names_are_the_plans_files_folders_and_temporary_names():
    predicted = layout.Predicted(["train_00000", "val_00000"], ["train", "val"])
    for rel in (*layout.scene_files("train_00000"), *layout.scene_files("val_00000"),
                "splits/train.json", "splits/val.json", "dataset_info.json",
                "checksums.sha256", "images/single_view/.train_00000.png.7.8.tmp.png",
                "splits/.val.json.7.8.tmp.json"):
        assert predicted.file(rel), rel
    for rel in ("images/single_view/train_00001.png", "splits/test_iid.json",
                "images/multi_view/train_00000/view_4.png", "masks/train_00000/view_0.jpg",
                "images/my_photos/vacation.jpg", "metadata/train_00000.json.orig",
                "images/single_view/train_00000/view_0.png", "notes.txt",
                "masks/train_00000", "images/multi_view/../../x/val_00000/view_0.png"):
        assert not predicted.file(rel), rel
    for rel in ("images", "images/single_view", "images/multi_view", "masks", "metadata",
                "splits", "images/multi_view/train_00000", "masks/val_00000"):
        assert predicted.folder(rel), rel
    for rel in ("images/my_photos", "masks/train_00001", "metadata/train_00000",
                "images/single_view/train_00000", "depth"):
        assert not predicted.folder(rel), rel


def test_survey_finds_links_foreign_entries_at_any_depth_and_temporary_names(tmp_path):
    out = tmp_path / "data"
    make_scene_files(out, "train_00000")
    touch(out / "splits" / "train.json")
    touch(out / ".scenegen" / "plan.json")
    touch(out / ".scenegen" / "logs" / "worker_0.log")
    leftover = touch(temp(out / "images" / "single_view" / "train_00000.png"))
    internal_leftover = touch(temp(out / ".scenegen" / "progress.json"))
    manifest_leftover = touch(temp(layout.manifest_file(out, "train_00000")))
    touch(temp(layout.manifest_file(out, "train_00001")))  # not a planned scene's: not ours
    predicted = layout.Predicted(["train_00000"], ["train"])
    assert layout.survey(out, predicted) == layout.Survey(
        temporary=sorted([leftover, internal_leftover, manifest_leftover]))
    touch(out / "images" / "my_photos" / "vacation.jpg")
    touch(out / "metadata" / "notes.txt")
    touch(out / "thesis.tex")
    (out / "masks" / "train_00000" / "view_9.png").symlink_to(tmp_path)
    (out / ".scenegen" / "logs" / "old").symlink_to(tmp_path)
    found = layout.survey(out, predicted, limit=2)
    assert found.links == [".scenegen/logs/old", "masks/train_00000/view_9.png"]
    assert found.n_foreign == 3
    assert found.foreign == ["thesis.tex", "images/my_photos/"]  # the first 2, top down
    assert layout.survey(tmp_path / "nowhere", predicted) == layout.Survey()


def test_without_a_plan_only_empty_layout_folders_are_scenegens(tmp_path):
    for rel in ("images/single_view", "masks", "metadata", "splits"):
        (tmp_path / rel).mkdir(parents=True)
    assert layout.survey(tmp_path, layout.Predicted()).n_foreign == 0
    touch(tmp_path / "images" / "family.jpg")
    make_scene_files(tmp_path, "train_00000")
    found = layout.survey(tmp_path, layout.Predicted())
    assert found.n_foreign == 5
    assert found.foreign == ["images/family.jpg", "masks/train_00000/",
                             "metadata/train_00000.json", "images/multi_view/train_00000/",
                             "images/single_view/train_00000.png"]


def test_remove_own_removes_only_predicted_names_and_scenegens_entries(tmp_path):
    out = tmp_path / "data"
    own = [*make_scene_files(out, "train_00000"), touch(out / "splits" / "train.json"),
           touch(out / "dataset_info.json"), touch(temp(out / "metadata" / "train_00001.json")),
           touch(out / ".scenegen" / "plan.json"), touch(out / ".scenegen" / "run.json"),
           touch(out / ".scenegen" / "logs" / "worker_3.log"),
           touch(out / ".scenegen" / "scenes" / "train_00000.json"),
           touch(temp(out / ".scenegen" / "scenes" / "train_00001.json")),
           touch(out / ".scenegen" / "tmp" / "index_x" / "view_0_0001.exr")]
    kept = [touch(out / ".scenegen" / "lock"), touch(out / ".scenegen" / "mine.txt"),
            touch(out / ".scenegen" / "logs" / "my.log"),
            touch(out / ".scenegen" / "scenes" / "train_00009.json"),
            touch(out / "images" / "single_view" / "train_00005.png")]
    layout.remove_own(out, layout.Predicted(["train_00000", "train_00001"], ["train"]))
    assert not any(p.exists() for p in own)
    assert all(p.exists() for p in kept)
    assert sorted(p.name for p in out.iterdir()) == [".scenegen", "images"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["single_view"]
    assert (out / ".scenegen" / "tmp").is_dir()


def test_disk_errors_are_recognised():
    assert layout.is_disk_error(OSError(errno.ENOSPC, "No space left on device"))
    assert layout.is_disk_error(OSError(errno.EROFS, "Read-only file system"))
    assert not layout.is_disk_error(OSError(errno.ENOENT, "No such file"))
    assert not layout.is_disk_error(RuntimeError("render failed"))


def test_atomic_writer_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "a" / "x.json"
    layout.write_json(target, {"n": 1})
    with pytest.raises(RuntimeError), layout.atomic_path(target) as tmp:
        tmp.write_text('{"n": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert layout.read_json(target) == {"n": 1} and os.listdir(target.parent) == ["x.json"]
    name = layout.temp_name(target).name
    assert name.startswith(".x.json.") and name.endswith(".tmp.json")


def test_a_disk_error_names_the_file_being_written_not_its_temporary_name(tmp_path):
    """A full disk while the plan or progress.json is written: the launcher's message
    (exit 4) names the file, and the error is still a disk error of its kind."""
    target = tmp_path / "x.json"
    with pytest.raises(OSError) as caught, layout.atomic_path(target) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert caught.value.filename == str(target) and layout.is_disk_error(caught.value)
    assert str(caught.value) == f"[Errno 28] No space left on device: '{target}'"
    with pytest.raises(PermissionError) as caught, layout.atomic_path(target) as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", tmp)
    assert caught.value.filename == str(target)
    with pytest.raises(FileNotFoundError) as caught, layout.atomic_path(target):
        raise FileNotFoundError(errno.ENOENT, "No such file", "/elsewhere")  # not ours
    assert caught.value.filename == "/elsewhere"
    assert os.listdir(tmp_path) == []


def test_lock_refuses_a_second_owner_and_names_the_first(tmp_path):
    path = tmp_path / "lock"
    with FolderLock(path):
        with pytest.raises(LockHeld, match=f"PID {os.getpid()}"):
            FolderLock(path).acquire()
    with FolderLock(path):  # released on exit: taken again
        pass


def test_lock_of_a_killed_process_is_free(tmp_path):
    path = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
         "from scenegen_addon.launcher.lock import FolderLock; FolderLock(sys.argv[2]).acquire();"
         " print('held', flush=True); time.sleep(60)", str(ADDON), str(path)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld, match=f"PID {holder.pid}"):
        FolderLock(path).acquire()
    holder.kill()
    holder.wait()
    with FolderLock(path):
        pass


def test_racing_launchers_exactly_one_wins(tmp_path):
    """3 contenders on one lock file, 200 times: flock gives each open file its own lock."""
    for trial in range(200):
        locks = [FolderLock(tmp_path / "lock") for _ in range(3)]
        start = threading.Barrier(3)
        won = []

        def contend(lock, start=start, won=won):
            start.wait()
            try:
                lock.acquire()
                won.append(lock)
            except LockHeld:
                pass

        threads = [threading.Thread(target=contend, args=(lock,)) for lock in locks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, trial
        won[0].release()


def test_a_lock_file_removed_by_its_holder_is_not_won(tmp_path, monkeypatch):
    """A refused run removes the lock file while holding it. A second launcher that opened
    the old file locks it once the holder lets go, while a third creates a new file and
    locks that: only one of them may own the folder. The interleaving is forced by running
    the holder's and the third's steps inside the second's (real) flock call."""
    path = tmp_path / "lock"
    holder, third = FolderLock(path), FolderLock(path)
    holder.acquire()
    real_flock, interleaved = fcntl.flock, []

    def flock(fd, operation):
        if not interleaved:
            interleaved.append(True)
            path.unlink()  # folder._remove_created, then the holder lets go
            holder.release()
            third.acquire()  # creates a new lock file
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(LockHeld, match=f"PID {os.getpid()}"):
        FolderLock(path).acquire()
    assert interleaved
    third.release()


def test_read_progress(tmp_path):
    assert progress.read(tmp_path) is None
    doc = progress.document(1, 5, 0, None, None, "running")
    touch(tmp_path / ".scenegen" / "progress.json", json.dumps(doc))
    assert progress.read(tmp_path) == doc
