"""The validator's logic (issue 5): is an output folder a complete, uncorrupted dataset?

Structure is checked for every scene (split entries, files present and decodable at the
configured size, ids and object counts as planned, no duplicates, mask pixel counts, the
metadata against the JSON Schema); labels are recomputed from the stored geometry and masks
for every scene or a seeded sample, on a process pool. Pure (stdlib and numpy, no bpy, no
other package), so it runs in the user's Python or Blender's own. Exit codes: 0 good,
1 corruption, 3 incomplete (failed or missing scenes).
"""

import json
import math
import multiprocessing
import struct
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import camera, dataset, plan, png, presets, records, rng, schema_check
from .spec import LightSpec, ObjectSpec, SceneSpec

MIN_MASK_FRACTION = 0.20  # SPEC 4: the gate's 0.25 less pixel quantisation slack
# That slack holds at the gate's own frame and finer: in a smaller test render a small object
# covers a handful of pixels and may lose them all, so the check starts at this width.
MIN_FRACTION_WIDTH = presets.CANONICAL_RESOLUTION[0]
REL_TOL = 1e-5  # stored derived numbers carry 6 significant digits
MAX_DIFFS = 5  # label differences reported per scene
RGB8 = (8, 2)  # (bit depth, colour type) of the images
GRAY16 = (16, 0)  # of the masks


@dataclass(frozen=True)
class Problem:
    path: str  # the file at fault, relative to the output folder (or a scene id)
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Report:
    corrupt: list[Problem] = field(default_factory=list)
    incomplete: list[Problem] = field(default_factory=list)
    scenes_checked: int = 0
    labels_checked: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.corrupt else 3 if self.incomplete else 0


# --- files ---------------------------------------------------------------------------------

def check_png(path: Path, width: int, height: int, kind: tuple[int, int]) -> str | None:
    """Why `path` is not a complete PNG of this size and (bit depth, colour type); None if it is.

    Checks every chunk's CRC and inflates the whole image stream to exactly the size the header
    implies, with valid filter bytes: a truncated or altered file cannot pass. (png.read_png
    checks no CRC and unfilters every pixel in Python: too slow for every image of a run.)
    """
    data = path.read_bytes()
    if not data.startswith(png.SIGNATURE):
        return "not a PNG file"
    pos, header, stream, ended = len(png.SIGNATURE), None, [], False
    while pos + 12 <= len(data) and not ended:
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body, crc = data[pos + 8:pos + 8 + length], data[pos + 8 + length:pos + 12 + length]
        if len(crc) < 4:
            break
        if zlib.crc32(ctype + body) != struct.unpack(">I", crc)[0]:
            return f"bad CRC in chunk {ctype.decode('latin-1')}"
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            stream.append(body)
        ended = ctype == b"IEND"
        pos += 12 + length
    if not ended:
        return "truncated (no IEND chunk)"
    if header is None:
        return "no IHDR chunk"
    w, h, depth, colour, _, _, interlace = header
    if (w, h) != (width, height):
        return f"size {w}x{h}, expected {width}x{height}"
    if (depth, colour) != kind or interlace:
        return f"bit depth {depth} colour type {colour} interlace {interlace}, expected {kind}"
    channels = png.CHANNELS[colour]
    stride = 1 + w * channels * depth // 8
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(stream), h * stride + 1)
    except zlib.error as exc:
        return f"image data does not inflate ({exc})"
    if not inflater.eof or len(raw) != h * stride:
        return f"image data holds {len(raw)} bytes, expected {h * stride}"
    if max(raw[::stride]) > 4:
        return "invalid filter byte"
    return None


@lru_cache(maxsize=1)
def _schema_validator():
    return schema_check.compile_schema(records.schema())


def schema_errors(record: dict) -> list[str]:
    """The first way `record` breaks the scene record's JSON Schema ([] if it does not)."""
    try:
        _schema_validator()(record)
    except schema_check.SchemaError as exc:
        return [f"schema: {exc}"]
    return []


# --- labels --------------------------------------------------------------------------------

def spec_from_record(record: dict) -> SceneSpec:
    """The SceneSpec a metadata document describes (position = 3d_coords[:2])."""
    objects = [
        ObjectSpec(
            id=o["id"], shape=o["shape"], size=o["size"], size_value=o["size_value"],
            color=o["color"], rgb=list(o["rgb"]), material=o["material"],
            position=list(o["3d_coords"][:2]), rotation=o["rotation"],
        )
        for o in record["objects"]
    ]
    lights = [LightSpec(**light) for light in record["lights"]]
    return SceneSpec(
        record["scene_id"], record["split"], record["index"], record["seed"],
        record["retries"], record["tau"], objects, lights,
    )


