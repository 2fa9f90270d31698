"""The dataset as Hugging Face Parquet: configs `scenes` (default), `questions`,
`questions_multiview` and `extraction`.

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

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import DatasetInfo, Features, Image, SplitDict, SplitInfo, Value
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCardData

from ...core import camera, layout
from ...core.constraints import BOUNDARY_BAND
from .. import margins
from ..extraction_prompts import Prompt
from ..loader import Dataset, Scene
from ..questions import Question, QuestionSet
from .common import ExportRefused
from .verify import CheckedFiles

F, N, S, B = Value("float64"), Value("int64"), Value("string"), Value("bool")  # N: integer
ROW_GROUP = {"scenes": 16, "questions": 256, "questions_multiview": 64, "extraction": 64}

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


_QUESTION = {
    "index": N, "question_id": S, "split": S, "scene_id": S, "n_objects": N, "category": S,
    "context": S,
    "constraint": S, "objects": [S], "descriptions": [S], "label": S, "question": S,
    "options": [S], "option_labels": [S], "answer": S, "answer_index": N, "difficulty": N,
    "boundary_flag": B, "margins": [S], "wording": N,
}
QUESTION_FEATURES = Features({
    **_QUESTION, "open_question": S, "answer_text": S, "answer_choices": [S],
    "image": Image(), "image_path": S,
})
MULTIVIEW_FEATURES = Features({**_QUESTION, "images": [Image()], "image_paths": [S]})
QUESTION_CONFIGS = {"questions": QUESTION_FEATURES, "questions_multiview": MULTIVIEW_FEATURES}
EXTRACTION_FEATURES = Features({
    "index": N, "question_id": S, "split": S, "scene_id": S, "n_objects": N, "context": S,
    "objects": [S], "descriptions": [S], "unnamed": N, "question": S, "answer": S, "asked": S,
    "schema": S, "layout": S, "images": [Image()], "image_paths": [S],
})


def _image(source: CheckedFiles, rel: str) -> dict:
    return {"bytes": source.read(rel), "path": rel}


def has_depth(dataset: Dataset) -> bool:
    """Whether the dataset was built with depth maps: its split entries list them under
    "depth" (all splits, so the features do not depend on --splits). ExportRefused when
    some entries do and others do not (a damaged dataset)."""
    kinds = {"depth" in e for split in dataset.values() for e in split.entries}
    if len(kinds) > 1:
        raise ExportRefused(f"DIR {dataset.root}: some split entries list depth maps and "
                            "others do not: check it with headless/validate.py")
    return kinds == {True}


def scene_row(source: CheckedFiles, scene: Scene) -> dict:
    """One row of the scenes config: the record's fields and the scene's image bytes."""
    r = scene.record
    keys = ("schema_version", "scene_id", "split", "index", "seed", "retries", "tau", "n_objects",
            "image_size", "objects", "lights", "render")
    row = {key: r[key] for key in keys}
    row["single_view"] = _image(source, r["single_view"]["image"])
    for k, view in enumerate(r["views"]):
        row[VIEWS[k]] = _image(source, view["image"])
        row[MASKS[k]] = _image(source, view["mask"])
        if scene.views[k].depth_path is not None:
            row[DEPTHS[k]] = _image(source, scene.views[k].depth_path)
    row["cameras"] = [{"view_id": v["view_id"], **v["camera"], "directions": v["directions"]}
                      for v in r["views"]]
    row["view_objects"] = [v["objects"] for v in r["views"]]
    row["constraints_world"] = r["constraints"]["world"]
    row["constraints_views"] = r["constraints"]["views"]
    return row


def _question_fields(q: Question, multiview: bool) -> dict:
    row = {key: getattr(q, key) for key in _QUESTION if key != "answer_index"}
    row.update(answer_index=q.answer_index, objects=list(q.objects),
               descriptions=list(q.multiview_descriptions if multiview else q.descriptions),
               question=q.multiview_question if multiview else q.question,
               options=list(q.options), option_labels=list(q.option_labels),
               margins=list(q.margins))
    return row


def question_row(source: CheckedFiles, q: Question) -> dict:
    """A row of the questions config: the single-image question and its open form."""
    return {**_question_fields(q, False), "open_question": q.open_question,
            "answer_text": q.answer_text, "answer_choices": list(q.answer_choices),
            "image": _image(source, q.image), "image_path": q.image}


def multiview_row(source: CheckedFiles, q: Question) -> dict:
    """A row of the questions_multiview config: a world question and the four views."""
    return {**_question_fields(q, True), "images": [_image(source, p) for p in q.view_images],
            "image_paths": list(q.view_images)}


def extraction_row(source: CheckedFiles, p: Prompt) -> dict:
    """A row of the extraction config: a prompt, its picture(s) and gold (JSON text)."""
    row = {key: getattr(p, key) for key in EXTRACTION_FEATURES
           if key not in ("images", "image_paths")}
    row.update(p.json_fields(), objects=list(p.objects), descriptions=list(p.descriptions),
               images=[_image(source, path) for path in p.images], image_paths=list(p.images))
    return row


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


def _plain_lists(obj):
    """Features as JSON with every list a JSON list ([feature]), the form `datasets` has
    read since 2.x (4.x writes {"_type": "List"}, which 2.x and 3.x cannot read)."""
    if isinstance(obj, dict):
        if obj.get("_type") == "List" and obj.get("length", -1) == -1:
            return [_plain_lists(obj["feature"])]
        return {k: _plain_lists(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain_lists(v) for v in obj]
    return obj


def arrow_schema(features: Features) -> pa.Schema:
    """The features' Arrow schema, its `huggingface` metadata readable by datasets >= 2.14."""
    info = {"info": {"features": _plain_lists(features.to_dict())}}
    return features.arrow_schema.with_metadata(
        {"huggingface": json.dumps(info, separators=(",", ":"))})


