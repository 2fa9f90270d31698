"""Scene manifests (core/manifest): the statistics a worker tallies while it writes a record
equal those of the written record, damage is found file by file, and the merge's
checksums.sha256 is what `sha256sum -c` checks."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from scenegen_addon.core import camera, content, files, layout, manifest, merge, plan, records
from scenegen_addon.launcher import repair

from tests import fake_dataset
from tests.test_readers import deadline

COUNTS = {"train": 2, "test_comp": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("manifest") / "data"
    fake_dataset.make_output(out, COUNTS)
    return out


def test_the_streamed_tally_is_the_tally_of_the_written_record(tmp_path):
    views = camera.rig(*fake_dataset.RESOLUTION)
    entry = plan.document(plan.plan_settings(
        seed=42, size=None, counts={"test_comp": 1}, quality="draft",
        resolution=fake_dataset.RESOLUTION, samples=2, blender_version="5.0.1",
        numpy_version=np.__version__))["scenes"][0]
    spec, masks = fake_dataset.make_scene(entry, views)
    tally = manifest.Tally()
    path = records.write_scene_record(tmp_path, spec, views, masks, fake_dataset.RENDER,
                                      tally=tally)
    record = layout.read_json(path)
    assert tally.summary() == manifest.Tally.of_record(record).summary()
    summary = tally.summary()
    n = record["n_objects"]
    assert summary["world"]["qrr"] == 3 * (n * (n - 1) * (n - 2) * (n - 3) // 24)
    assert summary["visible_fraction_count"] == 4 * n
    fractions = [o["visible_fraction"] for v in record["views"] for o in v["objects"]]
    assert float(summary["visible_fraction_sum"]) == pytest.approx(sum(fractions), rel=1e-12)


def test_damage_is_found_file_by_file(dataset, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    sid = "train_00000"
    document = merge.scene_manifest(out, sid)
    assert manifest.damage(out, sid, document, verify=True) == []
    paths = layout.scene_paths(sid)
    (out / paths["images"][2]).unlink()
    meta = out / paths["metadata"]
    meta.write_bytes(meta.read_bytes()[:-10])
    mask = out / paths["masks"][1]
    data = bytearray(mask.read_bytes())
    data[60] ^= 0xFF  # same size, still ends with IEND: only the hash tells
    mask.write_bytes(bytes(data))
    assert manifest.damage(out, sid, document) == [
        f"{paths['images'][2]}: missing",
        f"{paths['metadata']}: {meta.stat().st_size} bytes, "
        f"{document['files'][paths['metadata']]['bytes']} when it was written"]
    assert f"{paths['masks'][1]}: altered (SHA-256 differs)" in manifest.damage(
        out, sid, document, verify=True)
    # without a manifest: missing and truncated files are still found
    assert manifest.damage(out, sid) == [f"{paths['images'][2]}: missing",
                                         f"{paths['metadata']}: truncated"]


def test_checksums_file_is_what_sha256sum_checks(dataset, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    merge.merge(out)
    lines = (out / "checksums.sha256").read_text().splitlines()
    listed = [line.split("  ", 1)[1] for line in lines]
    expected = [f for sid in ("train_00000", "train_00001", "test_comp_00000")
                for f in layout.scene_files(sid)]
    assert listed == expected + ["splits/train.json", "splits/test_comp.json",
                                 "dataset_info.json"]
    check = subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=out,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (out / "splits" / "train.json").write_text("[]")
    assert subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=out,
                          capture_output=True).returncode == 1


def test_the_merge_reads_manifests_not_records(dataset, tmp_path):
    """With manifests in place the metadata files are not read: the same dataset_info when
    every record is replaced by garbage of the same size (only the validator reads them)."""
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    before = merge.merge(out)
    for sid in ("train_00000", "train_00001", "test_comp_00000"):
        layout.write_json(manifest.path(out, sid), merge.scene_manifest(out, sid))
        meta = out / layout.scene_paths(sid)["metadata"]
        meta.write_text("x" * meta.stat().st_size)
    after = merge.merge(out)
    for info in (before, after):
        info.pop("created")
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_a_written_manifest_is_where_overwrite_removes_it(dataset, tmp_path):
    """manifest.write puts a scene's manifest at layout.manifest_file, which --overwrite's
    remove_own clears with the scene; an id that is not a scene id never becomes a path."""
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    sid = "train_00001"
    manifest.write(out, sid, {})
    written = layout.manifest_file(out, sid)
    assert manifest.read(out, sid)["scene_id"] == sid and written.is_file()
    layout.remove_own(out, layout.Predicted([sid], ["train"]))
    assert not written.exists() and not (out / layout.scene_paths(sid)["metadata"]).exists()
    for bad in ("../train_00001", "train_00001/../x", "scenes", None):
        with pytest.raises(ValueError, match="is not of the form <split>_<index>"):
            layout.manifest_file(out, bad)


def _with_manifests(dataset, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    for sid in ("train_00000", "train_00001", "test_comp_00000"):
        layout.write_json(manifest.path(out, sid), merge.scene_manifest(out, sid, trust=False))
    return out


def _index_files(out) -> dict:
    """The merge's files but the creation time (and the checksum of the file holding it)."""
    info = json.loads((out / "dataset_info.json").read_text())
    info.pop("created")
    sums = [line for line in (out / "checksums.sha256").read_text().splitlines()
            if not line.endswith("dataset_info.json")]
    return {"info": info, "sums": sums, **{p.name: p.read_bytes()
                                           for p in sorted((out / "splits").iterdir())}}


