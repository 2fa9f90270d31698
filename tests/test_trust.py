"""What a build trusts in an output folder, end to end through headless/build.py: only
scenegen's own files are ever removed, only a plan that proves itself is resumed, no path is
made from a file's contents before it is checked, and refusals exit 2 leaving nothing behind.

Most cases need no render: `--plan-only` runs the same checks as a full build before it
writes the plan. Workers and the batch operator are the real ones, on the bpy module.
"""

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from scenegen_addon.core import layout, plan, presets
from scenegen_addon.launcher import protocol

from tests.test_launcher import TINY, build, environ, order, read_event, start_worker, wait_for

SAMPLES_4 = [a if a != "2" else "4" for a in TINY]  # TINY with --samples 4


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (links not followed) and its contents."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if not p.is_symlink() else "link"
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A folder with the plan the launcher writes for TINY."""
    out = tmp_path_factory.mktemp("pristine") / "data"
    run = build(out, *TINY, "--plan-only")
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture
def planned(pristine):
    """planned(out): a copy of the pristine TINY folder at `out`; returns its plan file."""
    def copy(out: Path) -> Path:
        shutil.copytree(pristine, out)
        return layout.plan_file(out)
    return copy


def edit_plan(out: Path, change) -> None:
    path = layout.plan_file(out)
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def scene_files(out: Path, scene_id: str) -> list[Path]:
    """A scene's files as a render leaves them (contents do not matter to these checks)."""
    return [touch(out / rel) for rel in layout.scene_files(scene_id)]


def refused(run, *texts) -> None:
    assert run.returncode == 2, run.stdout + run.stderr
    for text in texts:
        assert text in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert protocol.last_event(run.stdout, protocol.RESULT)["code"] == 2


# --- 1. only scenegen's own files are ever removed ------------------------------------------

def test_overwrite_refuses_the_users_own_layout_named_folders(tmp_path):
    out = tmp_path / "data"
    mine = [touch(out / "images" / "cat.png"), touch(out / "metadata" / "notes.json"),
            touch(out / "splits" / "fold_1.json")]
    before = snapshot(out)
    refused(build(out, *TINY, "--plan-only", "--overwrite"),
            "holds no scenegen plan (images/cat.png, metadata/notes.json, "
            "splits/fold_1.json)")
    assert snapshot(out) == before and all(p.exists() for p in mine)
    assert not layout.internal(out).exists()


def test_foreign_files_nested_in_a_dataset_are_listed_and_kept(tmp_path, planned):
    out = tmp_path / "data"
    plan_text = planned(out).read_text()
    scene_files(out, "train_00000")
    photo = touch(out / "images" / "my_photos" / "vacation.jpg")
    note = touch(out / "metadata" / "train_00000.json.orig")
    refused(build(out, *SAMPLES_4, "--plan-only", "--overwrite"),
            "holds 2 entries its plan does not predict: images/my_photos/, "
            "metadata/train_00000.json.orig")
    assert photo.exists() and note.exists()
    assert (out / "metadata" / "train_00000.json").exists()
    assert layout.plan_file(out).read_text() == plan_text


def test_a_linked_scenegen_folder_is_refused_and_never_followed(tmp_path, planned):
    out, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    planned(elsewhere / "dataset")
    target = layout.internal(elsewhere / "dataset")
    touch(target / "keep.txt")
    out.mkdir()
    (out / ".scenegen").symlink_to(target)
    before = snapshot(target)
    refused(build(out, *SAMPLES_4, "--plan-only", "--overwrite"),
            "holds symbolic links, which scenegen never follows: .scenegen")
    assert snapshot(target) == before


def test_a_linked_layout_folder_is_refused_without_a_traceback(tmp_path, planned):
    out, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    planned(out)
    touch(elsewhere / "single_view" / "train_00000.png")
    touch(elsewhere / "holiday.jpg")
    (out / "images").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    refused(build(out, *TINY, "--plan-only", "--overwrite"),
            "holds symbolic links, which scenegen never follows: images")
    assert snapshot(elsewhere) == before


def test_a_linked_file_deep_in_the_layout_is_refused(tmp_path, planned):
    out = tmp_path / "data"
    planned(out)
    secret = touch(tmp_path / "secret.png")
    scene_files(out, "val_00000")
    os.unlink(out / "masks" / "val_00000" / "view_1.png")
    (out / "masks" / "val_00000" / "view_1.png").symlink_to(secret)
    refused(build(out, *TINY, "--plan-only", "--overwrite"),
            "never follows: masks/val_00000/view_1.png")
    assert secret.read_text() == "x"


