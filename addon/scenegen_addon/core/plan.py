"""The dataset plan (FORMAT 2): scene ids, seeds, object counts, the settings that change the
output and their fingerprint.

A scene depends only on (global seed, split, index), never on the size preset: object
counts come in blocks of L consecutive indices, each block a seeded permutation of the L
levels, so `tiny`'s scenes are the first scenes of every larger preset.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import about, layout, presets
from .rng import generator, h, index

SPEC_VERSION = "1"
MAX_RETRIES = 100
# The most scenes a plan may hold (6.6 x `large`): the launcher and every worker hold the
# whole plan in memory, about 250 bytes a scene each, and rebuild it to check plan.json.
MAX_SCENES = 1_000_000


class PlanError(ValueError):
    """A plan.json that cannot be trusted. The message names the file and the fault;
    `settings` are its settings when they could be read, to name what differs."""

    def __init__(self, path, fault: str, settings: dict | None = None):
        super().__init__(f"{path}: {fault}")
        self.fault, self.settings = fault, settings


@dataclass(frozen=True)
class PlannedScene:
    scene_id: str
    split: str
    index: int
    n_objects: int
    tau: float
    seed: int  # the seed of retry 0

    def retry_seed(self, k: int, global_seed: int) -> int:
        """Seed of sampling retry k (0 is the scene seed itself)."""
        if k == 0:
            return self.seed
        return h(f"{global_seed}:{self.split}:{self.index}:{k}")

    def to_dict(self) -> dict:
        return asdict(self)


def scene_seed(global_seed: int, split: str, index_: int) -> int:
    return h(f"{global_seed}:{split}:{index_}")


def id_digits(count: int) -> int:
    """Zero-padding of a split's ids: 5 digits, more when its largest index needs them."""
    return max(5, len(str(max(count - 1, 0))))


def scene_id(split: str, index_: int, digits: int = 5) -> str:
    return f"{split}_{index_:0{digits}d}"


def block_levels(global_seed: int, split: str, block: int) -> list[int]:
    """The object counts of block `block`: a permutation of the split's levels.

    Draw order: for each position in turn, one `.random()` picks among the levels not
    yet used (kept in ascending order), floor(u * remaining).
    """
    remaining = list(presets.split_rule(split).levels)
    g = generator(h(f"{global_seed}:{split}:block:{block}"))
    return [remaining.pop(index(g, len(remaining))) for _ in range(len(remaining))]


def object_counts(global_seed: int, split: str, count: int) -> list[int]:
    levels = len(presets.split_rule(split).levels)
    counts: list[int] = []
    for block in range((count + levels - 1) // levels):
        counts.extend(block_levels(global_seed, split, block))
    return counts[:count]


def resolve_counts(size: str | None = None, scenes_per_split: int | None = None) -> dict:
    """Scenes per split from a size preset, or the same count for every split."""
    if scenes_per_split is not None:
        if (
            isinstance(scenes_per_split, bool)
            or not isinstance(scenes_per_split, int)
            or (scenes_per_split <= 0)
        ):
            raise ValueError(
                f"scenes_per_split must be a positive integer, got {scenes_per_split!r}"
            )
        most = MAX_SCENES // len(presets.SPLITS)
        if scenes_per_split > most:
            raise ValueError(f"scenes_per_split must be at most {most} (a plan holds at most "
                             f"{MAX_SCENES} scenes), got {scenes_per_split}")
        return {split: scenes_per_split for split in presets.SPLITS}
    return presets.size_counts(size or presets.DEFAULT_SIZE)


def check_counts(counts: dict) -> dict[str, int]:
    """Scenes per split in SPLITS order; refused before anything is built when unknown,
    not positive, or above MAX_SCENES in all."""
    if not isinstance(counts, dict):
        raise ValueError(f"counts must map splits to scene counts, got {counts!r}")
    unknown = set(counts) - set(presets.SPLITS)
    if unknown:
        raise ValueError(
            f"unknown split {sorted(unknown)[0]!r}: allowed are {', '.join(presets.SPLITS)}"
        )
    for split, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise ValueError(f"count of split {split!r} must be a positive integer, got {count!r}")
    if sum(counts.values()) > MAX_SCENES:
        raise ValueError(f"a plan holds at most {MAX_SCENES} scenes, got {sum(counts.values())}")
    return {split: counts[split] for split in presets.SPLITS if split in counts}


def build_plan(
    counts: dict[str, int], global_seed: int = presets.DEFAULT_SEED
) -> list[PlannedScene]:
    """Every planned scene, split by split in SPLITS order, index order within a split."""
    plan = []
    for split, count in check_counts(counts).items():
        tau = presets.split_rule(split).tau
        digits = id_digits(count)
        for i, n in enumerate(object_counts(global_seed, split, count)):
            plan.append(
                PlannedScene(
                    scene_id(split, i, digits), split, i, n, tau, scene_seed(global_seed, split, i)
                )
            )
    return plan


def plan_settings(*, seed: int, size: str | None, counts: dict, quality: str,
                  resolution: tuple[int, int], samples: int, blender_version: str,
                  numpy_version: str, passes: tuple = ()) -> dict:
    """Everything that changes the output (FORMAT 2): hashed into the fingerprint. The
    optional passes enter only when there are some, so that a plan without them is the one
    it was before v1.1 (the same fingerprint, the same output)."""
    settings = {
        "generator": about.NAME,
        "generator_version": about.VERSION,
        "spec_version": SPEC_VERSION,
        "seed": seed,
        "size": size,
        "counts": dict(counts),
        "quality": quality,
        "resolution": [int(resolution[0]), int(resolution[1])],
        "samples": samples,
        "cycles": dict(presets.quality(quality).cycles),
        "render": dict(presets.RENDER_SETTINGS),
        "blender_version": blender_version,
        "numpy_version": numpy_version,
    }
    if passes:
        settings["passes"] = list(passes)
    return settings


def fingerprint(settings: dict) -> str:
    """SHA-256 of the canonical JSON of everything that changes the output."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_difference(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two fingerprint settings, one per key."""
    keys = sorted(set(old) | set(new))
    return [
        f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}"
        for key in keys
        if old.get(key) != new.get(key)
    ]


