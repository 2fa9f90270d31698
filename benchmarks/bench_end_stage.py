"""The end stage of a build (merge, then validation): seconds per scene, and a projection
for `large` (152,000 scenes) on one 64-core node and on 8 of them.

Three steps, so the slow one runs once:

    render  OUT [--resolution 1024x768] [--samples 1] [--objects 15] [--scenes 8]
            renders real scenes with Cycles (a build's pipeline, in this process, on the
            CPU) into a plan of test_comp scenes, only those with --objects objects; the
            other planned scenes stay unrendered (the merge lists them as not rendered).
    measure OUT [--repeat 3] [--jobs N] [--same 400] [--project 152000] [--json FILE]
            merges OUT, then in one run:
            - the merge without manifests (merge.merge(trust_manifests=False): every
              metadata file read and parsed, every file hashed, what the merge cost before
              core/manifest.py) against the merge from manifests, on the same folder of
              --same scenes (hard links to the rendered ones, each with its manifest), both
              writing the same files (checked byte for byte but the creation time), in ms
              per scene;
            - validation per scene on the rendered scenes, with labels recomputed and
              without (a build recomputes labels for at most 2,000 scenes): the per-scene
              task as it is (the checks, and the scene's share of the merge's files: its
              files hashed, its record tallied) against the checks alone (the task before
              the share moved into it), CPU seconds on 1 process; the task on --jobs (the
              local pool's scaling);
            - the validator's whole-folder checks (survey, splits, dataset_info and
              checksums against the merge's documents) as they are, from the shares the
              tasks returned, against the same checks making every share themselves,
              serially (what they did before: every record read a second time, every file
              hashed, in one process);
            - with --project N: a synthetic folder of N scenes made the same way (a `large`
              plan when N is 152,000): the merge and the whole-folder checks at that size
              (the shares those of the rendered scenes whose files each scene links to).
            It prints the projection of the end stage of `large` on 64 cores and on 8x64,
            as the validator is now and as it was.

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
from figures import report  # noqa: E402  (benchmarks/figures.py)
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

    rule = presets.split_rule("test_comp")
    if objects not in rule.levels:
        raise SystemExit(f"--objects must be one of test_comp's {rule.levels}")
    counts = {"test_comp": scenes * len(rule.levels)}  # balanced: `scenes` of each level
    settings = plan.plan_settings(
        seed=seed, size=None, counts=counts, quality="draft", resolution=resolution,
        samples=samples, blender_version=bpy.app.version_string, numpy_version=np.__version__)
    document = plan.document(settings)
    if not layout.plan_file(out).exists():
        layout.write_json(layout.plan_file(out), document)
    layout.write_json(layout.run_file(out), {"n_gpus": 0, "workers": 1, "wall_seconds": None})
    _, planned = plan.read_document(layout.plan_file(out))
    render_settings = batch.render_settings(settings, "CPU")
    for scene in planned:
        if scene.n_objects != objects or layout.is_complete(out, scene.scene_id):
            continue
        start = time.perf_counter()
        pipeline.render_scene(sampling.sample_scene(scene, seed), out, render_settings)
        print(f"{scene.scene_id}: {scene.n_objects} objects, "
              f"{time.perf_counter() - start:.1f} s", flush=True)


# --- the merge, without manifests and from them --------------------------------------------

def merge_from_records(out: Path) -> None:
    """The merge as it was without manifests: the same files, from every record and every
    file's bytes."""
    merge.merge(out, trust_manifests=False)


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
    with synthetic(source, n) as (out, _):
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
    """CPU seconds per scene of the per-scene task as it is (checks and share) and of the
    checks alone, with labels and without, on 1 process, and the task's wall time on
    `jobs` (each scene 4 times, so the pool's start-up is shared); the share alone, as the
    task makes it (the record already parsed) and as the folder checks made it (reading the
    record again); then the whole-folder checks from the tasks' shares against the same
    checks making every share serially."""
    plan_data, scenes = plan.read_document(layout.plan_file(out))
    settings = plan_data["settings"]
    todo = merge.complete_scenes(out, scenes)
    figures = {"scenes": len(todo), "scene_bytes": sum(
        (out / rel).stat().st_size for s in todo for rel in layout.scene_files(s.scene_id)
    ) // len(todo)}
    shares = {}
    for labels in (True, False):
        key = "with_labels" if labels else "without_labels"
        tasks = [(str(out), s, settings, labels, True) for s in todo] * 4
        for scene_id, problems, share in map(validation._check_scene_task, tasks[:len(todo)]):
            if problems:
                raise SystemExit(f"{scene_id} does not validate: {problems[0]}")
            shares[scene_id] = share
        checks_cpu = timed_cpu(lambda t=tasks: [validation.check_scene(*task) for task in t],
                               repeat=repeat)[1]
        one, cpu = timed_cpu(lambda t=tasks: list(validation._run(t, 1)), repeat=repeat)
        many = timed(lambda t=tasks: list(validation._run(t, jobs)), repeat=repeat)
        figures[key] = {"seconds_per_scene": one / len(tasks),
                        "cpu_seconds_per_scene": cpu / len(tasks),
                        "checks_only_cpu_seconds_per_scene": checks_cpu / len(tasks),
                        f"seconds_per_scene_{jobs}_jobs": many / len(tasks),
                        "scaling_efficiency": one / (jobs * many)}
    records = {s.scene_id: layout.read_json(out / layout.scene_paths(s.scene_id)["metadata"])
               for s in todo}
    for key, given in (("share_cpu_seconds_per_scene", records),
                       ("serial_share_cpu_seconds_per_scene", {})):
        figures[key] = timed_cpu(lambda g=given: [
            validation._scene_share(out, s.scene_id, settings, g.get(s.scene_id))
            for s in todo * 4], repeat=repeat)[1] / (4 * len(todo))
    complete = set(shares)
    figures["folder_checks_seconds"] = folder_checks(out, plan_data, scenes, complete, shares,
                                                     repeat)
    figures["folder_checks_serial_shares_seconds"] = folder_checks(out, plan_data, scenes,
                                                                   complete, None, repeat)
    return figures


def folder_checks(out: Path, plan_data: dict, scenes: list, complete: set, shares,
                  repeat: int = 1) -> float:
    """validation.check_folder (survey, splits, dataset_info and checksums against the
    merge's documents: the serial part) from `shares`, or making every share itself
    (shares=None: the old serial part); it must find nothing."""
    def check():
        problems, unmerged = validation.check_folder(out, plan_data, scenes, complete, shares)
        if problems or unmerged:
            raise SystemExit(f"the folder checks found {problems[:1]} {unmerged}")
    return timed(check, repeat=repeat)


# --- synthetic folders: the rendered scenes, linked under other ids -------------------------

@contextmanager
def synthetic(source: Path, n: int):
    """A folder of the first `n` scenes of a plan (`large` when n == 152,000) beside
    `source`, each scene's files hard links to a rendered scene's and its manifest that
    scene's, renamed; removed afterwards. Yields (folder, scene id -> the rendered scene
    it links to)."""
    target = Path(tempfile.mkdtemp(prefix="bench_end_stage_", dir=source.parent))
    try:
        _, rendered = plan.read_document(layout.plan_file(source))
        sources = [s.scene_id for s in merge.complete_scenes(source, rendered)]
        counts = (presets.DATASET_SIZES["large"] if n == LARGE
                  else {split: n // len(presets.SPLITS) for split in presets.SPLITS})
        settings = dict(layout.read_json(layout.plan_file(source))["settings"], counts=counts,
                        size="large" if n == LARGE else None)
        document = plan.document(settings)
        layout.write_json(layout.plan_file(target), document, compact=True)
        layout.write_json(layout.run_file(target), layout.read_json(layout.run_file(source)))
        manifests = {sid: manifest.read(source, sid) for sid in sources}
        origins = {}
        for i, entry in enumerate(document["scenes"]):
            sid, origin = entry["scene_id"], sources[i % len(sources)]
            origins[sid] = origin
            for rel, rel_origin in zip(layout.scene_files(sid), layout.scene_files(origin),
                                       strict=True):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(source / rel_origin, target / rel)
            doc = manifests[origin]
            files = dict(zip(layout.scene_files(sid), doc["files"].values(), strict=True))
            layout.write_json(manifest.path(target, sid),
                              {"scene_id": sid, "summary": doc["summary"], "files": files})
        yield target, origins
    finally:
        shutil.rmtree(target, ignore_errors=True)


def measure_projection(source: Path, n: int) -> dict:
    """The merge from manifests and the validator's whole-folder checks at n scenes, from
    the shares of the rendered scenes each synthetic scene links to (the same files)."""
    start = time.perf_counter()
    plan_data, scenes = plan.read_document(layout.plan_file(source))
    settings = plan_data["settings"]
    rendered = {s.scene_id: validation._check_scene_task((str(source), s, settings, False,
                                                          False))[2]
                for s in merge.complete_scenes(source, scenes)}
    with synthetic(source, n) as (out, origins):
        made = time.perf_counter() - start
        seconds = timed(merge.merge, out)
        plan_data, scenes = plan.read_document(layout.plan_file(out))
        shares = {sid: rendered[origin] for sid, origin in origins.items()}
        checks = folder_checks(out, plan_data, scenes, set(shares), shares)
    return {"scenes": n, "made_in_seconds": made, "merge_seconds": seconds,
            "merge_ms_per_scene": 1000 * seconds / n, "folder_checks_seconds": checks,
            "folder_checks_ms_per_scene": 1000 * checks / n}


def projection(merge_figures: dict, validation_figures: dict, synthetic: dict | None) -> dict:
    """The end stage of `large`: the merge and the validator's whole-folder checks are one
    process each (per scene as measured on the synthetic folder when given, else on the
    rendered one, times 152,000); the per-scene tasks spread over every core: every scene
    checked, LABELS_MAX of them with labels. The validator as it was: the checks alone per
    scene, and the whole-folder checks making every share serially (what they cost above
    the shares given, per scene, times 152,000)."""
    n = validation_figures["scenes"]
    merge_seconds = LARGE * (synthetic or {}).get(
        "merge_ms_per_scene", merge_figures["manifests_ms_per_scene"]) / 1000
    checks = LARGE * (synthetic["folder_checks_seconds"] / synthetic["scenes"] if synthetic
                      else validation_figures["folder_checks_seconds"] / n)
    serial_shares = LARGE * (validation_figures["folder_checks_serial_shares_seconds"]
                             - validation_figures["folder_checks_seconds"]) / n
    with_labels, without = (validation_figures[key] for key in ("with_labels",
                                                                "without_labels"))

    def cpu(field):
        return LABELS_MAX * with_labels[field] + (LARGE - LABELS_MAX) * without[field]

    # the task is the checks and the share: the share measured alone, more steadily than
    # the difference of two whole tasks on a machine others load
    before = cpu("checks_only_cpu_seconds_per_scene")
    now = before + LARGE * validation_figures["share_cpu_seconds_per_scene"]
    figures = {
        "merge_seconds": merge_seconds, "merge_without_manifests_seconds":
            LARGE * merge_figures["today_ms_per_scene"] / 1000,
        "folder_checks_seconds": checks, "scene_tasks_cpu_seconds": now,
        "folder_checks_before_seconds": checks + serial_shares,
        "scene_checks_before_cpu_seconds": before,
        "read_gigabytes": LARGE * validation_figures["scene_bytes"] / 1e9,
    }
    for label, cores in ((f"{CORES}_cores", CORES), (f"{NODES}x{CORES}_cores", NODES * CORES)):
        figures[f"end_stage_seconds_{label}"] = merge_seconds + checks + now / cores
        figures[f"end_stage_seconds_{label}_before"] = (merge_seconds + checks + serial_shares
                                                        + before / cores)
    return figures


def measure(out: Path, repeat: int, jobs: int, same: int, project: int | None) -> dict:
    settings = layout.read_json(layout.plan_file(out))["settings"]
    _, scenes = plan.read_document(layout.plan_file(out))
    merge.merge(out)  # the whole-folder checks compare the index files
    figures = {"folder": str(out), "resolution": settings["resolution"],
               "objects": sorted({s.n_objects for s in merge.complete_scenes(out, scenes)}),
               "cpus": os.cpu_count(), "load_average_before": os.getloadavg()[0],
               "merge": measure_merge(out, same, repeat),
               "validation": measure_validation(out, jobs, repeat)}
    if project:
        figures["synthetic"] = measure_projection(out, project)
    figures["load_average_after"] = os.getloadavg()[0]
    figures["projection_large"] = projection(figures["merge"], figures["validation"],
                                             figures.get("synthetic"))
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
    return report(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
