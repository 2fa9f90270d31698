"""The validator: a sound dataset passes, the command's exit codes and notes, what it never
reads, and its image measures on hand-made pictures.

The dataset is a small output folder built without Blender (tests/fake_dataset.py) and
merged; each test changes its own copy. The sweep of damages is tests/test_fault_sweep.py
(with real Cycles renders there too).
"""

import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from scenegen_addon.core import content, layout, manifest, merge, plan, png, validation
from scenegen_addon.core.spec import COLORS
from scenegen_addon.launcher import lock, validate
from scenegen_addon.launcher.lock import FolderLock

from tests import audit, fake_dataset

COUNTS = {"train": 2, "val": 1, "test_iid": 1, "test_comp": 1, "test_hard": 1}
ROOT = Path(__file__).resolve().parent.parent
NOTE_FRACTIONS = "NOTE mask visible fractions not checked: 240x160 is below 480 px wide"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine") / "data"
    fake_dataset.make_output(out, COUNTS)
    merge.merge(out)
    return out


@pytest.fixture
def data(pristine, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(pristine, out)
    return out


def run(out, capsys, *extra):
    code = validate.main([str(out), "--jobs", "1", *extra])
    return code, capsys.readouterr().out


def test_sound_dataset_passes(pristine, capsys):
    code, text = run(pristine, capsys)
    assert code == 0, text
    lines = text.splitlines()
    assert lines[:-1] == [NOTE_FRACTIONS]  # nothing but what was not checked, and why
    assert lines[-1].startswith("OK: 6 scenes checked, labels recomputed for 6;")


def _give_up_on_test_hard_00000(data) -> None:
    """The launcher gave up on test_hard_00000: its files gone, failures.json naming it,
    merged."""
    paths = layout.scene_paths("test_hard_00000")
    for rel in [paths["metadata"], paths["image_single"]]:
        (data / rel).unlink()
    shutil.rmtree(data / "images/multi_view/test_hard_00000")
    shutil.rmtree(data / "masks/test_hard_00000")
    layout.write_json(data / ".scenegen/failures.json",
                      [{"scene_id": "test_hard_00000", "reason": "sampling: 100 retries"}])
    merge.merge(data)


def test_failed_scene_is_incomplete(data, capsys):
    """A scene the launcher gave up on: exit 3, listed with its reason."""
    _give_up_on_test_hard_00000(data)
    code, text = run(data, capsys)
    assert code == 3, text
    assert "INCOMPLETE test_hard_00000: sampling: 100 retries" in text
    assert "CORRUPT" not in text


def test_a_failed_scene_a_killed_rerun_completed_is_merge_pending_not_corrupt(
        data, pristine, capsys):
    """A rerun killed after it completed a scene the last run gave up on, before it wrote
    failures.json and merged: the folder is sound and resumable (merge pending, exit 3),
    never corrupt; without the rerun's mark, failures.json disagreeing is a fault."""
    _give_up_on_test_hard_00000(data)
    layout.mark_merge_pending(data)  # the rerun, which renders the scene again
    for rel in layout.scene_files("test_hard_00000"):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pristine / rel, data / rel)
    code, text = run(data, capsys)
    assert code == 3, text
    assert "merge pending" in text and "CORRUPT" not in text
    layout.merge_pending_file(data).unlink()
    code, text = run(data, capsys)
    assert code == 1, text
    assert ("CORRUPT .scenegen/failures.json: lists test_hard_00000 as failed, but it is "
            "complete") in text


def test_interrupted_scene_leftovers_are_not_stray(data, capsys):
    """A scene killed mid-write (its images, a temporary name, no metadata) is incomplete,
    not corrupt: a resume removes what it left."""
    (data / "metadata/val_00000.json").unlink()
    leftover = data / "images/multi_view/val_00000/.view_3.png.4242.7.tmp.png"
    leftover.write_bytes(b"partial")
    merge.merge(data)
    code, text = run(data, capsys)
    assert code == 3, text
    assert "INCOMPLETE val_00000: missing: no metadata file" in text
    assert "CORRUPT" not in text


