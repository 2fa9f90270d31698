"""A small output folder with the exact files of SPEC 1, made without Blender.

For the merge and validator tests: the plan is the real plan, each scene's layout is a
random gate-passing layout made here (independent of the sampler), masks are painted
from the silhouettes back to front, images are flat RGB PNGs of the configured size, and
the metadata is written by the real records.write_scene_record. So every label is consistent with
the masks, and corruptions are the tests' own doing.
"""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from scenegen_addon.core import camera, launch, png, records, shapes, visibility
from scenegen_addon.core import spec as spec_mod

RESOLUTION = (240, 160)
RENDER = {"engine": "CYCLES", "samples": 2, "device": "CPU", "device_name": "CPU",
          "blender_version": "5.0.1", "seconds": 1.5}
RUN = {"n_gpus": 0, "workers": 2, "workers_per_gpu": 1, "started": "2026-01-01T00:00:00+00:00",
       "wall_seconds": 90.0}


def rgb_png(width: int, height: int, colour=(120, 130, 140)) -> bytes:
    """An 8-bit RGB PNG of one colour."""
    row = b"\x00" + bytes(colour) * width

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (png.SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def layout(n: int, seed: int) -> list[spec_mod.ObjectSpec]:
    """n objects at random, apart, passing the visibility gate (rejection until it does)."""
    rs = np.random.default_rng(seed)
    radius = 3.0 if n <= 6 else 3.5 if n <= 10 else 4.0
    while True:
        objects = []
        for _ in range(2000):
            if len(objects) == n:
                break
            i = len(objects)
            colour = list(spec_mod.COLORS)[rs.integers(len(spec_mod.COLORS))]
            size = ("large", "small")[rs.integers(2)]
            obj = spec_mod.ObjectSpec(
                f"obj_{i}", shapes.SHAPES[rs.integers(3)], size, spec_mod.SIZES[size], colour,
                list(spec_mod.COLORS[colour]), ("rubber", "metal")[rs.integers(2)],
                [float(v) for v in rs.uniform(-radius, radius, 2)], float(rs.uniform(0, 360)),
            )
            if all(shapes.gap(obj.footprint(), o.footprint()) > 0.25 for o in objects):
                objects.append(obj)
        if len(objects) == n and visibility.gate(objects).passed:
            return objects


def paint_mask(objects, view) -> np.ndarray:
    """Silhouettes painted farthest first (the gate's depth order)."""
    sils = visibility.silhouettes(objects, view)
    front = visibility.front_of(objects, view)
    mask = np.zeros((view.height, view.width), dtype=np.uint16)
    for i in np.argsort(-front.sum(axis=0), kind="stable"):
        s = sils[i]
        mask[s.y0:s.y1, s.x0:s.x1][s.mask] = i + 1
    return mask


def make_output(out: Path, counts: dict, seed: int = 42, failed=()) -> dict:
    """Plan, run and scene files of a finished run; scenes in `failed` get no files and are
    listed in failures.json. Returns the plan document."""
    width, height = RESOLUTION
    settings = launch.plan_settings(
        seed=seed, size=None, counts=counts, quality="draft", resolution=RESOLUTION,
        samples=2, blender_version="5.0.1", numpy_version=np.__version__,
    )
    document = launch.plan_document(settings)
    internal = out / ".scenegen"
    internal.mkdir(parents=True)
    records.write_json_atomic(internal / "plan.json", document)
    records.write_json_atomic(internal / "run.json", RUN)
    records.write_json_atomic(internal / "failures.json",
                              [{"scene_id": sid, "reason": "sampling: 100 retries"}
                               for sid in failed])
    views = camera.rig(width, height)
    image = rgb_png(width, height)
    for entry in document["scenes"]:
        if entry["scene_id"] in failed:
            continue
        spec, masks = make_scene(entry, views)
        paths = records.scene_paths(spec.scene_id)
        for rel in [paths["image_single"], *paths["images"]]:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(image)
        for rel, mask in zip(paths["masks"], masks, strict=True):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            png.write_png16(out / rel, mask)
        records.write_scene_record(out, spec, views, masks, RENDER)
    return document


def make_scene(entry: dict, views):
    """The spec and painted masks of a plan entry (a dict of plan.json)."""
    objects = layout(entry["n_objects"], entry["seed"] % 2**32)
    lights = [spec_mod.LightSpec(name, list(loc), [0.0, 0.0, 0.0], energy, size)
              for name, loc, energy, size in spec_mod.LIGHTS]
    spec = spec_mod.SceneSpec(entry["scene_id"], entry["split"], entry["index"],
                              entry["seed"], 0, entry["tau"], objects, lights)
    masks = [paint_mask(objects, view) for view in views]
    return spec, masks


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))
