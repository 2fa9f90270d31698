"""bpy.ops.scenegen.batch: render scenes of a plan into an output folder.

A blocking execute (there is no event loop in `blender -b`): for each scene id, skip it if
complete, sample it (core.sampling), render it (blender.pipeline.render_views), and print
one progress line `SCENEGEN {json}` on stdout when its post-processing (finish_scene, in
a background thread, finisher.Finisher) has written the scene: the next scene renders while
the previous one finishes, and execute returns when every scene is written. The plan
(.scenegen/plan.json) fixes seed, resolution and samples, so a batch can never render with
settings other than the fingerprint's. Used directly from `blender -b` scripts;
headless/worker.py calls its render_scenes one scene at a time, leaving each scene's
post-processing running while it asks the launcher for the next.
"""

import json
import threading
import time
from functools import partial
from pathlib import Path

import bpy

from ..blender import render
from ..blender.pipeline import finish_scene, render_views
from ..core import dataset, launch, records, sampling
from .finisher import Finisher, FinishFailed

_EMIT_LOCK = threading.Lock()


def emit(event: dict) -> None:
    """One progress line for the launcher (or a log); whole lines from any thread."""
    with _EMIT_LOCK:
        print(launch.event_line(event), flush=True)


def record_failures(output_dir: Path, failed: dict[str, str], finished: set[str]) -> None:
    """Update .scenegen/failures.json: drop scenes finished now, add the new failures."""
    path = launch.internal(output_dir) / "failures.json"
    entries = json.loads(path.read_text()) if path.exists() else []
    kept = [e for e in entries if e["scene_id"] not in finished and e["scene_id"] not in failed]
    kept += [{"scene_id": sid, "reason": reason} for sid, reason in failed.items()]
    records.write_json_atomic(path, kept, compact=False)


_PLAN_CACHE: dict = {}


def read_plan(output: Path) -> tuple[dict, dict]:
    """The plan's document and its scenes by id, cached per file version: a worker renders
    scene after scene of a plan that may list 152,000 scenes."""
    stat = (launch.internal(output) / "plan.json").stat()
    key = (str(output), stat.st_mtime_ns, stat.st_size)
    if key not in _PLAN_CACHE:
        plan_data, scenes = dataset.read_plan(output)
        _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = plan_data, {s.scene_id: s for s in scenes}
    return _PLAN_CACHE[key]


def _render_settings(settings: dict, device: str):
    width, height = settings["resolution"]
    return render.RenderSettings(width, height, settings["samples"], device,
                                 tuple(settings["cycles"].items()))


class SCENEGEN_OT_batch(bpy.types.Operator):
    """Render scenes of a scenegen plan (.scenegen/plan.json) into its output folder"""

    bl_idname = "scenegen.batch"
    bl_label = "Render Batch"

    output: bpy.props.StringProperty(
        name="Output", subtype="DIR_PATH",
        description="Dataset folder holding .scenegen/plan.json (python headless/build.py "
        "--plan-only writes it)",
    )
    scene_ids: bpy.props.StringProperty(
        name="Scene ids",
        description="Comma-separated scene ids of the plan; empty renders every incomplete scene",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=[(d, d, "") for d in render.DEVICES],
        default="AUTO",
        description="Cycles device; GPU means the best GPU type present, failing if none",
    )
    record_failures: bpy.props.BoolProperty(
        name="Record failures", default=True,
        description="Write sampling failures to .scenegen/failures.json (the launcher does it "
        "itself and turns this off)",
    )

    def execute(self, context):
        output = Path(bpy.path.abspath(self.output)) if self.output else None
        if output is None or not (launch.internal(output) / "plan.json").exists():
            self.report({"ERROR"}, f"output {self.output!r} holds no .scenegen/plan.json")
            return {"CANCELLED"}
        _, by_id = read_plan(output)
        wanted = [s.strip() for s in self.scene_ids.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in by_id]
        if unknown:
            self.report({"ERROR"}, f"scene_ids {unknown[:5]} are not in the plan")
            return {"CANCELLED"}
        error = render_scenes(output, wanted or list(by_id), self.device, Finisher(),
                              self.record_failures)
        if error:
            self.report({"ERROR"}, f"scenegen batch: {error}")
            return {"CANCELLED"}
        return {"FINISHED"}


def render_scenes(output: Path, scene_ids: list[str], device: str, finisher: Finisher,
                  record: bool, wait: bool = True) -> str | None:
    """Sample and render each incomplete scene of the plan, its post-processing handed to
    `finisher` while the next one renders. With wait=False it returns once the last scene
    has rendered, that scene still pending in `finisher` (the worker, which then asks for
    the next scene). Returns None, or the error that stopped it, already reported as a
    scene_error or disk_error event after the scene before it completed."""
    plan_data, by_id = read_plan(output)
    seed = plan_data["settings"]["seed"]
    failed, finished, current = {}, set(), None
    try:
        settings = _render_settings(plan_data["settings"], device)
        for current in scene_ids:
            if launch.is_complete(output, current):
                continue
            start = time.perf_counter()
            try:
                spec = sampling.sample_scene(by_id[current], seed)
            except sampling.SamplingFailed as exc:
                failed[current] = exc.reason
                emit({"event": "scene_failed", "scene_id": current, "reason": exc.reason})
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
            record_failures(output, failed, finished)
    return None


def report_error(scene_id: str | None, exc: BaseException) -> None:
    """The event that stops a batch: disk_error (the launcher stops the run) or scene_error."""
    event = "disk_error" if launch.is_disk_error(exc) else "scene_error"
    emit({"event": event, "scene_id": scene_id, "reason": f"{type(exc).__name__}: {exc}"})


def _done(scene_id: str, retries: int, sampling_seconds: float, finished: set, timings: dict):
    """A scene is complete (its record written): report it (in the finishing thread)."""
    finished.add(scene_id)
    emit({"event": "scene_done", "scene_id": scene_id,
          "timings": dict(timings, sampling=sampling_seconds), "retries": retries})


CLASSES = (SCENEGEN_OT_batch,)
