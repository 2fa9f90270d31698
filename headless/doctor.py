"""Check a machine before a long build: `python headless/doctor.py [--blender PATH] [--quality Q]`.

Prints the Blender version, the Cycles devices each GPU shows, one warm-up render per GPU
(kernels may compile on a fresh machine), the seconds per scene, and an ETA for every size
preset at that quality on all the GPUs. It runs this same file inside Blender as a probe
(`blender -b --factory-startup --python headless/doctor.py -- --probe ...`, or this Python
with the embedded bpy module when no Blender is given or found), one probe per GPU with
CUDA_VISIBLE_DEVICES set to it, or one CPU probe when no GPU is visible.
Exit 0 when every probe rendered, 1 when one failed, 2 on bad arguments.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "addon"))

from scenegen_addon.core import launch, presets  # noqa: E402

PREFIX = "SCENEGEN_DOCTOR "


# --- pure parts ----------------------------------------------------------------------------

def eta_table(seconds_per_scene: list[float], sizes: dict | None = None) -> list[dict]:
    """ETA of each size preset with one worker per measured device working in parallel.

    The devices' rates add up: scenes per hour = sum of 3600 / seconds over the devices.
    """
    if not seconds_per_scene or any(s <= 0 for s in seconds_per_scene):
        raise ValueError(f"seconds_per_scene must be positive numbers, got {seconds_per_scene}")
    per_hour = sum(3600.0 / s for s in seconds_per_scene)
    rows = []
    for size, counts in (sizes or presets.SIZES).items():
        scenes = sum(counts.values())
        rows.append({"size": size, "scenes": scenes, "seconds": launch.eta(scenes, per_hour)})
    return rows


def probe_lines(stdout: str) -> list[dict]:
    """The probe's JSON events from its standard output (Blender prints more around them)."""
    return [json.loads(line[len(PREFIX):]) for line in stdout.splitlines()
            if line.startswith(PREFIX)]


def find_blender(given: str | None, environ=os.environ) -> str | None:
    """--blender, else $BLENDER, else `blender` on PATH; None means the embedded bpy."""
    for candidate in (given, environ.get("BLENDER"), shutil.which("blender")):
        if candidate:
            return candidate
    return None


def probe_command(blender: str | None, probe_args: list[str]) -> list[str]:
    if blender is None:
        return [sys.executable, str(HERE), "--probe", *probe_args]
    return [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python",
            str(HERE), "--", "--probe", *probe_args]


def probe_args(quality: str, width: int, height: int, samples: int, scenes: int,
               device: str) -> list[str]:
    return ["--quality", quality, "--width", str(width), "--height", str(height),
            "--samples", str(samples), "--scenes", str(scenes), "--device", device]


def report_lines(results: list[dict], table: list[dict], setting: str) -> list[str]:
    """The human summary of the probes' results and the ETA table."""
    lines = [f"Blender {results[0]['blender_version']}"]
    for r in results:
        seen = ", ".join(f"{kind} {name}" for kind, name in r["devices"])
        lines.append(f"{r['label']}: Cycles sees {seen}")
        lines.append(f"  renders on {r['device']} ({r['device_name']}): warm-up "
                     f"{r['warmup_seconds']:.1f} s, {r['seconds_per_scene']:.1f} s per scene "
                     f"({', '.join(str(n) for n in r['n_objects'])} objects)")
    lines.append(f"ETA at {setting} on {len(results)} device(s) working together:")
    for row in table:
        lines.append(f"  --size {row['size']:<7} {row['scenes']:>7} scenes  "
                     f"{launch.duration(row['seconds'])}")
    return lines


# --- the probe (runs inside Blender) ------------------------------------------------------

def probe(args) -> None:
    """Render a warm-up scene and `--scenes` timed scenes; print one JSON result line."""
    import bpy
    from scenegen_addon.blender import compat, pipeline, render
    from scenegen_addon.core import plan, sampling

    compat.check_version()
    devices = compat.list_devices()
    settings = render.RenderSettings(args.width, args.height, args.samples, args.device,
                                     presets.quality(args.quality).cycles)
    device, names = render.choose_device(devices, settings.device)
    entries = plan.build_plan({"train": args.scenes + 1}, presets.DEFAULT_SEED)
    seconds, n_objects = [], []
    with tempfile.TemporaryDirectory(prefix="scenegen_doctor_") as scratch:
        for entry in entries:
            spec = sampling.sample_scene(entry, presets.DEFAULT_SEED)
            start = time.perf_counter()
            pipeline.render_scene(spec, Path(scratch), settings)
            seconds.append(time.perf_counter() - start)
            n_objects.append(spec.n_objects)
    result = {
        "blender_version": bpy.app.version_string,
        "devices": devices,
        "device": device,
        "device_name": ", ".join(names),
        "warmup_seconds": seconds[0],
        "seconds_per_scene": sum(seconds[1:]) / len(seconds[1:]),
        "n_objects": n_objects[1:],
    }
    print(PREFIX + json.dumps(result), flush=True)