def _write(path: Path, rows: list[dict], features: Features, row_group: int) -> int:
    """Write one Parquet shard atomically; returns the Arrow size of its rows."""
    table = pa.Table.from_pylist(rows, schema=arrow_schema(features))
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


def export(dataset: Dataset, source: CheckedFiles, out: Path, question_set: QuestionSet,
           shard_bytes: int = 500_000_000, table=None,
           prompts: dict[str, list[Prompt]] | None = None) -> list[str]:
    """Write the three configs, the extraction config when `prompts` are given, and the
    card into `out`, every image's bytes from `source` (the files as verify checked
    them); returns report lines. `table` is the blind baseline
    (dataset.blind.Table) for the card, or None when not measured."""
    root = dataset.root
    depth = has_depth(dataset)
    configs = ("scenes", *QUESTION_CONFIGS, *(["extraction"] if prompts is not None else []))
    infos = {name: SplitDict() for name in configs}
    lines = []
    for split, questions in question_set.questions.items():
        scenes = dataset[split]
        entries = scenes.entries
        infos["scenes"].add(_write_config(
            out, "scenes", split, entries, lambda e: _scene_bytes(root, e),
            lambda e, scenes=scenes: scene_row(source, scenes[e["scene_id"]]),
            scene_features(depth), shard_bytes))
        infos["questions"].add(_write_config(
            out, "questions", split, questions, lambda q: (root / q.image).stat().st_size,
            lambda q: question_row(source, q), QUESTION_FEATURES, shard_bytes))
        world = [q for q in questions if q.view_images]
        infos["questions_multiview"].add(_write_config(
            out, "questions_multiview", split, world,
            lambda q: sum((root / p).stat().st_size for p in q.view_images),
            lambda q: multiview_row(source, q), MULTIVIEW_FEATURES, shard_bytes))
        lines.append(f"{split}: {len(entries)} scenes, {len(questions)} questions "
                     f"({len(world)} also multi-view)")
        if prompts is not None:
            infos["extraction"].add(_write_config(
                out, "extraction", split, prompts[split],
                lambda p: sum((root / path).stat().st_size for path in p.images),
                lambda p: extraction_row(source, p), EXTRACTION_FEATURES, shard_bytes))
            lines.append(f"{split}: {len(prompts[split])} extraction prompts")
    layout.write_text(out / "README.md", [card(dataset, infos, depth, question_set, table)])
    return lines


EXTRACTION_TEXT = (
    "- `extraction`: the constraint-extraction task (FORMAT 11), one row per scene and "
    "context: `question` is the prompt (the objects with their names, the relations to give, "
    "the answer's JSON Schema, also in `schema`), `images` the four views (world) or the "
    "view's image; `answer` is the gold answer, `asked` the relations stated, `layout` the "
    "true ground positions, heights and view directions (JSON text each); `unnamed` counts "
    "the objects left out because no name without size or position singles them out.")
QUESTIONS_TEXT = [
    "## Questions", "",
    "Every answer is a stored label; a question is asked only when a person could see the "
    "answer in its picture. Margins (decided from the record's stored numbers):", "",
    "- left/right in an image: the projected centroid and both edges of the visible bounding "
    f"box at least {margins.PIXEL_MARGIN:.0%} of the image width apart; in front/behind: "
    f"centroid depths at least {margins.DEPTH_MARGIN:g} world units apart. Names that use a "
    "relation (\"the leftmost red cube\") hold by the same margins in the question's image "
    "(view 0 for world questions); names never use a relation in distance, clock, closer "
    "and on-screen size questions, nor the attribute or axis asked;",
    f"- comparisons (distances, closer, on-screen size) are not asked inside the band "
    f"{BOUNDARY_BAND[0]:g} T < |a - b| < {BOUNDARY_BAND[1]:g} T, T = tau x max(a, b);",
    f"- on-screen size only for objects at least {margins.MIN_VISIBLE:.0%} visible, of the "
    "same shape, whose sizes differ (no \"about the same\");",
    f"- clock targets at least {margins.SECTOR_MARGIN_DEG:g} degrees from the edge of their "
    "hour's 30-degree sector; four offered hours, no two adjacent;",
    f"- occlusion: \"yes\" when at least {margins.MIN_OCCLUDED:.0%} of the other's silhouette "
    "is hidden; \"no\" when it is the other way round by that much (so the silhouettes "
    "clearly overlap).",
    "", "An export made with `--keep-near-ties` also asks what fails these margins, each "
    "question naming what it fails in `margins`. Within each split and category the label "
    "classes are equally frequent (within one) and so is each answer letter; the options' "
    "order is drawn independently of the label. `wording` says which of the category's "
    "(at least three) wordings was used.", "",
    "`open_question` is the same question without options; its last sentence states the "
    "answer grammar: a reply, stripped of white space and one final \".\", lower-cased, must "
    "equal one of `answer_choices`; `answer_text` is the right one.", "",
]