def differences(stored, computed, where: str = ""):
    """Yield 'path: stored X, recomputed Y' for every leaf that differs.

    Floats agree within REL_TOL (stored derived numbers are rounded); all else exactly.
    """
    if isinstance(stored, dict) and isinstance(computed, dict):
        for key in sorted(set(stored) | set(computed)):
            yield from differences(
                stored.get(key, "<absent>"), computed.get(key, "<absent>"), f"{where}.{key}"
            )
    elif isinstance(stored, list) and isinstance(computed, list):
        if len(stored) != len(computed):
            yield f"{where}: stored {len(stored)} entries, recomputed {len(computed)}"
            return
        for i, (a, b) in enumerate(zip(stored, computed, strict=True)):
            yield from differences(a, b, f"{where}[{i}]")
    elif _number(stored) and _number(computed) and not (
        isinstance(stored, bool) or isinstance(computed, bool)
    ):
        if not math.isclose(stored, computed, rel_tol=REL_TOL, abs_tol=1e-9):
            yield f"{where}: stored {stored!r}, recomputed {computed!r}"
    elif stored != computed or type(stored) is not type(computed):
        yield f"{where}: stored {stored!r}, recomputed {computed!r}"


def _number(x) -> bool:
    return isinstance(x, int | float)


def recompute(record: dict, masks: list[np.ndarray]) -> dict:
    """The metadata document rebuilt from its own geometry and masks by the labelling code."""
    spec = spec_from_record(record)
    width, height = record["image_size"]
    rebuilt = records.scene_record(spec, camera.rig(width, height), masks, record["render"])
    return json.loads(json.dumps(rebuilt))  # the types a reader of the stored file sees


# --- one scene -----------------------------------------------------------------------------

def check_scene(output_dir, scene: plan.PlannedScene, settings: dict, labels: bool) -> list:
    """Problems of one complete scene (its metadata exists)."""
    out = Path(output_dir)
    paths = records.scene_paths(scene.scene_id)
    meta = paths["metadata"]
    try:
        record = records.read_scene_record(out / meta)
    except (ValueError, OSError) as exc:  # JSONDecodeError is a ValueError
        return [Problem(meta, f"does not parse: {exc}")]
    problems = [Problem(meta, e) for e in schema_errors(record)]
    if problems:
        return problems
    problems += _check_identity(record, scene, settings, paths)
    width, height = settings["resolution"]
    for rel in [paths["image_single"], *paths["images"]]:
        problems += _png_problem(out, rel, width, height, RGB8)
    if not problems and (out / paths["image_single"]).read_bytes() != (
        out / paths["images"][0]
    ).read_bytes():
        problems.append(Problem(paths["image_single"], "differs from view_0"))
    masks = []
    for k, rel in enumerate(paths["masks"]):
        bad = _png_problem(out, rel, width, height, GRAY16)
        problems += bad
        if not bad:
            masks.append(png.read_png16(out / rel))
            problems += check_mask(record, k, masks[-1], rel)
    if labels and not problems:
        computed = recompute(record, masks)
        diffs = [] if computed == record else list(differences(record, computed, "metadata"))
        problems += [Problem(meta, f"label mismatch: {d}") for d in diffs[:MAX_DIFFS]]
        if len(diffs) > MAX_DIFFS:
            problems.append(Problem(meta, f"... {len(diffs) - MAX_DIFFS} more label mismatches"))
    return problems


def _png_problem(out: Path, rel: str, width: int, height: int, kind) -> list[Problem]:
    if not (out / rel).exists():
        return [Problem(rel, "missing")]
    reason = check_png(out / rel, width, height, kind)
    return [Problem(rel, reason)] if reason else []