def test_the_merge_from_records_writes_what_the_merge_from_manifests_writes(dataset, tmp_path):
    """trust_manifests=False (every record read, every file hashed: the merge before
    manifests, and what the validator recomputes) gives the same files."""
    out = _with_manifests(dataset, tmp_path)
    merge.merge(out)
    from_manifests = _index_files(out)
    merge.merge(out, trust_manifests=False)
    assert _index_files(out) == from_manifests


def test_a_manifest_whose_digest_is_not_hex_is_made_again(dataset, tmp_path):
    """A manifest is trusted only when each digest is a SHA-256 in hex; otherwise the
    scene's share is made from its files, and checksums.sha256 still checks."""
    out = _with_manifests(dataset, tmp_path)
    path = manifest.path(out, "train_00001")
    document = layout.read_json(path)
    document["files"]["metadata/train_00001.json"]["sha256"] = "not a digest"
    layout.write_json(path, document)
    merge.merge(out)
    check = subprocess.run(["sha256sum", "-c", "--strict", "--quiet", "checksums.sha256"],
                           cwd=out, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# --- a rerun's check of scenes whose manifest is lost (launcher/repair) ---------------------

def test_a_scene_without_its_manifest_is_judged_by_the_checksums_or_its_images(
        dataset, tmp_path, monkeypatch):
    """No manifests (as after a lost .scenegen/scenes/): a scene the last merge's
    checksums.sha256 lists must have its hashes (one changed bit is damage, named); a scene
    it does not list must pass the validator's checks (a blacked-out view is damage, a sound
    scene gets its manifest), and below the width of the image checks it is rendered again."""
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    merge.merge(out)
    document, scenes = plan.read_document(layout.plan_file(out))
    changed = layout.scene_paths("train_00000")["masks"][1]
    data = bytearray((out / changed).read_bytes())
    data[60] ^= 1
    (out / changed).write_bytes(bytes(data))
    blank = layout.scene_paths("test_comp_00000")["images"][3]
    (out / blank).write_bytes(fake_dataset.rgb_png(*fake_dataset.RESOLUTION, (0, 0, 0)))
    sums = out / layout.CHECKSUMS
    sums.write_text("".join(line for line in sums.read_text().splitlines(keepends=True)
                            if "train_00001" not in line and "test_comp_00000" not in line))
    damaged, missing = repair.find_damaged(out, scenes, document["settings"])
    assert damaged["train_00000"] == (f"{changed}: not the SHA-256 the last merge's "
                                      "checksums.sha256 lists")
    assert damaged["test_comp_00000"].startswith(f"{blank}: the image is blank")
    assert list(damaged) == ["train_00000", "test_comp_00000"]
    assert list(missing) == ["train_00001"]
    assert missing["train_00001"] == merge.scene_manifest(out, "train_00001", trust=False)
    monkeypatch.setattr(content, "MIN_CONTENT_WIDTH", 241)
    damaged, missing = repair.find_damaged(out, scenes[1:2], document["settings"])
    assert damaged["train_00001"] == ("no manifest and no line in checksums.sha256, and at "
                                      "240x160 (below 241 px wide) its images cannot be "
                                      "checked against their masks") and not missing


def test_a_fifo_at_a_scene_file_is_damage_or_named_never_a_hang(dataset, tmp_path):
    """A FIFO where a view goes, in a scene without its manifest, blocked a resumed build
    for ever in open(): the rerun's check calls it damage and renders the scene again, and
    the merge names it; neither waits for a writer."""
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    document, scenes = plan.read_document(layout.plan_file(out))
    view = layout.scene_paths("train_00000")["images"][1]
    (out / view).unlink()
    os.mkfifo(out / view)
    with deadline(5):
        damaged, missing = repair.find_damaged(out, scenes[:1], document["settings"])
        assert damaged == {"train_00000": f"{view}: a FIFO, not a regular file"}
        assert not missing
        with pytest.raises(files.NotAFile, match=f"{out / view} is a FIFO"):
            merge.scene_share(out, "train_00000")
        with pytest.raises(files.NotAFile, match=f"{out / view} is a FIFO"):
            manifest.file_entry(out / view)
        split = out / layout.split_file("train")
        split.parent.mkdir(exist_ok=True)
        os.mkfifo(split)
        with pytest.raises(files.NotAFile, match=f"{split} is a FIFO"):
            merge.index_digests(out, COUNTS)
