"""Command-line arguments, parsed and refused one way by every program of the project (build,
validate, doctor, bench, export, show, evaluate): integers in ASCII digits only, numbers
outside their range and names outside their list refused naming what is allowed, every
refusal exit 2 (`Refused`). Also the build's own options and their checks before any work
starts.
"""

import argparse
import math
import os
import re
import sys

from ..core import layout, plan, presets
from .backend import BACKENDS
from .exit_codes import ExitCode

MAX_SEED = 2**53 - 1  # kept exactly by every JSON parser (plan.json, dataset_info.json)
MAX_TIMEOUT = 30 * 24 * 3600.0  # seconds; a month
RECYCLE_AFTER = 200
MAX_WORKERS = 1024  # CPU workers (--workers): each Blender already uses every core
MAX_WORKERS_PER_GPU = 16  # Blenders sharing one GPU (--workers-per-gpu)
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,30}")
SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{0,6})?|\.[0-9]{1,6}")


class Refused(Exception):
    """Bad input or a refused start: the message is printed, the code returned."""

    def __init__(self, message: str, code: ExitCode = ExitCode.REFUSED):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """An argument error is a refusal like any other (the build ends it with a `result`
    event): the usage on stderr, then Refused."""

    def error(self, message):
        self.print_usage(sys.stderr)
        raise Refused(message)


def refusal(prog: str, exc: Refused) -> int:
    """Print a refusal as `prog: error: message`; its exit code."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return int(exc.code)


def exit_code_epilog() -> str:
    return "Exit codes: " + "; ".join(f"{int(c)} {c.meaning}" for c in ExitCode) + "."


# --- values -------------------------------------------------------------------------------

def whole_number(text: str) -> int:
    """An integer in ASCII digits (int() also takes "３", "٣" and "1_000")."""
    if not WHOLE_NUMBER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}: use the digits 0-9")
    return int(text)


def duration_seconds(text: str) -> float:
    """A number of seconds in ASCII digits, e.g. 600 or 12.5 (never nan or inf)."""
    if not SECONDS.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds {text!r}: use the digits 0-9, e.g. 600 or 12.5")
    return float(text)


def name_list(text: str, allowed, what: str, option: str | None = None) -> list[str]:
    """Comma-separated names, each one of `allowed` and given once, in the order given;
    Refused naming the first unknown or repeated one (a `what`, such as "split") and what is
    allowed, after "`option`: "."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    prefix = f"{option}: " if option else ""
    if unknown or not names:
        raise Refused(f"{prefix}unknown {what} {unknown[0] if unknown else text!r}: allowed "
                      f"are {', '.join(allowed)}")
    twice = [name for i, name in enumerate(names) if name in names[:i]]
    if twice:
        raise Refused(f"{prefix}{what} {twice[0]!r} given twice: name each at most once")
    return names


def pass_names(text: str) -> tuple[str, ...]:
    """--passes: names from layout.PASSES, comma-separated, each at most once (in PASSES
    order, so the same set always makes the same plan)."""
    try:
        names = name_list(text, layout.PASSES, "pass")
    except Refused as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return tuple(name for name in layout.PASSES if name in names)


# --- paths --------------------------------------------------------------------------------

PATH_RESERVE = 256  # bytes kept for the longest name a program writes under a folder given


def check_path_length(path, option: str) -> None:
    """Refuse a path with a name longer than its file system allows (NAME_MAX, 255 bytes on
    most), or too long in all (PATH_MAX, less PATH_RESERVE for what is written under it),
    naming the option: the work would otherwise fail half-way with a traceback."""
    path = os.path.abspath(os.fsencode(path))
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    name_max = os.pathconf(existing, "PC_NAME_MAX")
    path_max = os.pathconf(existing, "PC_PATH_MAX")
    longest = max(len(name) for name in path.split(b"/"))
    if longest > name_max:
        raise Refused(f"{option}: a name in it is {longest} bytes long; its file system "
                      f"allows at most {name_max}")
    if len(path) > path_max - PATH_RESERVE:
        raise Refused(f"{option}: {len(path)} bytes long; at most {path_max - PATH_RESERVE} "
                      f"fit (its file system's {path_max}, less {PATH_RESERVE} for the names "
                      "written in it)")


# --- ranges -------------------------------------------------------------------------------

def in_range(value, name: str, low, high=None) -> None:
    """Refuse a number outside low..high (nan and inf included), naming what is allowed."""
    if value is None:
        return
    if math.isfinite(value) and low <= value and (high is None or value <= high):
        return
    allowed = f"at least {low}" if high is None else f"{low}..{high}"
    raise Refused(f"{name} must be {allowed}, got {value}")


def check_ranges(args, ranges: dict) -> None:
    """in_range for each option of `ranges` (option -> (smallest, largest or None)); an
    option left out (None) is not checked."""
    for name, (low, high) in ranges.items():
        in_range(getattr(args, name), "--" + name.replace("_", "-"), low, high)


def check_duration(value: float | None, name: str) -> None:
    """A timeout: more than 0 and at most MAX_TIMEOUT seconds (None: not given)."""
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise Refused(f"{name} must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds, "
                      f"got {value}")