# --- the command ---------------------------------------------------------------------------

def run_probe(blender, probe_args, gpu: str | None, timeout: float) -> dict:
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    done = subprocess.run(probe_command(blender, probe_args), env=env, capture_output=True,
                          text=True, timeout=timeout)
    results = probe_lines(done.stdout)
    if done.returncode != 0 or not results:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"probe exited with {done.returncode}:\n{tail}")
    return results[-1]


def gpu_list() -> list[str]:
    """The GPUs visible to this user (nvidia-smi, respecting CUDA_VISIBLE_DEVICES)."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return launch.visible_gpus(listing, os.environ.get("CUDA_VISIBLE_DEVICES"))


def _resolution(text: str) -> tuple[int, int]:
    try:
        return presets.parse_resolution(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time scenegen on this machine: devices, warm-up, seconds per scene, ETA.")
    parser.add_argument("--blender", help="Blender executable (default $BLENDER, then "
                                          "`blender` on PATH, then the embedded bpy module)")
    parser.add_argument("--quality", default=presets.DEFAULT_QUALITY,
                        choices=list(presets.QUALITIES), help="quality preset to time")
    parser.add_argument("--resolution", type=_resolution,
                        help="override the preset's WxH")
    parser.add_argument("--samples", type=int, help="override the preset's samples")
    parser.add_argument("--scenes", type=int, default=2, help="timed scenes after the warm-up")
    parser.add_argument("--n-gpus", type=int, help="probe only the first N visible GPUs "
                                                   "(0: the CPU)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds allowed per probe (a first GPU render compiles kernels)")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    quality = presets.quality(args.quality)
    width, height = args.resolution or (quality.width, quality.height)
    samples = args.samples or quality.samples
    if samples < 1 or args.scenes < 1:
        parser.error("--samples and --scenes must be positive integers")
    blender = find_blender(args.blender)
    if blender is not None and not Path(blender).exists() and not shutil.which(blender):
        parser.error(f"--blender {blender} does not exist")
    gpus = gpu_list()
    if args.n_gpus is not None:
        if not 0 <= args.n_gpus <= len(gpus):
            parser.error(f"--n-gpus {args.n_gpus}: {len(gpus)} GPU(s) visible")
        gpus = gpus[:args.n_gpus]
    targets = [(f"GPU {g}", g, "AUTO") for g in gpus] or [("CPU", None, "CPU")]
    print(f"Probing {len(targets)} device(s) with "
          f"{'the embedded bpy module' if blender is None else blender} at {width}x{height}, "
          f"{samples} samples...", flush=True)
    # all probes at once, as in a build: every GPU busy, sharing the CPU between them
    with ThreadPoolExecutor(len(targets)) as pool:
        futures = [pool.submit(run_probe, blender,
                               probe_args(args.quality, width, height, samples, args.scenes,
                                          device), gpu, args.timeout)
                   for _, gpu, device in targets]
    results, failed = [], False
    for (label, gpu, _), future in zip(targets, futures, strict=True):
        try:
            result = future.result()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{label}: FAILED: {exc}", file=sys.stderr)
            failed = True
            continue
        if gpu is not None and result["device"] == "CPU":
            print(f"{label}: FAILED: Cycles found no GPU on it (devices: {result['devices']})",
                  file=sys.stderr)
            failed = True
        results.append({"label": label, **result})
    if failed:
        return 1
    table = eta_table([r["seconds_per_scene"] for r in results])
    setting = f"--quality {args.quality} ({width}x{height}, {samples} samples)"
    print("\n".join(report_lines(results, table, setting)))
    return 0


def _probe_main(argv) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe", action="store_true")
    for name in ("--width", "--height", "--samples", "--scenes"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--quality", required=True)
    parser.add_argument("--device", required=True)
    probe(parser.parse_args(argv))


if __name__ == "__main__":
    cli = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    if "--probe" in cli:
        _probe_main(cli)
    else:
        sys.exit(main(cli))
