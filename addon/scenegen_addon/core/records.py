"""The scene record of FORMAT 6: build it, write it atomically as compact JSON, read it back.

Geometry goes in at full precision (json writes Python's shortest round-trip repr);
derived numbers come already rounded from `constraints`. NaN and inf are refused rather
than written. The JSON Schema of the document ships beside this module.
"""

import pathlib
import time

from . import camera, constraints, layout, manifest, visibility
from .spec import SceneSpec

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = pathlib.Path(__file__).with_name("scene_record.schema.json")
RENDER_KEYS = ("engine", "samples", "device", "device_name", "blender_version", "seconds")


def _light(light) -> dict:
    return {
        "name": light.name,
        "location": [float(x) for x in light.location],
        "rotation": [float(x) for x in light.rotation],
        "energy": float(light.energy),
        "size": float(light.size),
    }


def _document(spec: SceneSpec, views: list[camera.View], masks: list, render: dict):
    """The record without its constraints, and the arguments of each view's constraints."""
    if len(views) != camera.N_VIEWS or len(masks) != len(views):
        raise ValueError(
            f"views and masks must hold {camera.N_VIEWS} entries each, "
            f"got {len(views)} views and {len(masks)} masks"
        )
    missing = [k for k in RENDER_KEYS if k not in render]
    if missing:
        raise ValueError(f"render must have the keys {', '.join(RENDER_KEYS)}; missing {missing}")
    paths = layout.scene_paths(spec.scene_id)
    view_records, view_args = [], []
    for view, mask in zip(views, masks, strict=True):
        sils = visibility.silhouettes(spec.objects, view)
        objects = constraints.view_objects(spec, view, mask, sils)
        view_records.append(
            {
                "view_id": view.view_id,
                "image": paths["images"][view.index],
                "mask": paths["masks"][view.index],
                "camera": view.record(),
                "directions": view.directions,
                "objects": objects,
            }
        )
        view_args.append((spec, view, mask, objects, sils))
    document = {
        "schema_version": SCHEMA_VERSION,
        "scene_id": spec.scene_id,
        "split": spec.split,
        "index": int(spec.index),
        "seed": int(spec.seed),
        "retries": int(spec.retries),
        "tau": float(spec.tau),
        "n_objects": spec.n_objects,
        "image_size": [views[0].width, views[0].height],
        "render": {k: render[k] for k in RENDER_KEYS},
        "lights": [_light(light) for light in spec.lights],
        "objects": [obj.record() for obj in spec.objects],
        "views": view_records,
        "single_view": {"image": paths["image_single"], "view_id": views[0].view_id},
    }
    return document, view_args


def scene_record(spec: SceneSpec, views: list[camera.View], masks: list, render: dict) -> dict:
    """The whole FORMAT 6 document of one rendered scene.

    masks[k] is view k's object-index mask ((H, W) integers, row 0 = top, i + 1 = obj_i).
    """
    document, view_args = _document(spec, views, masks, render)
    document["constraints"] = {
        "world": constraints.world_constraints(spec),
        "views": [constraints.view_constraints(*args) for args in view_args],
    }
    return document


def write_scene_record(output_dir, spec: SceneSpec, views: list[camera.View], masks: list,
                       render: dict, timings: dict | None = None,
                       tally: manifest.Tally | None = None) -> pathlib.Path:
    """Write scene_record(...) as compact JSON to metadata/<scene_id>.json under output_dir;
    written last, it marks the scene complete. Adds the seconds spent building the record
    (not writing it) to timings["constraints"], and the record's parts to `tally` (the
    scene's statistics for its manifest), when given.

    Built and written one constraints context (world, then each view) at a time: at 15
    objects the whole record is 4 MB of JSON and about 20 MB of small Python objects, whose
    peak would otherwise stay in the worker's heap for the rest of the run.
    """
    building = 0.0

    def built(make, *args):
        nonlocal building
        start = time.perf_counter()
        result = make(*args)
        building += time.perf_counter() - start
        return result

    document, view_args = built(_document, spec, views, masks, render)
    tally = tally or manifest.Tally()
    tally.add_document(document)

    def pieces():
        yield layout.dumps(document)[:-1] + ',"constraints":{"world":'
        world = built(constraints.world_constraints, spec)
        tally.add_world(world)
        yield layout.dumps(world) + ',"views":['
        for k, args in enumerate(view_args):
            view = built(constraints.view_constraints, *args)
            tally.add_view(view)
            yield ("," if k else "") + layout.dumps(view)
        yield "]}}"

    path = pathlib.Path(output_dir) / layout.scene_paths(spec.scene_id)["metadata"]
    layout.write_text(path, pieces())
    if timings is not None:
        timings["constraints"] = timings.get("constraints", 0.0) + building
    return path


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of the scene record."""
    return layout.read_json(SCHEMA_FILE)
