"""The scene record of FORMAT 6: structure, schema, float policy, atomic writes."""

import copy
import json
import math
import os

import jsonschema
import numpy as np
import pytest
from scenegen_addon.core import camera, constraints, layout, records

from tests.gt_scenes import grid_spec, paint_mask

RENDER = {
    "engine": "CYCLES",
    "samples": 4,
    "device": "CPU",
    "device_name": "test cpu",
    "blender_version": "5.0.1",
    "seconds": 1.25,
}
VALIDATOR = jsonschema.Draft202012Validator(records.schema())


def inputs(n, width=240, height=160):
    """A grid scene of n objects, its views and painted masks."""
    spec = grid_spec(n)
    views = camera.rig(width, height)
    return spec, views, [paint_mask(spec, view) for view in views]


def build(n, width=240, height=160):
    spec, views, masks = inputs(n, width, height)
    return spec, records.scene_record(spec, views, masks, RENDER)


@pytest.fixture(scope="module")
def record10():
    return build(10)


@pytest.fixture(scope="module")
def record4():
    return build(4)


def test_scene_paths():
    assert layout.scene_paths("train_00003") == {
        "image_single": "images/single_view/train_00003.png",
        "images": [f"images/multi_view/train_00003/view_{k}.png" for k in range(4)],
        "masks": [f"masks/train_00003/view_{k}.png" for k in range(4)],
        "metadata": "metadata/train_00003.json",
    }


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(records.schema())
    assert records.schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("n", [4, 10, 15])
def test_records_validate_against_schema(n):
    # jsonschema needs seconds for a large record: validate once, as a reader sees it
    spec, rec = build(n)
    errors = [e.message for e in VALIDATOR.iter_errors(json.loads(json.dumps(rec)))]
    assert errors == []
    assert rec["n_objects"] == n == len(rec["objects"])
    assert len(rec["constraints"]["world"]["qrr"]) == 3 * math.comb(n, 4)
    assert all(len(v["objects"]) == n for v in rec["views"])


def test_top_level_fields(record10):
    spec, rec = record10
    assert rec["schema_version"] == "1.0"
    assert (rec["scene_id"], rec["split"], rec["index"]) == ("train_00000", "train", 0)
    assert (rec["seed"], rec["retries"], rec["tau"]) == (spec.seed, spec.retries, 0.1)
    assert rec["image_size"] == [240, 160]
    assert rec["render"] == RENDER
    assert [li["name"] for li in rec["lights"]] == ["key", "fill", "back"]
    assert rec["single_view"] == {
        "image": "images/single_view/train_00000.png",
        "view_id": "view_0",
    }
    assert [v["view_id"] for v in rec["views"]] == ["view_0", "view_1", "view_2", "view_3"]
    assert [v["view_id"] for v in rec["constraints"]["views"]] == [
        v["view_id"] for v in rec["views"]
    ]
    assert rec["views"][2]["mask"] == "masks/train_00000/view_2.png"
    assert rec["views"][2]["image"] == "images/multi_view/train_00000/view_2.png"
    assert rec["objects"][3] == spec.objects[3].record()


def test_geometry_full_precision_and_derived_rounded(tmp_path, record10):
    spec, rec = record10
    back = layout.read_json(records.write_scene_record(tmp_path, *inputs(10), RENDER))
    assert [o["centroid"] for o in back["objects"]] == [o.centroid for o in spec.objects]
    view = camera.View(1, 240, 160)
    assert back["views"][1]["camera"]["K"] == view.K.tolist()
    assert back["views"][1]["camera"]["matrix_world"] == view.matrix_world.tolist()
    proj = view.project([o.centroid for o in spec.objects]).tolist()
    assert [o["pixel_coords"] for o in back["views"][1]["objects"]] == proj
    derived = [r["ratio"] for r in back["constraints"]["world"]["qrr"]]
    derived += [r["angle_deg"] for r in back["constraints"]["views"][0]["trr"]]
    derived += [o["visible_fraction"] for v in back["views"] for o in v["objects"]]
    derived += [r["fraction"] for v in back["constraints"]["views"] for r in v["occlusion"]]
    assert all(float(f"{x:.6g}") == x for x in derived)
    assert any(len(repr(x).replace(".", "").lstrip("0")) == 6 for x in derived)


