"""The doctor: measure a machine before a long build (`headless/doctor.py`), and keep the
figures for the launcher's ETA and first-scene timeout.

Each probe is a Blender running blender/probe.py on one device: it times its first scene
(process start and kernel load or compile) apart from its later scenes. A probe asked for
a GPU checks the device before rendering anything: a GPU on which Cycles finds no usable
device fails in seconds, never timed on the CPU. The doctor runs, on every device at once
(as a build would: every GPU busy, the CPU shared):

1. a cold process with the build's backend (`--gpu-backend`), its kernel caches
   (CUDA_CACHE_PATH, OPTIX_CACHE_PATH: `kernel_cache.cache_env`) in a folder it names, empty at
   first unless `--kernel-cache` gives one;
2. a second cold process on the same device and caches: a fast first scene means the
   caches persist; it also renders one scene with `denoising_use_gpu` on and off;
3. two processes at once on the same device: seconds per scene each, scenes per hour;
4. the other backend (CUDA against OptiX) where Cycles lists both.

Without GPUs (`--n-gpus 0`, or no NVIDIA GPU) it runs step 1 on the CPU only. Then it
prints per device its name, UUID, MIG slice, driver, compute mode, backend and figures, an
ETA for every size preset, and merges the figures into a JSON file (`--out`, default
`estimate.figures_path()`) that launcher.estimate.from_doctor reads.
"""

import argparse
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core import layout, presets
from . import blender_program, estimate, gpus, kernel_cache, options, progress, protocol
from .backend import BACKENDS
from .nvidia_smi import GpuInfo

# compute modes in which one CUDA process at a time may use a GPU (nvidia-smi's names)
EXCLUSIVE_MODES = ("Exclusive_Process", "Exclusive_Thread")
OTHER_BACKEND = {"OPTIX": "CUDA", "CUDA": "OPTIX"}
# A kernel load under this many seconds compiled nothing worth caching; a second process
# whose load is under CACHE_WORKS of the first one's found the first one's kernels.
SMALL_KERNEL_LOAD = 10.0
CACHE_WORKS = 0.5
# a difference under this fraction of a time is noise, not a faster setting
NOISE = 0.05
STAGES = {"cold": "cold process", "second": "second cold process", "pair": "2 workers at once",
          "other": "other backend"}


class ProbeFailed(Exception):
    """A probe did not give its result; the message says why."""


# --- one device's measurements -------------------------------------------------------------

@dataclasses.dataclass
class Target:
    """One device the doctor measures, and what each stage's probes returned (a result
    dict, or the ProbeFailed of a probe that gave none)."""

    label: str
    gpu: gpus.Device | None
    info: GpuInfo = GpuInfo()
    runs: dict = dataclasses.field(default_factory=dict)

    def results(self, stage: str) -> list[dict]:
        return [r for r in self.runs.get(stage, []) if isinstance(r, dict)]

    def failures(self, stage: str) -> list[ProbeFailed]:
        return [r for r in self.runs.get(stage, []) if isinstance(r, ProbeFailed)]

    @property
    def kind(self) -> str:
        return estimate.device_kind(self.gpu)


def start_seconds(result: dict) -> float:
    """A probe's seconds outside its renders: process start, imports, exit."""
    rendered = result["first_scene_seconds"] + sum(result["scene_seconds"])
    rendered += sum(d["seconds"] for d in (result.get("denoise") or {}).values())
    return max(0.0, result["wall_seconds"] - rendered)


def kernel_load(result: dict) -> float:
    """The first scene's extra time over a later one: loading or compiling the kernels."""
    return max(0.0, result["first_scene_seconds"] - result["seconds_per_scene"])


def cache_verdict(cold: dict, second: dict) -> str:
    """Whether the second process found the kernels the first one compiled."""
    first, again = kernel_load(cold), kernel_load(second)
    if first < SMALL_KERNEL_LOAD:
        return "the cold process compiled little (a cache or kernels in the package)"
    if again <= CACHE_WORKS * first:
        return "the kernel cache works"
    return "it compiled again: the kernel cache is not kept"


