"""The validator's logic: is an output folder a complete, uncorrupted dataset?

What it checks, for every scene unless noted:
- the plan proves itself (core.plan.read_document); failures, split files and
  dataset_info.json have the right shape, every scene id in them is well formed and planned
  before any path is made from it, and the index files (checksums.sha256 included) equal
  what the merge would write now: core.merge's own code, fed what the per-scene checks read
  (each scene's files hashed and its record tallied on the workers, core.merge.SceneShare);
- a folder that was never merged (no index file at all) is incomplete, not corrupt: the
  report says so and how to finish it;
- nothing in the layout is unpredicted (stray files and folders, links, leftovers);
- each scene's files: present, complete PNGs of the configured size (no bytes after IEND);
  the metadata against the JSON Schema, the plan, and the scene re-sampled from its seed
  (every object, light, camera and render setting);
- each view image against its mask (core.content): its edges lie on the mask's boundaries,
  not better a few pixels away, and the pixels under each object look like the object's
  colour, so a swapped, foreign, shifted or blank image is caught even with fresh checksums
  (from content.MIN_CONTENT_WIDTH up; below, the report says it was not checked);
- mask pixel counts, and the labels recomputed from geometry and masks (for every scene or
  a seeded sample), on a process pool;
- with --passes depth, each depth map against the geometry (core.depth): every object pixel
  on that object's surface, every other pixel on the ground plane or seeing nothing.

Pure (stdlib and numpy, no bpy), so it runs in the user's Python or Blender's own. Any
exception while checking a file becomes a Problem naming that file, never a traceback.
A Report lists corrupt files and incomplete scenes; launcher.validate makes it an exit code.
"""

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import (
    camera,
    content,
    depth,
    layout,
    manifest,
    merge,
    parallel,
    plan,
    png,
    presets,
    records,
    rng,
    sampling,
    schema_check,
)
from .spec import SceneSpec

MIN_MASK_FRACTION = 0.20  # FORMAT 4: the gate's 0.25 less pixel quantisation slack
# That slack holds at the gate's own frame and finer: in a smaller test render a small object
# covers a handful of pixels and may lose them all, so the check starts at this width.
MIN_FRACTION_WIDTH = presets.CANONICAL_RESOLUTION[0]
REL_TOL = 1e-5  # stored derived numbers carry 6 significant digits
MAX_DIFFS = 5  # label differences reported per scene
MAX_STRAYS = 20  # stray entries named one by one
MAX_PER_FILE = 20  # problems named one by one in one index file



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
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    unmerged: str = ""  # when no index file exists: why, and how to finish the folder
    scenes_checked: int = 0
    labels_checked: int = 0


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the record's schema ----------------------------------------------------------------

@lru_cache(maxsize=1)
def _schema_validator():
    return schema_check.compile_schema(records.schema())


def schema_errors(record) -> list[str]:
    """The first way `record` breaks the scene record's JSON Schema ([] if it does not)."""
    try:
        _schema_validator()(record)
    except schema_check.SchemaError as exc:
        return [f"schema: {exc}"]
    return []


# --- labels --------------------------------------------------------------------------------

def differences(stored, computed, where: str = "", rel_tol: float = REL_TOL):
    """Yield 'path: stored X, recomputed Y' for every leaf that differs.

    Floats agree within rel_tol (stored derived numbers are rounded); all else exactly.
    """
    if isinstance(stored, dict) and isinstance(computed, dict):
        for key in sorted(set(stored) | set(computed), key=str):
            yield from differences(stored.get(key, "<absent>"), computed.get(key, "<absent>"),
                                   f"{where}.{key}", rel_tol)
    elif isinstance(stored, list) and isinstance(computed, list):
        if len(stored) != len(computed):
            yield f"{where}: stored {len(stored)} entries, recomputed {len(computed)}"
            return
        for i, (a, b) in enumerate(zip(stored, computed, strict=True)):
            yield from differences(a, b, f"{where}[{i}]", rel_tol)
    elif _number(stored) and _number(computed):
        if not math.isclose(stored, computed, rel_tol=rel_tol, abs_tol=1e-9 if rel_tol else 0):
            yield f"{where}: stored {stored!r}, recomputed {computed!r}"
    elif stored != computed or type(stored) is not type(computed):
        yield f"{where}: stored {_short(stored)}, recomputed {_short(computed)}"


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _as_read(document):
    """`document` with the types a reader of its JSON file sees (tuples -> lists, ...)."""
    return json.loads(json.dumps(document))


