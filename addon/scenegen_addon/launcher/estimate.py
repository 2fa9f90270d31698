"""Estimates made before a run starts: disk use and time per scene.

Rough on purpose and erring on the safe side, unless headless/doctor.py measured this
machine: `from_doctor` turns its figures file into the seconds per scene and the first
scene's allowance of a run.
"""

import json
import math
import os
import platform
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core import camera

# Bytes per pixel of a denoised 8-bit RGB PNG and of a 16-bit index mask PNG, and bytes per
# constraint record of the metadata JSON: measured on draft scenes (0.87, 0.005 and 115),
# rounded up so that the estimate errs on the safe side.
IMAGE_BYTES_PER_PIXEL = 1.0
MASK_BYTES_PER_PIXEL = 0.02
# A 16-bit depth map (--passes depth): 0.08 measured on test_comp scenes at the draft frame
# (benchmarks/bench_depth.py), rounded up.
PASS_BYTES_PER_PIXEL = 0.2
RECORD_BYTES = 125
# Render cost in seconds per Cycles sample per megapixel (denoising included): on the CPU in
# core-seconds (measured: a draft scene, 4 views of 480x320 at 64 samples, takes about 120
# CPU-seconds), on a GPU a rough figure for a current NVIDIA card; plus a per-scene overhead
# (build, masks, labels, writing).
CPU_CORE_SECONDS_PER_SAMPLE_MPIX = 3.0
GPU_SECONDS_PER_SAMPLE_MPIX = 0.03
SCENE_OVERHEAD_SECONDS = 3.0


def record_count(n: int) -> int:
    """Upper bound of the constraint records of an n-object scene (FORMAT 6.4)."""
    qrr, trr, pairs = 3 * math.comb(n, 4), n * (n - 1) * (n - 2), math.comb(n, 2)
    world = qrr + trr + pairs + pairs + n * math.comb(n - 1, 2)  # + topology, size, closer
    view = qrr + trr + 2 * pairs + n * (n - 1) + pairs  # + axial, occlusion, size
    return world + camera.N_VIEWS * view


def scene_bytes(width: int, height: int, n_objects: int, passes: tuple = ()) -> int:
    """Estimated bytes of one scene: 4 images (the single view is a hard link to view 0),
    4 masks, 4 files per pass (depth), the metadata."""
    pixels = width * height
    images = camera.N_VIEWS * pixels * IMAGE_BYTES_PER_PIXEL
    masks = camera.N_VIEWS * pixels * MASK_BYTES_PER_PIXEL
    extra = camera.N_VIEWS * pixels * PASS_BYTES_PER_PIXEL * len(passes)
    return int(images + masks + extra + RECORD_BYTES * record_count(n_objects) + 8192)


def disk_estimate(scenes, width: int, height: int, passes: tuple = ()) -> int:
    return sum(scene_bytes(width, height, s.n_objects, passes) for s in scenes)


def scene_seconds(width: int, height: int, samples: int, gpu: bool, cpu_cores: int = 1) -> float:
    """Rough seconds for one scene (4 views) on one GPU, or on the CPU with `cpu_cores`."""
    sample_mpix = camera.N_VIEWS * samples * width * height / 1e6
    if gpu:
        return SCENE_OVERHEAD_SECONDS + sample_mpix * GPU_SECONDS_PER_SAMPLE_MPIX
    return SCENE_OVERHEAD_SECONDS + sample_mpix * CPU_CORE_SECONDS_PER_SAMPLE_MPIX / cpu_cores


# --- the doctor's figures -----------------------------------------------------------------
# headless/doctor.py measures this machine and writes its figures to a JSON file; a run whose
# devices and settings it measured uses them instead of the constants above.

FIGURES_FORMAT = "scenegen-doctor/1"
# A worker's first scene may take this many times the slowest first scene the doctor saw
# (process start and kernel load included): a build starts more processes at once than it.
FIRST_SCENE_FACTOR = 3.0
# the fields of a figures entry that must equal a run's (with the device kind and backend)
SETTING_FIELDS = ("quality", "width", "height", "samples")


@dataclass(frozen=True)
class Measured:
    """What a run takes from the doctor's figures."""

    worker_seconds: float  # one scene on one worker (the slowest of the run's devices)
    scenes_per_hour: float  # all the run's workers together
    first_scene_allowance: float  # seconds a worker's first scene may take


def figures_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The default figures file: $XDG_CACHE_HOME/scenegen/doctor.json (~/.cache/...): per
    user and machine, found by every build without an option."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scenegen" / "doctor.json"


def read_figures(path=None) -> dict | None:
    """The figures file (default `figures_path()`); None when it is missing, unreadable or
    of another format, so that the constants are used."""
    try:
        with open(path or figures_path(), encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != FIGURES_FORMAT:
        return None
    return document


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux), else the machine type."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() or "unknown"


def device_kind(device) -> str:
    """What a figure is kept for: the GPU model (a `gpus.Device`) with its MIG profile for a
    slice, or for None the CPU model and its thread count."""
    if device is None:
        return f"CPU {cpu_model()} ({os.cpu_count() or 1} threads)"
    if device.mig_profile is not None:
        return f"{device.name} MIG {device.mig_profile}"
    return device.name


def entry_key(entry: dict) -> tuple:
    """Entries with the same key measure the same thing; a newer one replaces an older."""
    return (entry["kind"], entry["backend"], *(entry[name] for name in SETTING_FIELDS))


def _entry_for(entries: list, kind: str, device: str, settings: dict) -> dict | None:
    """The figures of one device kind at these settings for the run's Cycles device: "CPU",
    "GPU" (the backend Cycles takes by default, marked by the doctor) or a backend."""
    for entry in entries:
        if entry.get("kind") != kind or any(entry.get(k) != v for k, v in settings.items()):
            continue
        if device == "GPU" and entry.get("default") and entry.get("backend") != "CPU":
            return entry
        if entry.get("backend") == device:
            return entry
    return None


def from_doctor(figures: dict | None, devices: list, device: str, quality: str, width: int,
                height: int, samples: int) -> Measured | None:
    """The doctor's figures for a run: `devices` as launcher.build has them (a `gpus.Device`
    per worker, None for CPU workers), `device` its Cycles device ("CPU", "GPU", "OPTIX",
    "CUDA"). None unless every worker's device kind was measured at these settings with as
    many workers per device as the run puts there (the doctor measures 1 and 2 per GPU, 1 on
    the CPU): then the constants are used."""
    if not figures or not devices:
        return None
    settings = {"quality": quality, "width": width, "height": height, "samples": samples}
    sharing = Counter(devices)  # CPU workers (None) all share the one CPU
    rates, slowest, first = 0.0, 0.0, 0.0
    for worker_device, per_device in sharing.items():
        entry = _entry_for(figures.get("entries", []), device_kind(worker_device),
                           "CPU" if worker_device is None else device, settings)
        seconds = (entry or {}).get("seconds_per_scene", {}).get(str(per_device))
        if not seconds or seconds <= 0 or not entry.get("first_scene_seconds"):
            return None
        rates += per_device * 3600.0 / seconds
        slowest = max(slowest, seconds)
        first = max(first, entry["first_scene_seconds"])
    return Measured(slowest, rates, FIRST_SCENE_FACTOR * first)