def denoise_verdict(denoise: dict) -> str:
    """Read the denoiser's on/off times; Blender does not say which device OIDN ran on."""
    on, off = denoise["on"]["render_seconds"], denoise["off"]["render_seconds"]
    if not (denoise["on"]["denoising_use_gpu"] and not denoise["off"]["denoising_use_gpu"]):
        return "the setting did not take"
    if on < (1 - NOISE) * off:
        return f"the GPU denoiser saves {off - on:.1f} s"
    return "no faster with it on: OIDN may have run on the CPU both times"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def one_worker_seconds(target: Target) -> float | None:
    """Seconds per scene of one worker alone on the device (its single processes)."""
    found = [r["seconds_per_scene"] for s in ("cold", "second") for r in target.results(s)]
    return mean(found) if found else None


def two_worker_seconds(target: Target) -> float | None:
    """Seconds per scene of each of two workers sharing the device; None unless both ran."""
    pair = target.results("pair")
    return mean([r["seconds_per_scene"] for r in pair]) if len(pair) == 2 else None


def first_scene_seconds(results: list[dict]) -> float:
    """The slowest first scene counted from the process start: the allowance's basis."""
    return max(start_seconds(r) + r["first_scene_seconds"] for r in results)


# --- the report (pure) ---------------------------------------------------------------------

def eta_table(seconds_per_scene: list[float], sizes: dict | None = None) -> list[dict]:
    """ETA of each size preset with one worker per entry working in parallel.

    The workers' rates add up: scenes per hour = sum of 3600 / seconds over the entries.
    """
    if not seconds_per_scene or any(s <= 0 for s in seconds_per_scene):
        raise ValueError(f"seconds_per_scene must be positive numbers, got {seconds_per_scene}")
    per_hour = sum(3600.0 / s for s in seconds_per_scene)
    rows = []
    for size, counts in (sizes or presets.DATASET_SIZES).items():
        scenes = sum(counts.values())
        rows.append({"size": size, "scenes": scenes, "seconds": progress.eta(scenes, per_hour)})
    return rows


def _objects(result: dict) -> str:
    return ", ".join(str(n) for n in result["n_objects"])


def _failed(target: Target, stage: str, what: str) -> list[str]:
    return [f"  {what}: FAILED: {exc}" for exc in target.failures(stage)]


def target_lines(target: Target) -> list[str]:
    """What was measured on one device, a line per question."""
    header = target.label
    if target.gpu is not None:
        info = target.info
        header += (f": driver {info.driver_version}, compute mode {info.compute_mode}, "
                   f"MIG {info.mig_mode}")
    cold = target.results("cold")
    if not cold:
        return [header, *_failed(target, "cold", "probe")]
    c = cold[0]
    lines = [header, "  Cycles sees " + ", ".join(f"{kind} {name}" for kind, name in c["devices"])]
    load = f" (kernel load ~{kernel_load(c):.1f} s)" if target.gpu is not None else ""
    lines.append(f"  {c['device']} ({c['device_name']}), cold process: started in "
                 f"{start_seconds(c):.1f} s, first scene {c['first_scene_seconds']:.1f} s{load}, "
                 f"then {c['seconds_per_scene']:.1f} s per scene ({_objects(c)} objects)")
    if target.gpu is None:
        return lines
    return lines + _second_lines(target, c) + _pair_lines(target) + _other_lines(target, c)


def _second_lines(target: Target, cold: dict) -> list[str]:
    lines = _failed(target, "second", f"{cold['device']}, second cold process")
    for s in target.results("second"):
        lines.append(f"  {s['device']}, second cold process: first scene "
                     f"{s['first_scene_seconds']:.1f} s (kernel load ~{kernel_load(s):.1f} s): "
                     f"{cache_verdict(cold, s)}")
        if s.get("denoise"):
            d = s["denoise"]
            lines.append(f"  denoiser: {d['on']['render_seconds']:.1f} s in Cycles per scene "
                         f"with denoising_use_gpu on, {d['off']['render_seconds']:.1f} s off: "
                         f"{denoise_verdict(d)} (Blender does not say which device OIDN used)")
    return lines