def recompute(record: dict, masks: list[np.ndarray]) -> dict:
    """The metadata document rebuilt from its own geometry and masks by the labelling code."""
    spec = SceneSpec.from_record(record)
    width, height = record["image_size"]
    rebuilt = records.scene_record(spec, camera.rig(width, height), masks, record["render"])
    return _as_read(rebuilt)


# --- the scene against its plan ------------------------------------------------------------

def check_planned(record: dict, scene: plan.PlannedScene, settings: dict, meta: str) -> list:
    """The record describes the scene its plan entry samples to: the same retry, every object
    attribute and light exactly, the cameras of its resolution, the plan's render settings."""
    try:
        spec = sampling.sample_scene(scene, settings["seed"])
    except sampling.SamplingFailed as exc:
        return [Problem(meta, f"its plan entry samples no scene ({exc.reason}), yet it exists")]
    expected = {
        "seed": spec.seed,
        "retries": spec.retries,
        "objects": [obj.record() for obj in spec.objects],
        "lights": [asdict(light) for light in spec.lights],
    }
    stored = {key: record[key] for key in expected}
    diffs = list(differences(stored, _as_read(expected), "", rel_tol=0))
    width, height = record["image_size"]
    for view, stored_view in zip(camera.rig(width, height), record["views"], strict=True):
        want = _as_read({"camera": view.record(), "directions": view.directions})
        have = {key: stored_view[key] for key in want}
        diffs += differences(have, want, f".views[{view.index}]", rel_tol=0)
    problems = [Problem(meta, f"not the scene its seed gives: {d[1:]}".replace(
        "recomputed", "re-sampled")) for d in diffs[:MAX_DIFFS]]
    if len(diffs) > MAX_DIFFS:
        problems.append(Problem(meta, f"... {len(diffs) - MAX_DIFFS} more differences from "
                                      "the re-sampled scene"))
    return problems + _check_render(record["render"], settings, meta)


def _check_render(render: dict, settings: dict, meta: str) -> list[Problem]:
    planned = {"engine": presets.RENDER_SETTINGS["engine"], "samples": settings["samples"],
               "blender_version": settings["blender_version"]}
    return [Problem(meta, f"render.{key} is {_short(render[key])}, the plan says {want!r}")
            for key, want in planned.items()
            if render[key] != want or type(render[key]) is not type(want)]


def _check_identity(record, scene: plan.PlannedScene, settings: dict, paths: dict) -> list:
    """The metadata describes the planned scene, at the configured size, with its own files."""
    meta = paths["metadata"]
    problems = [
        Problem(meta, f"{key} is {_short(record[key])}, planned {getattr(scene, key)!r}")
        for key in ("scene_id", "split", "index", "n_objects", "tau")
        if record[key] != getattr(scene, key)
    ]
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
        problems.append(Problem(meta, f"names files {_short(named)}, expected {expected}"))
    return problems


# --- the image against its mask (core.content measures) -----------------------------------

def check_content(images: list, masks: list, record: dict, paths: dict) -> list[Problem]:
    """Each view image against its own mask (core.content.view_faults), named by its file."""
    return [Problem(paths["images"][k], fault)
            for k in range(len(images))
            for fault in content.view_faults(images, masks, k, record["objects"],
                                             paths["masks"][k])]


# --- one scene -----------------------------------------------------------------------------

def check_scene(output_dir, scene: plan.PlannedScene, settings: dict, labels: bool,
                pictures: bool = True) -> list:
    """Problems of one complete scene (its metadata exists)."""
    return _check_scene(Path(output_dir), scene, settings, labels, pictures)[0]


