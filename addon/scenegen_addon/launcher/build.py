"""Build a dataset: the launcher behind `headless/build.py` and the panel's Generate button.

Checks every argument before any work starts (launcher.options), writes the plan and its
fingerprint to DIR/.scenegen/, starts one Blender worker per GPU (or --workers CPU workers),
hands out scenes one at a time, restarts dead or hung workers, and at the end has a worker
run the merge, then validates the folder. Rerunning the same command resumes. The exit
codes are exit_codes.ExitCode. The last line on stdout is a `result` event
(launcher.protocol) that the panel reads.
"""

import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..core import failures, files, layout, merge, plan
from . import (
    backend,
    blender_program,
    estimate,
    folder,
    gpus,
    kernel_cache,
    options,
    progress,
    protocol,
    repair,
    validate,
)
from .exit_codes import ExitCode, for_signal
from .lock import LockHeld
from .options import Refused, check_options, check_worker_counts
from .pool import Config, DevicesFailed, DiskFull, Pool, RunFailed, Stopped

ASK_ABOVE_SECONDS = 3600.0
VALIDATE_LABELS_MAX = 2000  # the validator recomputes labels of at most about this many scenes


@dataclass
class Start:
    """What a run starts from, found before its folder is claimed."""

    out: Path
    blender: blender_program.Blender
    package: str  # the folder of the package the workers run
    device: str  # the workers' Cycles device: "CPU", or the GPU backend's (choose_backend)
    devices: list  # each worker's device: gpus.Device, a Ray slot, or None for the CPU
    document: dict  # the plan
    drivers: dict  # the local GPUs' driver versions by GPU UUID (nvidia-smi)
    # the doctor's figures file (estimate.read_figures), read once per build so that a doctor
    # writing it meanwhile cannot give the backend, the estimate and the start order each its
    # own; None: none
    figures: dict | None = None
    gpu_backend: backend.Choice | None = None  # the GPU backend and why (None: the CPU)

    @property
    def settings(self) -> dict:
        return self.document["settings"]

    @property
    def choices(self) -> list:
        """The doctor's choices per GPU model (backend, start order), from its figures."""
        return (self.figures or {}).get("choices", [])


@dataclass
class Work:
    """The plan's scenes against the folder: what is complete, damaged, left to render."""

    scenes: list[plan.PlannedScene]
    todo: list[plan.PlannedScene]
    kept: set[str]  # complete and sound
    damaged: dict[str, str]  # scene id -> what is wrong (rendered again)
    unmanifested: list[str]  # complete scenes whose manifest is lost (made again)
    passes: tuple[str, ...]


@dataclass
class Forecast:
    seconds: float  # the whole run
    per_worker: float  # one scene on one worker
    measured: estimate.Measured | None  # the doctor's figures, when they apply to this run


def choose_devices(args, environ) -> tuple[str, list, dict]:
    """(the workers' Cycles device: "CPU", or the --gpu-backend's "GPU", "OPTIX", "CUDA"
    until choose_backend resolves it; the device of each worker: gpus.Device, or None for
    CPU workers; the local GPUs' driver versions by GPU UUID).
    Prints what was found and, for GPUs, each worker's device."""
    if args.ray is not None:  # ray is imported only under --ray
        from . import cluster
        return (*cluster.choose_devices(args.ray, args.n_gpus, args.workers,
                                        args.workers_per_gpu, args.gpu_backend), {})
    try:
        setup = gpus.from_machine(args.n_gpus, environ)
        cpu = not setup.devices and not args.n_gpus
        check_worker_counts(args.workers, args.workers_per_gpu, cpu)
        if cpu:
            print(f"scenegen: {setup.note}", flush=True)
            return "CPU", [None] * (args.workers or 1), {}
        devices = gpus.assign(setup, args.n_gpus, args.workers_per_gpu or 1)
    except gpus.GpuSetupError as exc:
        raise Refused(str(exc)) from None
    print(f"scenegen: {setup.note}")
    if setup.warning:
        print(f"scenegen: warning: {setup.warning}; the GPUs it lists are used (have the "
              "card's infoROM checked: nvidia-smi -q)")
    if setup.query_warning:
        print(f"scenegen: warning: {setup.query_warning}")
    for line in gpus.worker_lines(devices):
        print(f"scenegen: {line}")
    drivers = {uuid: info.driver_version for uuid, info in setup.infos.items()}
    return backend.BACKENDS[args.gpu_backend], list(devices), drivers


