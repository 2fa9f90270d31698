"""The merge step (FORMAT 7): splits/<split>.json, dataset_info.json and checksums.sha256.

Pure: it reads the plan, run and failure files the launcher wrote under .scenegen/ and each
complete scene's manifest (core/manifest: its files' hashes and its share of the
statistics, a few hundred bytes), never the metadata files themselves unless a manifest is
missing, and writes the index files atomically. The output depends only on the folder's
contents (plan order, fixed key order) apart from `created` and the timing figures.

The documents are made in two steps, so that the validator, which reads every scene on its
workers anyway, computes what the merge would write from its own reading of the files and
this module's code: each scene's `SceneShare` (`scene_share`), then `documents` and
`checksum_entries` from the shares.
"""

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from . import failures, files, layout, manifest, plan, presets
from .constraints import VIEW_TYPES, WORLD_TYPES, round_sig
from .plan import PlannedScene

DATASET_NAME = "scenegen"
COMPARATORS = ("<", "~=", ">")
DIFFICULTIES = (1, 2, 3, 4, 5, 6)


def read_run(output_dir) -> dict:
    path = layout.run_file(output_dir)
    return layout.read_json(path) if path.exists() else {}


def split_entry(scene: PlannedScene, passes: tuple = ()) -> dict:
    """One entry of splits/<split>.json (FORMAT 7); paths relative to the output folder, made
    only from a well-formed scene id. Each optional pass lists its 4 files after the masks
    ("depth"), only when the plan has it."""
    paths = layout.scene_paths(layout.check_scene_id(scene.scene_id), passes)
    return {
        "scene_id": scene.scene_id,
        "split": scene.split,
        "single_view_image": paths["image_single"],
        "multi_view_images": list(paths["images"]),
        "masks": list(paths["masks"]),
        **{name: list(paths[name]) for name in passes},
        "metadata": paths["metadata"],
        "n_objects": scene.n_objects,
        "tau": scene.tau,
    }


class _SplitStats:
    """Adds up one split's statistics from its scenes' summaries (core/manifest.Tally)."""

    def __init__(self, levels):
        self.objects = Counter({n: 0 for n in levels})
        self.retries = Counter()
        self.world = Counter({t: 0 for t in WORLD_TYPES})
        self.views = Counter({t: 0 for t in VIEW_TYPES})
        self.comparators = Counter({c: 0 for c in COMPARATORS})
        self.difficulty = Counter({d: 0 for d in DIFFICULTIES})
        self.fraction_sum = Decimal(0)
        self.fraction_count = 0
        self.render_seconds = 0.0

    def add(self, summary: dict) -> None:
        self.objects[summary["n_objects"]] += 1
        self.retries[summary["retries"]] += 1
        self.world.update(summary["world"])
        self.views.update(summary["views"])
        self.comparators.update(summary["world_qrr_comparators"])
        self.difficulty.update({int(d): n for d, n in summary["world_qrr_difficulty"].items()})
        self.fraction_sum += Decimal(summary["visible_fraction_sum"])
        self.fraction_count += summary["visible_fraction_count"]
        self.render_seconds += summary["render_seconds"]

    def to_dict(self) -> dict:
        count = self.fraction_count
        return {
            "n_scenes": sum(self.objects.values()),
            "object_counts": _histogram(self.objects),
            "retries": _histogram(self.retries),
            "constraint_counts": {"world": dict(self.world), "views": dict(self.views)},
            "world_qrr_comparators": dict(self.comparators),
            "world_qrr_difficulty": _histogram(self.difficulty),
            "mean_visible_fraction": round(float(self.fraction_sum / count), 6) if count else None,
        }


def _histogram(counter: Counter) -> dict[str, int]:
    """Integer-keyed counts as a JSON object with keys in numeric order."""
    return {str(k): counter[k] for k in sorted(counter)}


def complete_scenes(output_dir, scenes: list[PlannedScene]) -> list[PlannedScene]:
    """Planned scenes whose metadata file exists (FORMAT 1: the mark of a complete scene)."""
    return [s for s in scenes if layout.is_complete(output_dir, s.scene_id)]


def merge(output_dir, trust_manifests: bool = True) -> dict:
    """Write splits/<split>.json, dataset_info.json and checksums.sha256 (the SHA-256 of
    every file of the dataset, as `sha256sum -c` reads them); return dataset_info.
    trust_manifests=False reads every record and hashes every file instead of reading the
    manifests (the merge before core/manifest: benchmarks/bench_end_stage.py)."""
    out = Path(output_dir)
    plan_data, scenes = plan.read_document(layout.plan_file(out))
    passes = layout.passes(plan_data["settings"])
    shares = {s.scene_id: scene_share(out, s.scene_id, passes, trust_manifests) for s in scenes}
    splits, info = documents(out, plan_data, scenes, shares)
    layout.mark_merge_pending(out)  # the files below are replaced one at a time
    for split, entries in splits.items():
        layout.write_json(out / layout.split_file(split), entries, compact=False)
    layout.write_json(out / layout.DATASET_INFO, info, compact=False)
    entries = checksum_entries(scenes, shares, passes, index_digests(out, splits))
    layout.write_text(out / layout.CHECKSUMS, (checksum_line(*entry) for entry in entries))
    layout.merge_pending_file(out).unlink()
    return info


