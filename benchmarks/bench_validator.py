"""The validator on real renders: false alarms, and how often the image-content check
catches a damaged view.

Two steps, so the slow one runs once:

    render  OUT --resolution 480x320 --samples 8 --counts train=35,test_comp=25 [--seed 42]
            [--grey]
            renders a real output folder with Cycles (the pipeline of a build, in this
            process, on the CPU) and merges it; it resumes where it stopped. --grey makes
            every object grey first (the hardest case: grey on the grey ground); such a
            folder is not its plan's dataset, so only its images are checked.
    measure OUT [OUT ...] [--json FILE]
            validates each folder in full (a valid folder must give no problem at all: any
            problem is a false alarm), checks every valid view's image against its mask,
            and, from the scenes' own images and masks in memory, counts how many damages
            the content check catches: every swap of two views of a scene (6 per scene);
            each view replaced by the same view of the next scene, by an all-black image,
            by its channels in BGR order, moved by one pixel, moved by (3, -3) pixels.
            It prints the margins the thresholds of core/content.py must separate: the
            smallest edge contrast of a valid view and the largest of a wrong pairing, the
            best fit of a valid view's outlines off their place, the saturations of grey
            and coloured objects, the ground's. Exit 1 on any false alarm.

    .venv/bin/python benchmarks/bench_validator.py render /tmp/v480 --resolution 480x320 \
        --samples 8 --counts train=35,test_comp=25
    .venv/bin/python benchmarks/bench_validator.py measure /tmp/v480 /tmp/v1024
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

import numpy as np  # noqa: E402
from scenegen_addon.core import content, layout, merge, plan, png, presets, validation  # noqa: E402
from scenegen_addon.core.spec import COLORS  # noqa: E402


def _counts(text: str) -> dict:
    pairs = (item.split("=") for item in text.split(","))
    return {split: int(n) for split, n in pairs}


GREY_MARK = ".scenegen/bench_all_grey"  # the folder's objects were all made grey


def render(out: Path, resolution: tuple[int, int], samples: int, counts: dict, seed: int,
           grey: bool = False):
    """A real output folder: plan, every scene rendered by the build's pipeline, merged.
    With `grey`, every object is made grey before it renders (their materials kept): the
    hardest case for the content check, grey on the grey ground. Such a folder is not its
    plan's dataset, so `measure` checks only its images against its masks."""
    import bpy
    from scenegen_addon.blender import batch, pipeline
    from scenegen_addon.core import sampling

    settings = plan.plan_settings(
        seed=seed, size=None, counts=counts, quality="draft", resolution=resolution,
        samples=samples, blender_version=bpy.app.version_string,
        numpy_version=np.__version__,
    )
    document = plan.document(settings)
    if not layout.plan_file(out).exists():
        layout.write_json(layout.plan_file(out), document)
    layout.write_json(layout.run_file(out), {"n_gpus": 0, "workers": 1, "wall_seconds": None})
    _, scenes = plan.read_document(layout.plan_file(out))
    render_settings = batch.render_settings(settings, "CPU")
    for scene in scenes:
        if layout.is_complete(out, scene.scene_id):
            continue
        start = time.perf_counter()
        spec = sampling.sample_scene(scene, seed)
        if grey:
            layout.write_text(out / GREY_MARK, ["all objects grey\n"])
            for obj in spec.objects:
                obj.color, obj.rgb = "gray", list(COLORS["gray"])
        pipeline.render_scene(spec, out, render_settings)
        print(f"{scene.scene_id}: {spec.n_objects} objects, "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    merge.merge(out)


def _scene_arrays(out: Path, scene_id: str):
    paths = layout.scene_paths(scene_id)
    record = layout.read_json(out / paths["metadata"])
    images = [png.read_png(out / rel) for rel in paths["images"]]
    masks = [png.read_png16(out / rel) for rel in paths["masks"]]
    return paths, record, images, masks


def _damages(images: list, other: list):
    """(kind, damaged image list) for every damage the content check must catch."""
    views = range(len(images))
    for a in views:
        for b in views:
            if a < b:
                swapped = list(images)
                swapped[a], swapped[b] = images[b], images[a]
                yield "swap of two views", swapped
    for k in views:
        yield "another scene's view", [other[k] if j == k else im for j, im in enumerate(images)]
        yield "all black", [np.zeros_like(im) if j == k else im for j, im in enumerate(images)]
        yield "channels as BGR", [im[..., ::-1] if j == k else im for j, im in enumerate(images)]
        for name, move in (("shifted by 1 px", (0, 1)), ("shifted by (3, -3) px", (-3, 3))):
            yield name, [np.roll(im, move, axis=(0, 1)) if j == k else im
                         for j, im in enumerate(images)]


def measure(out: Path) -> dict:
    """Full validation (false alarms) and the content check's detection on one folder."""
    start = time.perf_counter()
    grey = (out / GREY_MARK).exists()
    report = validation.Report() if grey else validation.validate(out, jobs=1)
    validate_seconds = time.perf_counter() - start
    settings = layout.read_json(layout.plan_file(out))["settings"]
    _, scenes = plan.read_document(layout.plan_file(out))
    ids = [s.scene_id for s in scenes if layout.is_complete(out, s.scene_id)]
    figures = {"folder": str(out), "all_grey": grey, "resolution": settings["resolution"],
               "samples": settings["samples"], "scenes": len(ids),
               "objects": 0, "grey_objects": 0, "metal_objects": 0,
               "false_alarms": [str(p) for p in report.corrupt], "notes": report.notes,
               "content_alarms": [], "near_misses": [0, 0],
               "validate_seconds": round(validate_seconds, 1), "content_seconds": 0.0,
               "own_edge_min": math.inf, "wrong_edge_max": 0.0, "align_max": 0.0,
               "colour_misfits": 0, "chroma_grey_max": 0.0, "chroma_colour_min": math.inf,
               "objects_judged": 0, "ground_chroma_max": 0.0, "damages": {}}
    loaded = [_scene_arrays(out, sid) for sid in ids]
    for i, (paths, record, images, masks) in enumerate(loaded):
        _tally_scene(figures, record, images, masks, loaded[(i + 1) % len(loaded)][2])
        figures["content_alarms"] += map(str, validation.check_content(images, masks, record,
                                                                       paths))
        for kind, damaged in _damages(images, loaded[(i + 1) % len(loaded)][2]):
            caught = bool(validation.check_content(damaged, masks, record, paths))
            tally = figures["damages"].setdefault(kind, [0, 0])
            tally[0] += caught
            tally[1] += 1
    return figures


def _tally_scene(figures: dict, record: dict, images: list, masks: list, other: list) -> None:
    """The margins: edge contrasts of valid and wrong pairings, colour and ground figures."""
    objects = record["objects"]
    figures["objects"] += len(objects)
    figures["grey_objects"] += sum(o["color"] == "gray" for o in objects)
    figures["metal_objects"] += sum(o["material"] == "metal" for o in objects)
    start = time.perf_counter()
    for k, (image, mask) in enumerate(zip(images, masks, strict=True)):
        own = content.edge_contrast(image, mask)
        figures["own_edge_min"] = min(figures["own_edge_min"], own)
        pairings = [(image, m) for j, m in enumerate(masks) if j != k] + [(other[k], mask)]
        for wrong_image, wrong_mask in pairings:
            _tally_wrong(figures, wrong_image, wrong_mask, objects)
        coloured = [i + 1 for i, obj in enumerate(objects) if obj["color"] != "gray"]
        figures["align_max"] = max(figures["align_max"],
                                   content.misalignment(image, mask, coloured)[1])
        _tally_chroma(figures, image, mask, objects)
        judged, fit, _, ground = content.colour_agreement(image, mask, objects)
        figures["objects_judged"] += judged
        figures["colour_misfits"] += judged - fit
        figures["ground_chroma_max"] = max(figures["ground_chroma_max"], ground or 0.0)
    figures["content_seconds"] += time.perf_counter() - start


def _tally_wrong(figures: dict, image, mask, objects) -> None:
    """A wrong pairing (another view's or scene's image on this mask): its edge contrast,
    and whether the colour test alone catches it when the contrast is within a factor of 2
    of the threshold (the redundancy behind the edge test)."""
    contrast = content.edge_contrast(image, mask) or 0.0
    figures["wrong_edge_max"] = max(figures["wrong_edge_max"], contrast)
    if contrast >= content.EDGE_MIN / 2:
        judged, fit, _, _ = content.colour_agreement(image, mask, objects)
        figures["near_misses"][0] += bool(judged and fit < content.COLOUR_MIN_SHARE * judged)
        figures["near_misses"][1] += 1


def _tally_chroma(figures: dict, image, mask, objects) -> None:
    """The saturation of grey objects' medians (must stay below CHROMA_GREY) and of the
    others' (must stay above), over objects with enough interior pixels."""
    labels = content.interior_labels(mask)
    for i, obj in enumerate(objects):
        where = labels == i + 1
        if np.count_nonzero(where) < content.MIN_INTERIOR:
            continue
        saturation = content.chroma(content.median_colour(image[1:-1, 1:-1][where]))[1]
        key = "chroma_grey_max" if obj["color"] == "gray" else "chroma_colour_min"
        pick = max if obj["color"] == "gray" else min
        figures[key] = pick(figures[key], saturation)


def _print(figures: dict) -> None:
    width, height = figures["resolution"]
    print(f"{figures['folder']}: {width}x{height}, {figures['samples']} samples, "
          f"{figures['scenes']} scenes ({figures['objects']} objects, "
          f"{figures['grey_objects']} grey, {figures['metal_objects']} metal)")
    if figures["all_grey"]:
        print("  all objects made grey: images against masks only (not a planned dataset)")
    else:
        print(f"  full validation: {len(figures['false_alarms'])} problems (false alarms) in "
              f"{figures['validate_seconds']} s")
    for alarm in figures["false_alarms"][:10]:
        print(f"    {alarm}")
    print(f"  content check of the valid views: {len(figures['content_alarms'])} false alarms")
    for alarm in figures["content_alarms"][:10]:
        print(f"    {alarm}")
    for note in figures["notes"]:
        print(f"  note: {note}")
    print(f"  edge contrast: valid views >= {figures['own_edge_min']:.2f}, wrong pairings "
          f"<= {figures['wrong_edge_max']:.2f} (threshold {content.EDGE_MIN}); wrong "
          f"pairings above {content.EDGE_MIN / 2}: {figures['near_misses'][1]}, of them "
          f"caught by the colour test alone: {figures['near_misses'][0]}")
    print(f"  alignment: valid views' best other offset fits <= {figures['align_max']:.3f} "
          f"(threshold {content.ALIGN_MAX}; 0 when no view has a coloured outline)")
    print(f"  colour: {figures['colour_misfits']} of {figures['objects_judged']} judged "
          f"object views misfit; saturation grey <= {figures['chroma_grey_max']:.3f}, "
          f"coloured >= {figures['chroma_colour_min']:.3f} (inf: none; threshold "
          f"{content.CHROMA_GREY}); "
          f"ground <= {figures['ground_chroma_max']:.4f} (threshold "
          f"{content.GROUND_CHROMA_MAX})")
    for kind, (caught, total) in figures["damages"].items():
        print(f"  detected {kind}: {caught}/{total} ({100 * caught / total:.1f}%)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render")
    r.add_argument("output", type=Path)
    r.add_argument("--resolution", type=presets.parse_resolution, default=(480, 320))
    r.add_argument("--samples", type=int, default=8)
    r.add_argument("--counts", type=_counts, default={"train": 35, "test_comp": 25})
    r.add_argument("--seed", type=int, default=presets.DEFAULT_SEED)
    r.add_argument("--grey", action="store_true", help="make every object grey")
    m = sub.add_parser("measure")
    m.add_argument("outputs", type=Path, nargs="+")
    m.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "render":
        render(args.output, args.resolution, args.samples, args.counts, args.seed, args.grey)
        return 0
    results = []
    for out in args.outputs:
        results.append(measure(out))
        _print(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["false_alarms"] or r["content_alarms"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