# --- the run ------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    """Parse, build, and end with the `result` event line; never a bare traceback."""
    args, message = None, ""
    signal.signal(signal.SIGTERM, stop_now)  # before the render too, SIGTERM ends it with 143
    try:
        args = options.build_parser().parse_args(argv)
        code = build(args)
    except Refused as exc:
        code, message = options.refusal("build.py", exc), str(exc)
    except (KeyboardInterrupt, Stopped) as exc:  # before the workers start: nothing to clean up
        code = getattr(exc, "signum", signal.SIGINT)
        message = f"stopped by {signal.Signals(code).name} before the run began"
        print(f"build.py: {message}", file=sys.stderr)
        code = for_signal(code)
    except Exception:  # noqa: BLE001 - a bug: its own exit code, with the traceback
        code, message = ExitCode.INTERNAL, internal_error(args, traceback.format_exc())
    code = ExitCode(code)
    print(protocol.event_line(protocol.RESULT, code=int(code), meaning=code.meaning,
                              message=message), flush=True)
    return int(code)


def internal_error(args, text: str) -> str:
    """A bug: the traceback on stderr and, when the folder has .scenegen/logs/, in
    launcher.log there; returns the result's message, naming where the traceback is."""
    print(text, file=sys.stderr, end="")
    last = text.strip().splitlines()[-1]
    try:
        logs = layout.logs_dir(Path(args.output).expanduser().absolute())
        if logs.parent.is_symlink() or logs.is_symlink() or not logs.parent.is_dir():
            return f"{last} (the traceback is on stderr)"
        logs.mkdir(exist_ok=True)
        log = logs / "launcher.log"
        with files.append_text(log) as f:
            f.write(protocol.log_mark("internal error") + text)
    except (OSError, AttributeError, TypeError):  # no args, or nowhere to write
        return f"{last} (the traceback is on stderr)"
    return f"{last} (the traceback is in {log})"


def build(args) -> ExitCode:
    plan_options = check_options(args)
    device, devices, drivers = choose_devices(args, os.environ)
    out = Path(args.output).expanduser().absolute()
    try:
        folder.check_path(out)
        blender = blender_program.find(args.blender, os.environ)
        versions = blender_program.probe(blender)
        document = plan.document(plan.plan_settings(
            **plan_options, blender_version=versions["blender_version"],
            numpy_version=versions["numpy_version"]))
        with folder.claimed(out):
            return run(args, Start(out, blender, versions["package"], device, devices,
                                   document, drivers, estimate.read_figures()))
    except folder.FolderRefused as exc:
        raise Refused(str(exc), ExitCode.DISK if exc.disk else ExitCode.REFUSED) from None
    except (blender_program.BlenderError, LockHeld) as exc:
        raise Refused(str(exc)) from None
    except files.NotAFile as exc:  # an entry of the folder met after the start's checks
        raise Refused(f"{exc}; scenegen never opens it: move it away and rerun") from None
    except PermissionError as exc:
        raise Refused(f"{exc.filename}: {exc.strerror}: scenegen needs to read and write "
                      "every entry of the output folder; fix its permissions and rerun the "
                      "same command") from None
    except (DiskFull, OSError) as exc:  # outside the render (the plan, the logs...)
        if isinstance(exc, OSError) and not layout.is_disk_error(exc):
            raise
        raise Refused(f"disk full or read-only: {exc}; free space and rerun the same "
                      "command", ExitCode.DISK) from None