def _pair_lines(target: Target) -> list[str]:
    if target.info.compute_mode in EXCLUSIVE_MODES:
        return [f"  2 workers at once: skipped: compute mode {target.info.compute_mode} lets "
                "one process at a time use the GPU (use --workers-per-gpu 1)"]
    lines = _failed(target, "pair", "2 workers at once")
    two, one = two_worker_seconds(target), one_worker_seconds(target)
    if two is not None:
        each = " and ".join(f"{r['seconds_per_scene']:.1f}" for r in target.results("pair"))
        lines.append(f"  2 workers at once: {each} s per scene, {2 * 3600 / two:.0f} scenes per "
                     f"hour together against {3600 / one:.0f} with 1 worker")
    return lines


def _other_lines(target: Target, cold: dict) -> list[str]:
    other = OTHER_BACKEND.get(cold["device"])
    if other is None or other not in {kind for kind, _ in cold["devices"]}:
        return [f"  OptiX against CUDA: not compared, Cycles lists only {cold['device']}"]
    lines = _failed(target, "other", other)
    for o in target.results("other"):
        mine, theirs = one_worker_seconds(target), o["seconds_per_scene"]
        faster = cold["device"] if mine < theirs else other
        lines.append(f"  {other} ({o['device_name']}), one process: first scene "
                     f"{o['first_scene_seconds']:.1f} s, then {theirs:.1f} s per scene: "
                     f"{faster} is faster ({cold['device']} {mine:.1f} s, {other} "
                     f"{theirs:.1f} s per scene)")
    return lines


def advice(targets: list[Target]) -> str | None:
    """The fastest settings measured on every GPU: the backend, and 1 or 2 workers each."""
    measured = [t for t in targets if t.gpu is not None and t.results("cold")]
    if not measured or len(measured) < len(targets):
        return None
    backend = _used(measured[0])
    others = [t.results("other") for t in measured]
    if all(others) and all(o[0]["seconds_per_scene"] < (1 - NOISE) * one_worker_seconds(t)
                           for t, o in zip(measured, others, strict=True)):
        backend = others[0][0]["device"]
    two = all(p is not None and 2 / p > (1 + NOISE) / one_worker_seconds(t)
              for t, p in ((t, two_worker_seconds(t)) for t in measured))
    if any(t.gpu.mig_profile is not None for t in measured):
        workers = f"{2 if two else 1} worker(s) per MIG slice"
    else:
        workers = f"--workers-per-gpu {2 if two else 1}"
    return f"Fastest measured here: --gpu-backend {backend.lower()}, {workers}"


def eta_lines(targets: list[Target], setting: str) -> list[str]:
    """ETA per size preset with one worker per measured device, and with two where every
    device was measured with two."""
    ones = [s for s in map(one_worker_seconds, targets) if s is not None]
    if not ones:
        return []
    twos = [two_worker_seconds(t) for t in targets if t.results("cold")]
    both = eta_table([s for s in twos for _ in (0, 1)]) if None not in twos else None
    lines = [f"ETA at {setting} on {len(ones)} device(s) working together:"]
    for k, row in enumerate(eta_table(ones)):
        lines.append(f"  --size {row['size']:<7} {row['scenes']:>7} scenes  "
                     f"{progress.duration(row['seconds'])}")
        if both:
            lines[-1] += f"  (2 workers per device: {progress.duration(both[k]['seconds'])})"
    return lines


def report_lines(blender_version: str, targets: list[Target], setting: str) -> list[str]:
    """The human summary: each device's measurements, the ETA table, the fastest settings."""
    lines = [f"Blender {blender_version}"]
    for target in targets:
        lines += target_lines(target)
    lines += eta_lines(targets, setting)
    found = advice(targets)
    return lines + ([found] if found else [])


# --- the figures file (pure, then written) -------------------------------------------------

