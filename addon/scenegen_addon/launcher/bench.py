"""Benchmark the pipeline's overhead: `python headless/bench.py [options]`.

Runs the real launcher (scripts/run.py build, one CPU worker) on a fixed workload, default
`--quality draft --samples 16 --scenes-per-split 4` (the `--size tiny` workload with
4 scenes per split; the launcher takes one of --size and --scenes-per-split), and watches it from
outside: the worker's progress lines in its log (each scene_done carries the scene's stage
timings), the worker's RSS from /proc, the launcher's own messages. Prints a table and the
same figures as JSON (the last line of stdout; also --json FILE).

Definitions (seconds of wall time unless said otherwise):
- render = time inside Cycles render calls (the scene's timings["render"]);
- non-render ratio of a scene = (its wall interval in the worker - render) / render, the
  interval running from the previous scene's completion (the worker's "ready" for the
  first) to its own; "worker start-up" (spawn to "ready") is reported apart;
- overhead ratio = wall time of the whole launcher run / total render;
- RSS floor of a scene = the lowest RSS of the worker seen (polled every POLL_SECONDS)
  between the previous scene's completion and its own: what the worker keeps, without the
  render's and the post-processing's transient buffers (a scene completes while the next
  one renders, so the RSS at the moment of completion swings by tens of MB);
- RSS growth per 100 scenes = least-squares slope of the RSS floors over scene number,
  within the worker that rendered the most scenes (a recycled worker starts afresh), after
  its first WARM_UP scenes, times 100: an extrapolation when that is fewer than 100 scenes
  (the JSON says from how many).
"""

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..core import camera, layout, plan
from . import blender_program, options, protocol

POLL_SECONDS = 0.02
WARM_UP = 3  # scenes before the RSS baseline: kernels, denoiser and caches load once
TARGET_NON_RENDER = 0.10
TARGET_RSS_GROWTH_MB = 50.0
STAGES = ("plan", "sampling", "build", "render", "readback", "constraints", "write", "checksums",
          "merge", "validation")


# option -> (smallest, largest or None) allowed: the build's, but --scenes-per-split 0 means
# "use --size"; the build checks the rest
NUMBER_RANGES = {**{name: options.NUMBER_RANGES[name] for name in ("samples", "seed")},
                 "scenes_per_split": (0, options.NUMBER_RANGES["scenes_per_split"][1])}


def parse_args(argv):
    """The options, refused (options.Refused) as the build refuses its own."""
    p = options.Parser(prog="bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--quality", default="draft", help="quality preset (default %(default)s)")
    p.add_argument("--samples", type=options.whole_number, default=16,
                   help="Cycles samples (default 16)")
    p.add_argument("--scenes-per-split", type=options.whole_number, default=4, metavar="N",
                   help="scenes in each of the 5 splits (default 4; 0 = use --size)")
    p.add_argument("--size", default="tiny", help="size preset when --scenes-per-split is 0")
    p.add_argument("--resolution", metavar="WxH", help="override the preset's resolution")
    p.add_argument("--seed", type=options.whole_number, default=42)
    p.add_argument("--blender", metavar="PATH", help="as the build's --blender")
    p.add_argument("--output", metavar="DIR", help="keep the dataset here (default: a "
                   "temporary folder, removed afterwards)")
    p.add_argument("--json", metavar="FILE", help="also write the JSON figures to FILE")
    args = p.parse_args(argv)
    options.check_ranges(args, NUMBER_RANGES)
    return args


def build_command(args, out: Path) -> list[str]:
    command = [*blender_program.program_command(None, "build"), "--output", str(out),
               "--n-gpus", "0", "--workers", "1", "--quality", args.quality,
               "--samples", str(args.samples), "--seed", str(args.seed), "--yes"]
    if args.scenes_per_split:
        command += ["--scenes-per-split", str(args.scenes_per_split)]
    else:
        command += ["--size", args.size]
    if args.resolution:
        command += ["--resolution", args.resolution]
    if args.blender:
        command += ["--blender", args.blender]
    return command


# --- watching the run -------------------------------------------------------------------