def run(args, start: Start) -> ExitCode:
    """The steps of a run in the claimed folder."""
    existing = folder.check(start.out, start.document, args.overwrite)
    choose_backend(args, start)
    work = find_work(start, args.overwrite, args.verify)
    found = forecast(args, start, work)
    prepare_folder(start, existing, args.overwrite)
    if args.plan_only:
        print(f"scenegen: plan written to {layout.plan_file(start.out)}")
        return ExitCode.OK
    repair_folder(start, work)
    pool = pool_kind(args, start)(
        pool_config(args, start, work, found), [s.scene_id for s in work.todo],
        len(work.scenes), len(work.scenes) - len(work.todo), found.per_worker, say)
    code = render_and_end(pool, start.out, work.scenes, start.device, start.gpu_backend)
    if work.damaged:
        fixed = [sid for sid in work.damaged if layout.is_complete(start.out, sid)]
        say(f"repaired {len(fixed)} of {len(work.damaged)} damaged scene(s): "
            f"{', '.join(fixed)}")
    return code


# --- the steps of a run ---------------------------------------------------------------------

def choose_backend(args, start: Start) -> None:
    """A GPU run's backend (launcher.backend): --gpu-backend, else the folder's own (not with
    --overwrite), else the doctor's choice or Cycles' default; said on one line."""
    if start.device == "CPU":
        return
    kept = None if args.overwrite else backend.kept(merge.read_run(start.out))
    models = [d.name for d in start.devices if isinstance(d, gpus.Device)]
    start.gpu_backend = backend.resolve(args.gpu_backend, kept, start.choices, models,
                                        start.settings["blender_version"], args.ray is not None)
    start.device = start.gpu_backend.device
    print(f"scenegen: {start.gpu_backend.line()}", flush=True)


def find_work(start: Start, overwrite: bool, verify: bool) -> Work:
    """The complete scenes (none with --overwrite), the damaged ones among them (named), and
    what is left to render."""
    scenes = [plan.PlannedScene(**entry) for entry in start.document["scenes"]]
    complete = [] if overwrite else [
        s for s in scenes if layout.is_complete(start.out, s.scene_id)]
    damaged, unmanifested = repair.find_damaged(start.out, complete, start.settings, verify)
    for scene_id, problem in damaged.items():
        print(f"scenegen: {scene_id} is damaged ({problem}): it is rendered again")
    kept = {s.scene_id for s in complete} - set(damaged)
    todo = [s for s in scenes if s.scene_id not in kept]
    return Work(scenes, todo, kept, damaged, unmanifested, layout.passes(start.settings))


def forecast(args, start: Start, work: Work) -> Forecast:
    """The forecast: time and disk use estimated and said, a disk too small refused, and
    a run estimated above an hour asked about (not for --plan-only)."""
    found = estimate_time(args.ray is not None, start, work)
    width, height = start.settings["resolution"]
    need = estimate.disk_estimate(work.todo, width, height, work.passes)
    free = shutil.disk_usage(start.out).free
    repairs = f" ({len(work.damaged)} of them damaged, to repair)" if work.damaged else ""
    print(f"scenegen: {len(work.scenes)} scenes planned: {len(work.todo)} to render{repairs}, "
          f"{len(work.kept)} already complete")
    print(f"scenegen: estimated disk use {progress.size_text(need)}, free "
          f"{progress.size_text(free)}; estimated time {progress.duration(found.seconds)} on "
          f"{len(start.devices)} {start.device} worker(s) ({start.blender.label})")
    print(f"scenegen: the launcher runs the package in {blender_program.PACKAGE}, the workers "
          f"the package in {start.package}", flush=True)
    if need > free:
        raise Refused(f"not enough disk space in {start.out}: about {progress.size_text(need)} "
                      f"needed, {progress.size_text(free)} free", ExitCode.DISK)
    if not args.plan_only:
        confirm(found.seconds, args.yes)
    return found


def estimate_time(on_ray: bool, start: Start, work: Work) -> Forecast:
    """From the doctor's figures when it measured this machine at these settings (never for
    a Ray run, whose workers are on the cluster's machines), else from launcher.estimate's
    constants."""
    settings = start.settings
    width, height = settings["resolution"]
    measured = None if on_ray else estimate.from_doctor(
        start.figures, start.devices, start.device, settings["quality"], width, height,
        settings["samples"])
    if measured is not None:
        print(f"scenegen: times from the doctor's figures ({estimate.figures_path()})")
        return Forecast(len(work.todo) * 3600.0 / measured.scenes_per_hour,
                        measured.worker_seconds, measured)
    # one scene on a whole device; CPU workers share one device, each GPU device is its own
    per_scene = estimate.scene_seconds(width, height, settings["samples"],
                                       start.device != "CPU", os.cpu_count() or 1)
    n_devices = len(set(start.devices)) if start.device != "CPU" else 1
    return Forecast(len(work.todo) * per_scene / n_devices,
                    per_scene * len(start.devices) / n_devices, None)