def _check_identity(record, scene: plan.PlannedScene, settings: dict, paths: dict) -> list:
    """The metadata describes the planned scene, at the configured size, with its own files."""
    meta = paths["metadata"]
    problems = [
        Problem(meta, f"{key} is {record[key]!r}, planned {getattr(scene, key)!r}")
        for key in ("scene_id", "split", "index", "n_objects", "tau")
        if record[key] != getattr(scene, key)
    ]
    if record["seed"] != scene.retry_seed(record["retries"], settings["seed"]):
        problems.append(Problem(meta, f"seed {record['seed']} is not retry {record['retries']}'s"))
    if list(record["image_size"]) != list(settings["resolution"]):
        problems.append(
            Problem(meta, f"image_size {record['image_size']}, config {settings['resolution']}")
        )
    if len(record["objects"]) != record["n_objects"]:
        problems.append(Problem(meta, f"{len(record['objects'])} objects, n_objects says "
                                      f"{record['n_objects']}"))
    named = [record["single_view"]["image"]]
    for view in record["views"]:
        named += [view["image"], view["mask"]]
    expected = [paths["image_single"]]
    for image, mask in zip(paths["images"], paths["masks"], strict=True):
        expected += [image, mask]
    if named != expected:
        problems.append(Problem(meta, f"names files {named}, expected {expected}"))
    return problems


def check_mask(record: dict, k: int, mask: np.ndarray, rel: str) -> list[Problem]:
    """Mask values name objects; each object's pixel count is its stored visible_pixels and,
    from the canonical width up, at least MIN_MASK_FRACTION of its silhouette."""
    n = record["n_objects"]
    if int(mask.max()) > n:
        return [Problem(rel, f"value {int(mask.max())} but the scene has {n} objects")]
    counts = np.bincount(mask.ravel(), minlength=n + 1)[1:]
    fine = mask.shape[1] >= MIN_FRACTION_WIDTH
    problems = []
    for i, obj in enumerate(record["views"][k]["objects"]):
        if obj["visible_pixels"] != counts[i]:
            problems.append(Problem(rel, f"{obj['id']} has {counts[i]} pixels, metadata says "
                                         f"visible_pixels {obj['visible_pixels']}"))
        if fine and counts[i] < MIN_MASK_FRACTION * obj["silhouette_pixels"]:
            problems.append(Problem(rel, f"{obj['id']} visible fraction "
                                         f"{counts[i] / obj['silhouette_pixels']:.3f} < "
                                         f"{MIN_MASK_FRACTION}"))
        if not obj["in_frame"]:
            problems.append(Problem(rel, f"{obj['id']} is not entirely in frame"))
    return problems


def _check_scene_task(args) -> tuple[str, list[Problem]]:
    output_dir, scene, settings, labels = args
    try:
        return scene.scene_id, check_scene(output_dir, scene, settings, labels)
    except Exception as exc:  # noqa: BLE001 - any crash on a file is a finding about that file
        meta = records.scene_paths(scene.scene_id)["metadata"]
        return scene.scene_id, [Problem(meta, f"could not be checked: {exc!r}")]


# --- the folder ----------------------------------------------------------------------------

def sample_ids(scene_ids: list[str], fraction: float, global_seed: int) -> set[str]:
    """A seeded sample of ceil(fraction * n) scene ids (all of them at fraction 1)."""
    if not (isinstance(fraction, int | float) and 0 < fraction <= 1):
        raise ValueError(f"sample fraction must be in (0, 1], got {fraction!r}")
    g = rng.generator(rng.h(f"{global_seed}:validate"))
    keys = [float(g.random()) for _ in scene_ids]
    k = math.ceil(fraction * len(scene_ids))
    order = sorted(range(len(scene_ids)), key=keys.__getitem__)
    return {scene_ids[i] for i in order[:k]}


