"""The merge (FORMAT 7): split files and dataset_info.json of a hand-made output folder.

Expected values are worked out here from FORMAT 1 and 7 and from the scene files directly
(paths written out, counts from the formulas, the qrr comparator recomputed from the
centroids), not taken from the merge's own output.
"""

import itertools
import math
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
from scenegen_addon.core import layout, merge, plan, png

from tests import fake_dataset

COUNTS = {"train": 3, "val": 1, "test_iid": 1, "test_comp": 1, "test_hard": 2}
FAILED = ("test_hard_00001",)


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    out = tmp_path_factory.mktemp("merge") / "data"
    document = fake_dataset.make_output(out, COUNTS, failed=FAILED)
    info = merge.merge(out)
    return out, document, info


def complete(document):
    return [s for s in document["scenes"] if s["scene_id"] not in FAILED]


def test_split_files(merged):
    out, document, _ = merged
    for split in COUNTS:
        entries = fake_dataset.read(out / "splits" / f"{split}.json")
        expected = [
            {
                "scene_id": s["scene_id"],
                "split": split,
                "single_view_image": f"images/single_view/{s['scene_id']}.png",
                "multi_view_images": [f"images/multi_view/{s['scene_id']}/view_{k}.png"
                                      for k in range(4)],
                "masks": [f"masks/{s['scene_id']}/view_{k}.png" for k in range(4)],
                "metadata": f"metadata/{s['scene_id']}.json",
                "n_objects": s["n_objects"],
                "tau": 0.05 if split == "test_hard" else 0.10,
            }
            for s in complete(document) if s["split"] == split
        ]
        assert entries == expected
        for entry in entries:
            for rel in layout.scene_files(entry["scene_id"]):
                assert (out / rel).is_file()
    assert [e["scene_id"] for e in fake_dataset.read(out / "splits/train.json")] == [
        "train_00000", "train_00001", "train_00002"]


def test_dataset_info_fields(merged):
    out, document, info = merged
    assert fake_dataset.read(out / "dataset_info.json") == info
    assert set(info) == {"name", "version", "created", "generator", "fingerprint", "config",
                         "splits", "failed", "statistics", "timing"}
    assert info["generator"] == {"name": "scenegen", "version": "0.1.0",
                                 "blender_version": "5.0.1"}
    assert info["fingerprint"] == document["fingerprint"]
    assert info["config"] == {"size": None, "quality": "draft", "resolution": [240, 160],
                              "samples": 2, "seed": 42, "n_gpus": 0, "workers": 2,
                              "scenes_per_split": COUNTS}
    assert info["splits"] == {"train": 3, "val": 1, "test_iid": 1, "test_comp": 1,
                              "test_hard": 1}
    assert info["failed"] == [{"scene_id": "test_hard_00001", "reason": "sampling: 100 retries"}]
    assert info["created"].endswith("+00:00")
    assert info["timing"] == {"wall_seconds": 90.0, "render_seconds": 1.5 * 7,
                              "scenes_per_hour": 280.0}  # 7 scenes in 90 s


def test_statistics_counts(merged):
    out, document, info = merged
    for split in COUNTS:
        stats = info["statistics"][split]
        scenes = [s for s in complete(document) if s["split"] == split]
        ns = Counter(s["n_objects"] for s in scenes)
        low, high = (10, 15) if split == "test_comp" else (4, 10)
        assert stats["object_counts"] == {str(n): ns[n] for n in range(low, high + 1)}
        retries = Counter(layout.read_json(out / f"metadata/{s['scene_id']}.json")["retries"]
                          for s in scenes)  # the fake scenes are sampled: some retry
        assert stats["retries"] == {str(k): retries[k] for k in sorted(retries)}
        qrr = sum(3 * math.comb(s["n_objects"], 4) for s in scenes)
        trr = sum(n * (n - 1) * (n - 2) for n in (s["n_objects"] for s in scenes))
        world = stats["constraint_counts"]["world"]
        assert (world["qrr"], world["trr"]) == (qrr, trr)
        assert world["topology"] == sum(math.comb(s["n_objects"], 2) for s in scenes)
        views = stats["constraint_counts"]["views"]
        assert (views["qrr"], views["trr"]) == (4 * qrr, 4 * trr)
        assert sum(stats["world_qrr_comparators"].values()) == qrr
        assert sum(stats["world_qrr_difficulty"].values()) == qrr
        assert list(stats["world_qrr_difficulty"]) == ["1", "2", "3", "4", "5", "6"]


