#!/usr/bin/env python3
"""Build a scenegen dataset: `python headless/build.py --output DIR [options]`.

Checks every argument before any work starts (bad input: exit 2), writes the plan and its
fingerprint to DIR/.scenegen/, starts one Blender worker per GPU (or --workers CPU
workers), hands out scenes one at a time, restarts dead or hung workers, and at the end has
the last live worker run the merge operator and then runs the validator, whose exit code it
returns. Rerunning the same command resumes. Exit codes: 0 done and valid, 1 the validator
found corruption, 2 bad input or refused, 3 incomplete (failed scenes), 4 disk full or not
writable, 5 workers could not start or the merge failed, 130/143 stopped by SIGINT/SIGTERM.
It needs only the standard library, numpy and the add-on's pure core (no bpy).
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "addon"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dispatch  # noqa: E402
from scenegen_addon.core import launch, plan, presets  # noqa: E402

WORKER = ROOT / "headless" / "worker.py"
VALIDATOR = ROOT / "headless" / "validate.py"
RECYCLE_AFTER = 200
ASK_ABOVE_SECONDS = 3600.0
VALIDATE_LABELS_MAX = 2000  # the validator recomputes labels of at most about this many scenes
EXIT_REFUSED, EXIT_DISK, EXIT_RUN_FAILED = 2, 4, 5


class Refused(Exception):
    """Bad input or a refused start: the message is printed, the code returned."""

    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="build.py", description="Render a scenegen dataset with one Blender per GPU.",
        epilog="Exit codes: 0 done and valid, 1 corrupt (validator), 2 bad input or refused, "
        "3 incomplete (failed scenes), 4 disk full or not writable, 5 workers could not start "
        "or the merge failed, 130/143 stopped (rerun the same command to resume).")
    p.add_argument("--output", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--size", choices=tuple(presets.SIZES),
                   help=f"size preset (default {presets.DEFAULT_SIZE})")
    p.add_argument("--quality", choices=tuple(presets.QUALITIES),
                   default=presets.DEFAULT_QUALITY, help="quality preset (default %(default)s)")
    p.add_argument("--n-gpus", type=int, metavar="N",
                   help="GPUs to use (default: all visible; 0 renders on the CPU)")
    p.add_argument("--blender", metavar="PATH",
                   help="Blender 5.0+ executable (default: $BLENDER, then `blender` on PATH, "
                   "then the bpy module of this Python)")
    p.add_argument("--seed", type=int, default=presets.DEFAULT_SEED, metavar="N",
                   help="global seed (default %(default)s)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="CPU workers when --n-gpus is 0 (default 1)")
    p.add_argument("--workers-per-gpu", type=int, metavar="N", help="workers per GPU (default 1)")
    p.add_argument("--resolution", metavar="WxH",
                   help="override the preset's resolution (W/H <= 1.5)")
    p.add_argument("--samples", type=int, metavar="N", help="override the preset's Cycles samples")
    p.add_argument("--scenes-per-split", type=int, metavar="N",
                   help="the same number of scenes in every split (instead of --size)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over: remove scenegen's own files from DIR (refused when it "
                   "holds anything else)")
    p.add_argument("--yes", action="store_true", help="start a run estimated above an hour")
    p.add_argument("--plan-only", action="store_true",
                   help="write the plan and exit (for bpy.ops.scenegen.batch in blender -b)")
    p.add_argument("--recycle-after", type=int, default=RECYCLE_AFTER, metavar="N",
                   help="restart each worker after this many scenes (default %(default)s)")
    p.add_argument("--scene-timeout", type=float, metavar="S",
                   help="seconds before a scene is killed and rerun (default: 10x the "
                   "estimate, at least 600)")
    p.add_argument("--first-scene-timeout", type=float, metavar="S",
                   help="the same for a worker's first scene, which may compile GPU kernels "
                   "(default: scene timeout + 1800)")
    return p.parse_args(argv)


def positive(value, name: str, minimum: float = 1):
    if value is not None and value < minimum:
        raise Refused(f"{name} must be at least {minimum}, got {value}")
    return value


# --- Blender ----------------------------------------------------------------------------

@dataclass
class Blender:
    command: list[str]  # prefix that runs worker.py; the worker's args follow
    label: str


def find_blender(given: str | None, environ) -> Blender:
    """--blender, else $BLENDER, else `blender` on PATH, else this Python's bpy module."""
    candidates = [("--blender", given), ("$BLENDER", environ.get("BLENDER")),
                  ("blender on PATH", shutil.which("blender"))]
    for name, path in candidates:
        if path:
            return check_executable(name, path)
    if importlib.util.find_spec("bpy") is None:
        raise Refused("no Blender found: give --blender PATH, set $BLENDER, put blender on "
                      "PATH, or install the bpy module (pip install bpy==5.0.1)")
    version = importlib.metadata.version("bpy")
    check_version("the bpy module", version, launch.parse_blender_version(f"Blender {version}"))
    return Blender([sys.executable, str(WORKER), "--"], f"bpy {version} ({sys.executable})")