def _check_scene(out: Path, scene: plan.PlannedScene, settings: dict, labels: bool,
                 pictures: bool) -> tuple[list[Problem], dict | None]:
    """(problems, the record when it parses and meets the schema, else None)."""
    paths = layout.scene_paths(layout.check_scene_id(scene.scene_id), layout.passes(settings))
    meta = paths["metadata"]
    record, problems = _read_record(out, meta)
    if record is None:
        return problems, None
    problems += _check_identity(record, scene, settings, paths)
    problems += check_planned(record, scene, settings, meta)
    width, height = settings["resolution"]
    for rel in [paths["image_single"], *paths["images"]]:
        problems += _png_problem(out, rel, width, height, png.RGB8)
    images_ok = not problems
    if images_ok and (out / paths["image_single"]).read_bytes() != (
        out / paths["images"][0]
    ).read_bytes():
        problems.append(Problem(paths["image_single"], "differs from view_0"))
    masks = []
    for k, rel in enumerate(paths["masks"]):
        bad = _png_problem(out, rel, width, height, png.GRAY16)
        problems += bad
        if not bad:
            masks.append(png.read_png16(out / rel, (width, height)))
            problems += check_mask(record, k, masks[-1], rel)
    for k, rel in enumerate(paths.get("depth", ())):
        bad = _png_problem(out, rel, width, height, png.GRAY16)
        problems += bad
        if not bad and len(masks) == camera.N_VIEWS:
            problems += [Problem(rel, fault) for fault in depth.view_faults(
                png.read_png16(out / rel, (width, height)), masks[k],
                SceneSpec.from_record(record).objects, camera.View(k, width, height))]
    if pictures and images_ok and len(masks) == camera.N_VIEWS:
        images = [png.read_png(out / rel, (width, height)) for rel in paths["images"]]
        problems += check_content(images, masks, record, paths)
    if labels and not problems:
        problems += _check_labels(record, masks, meta)
    return problems, record


def _read_record(out: Path, meta: str) -> tuple[dict | None, list[Problem]]:
    fault = layout.path_fault(out, meta)
    if fault:
        return None, [Problem(meta, fault)]
    try:
        record = layout.read_json(out / meta)
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError: ValueError
        return None, [Problem(meta, f"does not parse: {exc}")]
    errors = schema_errors(record)
    return (None if errors else record), [Problem(meta, e) for e in errors]


def _check_labels(record: dict, masks: list, meta: str) -> list[Problem]:
    computed = recompute(record, masks)
    diffs = [] if computed == record else list(differences(record, computed, "metadata"))
    problems = [Problem(meta, f"label mismatch: {d}") for d in diffs[:MAX_DIFFS]]
    if len(diffs) > MAX_DIFFS:
        problems.append(Problem(meta, f"... {len(diffs) - MAX_DIFFS} more label mismatches"))
    return problems


def _png_problem(out: Path, rel: str, width: int, height: int, kind) -> list[Problem]:
    fault = layout.path_fault(out, rel) or png.check_png(out / rel, width, height, kind)
    return [Problem(rel, fault)] if fault else []


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


def _check_scene_task(args) -> tuple[str, list[Problem], merge.SceneShare | None]:
    """One complete scene, on a worker: its problems, and its share of the merge's files
    (its files hashed, its record tallied), which the whole-folder checks compare."""
    output_dir, scene, settings, labels, pictures = args
    out, record = Path(output_dir), None
    meta = layout.scene_paths(scene.scene_id)["metadata"]
    try:
        problems, record = _check_scene(out, scene, settings, labels, pictures)
    except Exception as exc:  # noqa: BLE001 - any crash on a file is a finding about that file
        problems = [Problem(meta, f"could not be checked: {exc!r}")]
    share, problem = _scene_share(out, scene.scene_id, settings, record)
    return scene.scene_id, problems + problem + _against_manifest(out, scene.scene_id,
                                                                  settings, share), share


def _against_manifest(out: Path, scene_id: str, settings: dict, share) -> list[Problem]:
    """Each file's SHA-256 as read now against the one its manifest took when the scene was
    written (.scenegen/scenes/<id>.json, when the folder has one): checksums.sha256 edited
    to match a damaged file still disagrees with it. A scene without a manifest (a dataset
    copied without .scenegen/, or a worker stopped between the two) is checked against
    checksums.sha256 only."""
    passes = layout.passes(settings)
    stored = manifest.read(out, scene_id, passes) if share and share.digests else None
    if stored is None:
        return []
    rel = manifest.path(out, scene_id).relative_to(out).as_posix()
    problems = []
    for i, name in enumerate(layout.scene_files(scene_id, passes)):
        entry = stored["files"][name]
        if not isinstance(entry, dict) or entry.get("sha256") != share.digests[
                32 * i:32 * i + 32].hex():
            problems.append(Problem(name, f"its SHA-256 is not the one {rel} took when the "
                                          "scene was written (the file or the manifest "
                                          "changed since)"))
    return problems


