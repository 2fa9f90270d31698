"""The loader (dataset.loader) on a hand-made dataset: every field against the files it reads.

Expected values come from the raw JSON files and from the fake dataset's own inputs (its
painted masks and flat image colour), never from the loader itself.
"""

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest
from scenegen_addon.core import camera, layout, merge
from scenegen_addon.dataset.loader import CONSTRAINT_TYPES, NotMerged, Unreadable, open_dataset

from tests import audit, fake_dataset

COUNTS = {"train": 2, "test_comp": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "data"
    document = fake_dataset.make_output(out, COUNTS)
    merge.merge(out)
    return out, document


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_splits_hold_the_split_files_scenes_in_order(data):
    out, document = data
    ds = open_dataset(out)
    assert list(ds) == ["train", "test_comp"]  # FORMAT 2.1 order, only the splits written
    for split in ds:
        entries = read(out / "splits" / f"{split}.json")
        assert ds[split].scene_ids == [e["scene_id"] for e in entries]
        assert len(ds[split]) == len(entries)
        assert [s.scene_id for s in ds[split]] == [e["scene_id"] for e in entries]
    assert ds["train"]["train_00001"].scene_id == "train_00001"
    assert [s.scene_id for s in ds.scenes()] == [s["scene_id"] for s in document["scenes"]]
    with pytest.raises(KeyError, match="val"):
        ds["val"]
    with pytest.raises(KeyError, match="train_00009"):
        ds["train"]["train_00009"]


def test_scene_objects_and_views_equal_the_record(data):
    out, _ = data
    for scene in open_dataset(out).scenes():
        record = read(out / "metadata" / f"{scene.scene_id}.json")
        for key in ("scene_id", "split", "index", "seed", "tau", "n_objects"):
            assert getattr(scene, key) == record[key]
        assert scene.image_size == tuple(record["image_size"])
        assert len(scene.objects) == record["n_objects"]
        for k, (obj, raw) in enumerate(zip(scene.objects, record["objects"], strict=True)):
            assert obj.index == k and obj.id == raw["id"] == f"obj_{k}"
            assert obj.coords_3d == tuple(raw["3d_coords"])
            assert obj.centroid == tuple(raw["centroid"])
            for key in ("shape", "size", "size_value", "color", "material", "rotation"):
                assert getattr(obj, key) == raw[key]
            assert obj.rgb == tuple(raw["rgb"])
        for view, raw in zip(scene.views, record["views"], strict=True):
            assert view.view_id == raw["view_id"]
            assert (view.image_path, view.mask_path) == (raw["image"], raw["mask"])
            assert {k: list(v) for k, v in view.directions.items()} == raw["directions"]
            assert [dataclasses.asdict(o) for o in view.objects] == [
                {**o, "pixel_coords": tuple(o["pixel_coords"]),
                 "bbox": None if o["bbox"] is None else tuple(o["bbox"])}
                for o in raw["objects"]]


def test_cameras_follow_opencv(data):
    out, _ = data
    scene = open_dataset(out)["train"][0]
    width, height = scene.image_size
    for view, rig in zip(scene.views, camera.rig(width, height), strict=True):
        cam = view.camera
        record = read(out / "metadata" / f"{scene.scene_id}.json")["views"][view.index]["camera"]
        for key in ("K", "R", "t", "position", "look_at", "matrix_world"):
            assert np.array_equal(getattr(cam, key), np.array(record[key]))
        assert cam.resolution == (width, height)
        # OpenCV: the optical centre maps to 0, the look-at point lies straight ahead (+z)
        # and projects to the image centre
        assert np.allclose(cam.R @ cam.position + cam.t, 0, atol=1e-12)
        ahead = cam.R @ cam.look_at + cam.t
        assert ahead[2] == pytest.approx(camera.DISTANCE) and np.allclose(ahead[:2], 0)
        assert np.allclose(cam.project([cam.look_at])[0], [width / 2, height / 2, 12.0])
        # the world's +Z (up) points to smaller v (image up)
        assert cam.project([[0, 0, 1]])[0, 1] < height / 2
        # projecting the centroids gives the stored pixel coordinates
        uvd = cam.project([o.centroid for o in scene.objects])
        assert np.allclose(uvd, [o.pixel_coords for o in view.objects], rtol=0, atol=1e-9)
        assert np.allclose(uvd, rig.project([o.centroid for o in scene.objects]), atol=1e-9)


def test_images_and_masks_decode_lazily_to_the_painted_arrays(data):
    out, document = data
    views = camera.rig(*fake_dataset.RESOLUTION)
    entries = {e["scene_id"]: e for e in document["scenes"]}
    for scene in open_dataset(out).scenes():
        spec, masks = fake_dataset.make_scene(entries[scene.scene_id], views)
        for view, painted in zip(scene.views, masks, strict=True):
            assert view.mask.dtype == np.uint16 and np.array_equal(view.mask, painted)
            assert view.image.shape == (views[0].height, views[0].width, 3)
            assert view.image.dtype == np.uint8
            assert np.array_equal(view.image, fake_dataset.paint_image(spec, painted))
        assert np.array_equal(scene.single_view_image, scene.views[0].image)
    # nothing is decoded before it is asked for: a scene opens without its pictures
    scene = open_dataset(out)["train"][1]
    (out / scene.views[3].mask_path).rename(out / "moved.png")
    try:
        reopened = open_dataset(out)["train"][1]
        assert reopened.views[2].mask.shape == (views[0].height, views[0].width)
        with pytest.raises(Unreadable, match=f"view_3 mask: '{scene.views[3].mask_path}': "
                                              "missing"):
            _ = reopened.views[3].mask
    finally:
        (out / "moved.png").rename(out / scene.views[3].mask_path)


def test_constraints_are_typed_records_of_the_metadata(data):
    out, _ = data
    scene = open_dataset(out)["test_comp"][0]
    record = read(out / "metadata" / f"{scene.scene_id}.json")["constraints"]
    raw_by_context = {"world": record["world"], **{v["view_id"]: v for v in record["views"]}}
    total = 0
    for context, raw in raw_by_context.items():
        for kind in CONSTRAINT_TYPES:
            typed = scene.constraints(type=kind, context=context)
            expected = raw.get(kind, [])
            assert all(c.type == kind and c.context == context for c in typed)
            as_json = [{k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(c).items() if k != "context"}
                       for c in typed]
            assert as_json == expected
            total += len(typed)
    assert len(scene.constraints()) == total
    assert [c.type for c in scene.constraints()][:1] == ["qrr"]  # world first, record order
    # several types and contexts at once, in record order
    both = scene.constraints(type=("axial", "size"), context=["view_1", "world"])
    assert both == (scene.constraints("size", "world") + scene.constraints("axial", "view_1")
                    + scene.constraints("size", "view_1"))
    qrr = scene.constraints("qrr", "view_2")[0]
    assert qrr.objects == (*qrr.pair1, *qrr.pair2)
    with pytest.raises(ValueError, match="unknown constraint type 'left'.*qrr, trr"):
        scene.constraints(type="left")
    with pytest.raises(ValueError, match="unknown context 'view_4'.*world, view_0"):
        scene.constraints(context="view_4")


def test_a_folder_without_splits_is_refused(tmp_path):
    with pytest.raises(NotMerged, match="is not a merged scenegen dataset: it has no "
                                        "dataset_info.json"):
        open_dataset(tmp_path)


# --- nothing outside the dataset is read -----------------------------------------------------

def hostile_copy(data, tmp_path):
    """A copy of the dataset beside a secret, whose files lead to it in four ways: a split
    entry '../secret/rec.json', an absolute image path and a '../' mask path in a record,
    and a record that is a link to one outside."""
    out, secret = tmp_path / "data", tmp_path / "secret"
    shutil.copytree(data, out)
    secret.mkdir()
    shutil.copy(out / "metadata" / "train_00000.json", secret / "rec.json")
    shutil.copy(out / "images" / "single_view" / "train_00000.png", secret / "image.png")
    split = out / "splits" / "train.json"
    entries = read(split)
    entries[0]["metadata"] = "../secret/rec.json"
    split.write_text(json.dumps(entries))
    record = read(out / "metadata" / "train_00001.json")
    record["views"][1]["image"] = str(secret / "image.png")
    record["views"][2]["mask"] = "masks/../../secret/image.png"
    (out / "metadata" / "train_00001.json").write_text(json.dumps(record))
    (out / "metadata" / "test_comp_00000.json").unlink()
    (out / "metadata" / "test_comp_00000.json").symlink_to(secret / "rec.json")
    return out


def test_paths_from_split_files_and_records_never_leave_the_dataset(data, tmp_path):
    out = hostile_copy(data[0], tmp_path)
    with audit.opened() as opened:
        dataset = open_dataset(out)
        with pytest.raises(Unreadable, match=r"^splits/train.json entry 0 metadata: "
                                             r"'../secret/rec.json': has an empty, '.' or"):
            dataset["train"][0]
        scene = dataset["train"][1]
        with pytest.raises(Unreadable, match=r"^view_1 image: '/.*': is an "
                                             "absolute path"):
            _ = scene.views[1].image
        with pytest.raises(Unreadable, match=r"^view_2 mask: 'masks/../../secret/image.png'"):
            _ = scene.views[2].mask
        assert scene.views[0].image.shape == (160, 240, 3)  # the rest reads as before
        with pytest.raises(Unreadable, match="^splits/test_comp.json entry 0 metadata: "
                                             "'metadata/test_comp_00000.json': is reached "
                                             r"through a symbolic link \(not followed\)"):
            dataset["test_comp"][0]
    assert any(p.startswith(str(out.resolve())) for p in opened)
    assert audit.outside(opened, out, tmp_path) == []


@pytest.mark.parametrize("edit, fault", [
    (lambda r: r["objects"][0].update({"3d_coords": [float("nan"), 0.0, 0.0]}),
     "NaN is not a JSON number"),
    (lambda r: r.update(image_size=[10**9, 10**9]),
     "resolution must be two integers WxH of 4..65536"),
    (lambda r: r.update(image_size=[20000, 15000]), "makes images of 900000000 bytes"),
    (lambda r: r["views"][0].update(camera="front"), "not a scene record as FORMAT 6"),
    (lambda r: r["views"][0]["camera"]["K"][0].__setitem__(0, 10**400), "OverflowError"),
])
def test_a_corrupt_record_is_unreadable_naming_it(data, tmp_path, edit, fault):
    out = tmp_path / "data"
    shutil.copytree(data[0], out)
    path = out / "metadata" / "train_00001.json"
    record = read(path)
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(Unreadable, match=f"metadata/train_00001.json.*{re.escape(fault)}"):
        open_dataset(out)["train"][1]
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(Unreadable, match="metadata/train_00001.json': JSON nested too deeply"):
        open_dataset(out)["train"][1]


def test_a_folder_whose_merge_is_missing_or_pending_is_not_merged(data, tmp_path):
    """The issue's half-resumed folder (an empty splits/, no dataset_info.json) opened as a
    dataset of no scenes; now it, and one whose rerun has not merged yet, are refused."""
    out = tmp_path / "data"
    shutil.copytree(data[0], out)
    layout.mark_merge_pending(out)
    with pytest.raises(NotMerged, match="merge pending: a build began changing its scenes"):
        open_dataset(out)
    layout.merge_pending_file(out).unlink()
    (out / "splits" / "test_comp.json").unlink()
    with pytest.raises(Unreadable, match="^dataset_info.json lists split test_comp: "
                                         "'splits/test_comp.json': missing"):
        open_dataset(out)
    for rel in ("splits/train.json", "dataset_info.json"):
        (out / rel).unlink()
    with pytest.raises(NotMerged, match="it has no dataset_info.json"):
        open_dataset(out)