def scene_manifest(output_dir, scene_id: str, passes: tuple = (), trust: bool = True) -> dict:
    """A complete scene's manifest: the stored one when `trust`, else (or when there is
    none) one made in memory from its files and its metadata (slow: reads the record)."""
    stored = manifest.read(output_dir, scene_id, passes) if trust else None
    if stored is not None:
        return stored
    out = Path(output_dir)
    record = read_record(out / layout.scene_paths(scene_id)["metadata"])
    return {"scene_id": scene_id, "summary": manifest.Tally.of_record(record).summary(),
            "files": {rel: manifest.file_entry(out / rel)
                      for rel in layout.scene_files(scene_id, passes)}}


@dataclass(frozen=True)
class SceneShare:
    """What one planned scene adds to the merge's files. When some of its files are
    `missing` it is a `failed` entry of dataset_info; otherwise it is listed in its split,
    its files are lines of checksums.sha256 (`digests`: their raw SHA-256, 32 bytes each, in
    layout.scene_files order) and its `summary` (core/manifest.Tally) is added to the
    statistics; `summary` is None when its record cannot be read or tallied (`fault` says
    why: no dataset_info can be made then). A few hundred bytes, so a validator's worker
    returns it."""

    missing: tuple[str, ...] = ()
    digests: bytes = b""
    summary: dict | None = None
    fault: str = ""


def missing_files(output_dir, scene_id: str, passes: tuple = ()) -> list[str]:
    """The files of a scene that do not exist (all of them exist for a listed scene)."""
    out = Path(output_dir)
    return [rel for rel in layout.scene_files(scene_id, passes) if not (out / rel).exists()]


def scene_share(output_dir, scene_id: str, passes: tuple = (), trust: bool = True,
                record: dict | None = None) -> SceneShare:
    """A scene's share: from its manifest when `trust` and it has a sound one, else from its
    files (each hashed) and its record (`record` when the caller has parsed it already: the
    validator; read here otherwise)."""
    out = Path(output_dir)
    missing = missing_files(out, scene_id, passes)
    if missing:
        return SceneShare(missing=tuple(missing))
    names = layout.scene_files(scene_id, passes)
    stored = manifest.read(out, scene_id, passes) if trust else None
    if stored is not None:
        try:
            digests = b"".join(bytes.fromhex(stored["files"][rel]["sha256"]) for rel in names)
            if len(digests) == 32 * len(names):
                return SceneShare(digests=digests, summary=stored["summary"])
        except (TypeError, ValueError, KeyError):
            pass  # not a sound manifest: made again from the files below
    digests = b"".join(hashlib.sha256(files.read_bytes(out / rel)).digest() for rel in names)
    meta = layout.scene_paths(scene_id)["metadata"]
    try:
        record = record if record is not None else layout.read_json(out / meta)
    except (OSError, ValueError) as exc:  # JSON and UTF-8 errors are ValueErrors
        return SceneShare(digests=digests, fault=f"{meta} cannot be read: {exc}")
    try:
        summary = manifest.Tally.of_record(record).summary()
    except Exception as exc:  # noqa: BLE001 - whatever is wrong in the record, it is named
        return SceneShare(digests=digests, fault=f"{meta} cannot be tallied: {exc!r}")
    return SceneShare(digests=digests, summary=summary)


def documents(output_dir, plan_data: dict, scenes: list[PlannedScene],
              shares: dict[str, SceneShare]) -> tuple[dict[str, list], dict]:
    """The split lists and dataset_info the merge writes, computed and not written, from
    each planned scene's share (scene id -> SceneShare; a scene without one is not
    rendered), the plan (plan.read_document) and the run and failure files under
    .scenegen/. ValueError naming the record when a listed scene has no summary.

    A planned scene is listed in its split when its metadata and every file it names exist;
    otherwise it goes to `failed`, with the launcher's reason (.scenegen/failures.json) or a
    description of what is missing, so nothing drops out silently.
    """
    out = Path(output_dir)
    settings = plan_data["settings"]
    run = read_run(out)
    failed_before = failures.read(out)
    passes = layout.passes(settings)
    splits = {split: [] for split in settings["counts"]}
    stats = {split: _SplitStats(presets.split_rule(split).levels) for split in splits}
    failed = []
    for scene in scenes:
        share = shares.get(scene.scene_id)
        if share is not None and not share.missing:
            if share.summary is None:
                raise ValueError(share.fault)
            stats[scene.split].add(share.summary)
            splits[scene.split].append(split_entry(scene, passes))
        elif scene.scene_id in failed_before:
            failed.append({"scene_id": scene.scene_id, "reason": failed_before[scene.scene_id]})
        else:
            missing = share.missing if share is not None else ()
            rendered = missing and layout.scene_paths(scene.scene_id)["metadata"] not in missing
            reason = "missing files: " + ", ".join(missing) if rendered else "not rendered"
            failed.append({"scene_id": scene.scene_id, "reason": reason})
    return splits, dataset_info(settings, plan_data["fingerprint"], run, splits, stats, failed)