def confirm(seconds: float, yes: bool) -> None:
    if seconds <= ASK_ABOVE_SECONDS or yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"this run is estimated at {progress.duration(seconds)} (above an "
                      "hour); rerun with --yes to start it")
    question = f"This run is estimated at {progress.duration(seconds)}. Start it? [y/N] "
    if input(question).strip().lower() not in ("y", "yes"):
        raise Refused("not started")


def prepare_folder(start: Start, existing: folder.Existing, overwrite: bool) -> None:
    """Remove what killed writers left (with --overwrite: every file of the old plan), then
    write the plan when the folder has none."""
    if overwrite:
        folder.remove_own_files(start.out, existing)
    else:
        folder.clear_leftovers(start.out, existing)
    if not layout.plan_file(start.out).exists():
        layout.write_json(layout.plan_file(start.out), start.document, compact=True)


def repair_folder(start: Start, work: Work) -> None:
    """Before the workers start: lost manifests made again and, when scenes are to be
    rendered, the folder marked as changing (the last merge's files stay in place until the
    merge replaces them), damaged scenes reopened and what incomplete scenes left removed."""
    repair.heal(start.out, work.unmanifested)
    if work.todo:
        layout.mark_merge_pending(start.out)
    repair.reopen(start.out, work.damaged)
    layout.remove_partial(start.out, [s.scene_id for s in work.todo], work.passes)


def pool_config(args, start: Start, work: Work, found: Forecast) -> Config:
    width, height = start.settings["resolution"]
    scene_timeout = args.scene_timeout or max(600.0, 10 * found.per_worker)
    allowance = 1800.0 if found.measured is None else found.measured.first_scene_allowance
    return Config(
        output=start.out, command=start.blender.command, device=start.device,
        devices=start.devices, scene_timeout=scene_timeout,
        first_scene_timeout=args.first_scene_timeout or scene_timeout + allowance,
        recycle_after=args.recycle_after,
        scene_bytes=estimate.scene_bytes(width, height, 15, work.passes), passes=work.passes,
        start_groups=start_groups(args, start))


def start_groups(args, start: Start) -> tuple:
    """The start order of a local GPU run's workers, per GPU model (launcher.kernel_cache):
    one first where the doctor measured it faster and the kernel cache is cold."""
    if start.device == "CPU" or args.ray is not None:
        return ()
    folders = kernel_cache.cache_folders(layout.kernel_cache_dir(start.out), os.environ,
                                         start.device)
    return kernel_cache.groups(start.devices, start.drivers, start.settings["blender_version"],
                               start.device, folders, start.choices)


def pool_kind(args, start: Start):
    """pool.Pool, or under --ray the cluster's RayPool with its options."""
    if args.ray is None:
        return Pool
    from . import cluster
    return cluster.pool_factory(cluster.Options(
        args.ray, args.blender, start.settings["blender_version"], args.n_gpus,
        args.workers_per_gpu or 1))


# --- rendering, merging and validating -------------------------------------------------------

def render_and_end(pool: Pool, out: Path, scenes, device: str,
                   gpu_backend: backend.Choice | None = None) -> ExitCode:
    """Render, merge and validate, each way a run can stop turned into its message and code."""
    try:
        return render_merge_validate(pool, out, scenes, device, gpu_backend)
    except Stopped as exc:
        end(pool, progress.FAILED, f"{exc}; rerun the same command to resume")
        return for_signal(exc.signum)
    except (DiskFull, OSError) as exc:
        if isinstance(exc, OSError) and not layout.is_disk_error(exc):
            raise
        end(pool, progress.FAILED, f"disk full or read-only: {exc}. {pool.complete} "
            "complete scenes are kept; free space and rerun the same command to resume")
        return ExitCode.DISK
    except RunFailed as exc:
        end(pool, progress.FAILED, str(exc))
        return ExitCode.WORKERS_FAILED
    except DevicesFailed as exc:
        end(pool, progress.FAILED, str(exc))
        return ExitCode.DEVICES_FAILED


