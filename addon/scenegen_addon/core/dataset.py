"""The merge step (SPEC 7): splits/<split>.json and dataset_info.json from the scene files.

Pure: it reads the plan, run and failure files the launcher wrote under .scenegen/ and the
metadata of every complete scene, and writes the two kinds of index files atomically. The
output depends only on the folder's contents (plan order, fixed key order) apart from
`created` and the timing figures.
"""

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from . import launch, presets, records
from .constraints import round_sig
from .plan import PlannedScene

DATASET_NAME = "scenegen"
WORLD_TYPES = ("qrr", "trr", "topology", "size", "closer")
VIEW_TYPES = ("qrr", "trr", "axial", "occlusion", "size")
COMPARATORS = ("<", "~=", ">")
DIFFICULTIES = (1, 2, 3, 4, 5, 6)


def _read_json(path: Path, default=None):
    if not path.exists():
        if default is not None:
            return default
        raise FileNotFoundError(f"{path} is missing")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_plan(output_dir) -> tuple[dict, list[PlannedScene]]:
    """The settings and planned scenes of `.scenegen/plan.json`."""
    data = _read_json(launch.internal(output_dir) / "plan.json")
    return data, [PlannedScene(**entry) for entry in data["scenes"]]


def read_run(output_dir) -> dict:
    return _read_json(launch.internal(output_dir) / "run.json", default={})


def read_failures(output_dir) -> dict[str, str]:
    """scene_id -> reason, from `.scenegen/failures.json` (empty when absent)."""
    entries = _read_json(launch.internal(output_dir) / "failures.json", default=[])
    return {e["scene_id"]: e["reason"] for e in entries}


def split_entry(scene: PlannedScene) -> dict:
    """One entry of splits/<split>.json (SPEC 7); paths relative to the output folder."""
    paths = records.scene_paths(scene.scene_id)
    return {
        "scene_id": scene.scene_id,
        "split": scene.split,
        "single_view_image": paths["image_single"],
        "multi_view_images": list(paths["images"]),
        "masks": list(paths["masks"]),
        "metadata": paths["metadata"],
        "n_objects": scene.n_objects,
        "tau": scene.tau,
    }


def entry_paths(entry: dict) -> list[str]:
    return [
        entry["single_view_image"], *entry["multi_view_images"], *entry["masks"],
        entry["metadata"],
    ]


class _SplitStats:
    """Accumulates one split's statistics scene by scene (records are not kept in memory)."""

    def __init__(self, levels):
        self.objects = Counter({n: 0 for n in levels})
        self.retries = Counter()
        self.world = Counter({t: 0 for t in WORLD_TYPES})
        self.views = Counter({t: 0 for t in VIEW_TYPES})
        self.comparators = Counter({c: 0 for c in COMPARATORS})
        self.difficulty = Counter({d: 0 for d in DIFFICULTIES})
        self.fraction_sum = 0.0
        self.fraction_count = 0
        self.render_seconds = 0.0

    def add(self, record: dict) -> None:
        self.objects[record["n_objects"]] += 1
        self.retries[record["retries"]] += 1
        world = record["constraints"]["world"]
        for kind in WORLD_TYPES:
            self.world[kind] += len(world[kind])
        for view in record["constraints"]["views"]:
            for kind in VIEW_TYPES:
                self.views[kind] += len(view[kind])
        for r in world["qrr"]:
            self.comparators[r["comparator"]] += 1
            self.difficulty[r["difficulty"]] += 1
        for view in record["views"]:
            for obj in view["objects"]:
                self.fraction_sum += obj["visible_fraction"]
                self.fraction_count += 1
        self.render_seconds += record["render"]["seconds"]

    def to_dict(self) -> dict:
        count = self.fraction_count
        return {
            "n_scenes": sum(self.objects.values()),
            "object_counts": _histogram(self.objects),
            "retries": _histogram(self.retries),
            "constraint_counts": {"world": dict(self.world), "views": dict(self.views)},
            "world_qrr_comparators": dict(self.comparators),
            "world_qrr_difficulty": _histogram(self.difficulty),
            "mean_visible_fraction": round(self.fraction_sum / count, 6) if count else None,
        }


def _histogram(counter: Counter) -> dict[str, int]:
    """Integer-keyed counts as a JSON object with keys in numeric order."""
    return {str(k): counter[k] for k in sorted(counter)}


def complete_scenes(output_dir, scenes: list[PlannedScene]) -> list[PlannedScene]:
    """Planned scenes whose metadata file exists (SPEC 1: the mark of a complete scene)."""
    return [s for s in scenes if launch.is_complete(output_dir, s.scene_id)]


def merge(output_dir) -> dict:
    """Write splits/<split>.json and dataset_info.json; return dataset_info.

    A planned scene is listed in its split when its metadata and every file it names exist;
    otherwise it goes to `failed`, with the launcher's reason (.scenegen/failures.json) or a
    description of what is missing, so nothing drops out silently.
    """
    out = Path(output_dir)
    plan_data, scenes = read_plan(out)
    settings = plan_data["settings"]
    run = read_run(out)
    failures = read_failures(out)
    splits = {split: [] for split in settings["counts"]}
    stats = {split: _SplitStats(presets.split_rule(split).levels) for split in splits}
    failed = []
    for scene in scenes:
        entry = split_entry(scene)
        missing = [p for p in entry_paths(entry) if not (out / p).exists()]
        if not missing:
            stats[scene.split].add(records.read_scene_record(out / entry["metadata"]))
            splits[scene.split].append(entry)
        elif scene.scene_id in failures:
            failed.append({"scene_id": scene.scene_id, "reason": failures[scene.scene_id]})
        else:
            meta_missing = entry["metadata"] in missing
            reason = "not rendered" if meta_missing else "missing files: " + ", ".join(missing)
            failed.append({"scene_id": scene.scene_id, "reason": reason})
    for split, entries in splits.items():
        records.write_json_atomic(out / "splits" / f"{split}.json", entries, compact=False)
    info = dataset_info(settings, plan_data["fingerprint"], run, splits, stats, failed)
    records.write_json_atomic(out / "dataset_info.json", info, compact=False)
    return info


def dataset_info(settings, fingerprint, run, splits, stats, failed) -> dict:
    """The dataset_info.json document of SPEC 7."""
    n_complete = sum(len(entries) for entries in splits.values())
    wall = run.get("wall_seconds")
    render_seconds = sum(s.render_seconds for s in stats.values())
    per_hour = n_complete / wall * 3600 if wall else None
    return {
        "name": DATASET_NAME,
        "version": settings["spec_version"],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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

