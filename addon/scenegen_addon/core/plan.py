"""The dataset plan (SPEC 2): scene ids, seeds, object counts and the fingerprint.

A scene depends only on (global seed, split, index), never on the size preset: object
counts come in blocks of L consecutive indices, each block a seeded permutation of the L
levels, so `tiny`'s scenes are the first scenes of every larger preset.
"""

import hashlib
import json
from dataclasses import asdict, dataclass

from . import presets
from .rng import generator, h, index

MAX_RETRIES = 100


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
        return {split: scenes_per_split for split in presets.SPLITS}
    return presets.size_counts(size or presets.DEFAULT_SIZE)


def check_counts(counts: dict) -> dict[str, int]:
    unknown = set(counts) - set(presets.SPLITS)
    if unknown:
        raise ValueError(
            f"unknown split {sorted(unknown)[0]!r}: allowed are {', '.join(presets.SPLITS)}"
        )
    for split, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise ValueError(f"count of split {split!r} must be a positive integer, got {count!r}")
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
