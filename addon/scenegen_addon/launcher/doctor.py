"""The doctor: measure a machine before a long build (`headless/doctor.py`), and keep the
figures for the launcher's ETA, first-scene timeout, GPU backend and start order.

Each probe is a Blender running blender/probe.py on one device: it times its first scene
(process start and kernel load or compile) apart from its later scenes. A probe asked for
a GPU checks the device before rendering anything: a GPU on which Cycles finds no usable
device fails in seconds, never timed on the CPU. The doctor runs, on every device at once
(as a build would: every GPU busy, the CPU shared):

1. a cold process with the build's backend (`--gpu-backend`), its kernel caches
   (CUDA_CACHE_PATH, OPTIX_CACHE_PATH: `kernel_cache.cache_env`) in a folder it names,
   empty at first unless `--kernel-cache` gives one;
2. a second cold process on the same device and caches: a fast first scene means the
   caches persist; it also renders one scene with `denoising_use_gpu` on and off;
3. two processes at once on the same device: seconds per scene each, scenes per hour;
4. the other backend (CUDA against OptiX) where Cycles lists both;
5. per GPU model with two GPUs or more, one cold process alone on the machine with new,
   empty caches (the models one after another): against step 1, whether starting one
   worker first and the rest on its cache is faster than all at once. Only when step 1's
   caches were empty (no --kernel-cache, no cache variables of the user's).

Without GPUs (`--n-gpus 0`, or no NVIDIA GPU) it runs step 1 on the CPU only. Then it
prints per device its name, UUID, MIG slice, driver, compute mode, backend and figures, an
ETA for every size preset, the backend and start order a build takes per GPU model, and
merges the figures into a JSON file (`--out`, default `estimate.figures_path()`) that the
build reads (launcher.doctor_report holds every reading of the results).
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core import layout, presets
from . import blender_program, estimate, gpus, kernel_cache, options, pool, protocol
from .backend import BACKENDS
from .doctor_report import (
    EXCLUSIVE_MODES,
    STAGES,
    ProbeFailed,
    Target,
    figures_entries,
    merge_figures,
    report_lines,
)
from .doctor_report import choices as measured_choices

MAX_SCENES = 100  # --scenes: timed scenes per probe

# --- running probes ------------------------------------------------------------------------

def probe_command(blender: str | None, probe_args: list[str]) -> list[str]:
    return blender_program.program_command(blender, "doctor-probe") + probe_args


def probe_args(quality: str, width: int, height: int, samples: int, scenes: int,
               device: str, denoise_check: bool = False) -> list[str]:
    args = ["--quality", quality, "--width", str(width), "--height", str(height),
            "--samples", str(samples), "--scenes", str(scenes), "--device", device]
    return args + (["--denoise-check"] if denoise_check else [])


def run_command(command: list[str], env: dict, timeout: float,
                kill_grace: float = pool.KILL_GRACE_SECONDS) -> subprocess.CompletedProcess:
    """Run a probe's command in its own session, its output captured. After `timeout`
    seconds its whole process group is killed (Blender's children hold its output open too)
    and waited for at most `kill_grace` seconds: one stuck in the GPU driver is left behind,
    named. ProbeFailed on a timeout."""
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        failed = f"no result within {timeout:g} s (--timeout)"
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=kill_grace)
        except subprocess.TimeoutExpired:
            failed += (f"; killed, it did not exit within {kill_grace:g} s of SIGKILL (stuck, "
                       f"e.g. in the GPU driver): PID {proc.pid} left behind")
        raise ProbeFailed(failed) from None
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def run_probe(blender, args: list[str], env: dict, timeout: float) -> dict:
    """Run one probe with `env` added to ours; its result with the process's wall seconds.
    Raises ProbeFailed with the probe's own error, or the tail of its output."""
    start = time.perf_counter()
    done = run_command(probe_command(blender, args), {**os.environ, **env}, timeout)
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


def measure(targets: list[Target], run, base: dict, backend: str, cache: dict, say,
            fresh_parent: Path | None = None) -> None:
    """The stages of the module docstring; a device whose cold probe failed is done. Stage
    5 makes its empty caches in `fresh_parent` (None: step 1's caches were not empty, so
    there is nothing to compare with, and it is left out)."""
    if targets[0].gpu is None:
        say("Measuring the CPU: one process")
        run_stage([(targets[0], "cold", probe_args(**base, device="CPU"), {})], run)
        return
    say("1/5 a cold process per GPU (a fresh machine may compile kernels for minutes)")
    run_stage([(t, "cold", probe_args(**base, device=backend), gpu_env(t, cache))
               for t in targets], run)
    alive = [t for t in targets if t.results("cold")]
    if not alive:
        return
    say("2/5 a second cold process per GPU, and the denoiser on and off")
    run_stage([(t, "second", probe_args(**base, device=t.used(), denoise_check=True),
                gpu_env(t, cache)) for t in alive], run)
    say("3/5 two processes at once per GPU")
    run_stage([(t, "pair", probe_args(**base, device=t.used()), gpu_env(t, cache))
               for t in alive if t.info.compute_mode not in EXCLUSIVE_MODES for _ in (0, 1)],
              run)
    say("4/5 the other backend where Cycles lists OptiX and CUDA")
    run_stage([(t, "other", probe_args(**base, device=t.other()), gpu_env(t, cache))
               for t in alive if t.other()], run)
    models: dict[str, list[Target]] = {}
    for target in alive:
        models.setdefault(target.gpu.name, []).append(target)
    several = [same[0] for same in models.values() if len(same) > 1]
    if not several or fresh_parent is None:
        return
    say("5/5 one cold process alone per GPU model, with empty caches")
    for target in several:  # one at a time: alone on the machine
        with empty_caches(fresh_parent) as empty:
            run_stage([(target, "alone", probe_args(**base, device=target.used()),
                        gpu_env(target, empty))], run)


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
                        help="timed scenes per probe after its first (default %(default)s, "
                             f"at most {MAX_SCENES})")
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


# option -> (smallest, largest or None) allowed: the build's for the options it shares
NUMBER_RANGES = {**{name: options.NUMBER_RANGES[name] for name in ("samples", "n_gpus")},
                 "scenes": (1, MAX_SCENES)}


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
    for warning in (setup.warning, setup.query_warning):
        if warning:
            print(f"warning: {warning}", flush=True)
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


@contextlib.contextmanager
def empty_caches(parent: Path):
    """Kernel cache variables for new empty folders in `parent`, every one set (the user's
    own too), the folders removed afterwards."""
    folder = tempfile.mkdtemp(prefix="doctor_kernel_cache_", dir=parent)
    try:
        yield kernel_cache.cache_env(folder, {})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
        # the start order is compared only from empty caches (stage 1's, a new folder)
        users = [name for name in ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH") if name in os.environ]
        fresh = args.out.parent if made and not users else None

        def run(probe_args, env):
            return run_probe(blender, probe_args, env, args.timeout)

        measure(targets, run, base, BACKENDS[args.gpu_backend], cache,
                lambda line: print(line, flush=True), fresh)
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
        document = merge_figures(estimate.read_figures(args.out), entries,
                                 measured_choices(targets), socket.gethostname(),
                                 layout.now_iso())
        layout.write_json(args.out, document, compact=False)
        print(f"figures written to {args.out} (the build reads them for its ETA, first-scene "
              "timeout, GPU backend and start order)")
    failed = sum(len(t.failures(s)) for t in targets for s in STAGES)
    if failed:
        print(f"{failed} probe(s) failed (see FAILED above)", file=sys.stderr)
    return 1 if failed else 0
