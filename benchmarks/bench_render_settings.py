"""Render settings study: cheaper Cycles settings at the same draft picture.

For each scene and view, a 256x192 render-border crop at full pixel scale (the centre of a
480x320 draft frame, use_border + use_crop_to_border) is rendered once as the reference
(--reference-samples, undenoised, no adaptive sampling) and once per variant: the draft
preset as it is now (blender.render.configure at 480x320, 64 samples, the preset's own
Cycles settings) with some Cycles settings changed.
Each variant renders a scene's views in one bpy scene, one render call per view, as the
pipeline does (so persistent data can carry the scene over from view to view).

Scores per variant, against the reference, on 8-bit sRGB pixels as the dataset stores them:
PSNR over the crop (mean over crops) and the maximum absolute error (0-255, any channel) on
object pixels (Object Index pass of the reference > 0; max over crops); time = wall and
process CPU seconds inside the render calls per scene. A variant is acceptable when its
mean PSNR is within --tolerance-db of the draft's, its max object error is not above the
draft's, and in no scene is it more than SCENE_ERROR_SLACK above the draft's in that scene
(a single maximum over the study can hide a setting that is worse in most scenes).

Full study (a GPU machine): the defaults, 8 scenes (two with 15 objects), 4 views, 2048
reference samples. A reduced CPU run: e.g. --scenes 3 --views 2 --reference-samples 512.
Names joined with "+" combine variants (e.g. --variants draft,light_tree_off+persistent).

    .venv/bin/python benchmarks/bench_render_settings.py [--scenes 8] [--views 4]
        [--reference-samples 2048] [--variants a,b,...] [--json FILE]
"""

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from scenegen_addon.blender import passes, render  # noqa: E402
from scenegen_addon.blender import scene as scene_mod  # noqa: E402
from scenegen_addon.core import plan, presets, sampling  # noqa: E402

SEED = 42
CROP = (256, 192)
SCENE_ERROR_SLACK = 2  # of 255: the draft's own maxima move this much between runs
# Each variant: (data path on the bpy scene, attribute) -> value, over the draft preset.
VARIANTS = {
    "draft": {},
    "samples_32": {("cycles", "samples"): 32},
    "bounces_6": {("cycles", "max_bounces"): 6, ("cycles", "diffuse_bounces"): 2,
                  ("cycles", "glossy_bounces"): 2, ("cycles", "transmission_bounces"): 0,
                  ("cycles", "transparent_max_bounces"): 0},
    "caustics_off": {("cycles", "caustics_reflective"): False,
                     ("cycles", "caustics_refractive"): False},
    "adaptive_0.02": {("cycles", "adaptive_threshold"): 0.02},
    "adaptive_0.03": {("cycles", "adaptive_threshold"): 0.03},
    "adaptive_0.05": {("cycles", "adaptive_threshold"): 0.05},
    "min_samples_8": {("cycles", "adaptive_min_samples"): 8},
    "prefilter_fast": {("cycles", "denoising_prefilter"): "FAST"},
    "inputs_albedo": {("cycles", "denoising_input_passes"): "RGB_ALBEDO"},
    "light_tree_off": {("cycles", "use_light_tree"): False},
    "persistent": {("render", "use_persistent_data"): True},
}
DEFAULT_VARIANTS = ",".join(VARIANTS)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=8, help="scenes (default 8, two of them "
                   "with 15 objects; fewer takes the first: one 15-object scene comes first)")
    p.add_argument("--offset", type=int, default=0,
                   help="skip this many scenes of the list (a second run on other scenes)")
    p.add_argument("--views", type=int, default=4, choices=range(1, 5), help="views per scene")
    p.add_argument("--reference-samples", type=int, default=2048)
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="comma-separated variant names ('+' combines; default all)")
    p.add_argument("--tolerance-db", type=float, default=0.5)
    p.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    args = p.parse_args(argv)
    for name in args.variants.split(","):
        for part in name.split("+"):
            if part not in VARIANTS:
                p.error(f"--variants: unknown {part!r}: allowed are {', '.join(VARIANTS)}")
    return args


