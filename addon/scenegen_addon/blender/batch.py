"""The batch loop: sample and render scenes of a plan into its output folder.

Shared by bpy.ops.scenegen.batch (a `blender -b` script) and the launcher's workers. For
each scene id: skip it if complete, sample it (core.sampling), render it
(pipeline.render_views), and hand its post-processing (pipeline.finish_scene: masks, labels,
the record) to a Finisher thread while the next scene renders. One `SCENEGEN {json}` event
line per scene on stdout. The plan (.scenegen/plan.json) fixes seed, resolution and
samples, so a batch can never render with settings other than the fingerprint's.
"""

import threading
import time
from functools import partial
from pathlib import Path

from ..core import failures, layout, plan, sampling
from ..launcher import protocol
from . import render
from .finisher import Finisher, FinishFailed
from .pipeline import finish_scene, render_views

_EMIT_LOCK = threading.Lock()
_PLAN_CACHE: dict = {}


def emit(name: str, **fields) -> None:
    """One event line for the launcher (or a log); whole lines from any thread."""
    with _EMIT_LOCK:
        print(protocol.event_line(name, **fields), flush=True)


def read_plan(output: Path, rebuild: bool = True) -> tuple[dict, dict]:
    """The plan's document and its scenes by id, once it proves itself (plan.read_document:
    a plan.PlanError otherwise), cached per file version: a worker renders scene after scene
    of a plan that may list 152,000 scenes. rebuild=False (a worker, whose launcher checked
    the plan) checks its fingerprint and ids but does not rebuild its scene list."""
    stat = layout.plan_file(output).stat()
    key = (str(output), stat.st_mtime_ns, stat.st_size)
    cached = _PLAN_CACHE.get(key)
    if cached is None or (rebuild and not cached[2]):
        plan_data, scenes = plan.read_document(layout.plan_file(output), rebuild)
        _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = plan_data, {s.scene_id: s for s in scenes}, rebuild
    return _PLAN_CACHE[key][:2]


def render_settings(settings: dict, device: str) -> render.RenderSettings:
    width, height = settings["resolution"]
    return render.RenderSettings(width, height, settings["samples"], device,
                                 tuple(settings["cycles"].items()),
                                 passes=layout.passes(settings))


def render_scenes(output: Path, scene_ids: list[str], device: str, finisher: Finisher,
                  record: bool, wait: bool = True) -> str | None:
    """Sample and render each incomplete scene, its post-processing handed to `finisher`
    while the next one renders. With wait=False it returns once the last scene has rendered,
    that scene still pending in `finisher` (the worker then asks for the next scene). With
    `record`, sampling failures and completions update .scenegen/failures.json (the launcher
    records them itself). Returns None, or the error that stopped it, already reported as a
    scene_error or disk_error event after the scene before it completed."""
    failed, finished, current, by_id = {}, set(), None, {}
    try:
        plan_data, by_id = read_plan(output, rebuild=False)
        for current in scene_ids:  # all of them, before any path is made from one
            plan.planned_id(current, by_id)
        current = None
        seed = plan_data["settings"]["seed"]
        settings = render_settings(plan_data["settings"], device)
        passes = layout.passes(plan_data["settings"])
        for current in scene_ids:
            linked = layout.linked_folders(output, current, passes)
            if linked:
                raise ValueError(f"{output} holds symbolic links, which scenegen never "
                                 f"follows: {', '.join(linked)}")
            if layout.is_complete(output, current):  # said, so a launcher never waits for it
                emit(protocol.SCENE_DONE, scene_id=current, already_complete=True)
                continue
            start = time.perf_counter()
            try:
                spec = sampling.sample_scene(by_id[current], seed)
            except sampling.SamplingFailed as exc:
                failed[current] = exc.reason
                emit(protocol.SCENE_FAILED, scene_id=current, reason=exc.reason)
                continue
            sampled = time.perf_counter() - start
            rendered = render_views(spec, output, settings)  # the previous one finishes
            finisher.submit(current, partial(finish_scene, rendered),
                            partial(_done, current, spec.retries, sampled, finished))
        if wait:
            finisher.wait()
    except Exception as exc:
        if isinstance(exc, FinishFailed):
            current, exc = exc.scene_id, exc.cause
        else:  # let the previous scene complete before reporting; no write after return
            try:
                finisher.wait()
            except FinishFailed:
                pass  # left incomplete (no metadata): the error below stops the batch
        report_error(current, exc)
        return f"{type(exc).__name__}: {exc}"
    finally:
        if record and (failed or finished):
            failures.update(output, failed, finished, order=list(by_id))
    return None


def report_error(scene_id: str | None, exc: BaseException) -> None:
    """The event that stops a batch: disk_error (the launcher stops the run) or scene_error."""
    name = protocol.DISK_ERROR if layout.is_disk_error(exc) else protocol.SCENE_ERROR
    emit(name, scene_id=scene_id, reason=f"{type(exc).__name__}: {exc}")


def _done(scene_id: str, retries: int, sampling_seconds: float, finished: set, timings: dict):
    """A scene is complete (its record written): report it (in the finishing thread)."""
    finished.add(scene_id)
    emit(protocol.SCENE_DONE, scene_id=scene_id, timings=dict(timings, sampling=sampling_seconds),
         retries=retries)