# --- the build ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="build.py", description="Render a scenegen dataset with one Blender per GPU.",
        epilog=exit_code_epilog())
    p.add_argument("--output", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--size", choices=tuple(presets.DATASET_SIZES),
                   help=f"size preset (default {presets.DEFAULT_SIZE})")
    p.add_argument("--quality", choices=tuple(presets.QUALITIES),
                   default=presets.DEFAULT_QUALITY, help="quality preset (default %(default)s)")
    p.add_argument("--n-gpus", type=whole_number, metavar="N",
                   help="GPUs to use (default: all visible; 0 renders on the CPU)")
    p.add_argument("--blender", metavar="PATH",
                   help="Blender executable (default: $BLENDER, then `blender` on PATH, "
                   "then the bpy module of this Python)")
    p.add_argument("--seed", type=whole_number, default=presets.DEFAULT_SEED, metavar="N",
                   help="global seed (default %(default)s)")
    p.add_argument("--workers", type=whole_number, metavar="N",
                   help=f"CPU workers when --n-gpus is 0 (default 1, at most {MAX_WORKERS})")
    p.add_argument("--workers-per-gpu", type=whole_number, metavar="N",
                   help=f"workers per GPU (default 1, at most {MAX_WORKERS_PER_GPU})")
    p.add_argument("--gpu-backend", choices=tuple(BACKENDS), default="auto",
                   help="Cycles GPU backend (default %(default)s): auto takes the doctor's "
                   "measured choice for the GPU model, else Cycles' default (OptiX where it "
                   "lists it, else CUDA), once per folder: a resume keeps the folder's backend "
                   "unless this option names one")
    p.add_argument("--resolution", metavar="WxH",
                   help="override the preset's resolution (W/H <= 1.5)")
    p.add_argument("--samples", type=whole_number, metavar="N",
                   help=f"override the preset's Cycles samples (at most {presets.MAX_SAMPLES})")
    p.add_argument("--scenes-per-split", type=whole_number, metavar="N",
                   help="the same number of scenes in every split (instead of --size)")
    p.add_argument("--passes", type=pass_names, default=(), metavar="NAMES",
                   help="optional outputs, comma-separated: depth (16-bit millimetres along "
                   "each camera's axis, depth/<scene_id>/view_k.png); default none")
    p.add_argument("--overwrite", action="store_true",
                   help="start over: remove scenegen's own files from DIR (refused when it "
                   "holds anything else)")
    p.add_argument("--yes", action="store_true", help="start a run estimated above an hour")
    p.add_argument("--verify", action="store_true",
                   help="check complete scenes by the SHA-256 of every file, not only by size "
                   "and ending, before resuming; damaged scenes are rendered again")
    p.add_argument("--plan-only", action="store_true",
                   help="write the plan and exit (for bpy.ops.scenegen.batch in blender -b)")
    p.add_argument("--recycle-after", type=whole_number, default=RECYCLE_AFTER, metavar="N",
                   help="restart each worker after this many scenes (default %(default)s)")
    p.add_argument("--scene-timeout", type=duration_seconds, metavar="S",
                   help="seconds before a scene is killed and rerun (default: 10x the "
                   "estimate, at least 600)")
    p.add_argument("--first-scene-timeout", type=duration_seconds, metavar="S",
                   help="the same for a worker's first scene, which may compile GPU kernels "
                   "(default: scene timeout + 1800)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="render on a Ray cluster, one actor per GPU slot (or --workers CPU "
                   "actors): ADDRESS as ray.init takes it, `auto` for the running cluster; "
                   "without it a local Ray instance. The output folder must be shared by every "
                   "node at the same path (pip install -e \".[ray]\"; docs/CLUSTER.md)")
    return p


# the build's option -> (smallest, largest or None) allowed
NUMBER_RANGES = {
    "seed": (0, MAX_SEED),
    "n_gpus": (0, None),
    "workers": (1, MAX_WORKERS),
    "workers_per_gpu": (1, MAX_WORKERS_PER_GPU),
    "samples": (1, presets.MAX_SAMPLES),
    "scenes_per_split": (1, plan.MAX_SCENES // len(presets.SPLITS)),
    "recycle_after": (1, None),
}


def check_options(args) -> dict:
    """The build's pure argument checks, before anything starts; returns the plan's
    options (core.plan.plan_settings' arguments but the versions)."""
    if not args.output.strip():
        raise Refused("--output must name a folder, got an empty name")
    check_path_length(args.output, "--output")
    check_ranges(args, NUMBER_RANGES)
    check_duration(args.scene_timeout, "--scene-timeout")
    check_duration(args.first_scene_timeout, "--first-scene-timeout")
    if args.size is not None and args.scenes_per_split is not None:
        raise Refused("give either --size or --scenes-per-split, not both")
    try:
        counts = plan.resolve_counts(args.size, args.scenes_per_split)
        quality = presets.quality(args.quality)
        resolution = (presets.parse_resolution(args.resolution) if args.resolution
                      else (quality.width, quality.height))
    except ValueError as exc:
        raise Refused(f"--{exc}") from None
    return {
        "seed": args.seed, "counts": counts, "quality": args.quality, "resolution": resolution,
        "size": None if args.scenes_per_split else (args.size or presets.DEFAULT_SIZE),
        "samples": args.samples or quality.samples, "passes": args.passes,
    }


def check_worker_counts(workers: int | None, workers_per_gpu: int | None, cpu: bool) -> None:
    """--workers counts CPU workers, --workers-per-gpu GPU ones (locally and under --ray):
    refuse the one that does not apply rather than ignore it."""
    if cpu and workers_per_gpu is not None:
        raise Refused("--workers-per-gpu needs GPUs; for CPU rendering use --workers")
    if not cpu and workers is not None:
        raise Refused("--workers is for CPU rendering (--n-gpus 0); on GPUs use "
                      "--workers-per-gpu")
