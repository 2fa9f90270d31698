"""The exports (headless/export.py): Hugging Face Parquet read back with the real `datasets`
package, VLMEvalKit TSV read back the way VLMEvalKit reads it (pandas), each field compared
with the loader; byte-identical repeats; the output-folder rule; depth maps in the Parquet
export of a real build with --passes depth."""

import ast
import base64
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import yaml
from scenegen_addon.core import depth, files, layout, merge, png
from scenegen_addon.dataset import questions
from scenegen_addon.dataset.exports import cli, hf, verify
from scenegen_addon.dataset.loader import open_dataset

from tests import audit, fake_dataset

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"train": 2, "test_comp": 1}
OPTIONS = ["--per-type", "2", "--per-type", "view_occlusion=3", "--seed", "5"]
PER_TYPE = {**dict.fromkeys(questions.CATEGORIES, 2), "view_occlusion": 3}
# a real build with depth maps: one tiny scene per split, on the CPU (about 5 s)
DEPTH_BUILD = ["--scenes-per-split", "1", "--quality", "draft", "--resolution", "96x64",
               "--samples", "2", "--seed", "47", "--n-gpus", "0", "--passes", "depth"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "data"
    fake_dataset.make_output(out, COUNTS)
    merge.merge(out)
    return out


@pytest.fixture(scope="module")
def expected(data):
    dataset = open_dataset(data)
    return dataset, questions.generate(dataset, per_type=PER_TYPE, seed=5)


def export(data, out, fmt, *extra) -> int:
    return cli.main([str(data), "--format", fmt, "--out", str(out), *OPTIONS, *extra])


@pytest.fixture(scope="module")
def hf_out(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "out"
    assert export(data, out, "hf", "--jobs", "2") == 0
    return out


@pytest.fixture(scope="module")
def tsv_out(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tsv") / "out"
    assert export(data, out, "vlmevalkit", "--jobs", "2") == 0
    return out


def plain(constraint) -> dict:
    """A typed constraint as its JSON record (tuples as lists, without its context)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(constraint).items() if k != "context"}


def check_scene_row(row: dict, scene) -> None:
    """Every column of a `scenes` row against the loader's scene; depth_k only when the
    dataset has depth maps, each decoded as the stored 16-bit array."""
    has_depth = scene.views[0].depth_path is not None
    assert set(row) == set(hf.scene_features(has_depth))
    # every part of the record has its column: views -> cameras, view_objects, view_k, mask_k
    covered = {"views", "single_view", "constraints"}
    assert set(scene.record) - covered <= set(row)
    assert row["schema_version"] == scene.record["schema_version"]
    for key in ("scene_id", "split", "index", "seed", "tau", "n_objects"):
        assert row[key] == getattr(scene, key)
    assert row["retries"] == scene.record["retries"]
    assert tuple(row["image_size"]) == scene.image_size
    assert np.array_equal(np.array(row["single_view"]), scene.single_view_image)
    for k, view in enumerate(scene.views):
        assert np.array_equal(np.array(row[f"view_{k}"]), view.image)
        mask = np.array(row[f"mask_{k}"])
        assert mask.dtype == np.uint16 and np.array_equal(mask, view.mask)
        if has_depth:
            image = row[f"depth_{k}"]
            assert image.mode == "I;16"  # PIL reads 16-bit gray, not clipped to 8 bits
            mm = np.array(image)
            stored = png.read_png16(scene.root / view.depth_path)
            assert mm.dtype == stored.dtype == np.uint16 and np.array_equal(mm, stored)
            assert mm.max() > 255  # millimetres: objects and ground stand metres away
            np.testing.assert_array_equal(depth.metres(mm), view.depth)  # nan = nan
        cam, got = view.camera, row["cameras"][k]
        assert got["view_id"] == view.view_id
        for key in ("K", "R", "t", "position", "look_at", "matrix_world"):
            assert np.array_equal(np.array(got[key]), getattr(cam, key))
        for key in ("azimuth", "elevation", "distance", "lens_mm", "sensor_width_mm",
                    "hfov_deg"):
            assert got[key] == getattr(cam, key)
        assert tuple(got["resolution"]) == cam.resolution
        assert {d: tuple(v) for d, v in got["directions"].items()} == view.directions
        assert row["view_objects"][k] == [
            {**dataclasses.asdict(o), "pixel_coords": list(o.pixel_coords),
             "bbox": None if o.bbox is None else list(o.bbox)} for o in view.objects]
        views = row["constraints_views"][k]
        assert views["view_id"] == view.view_id
        for kind in ("qrr", "trr", "axial", "occlusion", "size"):
            assert views[kind] == [plain(c) for c in scene.constraints(kind, view.view_id)]
    assert row["objects"] == [
        {"id": o.id, "shape": o.shape, "size": o.size, "size_value": o.size_value,
         "color": o.color, "rgb": list(o.rgb), "material": o.material,
         "3d_coords": list(o.coords_3d), "centroid": list(o.centroid), "rotation": o.rotation}
        for o in scene.objects]
    for kind in ("qrr", "trr", "topology", "size", "closer"):
        assert row["constraints_world"][kind] == [plain(c) for c in scene.constraints(kind,
                                                                                      "world")]
    assert row["lights"] == scene.record["lights"]
    assert row["render"] == scene.record["render"]


def check_question_row(row: dict, q, multiview: bool = False) -> None:
    """A questions (or questions_multiview) row against the Question it was made from."""
    for key in ("index", "question_id", "split", "scene_id", "n_objects", "category", "context",
                "constraint", "label", "answer", "difficulty", "boundary_flag",
                "answer_index", "wording"):
        assert row[key] == getattr(q, key), key
    assert row["objects"] == list(q.objects)  # a typed list, not JSON text
    names = q.multiview_descriptions if multiview else q.descriptions
    assert row["descriptions"] == list(names) and len(names) == len(q.objects)
    assert row["question"] == (q.multiview_question if multiview else q.question)
    assert row["options"] == list(q.options)
    assert row["option_labels"] == list(q.option_labels)
    assert row["option_labels"][row["answer_index"]] == row["label"]
    assert "ABCD"[row["answer_index"]] == row["answer"]
    assert row["margins"] == []
    if not multiview:
        assert (row["open_question"], row["answer_text"], row["answer_choices"]) == (
            q.open_question, q.answer_text, list(q.answer_choices))


def picture(scene, q) -> np.ndarray:
    return (scene.single_view_image if q.context == "world"
            else scene.views[int(q.context[5:])].image)


def test_parquet_shards_load_with_datasets_and_equal_the_loader(hf_out, expected, tmp_path):
    dataset, _ = expected
    files = {split: sorted(str(p) for p in (hf_out / "data" / "scenes").glob(f"{split}-*"))
             for split in dataset}
    assert {s: [Path(f).name for f in fs] for s, fs in files.items()} == {
        s: [f"{s}-00000-of-00001.parquet"] for s in COUNTS}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path))
    assert list(loaded) == list(dataset)
    for split in dataset:
        assert loaded[split].num_rows == len(dataset[split])
        assert not [c for c in loaded[split].column_names if c.startswith("depth")]
        for row, scene in zip(loaded[split], dataset[split], strict=True):
            check_scene_row(row, scene)


def test_questions_config_through_the_card(hf_out, expected, tmp_path):
    dataset, question_set = expected
    loaded = datasets.load_dataset(str(hf_out), "questions", cache_dir=str(tmp_path))
    assert list(loaded) == list(question_set.questions)
    for split, qs in question_set.questions.items():
        assert loaded[split].num_rows == len(qs) > 0
        for row, q in zip(loaded[split], qs, strict=True):
            check_question_row(row, q)
            assert row["image_path"] == q.image
            assert np.array_equal(np.array(row["image"]), picture(dataset[split][q.scene_id], q))
        multi = datasets.load_dataset(str(hf_out), "questions_multiview", split=split,
                                      cache_dir=str(tmp_path / "multi"))
        world = [q for q in qs if q.context == "world"]
        assert multi.num_rows == len(world) > 0
        for row, q in zip(multi, world, strict=True):
            check_question_row(row, q, multiview=True)
            scene = dataset[split][q.scene_id]
            assert row["image_paths"] == [v.image_path for v in scene.views]
            for image, view in zip(row["images"], scene.views, strict=True):
                assert np.array_equal(np.array(image), view.image)
    # the default config of the card is the scenes
    scenes = datasets.load_dataset(str(hf_out), cache_dir=str(tmp_path / "default"))
    assert scenes["train"]["scene_id"] == dataset["train"].scene_ids


def test_card_header(hf_out, expected):
    dataset, question_set = expected
    text = (hf_out / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert [c["config_name"] for c in header["configs"]] == [
        "scenes", "questions", "questions_multiview", "extraction"]
    assert header["configs"][0]["default"] is True
    for config in header["configs"]:
        assert config["data_files"] == [
            {"split": s, "path": f"data/{config['config_name']}/{s}-*.parquet"} for s in COUNTS]
    infos = {i["config_name"]: i for i in header["dataset_info"]}
    features = {"scenes": hf.scene_features(False), **hf.QUESTION_CONFIGS,
                "extraction": hf.EXTRACTION_FEATURES}
    for name, info in infos.items():
        assert [f["name"] for f in info["features"]] == list(features[name])
    assert {s["name"]: s["num_examples"] for s in infos["scenes"]["splits"]} == COUNTS
    assert {s["name"]: s["num_examples"] for s in infos["questions"]["splits"]} == {
        s: len(qs) for s, qs in question_set.questions.items()}
    assert "OpenCV" in text
    assert "[FORMAT.md](FORMAT.md)" in text and (hf_out / "FORMAT.md").is_file()
    for words in ("Splits: `train`, `test_comp`", "datasets` 2.14 or later",
                  'load_dataset("path/to/this/folder", "questions", split="train")',
                  "## Blind baseline", "| test_comp | world_qrr | ", "0.8 T < |a - b| < 1.2 T",
                  "2% of the image width", "at least 5 degrees from the edge"):
        assert words in text, words
    assert "depth_0" not in text  # no depth maps, no word of them


def test_shards_split_by_size(data, expected, tmp_path):
    dataset, question_set = expected
    checked = verify.check(dataset, list(question_set.questions), jobs=1)[2]
    hf.export(dataset, checked, tmp_path, question_set, shard_bytes=1)  # one scene per shard
    names = sorted(p.name for p in (tmp_path / "data" / "scenes").iterdir())
    assert names == ["test_comp-00000-of-00001.parquet", "train-00000-of-00002.parquet",
                     "train-00001-of-00002.parquet"]
    loaded = datasets.load_dataset(
        "parquet", data_files=[str(tmp_path / "data" / "scenes" / n) for n in names[1:]],
        cache_dir=str(tmp_path / "cache"))
    assert loaded["train"]["scene_id"] == dataset["train"].scene_ids


def read_like_vlmevalkit(path: Path):
    """pandas as VLMEvalKit reads a TSV, with its image-reference rule applied."""
    table = pd.read_csv(path, sep="\t")
    images = {str(i): str(x) for i, x in zip(table["index"], table["image"], strict=True)}
    for value in images.values():
        if len(value) <= 64:
            assert len(images[value]) > 64
    table["image"] = [images[v] if len(v) <= 64 else v for v in map(str, table["image"])]
    exact = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return table, exact


def decoded(text: str, tmp_path: Path) -> tuple[bytes, np.ndarray]:
    blob = base64.b64decode(text)
    file = tmp_path / "decoded.png"
    file.write_bytes(blob)
    return blob, png.read_png(file)


def test_tsv_round_trip(tsv_out, expected, tmp_path):
    dataset, question_set = expected
    assert sorted(p.name for p in tsv_out.iterdir()) == sorted(
        [f"scenegen_{s}{c}.tsv" for s in COUNTS
         for c in ("", "_circular", "_multiview", "_open", "_extraction")]
        + ["blind_baseline.json", "FORMAT.md", "format_cameras_clock.svg"])
    for split, qs in question_set.questions.items():
        table, exact = read_like_vlmevalkit(tsv_out / f"scenegen_{split}.tsv")
        assert list(table["index"]) == list(range(1, len(qs) + 1))
        for (_, row), (_, text), q in zip(table.iterrows(), exact.iterrows(), qs, strict=True):
            options = [row[c] for c in "ABCD" if c in row and not pd.isna(row[c])]
            assert options == list(q.options)
            low = [o.lower() for o in options]  # VLMEvalKit matches option texts
            assert not [a for a in low for b in low if a != b and a in b]
            assert json.loads(text["descriptions"]) == list(q.descriptions)
            assert int(text["n_objects"]) == dataset[split][q.scene_id].n_objects
            blob = (dataset.root / q.image).read_bytes()
            assert text["image_path"] == (f"{hashlib.sha256(blob).hexdigest()[:16]}_"
                                          + "_".join(Path(q.image).parts[-2:]))
            assert (row["question"], row["answer"], row["category"], row["split"]) == (
                q.question, q.answer, q.category, split)
            assert (text["question_id"], text["scene_id"], text["context"], text["constraint"],
                    text["label"]) == (q.question_id, q.scene_id, q.context, q.constraint,
                                       q.label)
            assert json.loads(text["objects"]) == list(q.objects)
            labels = json.loads(text["option_labels"])
            assert labels == list(q.option_labels) and labels["ABCD".index(q.answer)] == q.label
            assert text["difficulty"] == ("" if q.difficulty is None else str(q.difficulty))
            blob, image = decoded(row["image"], tmp_path)
            assert blob == (dataset.root / q.image).read_bytes()
            assert np.array_equal(image, picture(dataset[split][q.scene_id], q))


def test_multiview_and_open_tsv(tsv_out, expected, tmp_path):
    """Multi-view rows: the four views as a list VLMEvalKit's toliststr reads (Python list
    syntax), named by their SHA-256; open rows: the prompt with its grammar, the answer
    text; both keep the question's index."""
    dataset, question_set = expected
    for split, qs in question_set.questions.items():
        table, exact = read_like_vlmevalkit(tsv_out / f"scenegen_{split}_multiview.tsv")
        world = [q for q in qs if q.context == "world"]
        assert list(table["index"]) == [q.index for q in world]
        for (_, row), (_, text), q in zip(table.iterrows(), exact.iterrows(), world,
                                          strict=True):
            assert row["question"] == q.multiview_question
            images = ast.literal_eval(row["image"])
            names = ast.literal_eval(text["image_path"])
            scene = dataset[split][q.scene_id]
            assert len(images) == len(names) == 4
            for b64, name, view in zip(images, names, scene.views, strict=True):
                blob, image = decoded(b64, tmp_path)
                assert np.array_equal(image, view.image)
                assert name.startswith(hashlib.sha256(blob).hexdigest()[:16] + "_")
            assert json.loads(text["descriptions"]) == list(q.multiview_descriptions)
        table, exact = read_like_vlmevalkit(tsv_out / f"scenegen_{split}_open.tsv")
        assert list(table["index"]) == [q.index for q in qs]
        assert "A" not in table.columns
        for (_, text), q in zip(exact.iterrows(), qs, strict=True):
            assert (text["question"], text["answer"]) == (q.open_question, q.answer_text)
            assert json.loads(text["answer_choices"]) == list(q.answer_choices)


def test_circular_tsv_rotates_every_question(tsv_out, expected):
    _, question_set = expected
    for split, qs in question_set.questions.items():
        table, exact = read_like_vlmevalkit(tsv_out / f"scenegen_{split}_circular.tsv")
        assert len(table) == sum(len(q.options) for q in qs)
        assert list(exact["g_index"].astype(int)) == [int(x) % 1_000_000
                                                      for x in exact["index"]]
        assert 1_000_000 not in set(exact["index"].astype(int))
        for q in qs:
            i = q.index
            rows = exact[[int(x) % 1_000_000 == i for x in exact["index"]]]
            k = len(q.options)
            assert sorted(int(x) // 1_000_000 for x in rows["index"]) == list(range(k))
            for _, row in rows.iterrows():
                r = int(row["index"]) // 1_000_000
                options = [row[c] for c in "ABCD"[:k]]
                assert options == [q.options[(p + r) % k] for p in range(k)]
                assert all(row[c] == "" for c in "ABCD"[k:])
                labels = json.loads(row["option_labels"])
                assert labels["ABCD".index(row["answer"])] == q.label == row["label"]
                assert row["question"] == q.question


def test_exports_are_byte_identical(data, hf_out, tsv_out, tmp_path):
    """Again, with the questions made in this process instead of on two."""
    for fmt, first in (("hf", hf_out), ("vlmevalkit", tsv_out)):
        again = tmp_path / fmt
        assert export(data, again, fmt, "--jobs", "1") == 0
        files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
        for rel in files:
            assert (first / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_report_prints_counts_skips_and_positions(data, expected, tmp_path, capsys):
    _, question_set = expected
    assert export(data, tmp_path / "out", "vlmevalkit") == 0
    printed = capsys.readouterr().out.splitlines()
    for line in question_set.summary():
        assert line in printed
    asked = question_set.asked()
    for cat in questions.CATEGORIES:
        [line] = [x for x in printed if x.startswith(cat + " ")]
        positions = question_set.positions()[cat]
        counts = question_set.counts[cat]
        assert line.split()[1:7] == [str(asked[cat]), str(counts["candidates"])] + [
            str(counts[r]) for r in questions.SKIPS]
        assert line.split()[7:] == [f"{k}:{v}" for k, v in sorted(positions.items())]
    assert "| split | category | questions | chance | constant answer | constant letter " \
        "| naive Bayes (label) | naive Bayes (letter) | verdict |" in printed


def test_output_inside_the_dataset_is_refused(data, tmp_path, capsys):
    before = sorted(p for p in data.rglob("*"))
    link = tmp_path / "link"
    link.symlink_to(data)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    cases = [
        (data / "export", "--out .*inside the dataset folder"),
        (data, "--out .*inside the dataset folder"),
        (link / "export", "--out .*inside the dataset folder"),
        (tmp_path / "full", "--out .*not an empty folder"),
    ]
    for out, message in cases:
        assert export(data, out, "vlmevalkit") == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
    assert sorted(p for p in data.rglob("*")) == before
    assert (tmp_path / "full" / "x").read_text() == "mine"
    for args, message in (
        (["--splits", "val"], "--splits: unknown split 'val': allowed are train, test_comp"),
        (["--per-type", "axial=2"], "--per-type 'axial=2': expected N or CATEGORY=N"),
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["--splits", "train,train"], "--splits: split 'train' given twice: name each at "
                                      "most once"),
        (["--out", str(tmp_path / ("x" * 300))], "--out: a name in it is 300 bytes long"),
    ):
        assert export(data, tmp_path / "new", "vlmevalkit", *args) == 2
        assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "new").exists()


def test_a_split_vlmevalkit_cannot_index_is_refused_before_its_questions(data, tmp_path,
                                                                           capsys):
    """Circular rows are grouped by index % 1,000,000: 2 train scenes x 10 categories x
    50,000 could reach 1,000,000 questions, refused with exit 2 naming the split, the count
    and the way out; test_comp's one scene (500,000 at most) exports."""
    command = [str(data), "--format", "vlmevalkit", "--per-type", "50000", "--out"]
    assert cli.main([*command, str(tmp_path / "all")]) == 2
    err = capsys.readouterr().err
    assert ("split train could get up to 1000000 questions (2 scenes x 500000 per scene)"
            in err)
    assert "--per-type counts summing to at most 499999 per scene" in err
    assert "leave train out with --splits" in err
    assert not (tmp_path / "all").exists()
    assert cli.main([*command, str(tmp_path / "one"), "--splits", "test_comp",
                     "--allow-blind-bias"]) == 0  # 1 scene: too few for the baseline
    assert (tmp_path / "one" / "scenegen_test_comp_circular.tsv").is_file()


def test_entry_point_exit_codes(data, tmp_path):
    script = [sys.executable, str(ROOT / "headless" / "export.py"), str(data)]
    bad = subprocess.run([*script, "--format", "csv", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "argument --format: invalid choice: 'csv'" in bad.stderr
    assert "hf" in bad.stderr and "vlmevalkit" in bad.stderr
    good = subprocess.run([*script, "--format", "vlmevalkit", "--out", str(tmp_path / "o"),
                           "--splits", "test_comp", "--per-type", "1"],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "FORMAT.md", "blind_baseline.json", "format_cameras_clock.svg", "scenegen_test_comp.tsv",
        "scenegen_test_comp_circular.tsv", "scenegen_test_comp_extraction.tsv",
        "scenegen_test_comp_multiview.tsv", "scenegen_test_comp_open.tsv"]


def test_an_interrupted_export_leaves_no_output(data, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the files are written: exit 130 saying so, no OUT, no staging folder;
    the questions' progress line went to stderr."""
    from scenegen_addon.dataset.exports import vlmevalkit

    def interrupted(dataset_root, out, question_set, name, prompts):
        (out / "half.tsv").write_text("index\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(vlmevalkit, "export", interrupted)
    assert export(data, tmp_path / "out", "vlmevalkit") == 130
    err = capsys.readouterr().err
    assert f"export.py: interrupted: nothing was written to {tmp_path / 'out'}" in err
    assert re.search(r"^questions: \[#{30}\] 3/3 scenes .*\(\d+s\)$", err, re.MULTILINE), err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def depth_data(tmp_path_factory):
    """A real build with --passes depth (Blender's Python is this one, no GPU)."""
    out = tmp_path_factory.mktemp("depth") / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("BLENDER", "SCENEGEN_TEST_FAULT")}
    env.update(PATH="/usr/bin:/bin", SCENEGEN_BLENDER_PYTHON=sys.executable,
               XDG_CACHE_HOME="/nonexistent")
    run = subprocess.run([sys.executable, str(ROOT / "headless" / "build.py"), "--output",
                          str(out), *DEPTH_BUILD], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def test_depth_maps_are_16_bit_image_columns(depth_data, tmp_path):
    """depth_0..depth_3 hold the PNG files: through the card and `datasets` they decode to
    the stored millimetres exactly; the card says what the values mean; the shard size
    counts them."""
    out = tmp_path / "out"
    assert cli.main([str(depth_data), "--format", "hf", "--out", str(out),
                     "--per-type", "1"]) == 0
    dataset = open_dataset(depth_data)
    assert dataset.info["config"]["passes"] == ["depth"] and hf.has_depth(dataset)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == list(dataset)
    for split in dataset:
        assert loaded[split].column_names == list(hf.scene_features(True))
        assert [f"depth_{k}" for k in range(4)] == loaded[split].column_names[18:22]
        for row, scene in zip(loaded[split], dataset[split], strict=True):
            check_scene_row(row, scene)
        for entry in dataset[split].entries:
            sid = entry["scene_id"]
            scene_files = [p for p in depth_data.rglob("*.png")
                           if sid in p.relative_to(depth_data).parts or p.stem == sid]
            assert len(scene_files) == 13  # single view, 4 views, 4 masks, 4 depth maps
            assert hf._scene_bytes(depth_data, entry) == sum(p.stat().st_size
                                                              for p in scene_files)
    text = (out / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    [scenes] = [i for i in header["dataset_info"] if i["config_name"] == "scenes"]
    assert [f["name"] for f in scenes["features"]] == list(hf.scene_features(True))
    for words in ("`depth_0`..`depth_3`", "millimetres", "camera's z axis",
                  "metres = value / 1000", "0 means the pixel sees no surface",
                  "65535 that the surface is 65.535 m away or farther"):
        assert words in text


def test_split_entries_that_disagree_on_depth_are_refused(data, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    shutil.copytree(data, mixed)
    entries = json.loads((mixed / "splits" / "train.json").read_text())
    for entry in entries:  # as if train had depth maps and test_comp not
        entry["depth"] = [m.replace("masks/", "depth/") for m in entry["masks"]]
    (mixed / "splits" / "train.json").write_text(json.dumps(entries))
    assert export(mixed, tmp_path / "out", "hf") == 1
    err = capsys.readouterr().err
    assert "depth/train_00001/view_3.png: missing" in err
    assert "splits/train.json: its SHA-256 is not the one checksums.sha256 lists" in err
    assert not (tmp_path / "out").exists()


# --- what an export checks before it writes (issue 24) -------------------------------------

def copy_of(data, tmp_path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(data, out)
    return out


def test_a_folder_not_merged_or_listing_incomplete_scenes_is_exit_3(data, tmp_path, capsys):
    """Once exported as "done" with 0 scenes: an unmerged folder, the half-resumed one of the
    issue (splits/ emptied, no dataset_info.json), one whose rerun has not merged, and split
    files listing a scene whose record is gone."""
    out = copy_of(data, tmp_path)
    (out / "metadata" / "train_00001.json").unlink()
    assert export(out, tmp_path / "o1", "vlmevalkit") == 3
    assert ("DIR: its split files list 1 incomplete scenes (train_00001): rerun its build to "
            "finish it") in capsys.readouterr().err
    layout.mark_merge_pending(out)
    assert export(out, tmp_path / "o2", "vlmevalkit") == 3
    assert "merge pending: a build began changing its scenes" in capsys.readouterr().err
    for rel in [*(p.relative_to(out) for p in (out / "splits").iterdir()),
                "dataset_info.json", "checksums.sha256", ".scenegen/merge_pending.json"]:
        (out / rel).unlink()
    assert export(out, tmp_path / "o3", "vlmevalkit") == 3
    assert "is not a merged scenegen dataset: it has no dataset_info.json" in (
        capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_failed_scenes_are_named_in_the_report(tmp_path, capsys):
    out = tmp_path / "data"
    fake_dataset.make_output(out, {"train": 2}, failed=("train_00001",))
    merge.merge(out)
    assert export(out, tmp_path / "out", "vlmevalkit") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "1 scenes failed in the build and are not in the dataset: train_00001" in lines
    assert "checked 1 scenes: paths, records, PNGs" in lines
    assert "12 files match checksums.sha256" in lines  # 10 of the scene, 1 split, info


def _hostile(out: Path) -> None:
    """Split entry 0 of train leads to ../secret/rec.json."""
    split = out / "splits" / "train.json"
    entries = json.loads(split.read_text())
    entries[0]["metadata"] = "../secret/rec.json"
    split.write_text(json.dumps(entries))


def _record(rel: str, change):
    def edit(out: Path) -> None:
        record = json.loads((out / rel).read_text())
        change(record)
        (out / rel).write_text(json.dumps(record))
    return edit


def _relink(out: Path, rel: str) -> None:
    (out / rel).unlink()
    (out / rel).symlink_to(out.parent / "secret" / "rec.json")


def _repaint(out: Path, rel: str) -> None:
    pixels = png.read_png(out / rel)
    pixels[3, 4] ^= 1
    (out / rel).write_bytes(fake_dataset.encode_rgb(pixels))


VIEW, MASK = "images/multi_view/train_00001/view_1.png", "masks/train_00000/view_2.png"
RECORD = "metadata/train_00001.json"
BAD_DATASETS = {
    "a truncated image": (lambda out: (out / VIEW).write_bytes((out / VIEW).read_bytes()[:-20]),
                          f"{VIEW}: truncated (no IEND chunk)"),
    "a bit flipped in a mask": (lambda out: (out / MASK).write_bytes(
        (out / MASK).read_bytes()[:60] + b"\xff" + (out / MASK).read_bytes()[61:]),
        f"{MASK}: bad CRC in chunk IDAT"),
    "a pixel changed after the merge": (lambda out: _repaint(out, VIEW),
                                        f"{VIEW}: its SHA-256 is not the one checksums.sha256"),
    "a record nested too deeply": (
        lambda out: (out / RECORD).write_text("[" * 100_000 + "]" * 100_000),
        f"{RECORD}: does not parse: JSON nested too deeply"),
    "NaN coordinates": (_record(RECORD, lambda r: r["objects"][0]["3d_coords"].__setitem__(
        0, float("nan"))), f"{RECORD}: does not parse: NaN is not a JSON number"),
    "an image_size of 1e9": (_record(RECORD, lambda r: r.update(image_size=[10**9, 10**9])),
                             f"{RECORD}: image_size: resolution must be two integers WxH of "
                             "4..65536"),
    "an image_size beyond the byte cap": (
        _record(RECORD, lambda r: r.update(image_size=[20000, 15000])),
        f"{RECORD}: image_size: resolution 20000x15000 makes images of 900000000 bytes"),
    "a split entry leading outside": (_hostile, "splits/train.json entry 0: metadata "
                                                "'../secret/rec.json': has an empty, '.' or"),
    "an absolute image path in a record": (
        _record(RECORD, lambda r: r["views"][1].update(image="/etc/hostname")),
        f"{RECORD}: schema: views/1/image"),
    "a record linked to a file outside": (
        lambda out: _relink(out, "metadata/test_comp_00000.json"),
        "splits/test_comp.json entry 0: metadata 'metadata/test_comp_00000.json': is reached "
        "through a symbolic link (not followed)"),
}


@pytest.mark.parametrize("name", list(BAD_DATASETS))
def test_a_damaged_or_hostile_dataset_is_exit_1_naming_the_file(data, tmp_path, capsys, name):
    """Each was exported (exit 0, broken or outside content in the files) or crashed after
    the questions; now nothing is written, nothing outside the dataset is read, and no
    traceback."""
    out = copy_of(data, tmp_path)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "rec.json").write_text(
        (out / "metadata" / "train_00000.json").read_text())
    inflict, expected = BAD_DATASETS[name]
    inflict(out)
    with audit.opened() as opened:
        code = export(out, tmp_path / "out", "hf", "--jobs", "1")
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"\n  {expected}" in err and "nothing was written" in err
    assert "Traceback" not in err and "questions:" not in err
    secret = os.path.realpath(tmp_path / "secret")
    assert not [p for p in opened if p.startswith(secret) or p == "/etc/hostname"]
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "secret"]


def test_a_damaged_train_record_read_for_the_blind_baseline_is_exit_1(data, tmp_path, capsys):
    """--splits test_comp still reads train scenes to fit the blind baseline on: a damaged
    record met there is exit 1 naming it, nothing written, never a traceback."""
    out = copy_of(data, tmp_path)
    (out / RECORD).write_text("[" * 100_000 + "]" * 100_000)
    assert export(out, tmp_path / "o", "vlmevalkit", "--splits", "test_comp") == 1
    err = capsys.readouterr().err
    assert f"'{RECORD}': JSON nested too deeply; nothing was written" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("fmt", ["hf", "vlmevalkit"])
@pytest.mark.parametrize("damage", ["repaint", "swap for a link"])
def test_an_image_changed_after_the_check_is_never_shipped(data, tmp_path, capsys,
                                                           monkeypatch, fmt, damage):
    """The export copies the bytes the check hashed: a picture repainted, or swapped for a
    link to a file outside, between the check and the copy is exit 1 naming it, nothing
    written."""
    out = copy_of(data, tmp_path)
    checked = verify.check

    def check_then_damage(*args, **kwargs):
        result = checked(*args, **kwargs)
        if damage == "repaint":
            _repaint(out, VIEW)
        else:
            (tmp_path / "outside.png").write_bytes((out / VIEW).read_bytes())
            (out / VIEW).unlink()
            (out / VIEW).symlink_to(tmp_path / "outside.png")
        return result

    monkeypatch.setattr(verify, "check", check_then_damage)
    assert export(out, tmp_path / "o", fmt, "--jobs", "1") == 1
    err = capsys.readouterr().err
    reason = "other bytes" if damage == "repaint" else "is a symbolic link"
    assert f"{VIEW}: changed since the export checked it (" in err, err
    assert reason in err and "nothing was written" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_each_picture_is_read_and_hashed_about_once(data, tmp_path, monkeypatch):
    """The HF rows come in scene order, up to 18 of them showing the same picture: after
    the check, each file is read (and hashed) at most once per config that shows it
    (scenes, questions, questions_multiview), not once per row (up to 23 here)."""
    checked, read, reads = verify.check, files.read_bytes, Counter()

    def counting(path, limit=None):
        reads[Path(path).relative_to(data).as_posix()] += 1
        return read(path, limit)

    def check_then_count(*args, **kwargs):
        result = checked(*args, **kwargs)
        monkeypatch.setattr(files, "read_bytes", counting)
        return result

    monkeypatch.setattr(verify, "check", check_then_count)
    assert export(data, tmp_path / "o", "hf", "--jobs", "1") == 0
    pictures = {rel: n for rel, n in reads.items() if rel.endswith(".png")}
    assert pictures and max(pictures.values()) <= 3, pictures


def test_the_staging_folder_is_the_exports_own_and_one_export_writes_at_a_time(
        data, tmp_path, capsys):
    """A user folder named like the old staging folder is kept; while another export holds
    OUT, a second one is refused (exit 2) without touching it."""
    mine = tmp_path / f".out.{os.getpid()}.tmp"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    held = os.open(out, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        assert export(data, out, "vlmevalkit") == 2
        assert (f"--out {out}: another export is writing into it" in
                capsys.readouterr().err)
    finally:
        os.close(held)
    assert list(out.iterdir()) == []
    assert export(data, out, "vlmevalkit", "--splits", "test_comp") == 0
    assert (mine / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "out"]


@pytest.mark.parametrize("options, message, questions", [
    ("size=1m,ro", "cannot be written: Read-only file system", False),
    ("size=8k", "8.2 KB free, the export needs at least 14.2 KB (the images it copies)", False),
    ("size=64k", "its disk is full or read-only ([Errno 28] No space left on device); nothing "
                 "was written", True),
])
def test_a_read_only_or_full_target_is_exit_4(data, tmp_path, capsys, options, message,
                                              questions):
    """Read-only, or without room for the images, before the questions are generated; full
    while the files are written, after them (the export's size is known only then)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs permission to mount a tmpfs")
    try:
        assert export(data, mount / "out", "vlmevalkit") == 4
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert ("questions:" in err) == questions
        assert os.listdir(mount) == []
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
def test_a_changed_image_gets_a_new_name(data, tsv_out, tmp_path):
    """VLMEvalKit caches decoded images by `image_path`: after one picture changes, its
    rows get a new name, every other row keeps its own."""
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    scene = open_dataset(changed)["test_comp"][0]
    target = changed / scene.views[2].image_path
    pixels = png.read_png(target).copy()
    pixels[0, 0] ^= 1
    target.write_bytes(fake_dataset.encode_rgb(pixels))
    merge.merge(changed)  # a rebuilt dataset: its checksums.sha256 lists the new picture
    out = tmp_path / "out"
    assert export(changed, out, "vlmevalkit") == 0
    before = pd.read_csv(tsv_out / "scenegen_test_comp.tsv", sep="\t", dtype=str)
    after = pd.read_csv(out / "scenegen_test_comp.tsv", sep="\t", dtype=str)
    moved = [(b, a) for b, a, ctx in zip(before["image_path"], after["image_path"],
                                         after["context"], strict=True) if ctx == "view_2"]
    assert moved and all(b != a and b.split("_", 1)[1] == a.split("_", 1)[1] for b, a in moved)
    kept = [(b, a) for b, a, ctx in zip(before["image_path"], after["image_path"],
                                        after["context"], strict=True) if ctx != "view_2"]
    assert kept and all(b == a for b, a in kept)


def test_the_blind_table_is_written_beside_the_export(hf_out, tsv_out):
    for out in (hf_out, tsv_out):
        table = json.loads((out / "blind_baseline.json").read_text())
        assert table["fitted_on"]["source"] == "exported"
        assert table["failed"] == [] and table["rows"]
        assert {r["split"] for r in table["rows"]} == {"test_comp"}
        for row in table["rows"]:
            for guesser in row["guessers"].values():
                assert guesser["accuracy"] == round(guesser["correct"] / row["questions"], 4)
    assert (hf_out / "blind_baseline.json").read_bytes() == \
        (tsv_out / "blind_baseline.json").read_bytes()


def test_a_blind_bias_writes_nothing_and_exits_1(data, tmp_path, capsys, monkeypatch):
    """The old option order put back (the answer moved to its letter, the others in their
    usual order): the export names the failing categories and exits 1 with nothing
    written; --allow-blind-bias writes it and the card flags it."""
    from scenegen_addon.dataset import questions as made

    monkeypatch.setattr(made, "_shuffled", lambda items, g: list(items))
    command = ["--per-type", "world_qrr=0", "--per-type", "view_qrr=150", "--jobs", "1"]
    for cat in questions.CATEGORIES:
        if cat != "view_qrr":
            command += ["--per-type", f"{cat}=0"]
    out = tmp_path / "out"
    assert cli.main([str(data), "--format", "hf", "--out", str(out), *command]) == 1
    err = capsys.readouterr().err
    assert re.search(r"the blind baseline answers without the image: test_comp view_qrr; "
                     r"nothing was written to .*out \(export anyway with --allow-blind-bias\)",
                     err), err
    assert not out.exists()
    assert cli.main([str(data), "--format", "hf", "--out", str(out), *command,
                     "--allow-blind-bias"]) == 0
    text = (out / "README.md").read_text()
    assert "**Warning: exported with --allow-blind-bias; these rows can be answered without " \
           "the image: test_comp view_qrr.**" in text
    assert json.loads((out / "blind_baseline.json").read_text())["failed"] == [
        "test_comp view_qrr"]


def test_without_train_the_baseline_is_fitted_on_generated_train_questions(data, tmp_path,
                                                                           monkeypatch):
    """At most TRAIN_SCENES train scenes, drawn by the seed (here 1 of the 2)."""
    from scenegen_addon.dataset import blind

    monkeypatch.setattr(blind, "TRAIN_SCENES", 1)
    out = tmp_path / "out"
    assert cli.main([str(data), "--format", "vlmevalkit", "--out", str(out), "--splits",
                     "test_comp", "--per-type", "3", "--allow-blind-bias"]) == 0
    table = json.loads((out / "blind_baseline.json").read_text())
    dataset = open_dataset(data)
    [entry] = questions.sample_entries(dataset["train"].entries, 1, "42:train:scenes")
    made = questions.generate(dataset, ["train"], 3, 42, limit=1)  # the default seed
    assert {q.scene_id for q in made.questions["train"]} == {entry["scene_id"]}
    assert table["fitted_on"] == {"split": "train", "source": "generated", "scenes": 1,
                                  "questions": len(made.questions["train"])}
    assert questions.sample_entries(list(range(10)), None, "k") == list(range(10))
    drawn = questions.sample_entries(list(range(10)), 4, "k")
    assert len(set(drawn)) == 4 and drawn == sorted(drawn)
    assert drawn == questions.sample_entries(list(range(10)), 4, "k")
    assert drawn != questions.sample_entries(list(range(10)), 4, "other")


def test_no_train_scene_no_baseline_unless_allowed(data, tmp_path, capsys):
    bare = tmp_path / "bare"  # a dataset planned without train
    fake_dataset.make_output(bare, {"test_comp": 1})
    merge.merge(bare)
    assert export(bare, tmp_path / "out", "vlmevalkit") == 2
    assert "no train scenes to fit the blind baseline on" in capsys.readouterr().err
    assert export(bare, tmp_path / "out", "vlmevalkit", "--allow-blind-bias") == 0
    assert not (tmp_path / "out" / "blind_baseline.json").exists()


DATASETS2 = os.environ.get("SCENEGEN_DATASETS2_PYTHON")


@pytest.mark.skipif(not DATASETS2, reason="SCENEGEN_DATASETS2_PYTHON is not set (.ci/run sets "
                    "it to a venv with datasets 2.14.7)")
def test_datasets_2_14_loads_the_export(hf_out, expected, tmp_path):
    """The oldest `datasets` the card names (2.14, the first to read configs from a card)
    loads every config through the card and a shard directly, lists typed."""
    _, question_set = expected
    script = """
import json, sys, datasets
out, cache = sys.argv[1], sys.argv[2]
found = {"version": datasets.__version__}
for config in ("scenes", "questions", "questions_multiview"):
    loaded = datasets.load_dataset(out, config, cache_dir=cache)
    found[config] = {s: loaded[s].num_rows for s in loaded}
q = datasets.load_dataset(out, "questions", split="train", cache_dir=cache)[0]
found["objects"], found["descriptions"] = q["objects"], q["descriptions"]
direct = datasets.load_dataset("parquet", data_files=out + "/data/questions/train-*.parquet",
                               cache_dir=cache)["train"]
found["direct"] = direct.num_rows
found["features"] = str(direct.features["objects"])
print(json.dumps(found))
"""
    run = subprocess.run([DATASETS2, "-c", script, str(hf_out), str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.splitlines()[-1])
    assert found["version"] == "2.14.7"
    qs = question_set.questions
    assert found["questions"] == {s: len(v) for s, v in qs.items()}
    assert found["questions_multiview"] == {
        s: sum(q.context == "world" for q in v) for s, v in qs.items()}
    assert found["scenes"] == COUNTS
    assert found["objects"] == list(qs["train"][0].objects)
    assert found["descriptions"] == list(qs["train"][0].descriptions)
    assert found["direct"] == len(qs["train"])
    assert found["features"] == "[Value(dtype='string', id=None)]"  # a typed list
