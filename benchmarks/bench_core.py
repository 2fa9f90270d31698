"""Figures for the pure core: visibility gate time and sampling time per scene per split.

Run: .venv/bin/python benchmarks/bench_core.py [--scenes N]  (from the repository root)
"""

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "addon"))

from scenegen_addon.core import plan, presets, sampling, visibility  # noqa: E402


def fifteen_objects():
    """A real 15-object layout: the first test_comp scene with 15 objects."""
    for entry in plan.build_plan({"test_comp": 6}):
        if entry.n_objects == 15:
            return sampling.sample_scene(entry, presets.DEFAULT_SEED).objects
    raise RuntimeError("no 15-object scene in the first test_comp block")


def bench_gate(repeats: int) -> None:
    objects = fifteen_objects()
    visibility.gate(objects)  # warm the mesh caches
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        visibility.gate(objects)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(
        f"gate, 15 objects x 4 views at 480x320, median of {repeats} runs: "
        f"{1000 * statistics.median(wall):.1f} ms wall, {1000 * statistics.median(cpu):.1f} ms CPU "
        f"(target < 50 ms; wall time grows when other processes share the cores)"
    )


def bench_sampling(scenes: int) -> None:
    print(f"sampling, first {scenes} scenes of each split (global seed {presets.DEFAULT_SEED}):")
    for split in presets.SPLITS:
        times, retries, restarts = [], [], []
        for entry in plan.build_plan({split: scenes}):
            start = time.perf_counter()
            scene = sampling.sample_scene(entry, presets.DEFAULT_SEED)
            times.append(time.perf_counter() - start)
            retries.append(scene.retries)
            restarts.append(scene.restarts)
        print(
            f"  {split:9s} mean {1000 * statistics.mean(times):6.0f} ms/scene, "
            f"median {1000 * statistics.median(times):6.0f}, max {1000 * max(times):6.0f}; "
            f"mean retries {statistics.mean(retries):.2f}, mean restarts "
            f"{statistics.mean(restarts):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=21, help="scenes per split")
    parser.add_argument("--repeats", type=int, default=30, help="gate repeats")
    args = parser.parse_args()
    bench_gate(args.repeats)
    bench_sampling(args.scenes)


if __name__ == "__main__":
    main()
