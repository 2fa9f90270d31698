"""The tables of FORMAT sections 2-3: splits, size presets, quality presets.

One source of truth: everything else (plan, launcher, panel, README checks) reads these.
"""

import re
from dataclasses import dataclass

SPLITS = ("train", "val", "test_iid", "test_comp", "test_hard")


@dataclass(frozen=True)
class SplitRule:
    min_objects: int
    max_objects: int
    tau: float

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.min_objects, self.max_objects + 1))


SPLIT_RULES = {
    "train": SplitRule(4, 10, 0.10),
    "val": SplitRule(4, 10, 0.10),
    "test_iid": SplitRule(4, 10, 0.10),
    "test_comp": SplitRule(10, 15, 0.10),
    "test_hard": SplitRule(4, 10, 0.05),
}

DATASET_SIZES = {  # scenes per split of each --size preset (FORMAT 2)
    "tiny": {"train": 8, "val": 8, "test_iid": 8, "test_comp": 8, "test_hard": 8},
    "small": {"train": 800, "val": 160, "test_iid": 400, "test_comp": 80, "test_hard": 80},
    "medium": {"train": 8000, "val": 1600, "test_iid": 4000, "test_comp": 800, "test_hard": 800},
    "large": {
        "train": 80000,
        "val": 16000,
        "test_iid": 40000,
        "test_comp": 8000,
        "test_hard": 8000,
    },
}


@dataclass(frozen=True)
class Quality:
    width: int
    height: int
    samples: int
    cycles: tuple = ()  # (attribute of scene.cycles, value) pairs over Cycles' defaults


QUALITIES = {
    # the fastest settings that keep draft's picture (the render-settings study in
    # docs/PERFORMANCE.md);
    # normal and high keep Cycles' defaults until the study runs on a GPU
    "draft": Quality(480, 320, 64, (("adaptive_threshold", 0.03),)),
    "normal": Quality(1024, 768, 256),
    "high": Quality(1024, 768, 512),
}

# FORMAT 3's fixed render settings: blender.render.configure applies them and the dataset
# fingerprint records them, so a change here refuses to resume an older folder.
RENDER_SETTINGS = {
    "engine": "CYCLES",
    "denoiser": "OPENIMAGEDENOISE",
    "use_denoising": True,
    "use_adaptive_sampling": True,
    "view_transform": "Standard",
    "look": "None",
    "file_format": "PNG",
    "color_mode": "RGB",
    "color_depth": "8",
}

DEFAULT_SIZE = "small"
DEFAULT_QUALITY = "normal"
DEFAULT_SEED = 42
# The visibility gate and the in-frame rule use the tightest preset frame (FORMAT 4).
CANONICAL_RESOLUTION = (480, 320)
MAX_ASPECT = 1.5
# Cycles' own limits (the hard maxima of scene.cycles.samples and render.resolution_x/y):
# Blender clamps anything above them, while the record would keep the number asked for.
MAX_SAMPLES = 16_777_216
MAX_RESOLUTION = 65_536


def _choose(table: dict, name: str, argument: str):
    if name not in table:
        raise ValueError(f"unknown {argument} {name!r}: allowed are {', '.join(table)}")
    return table[name]


def split_rule(split: str) -> SplitRule:
    return _choose(SPLIT_RULES, split, "split")


def size_counts(size: str) -> dict[str, int]:
    return dict(_choose(DATASET_SIZES, size, "size"))


def quality(name: str) -> Quality:
    return _choose(QUALITIES, name, "quality")


def check_resolution(width: int, height: int) -> tuple[int, int]:
    """A render resolution is allowed when it is no wider than the canonical 3:2 frame."""
    if not (isinstance(width, int) and isinstance(height, int)) or not (
            0 < width <= MAX_RESOLUTION and 0 < height <= MAX_RESOLUTION):
        raise ValueError(f"resolution must be two integers WxH of 1..{MAX_RESOLUTION}, got "
                         f"{width}x{height}")
    if width > MAX_ASPECT * height:
        raise ValueError(
            f"resolution {width}x{height} is wider than 3:2 (W/H = {width / height:.3f}); "
            f"allowed are W/H <= {MAX_ASPECT}"
        )
    return width, height


# ASCII digits only: str.isdigit() and int() also take "²" or "３"
RESOLUTION_TEXT = re.compile(r"([0-9]{1,9})[xX]([0-9]{1,9})")


def parse_resolution(text: str) -> tuple[int, int]:
    m = RESOLUTION_TEXT.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"resolution must look like WxH in ASCII digits (e.g. 480x320), "
                         f"got {text!r}")
    return check_resolution(int(m[1]), int(m[2]))


def check_object_count(split: str, n_objects: int) -> int:
    rule = split_rule(split)
    if not rule.min_objects <= n_objects <= rule.max_objects:
        raise ValueError(
            f"n_objects {n_objects} is outside split {split!r}'s range: "
            f"allowed are {rule.min_objects}..{rule.max_objects}"
        )
    return n_objects
