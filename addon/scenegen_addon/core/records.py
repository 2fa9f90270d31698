"""The scene record of SPEC 6: build it, write it atomically as compact JSON, read it back.

Geometry goes in at full precision (json writes Python's shortest round-trip repr);
derived numbers come already rounded from `constraints`. NaN and inf are refused rather
than written. The JSON Schema of the document ships beside this module.
"""

import json
import os
import pathlib
import threading
import time

from . import camera, constraints, visibility
from .spec import SceneSpec

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = pathlib.Path(__file__).with_name("scene_record.schema.json")
RENDER_KEYS = ("engine", "samples", "device", "device_name", "blender_version", "seconds")


def scene_paths(scene_id: str) -> dict:
    """Paths of one scene's files, relative to the output folder (SPEC 1)."""
    views = range(camera.N_VIEWS)
    return {
        "image_single": f"images/single_view/{scene_id}.png",
        "images": [f"images/multi_view/{scene_id}/view_{k}.png" for k in views],
        "masks": [f"masks/{scene_id}/view_{k}.png" for k in views],
        "metadata": f"metadata/{scene_id}.json",
    }


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
    paths = scene_paths(spec.scene_id)
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
    """The whole SPEC 6 document of one rendered scene.

    masks[k] is view k's object-index mask ((H, W) integers, row 0 = top, i + 1 = obj_i).
    """
    document, view_args = _document(spec, views, masks, render)
    document["constraints"] = {
        "world": constraints.world_constraints(spec),
        "views": [constraints.view_constraints(*args) for args in view_args],
    }
    return document


def _dumps(data, compact: bool = True) -> str:
    return json.dumps(
        data,
        allow_nan=False,
        separators=(",", ":") if compact else None,
        indent=None if compact else 2,
    )


def _write_atomic(path, pieces) -> None:
    """Write the text pieces under a temporary name in the same folder, then rename it."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per process and thread; an ordinary open keeps the umask's permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path, data, compact: bool = True) -> None:
    """Write JSON under a temporary name in the same folder, then rename it into place."""
    _write_atomic(path, [_dumps(data, compact)])


def write_scene_record(output_dir, spec: SceneSpec, views: list[camera.View], masks: list,
                       render: dict, timings: dict | None = None) -> pathlib.Path:
    """Write scene_record(...) as compact JSON to metadata/<scene_id>.json under output_dir;
    written last, it marks the scene complete. Adds the seconds spent building the record
    (not writing it) to timings["constraints"] when given.

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

    def pieces():
        yield _dumps(document)[:-1] + ',"constraints":{"world":'
        yield _dumps(built(constraints.world_constraints, spec)) + ',"views":['
        for k, args in enumerate(view_args):
            yield ("," if k else "") + _dumps(built(constraints.view_constraints, *args))
        yield "]}}"

    path = pathlib.Path(output_dir) / scene_paths(spec.scene_id)["metadata"]
    _write_atomic(path, pieces())
    if timings is not None:
        timings["constraints"] = timings.get("constraints", 0.0) + building
    return path


def read_scene_record(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of the scene record."""
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)