def test_write_is_compact_atomic_and_reads_back(tmp_path, record10):
    _, rec = record10
    timings = {"constraints": 1.0}
    path = records.write_scene_record(tmp_path, *inputs(10), RENDER, timings)
    assert path == tmp_path / "metadata" / "train_00000.json"
    assert os.listdir(tmp_path / "metadata") == ["train_00000.json"]
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(rec, separators=(",", ":"))
    assert "\n" not in text and ", " not in text
    assert layout.read_json(path) == rec
    assert timings["constraints"] > 1.0  # the record's build time was added


def test_a_failure_while_writing_the_record_leaves_no_file(tmp_path, monkeypatch):
    original, calls = constraints.view_constraints, []

    def fail_third(*args):
        calls.append(args[1].view_id)
        if len(calls) == 3:
            raise RuntimeError("labelling crashed")
        return original(*args)

    monkeypatch.setattr(constraints, "view_constraints", fail_third)
    with pytest.raises(RuntimeError, match="labelling crashed"):
        records.write_scene_record(tmp_path, *inputs(4), RENDER)
    assert calls == ["view_0", "view_1", "view_2"]  # two views were already written
    assert os.listdir(tmp_path / "metadata") == []


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    layout.write_json(path, {"a": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(layout.os, "replace", broken_replace)
    with pytest.raises(OSError):
        layout.write_json(path, {"a": 2})
    assert os.listdir(tmp_path) == ["x.json"]
    assert json.loads(path.read_text()) == {"a": 1}


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        layout.write_json(tmp_path / "x.json", {"ratio": bad})
    assert os.listdir(tmp_path) == []


def test_written_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        layout.write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


def test_indented_output_is_optional(tmp_path):
    layout.write_json(tmp_path / "x.json", {"a": [1, 2]}, compact=False)
    assert "\n" in (tmp_path / "x.json").read_text()


def _drop(key):
    def edit(rec):
        del rec[key]

    return edit


def _set(path, value):
    def edit(rec):
        node = rec
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return edit


BROKEN = {
    "missing tau": _drop("tau"),
    "missing bbox": lambda r: r["views"][0]["objects"][0].pop("bbox"),
    "comparator": _set(["constraints", "world", "qrr", 0, "comparator"], "="),
    "world metric": _set(["constraints", "world", "qrr", 0, "metric"], "dist2D"),
    "hour 13": _set(["constraints", "views", 1, "trr", 0, "hour"], 13),
    "hour 0": _set(["constraints", "world", "trr", 0, "hour"], 0),
    "quadrant 0": _set(["constraints", "world", "trr", 0, "quadrant"], 0),
    "quadrant 5": _set(["constraints", "world", "trr", 0, "quadrant"], 5),
    "difficulty 7": _set(["constraints", "world", "qrr", 0, "difficulty"], 7),
    "difficulty 0": _set(["constraints", "views", 0, "qrr", 0, "difficulty"], 0),
    "relation": _set(["constraints", "world", "topology", 0, "relation"], "near"),
    "axial relation": _set(["constraints", "views", 0, "axial", 0, "relation"], "above"),
    "object id": _set(["constraints", "world", "closer", 0, "anchor"], "obj_01"),
    "extra field": _set(["objects", 0, "weight"], 1.0),
    "three views": lambda r: r["views"].pop(),
    "split": _set(["split"], "training"),
    "color": _set(["objects", 1, "color"], "pink"),
    "schema version": _set(["schema_version"], "2.0"),
    "bbox length": _set(["views", 0, "objects", 0, "bbox"], [1, 2, 3]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_record_fails_schema(record4, name):
    rec = copy.deepcopy(record4[1])
    assert not list(VALIDATOR.iter_errors(rec))
    BROKEN[name](rec)
    assert list(VALIDATOR.iter_errors(rec)), name


def test_bad_arguments_raise():
    spec = grid_spec(4)
    views = camera.rig(96, 64)
    masks = [np.zeros((64, 96), np.uint16)] * 4
    with pytest.raises(ValueError, match="render"):
        records.scene_record(spec, views, masks, {"engine": "CYCLES"})
    with pytest.raises(ValueError, match="masks"):
        records.scene_record(spec, views, masks[:3], RENDER)