def test_statistics_from_the_files(merged):
    """Comparator distribution from the centroids, mean visible fraction from the masks."""
    out, document, info = merged
    scenes = [s for s in complete(document) if s["split"] == "train"]
    comparators = Counter()
    fractions = []
    for s in scenes:
        record = layout.read_json(out / f"metadata/{s['scene_id']}.json")
        c = [o["centroid"] for o in record["objects"]]
        pairs = list(itertools.combinations(range(len(c)), 2))
        for (a, b), (p, q) in itertools.combinations(pairs, 2):
            if {a, b} & {p, q}:
                continue
            m1, m2 = math.dist(c[a], c[b]), math.dist(c[p], c[q])
            if abs(m1 - m2) <= s["tau"] * max(m1, m2):
                comparators["~="] += 1
            else:
                comparators["<" if m1 < m2 else ">"] += 1
        for k, view in enumerate(record["views"]):
            mask = png.read_png16(out / f"masks/{s['scene_id']}/view_{k}.png")
            for i, obj in enumerate(view["objects"]):
                fractions.append(int((mask == i + 1).sum()) / obj["silhouette_pixels"])
    stats = info["statistics"]["train"]
    assert stats["world_qrr_comparators"] == {c: comparators[c] for c in ("<", "~=", ">")}
    assert stats["mean_visible_fraction"] == pytest.approx(sum(fractions) / len(fractions),
                                                           rel=1e-5)


def test_merge_is_deterministic_and_atomic(merged, tmp_path):
    out, _, first = merged
    copy = tmp_path / "data"
    shutil.copytree(out, copy)
    again = merge.merge(copy)
    assert {k: v for k, v in again.items() if k != "created"} == {
        k: v for k, v in first.items() if k != "created"}
    for split in COUNTS:
        rel = f"splits/{split}.json"
        assert (copy / rel).read_bytes() == (out / rel).read_bytes()
    leftovers = [p.name for p in [*copy.iterdir(), *(copy / "splits").iterdir()]
                 if p.name.startswith(".") and p.name != ".scenegen"]
    assert leftovers == []


def test_unfinished_scenes_are_listed_as_failed(merged, tmp_path):
    """No metadata (not in failures.json), or metadata with a file gone: listed, not split."""
    out, _, _ = merged
    copy = tmp_path / "data"
    shutil.copytree(out, copy)
    (copy / "metadata/val_00000.json").unlink()
    (copy / "masks/train_00001/view_2.png").unlink()
    info = merge.merge(copy)
    assert info["failed"] == [
        {"scene_id": "train_00001", "reason": "missing files: masks/train_00001/view_2.png"},
        {"scene_id": "val_00000", "reason": "not rendered"},
        {"scene_id": "test_hard_00001", "reason": "sampling: 100 retries"},
    ]
    assert info["splits"]["train"] == 2 and info["splits"]["val"] == 0
    assert [e["scene_id"] for e in fake_dataset.read(copy / "splits/train.json")] == [
        "train_00000", "train_00002"]
    assert fake_dataset.read(copy / "splits/val.json") == []
    assert info["statistics"]["val"]["mean_visible_fraction"] is None


def test_missing_plan(tmp_path):
    with pytest.raises(plan.PlanError, match=r"\.scenegen/plan\.json: cannot be read"):
        merge.merge(tmp_path)


