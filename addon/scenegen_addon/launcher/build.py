"""Build a dataset: the launcher behind `headless/build.py` and the panel's Generate button.

Checks every argument before any work starts, writes the plan and its fingerprint to
DIR/.scenegen/, starts one Blender worker per GPU (or --workers CPU workers), hands out
scenes one at a time, restarts dead or hung workers, and at the end has a worker run the
merge, then validates the folder. Rerunning the same command resumes. The exit codes are
exit_codes.ExitCode. The last line on stdout is a `result` event (launcher.protocol) that
the panel reads.
"""

import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from ..core import failures, layout, plan
from . import (
    blender_program,
    estimate,
    folder,
    gpus,
    options,
    pool,
    progress,
    protocol,
    repair,
    validate,
)
from .exit_codes import ExitCode, for_signal
from .gpus import BACKENDS
from .lock import LockHeld
from .options import Refused, check_options, check_worker_counts

ASK_ABOVE_SECONDS = 3600.0
VALIDATE_LABELS_MAX = 2000  # the validator recomputes labels of at most about this many scenes


def choose_workers(args, environ) -> tuple[str, list]:
    """(the workers' Cycles device: "CPU", or the --gpu-backend's "GPU", "OPTIX", "CUDA";
    the device of each worker: gpus.Device, or None for CPU workers).
    Prints what was found and, for GPUs, each worker's device."""
    if args.ray is not None:  # ray is imported only under --ray
        from . import cluster
        return cluster.choose_workers(args.ray, args.n_gpus, args.workers,
                                      args.workers_per_gpu, args.gpu_backend)
    try:
        setup = gpus.from_machine(args.n_gpus, environ)
        cpu = not setup.devices and not args.n_gpus
        check_worker_counts(args.workers, args.workers_per_gpu, cpu)
        if cpu:
            print(f"scenegen: {setup.note}", flush=True)
            return "CPU", [None] * (args.workers or 1)
        devices = gpus.assign(setup, args.n_gpus, args.workers_per_gpu or 1)
    except gpus.GpuSetupError as exc:
        raise Refused(str(exc)) from None
    print(f"scenegen: {setup.note}")
    for line in gpus.worker_lines(devices):
        print(f"scenegen: {line}")
    return BACKENDS[args.gpu_backend], list(devices)


def confirm(seconds: float, yes: bool) -> None:
    if seconds <= ASK_ABOVE_SECONDS or yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"this run is estimated at {progress.duration(seconds)} (above an "
                      "hour); rerun with --yes to start it")
    question = f"This run is estimated at {progress.duration(seconds)}. Start it? [y/N] "
    if input(question).strip().lower() not in ("y", "yes"):
        raise Refused("not started")


# --- the run ------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    """Parse, build, and end with the `result` event line; never a bare traceback."""
    args, message = None, ""
    try:
        args = options.build_parser().parse_args(argv)
        code = build(args)
    except Refused as exc:
        code, message = exc.code, str(exc)
        print(f"build.py: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:  # before the workers start: nothing to clean up
        code, message = ExitCode.SIGINT, "interrupted before the run began"
        print(f"build.py: {message}", file=sys.stderr)
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
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"--- {pool.now_iso()} internal error\n{text}")
    except (OSError, AttributeError, TypeError):  # no args, or nowhere to write
        return f"{last} (the traceback is on stderr)"
    return f"{last} (the traceback is in {log})"


def build(args) -> ExitCode:
    options = check_options(args)
    device, workers = choose_workers(args, os.environ)
    out = Path(args.output).expanduser().absolute()
    try:
        folder.check_path(out)
        blender = blender_program.find(args.blender, os.environ)
        versions = blender_program.probe(blender)
        document = plan.document(plan.plan_settings(
            **options, blender_version=versions["blender_version"],
            numpy_version=versions["numpy_version"]))
        with folder.claimed(out):
            return run(args, out, blender, device, workers, document, versions["package"])
    except folder.FolderRefused as exc:
        raise Refused(str(exc), ExitCode.DISK if exc.disk else ExitCode.REFUSED) from None
    except (blender_program.BlenderError, LockHeld) as exc:
        raise Refused(str(exc)) from None
    except (pool.DiskFull, OSError) as exc:  # outside the render (the plan, the logs...)
        if isinstance(exc, OSError) and not layout.is_disk_error(exc):
            raise
        raise Refused(f"disk full or not writable: {exc}; free space and rerun the same "
                      "command", ExitCode.DISK) from None