def test_a_folder_holding_only_the_users_images_is_not_an_output(tmp_path):
    out = tmp_path / "data"
    photo = touch(out / "images" / "family.jpg")
    refused(build(out, *TINY, "--plan-only"), "holds no scenegen plan", "images/family.jpg")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "images", "images/family.jpg"]
    assert photo.read_text() == "x"


def test_overwrite_removes_the_old_plans_files_and_leftovers_only(tmp_path, planned):
    out = tmp_path / "data"
    run = build(out, *[a if a != "1" else "2" for a in TINY], "--plan-only")  # 2 per split
    assert run.returncode == 0, run.stderr
    own = [*scene_files(out, "train_00001"), touch(out / "splits" / "train.json"),
           touch(out / "dataset_info.json"), touch(out / "checksums.sha256"),
           touch(layout.temp_name(out / "masks" / "val_00001" / "view_0.png")),
           touch(layout.logs_dir(out) / "worker_0.log"),
           touch(layout.scratch_dir(out) / "index_abc" / "view_0_0001.exr")]
    kept = touch(layout.internal(out) / "my_notes.txt")
    run = build(out, *SAMPLES_4, "--plan-only", "--overwrite")  # now 1 scene per split
    assert run.returncode == 0, run.stderr
    assert not any(p.exists() for p in own)
    assert kept.exists()
    assert sorted(os.listdir(out)) == [".scenegen"]
    assert json.loads(layout.plan_file(out).read_text())["settings"]["samples"] == 4


# --- 2. resume only what provably matches ---------------------------------------------------

@pytest.mark.parametrize("key, value, line", [
    ("samples", 3, "samples: 3 -> 2"),
    ("resolution", [120, 80], "resolution: [120, 80] -> [96, 64]"),
])
def test_a_hand_edited_setting_is_refused_naming_it(tmp_path, key, value, line, planned):
    out = tmp_path / "data"
    planned(out)
    edit_plan(out, lambda d: d["settings"].update({key: value}))  # fingerprint kept
    text = layout.plan_file(out).read_text()
    refused(build(out, *TINY), "its settings do not give its fingerprint",
            f"its settings differ from this command's:\n  {line}")
    assert layout.plan_file(out).read_text() == text
    if key == "samples":
        refused(build(out, *TINY, "--overwrite"), "with or without --overwrite")


def test_a_fingerprint_only_edit_is_refused_saying_no_setting_differs(tmp_path, planned):
    out = tmp_path / "data"
    planned(out)
    edit_plan(out, lambda d: d.update(fingerprint="0" * 64))
    refused(build(out, *TINY, "--plan-only"), "its settings do not give its fingerprint",
            "no setting differs from this command's")


def test_an_edited_scene_list_is_refused_naming_the_scene(tmp_path, planned):
    out = tmp_path / "data"
    planned(out)
    edit_plan(out, lambda d: d["scenes"][1].update(n_objects=d["scenes"][1]["n_objects"] + 1.0))
    scene = json.loads(layout.plan_file(out).read_text())["scenes"][1]
    refused(build(out, *TINY, "--plan-only"),
            f"scene entry 1 (val_00000): n_objects {scene['n_objects']!r} -> "
            f"{int(scene['n_objects']) - 1}", "no setting differs from this command's")