def test_a_scene_removed_after_the_merge_is_corruption(data, capsys):
    """The split file lists a scene whose metadata is gone: corrupt, and also incomplete."""
    (data / "metadata/test_iid_00000.json").unlink()
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT splits/test_iid.json: entry 0: scene test_iid_00000 is not complete" in text
    assert "INCOMPLETE test_iid_00000: missing: no metadata file" in text


def _unmerge(out: Path) -> None:
    """Remove what the merge writes: splits/, dataset_info.json and checksums.sha256."""
    shutil.rmtree(out / "splits")
    (out / layout.DATASET_INFO).unlink()
    (out / layout.CHECKSUMS).unlink()


def test_a_folder_never_merged_is_incomplete_not_corrupt(data, capsys):
    """Every scene rendered, the merge not run (a build stopped before it, or batches
    without the merge operator): exit 3 saying how to finish it, not corrupt; its scenes
    are still checked."""
    _unmerge(data)
    code, text = run(data, capsys)
    assert code == 3, text
    assert text.splitlines() == [
        "INCOMPLETE not merged (no splits/*.json, dataset_info.json or checksums.sha256): "
        "every scene is complete; rerun the build to merge", NOTE_FRACTIONS, text.splitlines()[-1]]
    assert text.splitlines()[-1].startswith(
        "INCOMPLETE: 6 scenes checked, labels recomputed for 6; 0 problems, 0 incomplete "
        "scenes, not merged (")
    rel = "masks/val_00000/view_1.png"
    (data / rel).write_bytes((data / rel).read_bytes()[:-30])
    code, text = run(data, capsys)
    assert code == 1 and f"CORRUPT {rel}: truncated (no IEND chunk)" in text.splitlines()


def test_an_interrupted_build_is_incomplete_not_corrupt(data, capsys):
    """A build stopped mid-way: a scene without metadata, what its write left, no merge yet.
    Incomplete (exit 3), each missing scene named, and how to finish."""
    _unmerge(data)
    (data / "metadata/val_00000.json").unlink()
    (data / "images/multi_view/val_00000/.view_3.png.4242.7.tmp.png").write_bytes(b"partial")
    code, text = run(data, capsys)
    assert code == 3, text
    assert "CORRUPT" not in text
    lines = text.splitlines()
    assert "INCOMPLETE val_00000: missing: no metadata file" in lines
    assert ("INCOMPLETE not merged (no splits/*.json, dataset_info.json or checksums.sha256): "
            "5 of 6 scenes complete, the build did not finish; rerun it to render the rest "
            "and merge") in lines
    layout.write_json(data / ".scenegen/failures.json",  # given up on: all is done but the merge
                      [{"scene_id": "val_00000", "reason": "sampling: 100 retries"}])
    code, text = run(data, capsys)
    assert code == 3 and "CORRUPT" not in text, text
    assert [line for line in text.splitlines() if line.startswith("INCOMPLETE ")] == [
        "INCOMPLETE val_00000: sampling: 100 retries",
        "INCOMPLETE not merged (no splits/*.json, dataset_info.json or checksums.sha256): "
        "every scene is complete or failed; rerun the build to merge"]


_TASK_OPENS: list = []


def _elsewhere(function, tasks):
    """map_tasks as a Ray cluster does it: the tasks' reads happen elsewhere (recorded in
    _TASK_OPENS, not in the caller's list)."""
    with audit.opened(_TASK_OPENS):
        return [function(task) for task in tasks]


