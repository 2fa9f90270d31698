"""What --passes depth costs: seconds per scene with the pass against without it (the
baseline, rendered in the same process, alternating), the depth maps' bytes per pixel, and
the validator's depth check per view.

The same seeded scenes both ways, on the CPU at the given frame and samples (default: the
draft frame at 8 samples, so that render time does not hide the pass's own cost).

    .venv/bin/python benchmarks/bench_depth.py [--scenes 6] [--resolution 480x320] [--samples 8]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

import bpy  # noqa: E402
from scenegen_addon.blender import pipeline  # noqa: E402
from scenegen_addon.blender.render import RenderSettings  # noqa: E402
from scenegen_addon.core import camera, depth, layout, plan, png, presets, sampling  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--resolution", default="480x320")
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    width, height = presets.parse_resolution(args.resolution)
    draft = presets.quality("draft")
    scenes = plan.build_plan({"test_comp": args.scenes})
    seconds = {False: [], True: []}
    map_bytes, checks = 0, []
    bpy.ops.wm.read_homefile(use_empty=True)
    with tempfile.TemporaryDirectory() as tmp:
        for planned in scenes:
            spec = sampling.sample_scene(planned, presets.DEFAULT_SEED)
            for on in (False, True):
                settings = RenderSettings(width, height, args.samples, "CPU",
                                          draft.cycles, passes=("depth",) if on else ())
                out = Path(tmp) / f"depth_{on}"
                start = time.perf_counter()
                pipeline.render_scene(spec, out, settings)
                seconds[on].append(time.perf_counter() - start)
            paths = layout.scene_paths(spec.scene_id, ("depth",))
            for k, rel in enumerate(paths["depth"]):
                map_bytes += (out / rel).stat().st_size
                mm, mask = png.read_png16(out / rel), png.read_png16(out / paths["masks"][k])
                start = time.perf_counter()
                faults = depth.view_faults(mm, mask, spec.objects, camera.View(k, width, height))
                checks.append(time.perf_counter() - start)
                assert faults == [], faults
    off, on = statistics.median(seconds[False]), statistics.median(seconds[True])
    pixels = len(scenes) * camera.N_VIEWS * width * height
    print(f"{len(scenes)} test_comp scenes at {width}x{height}, {args.samples} samples, CPU, "
          "median seconds per scene:")
    print(f"  without depth (baseline)  {off:7.3f} s")
    print(f"  with depth                {on:7.3f} s  ({on / off:.3f}x)")
    print(f"  depth maps                {map_bytes / pixels:7.3f} bytes per pixel")
    print(f"  validator's depth check   {statistics.median(checks) * 1e3:7.1f} ms per view "
          f"({statistics.median(checks) * camera.N_VIEWS / off:.3f}x a scene's render)")


if __name__ == "__main__":
    main()