def _scene_share(out: Path, scene_id: str, settings: dict, record: dict | None = None):
    """(the scene's core.merge.SceneShare, []) from its files, never through a link: (None,
    []) when one of them is reached through a link (the survey reports it), (None, [the
    Problem]) when they cannot be read. `record`: the scene's record, when already read."""
    passes = layout.passes(settings)
    try:
        if any(layout.path_fault(out, rel) not in (None, "missing")
               for rel in layout.scene_files(scene_id, passes)):
            return None, []
        return merge.scene_share(out, scene_id, passes, trust=False, record=record), []
    except Exception as exc:  # noqa: BLE001 - any crash on a file is a finding about that file
        meta = layout.scene_paths(scene_id)["metadata"]
        return None, [Problem(meta, f"could not be hashed: {exc!r}")]


# --- files read by id: failures, splits ------------------------------------------------------

def sample_ids(scene_ids: list[str], fraction: float, global_seed: int) -> set[str]:
    """A seeded sample of ceil(fraction * n) scene ids (all of them at fraction 1)."""
    if not (isinstance(fraction, int | float) and 0 < fraction <= 1):
        raise ValueError(f"sample fraction must be in (0, 1], got {fraction!r}")
    g = rng.generator(rng.h(f"{global_seed}:validate"))
    keys = [float(g.random()) for _ in scene_ids]
    k = math.ceil(fraction * len(scene_ids))
    order = sorted(range(len(scene_ids)), key=keys.__getitem__)
    return {scene_ids[i] for i in order[:k]}


def _read_index_json(out: Path, rel: str):
    """(document, None) or (None, Problem naming the file)."""
    fault = layout.path_fault(out, rel)
    if fault:
        return None, Problem(rel, fault)
    try:
        return layout.read_json(out / rel), None
    except (OSError, ValueError) as exc:
        return None, Problem(rel, f"does not parse: {exc}")


def read_failures(out: Path, by_id: dict) -> tuple[dict[str, str], list[Problem]]:
    """.scenegen/failures.json as scene_id -> reason; malformed entries are problems."""
    rel = f"{layout.INTERNAL}/{layout.failures_file(out).name}"
    if not (out / rel).exists() and not (out / rel).is_symlink():
        return {}, []
    data, problem = _read_index_json(out, rel)
    if problem:
        return {}, [problem]
    if not isinstance(data, list):
        return {}, [Problem(rel, f"is not a JSON list: {_short(data)}")]
    failed, problems = {}, []
    for i, entry in enumerate(data):
        try:
            if not isinstance(entry, dict) or set(entry) != {"scene_id", "reason"}:
                raise ValueError(f"is not {{scene_id, reason}}: {_short(entry)}")
            if not isinstance(entry["reason"], str):
                raise ValueError(f"reason is not text: {_short(entry['reason'])}")
            failed[plan.planned_id(entry["scene_id"], by_id)] = entry["reason"]
        except ValueError as exc:
            problems.append(Problem(rel, f"entry {i}: {exc}"))
    return failed, problems


def check_splits(out: Path, settings: dict, by_id: dict, complete: set,
                 expected: dict | None) -> list[Problem]:
    """Each split file: a list of the planned entries of its complete scenes, in index
    order, each once; and equal to what the merge writes (`expected`, when known)."""
    problems: list[Problem] = []
    listed: set[str] = set()
    unread = set()
    for split in settings["counts"]:
        rel = layout.split_file(split)
        entries, problem = _read_index_json(out, rel)
        if problem:
            problems.append(problem)
            unread.add(split)
            continue
        found = _check_split(rel, split, entries, by_id, complete, listed,
                             layout.passes(settings))
        if not found and expected is not None and entries != expected.get(split):
            found = [Problem(rel, "differs from what the merge writes from the scene files")]
        problems += _at_most(found, rel)
    missing = [Problem(layout.split_file(scene.split), f"complete scene {sid} is not listed")
               for sid, scene in by_id.items()
               if sid in complete and sid not in listed and scene.split not in unread]
    return problems + _at_most(missing, "splits")


def _at_most(problems: list[Problem], rel: str) -> list[Problem]:
    """The first MAX_PER_FILE problems and a count of the rest: a file broken throughout
    is named, not listed line by line."""
    if len(problems) <= MAX_PER_FILE:
        return problems
    return problems[:MAX_PER_FILE] + [Problem(rel, f"... {len(problems) - MAX_PER_FILE} more "
                                                   "problems")]


