"""The end stage of a build (merge, then validation): seconds per scene, and a projection
for `large` (152,000 scenes) on one 64-core node and on 8 of them.

Three steps, so the slow one runs once:

    render  OUT [--resolution 1024x768] [--samples 1] [--objects 15] [--scenes 8]
            renders real scenes with Cycles (a build's pipeline, in this process, on the
            CPU) into a plan of test_comp scenes, only those with --objects objects; the
            other planned scenes stay unrendered (the merge lists them as not rendered).
    measure OUT [--repeat 3] [--jobs N] [--same 400] [--project 152000] [--json FILE]
            in one run:
            - today's merge without manifests (every metadata file read and parsed, every
              file hashed: what the merge cost before core/manifest.py) against the merge
              from manifests, on the same folder of --same scenes (hard links to the
              rendered ones, each with its manifest), both writing the same files (checked
              byte for byte but the creation time), in ms per scene;
            - validation per scene on the rendered scenes: every check with labels
              recomputed, and without labels (a build recomputes labels for at most 2,000
              scenes), on 1 process and on --jobs (the local pool's scaling); and the
              validator's whole-folder checks alone;
            - with --project N: a synthetic folder of N scenes made the same way (a `large`
              plan when N is 152,000): the merge and the whole-folder checks at that size.
            It prints the projection of the end stage of `large` on 64 cores and on 8x64.

    .venv/bin/python benchmarks/bench_end_stage.py render /tmp/end1024
    .venv/bin/python benchmarks/bench_end_stage.py measure /tmp/end1024 --project 152000
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

import numpy as np  # noqa: E402
from scenegen_addon.core import layout, manifest, merge, plan, presets, validation  # noqa: E402

LARGE = 152_000
LABELS_MAX = 2000  # launcher/build.py VALIDATE_LABELS_MAX: a build recomputes labels this often
CORES = 64
NODES = 8


def render(out: Path, resolution, samples: int, objects: int, scenes: int, seed: int) -> None:
    """Real scenes of `objects` objects: a test_comp plan, only those scenes rendered."""
    import bpy
    from scenegen_addon.blender import batch, pipeline
    from scenegen_addon.core import sampling
    from scenegen_addon.launcher import folder

    rule = presets.split_rule("test_comp")
    if objects not in rule.levels:
        raise SystemExit(f"--objects must be one of test_comp's {rule.levels}")
    counts = {"test_comp": scenes * len(rule.levels)}  # balanced: `scenes` of each level
    settings = folder.plan_settings(
        seed=seed, size=None, counts=counts, quality="draft", resolution=resolution,
        samples=samples, blender_version=bpy.app.version_string, numpy_version=np.__version__)
    document = folder.plan_document(settings)
    if not layout.plan_file(out).exists():
        layout.write_json(layout.plan_file(out), document)
    layout.write_json(layout.run_file(out), {"n_gpus": 0, "workers": 1, "wall_seconds": None})
    _, planned = merge.read_plan(out)
    render_settings = batch.render_settings(settings, "CPU")
    for scene in planned:
        if scene.n_objects != objects or layout.is_complete(out, scene.scene_id):
            continue
        start = time.perf_counter()
        pipeline.render_scene(sampling.sample_scene(scene, seed), out, render_settings)
        print(f"{scene.scene_id}: {scene.n_objects} objects, "
              f"{time.perf_counter() - start:.1f} s", flush=True)


# --- the merge, today's and from manifests --------------------------------------------------

def merge_from_records(out: Path) -> None:
    """The merge as it was without manifests: the same files, from every record and every
    file's bytes (merge.documents with trust_manifests=False)."""
    sums: dict = {}
    splits, info = merge.documents(out, sums, trust_manifests=False)
    for split, entries in splits.items():
        layout.write_json(out / layout.split_file(split), entries, compact=False)
    layout.write_json(out / layout.DATASET_INFO, info, compact=False)
    for rel in layout.index_files(splits):
        if rel != layout.CHECKSUMS:
            sums[rel] = manifest.file_entry(out / rel)["sha256"]
    layout.write_text(out / layout.CHECKSUMS,
                      (f"{digest}  {rel}\n" for rel, digest in sums.items()))


