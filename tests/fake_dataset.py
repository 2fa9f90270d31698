"""A small output folder with the exact files of FORMAT 1, made without Blender.

For the merge and validator tests: the plan is the real plan, each scene is the one the
real sampler gives its plan entry, masks are painted from the silhouettes back to front,
images are painted from the masks (each object in its palette colour on a grey ground that
darkens towards the top), and the metadata is written by the real
records.write_scene_record. So every label is consistent with the masks and every image
with its mask, and corruptions are the tests' own doing.
"""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from scenegen_addon.core import camera, layout, plan, png, records, sampling, shapes, visibility
from scenegen_addon.core import spec as spec_mod

RESOLUTION = (240, 160)
RENDER = {"engine": "CYCLES", "samples": 2, "device": "CPU", "device_name": "CPU",
          "blender_version": "5.0.1", "seconds": 1.5}
RUN = {"n_gpus": 0, "workers": 2, "workers_per_gpu": 1, "started": "2026-01-01T00:00:00+00:00",
       "wall_seconds": 90.0}


def rgb_png(width: int, height: int, colour=(120, 130, 140)) -> bytes:
    """An 8-bit RGB PNG of one colour."""
    return encode_rgb(np.full((height, width, 3), colour, dtype=np.uint8))


def encode_rgb(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a (H, W, 3) uint8 array (filter None on every row)."""
    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)
    rows[:, 1:] = pixels.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (png.SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes()))
            + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def paint_image(spec, mask: np.ndarray) -> np.ndarray:
    """A view image as the mask has it: each object in its rgb, the ground grey (100 at the
    top to 160 at the bottom)."""
    height, width = mask.shape
    ground = np.linspace(100, 160, height).astype(np.uint8)
    image = np.repeat(np.repeat(ground[:, None, None], width, axis=1), 3, axis=2)
    for i, obj in enumerate(spec.objects):
        image[mask == i + 1] = obj.rgb
    return image


def random_objects(n: int, seed: int) -> list[spec_mod.ObjectSpec]:
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
                f"obj_{i}", shapes.SHAPES[rs.integers(3)], size, spec_mod.OBJECT_SIZES[size],
                colour,
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
    settings = plan.plan_settings(
        seed=seed, size=None, counts=counts, quality="draft", resolution=RESOLUTION,
        samples=2, blender_version="5.0.1", numpy_version=np.__version__,
    )
    document = plan.document(settings)
    internal = out / ".scenegen"
    internal.mkdir(parents=True)
    layout.write_json(internal / "plan.json", document)
    layout.write_json(internal / "run.json", RUN)
    layout.write_json(internal / "failures.json",
                      [{"scene_id": sid, "reason": "sampling: 100 retries"} for sid in failed])
    views = camera.rig(width, height)
    for entry in document["scenes"]:
        if entry["scene_id"] in failed:
            continue
        spec, masks = make_scene(entry, views, seed)
        paths = layout.scene_paths(spec.scene_id)
        images = [encode_rgb(paint_image(spec, mask)) for mask in masks]
        for rel, image in zip([paths["image_single"], *paths["images"]], [images[0], *images],
                              strict=True):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(image)
        for rel, mask in zip(paths["masks"], masks, strict=True):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            png.write_png16(out / rel, mask)
        records.write_scene_record(out, spec, views, masks, RENDER)
    return document


def make_scene(entry: dict, views, global_seed: int = 42):
    """The sampled spec and painted masks of a plan entry (a dict of plan.json)."""
    spec = sampling.sample_scene(plan.PlannedScene(**entry), global_seed)
    masks = [paint_mask(spec.objects, view) for view in views]
    return spec, masks


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))
