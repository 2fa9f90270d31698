"""Persistent data on a CPU worker: wall time with `render.use_persistent_data` on against
off, and the pixels of both.

    .venv/bin/python benchmarks/bench_persistent_cpu.py [--scenes 8] [--quality draft]
        [--resolution WxH] [--samples N] [--json FILE]

Two long-lived render processes, one with persistent data on and one with it off, each
rendering as a CPU worker does (`pipeline.render_views`: the one reused render scene, 4
views, the quality's Cycles settings). They take turns, one scene at a time, so both see
the same load on a shared machine: scene i goes to "on" first when i is even, to "off"
first when it is odd. Each process renders a warm-up scene first (reported, not counted).

Per scene: the wall and CPU seconds of render_views (build, 4 renders, read-back) and a
SHA-256 of each view's PNG and mask. The figure is the ratio of the summed wall times,
on / off; beside it the same for the processes' CPU time, and the geometric mean of the
per-scene wall ratios with its standard error as a factor (on a shared machine the load
moves between scenes, so each pair, rendered minutes apart at most, compares best).
"identical" is true when every image and mask of every scene is the same bytes both ways.
By the project's rule, persistent data is worth adopting on the CPU when the ratio is below
0.95.
"""

import hashlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

from figures import report  # noqa: E402  (benchmarks/figures.py)
from scenegen_addon.core import plan, presets  # noqa: E402
from scenegen_addon.launcher import options  # noqa: E402

SEED = 42
ADOPT_BELOW = 0.95  # the 5% rule
MARK = "BENCH "  # the start of a child's answer line (Cycles prints its own lines too)


def parse_args(argv):
    p = options.Parser(prog="bench_persistent_cpu.py", description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=options.whole_number, default=8,
                   help="measured scenes per setting (default %(default)s; a warm-up more)")
    p.add_argument("--quality", choices=tuple(presets.QUALITIES), default="draft")
    p.add_argument("--resolution", metavar="WxH", help="override the quality's resolution")
    p.add_argument("--samples", type=options.whole_number, help="override the samples")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    args = p.parse_args(argv)
    options.check_ranges(args, {"scenes": (1, 1000), "samples": (1, presets.MAX_SAMPLES)})
    return args


def planned(count: int) -> list:
    """The first `count` train scenes of seed 42 (4-10 objects)."""
    return plan.build_plan({"train": count}, SEED)


# --- the child: one render process ---------------------------------------------------------

def child(persistent: bool, width: int, height: int, samples: int, quality: str,
          count: int) -> int:
    """Render the scene indices (of `count` planned scenes) read from stdin, one answer
    line each."""
    import bpy
    from scenegen_addon.blender import pipeline, render
    from scenegen_addon.core import layout, sampling

    cycles = presets.quality(quality).cycles
    settings = render.RenderSettings(width, height, samples, "CPU", cycles,
                                     persistent_data=persistent)
    entries = planned(count)
    bpy.ops.wm.read_homefile(use_empty=True)
    with tempfile.TemporaryDirectory(prefix="bench_persistent_") as folder:
        out = Path(folder)
        for line in sys.stdin:
            spec = sampling.sample_scene(entries[int(line)], SEED)
            wall, cpu = time.perf_counter(), time.process_time()
            rendered = pipeline.render_views(spec, out, settings)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            paths = layout.scene_paths(spec.scene_id)
            digests = [hashlib.sha256((out / p).read_bytes()).hexdigest()
                       for p in paths["images"]]
            digests += [hashlib.sha256(m.tobytes()).hexdigest() for m in rendered.masks]
            print(MARK + json.dumps({"scene_id": spec.scene_id, "wall": wall, "cpu": cpu,
                                     "digests": digests}), flush=True)
    return 0


# --- the parent ------------------------------------------------------------------------------

class Renderer:
    """A child process and its answers."""

    def __init__(self, persistent: bool, args, width: int, height: int, samples: int):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", "on" if persistent else "off", str(width),
             str(height), str(samples), args.quality, str(args.scenes + 1)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def render(self, index: int) -> dict:
        self.process.stdin.write(f"{index}\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        raise SystemExit(f"a render process ended (exit {self.process.wait()})")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def measure(args) -> dict:
    quality = presets.quality(args.quality)
    width, height = (presets.parse_resolution(args.resolution) if args.resolution
                     else (quality.width, quality.height))
    samples = args.samples or quality.samples
    renderers = {"on": Renderer(True, args, width, height, samples),
                 "off": Renderer(False, args, width, height, samples)}
    rows, start = [], time.perf_counter()
    try:
        for index in range(args.scenes + 1):  # scene 0 warms each process up
            order = ("on", "off") if index % 2 == 0 else ("off", "on")
            row = {name: renderers[name].render(index) for name in order}
            row["warm_up"] = index == 0
            rows.append(row)
            print(f"{row['on']['scene_id']}: on {row['on']['wall']:.1f} s, off "
                  f"{row['off']['wall']:.1f} s{' (warm-up)' if index == 0 else ''}",
                  file=sys.stderr, flush=True)
    finally:
        for renderer in renderers.values():
            renderer.close()
    counted = [row for row in rows if not row["warm_up"]]
    total = {name: {kind: sum(row[name][kind] for row in counted) for kind in ("wall", "cpu")}
             for name in ("on", "off")}
    logs = [math.log(row["on"]["wall"] / row["off"]["wall"]) for row in counted]
    ratio = total["on"]["wall"] / total["off"]["wall"]
    spread = (math.sqrt(sum((x - sum(logs) / len(logs)) ** 2 for x in logs) / (len(logs) - 1))
              if len(logs) > 1 else 0.0)
    return {
        "scenes": args.scenes, "resolution": f"{width}x{height}", "samples": samples,
        "quality": args.quality, "seconds": time.perf_counter() - start,
        "wall_on": total["on"]["wall"], "wall_off": total["off"]["wall"],
        "wall_ratio_on_off": ratio,
        "cpu_ratio_on_off": total["on"]["cpu"] / total["off"]["cpu"],
        "scene_ratio_geomean": math.exp(sum(logs) / len(logs)),
        "scene_ratio_standard_error_factor": math.exp(spread / math.sqrt(len(logs))),
        "scene_ratio_min": math.exp(min(logs)), "scene_ratio_max": math.exp(max(logs)),
        "identical": all(row["on"]["digests"] == row["off"]["digests"] for row in rows),
        "adopt": ratio < ADOPT_BELOW,
        "per_scene": [{"scene_id": row["on"]["scene_id"], "warm_up": row["warm_up"],
                       **{f"{kind}_{name}": row[name][kind] for kind in ("wall", "cpu")
                          for name in ("on", "off")}}
                      for row in rows],
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        state, width, height, samples, quality, count = argv[1:]
        return child(state == "on", int(width), int(height), int(samples), quality, int(count))
    try:
        args = parse_args(argv)
    except options.Refused as exc:
        return options.refusal("bench_persistent_cpu.py", exc)
    return report(measure(args), args.json)


if __name__ == "__main__":
    sys.exit(main())