def _check_split(rel, split, entries, by_id, complete, listed, passes) -> list[Problem]:
    if not isinstance(entries, list):
        return [Problem(rel, f"is not a JSON list: {_short(entries)}")]
    problems, indices = [], []
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"is not a JSON object: {_short(entry)}")
            sid = plan.planned_id(entry.get("scene_id"), by_id, split)
        except ValueError as exc:
            problems.append(Problem(rel, f"entry {i}: {exc}"))
            continue
        if sid in listed:
            problems.append(Problem(rel, f"entry {i}: duplicate of scene {sid}"))
            continue
        listed.add(sid)
        indices.append(by_id[sid].index)
        if entry != merge.split_entry(by_id[sid], passes):
            problems.append(Problem(rel, f"entry {i} ({sid}) differs from the planned entry"))
        if sid not in complete:
            problems.append(Problem(rel, f"entry {i}: scene {sid} is not complete"))
    if indices != sorted(indices):
        problems.append(Problem(rel, "entries are not in index order"))
    return problems


# --- dataset_info.json ---------------------------------------------------------------------

def check_info(out: Path, by_id: dict, expected: dict | None, why_not: str | None) -> list:
    """dataset_info.json equals the merge's document recomputed from the folder, all but its
    `created` time, which must be ISO 8601; its failed scenes are planned ones."""
    rel = layout.DATASET_INFO
    info, problem = _read_index_json(out, rel)
    if problem:
        return [problem]
    if not isinstance(info, dict):
        return [Problem(rel, f"is not a JSON object: {_short(info)}")]
    problems = _at_most([Problem(rel, f"failed entry {i}: {e}")
                         for i, e in _failed_faults(info, by_id)], rel)
    created = info.get("created")
    try:
        datetime.fromisoformat(created)
    except (TypeError, ValueError):
        problems.append(Problem(rel, f"created {_short(created)} is not an ISO 8601 time"))
    if expected is None:
        return problems + [Problem(rel, f"cannot be recomputed: {why_not}")]
    stored = {k: v for k, v in info.items() if k != "created"}
    want = _as_read({k: v for k, v in expected.items() if k != "created"})
    diffs = list(differences(stored, want, "", rel_tol=0))
    problems += [Problem(rel, f"not what the merge computes: {d[1:]}") for d in diffs[:MAX_DIFFS]]
    if len(diffs) > MAX_DIFFS:
        problems.append(Problem(rel, f"... {len(diffs) - MAX_DIFFS} more differences"))
    return problems


def _failed_faults(info: dict, by_id: dict):
    """(index, fault) of each entry of info["failed"] that is not {planned scene_id, reason}."""
    failed = info.get("failed")
    for i, entry in enumerate(failed if isinstance(failed, list) else []):
        try:
            if not isinstance(entry, dict) or set(entry) != {"scene_id", "reason"}:
                raise ValueError(f"is not {{scene_id, reason}}: {_short(entry)}")
            plan.planned_id(entry["scene_id"], by_id)
        except ValueError as exc:
            yield i, exc


def _merge_documents(out: Path, plan_data: dict, scenes: list, shares: dict):
    """(splits, dataset_info, None) as the merge would write them now, by the merge's code
    from the scenes' shares (what the workers read: the files and records, not the
    manifests the merge may have trusted), or (None, None, reason)."""
    unread = _unread(scenes, shares)
    if unread:
        return None, None, f"scene {unread} could not be read"
    try:
        splits, info = merge.documents(out, plan_data, scenes, shares)
        return _as_read(splits), info, None
    except Exception as exc:  # noqa: BLE001 - any fault is reported on dataset_info.json
        return None, None, f"{type(exc).__name__}: {exc}"


def _unread(scenes: list, shares: dict) -> str | None:
    """The first complete scene whose share could not be made (its files unreadable)."""
    return next((s.scene_id for s in scenes if s.scene_id in shares
                 and shares[s.scene_id] is None), None)


# --- checksums.sha256 ----------------------------------------------------------------------

