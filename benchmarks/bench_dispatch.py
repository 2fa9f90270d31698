"""What handing out one scene costs: the local pool against the Ray transport (`--ray`).

    .venv/bin/python benchmarks/bench_dispatch.py [--scenes 1000] [--workers 1] [--json FILE]

Both pools run the same worker, an echo worker: a process that speaks the worker protocol
(launcher/protocol.py) but renders nothing, answering each render command at once with
"idle" and "scene_done". So the time per scene is the launcher's and the transport's
alone: command out, events back, bookkeeping. In one run, each pool renders N scenes three
times; the cost per scene is the time after the first scene done over the N - 1 others
(the best run); the start-up (the Ray instance, the actors, the workers) is apart. The Ray
side is a local Ray instance on this
machine, so no network time is in it; on a cluster add the network's round trip.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

from figures import report  # noqa: E402  (benchmarks/figures.py)
from scenegen_addon.launcher import pool, protocol  # noqa: E402


def echo_worker() -> int:
    """The echo worker: ready, then for each render command idle and scene_done."""
    print(protocol.event_line(protocol.READY, worker=0, pid=os.getpid()), flush=True)
    for line in sys.stdin:
        command = protocol.parse_command(line)
        print(protocol.event_line(protocol.IDLE), flush=True)
        print(protocol.event_line(protocol.SCENE_DONE, scene_id=command["scene_id"]),
              flush=True)
    return 0


def config(out: Path, workers: int) -> pool.Config:
    return pool.Config(output=out, command=[sys.executable, __file__, "echo-worker"],
                       device="CPU", devices=[None] * workers, scene_timeout=600.0,
                       first_scene_timeout=600.0, recycle_after=10**9, scene_bytes=1)


def scene_ids(n: int) -> list[str]:
    return [f"train_{i:05d}" for i in range(n)]


def run_pool(make, out: Path, n: int, workers: int) -> tuple[float, float]:
    """(seconds to the first scene done, seconds for all n) of one pool."""
    workers_pool = make(config(out, workers), scene_ids(n), n, 0, 0.0, lambda message: None)
    start = time.perf_counter()
    first = None
    try:
        for slot in range(workers):
            workers_pool.spawn(slot)
        while workers_pool.todo or any(w.scenes for w in workers_pool.live()):
            workers_pool.step(timeout=0.05)
            workers_pool.dispatch()
            if first is None and workers_pool.complete:
                first = time.perf_counter() - start
        total = time.perf_counter() - start
    finally:
        workers_pool.stop(grace=5)
    if workers_pool.complete != n:
        raise SystemExit(f"{workers_pool.complete} of {n} scenes done")
    return first, total


def measure(make, n: int, workers: int, repeat: int = 3) -> dict:
    """The best of `repeat` runs of n scenes: the time to the first scene done (the start),
    and the time per scene after it."""
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench_dispatch_") as folder:
            runs.append(run_pool(make, Path(folder), n, workers))
    first, total = min(runs, key=lambda r: r[1] - r[0])
    return {"first_scene_seconds": first, f"seconds_{n}": total,
            "ms_per_scene": 1000 * (total - first) / (n - 1)}


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["echo-worker"]:
        return echo_worker()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import ray
    from scenegen_addon.launcher import cluster

    figures = {"scenes": args.scenes, "workers": args.workers, "cpus": os.cpu_count(),
               "load_average_before": os.getloadavg()[0]}
    figures["local_pool"] = measure(pool.Pool, args.scenes, args.workers)
    start = time.perf_counter()
    cluster.connect(cluster.LOCAL)
    figures["ray_init_seconds"] = time.perf_counter() - start
    options = cluster.Options(cluster.LOCAL, None, None, 0, 1,
                              command=(sys.executable, __file__, "echo-worker"))

    def ray_pool(*args):
        return cluster.RayPool(*args, options=options)

    try:
        figures["ray"] = measure(ray_pool, args.scenes, args.workers)
    finally:
        ray.shutdown()
    figures["ray_overhead_ms_per_scene"] = (figures["ray"]["ms_per_scene"]
                                            - figures["local_pool"]["ms_per_scene"])
    figures["load_average_after"] = os.getloadavg()[0]
    return report(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