HOSTILE = "../../../x/val_00001"
_OPENED: list | None = None  # paths the process opens, written, removed or listed while set


_PATH_ARGS = {"open": 1, "os.remove": 1, "os.mkdir": 1, "os.scandir": 1, "os.listdir": 1,
              "os.rename": 2, "os.replace": 2, "os.link": 2}  # event -> its leading paths


def _audit(event: str, args) -> None:
    if _OPENED is not None and event in _PATH_ARGS:
        paths = args[:_PATH_ARGS[event]]
        _OPENED.extend(a for a in paths if isinstance(a, (str, bytes, os.PathLike)))


sys.addaudithook(_audit)


def touched_during(call) -> list[Path]:
    """Every path `call` opens, renames, removes, creates or lists (the audit events)."""
    global _OPENED
    _OPENED = []
    try:
        call()
    finally:
        opened, _OPENED = _OPENED, None
    return [Path(os.fsdecode(p)).resolve() for p in opened]


def test_the_merge_makes_no_path_from_metadata_split_or_failure_files(merged, tmp_path):
    out, document, _ = merged
    copy = tmp_path / "a" / "b" / "data"
    shutil.copytree(out, copy)
    secret = tmp_path / "x" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(b"secret")
    record_path = copy / "metadata" / "train_00000.json"
    record = layout.read_json(record_path)
    record["scene_id"] = HOSTILE
    record["single_view"]["image"] = "../../../x/secret.png"
    for view in record["views"]:
        view["image"] = view["mask"] = "../../../x/secret.png"
    layout.write_json(record_path, record)
    layout.write_json(copy / "splits" / "train.json", [
        {"scene_id": HOSTILE, "metadata": "../../../x/secret.png"}])
    layout.write_json(copy / ".scenegen" / "failures.json", [
        {"scene_id": HOSTILE, "reason": "../../../x/secret.png"}])
    touched = touched_during(lambda: merge.merge(copy))
    assert touched and all(p.is_relative_to(copy) for p in touched), [
        str(p) for p in touched if not p.is_relative_to(copy)]
    assert sorted(os.listdir(tmp_path)) == ["a", "x"] and secret.read_bytes() == b"secret"
    expected = [s["scene_id"] for s in complete(document) if s["split"] == "train"]
    entries = fake_dataset.read(copy / "splits" / "train.json")
    assert [e["scene_id"] for e in entries] == expected
    assert entries[0]["metadata"] == "metadata/train_00000.json"
    info = fake_dataset.read(copy / "dataset_info.json")
    assert info["failed"] == [{"scene_id": "test_hard_00001", "reason": "not rendered"}]


def test_the_merge_refuses_a_plan_with_a_path_for_a_scene_id(merged, tmp_path):
    out, _, _ = merged
    copy = tmp_path / "a" / "b" / "data"
    shutil.copytree(out, copy)
    document = layout.read_json(layout.plan_file(copy))
    document["scenes"][0]["scene_id"] = HOSTILE
    layout.write_json(layout.plan_file(copy), document)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with pytest.raises(plan.PlanError, match=re.escape(f"scene id {HOSTILE!r} is not of")):
        merge.merge(copy)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["a"]


def test_merge_operator(merged, tmp_path, addon, empty_file):
    import bpy

    out, _, first = merged
    copy = tmp_path / "data"
    shutil.copytree(out, copy)
    for split in COUNTS:
        (copy / "splits" / f"{split}.json").unlink()
    (copy / "dataset_info.json").unlink()
    assert bpy.ops.scenegen.merge(output=str(copy)) == {"FINISHED"}
    assert fake_dataset.read(copy / "dataset_info.json")["splits"] == first["splits"]
    with pytest.raises(RuntimeError, match="merge of .* failed"):
        bpy.ops.scenegen.merge(output=str(tmp_path / "nowhere"))