# --- plan.json ------------------------------------------------------------------------------

def document(settings: dict) -> dict:
    """The contents of .scenegen/plan.json for these settings."""
    return {
        "fingerprint": fingerprint(settings),
        "settings": settings,
        "scenes": [s.to_dict() for s in build_plan(settings["counts"], settings["seed"])],
    }


SCENE_KEYS = tuple(f.name for f in fields(PlannedScene))


def read_document(path, rebuild: bool = True) -> tuple[dict, list[PlannedScene]]:
    """plan.json and its scenes, trusted only when it proves itself: its settings hash to its
    fingerprint, every scene id is well-formed, and (with `rebuild`) its scene list is the one
    its settings give. Anything else raises PlanError naming the fault, before any path is
    made from its contents. rebuild=False is for a worker, whose launcher checked the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(path, f"cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # JSON and UTF-8 errors
        raise PlanError(path, f"is not valid JSON ({exc})") from None
    settings = data.get("settings") if isinstance(data, dict) else None
    settings = settings if isinstance(settings, dict) else None
    expected = {"fingerprint": str, "settings": dict, "scenes": list}
    bad = [key for key, kind in expected.items()
           if not isinstance(data, dict) or not isinstance(data.get(key), kind)]
    if bad:
        raise PlanError(path, f"has no valid {' or '.join(repr(k) for k in bad)} "
                        "(truncated or edited?)", settings)
    if fingerprint(settings) != data["fingerprint"]:
        raise PlanError(path, "its settings do not give its fingerprint (edited by hand?)",
                        settings)
    try:
        layout.passes(settings)
    except ValueError as exc:
        raise PlanError(path, f"its settings give no plan: {exc}", settings) from None
    scenes = [_planned(path, i, entry, settings) for i, entry in enumerate(data["scenes"])]
    if rebuild:
        _check_scene_list(path, settings, scenes)
    elif len({s.scene_id for s in scenes}) != len(scenes):
        raise PlanError(path, "it lists a scene id twice", settings)
    return data, scenes


def planned_id(value, by_id: dict, split: str | None = None) -> str:
    """`value` as the id of a planned scene (`by_id`: scene id -> PlannedScene), of `split`
    when given; ValueError naming what is wrong otherwise. Every id read from a file or a
    command line goes through it before any path is made from it (the batch, the
    validator)."""
    scene_id = layout.check_scene_id(value)
    scene = by_id.get(scene_id)
    if scene is None:
        raise ValueError(f"scene {scene_id} is not in the plan")
    if split is not None and scene.split != split:
        raise ValueError(f"scene {scene_id} is planned in {scene.split}, not {split}")
    return scene_id


def _planned(path, i: int, entry, settings: dict) -> PlannedScene:
    if not isinstance(entry, dict) or set(entry) != set(SCENE_KEYS):
        raise PlanError(path, f"scene entry {i} is malformed: {str(entry)[:80]}", settings)
    try:
        layout.check_scene_id(entry["scene_id"])
    except ValueError as exc:
        raise PlanError(path, f"scene entry {i}: {exc}", settings) from None
    return PlannedScene(**entry)


def _check_scene_list(path, settings: dict, scenes: list[PlannedScene]) -> None:
    """The scene list must be exactly the one the settings give (ids, seeds, counts, tau)."""
    seed = settings.get("seed")
    try:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer of 0 or more, got {seed!r}")
        expected = build_plan(settings.get("counts"), seed)
    except ValueError as exc:
        raise PlanError(path, f"its settings give no plan: {exc}", settings) from None
    difference = scene_list_difference(scenes, expected)
    if difference:
        raise PlanError(path, "its scene list is not the one its settings give: " + difference,
                        settings)


def scene_list_difference(stored: list[PlannedScene], expected: list[PlannedScene]) -> str:
    """The first difference between two scene lists ("" when equal), types included: 5.0 is
    not the object count 5."""
    for i, (have, want) in enumerate(zip(stored, expected, strict=False)):
        changes = [f"{key} {getattr(have, key)!r} -> {getattr(want, key)!r}"
                   for key in SCENE_KEYS
                   if type(getattr(have, key)) is not type(getattr(want, key))
                   or getattr(have, key) != getattr(want, key)]
        if changes:
            return f"scene entry {i} ({have.scene_id}): " + ", ".join(changes)
    if len(stored) != len(expected):
        return f"it lists {len(stored)} scenes, its settings give {len(expected)}"
    return ""