def run(args, out: Path, blender, device: str, workers: list, document: dict,
        package: str) -> ExitCode:
    """Check the folder against the plan, estimate, clear leftovers, write the plan, render,
    end."""
    existing = folder.check(out, document, args.overwrite)
    scenes = [plan.PlannedScene(**entry) for entry in document["scenes"]]
    complete = [] if args.overwrite else [
        s.scene_id for s in scenes if layout.is_complete(out, s.scene_id)]
    passes = layout.passes(document["settings"])
    damaged, unmanifested = repair.find_damaged(out, complete, passes, args.verify)
    for scene_id, problem in damaged.items():
        print(f"scenegen: {scene_id} is damaged ({problem}): it is rendered again")
    kept = set(complete) - set(damaged)
    todo = [s for s in scenes if s.scene_id not in kept]
    width, height = document["settings"]["resolution"]
    samples = document["settings"]["samples"]
    need = estimate.disk_estimate(todo, width, height, passes)
    free = shutil.disk_usage(out).free
    # one scene on a whole device; CPU workers share one device, each GPU device is its own
    per_scene = estimate.scene_seconds(width, height, samples, device != "CPU",
                                       os.cpu_count() or 1)
    devices = len(set(workers)) if device != "CPU" else 1
    seconds = len(todo) * per_scene / devices
    per_worker = per_scene * len(workers) / devices  # a scene's time when workers share devices
    # headless/doctor.py measured this machine; a Ray run's workers are on the cluster's
    measured = None if args.ray is not None else estimate.from_doctor(
        estimate.read_figures(), workers, device, document["settings"]["quality"], width,
        height, samples)
    if measured is not None:  # the doctor measured this machine at these settings
        seconds = len(todo) * 3600.0 / measured.scenes_per_hour
        per_worker = measured.worker_seconds
        print(f"scenegen: times from the doctor's figures ({estimate.figures_path()})")
    repairs = f" ({len(damaged)} of them damaged, to repair)" if damaged else ""
    print(f"scenegen: {len(scenes)} scenes planned: {len(todo)} to render{repairs}, "
          f"{len(kept)} already complete")
    print(f"scenegen: estimated disk use {progress.size_text(need)}, free "
          f"{progress.size_text(free)}; estimated time {progress.duration(seconds)} on "
          f"{len(workers)} {device} worker(s) ({blender.label})")
    print(f"scenegen: the launcher runs the package in {blender_program.PACKAGE}, the workers "
          f"the package in {package}", flush=True)
    if need > free:
        raise Refused(f"not enough disk space in {out}: about {progress.size_text(need)} "
                      f"needed, {progress.size_text(free)} free", ExitCode.DISK)
    if not args.plan_only:
        confirm(seconds, args.yes)
    if args.overwrite:
        folder.remove_own_files(out, existing)
    else:
        folder.clear_leftovers(out, existing)
    if not layout.plan_file(out).exists():
        pool.write_json(layout.plan_file(out), document, compact=True)
    if args.plan_only:
        print(f"scenegen: plan written to {layout.plan_file(out)}")
        return ExitCode.OK
    repair.heal(out, unmanifested)
    repair.reopen(out, damaged)
    layout.remove_partial(out, [s.scene_id for s in todo], passes)
    layout.remove_index(out, document["settings"]["counts"])
    scene_timeout = args.scene_timeout or max(600.0, 10 * per_worker)
    config = pool.Config(
        output=out, command=blender.command, device=device, devices=workers,
        scene_timeout=scene_timeout,
        first_scene_timeout=args.first_scene_timeout or scene_timeout + (
            1800.0 if measured is None else measured.first_scene_allowance),
        recycle_after=args.recycle_after,
        scene_bytes=estimate.scene_bytes(width, height, 15, passes),
        passes=passes,
    )
    make_pool = pool.Pool
    if args.ray is not None:
        from . import cluster
        make_pool = cluster.pool_factory(cluster.Options(
            args.ray, args.blender, document["settings"]["blender_version"], args.n_gpus,
            args.workers_per_gpu or 1))
    code = render_and_end(make_pool(config, [s.scene_id for s in todo], len(scenes),
                                    len(scenes) - len(todo), per_worker, say),
                          out, scenes, device)
    if damaged:
        fixed = [sid for sid in damaged if layout.is_complete(out, sid)]
        say(f"repaired {len(fixed)} of {len(damaged)} damaged scene(s): {', '.join(fixed)}")
    return code


