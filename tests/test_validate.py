"""The validator: a sound dataset passes; each corruption is caught and named by its file.

The dataset is a small output folder built without Blender (tests/fake_dataset.py) and
merged; each test corrupts its own copy. One test validates a real Cycles render.
"""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scenegen_addon.core import dataset, records, validation

from headless import validate
from tests import fake_dataset

COUNTS = {"train": 2, "val": 1, "test_iid": 1, "test_comp": 1, "test_hard": 1}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine") / "data"
    fake_dataset.make_output(out, COUNTS)
    dataset.merge(out)
    return out


@pytest.fixture
def data(pristine, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(pristine, out)
    return out


def run(out, capsys, *extra):
    code = validate.main([str(out), "--jobs", "1", *extra])
    return code, capsys.readouterr().out


def test_sound_dataset_passes(data, capsys):
    code, text = run(data, capsys)
    assert code == 0, text
    assert text.splitlines()[-1].startswith("OK: 6 scenes checked, labels recomputed for 6;")


def test_deleted_image(data, capsys):
    (data / "images/multi_view/train_00001/view_2.png").unlink()
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT images/multi_view/train_00001/view_2.png: missing" in text


def test_truncated_metadata(data, capsys):
    path = data / "metadata/val_00000.json"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT metadata/val_00000.json: does not parse" in text


@pytest.mark.parametrize("where", ["world qrr", "view axial"])
def test_edited_label(data, capsys, where):
    path = data / "metadata/train_00000.json"
    record = fake_dataset.read(path)
    if where == "world qrr":
        entry, key = record["constraints"]["world"]["qrr"][0], "comparator"
        entry[key] = {"<": ">", ">": "<", "~=": "<"}[entry[key]]
        field = "metadata.constraints.world.qrr[0].comparator"
    else:
        entry, key = record["constraints"]["views"][2]["axial"][1], "relation"
        swap = {"left_of": "right_of", "right_of": "left_of", "in_front_of": "behind",
                "behind": "in_front_of"}
        entry[key] = swap[entry[key]]
        field = "metadata.constraints.views[2].axial[1].relation"
    records.write_json_atomic(path, record)
    code, text = run(data, capsys)
    assert code == 1
    assert f"CORRUPT metadata/train_00000.json: label mismatch: {field}: stored" in text


def test_duplicated_split_entry(data, capsys):
    path = data / "splits/train.json"
    entries = fake_dataset.read(path)
    path.write_text(json.dumps(entries + [entries[0]]))
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT splits/train.json: entry 2: duplicate of scene train_00000" in text


def test_failed_scene_is_incomplete(data, capsys):
    """A scene the launcher gave up on: exit 3, listed with its reason."""
    paths = records.scene_paths("test_hard_00000")
    for rel in [paths["metadata"], paths["image_single"]]:
        (data / rel).unlink()
    shutil.rmtree(data / "images/multi_view/test_hard_00000")
    shutil.rmtree(data / "masks/test_hard_00000")
    records.write_json_atomic(data / ".scenegen/failures.json",
                              [{"scene_id": "test_hard_00000", "reason": "sampling: 100 retries"}])
    dataset.merge(data)
    code, text = run(data, capsys)
    assert code == 3, text
    assert "INCOMPLETE test_hard_00000: sampling: 100 retries" in text
    assert "CORRUPT" not in text


def test_unmerged_missing_scene_is_corruption(data, capsys):
    """The split file lists a scene whose metadata is gone: corrupt, and also incomplete."""
    (data / "metadata/test_iid_00000.json").unlink()
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT splits/test_iid.json: entry 0: scene test_iid_00000 is not complete" in text
    assert "INCOMPLETE test_iid_00000: missing: no metadata file" in text


def test_truncated_image(data, capsys):
    path = data / "images/single_view/test_comp_00000.png"
    path.write_bytes(path.read_bytes()[:-20])
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT images/single_view/test_comp_00000.png: truncated" in text


def test_image_of_the_wrong_size(data, capsys):
    (data / "images/multi_view/val_00000/view_1.png").write_bytes(fake_dataset.rgb_png(120, 80))
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT images/multi_view/val_00000/view_1.png: size 120x80, expected 240x160" in text


def test_edited_mask(data, capsys):
    from scenegen_addon.core import png

    rel = "masks/train_00001/view_3.png"
    mask = png.read_png16(data / rel)
    mask[mask == 1] = 0
    png.write_png16(data / rel, mask)
    code, text = run(data, capsys)
    assert code == 1
    assert f"CORRUPT {rel}: obj_0 has 0 pixels, metadata says visible_pixels" in text


def test_scene_outside_the_plan(data, capsys):
    shutil.copy(data / "metadata/train_00001.json", data / "metadata/train_00002.json")
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT metadata/train_00002.json: scene is not in the plan" in text


def test_schema_violation(data, capsys):
    path = data / "metadata/test_hard_00000.json"
    record = fake_dataset.read(path)
    record["constraints"]["world"]["trr"][3]["hour"] = 13
    records.write_json_atomic(path, record)
    code, text = run(data, capsys)
    assert code == 1
    assert ("CORRUPT metadata/test_hard_00000.json: schema: constraints/world/trr/3/hour: "
            "13 is more than the maximum of 12") in text


def test_sample_recomputes_a_fraction(data, capsys):
    code, text = run(data, capsys, "--sample", "0.5")
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
    assert validation.check_png(path, 4, 3, validation.RGB8) is None
    assert validation.check_png(path, 4, 3, validation.GRAY16).startswith("bit depth 8")
    flipped = bytearray(good)
    flipped[45] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
    path.write_bytes(bytes(flipped))
    assert validation.check_png(path, 4, 3, validation.RGB8) == "bad CRC in chunk IDAT"
    path.write_bytes(b"GIF89a")
    assert validation.check_png(path, 4, 3, validation.RGB8) == "not a PNG file"


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        validate.main([str(tmp_path), "--sample", "2"])
    assert exc.value.code == 2
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


def test_real_render_validates(tmp_path, empty_file):
    """A scene rendered by Cycles (real PNG encoder, real index pass) passes."""
    from scenegen_addon.blender import pipeline, render
    from scenegen_addon.core import launch
    from scenegen_addon.core import spec as spec_mod

    out = tmp_path / "data"
    settings = launch.plan_settings(
        seed=42, size=None, counts={"train": 1}, quality="draft", resolution=(240, 160),
        samples=2, blender_version="5.0.1", numpy_version="1.26.4",
    )
    document = launch.plan_document(settings)
    records.write_json_atomic(out / ".scenegen/plan.json", document)
    entry = document["scenes"][0]
    lights = [spec_mod.LightSpec(n, list(loc), [0.0, 0.0, 0.0], e, s)
              for n, loc, e, s in spec_mod.LIGHTS]
    spec = spec_mod.SceneSpec(entry["scene_id"], "train", 0, entry["seed"], 0, entry["tau"],
                              fake_dataset.layout(entry["n_objects"], 3), lights)
    pipeline.render_scene(spec, out, render.RenderSettings(240, 160, 2, "CPU"))
    dataset.merge(out)
    report = validation.validate(out)
    assert report.exit_code == 0, [str(p) for p in report.corrupt]
    assert (report.scenes_checked, report.labels_checked) == (1, 1)


def test_unreadable_plan(data, capsys):
    (data / ".scenegen/plan.json").write_text("{\"settings\": ")
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT .scenegen/plan.json: unreadable" in text


@pytest.mark.parametrize("width, height, pixels, flagged", [
    (480, 320, 19, True),   # 19 of 100 silhouette pixels: 0.19 < 0.20
    (480, 320, 20, False),  # exactly 0.20
    (96, 64, 0, False),     # below the canonical width quantisation rules: not checked
])
def test_mask_visible_fraction(width, height, pixels, flagged):
    import numpy as np

    mask = np.zeros((height, width), dtype=np.uint16)
    mask.ravel()[:pixels] = 1
    objects = [{"id": "obj_0", "silhouette_pixels": 100, "visible_pixels": pixels,
                "in_frame": True}]
    record = {"n_objects": 1, "views": [{"objects": objects}]}
    problems = [str(p) for p in validation.check_mask(record, 0, mask, "m.png")]
    assert problems == (["m.png: obj_0 visible fraction 0.190 < 0.2"] if flagged else [])


def test_edited_plan_is_unbalanced(data, capsys):
    """Two of train's 2 scenes at one object count: the 7 levels are no longer 0 or 1 each."""
    path = data / ".scenegen/plan.json"
    document = fake_dataset.read(path)
    first, second = document["scenes"][:2]
    assert (first["split"], second["split"]) == ("train", "train")
    original, first["n_objects"] = first["n_objects"], second["n_objects"]
    records.write_json_atomic(path, document)
    code, text = run(data, capsys)
    assert code == 1
    assert "CORRUPT .scenegen/plan.json: scenes differ from the plan of its seed" in text
    assert "CORRUPT .scenegen/plan.json: train object counts" in text
    assert "are not balanced (SPEC 2)" in text
    assert (f"CORRUPT metadata/train_00000.json: n_objects is {original}, planned "
            f"{second['n_objects']}") in text