def test_the_scene_files_are_read_by_the_tasks_not_by_the_folder_checks(data):
    """Each scene's record is read and its files hashed once, in its per-scene task (on the
    pool or the cluster); the whole-folder checks compare the index files with the merge's
    documents made from what the tasks returned, and open no scene file themselves."""
    _TASK_OPENS.clear()
    with audit.opened() as in_main:
        report = validation.validate(data, map_tasks=_elsewhere)
    in_main = set(in_main)
    assert report.corrupt == [] and report.scenes_checked == 6
    _, scenes = plan.read_document(layout.plan_file(data))
    files = {os.path.realpath(data / rel) for s in scenes for rel in layout.scene_files(s.scene_id)}
    assert files <= set(_TASK_OPENS)
    assert not files & in_main, sorted(files & in_main)[:3]


def test_scenes_whose_task_returned_nothing_are_still_covered(data):
    """Should the transport lose the tasks' results, the folder checks make the complete
    scenes' shares themselves: no false alarm, and checksums.sha256 is still checked."""
    assert validation.validate(data, map_tasks=lambda function, tasks: []).corrupt == []
    lines = (data / layout.CHECKSUMS).read_text().splitlines(keepends=True)
    (data / layout.CHECKSUMS).write_text("".join(["f" * 64 + lines[0][64:], *lines[1:]]))
    report = validation.validate(data, map_tasks=lambda function, tasks: [])
    assert [str(p) for p in report.corrupt] == [
        "checksums.sha256: line 1: images/single_view/train_00000.png has the SHA-256 "
        f"{lines[0][:16]}... now, the line says {'f' * 16}... (the file or the line changed "
        "after the merge)"]


def test_sample_recomputes_a_fraction(pristine, capsys):
    code, text = run(pristine, capsys, "--sample", "0.5")
    assert code == 0
    assert "labels recomputed for 3;" in text


def test_sample_ids():
    ids = [f"train_{i:05d}" for i in range(10)]
    chosen = validation.sample_ids(ids, 0.25, 42)
    assert len(chosen) == math.ceil(2.5) and chosen <= set(ids)
    assert chosen == validation.sample_ids(ids, 0.25, 42)
    assert validation.sample_ids(ids, 1.0, 7) == set(ids)
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="sample fraction"):
            validation.sample_ids(ids, bad, 42)


def test_check_png_hand_made(tmp_path):
    path = tmp_path / "a.png"
    good = fake_dataset.rgb_png(4, 3)
    path.write_bytes(good)
    assert png.check_png(path, 4, 3, png.RGB8) is None
    assert png.check_png(path, 4, 3, png.GRAY16).startswith("bit depth 8")
    flipped = bytearray(good)
    flipped[45] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
    path.write_bytes(bytes(flipped))
    assert png.check_png(path, 4, 3, png.RGB8) == "bad CRC in chunk IDAT"
    path.write_bytes(good + b"\0" * 12)  # a whole empty chunk's worth of bytes after IEND
    assert png.check_png(path, 4, 3, png.RGB8) == "12 bytes after the IEND chunk"
    path.write_bytes(b"GIF89a")
    assert png.check_png(path, 4, 3, png.RGB8) == "not a PNG file"
    with pytest.raises(ValueError, match="a.png: not a PNG file"):
        png.read_png(path)


def test_a_png_whose_image_data_goes_on_after_its_stream_is_refused(tmp_path):
    """The whole image stream plus junk in the same IDAT chunk, every CRC correct: an
    extended file, which check_png and read_png refuse."""
    path = tmp_path / "a.png"
    rows = b"".join(b"\0" + bytes(range(12)) for _ in range(3))
    header = struct.pack(">IIBBBBB", 4, 3, 8, 2, 0, 0, 0)
    for junk, fault in ((b"", None), (b"junk", "image data goes on after its end")):
        path.write_bytes(png.SIGNATURE + fake_dataset._chunk(b"IHDR", header)
                         + fake_dataset._chunk(b"IDAT", zlib.compress(rows) + junk)
                         + fake_dataset._chunk(b"IEND", b""))
        assert png.check_png(path, 4, 3, png.RGB8) == fault
    with pytest.raises(ValueError, match="a.png: image data goes on after its end"):
        png.read_png(path)