def check_checksums(out: Path, scenes: list, settings: dict, shares: dict,
                    why_not: str | None) -> list[Problem]:
    """checksums.sha256 is, byte for byte, what the merge writes now: a line for every file
    of each listed scene (its SHA-256 as the worker hashed it) in plan order, then the
    split files and dataset_info.json as they are on disk. Read line by line, never whole
    (`large` has 2.6 million lines); the lines at fault are named when it differs."""
    rel = layout.CHECKSUMS
    fault = layout.path_fault(out, rel)
    if fault:
        return [Problem(rel, fault)]
    unread = _unread(scenes, shares)
    if why_not or unread:
        why_not = why_not or f"scene {unread} could not be read"
        return [Problem(rel, f"cannot be recomputed: {why_not}")]
    index = merge.index_digests(out, settings["counts"], unreadable={
        name for name in layout.index_files(settings["counts"]) if layout.path_fault(out, name)})
    passes = layout.passes(settings)

    def expected():
        return merge.checksum_entries(scenes, shares, passes, index)

    with merge.open_checksums(out) as stored:
        for line, want in itertools.zip_longest(merge.checksum_lines(stored), expected()):
            if line is None or want is None or not _checksum_matches(line, *want):
                break
        else:
            return []
    return _at_most(_checksum_faults(out, dict(expected())), rel)


def _checksum_matches(line: bytes, name: str, digest: str | None) -> bool:
    """The stored line is the merge's; any SHA-256 will do for an index file that cannot be
    read (missing, or a link: reported on its own)."""
    if digest is not None:
        return line == merge.checksum_line(name, digest).encode()
    match = merge.CHECKSUM_LINE.fullmatch(line)
    return bool(match) and match.group(2) == name.encode()


def _checksum_faults(out: Path, expected: dict) -> list[Problem]:
    """What differs between the stored lines and the merge's (`expected`: file -> SHA-256,
    in order), line by line, each read in pieces of at most merge.MAX_LINE bytes."""
    rel, problems, seen, order = layout.CHECKSUMS, [], set(), []
    with merge.open_checksums(out) as stored:
        for n, line in _numbered(merge.checksum_lines(stored)):
            match = merge.CHECKSUM_LINE.fullmatch(line)
            name = match and match.group(2).decode("utf-8", "replace")
            if not match:
                problems.append(Problem(rel, f"line {n} is not '<SHA-256>  <file>': "
                                             f"{_short(line)}"))
            elif name not in expected:
                problems.append(Problem(rel, f"line {n} lists {_short(name)}, not a file the "
                                             "merge lists"))
            elif name in seen:
                problems.append(Problem(rel, f"line {n} lists {name} a second time"))
            else:
                seen.add(name)
                order.append(name)
                digest = match.group(1).decode()
                if expected[name] not in (None, digest):
                    problems.append(Problem(rel, f"line {n}: {name} has the SHA-256 "
                                                 f"{expected[name][:16]}... now, the line says "
                                                 f"{digest[:16]}... (the file or the line "
                                                 "changed after the merge)"))
            if len(problems) > MAX_PER_FILE:
                return problems + [Problem(rel, "... and more faulty lines")]
    absent = [name for name in expected if name not in seen]
    problems += [Problem(rel, f"does not list {name}") for name in absent[:MAX_PER_FILE]]
    if len(absent) > MAX_PER_FILE:
        problems.append(Problem(rel, f"... nor {len(absent) - MAX_PER_FILE} more files"))
    if not problems and order != [name for name in expected if name in seen]:
        problems.append(Problem(rel, "its lines are not in the merge's order"))
    return problems or [Problem(rel, "differs from what the merge writes")]


def _numbered(pieces):
    """(line number, piece) for the pieces of a file's lines: a long line's pieces share
    its number."""
    n = 1
    for piece in pieces:
        yield n, piece
        n += piece.endswith(b"\n")


# --- the folder ----------------------------------------------------------------------------

def survey(out: Path, scenes: list[plan.PlannedScene], settings: dict) -> layout.Survey:
    """Everything in the folder beyond the plan's names (links never followed)."""
    predicted = layout.Predicted([s.scene_id for s in scenes], settings["counts"],
                                 layout.passes(settings))
    return layout.survey(out, predicted, limit=MAX_STRAYS)