def index_digests(output_dir, splits, unreadable=()) -> dict[str, str | None]:
    """The SHA-256 of the index files that end checksums.sha256 (each split file, then
    dataset_info.json), as they are on disk; None for those in `unreadable` (the
    validator's: missing, or reached through a link)."""
    out = Path(output_dir)
    return {rel: None if rel in unreadable
            else hashlib.sha256(files.read_bytes(out / rel)).hexdigest()
            for rel in layout.index_files(splits) if rel != layout.CHECKSUMS}


def checksum_entries(scenes: list[PlannedScene], shares: dict[str, SceneShare], passes: tuple,
                     index: dict[str, str | None]):
    """(file, hex SHA-256) of each line of checksums.sha256, in order: every file of each
    listed scene in plan order, then the index files (`index`: index_digests)."""
    for scene in scenes:
        share = shares.get(scene.scene_id)
        if share is not None and not share.missing:
            for i, rel in enumerate(layout.scene_files(scene.scene_id, passes)):
                yield rel, share.digests[32 * i:32 * i + 32].hex()
    yield from index.items()


def checksum_line(rel: str, digest: str) -> str:
    """One line of checksums.sha256, as `sha256sum` writes and `sha256sum -c` reads it."""
    return f"{digest}  {rel}\n"


CHECKSUM_LINE = re.compile(rb"([0-9a-f]{64})  ([^\n]*)\n")
MAX_LINE = 8192  # bytes: a path is at most 4096; a longer "line" is read in pieces


def open_checksums(output_dir):
    """checksums.sha256 opened safely (core.files) for `checksum_lines`."""
    return os.fdopen(files.open_fd(Path(output_dir) / layout.CHECKSUMS, os.O_RDONLY), "rb")


def checksum_lines(stored):
    """The lines of an open checksums.sha256, each at most MAX_LINE bytes (a file of one
    endless line is read in pieces, never whole)."""
    return iter(lambda: stored.readline(MAX_LINE), b"")


def read_checksums(output_dir, wanted) -> dict[str, str]:
    """The SHA-256 checksums.sha256 lists for each file of `wanted` that it lists (read
    line by line, only those kept). OSError when it cannot be opened."""
    listed = {}
    with open_checksums(output_dir) as stored:
        for line in checksum_lines(stored):
            match = CHECKSUM_LINE.fullmatch(line)
            name = match and match[2].decode("utf-8", "replace")
            if name in wanted:
                listed[name] = match[1].decode()
    return listed


def read_record(path: Path) -> dict:
    """A scene record; a file that does not parse is named in the error."""
    try:
        return layout.read_json(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read: {exc}") from exc


def dataset_info(settings, fingerprint, run, splits, stats, failed) -> dict:
    """The dataset_info.json document of FORMAT 7."""
    n_complete = sum(len(entries) for entries in splits.values())
    wall = run.get("wall_seconds")
    render_seconds = sum(s.render_seconds for s in stats.values())
    per_hour = n_complete / wall * 3600 if wall else None
    return {
        "name": DATASET_NAME,
        "version": settings["spec_version"],
        "created": layout.now_iso(),
        "generator": {
            "name": settings["generator"],
            "version": settings["generator_version"],
            "blender_version": settings["blender_version"],
        },
        "fingerprint": fingerprint,
        "config": {
            "size": settings["size"],
            "quality": settings["quality"],
            "resolution": list(settings["resolution"]),
            "samples": settings["samples"],
            "seed": settings["seed"],
            "n_gpus": run.get("n_gpus"),
            "workers": run.get("workers"),
            "scenes_per_split": dict(settings["counts"]),
            **({"passes": list(layout.passes(settings))} if layout.passes(settings) else {}),
        },
        "splits": {split: len(entries) for split, entries in splits.items()},
        "failed": failed,
        "statistics": {split: s.to_dict() for split, s in stats.items()},
        "timing": {
            "wall_seconds": wall,
            "render_seconds": round(render_seconds, 3),
            "scenes_per_hour": round_sig(per_hour)[0] if per_hour is not None else None,
        },
    }