def test_the_reader_and_the_check_walk_the_same_chunks(tmp_path):
    """core.png.walk is both's one walk of the container: the check refuses any fault, the
    reader decodes what the walk found (a bad CRC of intact data included)."""
    path = tmp_path / "a.png"
    good = fake_dataset.rgb_png(4, 3)
    iend = good.rindex(b"IEND") - 4
    for blob, fault in ((good[:iend], "truncated (no IEND chunk)"),
                        (good[:8] + good[33:], "no valid IHDR chunk"),
                        (good[:-1] + bytes([good[-1] ^ 1]), "bad CRC in chunk IEND")):
        assert png.walk(blob).fault == fault
        path.write_bytes(blob)
        assert png.check_png(path, 4, 3, png.RGB8) == fault
    assert png.walk(good).fault is None and png.walk(good).header[:4] == (4, 3, 8, 2)
    assert np.array_equal(png.read_png(path), np.full((3, 4, 3), (120, 130, 140)))
    path.write_bytes(good[:8] + good[33:])
    with pytest.raises(ValueError, match="a.png: no valid IHDR chunk"):
        png.read_png(path)


def test_bad_arguments(tmp_path, capsys):
    assert validate.main([str(tmp_path), "--sample", "2"]) == 2
    assert "--sample: must be a number in (0, 1]" in capsys.readouterr().err
    assert validate.main([str(tmp_path)]) == 2
    assert "is not a scenegen output folder" in capsys.readouterr().err