def check_executable(name: str, path: str) -> Blender:
    exe = Path(path).expanduser()
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise Refused(f"{name} {path}: no such executable file")
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Refused(f"{name} {path} does not run as Blender: {exc}") from None
    version = launch.parse_blender_version(out)
    check_version(f"{name} {path}", out.strip().splitlines()[0] if out.strip() else "", version)
    command = [str(exe.resolve()), "-b", "--factory-startup", "--python", str(WORKER), "--"]
    return Blender(command, f"{exe} ({'.'.join(map(str, version))})")


def check_version(name: str, text: str, version) -> None:
    if version is None:
        raise Refused(f"{name} is not Blender (its --version printed {text[:80]!r})")
    if version[:2] < launch.MIN_BLENDER:
        raise Refused(f"{name} is Blender {'.'.join(map(str, version))}; scenegen needs "
                      f"Blender {'.'.join(map(str, launch.MIN_BLENDER))} or newer")


def probe(blender: Blender) -> dict:
    """Start the worker once: Blender and numpy versions, and proof that the add-on loads."""
    try:
        run = subprocess.run(blender.command + ["--probe"], capture_output=True, text=True,
                             timeout=600, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Refused(f"{blender.label} did not start the worker within 600 s") from None
    for line in run.stdout.splitlines():
        event = launch.parse_event(line)
        if event and event.get("event") == "probe":
            return event
    tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-15:])
    raise Refused(f"{blender.label} cannot run headless/worker.py:\n{tail}")


# --- GPUs -------------------------------------------------------------------------------

def nvidia_smi_list() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ""
    try:
        return subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def worker_layout(args, environ) -> tuple[str, list]:
    """("CPU" | "GPU", CUDA_VISIBLE_DEVICES per worker, None for CPU workers)."""
    n_gpus = args.n_gpus
    if n_gpus is None or n_gpus > 0:
        visible = launch.visible_gpus(nvidia_smi_list(), environ.get("CUDA_VISIBLE_DEVICES"))
        n_gpus = len(visible) if n_gpus is None else n_gpus
    if n_gpus == 0:
        if args.workers_per_gpu is not None:
            raise Refused("--workers-per-gpu needs GPUs; for CPU rendering use --workers")
        return "CPU", [None] * (args.workers or 1)
    if args.workers is not None:
        raise Refused(f"--workers is for CPU rendering (--n-gpus 0); with {n_gpus} GPU(s) "
                      "use --workers-per-gpu")
    try:
        return "GPU", launch.worker_gpus(n_gpus, args.workers_per_gpu or 1, visible)
    except ValueError as exc:
        raise Refused(f"--{exc}") from None


# --- output folder ----------------------------------------------------------------------

def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        test = out / f".scenegen-write-test-{os.getpid()}"
        test.write_text("ok")
        test.unlink()
    except OSError as exc:
        raise Refused(f"--output {out} cannot be written: {exc.strerror or exc}") from None


def remove_own_files(out: Path) -> None:
    """--overwrite: remove what scenegen wrote, keeping our lock (check_folder has made
    sure that nothing else is there)."""
    for name in launch.OWN_ENTRIES:
        path = out / name
        if name == launch.INTERNAL:
            for entry in path.iterdir():
                if entry.name != "lock":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_folder(out: Path, document: dict, overwrite: bool) -> None:
    """Refuse a different plan (unless --overwrite) or a folder of someone else's files."""
    plan_path = launch.internal(out) / "plan.json"
    foreign = launch.foreign_entries(out)
    if overwrite:
        if foreign:
            raise Refused(f"--overwrite refused: {out} holds files scenegen did not write: "
                          f"{', '.join(foreign[:10])}")
        return
    if plan_path.exists():
        old = json.loads(plan_path.read_text())
        if old["fingerprint"] != document["fingerprint"]:
            diff = plan.fingerprint_difference(old["settings"], document["settings"])
            raise Refused(f"{out} holds a dataset with different settings:\n  "
                          + "\n  ".join(diff)
                          + "\nrerun with the same options, or --overwrite to start over")
        return
    if foreign:
        raise Refused(f"--output {out} is not empty and holds no scenegen plan "
                      f"({', '.join(foreign[:10])}); choose an empty or new folder")