@pytest.mark.parametrize("damage, fault", [
    (lambda text: text[:len(text) // 2], "is not valid JSON"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "fingerprint"}),
     "has no valid 'fingerprint' (truncated or edited?)"),
])
def test_a_damaged_plan_is_refused_naming_the_file_and_the_fault(tmp_path, damage, fault, planned):
    out = tmp_path / "data"
    path = planned(out)
    path.write_text(damage(path.read_text()))
    refused(build(out, *TINY, "--plan-only", "--overwrite"), f"{path}: {fault}")


def test_scene_files_without_a_plan_are_refused(tmp_path, planned):
    out = tmp_path / "data"
    planned(out)
    files = scene_files(out, "test_iid_00000")
    layout.plan_file(out).unlink()
    other = [a if a != "96x64" else "120x80" for a in TINY]
    refused(build(out, *other), "holds no scenegen plan",
            "images/multi_view/test_iid_00000/")
    assert all(p.exists() for p in files)
    assert not layout.plan_file(out).exists()


# --- 3. no path from file contents before it is checked ------------------------------------

HOSTILE = "../../../x/val_00001"


def hostile_plan(out: Path) -> None:
    """The plan's val_00000 renamed to a path that leads out of the dataset."""
    edit_plan(out, lambda d: d["scenes"][1].update(scene_id=HOSTILE))


def test_the_launcher_refuses_a_plan_with_a_path_for_a_scene_id(tmp_path, planned):
    out = tmp_path / "a" / "b" / "data"
    planned(out)
    hostile_plan(out)
    refused(build(out, *TINY), f"scene entry 1: scene id {HOSTILE!r} is not of the form")
    assert sorted(os.listdir(tmp_path)) == ["a"] and sorted(os.listdir(tmp_path / "a")) == ["b"]


def test_the_batch_operator_refuses_path_ids(addon, empty_file, tmp_path, planned):
    out = tmp_path / "a" / "b" / "data"
    planned(out)
    with pytest.raises(RuntimeError, match=f"scene id {HOSTILE!r} is not of the form"):
        empty_file.ops.scenegen.batch(output=str(out), scene_ids=HOSTILE)
    hostile_plan(out)
    with pytest.raises(RuntimeError, match=f"scene id {HOSTILE!r} is not of the form"):
        empty_file.ops.scenegen.batch(output=str(out), device="CPU")
    assert sorted(os.listdir(tmp_path)) == ["a"] and sorted(os.listdir(out)) == [".scenegen"]


@pytest.mark.parametrize("link", ["masks", "images/multi_view", ".scenegen/tmp"])
def test_the_batch_operator_never_writes_through_a_link(addon, empty_file, tmp_path, planned,
                                                         link):
    """The launcher refuses a folder holding links before it starts; a `blender -b` batch
    checks the folders each scene is written through, and writes nothing elsewhere."""
    out = tmp_path / "data"
    planned(out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    (out / link).symlink_to(elsewhere)
    with pytest.raises(RuntimeError, match=f"holds symbolic links, which scenegen never "
                                           f"follows: {re.escape(link)}"):
        empty_file.ops.scenegen.batch(output=str(out), scene_ids="val_00000", device="CPU")
    assert os.listdir(elsewhere) == [] and not layout.is_complete(out, "val_00000")


@pytest.mark.parametrize("hostile_file", [False, True])
def test_a_worker_refuses_path_ids(tmp_path, hostile_file, planned):
    out = tmp_path / "a" / "b" / "data"
    planned(out)
    if hostile_file:
        hostile_plan(out)
    worker = start_worker(out)
    order(worker, {"cmd": "render", "scene_id": HOSTILE})
    error = read_event(worker)
    assert error["event"] == "scene_error"
    where = f"{layout.plan_file(out)}: scene entry 1: " if hostile_file else ""
    assert f"{where}scene id {HOSTILE!r} is not of the form" in error["reason"]
    assert worker.wait(timeout=60) == 1
    assert sorted(os.listdir(tmp_path)) == ["a"] and sorted(os.listdir(out)) == [".scenegen"]


# --- 6. exit codes mean one thing each ------------------------------------------------------

def test_an_unexpected_error_exits_70_naming_the_log(tmp_path, planned):
    out = tmp_path / "data"
    planned(out)
    layout.run_file(out).mkdir()  # run.json cannot be read: a state no code path expects
    run = build(out, *TINY)
    assert run.returncode == 70, run.stderr
    log = layout.logs_dir(out) / "launcher.log"
    result = protocol.last_event(run.stdout, protocol.RESULT)
    assert result["code"] == 70 and result["meaning"].startswith("internal error")
    assert result["message"] == f"IsADirectoryError: [Errno 21] Is a directory: " \
        f"'{layout.run_file(out)}' (the traceback is in {log})"
    assert "Traceback (most recent call last)" in log.read_text()
    assert "Traceback (most recent call last)" in run.stderr


@pytest.fixture
def read_only(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs permission to mount a read-only tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_an_output_on_a_read_only_disk_exits_4(read_only):
    run = build(read_only / "data", *TINY, "--plan-only")
    assert run.returncode == 4, run.stderr
    assert "cannot be written: Read-only file system" in run.stderr
    assert protocol.last_event(run.stdout, protocol.RESULT)["code"] == 4


# --- 8. bad numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--scene-timeout", "nan"], "argument --scene-timeout: invalid number of seconds 'nan'"),
    (["--scene-timeout", "inf"], "argument --scene-timeout: invalid number of seconds 'inf'"),
    (["--scene-timeout", "0"], "--scene-timeout must be more than 0 and at most 2592000 "
                               "seconds, got 0.0"),
    (["--first-scene-timeout", "1e400"], "invalid number of seconds '1e400'"),
    (["--samples", "1000000000000"], "--samples must be 1..16777216, got 1000000000000"),
    (["--samples", "16777217"], "--samples must be 1..16777216, got 16777217"),
    (["--output", ""], "--output must name a folder, got an empty name"),
    (["--scenes-per-split", "2000000"],
     "--scenes-per-split must be 1..200000, got 2000000"),
    (["--resolution", "²x²"], "--resolution must look like WxH in ASCII digits"),
    (["--resolution", "70000x50000"], "--resolution must be two integers WxH of 1..65536"),
    (["--seed", "４２"], "argument --seed: invalid integer '４２': use the digits 0-9"),
    (["--workers", "1_0"], "argument --workers: invalid integer '1_0'"),
    (["--seed", str(2**53)], f"--seed must be 0..{2**53 - 1}, got {2**53}"),
])
def test_bad_numbers_are_refused_naming_the_option_and_what_is_allowed(tmp_path, args,
                                                                      message):
    refused(build(tmp_path / "data", *TINY, "--plan-only", *args), message)
    assert os.listdir(tmp_path) == []  # nothing created, no .scenegen/


def test_the_limits_are_cycles_own(addon):
    import bpy

    cycles = bpy.context.scene.cycles.bl_rna.properties["samples"]
    render = bpy.context.scene.render.bl_rna.properties
    assert cycles.hard_max == presets.MAX_SAMPLES
    assert render["resolution_x"].hard_max == render["resolution_y"].hard_max == (
        presets.MAX_RESOLUTION)


def test_a_refusal_after_the_lock_leaves_no_scenegen_folder(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    touch(out / "thesis.tex")
    refused(build(out, *TINY), "holds no scenegen plan")
    assert os.listdir(out) == ["thesis.tex"]


# --- 9. scratch files inside the output -----------------------------------------------------

def test_a_killed_workers_index_exrs_stay_in_scenegen_tmp_until_the_next_start(tmp_path, planned):
    out = tmp_path / "data"
    planned(out)
    scratch = layout.scratch_dir(out)
    (tmp_path / "system_tmp").mkdir()
    worker = start_worker(out, env=environ(TMPDIR=str(tmp_path / "system_tmp")))
    order(worker, {"cmd": "render", "scene_id": "test_comp_00000"})
    wait_for(lambda: list(scratch.rglob("*.exr")), timeout=120, what="an index EXR")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert list(scratch.rglob("*.exr"))  # on the dataset's disk, where the start finds it
    assert not list((tmp_path / "system_tmp").rglob("*.exr"))  # (Blender's own dir is there)
    leftovers = [touch(layout.temp_name(out / "images/multi_view/test_comp_00000/view_1.png")),
                 touch(layout.temp_name(layout.manifest_file(out, "val_00000")))]
    assert build(out, *TINY, "--plan-only").returncode == 0  # a start
    assert os.listdir(scratch) == []
    assert not any(p.exists() for p in leftovers)


def test_plan_files_are_limited_before_they_are_built():
    with pytest.raises(ValueError, match="a plan holds at most 1000000 scenes, got 1000001"):
        plan.build_plan({"train": 1_000_000, "val": 1})


# --- plan.read_document, the one reader of plan.json ---------------------------------------

def write_document(path: Path, document) -> Path:
    path.write_bytes(document if isinstance(document, bytes) else json.dumps(document).encode())
    return path


def tiny_document() -> dict:
    return plan.document(plan.plan_settings(
        seed=47, size=None, counts={"train": 3, "test_comp": 2}, quality="draft",
        resolution=(96, 64), samples=2, blender_version="5.2.3", numpy_version="2.3.0"))


def refitted(document: dict) -> dict:
    """The document with its fingerprint recomputed: an edit that hides itself."""
    return dict(document, fingerprint=plan.fingerprint(document["settings"]))


def test_read_document_returns_exactly_what_document_wrote(tmp_path):
    document = tiny_document()
    data, scenes = plan.read_document(write_document(tmp_path / "plan.json", document))
    assert data == document
    assert scenes == plan.build_plan({"train": 3, "test_comp": 2}, 47)


@pytest.mark.parametrize("edit, fault", [
    (lambda d: b"\xff\xfe{}", "is not valid JSON"),
    (lambda d: [], "has no valid 'fingerprint' or 'settings' or 'scenes'"),
    (lambda d: dict(d, scenes={}), "has no valid 'scenes'"),
    (lambda d: refitted({**d, "settings": {**d["settings"], "seed": -1}}),
     "its settings give no plan: seed must be an integer of 0 or more, got -1"),
    (lambda d: refitted({**d, "settings": {**d["settings"], "counts": {"train": 10**9}}}),
     "its settings give no plan: a plan holds at most 1000000 scenes, got 1000000000"),
    (lambda d: refitted({**d, "settings": {**d["settings"], "counts": {"train": 2}}}),
     "its scene list is not the one its settings give: it lists 5 scenes, its settings give 2"),
    (lambda d: {**d, "scenes": d["scenes"][:2] + [dict(d["scenes"][2], extra=1)]},
     "scene entry 2 is malformed"),
    (lambda d: refitted({**d, "settings": {**d["settings"], "passes": ["../../x"]}}),
     "its settings give no plan: passes must be a list of depth in that order, each at most "
     "once, got ['../../x']"),
    (lambda d: {**d, "scenes": [dict(d["scenes"][0], scene_id="train_0/../x")]},
     "scene entry 0: scene id 'train_0/../x' is not of the form <split>_<index>"),
    (lambda d: {**d, "scenes": [dict(d["scenes"][0], seed=d["scenes"][0]["seed"] + 1)]
                + d["scenes"][1:]},
     "its scene list is not the one its settings give: scene entry 0 (train_00000): seed"),
])
def test_read_document_refuses_a_plan_that_does_not_prove_itself(tmp_path, edit, fault):
    path = write_document(tmp_path / "plan.json", edit(tiny_document()))
    with pytest.raises(plan.PlanError, match=f"^{re.escape(str(path))}: {re.escape(fault)}"):
        plan.read_document(path)


def test_a_worker_reads_ids_and_fingerprint_without_rebuilding(tmp_path):
    document = tiny_document()
    swapped = {**document, "scenes": document["scenes"][::-1]}  # a rebuild would refuse it
    path = write_document(tmp_path / "plan.json", swapped)
    assert [s.scene_id for s in plan.read_document(path, rebuild=False)[1]] == [
        e["scene_id"] for e in swapped["scenes"]]
    twice = {**document, "scenes": document["scenes"][:2] * 2}
    with pytest.raises(plan.PlanError, match="lists a scene id twice"):
        plan.read_document(write_document(path, twice), rebuild=False)
    with pytest.raises(plan.PlanError, match="cannot be read"):
        plan.read_document(tmp_path / "nowhere.json")


# --- the optional depth pass: its files are scenegen's only when the plan has it -----------

def test_depth_maps_are_predicted_only_by_a_plan_with_the_pass(tmp_path):
    sid = "train_00000"
    maps = layout.scene_paths(sid, ("depth",))["depth"]
    without = layout.Predicted([sid], ["train"])
    with_depth = layout.Predicted([sid], ["train"], ("depth",))
    for rel in maps:
        touch(tmp_path / rel)
    assert layout.survey(tmp_path, without).foreign == ["depth/"]
    assert layout.survey(tmp_path, with_depth).n_foreign == 0
    assert with_depth.scene(maps[2]) == sid and without.scene(maps[2]) is None
    assert layout.partial_files(tmp_path, [sid]) == []  # a plan without it never removes them
    assert layout.partial_files(tmp_path, [sid], ("depth",)) == [tmp_path / m for m in maps]
    layout.remove_partial(tmp_path, [sid], ("depth",))
    assert sorted(os.listdir(tmp_path / "depth")) == []


def test_a_depth_folder_in_a_plan_without_the_pass_is_refused_and_kept(tmp_path, planned):
    out = tmp_path / "data"
    planned(out)
    depth_map = touch(out / "depth" / "train_00000" / "view_0.png")
    refused(build(out, *TINY, "--overwrite"), "entries its plan does not predict: depth/")
    assert depth_map.exists()


def test_without_passes_the_plan_is_the_one_before_them():
    """The default plan has no "passes" key, so its fingerprint, and everything the
    fingerprint decides, is what it was before the option existed."""
    base = tiny_document()["settings"]
    assert "passes" not in base
    with_depth = plan.plan_settings(**{k: base[k] for k in (
        "seed", "size", "counts", "quality", "samples", "blender_version", "numpy_version")},
        resolution=base["resolution"], passes=("depth",))
    assert plan.fingerprint_difference(base, with_depth) == ["passes: '<absent>' -> ['depth']"]
