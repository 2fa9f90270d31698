"""The exports' question generation: seconds per scene on one process against --jobs
processes, in the same run, on a finished dataset, and a projection for `large`.

    .venv/bin/python benchmarks/bench_questions.py DIR [--jobs 2] [--repeat 2] [--json FILE]

Each way runs --repeat times over every scene of DIR (the best run counts: these machines
are shared); both must give the same questions. Prints JSON: seconds per scene on 1 and on
--jobs processes, the ratio, and what 152,000 scenes (`large`) would take at each.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

from figures import report  # noqa: E402  (benchmarks/figures.py)
from scenegen_addon.dataset import questions  # noqa: E402
from scenegen_addon.dataset.loader import open_dataset  # noqa: E402

LARGE = 152_000


def best(dataset, jobs: int, repeat: int):
    """The fastest of `repeat` runs (seconds) and its questions."""
    times, made = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        made = questions.generate(dataset, jobs=jobs)
        times.append(time.perf_counter() - start)
    return min(times), made


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    dataset = open_dataset(args.dataset)
    scenes = sum(len(split) for split in dataset.values())
    one, serial = best(dataset, 1, args.repeat)
    many, pooled = best(dataset, args.jobs, args.repeat)
    if pooled != serial:
        print("bench_questions.py: the questions differ with --jobs", file=sys.stderr)
        return 1
    return report({
        "scenes": scenes, "questions": len(serial.all()), "jobs": args.jobs,
        "seconds_per_scene_1_process": round(one / scenes, 4),
        f"seconds_per_scene_{args.jobs}_processes": round(many / scenes, 4),
        "speedup": round(one / many, 2),
        "large_hours_1_process": round(one / scenes * LARGE / 3600, 2),
        f"large_hours_{args.jobs}_processes": round(many / scenes * LARGE / 3600, 2),
    }, args.json)


if __name__ == "__main__":
    sys.exit(main())