def _table_text(question_set: QuestionSet, table) -> list[str]:
    lines = ["## Blind baseline", ""]
    if table is None:
        return lines + ["Not measured (this dataset has no train scenes to fit it on).", ""]
    fitted = table.fitted_on
    lines += [
        f"Guessers that read only the text, fitted on {fitted['questions']} train questions "
        f"({fitted['source']}, {fitted['scenes']} scenes), scored per split and category "
        "(accuracy in percent). A row fails when a guesser beats chance by more than 5 "
        "points and Holm's procedure over the table rejects chance at the level of 2 "
        "standard errors. Figures in `blind_baseline.json`.", ""]
    if table.failed:
        lines += ["**Warning: exported with --allow-blind-bias; these rows can be answered "
                  "without the image: " + ", ".join(f"{r.split} {r.category}"
                                                    for r in table.failed) + ".**", ""]
    lines += table.markdown() + [""]
    short = question_set.shortfalls()
    if short:
        lines += ["Categories with fewer questions than asked for (classes kept equal):", ""]
        lines += [f"- {line}" for line in short] + [""]
    return lines


def card(dataset: Dataset, infos: dict[str, SplitDict], depth: bool = False,
         question_set: QuestionSet | None = None, table=None) -> str:
    """The dataset card: YAML header (configs, features, splits) and a description;
    `depth`: the scenes have depth maps; the questions' margins, grammar and blind table."""
    data = DatasetCardData(pretty_name="scenegen", task_categories=["visual-question-answering"],
                           tags=["synthetic", "spatial-reasoning", "clevr"])
    features = {"scenes": scene_features(depth), **QUESTION_CONFIGS,
                "extraction": EXTRACTION_FEATURES}
    DatasetInfosDict({name: DatasetInfo(features=features[name], splits=splits)
                      for name, splits in infos.items()}).to_dataset_card_data(data)
    data["configs"] = [
        {"config_name": name, "data_files": [{"split": s, "path": f"data/{name}/{s}-*.parquet"}
                                             for s in infos[name]],
         **({"default": True} if name == "scenes" else {})}
        for name in infos
    ]
    source = dataset.info or {}
    generator = source.get("generator", {})
    splits = ", ".join(f"`{s}`" for s in infos["scenes"])
    first = next(iter(infos["scenes"]), "test_iid")
    return "\n".join([
        "---", data.to_yaml(), "---", "",
        "# scenegen", "",
        "CLEVR-like scenes rendered from four views, with exact ground-truth spatial relations "
        "between their objects, and questions generated from them. [FORMAT.md](FORMAT.md), "
        "beside this card, defines every field and label; its section 10 the questions, "
        "section 11 the constraint-extraction task.", "",
        f"Generator: {generator.get('name', 'scenegen')} {generator.get('version', '')}, "
        f"dataset fingerprint `{source.get('fingerprint', 'unknown')}`.", "",
        "## Splits and loading", "",
        f"Splits: {splits} (train, val, test_iid: 4-10 objects, tau 0.10; test_comp: 10-15 "
        "objects; test_hard: tau 0.05). Needs `datasets` 2.14 or later (configs in the card): "
        f"`load_dataset(\"path/to/this/folder\", \"questions\", split=\"{first}\")`, or one "
        f"config's files directly: `load_dataset(\"parquet\", data_files=\"data/questions/"
        f"{first}-*.parquet\")`.", "",
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
        "- `questions`: one row per question, with the image it is about (`index` from 1). "
        "`answer` is the letter of the option whose entry in `option_labels` equals `label`, "
        "the stored ground truth of constraint type `constraint` in `context` (`world` or "
        "`view_k`) over the object ids in `objects`; `descriptions` are the names the "
        "question uses for them, in the same order.",
        "- `questions_multiview`: the world questions again, with the four views as `images` "
        "(view_0..view_3); names use attributes, or say \"in image 1\" for a relation.",
        *([EXTRACTION_TEXT] if "extraction" in infos else []), "",
        *QUESTIONS_TEXT,
        *(_table_text(question_set, table) if question_set is not None else []),
    ])