def study_scenes(count: int, offset: int = 0) -> list:
    """Sampled scenes of the default plan, list positions offset .. offset + count - 1: a
    15-object test_comp scene at positions 0 and 3, train scenes (4-10 objects) elsewhere."""
    rule = presets.split_rule("test_comp")
    comp = plan.build_plan({"test_comp": 6 * len(rule.levels)}, SEED)
    fifteen = [e for e in comp if e.n_objects == 15]
    train = iter(plan.build_plan({"train": offset + count}, SEED))
    entries = [fifteen.pop(0) if i in (0, 3) else next(train) for i in range(offset + count)]
    return [sampling.sample_scene(e, SEED) for e in entries[offset:]]


def combined(name: str) -> dict:
    settings = {}
    for part in name.split("+"):
        settings.update(VARIANTS[part])
    return settings


def apply(scene, settings: dict) -> dict:
    """Set the settings; returns the previous values (to restore)."""
    old = {}
    for (path, attr), value in settings.items():
        owner = getattr(scene, path)
        old[(path, attr)] = getattr(owner, attr)
        setattr(owner, attr, value)
    return old


def set_crop(scene) -> None:
    """A centred render border of CROP pixels, the output cropped to it (full pixel scale)."""
    r = scene.render
    width, height = r.resolution_x, r.resolution_y
    r.use_border = r.use_crop_to_border = True
    r.border_min_x = (width - CROP[0]) / 2 / width
    r.border_max_x = (width + CROP[0]) / 2 / width
    r.border_min_y = (height - CROP[1]) / 2 / height
    r.border_max_y = (height + CROP[1]) / 2 / height