def _entry(targets: list[Target], backend: str, stages: tuple, setting: dict) -> dict:
    """One figures entry: devices of one kind measured with one backend."""
    results = [r for t in targets for s in stages for r in t.results(s)]
    ones = [mean([r["seconds_per_scene"] for s in stages if s != "pair" for r in t.results(s)])
            for t in targets]
    entry = {
        "kind": targets[0].kind, "backend": backend, **setting,
        "default": backend == "CPU" or results[0].get("gpu_default") == backend,
        "seconds_per_scene": {"1": round(mean(ones), 3)},
        "first_scene_seconds": round(first_scene_seconds(results), 3),
        "cold_start_seconds": round(max(t.results(stages[0])[0]["first_scene_seconds"]
                                        for t in targets), 3),
        "devices": len(targets),
        "blender_version": results[0]["blender_version"],
    }
    if backend != "CPU":
        entry["driver_version"] = targets[0].info.driver_version
    seconds_two = [two_worker_seconds(t) for t in targets] if "pair" in stages else [None]
    if None not in seconds_two:
        entry["seconds_per_scene"]["2"] = round(mean(seconds_two), 3)
    warm = [t.results("second") for t in targets] if "second" in stages else [[]]
    if all(warm):
        entry["warm_start_seconds"] = round(max(w[0]["first_scene_seconds"] for w in warm), 3)
    return entry


def figures_entries(targets: list[Target], setting: dict) -> list[dict]:
    """Entries per device kind and backend, over the devices whose cold probe worked."""
    by_kind: dict[str, list[Target]] = {}
    for target in targets:
        if target.results("cold"):
            by_kind.setdefault(target.kind, []).append(target)
    entries = []
    for same in by_kind.values():
        backend = same[0].results("cold")[0]["device"]
        entries.append(_entry(same, backend, ("cold", "second", "pair"), setting))
        other = [t for t in same if t.results("other")]
        if other:
            entries.append(_entry(other, other[0].results("other")[0]["device"], ("other",),
                                  setting))
    return entries


def merge_figures(old: dict | None, entries: list[dict], host: str, now: str) -> dict:
    """The figures file with `entries` in place of older ones of the same key."""
    stamped = [{**e, "host": host, "measured": now} for e in entries]
    new_keys = {estimate.entry_key(e) for e in stamped}
    kept = [e for e in (old or {}).get("entries", []) if estimate.entry_key(e) not in new_keys]
    return {"format": estimate.FIGURES_FORMAT, "entries": kept + stamped}


# --- running probes ------------------------------------------------------------------------

def probe_command(blender: str | None, probe_args: list[str]) -> list[str]:
    return blender_program.program_command(blender, "doctor-probe") + probe_args


def probe_args(quality: str, width: int, height: int, samples: int, scenes: int,
               device: str, denoise_check: bool = False) -> list[str]:
    args = ["--quality", quality, "--width", str(width), "--height", str(height),
            "--samples", str(samples), "--scenes", str(scenes), "--device", device]
    return args + (["--denoise-check"] if denoise_check else [])


def run_probe(blender, args: list[str], env: dict, timeout: float) -> dict:
    """Run one probe with `env` added to ours; its result with the process's wall seconds.
    Raises ProbeFailed with the probe's own error, or the tail of its output."""
    start = time.perf_counter()
    try:
        done = subprocess.run(probe_command(blender, args), env={**os.environ, **env},
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ProbeFailed(f"no result within {timeout:g} s (--timeout)") from None
    result = protocol.last_event(done.stdout, protocol.DOCTOR_RESULT)
    if result is not None and "error" in result:
        raise ProbeFailed(result["error"])
    if done.returncode != 0 or result is None:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ProbeFailed(f"probe exited with {done.returncode}:\n{tail}")
    if args[args.index("--device") + 1] != "CPU" and result["device"] == "CPU":
        raise ProbeFailed(f"Cycles found no GPU on it (devices: {result['devices']})")
    return {**result, "wall_seconds": time.perf_counter() - start}


def run_stage(jobs: list[tuple[Target, str, list[str], dict]], run) -> None:
    """Run every job (target, stage, probe arguments, environment) at once, as a build runs
    its workers, and file each result or failure under its target and stage."""
    if not jobs:
        return
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(run, args, env) for _, _, args, env in jobs]
    for (target, stage, _, _), future in zip(jobs, futures, strict=True):
        try:
            outcome = future.result()
        except ProbeFailed as exc:
            outcome = exc
        target.runs.setdefault(stage, []).append(outcome)