def proc_memory(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MB, None when it has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    except (KeyError, ValueError):
        return None


class Watch:
    """Follows the worker logs and the launcher's stderr, stamping what it sees."""

    def __init__(self, out: Path):
        self.logs = layout.logs_dir(out)
        self.offsets: dict[Path, int] = {}
        self.spawned: list[float] = []
        self.ready: list[float] = []
        self.pids: list[int] = []
        self.scenes: list[dict] = []  # scene_done events + "at", "rss_mb", "pid"
        self.failed: list[dict] = []
        self.merged: float | None = None
        self.validating: float | None = None
        self.peak_mb = 0.0
        self.floor_mb: float | None = None  # lowest RSS since the last scene completed
        self.end: float | None = None  # when the launcher exited

    def stderr_reader(self, stream) -> None:
        for line in stream:
            sys.stderr.write(line)
            if protocol.VALIDATING in line and self.validating is None:
                self.validating = time.perf_counter()

    def poll(self) -> None:
        now = time.perf_counter()
        for pid in self.pids[-1:]:
            memory = proc_memory(pid)
            if memory:
                self.peak_mb = max(self.peak_mb, memory[1])
                self.floor_mb = min(self.floor_mb or memory[0], memory[0])
        for log in sorted(self.logs.glob("worker_*.log")):
            with open(log, "rb") as f:
                f.seek(self.offsets.get(log, 0))
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits
            self.offsets[log] = self.offsets.get(log, 0) + len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                self.line(line, now)

    def line(self, line: str, now: float) -> None:
        mark = protocol.log_mark_says(line)
        if mark is not None and mark.startswith(protocol.WORKER_START + " "):
            self.spawned.append(now)
            return
        event = protocol.parse_event(line)
        if not event:
            return
        kind = event["event"]
        if kind == protocol.READY:
            self.ready.append(now)
            self.pids.append(event["pid"])
            self.floor_mb = None
        elif kind == protocol.SCENE_DONE:
            self.scenes.append(dict(event, at=now, rss_mb=self.floor_mb, pid=self.pids[-1]))
            self.floor_mb = None
        elif kind == protocol.SCENE_FAILED:
            self.failed.append(event)
        elif kind == protocol.MERGED:
            self.merged = now


# --- figures ----------------------------------------------------------------------------

def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over xs; None with fewer than 2 distinct xs."""
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mx) ** 2 for x in xs)


def non_render_ratios(first_start: float, done_at: list[float], render: list[float]):
    """Per scene (interval - render) / render, the intervals running between completions."""
    starts = [first_start] + done_at[:-1]
    return [(end - start - r) / r for start, end, r in zip(starts, done_at, render, strict=True)]


def figures(watch: Watch, wall: float, plan_seconds: float, images_per_scene: int) -> dict:
    scenes = watch.scenes
    if not scenes or not watch.ready:
        raise RuntimeError("the run completed no scene; see the launcher's messages above")
    timings = [s["timings"] for s in scenes]
    render = [t["render"] for t in timings]
    total_render = sum(render)
    ratios = non_render_ratios(watch.ready[0], [s["at"] for s in scenes], render)
    phase = scenes[-1]["at"] - watch.ready[0]
    stages = {"plan": plan_seconds}
    for name in STAGES[1:-2]:  # the worker's stages, from each scene's timings
        stages[name] = sum(t.get(name, 0.0) for t in timings)
    stages["merge"] = (watch.merged - scenes[-1]["at"]) if watch.merged else None
    stages["validation"] = watch.end - watch.validating if watch.validating else None
    rss = [(i + 1, s["rss_mb"]) for i, s in enumerate(scenes) if s["rss_mb"] is not None]
    pids = [s["pid"] for s in scenes]
    longest = max(set(pids), key=pids.count)
    kept = [(n, mb) for n, mb in rss if pids[n - 1] == longest][WARM_UP:]
    growth = slope([n for n, _ in kept], [m for _, m in kept])
    startups = [r - s for s, r in zip(watch.spawned, watch.ready, strict=False)]
    return {
        "scenes": len(scenes),
        "failed": len(watch.failed),
        "images_per_scene": images_per_scene,
        "wall_seconds": wall,
        "render_seconds": total_render,
        "scenes_per_hour": len(scenes) / wall * 3600,
        "images_per_hour": len(scenes) * images_per_scene / wall * 3600,
        "render_phase_scenes_per_hour": len(scenes) / phase * 3600,
        "non_render_ratio": {
            "mean": sum(ratios) / len(ratios), "max": max(ratios),
            "render_phase": (phase - total_render) / total_render,
        },
        "worker_startup_seconds": startups,
        "overhead_ratio": wall / total_render,
        "stage_seconds": stages,
        "worker_peak_rss_mb": watch.peak_mb,
        "rss_growth_mb_per_100_scenes": None if growth is None else growth * 100,
        "rss_growth_from_scenes": len(kept),
        "rss_floor_mb_per_scene": [m for _, m in rss],
        "targets": {"non_render_ratio": TARGET_NON_RENDER,
                    "rss_growth_mb_per_100_scenes": TARGET_RSS_GROWTH_MB},
    }


def table(fig: dict) -> str:
    def num(value, fmt="{:.3f}"):
        return "n/a" if value is None else fmt.format(value)

    nr = fig["non_render_ratio"]
    growth = fig["rss_growth_mb_per_100_scenes"]
    rows = [
        ("scenes (failed)", f"{fig['scenes']} ({fig['failed']})"),
        ("wall s / render s", f"{fig['wall_seconds']:.1f} / {fig['render_seconds']:.1f}"),
        ("scenes per hour", f"{fig['scenes_per_hour']:.1f} (render phase "
         f"{fig['render_phase_scenes_per_hour']:.1f})"),
        ("images per hour", f"{fig['images_per_hour']:.1f} ({fig['images_per_scene']} per scene)"),
        ("non-render ratio", f"mean {nr['mean']:.4f}  max {nr['max']:.4f}  render phase "
         f"{nr['render_phase']:.4f}  (target <= {TARGET_NON_RENDER})"),
        ("worker start-up s", ", ".join(f"{s:.2f}" for s in fig["worker_startup_seconds"])),
        ("overhead ratio", f"{fig['overhead_ratio']:.4f} (wall / render)"),
    ]
    wall = fig["wall_seconds"]
    for name in STAGES:
        seconds = fig["stage_seconds"][name]
        share = "" if seconds is None else f"  ({seconds / wall:.2%} of wall)"
        rows.append((f"  stage {name} s", num(seconds) + share))
    rows += [
        ("worker peak RSS MB", f"{fig['worker_peak_rss_mb']:.1f}"),
        ("RSS growth MB/100 scenes", f"{num(growth, '{:.1f}')} (slope of the RSS floor over "
         f"{fig['rss_growth_from_scenes']} scenes after {WARM_UP} warm-up, extrapolated; "
         f"target <= {TARGET_RSS_GROWTH_MB:.0f})"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def plan_seconds(out: Path) -> float:
    """The plan stage: build the run's plan document again from its settings (pure core)."""
    settings = json.loads(layout.plan_file(out).read_text())["settings"]
    start = time.perf_counter()
    plan.document(settings)
    return time.perf_counter() - start


def run(args, out: Path) -> dict:
    watch = Watch(out)
    start = time.perf_counter()
    proc = subprocess.Popen(build_command(args, out), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = threading.Thread(target=watch.stderr_reader, args=(proc.stderr,), daemon=True)
    reader.start()
    threading.Thread(target=lambda: sys.stderr.writelines(proc.stdout), daemon=True).start()
    while proc.poll() is None:
        watch.poll()
        time.sleep(POLL_SECONDS)
    watch.end = time.perf_counter()
    watch.poll()
    reader.join(5)
    if proc.returncode != 0:
        raise RuntimeError(f"the launcher exited with code {proc.returncode}")
    fig = figures(watch, watch.end - start, plan_seconds(out), camera.N_VIEWS)
    fig["command"] = " ".join(build_command(args, Path("OUT"))[1:])
    return fig


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except options.Refused as exc:
        return options.refusal("bench.py", exc)
    if args.output:
        fig = run(args, Path(args.output).absolute())
    else:
        with tempfile.TemporaryDirectory(prefix="scenegen_bench_") as tmp:
            fig = run(args, Path(tmp) / "dataset")
    print(table(fig))
    text = json.dumps(fig, sort_keys=True)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0
