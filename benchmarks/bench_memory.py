"""Memory over many scenes in one process: RSS growth of render_scene (target < 50 MB).

Every scene is built in the one reused render scene and emptied with an orphan purge after
it renders, as in a worker; this renders 100 scenes (default) at a tiny resolution and
prints the resident set size as it goes.

    .venv/bin/python benchmarks/bench_memory.py [--scenes 100] [--resolution 64x48]
        [--persistent-data]   (keep Cycles' session between renders, as GPU workers do)
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "addon"), str(ROOT / "tests")]

import bpy  # noqa: E402
from blender_specs import EIGHT, fifteen, make_scene  # noqa: E402
from scenegen_addon.blender import pipeline  # noqa: E402
from scenegen_addon.blender.render import RenderSettings  # noqa: E402
from scenegen_addon.core import presets  # noqa: E402

WARM_UP = 3  # scenes before the baseline: kernels, denoiser and caches load once


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--resolution", default="64x48")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--persistent-data", action="store_true")
    args = parser.parse_args()
    width, height = presets.parse_resolution(args.resolution)
    settings = RenderSettings(width, height, args.samples, "CPU",
                              persistent_data=args.persistent_data)
    layouts = (EIGHT, fifteen())
    bpy.ops.wm.read_homefile(use_empty=True)
    start, baseline = time.perf_counter(), None
    with tempfile.TemporaryDirectory(prefix="scenegen_bench_") as out:
        for n in range(args.scenes):
            spec = make_scene(f"train_{n:05d}", layouts[n % 2])
            pipeline.render_scene(spec, Path(out), settings)
            if n + 1 == WARM_UP:
                baseline = rss_mb()
            if (n + 1) % 10 == 0 or n + 1 == args.scenes:
                print(f"scene {n + 1:4d}  RSS {rss_mb():7.1f} MB", flush=True)
    growth = rss_mb() - (baseline if baseline is not None else rss_mb())
    verdict = "OK" if growth < 50 else "ABOVE TARGET"
    print(
        f"{args.scenes} scenes at {width}x{height}, {args.samples} sample(s), persistent data "
        f"{'on' if args.persistent_data else 'off'}: "
        f"RSS growth after {WARM_UP} warm-up scenes {growth:.1f} MB (target < 50 MB: {verdict}); "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