def stray_problems(out: Path, found: layout.Survey, scenes: list[plan.PlannedScene],
                   settings: dict, incomplete: set) -> list[Problem]:
    """FORMAT 1: nothing in the layout but what the plan predicts. A link is a problem (it is
    never followed); a leftover temporary file is stray unless its scene is incomplete (a
    resume removes it); .scenegen/ is scenegen's own."""
    predicted = layout.Predicted([s.scene_id for s in scenes], settings["counts"],
                                 layout.passes(settings))
    planned = {s.scene_id for s in scenes}
    problems = [Problem(rel, _stray_message(rel, planned)) for rel in found.foreign]
    if found.n_foreign > len(found.foreign):
        problems.append(Problem(".", f"... {found.n_foreign - len(found.foreign)} more stray "
                                     "entries"))
    problems += [Problem(rel, "is a symbolic link (never followed; the layout holds files)")
                 for rel in found.links]
    for path in found.temporary:
        rel = path.relative_to(out).as_posix()
        if not rel.startswith(layout.INTERNAL + "/") and predicted.scene(rel) not in incomplete:
            problems.append(Problem(rel, "stray: a leftover temporary file of a write that was "
                                         "interrupted"))
    return problems


def _stray_message(rel: str, planned: set) -> str:
    """Say so when the stray entry is named after a scene the plan does not hold."""
    parts = rel.rstrip("/").split("/")
    at = 2 if parts[0] == "images" else 1 if parts[0] in (
        "masks", "metadata", *layout.PASSES) else len(parts)
    stem = parts[at].split(".", 1)[0] if at < len(parts) else ""
    if layout.SCENE_ID.match(stem) and stem not in planned:
        return f"stray: scene {stem} is not in the plan"
    kind = "folder" if rel.endswith("/") else "file"
    return f"stray: a {kind} the plan does not predict (FORMAT 1)"


def validate(output_dir, sample: float = 1.0, jobs: int = 1, map_tasks=None,
             progress=None) -> Report:
    """Check the folder; labels are recomputed for a seeded `sample` fraction of the scenes,
    on `jobs` processes, or by `map_tasks(function, tasks)` (the launcher's Ray cluster);
    `progress(n, total)` is called as the n-th of the total scenes' checks come back.
    Every complete scene is one task, which also returns its share of the merge's files;
    the whole-folder checks then compare the index files with the merge's documents made
    from those shares."""
    out = Path(output_dir)
    plan_data, scenes, problem = read_plan(out)
    if problem:
        return Report(corrupt=[problem])
    settings = plan_data["settings"]
    by_id = {s.scene_id: s for s in scenes}
    failed, problems = read_failures(out, by_id)
    complete = {s.scene_id for s in merge.complete_scenes(out, scenes)}
    if layout.merge_pending(out) is None:  # else a rerun may have completed a failed scene
        problems += [Problem(f"{layout.INTERNAL}/{layout.failures_file(out).name}",
                             f"lists {sid} as failed, but it is complete")
                     for sid in failed if sid in complete]
    incomplete = [sid for sid in by_id if sid not in complete]
    report = Report(corrupt=problems, notes=_notes(settings), incomplete=[
        Problem(sid, failed.get(sid, "missing: no metadata file")) for sid in incomplete])
    pictures = settings["resolution"][0] >= content.MIN_CONTENT_WIDTH
    todo = [s for s in scenes if s.scene_id in complete]
    chosen = sample_ids([s.scene_id for s in todo], sample, settings["seed"]) if todo else set()
    tasks = [(str(out), s, settings, s.scene_id in chosen, pictures) for s in todo]
    shares, scene_problems = {}, []
    results = (map_tasks(_check_scene_task, tasks) if map_tasks
               else parallel.ordered_map(_check_scene_task, tasks, jobs))
    for scene_id, problems, share in parallel.counted(results, len(tasks), progress):
        scene_problems += problems
        shares[scene_id] = share
    problems, report.unmerged = check_folder(out, plan_data, scenes, complete, shares,
                                             set(failed))
    report.corrupt += problems + scene_problems
    report.scenes_checked, report.labels_checked = len(tasks), len(chosen)
    return report