def test_command_line_pool_without_bpy(pristine):
    """The script, on a process pool, in a Python that never loads bpy."""
    code = (
        "import runpy, sys\n"
        "sys.argv = [sys.argv[1], sys.argv[2], '--jobs', '2']\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit:\n"
        "    assert 'bpy' not in sys.modules\n"
        "    raise\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "headless/validate.py"), str(pristine)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("OK: 6 scenes checked")
    [line] = done.stderr.splitlines()  # the count reached, at the end (not a terminal)
    assert line.startswith(f"validating: [{'#' * 30}] 6/6 scenes  "), line


def test_the_count_reaches_its_status_hook(pristine, capsys):
    """What the build writes into progress.json while it validates (the panel shows it)."""
    told = []
    assert validate.run(pristine, status=told.append) == 0
    assert told[-1] == "validating: 6/6 scenes, ETA 0s"


def test_ctrl_c_exits_130_saying_nothing_changed(pristine, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(validation, "validate", interrupted)
    assert validate.main([str(pristine)]) == 130
    assert capsys.readouterr().err == (
        "validate.py: interrupted (it only reads: nothing was changed)\n")


# --- checksums.sha256 against the manifests -------------------------------------------------

def test_checksums_edited_to_match_a_changed_pixel_disagree_with_the_manifest(data, capsys):
    """The manifests, written with each scene, keep the true hashes: checksums.sha256 made
    to match a damaged file still fails. A copy without .scenegen/scenes/ has only
    checksums.sha256, which the same two edits forge (FORMAT 8: not promised)."""
    for sid in [f"{split}_00000" for split in COUNTS] + ["train_00001"]:
        layout.write_json(manifest.path(data, sid), merge.scene_manifest(data, sid))
    rel = layout.scene_paths("train_00000")["images"][2]
    pixels = png.read_png(data / rel)
    pixels[10, 20] ^= 1  # one pixel, one bit: no content check can tell
    (data / rel).write_bytes(fake_dataset.encode_rgb(pixels))
    sums = (data / "checksums.sha256").read_text()
    line = next(line for line in sums.splitlines() if line.endswith(rel))
    digest = hashlib.sha256((data / rel).read_bytes()).hexdigest()
    (data / "checksums.sha256").write_text(sums.replace(line, f"{digest}  {rel}"))
    code, text = run(data, capsys)
    assert code == 1, text
    assert text.splitlines()[:-1] == [
        f"CORRUPT {rel}: its SHA-256 is not the one .scenegen/scenes/train_00000.json took "
        "when the scene was written (the file or the manifest changed since)", NOTE_FRACTIONS]
    shutil.rmtree(data / ".scenegen" / "scenes")
    assert run(data, capsys)[0] == 0


def test_a_checksums_file_of_one_huge_line_is_read_in_pieces(tmp_path):
    """checksums.sha256 of one 64 MiB line (sparse, no newline): the validator names its
    faults reading at most merge.MAX_LINE bytes at a time, never the line whole."""
    with open(tmp_path / layout.CHECKSUMS, "wb") as f:
        f.truncate(64 << 20)
    tracemalloc.start()
    try:
        problems = validation._checksum_faults(tmp_path, {"dataset_info.json": None})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(problems[0]).startswith(
        "checksums.sha256: line 1 is not '<SHA-256>  <file>': b'\\x00")
    assert len(problems) == validation.MAX_PER_FILE + 2  # the rest is counted, not read
    assert peak < 1 << 20, peak


# --- a build in progress --------------------------------------------------------------------

def test_a_folder_a_build_holds_is_not_checked_until_it_ends(data, capsys):
    """While a launcher holds the folder's lock, validate.py checks nothing and says so,
    naming it (exit 3); with --wait it waits for the lock, then validates. While it reads, no
    launcher can start in the folder."""
    held = FolderLock(layout.lock_file(data))
    held.acquire()
    try:
        assert validate.main([str(data), "--jobs", "1"]) == 3
        out, err = capsys.readouterr()
        assert out == ""
        assert (f"validate.py: build in progress: another launcher (PID {os.getpid()} on "
                in err and "nothing was checked: validate when it ends, or with --wait" in err)
        threading.Timer(1.0, held.release).start()
        assert validate.main([str(data), "--jobs", "1", "--wait"]) == 0
    finally:
        held.release()
    out, err = capsys.readouterr()
    assert f"validate.py: waiting: another launcher (PID {os.getpid()} on" in err
    assert out.splitlines()[-1].startswith("OK: 6 scenes checked")
    with lock.reading(layout.lock_file(data)), pytest.raises(
            lock.LockHeld, match="a validation \\(validate.py\\) is reading this folder"):
        FolderLock(layout.lock_file(data)).acquire()


@pytest.mark.parametrize("width, height, pixels, flagged", [
    (480, 320, 19, True),   # 19 of 100 silhouette pixels: 0.19 < 0.20
    (480, 320, 20, False),  # exactly 0.20
    (96, 64, 0, False),     # below the canonical width quantisation rules: not checked
])
def test_mask_visible_fraction(width, height, pixels, flagged):
    mask = np.zeros((height, width), dtype=np.uint16)
    mask.ravel()[:pixels] = 1
    objects = [{"id": "obj_0", "silhouette_pixels": 100, "visible_pixels": pixels,
                "in_frame": True}]
    record = {"n_objects": 1, "views": [{"objects": objects}]}
    problems = [str(p) for p in validation.check_mask(record, 0, mask, "m.png")]
    assert problems == (["m.png: obj_0 visible fraction 0.190 < 0.2"] if flagged else [])


def test_content_check_is_skipped_below_its_width_and_says_so(data, capsys, monkeypatch):
    """Below MIN_CONTENT_WIDTH a blank image passes the content check unseen, and the
    report says that the images were not checked against their masks. (Merged again, as if
    rendered blank: checksums.sha256 would name a file changed after the merge.)"""
    rel = "images/multi_view/val_00000/view_2.png"
    (data / rel).write_bytes(fake_dataset.encode_rgb(np.zeros((160, 240, 3), np.uint8)))
    merge.merge(data)
    code, text = run(data, capsys)
    assert code == 1 and f"CORRUPT {rel}: the image is blank" in text
    monkeypatch.setattr(content, "MIN_CONTENT_WIDTH", 241)
    code, text = run(data, capsys)
    assert code == 0, text
    assert ("NOTE images not checked against their masks: 240x160 is below 241 px wide, "
            "where that check is not sure") in text.splitlines()


# --- nothing outside the folder is read ----------------------------------------------------

def test_ids_with_dotdot_read_nothing_outside(data, capsys):
    """Scene ids like '../bait/leak' in split files, the failures file, dataset_info and a
    record are refused before any path is made; a linked file is never followed."""
    bait = data.parent / "bait"
    for rel in ("leak.json", "metadata/leak.json", "images/multi_view/leak/view_0.png"):
        (bait / rel).parent.mkdir(parents=True, exist_ok=True)
        (bait / rel).write_text("[]")
    evil = "../bait/leak"
    split = data / "splits/train.json"
    entries = json.loads(split.read_text())
    split.write_text(json.dumps([dict(entries[0], scene_id="../../bait/leak"),
                                 dict(entries[1], scene_id=evil)]))
    (data / ".scenegen/failures.json").write_text(json.dumps([{"scene_id": evil,
                                                               "reason": "r"}]))
    info = json.loads((data / "dataset_info.json").read_text())
    info["failed"] = [{"scene_id": evil, "reason": "r"}]
    (data / "dataset_info.json").write_text(json.dumps(info))
    record = json.loads((data / "metadata/val_00000.json").read_text())
    record["scene_id"] = evil
    (data / "metadata/val_00000.json").write_text(json.dumps(record))
    (data / "metadata/test_iid_00000.json").unlink()
    (data / "metadata/test_iid_00000.json").symlink_to(bait / "leak.json")
    with audit.opened() as opened:
        code, text = run(data, capsys)
    assert code == 1
    for line in [
        "CORRUPT splits/train.json: entry 0: scene id '../../bait/leak' is not of the form",
        "CORRUPT splits/train.json: entry 1: scene id '../bait/leak' is not of the form",
        "CORRUPT .scenegen/failures.json: entry 0: scene id '../bait/leak' is not of the form",
        "CORRUPT dataset_info.json: failed entry 0: scene id '../bait/leak' is not of the form",
        "CORRUPT metadata/val_00000.json: schema: scene_id",
        "CORRUPT metadata/test_iid_00000.json: is a symbolic link",
        "CORRUPT metadata/test_iid_00000.json: is reached through a symbolic link",
    ]:
        assert any(printed.startswith(line) for printed in text.splitlines()), (line, text)
    assert any(p.startswith(str(data.resolve())) for p in opened), "nothing seen opened"
    assert audit.outside(opened, data, data.parent) == []


# --- the PNG decoder ----------------------------------------------------------------------

def _filtered(kind: int, row: list[int], prior: list[int], bpp: int) -> list[int]:
    """PNG's forward filters, per byte as the PNG specification states them."""
    out = []
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        p = a + b - c
        paeth = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
        out.append((x - [0, a, b, (a + b) // 2, paeth][kind]) % 256)
    return out


@pytest.mark.parametrize("height, width, channels, depth", [
    (37, 23, 3, 8), (9, 50, 1, 16), (20, 3, 4, 8), (1, 1, 3, 8), (6, 9, 2, 8), (12, 7, 3, 16),
])
def test_png_decoder_undoes_any_mix_of_filters(tmp_path, height, width, channels, depth):
    """Rows filtered with random filter types (Average and Paeth among them) decode to the
    pixels, at every bit depth and colour type the reader supports."""
    g = np.random.default_rng(height * width)
    pixels = g.integers(0, 2 ** depth, size=(height, width, channels)).astype(
        np.uint8 if depth == 8 else ">u2")
    rows = pixels.view(np.uint8).reshape(height, -1)
    bpp = channels * depth // 8
    raw, prior = b"", [0] * rows.shape[1]
    for y, kind in enumerate(g.integers(0, 5, size=height)):
        row = rows[y].tolist()
        raw += bytes([int(kind)] + _filtered(int(kind), row, prior, bpp))
        prior = row

    def chunk(kind, body):
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    path = tmp_path / "f.png"
    path.write_bytes(png.SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth,
                                                               colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    decoded = png.read_png(path)
    assert np.array_equal(decoded.reshape(height, width, channels), pixels.astype(decoded.dtype))


# --- the image measures, on hand-made pictures ----------------------------------------------

def test_edge_contrast_of_a_square():
    """A 2x2 object in a 6x6 frame: image steps only where the mask changes give the ratio
    of all pairs to boundary pairs; moved off its mask the image has no step at the
    boundaries at all."""
    mask = np.zeros((6, 6), dtype=np.uint16)
    mask[2:4, 2:4] = 1
    image = np.zeros((6, 6, 3), dtype=np.uint8)
    image[mask == 1] = (10, 20, 30)  # a step of 60 across each of the 8 boundary pairs
    pairs, boundary_pairs = 2 * 6 * 5, 8
    assert content.edge_contrast(image, mask) == pairs / boundary_pairs
    moved = np.roll(image, 3, axis=1)
    assert content.edge_contrast(moved, mask) == 0.0
    assert content.edge_contrast(np.zeros_like(image), mask) is None  # blank


def test_misalignment_finds_the_offset():
    """A picture moved against its mask: the best offset is the move, its fit grows; on its
    mask every other offset fits worse; without coloured objects nothing is measured."""
    mask = np.zeros((60, 90), dtype=np.uint16)
    mask[20:35, 30:50] = 1
    mask[40:52, 60:75] = 2
    image = np.full((60, 90, 3), 120, dtype=np.uint8)
    image[mask == 1] = COLORS["red"]
    image[mask == 2] = COLORS["blue"]
    offset, ratio = content.misalignment(image, mask, [1, 2])
    assert ratio < 1
    for dx, dy in [(4, 0), (-7, 5), (1, 1), (0, -13)]:
        moved = np.roll(image, (dy, dx), axis=(0, 1))
        offset, ratio = content.misalignment(moved, mask, [1, 2])
        assert offset == (dx, dy) and ratio > content.ALIGN_MAX
    assert content.misalignment(moved, mask, []) == ((0, 0), 0.0)  # no coloured outline


@pytest.mark.parametrize("name", list(COLORS))
def test_colour_names_survive_shading_and_grey_light(name):
    """A palette colour darkened (shading) or mixed with grey (light, highlights) keeps its
    name; grey stays grey."""
    rgb = COLORS[name]
    assert content.colour_name(rgb) == name
    assert content.colour_name(tuple(0.4 * c for c in rgb)) == name
    assert content.colour_name(tuple(0.7 * c + 40 for c in rgb)) == name


def test_colour_agreement_counts_objects_with_enough_interior():
    """Objects whose interior (8 neighbours alike) holds MIN_INTERIOR pixels are judged; a
    recoloured one is a misfit, a thin one is not judged."""
    mask = np.zeros((40, 40), dtype=np.uint16)
    mask[5:15, 5:15] = 1  # interior 8x8 = 64 pixels
    mask[20:30, 20:30] = 2
    mask[35:37, 2:30] = 3  # two rows high: no interior pixel
    image = np.full((40, 40, 3), 128, dtype=np.uint8)
    image[mask == 1] = COLORS["cyan"]
    image[mask == 2] = COLORS["purple"]
    image[mask == 3] = COLORS["green"]
    objects = [{"id": f"obj_{i}", "color": c} for i, c in enumerate(["cyan", "red", "yellow"])]
    judged, fit, misfits, ground = content.colour_agreement(image, mask, objects)
    assert (judged, fit, misfits, ground) == (2, 1, ["obj_1 (red) looks purple"], 0.0)
