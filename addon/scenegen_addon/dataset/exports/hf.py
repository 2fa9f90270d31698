"""The dataset as Hugging Face Parquet: configs `scenes` (default) and `questions`.

OUT/README.md is the dataset card; its YAML header lists the configs, their data files per
split, features and split sizes, which `datasets.load_dataset(OUT, config)` reads. Shards
are `data/<config>/<split>-NNNNN-of-NNNNN.parquet`, also loadable on their own with
`load_dataset("parquet", data_files=...)` (the features travel in each file's schema).

Images are the PNG files' own bytes (not re-encoded), so a decoded image equals the
loader's array. Shards hold whole scenes and are cut when their image bytes pass a limit;
everything is in dataset order and no time stamp is written, so the same dataset and seed
give byte-identical files (for one pyarrow version).

A dataset built with `--passes depth` (its split entries list "depth", which is what the
loader reads too) gets the image columns `depth_0`..`depth_3`, counted in the shard size;
one built without exports exactly as it did before the depth pass existed.
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import DatasetInfo, Features, Image, SplitDict, SplitInfo, Value
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCardData

from ...core import camera, layout
from ..loader import Dataset, Scene
from ..questions import Question, QuestionSet
from .common import ExportRefused

F, N, S, B = Value("float64"), Value("int64"), Value("string"), Value("bool")  # N: integer
ROW_GROUP = {"scenes": 16, "questions": 256}

_QRR = {"pair1": [S], "pair2": [S], "metric": S, "comparator": S, "ratio": F,
        "difficulty": N, "boundary_flag": B}
_TRR = {"target": S, "ref1": S, "ref2": S, "hour": N, "quadrant": N, "angle_deg": F}
_RELATION = {"obj1": S, "obj2": S, "relation": S}
_SIZE = {"bigger": S, "smaller": S}
VIEWS = [f"view_{k}" for k in range(camera.N_VIEWS)]
MASKS = [f"mask_{k}" for k in range(camera.N_VIEWS)]
DEPTHS = [f"depth_{k}" for k in range(camera.N_VIEWS)]


def scene_features(depth: bool) -> Features:
    """The features of the scenes config; `depth` (a dataset built with depth maps) adds
    `depth_0`..`depth_3` after the masks."""
    return Features({
        "schema_version": S, "scene_id": S, "split": S, "index": N, "seed": N, "retries": N,
        "tau": F, "n_objects": N, "image_size": [N],
        "single_view": Image(), **{v: Image() for v in VIEWS}, **{m: Image() for m in MASKS},
        **({d: Image() for d in DEPTHS} if depth else {}),
        "objects": [{"id": S, "shape": S, "size": S, "size_value": F, "color": S, "rgb": [N],
                     "material": S, "3d_coords": [F], "centroid": [F], "rotation": F}],
        "cameras": [{"view_id": S, "azimuth": F, "elevation": F, "distance": F, "position": [F],
                     "look_at": [F], "lens_mm": F, "sensor_width_mm": F, "resolution": [N],
                     "hfov_deg": F, "K": [[F]], "R": [[F]], "t": [F], "matrix_world": [[F]],
                     "directions": {"left": [F], "right": [F], "front": [F], "behind": [F]}}],
        "view_objects": [[{"id": S, "pixel_coords": [F], "bbox": [N], "silhouette_pixels": N,
                           "visible_pixels": N, "visible_fraction": F, "in_frame": B}]],
        "constraints_world": {"qrr": [_QRR], "trr": [_TRR], "topology": [_RELATION],
                              "size": [_SIZE],
                              "closer": [{"anchor": S, "closer": S, "farther": S}]},
        "constraints_views": [{"view_id": S, "qrr": [_QRR], "trr": [_TRR], "axial": [_RELATION],
                               "occlusion": [{"occluder": S, "occluded": S, "pixels": N,
                                              "fraction": F}],
                               "size": [_SIZE]}],
        "lights": [{"name": S, "location": [F], "rotation": [F], "energy": F, "size": F}],
        "render": {"engine": S, "samples": N, "device": S, "device_name": S,
                   "blender_version": S, "seconds": F},
    })


QUESTION_FEATURES = Features({
    "question_id": S, "split": S, "scene_id": S, "category": S, "context": S,
    "constraint": S, "objects": S, "label": S, "question": S, "options": [S],
    "option_labels": [S], "answer": S, "answer_index": N, "difficulty": N,
    "boundary_flag": B, "image": Image(), "image_path": S,
})


def _image(root: Path, rel: str) -> dict:
    return {"bytes": (root / rel).read_bytes(), "path": rel}


def has_depth(dataset: Dataset) -> bool:
    """Whether the dataset was built with depth maps: its split entries list them under
    "depth" (all splits, so the features do not depend on --splits). ExportRefused when
    some entries do and others do not (a damaged dataset)."""
    kinds = {"depth" in e for split in dataset.values() for e in split.entries}
    if len(kinds) > 1:
        raise ExportRefused(f"DIR {dataset.root}: some split entries list depth maps and "
                            "others do not: check it with headless/validate.py")
    return kinds == {True}


def scene_row(scene: Scene) -> dict:
    """One row of the scenes config: the record's fields and the scene's image bytes."""
    r = scene.record
    keys = ("schema_version", "scene_id", "split", "index", "seed", "retries", "tau", "n_objects",
            "image_size", "objects", "lights", "render")
    row = {key: r[key] for key in keys}
    row["single_view"] = _image(scene.root, r["single_view"]["image"])
    for k, view in enumerate(r["views"]):
        row[VIEWS[k]] = _image(scene.root, view["image"])
        row[MASKS[k]] = _image(scene.root, view["mask"])
        if scene.views[k].depth_path is not None:
            row[DEPTHS[k]] = _image(scene.root, scene.views[k].depth_path)
    row["cameras"] = [{"view_id": v["view_id"], **v["camera"], "directions": v["directions"]}
                      for v in r["views"]]
    row["view_objects"] = [v["objects"] for v in r["views"]]
    row["constraints_world"] = r["constraints"]["world"]
    row["constraints_views"] = r["constraints"]["views"]
    return row


def question_row(root: Path, q: Question) -> dict:
    return {
        "question_id": q.question_id, "split": q.split, "scene_id": q.scene_id,
        "category": q.category, "context": q.context, "constraint": q.constraint,
        "objects": q.objects_json, "label": q.label, "question": q.question,
        "options": list(q.options), "option_labels": list(q.option_labels), "answer": q.answer,
        "answer_index": q.answer_index, "difficulty": q.difficulty,
        "boundary_flag": q.boundary_flag, "image": _image(root, q.image), "image_path": q.image,
    }


def _shards(sizes: list[int], limit: int) -> list[range]:
    """Consecutive items grouped so that each group's bytes stay within `limit` (a group
    holds at least one item); at least one (possibly empty) group."""
    groups, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            groups.append(range(start, i))
            start, total = i, 0
        total += size
    groups.append(range(start, len(sizes)))
    return groups


def _write(path: Path, rows: list[dict], features: Features, row_group: int) -> int:
    """Write one Parquet shard atomically; returns the Arrow size of its rows."""
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    with layout.atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group, compression="zstd")
    return table.nbytes


def _write_config(out: Path, config: str, split: str, items: list, size_of, make_row,
                  features: Features, limit: int) -> SplitInfo:
    groups = _shards([size_of(x) for x in items], limit)
    nbytes = 0
    for n, group in enumerate(groups):
        path = out / "data" / config / f"{split}-{n:05d}-of-{len(groups):05d}.parquet"
        nbytes += _write(path, [make_row(items[i]) for i in group], features, ROW_GROUP[config])
    return SplitInfo(name=split, num_examples=len(items), num_bytes=nbytes)


def _scene_bytes(root: Path, entry: dict) -> int:
    files = [entry["single_view_image"], *entry["multi_view_images"], *entry["masks"],
             *entry.get("depth", [])]
    return sum((root / f).stat().st_size for f in files)


def export(dataset: Dataset, out: Path, question_set: QuestionSet,
           shard_bytes: int = 500_000_000) -> list[str]:
    """Write both configs and the card into `out`; returns report lines."""
    root = dataset.root
    depth = has_depth(dataset)
    infos = {"scenes": SplitDict(), "questions": SplitDict()}
    lines = []
    for split, questions in question_set.questions.items():
        scenes = dataset[split]
        entries = scenes.entries
        info = _write_config(out, "scenes", split, entries, lambda e: _scene_bytes(root, e),
                             lambda e, scenes=scenes: scene_row(scenes[e["scene_id"]]),
                             scene_features(depth), shard_bytes)
        infos["scenes"].add(info)
        info = _write_config(out, "questions", split, questions,
                             lambda q: (root / q.image).stat().st_size,
                             lambda q: question_row(root, q), QUESTION_FEATURES, shard_bytes)
        infos["questions"].add(info)
        lines.append(f"{split}: {len(entries)} scenes, {len(questions)} questions")
    layout.write_text(out / "README.md", [card(dataset, infos, depth)])
    return lines


def card(dataset: Dataset, infos: dict[str, SplitDict], depth: bool = False) -> str:
    """The dataset card: YAML header (configs, features, splits) and a short description;
    `depth`: the scenes have depth maps."""
    data = DatasetCardData(pretty_name="scenegen", task_categories=["visual-question-answering"],
                           tags=["synthetic", "spatial-reasoning", "clevr"])
    features = {"scenes": scene_features(depth), "questions": QUESTION_FEATURES}
    DatasetInfosDict({name: DatasetInfo(features=features[name], splits=splits)
                      for name, splits in infos.items()}).to_dataset_card_data(data)
    data["configs"] = [
        {"config_name": name, "data_files": [{"split": s, "path": f"data/{name}/{s}-*.parquet"}
                                             for s in infos[name]],
         **({"default": True} if name == "scenes" else {})}
        for name in ("scenes", "questions")
    ]
    source = dataset.info or {}
    generator = source.get("generator", {})
    return "\n".join([
        "---", data.to_yaml(), "---", "",
        "# scenegen", "",
        "CLEVR-like scenes rendered from four views, with exact ground-truth spatial relations "
        "between their objects, and multiple-choice questions generated from them.", "",
        f"Generator: {generator.get('name', 'scenegen')} {generator.get('version', '')}, "
        f"dataset fingerprint `{source.get('fingerprint', 'unknown')}`.", "",
        "## Configs", "",
        "- `scenes` (default): one row per scene. `single_view`, `view_0`..`view_3` are the "
        "RGB images, `mask_0`..`mask_3` the 16-bit object-index masks (0 = background, "
        "i + 1 = `obj_i`). `cameras` use the OpenCV convention: x_cam = R x_world + t, "
        "x right, y down, looking along +z; pixels (u, v) ~ K x_cam, origin at the top-left "
        "corner, pixel centres at half-integers. `objects`, `view_objects`, "
        "`constraints_world` and `constraints_views` are the scene record's fields."
        + (" `depth_0`..`depth_3` are the 16-bit depth maps: each pixel holds the depth of "
           "the front-most surface at its centre along the camera's z axis (the OpenCV z "
           "above), in millimetres rounded to the nearest, so metres = value / 1000; 0 means "
           "the pixel sees no surface, 65535 that the surface is 65.535 m away or farther."
           if depth else ""),
        "- `questions`: one row per multiple-choice question, with the image it is about. "
        "`answer` is the letter of the option whose entry in `option_labels` equals `label`, "
        "the stored ground truth of constraint type `constraint` in `context` (`world` or "
        "`view_k`) over the object ids in `objects` (a JSON list).", "",
    ])