def check_index(output_dir, plan_data: dict, scenes: list[plan.PlannedScene], complete: set,
                failures: dict) -> list[Problem]:
    """The plan, splits/*.json and dataset_info.json against the plan and the scene files."""
    out = Path(output_dir)
    settings = plan_data["settings"]
    problems = []
    regenerated = plan.build_plan(settings["counts"], settings["seed"])
    if [s.to_dict() for s in regenerated] != plan_data["scenes"]:
        problems.append(Problem(".scenegen/plan.json", "scenes differ from the plan of its seed "
                                                       "and counts"))
    by_id = {s.scene_id: s for s in scenes}
    listed: set[str] = set()
    for split in settings["counts"]:
        rel = f"splits/{split}.json"
        try:
            entries = json.loads((out / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(Problem(rel, f"missing or unreadable: {exc}"))
            continue
        problems += _check_split(out, rel, split, entries, by_id, complete, listed)
    for scene in scenes:
        if scene.scene_id in complete and scene.scene_id not in listed:
            problems.append(Problem(f"splits/{scene.split}.json",
                                    f"complete scene {scene.scene_id} is not listed"))
    for path in sorted((out / "metadata").glob("*.json")):
        if path.stem not in by_id:
            problems.append(Problem(f"metadata/{path.name}", "scene is not in the plan"))
    return problems + _check_info(out, plan_data, listed, failures)


def _check_split(out, rel, split, entries, by_id, complete, listed) -> list[Problem]:
    if not isinstance(entries, list):
        return [Problem(rel, "is not a JSON list")]
    problems, indices = [], []
    for i, entry in enumerate(entries):
        sid = entry.get("scene_id") if isinstance(entry, dict) else None
        scene = by_id.get(sid)
        if scene is None or scene.split != split:
            problems.append(Problem(rel, f"entry {i}: scene {sid!r} is not planned in {split}"))
            continue
        if sid in listed:
            problems.append(Problem(rel, f"entry {i}: duplicate of scene {sid}"))
            continue
        listed.add(sid)
        indices.append(scene.index)
        if entry != dataset.split_entry(scene):
            problems.append(Problem(rel, f"entry {i} ({sid}) differs from the planned entry"))
        if sid not in complete:
            problems.append(Problem(rel, f"entry {i}: scene {sid} is not complete"))
        problems += [
            Problem(p, f"missing (listed in {rel})")
            for p in dataset.entry_paths(dataset.split_entry(scene))
            if not (out / p).exists() and sid in complete
        ]
    if indices != sorted(indices):
        problems.append(Problem(rel, "entries are not in index order"))
    planned = Counter(s.n_objects for s in by_id.values() if s.split == split)
    levels_allowed = presets.split_rule(split).levels
    base = sum(planned.values()) // len(levels_allowed)
    if set(planned) - set(levels_allowed) or any(
        planned[n] not in (base, base + 1) for n in levels_allowed
    ):
        problems.append(Problem(".scenegen/plan.json", f"{split} object counts "
                                f"{dict(sorted(planned.items()))} are not balanced (SPEC 2)"))
    return problems


def _check_info(out: Path, plan_data: dict, listed: set, failures: dict) -> list[Problem]:
    rel = "dataset_info.json"
    try:
        info = json.loads((out / rel).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [Problem(rel, f"missing or unreadable: {exc}")]
    problems = []
    if info.get("fingerprint") != plan_data["fingerprint"]:
        problems.append(Problem(rel, "fingerprint differs from .scenegen/plan.json"))
    counts = Counter(sid.rsplit("_", 1)[0] for sid in listed)
    if info.get("splits") != {split: counts[split] for split in plan_data["settings"]["counts"]}:
        problems.append(Problem(rel, f"splits {info.get('splits')} do not match the split files"))
    failed = {f.get("scene_id") for f in info.get("failed", [])}
    if not set(failures) - listed <= failed:
        problems.append(Problem(rel, "failed list misses scenes of .scenegen/failures.json"))
    return problems


def validate(output_dir, sample: float = 1.0, jobs: int = 1) -> Report:
    """Check the folder; labels are recomputed for a seeded `sample` fraction of the scenes."""
    out = Path(output_dir)
    try:
        plan_data, scenes = dataset.read_plan(out)
        settings = plan_data["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Report(corrupt=[Problem(".scenegen/plan.json", f"unreadable: {exc!r}")])
    try:
        failures = dataset.read_failures(out)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Report(corrupt=[Problem(".scenegen/failures.json", f"unreadable: {exc!r}")])
    report = Report()
    complete = {s.scene_id for s in dataset.complete_scenes(out, scenes)}
    for scene in scenes:
        if scene.scene_id not in complete:
            reason = failures.get(scene.scene_id, "missing: no metadata file")
            report.incomplete.append(Problem(scene.scene_id, reason))
    report.corrupt += check_index(out, plan_data, scenes, complete, failures)
    todo = [s for s in scenes if s.scene_id in complete]
    chosen = sample_ids([s.scene_id for s in todo], sample, settings["seed"]) if todo else set()
    tasks = [(str(out), s, settings, s.scene_id in chosen) for s in todo]
    for _, problems in _run(tasks, jobs):
        report.corrupt += problems
    report.scenes_checked, report.labels_checked = len(tasks), len(chosen)
    return report


def _run(tasks, jobs: int):
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if jobs == 1 or len(tasks) < 2:
        return map(_check_scene_task, tasks)
    # spawn: the caller may have loaded bpy or threads, which do not survive a fork well
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    with pool:
        return list(pool.map(_check_scene_task, tasks, chunksize=max(1, len(tasks) // jobs // 4)))
