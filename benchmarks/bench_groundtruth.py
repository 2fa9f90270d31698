"""Figures for the ground truth: constraint extraction time, metadata size, and the peak
Python memory of writing a record (piecewise, against the whole record built first).

Layouts are sampled (first scenes of the default plan with 10 and 15 objects); masks are
painted from the silhouettes in the gate's depth order, as a render would give them.
Run: .venv/bin/python benchmarks/bench_groundtruth.py [--repeats N]  (from the repository root)
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time
import tracemalloc
from functools import partial

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "addon"), str(ROOT)]

from scenegen_addon.core import (  # noqa: E402
    camera,
    constraints,
    layout,
    plan,
    presets,
    records,
    sampling,
    visibility,
)

from tests.gt_scenes import paint_mask  # noqa: E402

RENDER = {
    "engine": "CYCLES",
    "samples": 64,
    "device": "CPU",
    "device_name": "bench",
    "blender_version": "5.0.1",
    "seconds": 0.0,
}


def sampled_scene(split: str, n_objects: int, scenes: int = 12):
    for entry in plan.build_plan({split: scenes}):
        if entry.n_objects == n_objects:
            return sampling.sample_scene(entry, presets.DEFAULT_SEED)
    raise RuntimeError(f"no {n_objects}-object scene in the first {scenes} of {split}")


def extract(spec, views, masks) -> None:
    """What the pipeline runs after a render: world + per-view constraints, silhouettes incl."""
    constraints.world_constraints(spec)
    for view, mask in zip(views, masks, strict=True):
        sils = visibility.silhouettes(spec.objects, view)
        objects = constraints.view_objects(spec, view, mask, sils)
        constraints.view_constraints(spec, view, mask, objects, sils)


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm caches (meshes, incidence)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def peak_mb(fn) -> float:
    """Peak memory traced by Python (objects and numpy arrays) while fn runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def write_whole(out, spec, views, masks) -> None:
    """The baseline: the whole record as Python objects, then one JSON text."""
    record = records.scene_record(spec, views, masks, RENDER)
    layout.write_json(pathlib.Path(out) / "whole.json", record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    views = camera.rig(*presets.CANONICAL_RESOLUTION)
    scenes = {10: sampled_scene("train", 10, 14), 15: sampled_scene("test_comp", 15, 12)}
    for n, spec in scenes.items():
        masks = [paint_mask(spec, view) for view in views]
        wall, cpu = timed(lambda spec=spec, masks=masks: extract(spec, views, masks), args.repeats)
        print(
            f"constraint extraction, {n} objects ({spec.scene_id}), world + 4 views at 480x320: "
            f"{1000 * wall:.0f} ms wall, {1000 * cpu:.0f} ms CPU, median of {args.repeats}"
            + (" (target < 500 ms)" if n == 15 else "")
        )
        record = records.scene_record(spec, views, masks, RENDER)
        with tempfile.TemporaryDirectory() as tmp:
            write = partial(records.write_scene_record, tmp, spec, views, masks, RENDER)
            wall, cpu = timed(write, args.repeats)
            size = write().stat().st_size
            piecewise = peak_mb(write)
            whole = peak_mb(partial(write_whole, tmp, spec, views, masks))
        counts = {k: len(v) for k, v in record["constraints"]["world"].items()}
        counts.update(
            {
                f"view {k}": sum(len(v[k]) for v in record["constraints"]["views"])
                for k in ("qrr", "trr", "axial", "occlusion", "size")
            }
        )
        print(
            f"metadata, {n} objects: {size / 1e6:.2f} MB compact JSON"
            + (" (target < 6 MB)" if n == 15 else "")
            + f"; build and write {1000 * wall:.0f} ms; records {json.dumps(counts)}"
        )
        print(
            f"peak Python memory writing it, {n} objects: {piecewise:.1f} MB piecewise, "
            f"{whole:.1f} MB with the whole record built first ({piecewise / whole:.2f}x)"
        )


if __name__ == "__main__":
    main()