# --- the run ----------------------------------------------------------------------------

def check_options(args) -> dict:
    """The pure argument checks, before anything starts; returns the plan's options."""
    positive(args.seed, "--seed", 0)
    for name in ("workers", "workers_per_gpu", "samples", "scenes_per_split", "recycle_after"):
        positive(getattr(args, name), "--" + name.replace("_", "-"))
    for name in ("scene_timeout", "first_scene_timeout"):
        positive(getattr(args, name), "--" + name.replace("_", "-"), 1e-3)
    if args.n_gpus is not None and args.n_gpus < 0:
        raise Refused(f"--n-gpus must be 0 or more, got {args.n_gpus}")
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
        "samples": args.samples or quality.samples,
    }


def confirm(seconds: float, yes: bool) -> None:
    if seconds <= ASK_ABOVE_SECONDS or yes:
        return
    question = f"This run is estimated at {launch.duration(seconds)}. Start it? [y/N] "
    if not sys.stdin.isatty():
        raise Refused(f"this run is estimated at {launch.duration(seconds)} (above an hour); "
                      "rerun with --yes to start it")
    if input(question).strip().lower() not in ("y", "yes"):
        raise Refused("not started")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return build(args)
    except Refused as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:  # before the workers start: nothing to clean up
        print("build.py: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def build(args) -> int:
    options = check_options(args)
    device, gpus = worker_layout(args, os.environ)
    out = Path(args.output).expanduser().absolute()
    check_writable(out)
    blender = find_blender(args.blender, os.environ)
    versions = probe(blender)
    document = launch.plan_document(launch.plan_settings(
        **options, blender_version=versions["blender_version"],
        numpy_version=versions["numpy_version"]))
    lock = launch.internal(out) / "lock"
    try:
        launch.acquire_lock(lock)
    except launch.LockHeld as exc:
        raise Refused(str(exc)) from None
    try:
        return run(args, out, blender, device, gpus, document)
    finally:
        launch.release_lock(lock)


def run(args, out: Path, blender: Blender, device: str, gpus: list, document: dict) -> int:
    check_folder(out, document, args.overwrite)
    scenes = [plan.PlannedScene(**entry) for entry in document["scenes"]]
    todo = scenes if args.overwrite else [
        s for s in scenes if not launch.is_complete(out, s.scene_id)]
    width, height = document["settings"]["resolution"]
    samples = document["settings"]["samples"]
    need = launch.disk_estimate(todo, width, height)
    free = shutil.disk_usage(out).free
    # one scene on a whole device; CPU workers share one device, each GPU is its own
    per_scene = launch.scene_seconds(width, height, samples, device == "GPU", os.cpu_count() or 1)
    devices = len(set(gpus)) if device == "GPU" else 1
    seconds = len(todo) * per_scene / devices
    per_worker = per_scene * len(gpus) / devices  # a scene's time when workers share devices
    print(f"scenegen: {len(scenes)} scenes planned: {len(todo)} to render, "
          f"{len(scenes) - len(todo)} already complete")
    print(f"scenegen: estimated disk use {launch.size_text(need)}, free "
          f"{launch.size_text(free)}; estimated time {launch.duration(seconds)} on "
          f"{len(gpus)} {device} worker(s) ({blender.label})", flush=True)
    if need > free:
        raise Refused(f"not enough disk space in {out}: about {launch.size_text(need)} "
                      f"needed, {launch.size_text(free)} free", EXIT_DISK)
    if not args.plan_only:
        confirm(seconds, args.yes)
    if args.overwrite:
        remove_own_files(out)
    write_plan(out, document)
    if args.plan_only:
        print(f"scenegen: plan written to {launch.internal(out) / 'plan.json'}")
        return 0
    dispatch.remove_partial(out, [s.scene_id for s in todo])
    scene_timeout = args.scene_timeout or max(600.0, 10 * per_worker)
    config = dispatch.Config(
        output=out, command=blender.command, device=device, gpus=gpus,
        scene_timeout=scene_timeout,
        first_scene_timeout=args.first_scene_timeout or scene_timeout + 1800.0,
        recycle_after=args.recycle_after,
        scene_bytes=launch.scene_bytes(width, height, 15),
    )
    pool = dispatch.Pool(config, [s.scene_id for s in todo], len(scenes),
                         len(scenes) - len(todo), per_worker, say)
    return render_and_report(pool, out, scenes, len(gpus), device)


def write_plan(out: Path, document: dict) -> None:
    path = launch.internal(out) / "plan.json"
    if not path.exists():
        dispatch.write_json(path, document, compact=True)
    failures = launch.internal(out) / "failures.json"
    failures.unlink(missing_ok=True)  # this run retries every scene that is not complete


def render(pool: dispatch.Pool, out: Path, scenes, n_workers: int, device: str) -> int:
    run_path = launch.internal(out) / "run.json"
    previous = json.loads(run_path.read_text()) if run_path.exists() else {}
    n_gpus = 0 if device == "CPU" else len(set(pool.c.gpus))
    run_doc = {"n_gpus": n_gpus, "workers": n_workers,
               "workers_per_gpu": n_workers // n_gpus if n_gpus else None,
               "started": previous.get("started", launch.now_iso()),
               "wall_seconds": previous.get("wall_seconds", 0.0),
               "runs": previous.get("runs", 0) + 1}
    started = time.monotonic()
    dispatch.write_json(run_path, run_doc)

    def record_run():
        """failures.json and the wall time, which the merge reads."""
        run_doc["wall_seconds"] = round(run_doc["wall_seconds"] + time.monotonic() - started, 3)
        failures = [{"scene_id": s.scene_id, "reason": pool.failures[s.scene_id]}
                    for s in scenes if s.scene_id in pool.failures]
        dispatch.write_json(launch.internal(out) / "failures.json", failures)
        dispatch.write_json(run_path, run_doc)

    def on_signal(signum, frame):
        pool.signal = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        pool.run()
        record_run()
        pool.progress("merging", "merging the splits", force=True)
        pool.merge()
        pool.wait_closed()
        pool.progress("merging", "validating", force=True)
    except BaseException:  # whatever stops the run, no worker outlives it
        pool.stop()
        try:
            record_run()
        except (OSError, dispatch.DiskFull):
            pass
        raise
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    pool.note(f"rendered: {pool.complete}/{pool.total} complete, {len(pool.failures)} "
              "failed; validating")
    sample = min(1.0, VALIDATE_LABELS_MAX / len(scenes))
    code = subprocess.run([sys.executable, str(VALIDATOR), str(out), "--sample", f"{sample:.6g}"]
                          ).returncode
    verdict = {0: "done: the dataset is complete and valid",
               3: "done, but incomplete: failed scenes are listed in dataset_info.json",
               1: "the validator found corrupt files (listed above)"}
    end(pool, "done" if code in (0, 3) else "failed",
        f"{verdict.get(code, 'the validator failed')} (exit code {code})")
    return code


def render_and_report(pool: dispatch.Pool, out: Path, scenes, n_workers: int, device: str):
    """render() with each way a run can stop turned into its message and exit code."""
    try:
        return render(pool, out, scenes, n_workers, device)
    except dispatch.Stopped as exc:
        end(pool, "failed", f"{exc}; rerun the same command to resume")
        return 128 + exc.signum
    except (dispatch.DiskFull, OSError) as exc:
        if isinstance(exc, OSError) and not launch.is_disk_error(exc):
            raise
        end(pool, "failed", f"disk full or not writable: {exc}. {pool.complete} complete "
            "scenes are kept; free space and rerun the same command to resume")
        return EXIT_DISK
    except dispatch.RunFailed as exc:
        end(pool, "failed", str(exc))
        return EXIT_RUN_FAILED


def end(pool: dispatch.Pool, state: str, message: str) -> None:
    try:
        pool.progress(state, message, force=True)
    except (OSError, dispatch.DiskFull):
        pass
    pool.note(message)


def say(message: str) -> None:
    print(f"scenegen: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