def read_png(path: str) -> np.ndarray:
    """An 8-bit PNG as (H, W, 3) integers 0-255, row 0 = top."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = image.size
        pixels = np.empty(w * h * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return np.rint(pixels.reshape(h, w, -1)[::-1, :, :3] * 255).astype(np.int16)


def render_views(scene, views: int, folder: str, tag: str, index=None) -> tuple[list, float, float]:
    """Render the first `views` views; returns the images, wall and CPU seconds in the calls
    (and the masks in `index`'s EXRs when given)."""
    images, wall, cpu = [], 0.0, 0.0
    for k, cam in enumerate(scene_mod.view_cameras(scene)[:views]):
        scene.camera = cam
        path = f"{folder}/{tag}_view_{k}.png"
        scene.render.filepath = path
        if index is not None:
            index.target(f"{tag}_view_{k}_")
        t0, c0 = time.perf_counter(), time.process_time()
        result = bpy.ops.render.render(write_still=True, scene=scene.name)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if result != {"FINISHED"}:
            raise RuntimeError(f"render {tag} view {k} failed: {result}")
        images.append(read_png(path))
    return images, wall, cpu


def scores(image: np.ndarray, reference: np.ndarray, objects: np.ndarray) -> tuple[float, int]:
    """(PSNR in dB over the crop, max abs error on object pixels)."""
    diff = image.astype(np.float64) - reference
    mse = float(np.mean(diff**2))
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return psnr, int(np.abs(diff)[objects].max()) if objects.any() else 0


def study_scene(spec, args, variants: list[str], folder: str) -> dict:
    draft = presets.quality("draft")
    settings = render.RenderSettings(draft.width, draft.height, draft.samples, "CPU",
                                     draft.cycles)
    scene = scene_mod.build_scene(spec, settings)
    try:
        set_crop(scene)
        index = passes.IndexOutput(scene, folder)
        old = apply(scene, {("cycles", "samples"): args.reference_samples,
                            ("cycles", "use_adaptive_sampling"): False,
                            ("cycles", "use_denoising"): False})
        refs, ref_wall, _ = render_views(scene, args.views, folder, "ref", index)
        apply(scene, old)
        masks = [passes.read(index.target(f"ref_view_{k}_")["index"], passes.INDEX, *CROP)
                 for k in range(args.views)]
        scene.render.use_compositing = False  # variants need no index pass
        result = {"scene_id": spec.scene_id, "n_objects": len(spec.objects),
                  "reference_wall": ref_wall, "variants": {}}
        for name in variants:
            old = apply(scene, combined(name))
            try:
                images, wall, cpu = render_views(scene, args.views, folder, name)
            finally:
                apply(scene, old)
            crops = [scores(im, ref, m > 0) for im, ref, m in zip(images, refs, masks, strict=True)]
            result["variants"][name] = {"wall": wall, "cpu": cpu,
                                        "psnr": [p for p, _ in crops],
                                        "max_object_error": [e for _, e in crops]}
            print(f"  {spec.scene_id} {name:28s} {wall:7.2f} s wall {cpu:7.2f} s cpu  PSNR "
                  + " ".join(f"{p:.2f}" for p, _ in crops)
                  + "  max err " + " ".join(str(e) for _, e in crops), flush=True)
    finally:
        scene_mod.remove_scene(scene)
    return result


def summary(results: list[dict], variants: list[str], tolerance: float) -> dict:
    table = {}
    for name in variants:
        rows = [r["variants"][name] for r in results]
        table[name] = {
            "wall_per_scene": sum(r["wall"] for r in rows) / len(rows),
            "cpu_per_scene": sum(r["cpu"] for r in rows) / len(rows),
            "mean_psnr": float(np.mean([p for r in rows for p in r["psnr"]])),
            "min_psnr": float(min(p for r in rows for p in r["psnr"])),
            "max_object_error": max(e for r in rows for e in r["max_object_error"]),
        }
    base = table.get("draft")
    for name, row in table.items():
        if base:
            row["worst_scene_error_rise"] = max(
                max(r["variants"][name]["max_object_error"])
                - max(r["variants"]["draft"]["max_object_error"]) for r in results)
            row["cpu_ratio"] = row["cpu_per_scene"] / base["cpu_per_scene"]
            row["wall_ratio"] = row["wall_per_scene"] / base["wall_per_scene"]
            row["delta_psnr"] = row["mean_psnr"] - base["mean_psnr"]
            row["acceptable"] = (row["delta_psnr"] >= -tolerance
                                 and row["max_object_error"] <= base["max_object_error"]
                                 and row["worst_scene_error_rise"] <= SCENE_ERROR_SLACK)
    return table


def print_table(table: dict) -> None:
    print(f"{'variant':28s} {'cpu s/scene':>11s} {'ratio':>6s} {'wall s':>7s} {'PSNR':>6s} "
          f"{'dPSNR':>6s} {'minPSNR':>7s} {'maxErr':>6s} {'rise':>4s}  ok")
    for name, r in table.items():
        print(f"{name:28s} {r['cpu_per_scene']:11.2f} {r.get('cpu_ratio', 1):6.3f} "
              f"{r['wall_per_scene']:7.2f} {r['mean_psnr']:6.2f} {r.get('delta_psnr', 0):+6.2f} "
              f"{r['min_psnr']:7.2f} {r['max_object_error']:6d} "
              f"{r.get('worst_scene_error_rise', 0):4d}  {r.get('acceptable', '')}")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    variants = args.variants.split(",")
    if "draft" not in variants:
        variants.insert(0, "draft")
    bpy.ops.wm.read_homefile(use_empty=True)
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="scenegen_study_") as folder:
        for spec in study_scenes(args.scenes, args.offset):
            results.append(study_scene(spec, args, variants, folder))
    table = summary(results, variants, args.tolerance_db)
    print_table(table)
    doc = {"args": vars(args), "seconds": time.perf_counter() - start, "crop": CROP,
           "blender_version": bpy.app.version_string, "summary": table, "scenes": results}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"done in {doc['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