def index_snapshot(out: Path) -> dict:
    """The merge's files, dataset_info.json without its creation time and its line in the
    checksums (which follows from it)."""
    found = {}
    for rel in [*(layout.split_file(s) for s in presets.SPLITS), layout.DATASET_INFO,
                layout.CHECKSUMS]:
        path = out / rel
        if not path.exists():
            continue
        data = path.read_text()
        if rel == layout.DATASET_INFO:
            info = json.loads(data)
            info.pop("created")
            data = info
        elif rel == layout.CHECKSUMS:
            data = [line for line in data.splitlines() if not line.endswith(layout.DATASET_INFO)]
        found[rel] = data
    return found


def timed(function, *args, repeat: int = 1) -> float:
    """The best of `repeat` runs, in wall seconds (the least disturbed by other load)."""
    return timed_cpu(function, *args, repeat=repeat)[0]


def timed_cpu(function, *args, repeat: int = 1) -> tuple[float, float]:
    """(wall, CPU seconds of this process) of the best of `repeat` runs: on a machine
    others load, the CPU time is what a free core would take."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function(*args)
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def measure_merge(source: Path, n: int, repeat: int) -> dict:
    """Today's merge and the merge from manifests on the same folder of n scenes (links to
    the rendered ones), in one run; both must write the same files."""
    with synthetic(source, n) as out:
        old = timed(merge_from_records, out, repeat=repeat)
        old_files = index_snapshot(out)
        new = timed(merge.merge, out, repeat=repeat)
        if index_snapshot(out) != old_files:
            raise SystemExit("the two merges wrote different files: the comparison is void")
    return {"scenes": n, "today_seconds": old, "manifests_seconds": new,
            "today_ms_per_scene": 1000 * old / n, "manifests_ms_per_scene": 1000 * new / n,
            "speedup": old / new}


# --- validation -------------------------------------------------------------------------

def measure_validation(out: Path, jobs: int, repeat: int) -> dict:
    """Seconds per scene of the per-scene checks, with labels and without, on 1 process
    and on `jobs` (each scene 4 times, so the pool's start-up is shared); and the
    whole-folder checks alone (the per-scene ones mapped to nothing)."""
    plan_data, scenes = merge.read_plan(out)
    settings = plan_data["settings"]
    todo = merge.complete_scenes(out, scenes)
    figures = {"scenes": len(todo), "scene_bytes": sum(
        (out / rel).stat().st_size for s in todo for rel in layout.scene_files(s.scene_id)
    ) // len(todo)}
    for labels in (True, False):
        key = "with_labels" if labels else "without_labels"
        tasks = [(str(out), s, settings, labels, True) for s in todo] * 4
        for scene_id, problems in map(validation._check_scene_task, tasks[:len(todo)]):
            if problems:
                raise SystemExit(f"{scene_id} does not validate: {problems[0]}")
        one, cpu = timed_cpu(lambda t=tasks: list(validation._run(t, 1)), repeat=repeat)
        many = timed(lambda t=tasks: list(validation._run(t, jobs)), repeat=repeat)
        figures[key] = {"seconds_per_scene": one / len(tasks),
                        "cpu_seconds_per_scene": cpu / len(tasks),
                        f"seconds_per_scene_{jobs}_jobs": many / len(tasks),
                        "scaling_efficiency": one / (jobs * many)}
    figures["folder_checks_seconds"] = folder_checks(out)
    return figures


def folder_checks(out: Path) -> float:
    """validation.validate without its per-scene checks: plan, layout survey, failures,
    splits and dataset_info against the merge's documents (the serial part)."""
    start = time.perf_counter()
    validation.validate(out, map_tasks=lambda function, tasks: [])
    return time.perf_counter() - start


# --- synthetic folders: the rendered scenes, linked under other ids -------------------------

@contextmanager
def synthetic(source: Path, n: int):
    """A folder of the first `n` scenes of a plan (`large` when n == 152,000) beside
    `source`, each scene's files hard links to a rendered scene's and its manifest that
    scene's, renamed; removed afterwards."""
    target = Path(tempfile.mkdtemp(prefix="bench_end_stage_", dir=source.parent))
    try:
        _, rendered = merge.read_plan(source)
        sources = [s.scene_id for s in merge.complete_scenes(source, rendered)]
        counts = (presets.DATASET_SIZES["large"] if n == LARGE
                  else {split: n // len(presets.SPLITS) for split in presets.SPLITS})
        settings = dict(layout.read_json(layout.plan_file(source))["settings"], counts=counts,
                        size="large" if n == LARGE else None)
        document = plan.document(settings)
        layout.write_json(layout.plan_file(target), document, compact=True)
        layout.write_json(layout.run_file(target), layout.read_json(layout.run_file(source)))
        manifests = {sid: manifest.read(source, sid) for sid in sources}
        for i, entry in enumerate(document["scenes"]):
            sid, origin = entry["scene_id"], sources[i % len(sources)]
            for rel, rel_origin in zip(layout.scene_files(sid), layout.scene_files(origin),
                                       strict=True):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(source / rel_origin, target / rel)
            doc = manifests[origin]
            files = dict(zip(layout.scene_files(sid), doc["files"].values(), strict=True))
            layout.write_json(manifest.path(target, sid),
                              {"scene_id": sid, "summary": doc["summary"], "files": files})
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def measure_projection(source: Path, n: int) -> dict:
    """The merge from manifests and the validator's whole-folder checks at n scenes."""
    start = time.perf_counter()
    with synthetic(source, n) as out:
        made = time.perf_counter() - start
        seconds = timed(merge.merge, out)
        checks = folder_checks(out)
    return {"scenes": n, "made_in_seconds": made, "merge_seconds": seconds,
            "merge_ms_per_scene": 1000 * seconds / n, "folder_checks_seconds": checks,
            "folder_checks_ms_per_scene": 1000 * checks / n}


def projection(merge_figures: dict, validation_figures: dict, large: dict | None) -> dict:
    """The end stage of `large`: the merge and the validator's whole-folder checks are one
    process each (measured on the synthetic 152,000-scene folder when given, else per scene
    times 152,000); the per-scene checks spread over every core: every scene checked,
    LABELS_MAX of them with labels."""
    n = validation_figures["scenes"]
    merge_seconds = large["merge_seconds"] if large else (
        LARGE * merge_figures["manifests_ms_per_scene"] / 1000)
    checks = large["folder_checks_seconds"] if large else (
        LARGE * validation_figures["folder_checks_seconds"] / n)
    with_labels = validation_figures["with_labels"]["cpu_seconds_per_scene"]
    without = validation_figures["without_labels"]["cpu_seconds_per_scene"]
    cpu_seconds = LABELS_MAX * with_labels + (LARGE - LABELS_MAX) * without
    serial = merge_seconds + checks
    return {
        "merge_seconds": merge_seconds, "today_merge_seconds":
            LARGE * merge_figures["today_ms_per_scene"] / 1000,
        "folder_checks_seconds": checks, "scene_checks_cpu_seconds": cpu_seconds,
        "read_gigabytes": LARGE * validation_figures["scene_bytes"] / 1e9,
        f"end_stage_seconds_{CORES}_cores": serial + cpu_seconds / CORES,
        f"end_stage_seconds_{NODES}x{CORES}_cores": serial + cpu_seconds / (NODES * CORES),
    }


def measure(out: Path, repeat: int, jobs: int, same: int, project: int | None) -> dict:
    settings = layout.read_json(layout.plan_file(out))["settings"]
    _, scenes = merge.read_plan(out)
    figures = {"folder": str(out), "resolution": settings["resolution"],
               "objects": sorted({s.n_objects for s in merge.complete_scenes(out, scenes)}),
               "cpus": os.cpu_count(), "load_average_before": os.getloadavg()[0],
               "merge": measure_merge(out, same, repeat),
               "validation": measure_validation(out, jobs, repeat)}
    if project:
        figures["synthetic"] = measure_projection(out, project)
    figures["load_average_after"] = os.getloadavg()[0]
    large = figures.get("synthetic") if project == LARGE else None
    figures["projection_large"] = projection(figures["merge"], figures["validation"], large)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    r = steps.add_parser("render")
    r.add_argument("out", type=Path)
    r.add_argument("--resolution", default="1024x768")
    r.add_argument("--samples", type=int, default=1)
    r.add_argument("--objects", type=int, default=15)
    r.add_argument("--scenes", type=int, default=8)
    r.add_argument("--seed", type=int, default=42)
    m = steps.add_parser("measure")
    m.add_argument("out", type=Path)
    m.add_argument("--repeat", type=int, default=3)
    m.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    m.add_argument("--same", type=int, default=400,
                   help="scenes of the folder both merges run on (links to the rendered ones)")
    m.add_argument("--project", type=int, default=None)
    m.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.step == "render":
        render(args.out, presets.parse_resolution(args.resolution), args.samples, args.objects,
               args.scenes, args.seed)
        return 0
    figures = measure(args.out, args.repeat, args.jobs, args.same, args.project)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
