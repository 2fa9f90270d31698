"""Scaling from 1 to 2 CPU workers on this machine: real builds, under `--ray` (CPU actors
of a local Ray instance) and with the local pool, in one run.

    .venv/bin/python benchmarks/bench_cluster_scaling.py [--scenes-per-split 4]
           [--resolution 160x120] [--samples 4] [--json FILE]

Each build renders the same plan into a fresh folder; the figure is the render phase's wall
time (.scenegen/run.json: from the pool's start, actors and workers starting included, to
the last scene; the merge and the validation are not in it). The efficiency from 1 to 2
workers is T1 / (2 x T2): 1.0 is a perfect doubling. A Cycles worker on the CPU already
uses every core, so on one machine a second worker only overlaps what a worker does
outside Cycles (start-up, scene building, labels, writing).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from figures import report  # benchmarks/figures.py

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "headless" / "build.py"


def build_seconds(folder: Path, workers: int, ray: bool, args) -> dict:
    out = folder / f"{'ray' if ray else 'local'}_{workers}"
    command = [sys.executable, str(BUILD), "--output", str(out), "--n-gpus", "0",
               "--workers", str(workers), "--scenes-per-split", str(args.scenes_per_split),
               "--quality", "draft", "--resolution", args.resolution, "--samples",
               str(args.samples), "--seed", "47", "--yes", *(["--ray"] if ray else [])]
    run = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {run.returncode}:\n{run.stderr[-2000:]}")
    record = json.loads((out / ".scenegen" / "run.json").read_text())
    return {"render_seconds": record["wall_seconds"], "scenes": 5 * args.scenes_per_split}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes-per-split", type=int, default=4)
    parser.add_argument("--resolution", default="160x120")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()[0],
               "plan": f"{5 * args.scenes_per_split} scenes at {args.resolution}, "
                       f"{args.samples} samples"}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as folder:
        for ray in (True, False):
            name = "ray" if ray else "local_pool"
            one = build_seconds(Path(folder), 1, ray, args)
            two = build_seconds(Path(folder), 2, ray, args)
            figures[name] = {"workers_1": one, "workers_2": two, "efficiency": (
                one["render_seconds"] / (2 * two["render_seconds"]))}
    figures["load_average_after"] = os.getloadavg()[0]
    return report(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