def cache_line(cache: dict, environ) -> str:
    """Where the probes' kernel caches are: the doctor's folder, or the user's own paths."""
    paths = {**environ, **cache}
    return ", ".join(f"{name}={paths[name]}" for name in ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH"))


def gpu_env(target: Target, cache: dict) -> dict:
    """A GPU probe's environment: pinned by UUID, with the doctor's kernel caches."""
    return {**target.gpu.env(), **cache}


def measure(targets: list[Target], run, base: dict, backend: str, cache: dict, say) -> None:
    """The four stages of the module docstring; a device whose cold probe failed is done."""
    if targets[0].gpu is None:
        say("Measuring the CPU: one process")
        run_stage([(targets[0], "cold", probe_args(**base, device="CPU"), {})], run)
        return
    say("1/4 a cold process per GPU (a fresh machine may compile kernels for minutes)")
    run_stage([(t, "cold", probe_args(**base, device=backend), gpu_env(t, cache))
               for t in targets], run)
    alive = [t for t in targets if t.results("cold")]
    if not alive:
        return
    say("2/4 a second cold process per GPU, and the denoiser on and off")
    run_stage([(t, "second", probe_args(**base, device=_used(t), denoise_check=True),
                gpu_env(t, cache)) for t in alive], run)
    say("3/4 two processes at once per GPU")
    run_stage([(t, "pair", probe_args(**base, device=_used(t)), gpu_env(t, cache))
               for t in alive if t.info.compute_mode not in EXCLUSIVE_MODES for _ in (0, 1)],
              run)
    say("4/4 the other backend where Cycles lists OptiX and CUDA")
    run_stage([(t, "other", probe_args(**base, device=_other(t)), gpu_env(t, cache))
               for t in alive if _other(t)], run)


def _used(target: Target) -> str:
    return target.results("cold")[0]["device"]


def _other(target: Target) -> str | None:
    cold = target.results("cold")[0]
    other = OTHER_BACKEND.get(cold["device"])
    return other if other in {kind for kind, _ in cold["devices"]} else None


# --- the command ---------------------------------------------------------------------------

def gpu_list(n_gpus: int | None) -> tuple[gpus.GpuSetup, list[gpus.Device]]:
    """What the machine shows and the devices a build would use, one probe each (the
    launcher's rule, launcher.gpus)."""
    setup = gpus.from_machine(n_gpus)
    return setup, list(gpus.assign(setup, n_gpus))


def _resolution(text: str) -> tuple[int, int]:
    try:
        return presets.parse_resolution(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = options.Parser(
        prog="doctor.py",
        description="Measure scenegen on this machine: per GPU its driver, compute mode, MIG, "
                    "kernel load of a cold and a second cold process, seconds per scene with "
                    "1 and 2 workers, OptiX against CUDA, the GPU denoiser; ETA per size. "
                    "Writes the figures the build uses for its ETA and first-scene timeout.")
    parser.add_argument("--blender", help="Blender executable (default $BLENDER, then "
                                          "`blender` on PATH, then the embedded bpy module)")
    parser.add_argument("--quality", default=presets.DEFAULT_QUALITY,
                        choices=list(presets.QUALITIES), help="quality preset to time")
    parser.add_argument("--resolution", type=_resolution,
                        help="override the preset's WxH")
    parser.add_argument("--samples", type=options.whole_number,
                        help="override the preset's samples")
    parser.add_argument("--scenes", type=options.whole_number, default=2,
                        help="timed scenes per probe after its first")
    parser.add_argument("--n-gpus", type=options.whole_number,
                        help="probe only the first N visible GPUs (0: the CPU)")
    parser.add_argument("--gpu-backend", choices=tuple(BACKENDS), default="auto",
                        help="the backend of steps 1-3, as the build's option (default auto)")
    parser.add_argument("--kernel-cache", type=Path, metavar="DIR",
                        help="the probes' kernel caches (default: a new empty folder next to "
                             "--out, removed at the end)")
    parser.add_argument("--out", type=Path, metavar="FILE", default=estimate.figures_path(),
                        help="the figures file the build reads (default %(default)s)")
    parser.add_argument("--timeout", type=options.duration_seconds, default=3600.0,
                        help="seconds allowed per probe (a first GPU render compiles kernels)")
    return parser


# option -> (smallest, largest or None) allowed
NUMBER_RANGES = {"samples": (1, presets.MAX_SAMPLES), "scenes": (1, None), "n_gpus": (0, None)}


def _check(args) -> tuple[dict, str | None, list[Target]]:
    """The arguments checked, before any probe: the probe settings, Blender, the targets;
    options.Refused otherwise."""
    options.check_ranges(args, NUMBER_RANGES)
    options.check_duration(args.timeout, "--timeout")
    quality = presets.quality(args.quality)
    width, height = args.resolution or (quality.width, quality.height)
    samples = args.samples or quality.samples
    try:  # the build's Blender, checked as the build checks it; None: the bpy module
        blender = blender_program.find(args.blender, os.environ).executable
        setup, devices = gpu_list(args.n_gpus)
    except (blender_program.BlenderError, gpus.GpuSetupError) as exc:
        raise options.Refused(str(exc)) from None
    if setup.warning:
        print(f"warning: {setup.warning}", flush=True)
    targets = [Target(d.describe(), d, setup.info(d.gpu_uuid)) for d in devices]
    base = {"quality": args.quality, "width": width, "height": height, "samples": samples,
            "scenes": args.scenes}
    return base, blender, targets or [Target(estimate.device_kind(None), None)]


def _cache_folder(args) -> tuple[Path, bool, str]:
    """(the kernel cache folder, whether the doctor made it and removes it, a note)."""
    if args.kernel_cache is not None:
        args.kernel_cache.mkdir(parents=True, exist_ok=True)
        held = sum(1 for p in args.kernel_cache.rglob("*") if p.is_file())
        return args.kernel_cache, False, f"given, {held} file(s) in it at the start"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    made = Path(tempfile.mkdtemp(prefix="doctor_kernel_cache_", dir=args.out.parent))
    return made, True, "new and empty, removed at the end"


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        base, blender, targets = _check(args)
    except options.Refused as exc:
        return options.refusal(parser.prog, exc)
    on_gpu = targets[0].gpu is not None
    print(f"Probing {len(targets)} device(s) with "
          f"{'the embedded bpy module' if blender is None else blender} at "
          f"{base['width']}x{base['height']}, {base['samples']} samples...", flush=True)
    folder, made, note = _cache_folder(args) if on_gpu else (None, False, "")
    try:
        cache = kernel_cache.cache_env(str(folder)) if on_gpu else {}
        if on_gpu:
            print(f"kernel caches: {cache_line(cache, os.environ)} ({note})", flush=True)

        def run(probe_args, env):
            return run_probe(blender, probe_args, env, args.timeout)

        measure(targets, run, base, BACKENDS[args.gpu_backend], cache,
                lambda line: print(line, flush=True))
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
    return finish(args, base, targets)


def finish(args, base: dict, targets: list[Target]) -> int:
    """Print the report, merge the figures into --out; 0 when every probe gave a result."""
    results = [r for t in targets for r in t.results("cold")]
    version = results[0]["blender_version"] if results else "?"
    setting = (f"--quality {args.quality} ({base['width']}x{base['height']}, "
               f"{base['samples']} samples)")
    print("\n".join(report_lines(version, targets, setting)), flush=True)
    entries = figures_entries(targets, {k: base[k] for k in estimate.SETTING_FIELDS})
    if entries:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        document = merge_figures(estimate.read_figures(args.out), entries,
                                 socket.gethostname(), now)
        layout.write_json(args.out, document, compact=False)
        print(f"figures written to {args.out} (the build reads them for its ETA and "
              "first-scene timeout)")
    failed = sum(len(t.failures(s)) for t in targets for s in STAGES)
    if failed:
        print(f"{failed} probe(s) failed (see FAILED above)", file=sys.stderr)
    return 1 if failed else 0