def render_and_end(workers: pool.Pool, out: Path, scenes, device: str) -> ExitCode:
    """Render, merge and validate, each way a run can stop turned into its message and code."""
    try:
        return render_merge_validate(workers, out, scenes, device)
    except pool.Stopped as exc:
        end(workers, "failed", f"{exc}; rerun the same command to resume")
        return for_signal(exc.signum)
    except (pool.DiskFull, OSError) as exc:
        if isinstance(exc, OSError) and not layout.is_disk_error(exc):
            raise
        end(workers, "failed", f"disk full or not writable: {exc}. {workers.complete} complete "
            "scenes are kept; free space and rerun the same command to resume")
        return ExitCode.DISK
    except pool.RunFailed as exc:
        end(workers, "failed", str(exc))
        return ExitCode.WORKERS_FAILED
    except pool.DevicesFailed as exc:
        end(workers, "failed", str(exc))
        return ExitCode.DEVICES_FAILED


def render_merge_validate(workers: pool.Pool, out: Path, scenes, device: str) -> ExitCode:
    run_doc = start_run_record(out, workers, device)
    started = time.monotonic()

    def record_run():
        """failures.json and the wall time, which the merge reads."""
        run_doc["wall_seconds"] = round(run_doc["wall_seconds"] + time.monotonic() - started, 3)
        finished = {s.scene_id for s in scenes if layout.is_complete(out, s.scene_id)}
        failures.update(out, workers.failures, finished, order=[s.scene_id for s in scenes])
        pool.write_json(layout.run_file(out), run_doc)

    def on_signal(signum, frame):
        workers.signal = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            workers.run()
            record_run()
            workers.progress("merging", "merging the splits", force=True)
            workers.merge()
            workers.wait_closed()
            layout.empty_scratch(out)  # what the workers left there (their temporary files)
            workers.progress("merging", "validating", force=True)
        except BaseException:  # whatever stops the run, no worker outlives it
            workers.stop()
            try:
                record_run()
            except (OSError, pool.DiskFull):
                pass
            raise
        for s in old:  # no worker is left to stop: a signal ends the validation at once
            signal.signal(s, stop_now)
        if workers.signal is not None:
            raise pool.Stopped(workers.signal)
        workers.note(f"rendered: {workers.complete}/{workers.total} complete, "
                     f"{len(workers.failures)} failed; validating")
        code = validate.run(out, sample=min(1.0, VALIDATE_LABELS_MAX / len(scenes)),
                            jobs=os.cpu_count() or 1, map_tasks=workers.map_tasks,
                            status=lambda text: workers.progress(message=text, force=True,
                                                                 draw=False))
        text = {ExitCode.OK: "done: the dataset is complete and valid",
                ExitCode.INCOMPLETE: "done, but incomplete: failed scenes are listed in "
                                     "dataset_info.json",
                ExitCode.CORRUPT: "the validator found corrupt files (listed above)"}[code]
        end(workers, "done" if code != ExitCode.CORRUPT else "failed",
            f"{text} (exit code {code})")
        return code
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def stop_now(signum, frame):
    raise pool.Stopped(signum)


def start_run_record(out: Path, workers: pool.Pool, device: str) -> dict:
    """.scenegen/run.json: device counts (for dataset_info) and wall time across reruns."""
    path = layout.run_file(out)
    previous = layout.read_json(path) if path.exists() else {}
    n_workers = len(workers.c.devices)
    n_gpus = 0 if device == "CPU" else len({d.gpu_uuid for d in workers.c.devices})
    run_doc = {"n_gpus": n_gpus, "workers": n_workers, "device": device,
               "workers_per_gpu": n_workers // n_gpus if n_gpus else None,
               "started": previous.get("started", pool.now_iso()),
               "wall_seconds": previous.get("wall_seconds", 0.0),
               "runs": previous.get("runs", 0) + 1}
    pool.write_json(path, run_doc)
    return run_doc


def end(workers: pool.Pool, state: str, message: str) -> None:
    try:
        workers.progress(state, message, force=True)
    except (OSError, pool.DiskFull):
        pass
    workers.note(message)


def say(message: str) -> None:
    print(f"scenegen: {message}", file=sys.stderr, flush=True)