def render_merge_validate(pool: Pool, out: Path, scenes, device: str,
                          gpu_backend: backend.Choice | None = None) -> ExitCode:
    run_doc = start_run_record(out, pool, device, gpu_backend)
    started = time.monotonic()

    def record_run():
        """failures.json and the wall time, which the merge reads."""
        run_doc["wall_seconds"] = round(run_doc["wall_seconds"] + time.monotonic() - started, 3)
        finished = {s.scene_id for s in scenes if layout.is_complete(out, s.scene_id)}
        failures.update(out, pool.failures, finished, order=[s.scene_id for s in scenes])
        layout.write_json(layout.run_file(out), run_doc, compact=False)

    def on_signal(signum, frame):
        pool.signal = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            pool.run()
            record_run()
            pool.progress(progress.MERGING, "merging the splits", force=True)
            pool.merge()
            pool.wait_closed()
            layout.empty_scratch(out)  # what the workers left there (their temporary files)
            pool.progress(progress.MERGING, protocol.VALIDATING, force=True)
        except BaseException:  # whatever stops the run, no worker outlives it
            pool.stop()
            try:
                record_run()
            except (OSError, DiskFull):
                pass
            raise
        for s in old:  # no worker is left to stop: a signal ends the validation at once
            signal.signal(s, stop_now)
        if pool.signal is not None:
            raise Stopped(pool.signal)
        pool.note(f"rendered: {pool.complete}/{pool.total} complete, "
                  f"{len(pool.failures)} failed; {protocol.VALIDATING}")
        code = validate.run(out, sample=min(1.0, VALIDATE_LABELS_MAX / len(scenes)),
                            jobs=os.cpu_count() or 1, map_tasks=pool.map_tasks,
                            status=lambda text: pool.progress(message=text, force=True,
                                                              draw=False))
        text = {ExitCode.OK: "done: the dataset is complete and valid",
                ExitCode.INCOMPLETE: "done, but incomplete: failed scenes are listed in "
                                     "dataset_info.json",
                ExitCode.CORRUPT: "the validator found corrupt files (listed above)"}[code]
        abandoned = (f"; abandoned after SIGKILL: {'; '.join(pool.abandoned)}"
                     if pool.abandoned else "")
        end(pool, progress.DONE if code != ExitCode.CORRUPT else progress.FAILED,
            f"{text} (exit code {code}){abandoned}")
        return code
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def stop_now(signum, frame):
    raise Stopped(signum)


def start_run_record(out: Path, pool: Pool, device: str,
                     gpu_backend: backend.Choice | None = None) -> dict:
    """.scenegen/run.json: device counts (for dataset_info), wall time across reruns, and
    the GPU backend the folder keeps (a CPU run keeps the earlier one)."""
    path = layout.run_file(out)
    previous = merge.read_run(out)
    devices = pool.config.devices
    n_gpus = 0 if device == "CPU" else len({d.gpu_uuid for d in devices})
    run_doc = {"n_gpus": n_gpus, "workers": len(devices), "device": device,
               "workers_per_gpu": len(devices) // n_gpus if n_gpus else None,
               "started": previous.get("started", layout.now_iso()),
               "wall_seconds": previous.get("wall_seconds", 0.0),
               "runs": previous.get("runs", 0) + 1,
               "gpu_backend": (gpu_backend.record() if gpu_backend is not None
                               else previous.get("gpu_backend"))}
    layout.write_json(path, run_doc, compact=False)
    return run_doc


def end(pool: Pool, state: str, message: str) -> None:
    try:
        pool.progress(state, message, force=True)
    except (OSError, DiskFull):
        pass
    pool.note(message)


def say(message: str) -> None:
    print(f"scenegen: {message}", file=sys.stderr, flush=True)