def check_folder(out: Path, plan_data: dict, scenes: list, complete: set,
                 shares: dict | None = None, failed: set = frozenset()
                 ) -> tuple[list[Problem], str]:
    """The folder as a whole: stray entries, then the split files, dataset_info.json and
    checksums.sha256 against the merge's documents made now from the complete scenes'
    `shares` (scene id -> core.merge.SceneShare, as _check_scene_task returns them; a
    complete scene without one has its share made here, serially), never reading through
    a link. Returns (problems, why the folder is not merged: "" when it was; `failed`: the
    scenes the launcher gave up on)."""
    settings = plan_data["settings"]
    by_id = {s.scene_id: s for s in scenes}
    try:
        found = survey(out, scenes, settings)
    except OSError as exc:
        found, problems = None, [Problem(".", f"cannot be listed: {exc}")]
    else:
        problems = stray_problems(out, found, scenes, settings, set(by_id) - complete)
    if not any((out / rel).exists() or (out / rel).is_symlink()
               for rel in layout.index_files(settings["counts"])):
        return problems, _unmerged(len(complete), len(failed - complete), len(scenes))
    pending = layout.merge_pending(out)
    if pending:  # the index files are the last merge's: not checked against the scenes
        return problems, pending
    shares = dict(shares or {})
    for scene in scenes:  # every complete scene is covered, whatever the tasks returned
        if scene.scene_id in complete and scene.scene_id not in shares:
            shares[scene.scene_id], problem = _scene_share(out, scene.scene_id, settings)
            problems += problem
    unsafe = ("the folder cannot be listed" if found is None else
              "the folder holds links" if found.links else None)
    if unsafe:
        expected_splits, expected_info, why_not = None, None, unsafe
    else:
        expected_splits, expected_info, why_not = _merge_documents(out, plan_data, scenes,
                                                                   shares)
    problems += _guarded("splits", check_splits, out, settings, by_id, complete,
                         expected_splits)
    problems += _guarded(layout.DATASET_INFO, check_info, out, by_id, expected_info,
                         why_not)
    problems += _guarded(layout.CHECKSUMS, check_checksums, out, scenes, settings, shares,
                         unsafe)
    return problems, ""


def _unmerged(n_complete: int, n_failed: int, n_planned: int) -> str:
    """What a folder without splits/, dataset_info.json and checksums.sha256 is."""
    files = "no splits/*.json, dataset_info.json or checksums.sha256"
    if n_complete == n_planned:
        return f"not merged ({files}): every scene is complete; rerun the build to merge"
    if n_complete + n_failed == n_planned:
        return (f"not merged ({files}): every scene is complete or failed; rerun the build "
                "to merge")
    return (f"not merged ({files}): {n_complete} of {n_planned} scenes complete, the build "
            "did not finish; rerun it to render the rest and merge")


def read_plan(out: Path):
    """(document, scenes, None) when .scenegen/plan.json proves itself (core.plan) and has
    the settings the checks use; else (None, None, the Problem)."""
    rel = f"{layout.INTERNAL}/plan.json"
    fault = layout.path_fault(out, rel)
    if fault:
        return None, None, Problem(rel, fault)
    try:
        plan_data, scenes = plan.read_document(layout.plan_file(out))
        check_settings(plan_data["settings"])
    except ValueError as exc:  # plan.PlanError is a ValueError
        return None, None, Problem(rel, getattr(exc, "fault", None) or str(exc))
    return plan_data, scenes, None


SETTING_TYPES = {"resolution": list, "samples": int, "seed": int, "blender_version": str,
                 "counts": dict}


def check_settings(settings: dict) -> None:
    """ValueError unless the settings the checks rely on are there with their types (the
    fingerprint proves they were not edited, not that they were well made)."""
    for key, kind in SETTING_TYPES.items():
        value = settings.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"settings.{key} is {_short(value)}, not of type {kind.__name__}")
    resolution = settings["resolution"]
    if len(resolution) != 2 or not all(isinstance(v, int) for v in resolution):
        raise ValueError(f"settings.resolution is {_short(resolution)}, not [W, H]")
    presets.check_resolution(*resolution)


def _guarded(rel: str, check, *args) -> list[Problem]:
    """A whole-folder check whose crash is a finding about `rel`, never a traceback."""
    try:
        return check(*args)
    except Exception as exc:  # noqa: BLE001
        return [Problem(rel, f"could not be checked: {exc!r}")]


def _notes(settings: dict) -> list[str]:
    width, height = settings["resolution"]
    notes = []
    if width < content.MIN_CONTENT_WIDTH:
        notes.append(f"images not checked against their masks: {width}x{height} is below "
                     f"{content.MIN_CONTENT_WIDTH} px wide, where that check is not sure")
    if width < MIN_FRACTION_WIDTH:
        notes.append(f"mask visible fractions not checked: {width}x{height} is below "
                     f"{MIN_FRACTION_WIDTH} px wide")
    return notes

