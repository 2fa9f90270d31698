"""One scene end to end: build, render 4 views (image + index mask each, and a map per
optional pass, e.g. depth with --passes depth), constraints, scene record written last
(FORMAT 1: a scene is complete iff its metadata file exists).

Two halves, so a batch can overlap them: render_views (bpy: build, render, read back,
empty the scene) and finish_scene (no bpy: masks, single view, constraints, record).
"""

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..core import camera, layout, manifest, png, records
from ..core.spec import SceneSpec
from . import compat, passes, render
from . import scene as scene_mod

ENGINE = "CYCLES"


def _link_or_copy(source: Path, target: Path) -> None:
    """Make `target` the same file as `source` (hard link; a copy where links fail)."""
    with layout.atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _render_view(scene, cam, image_path: Path, index: passes.IndexOutput, k: int) -> dict:
    """Render one view to a temporary image name; returns its EXRs' paths by pass."""
    scene.camera = cam
    scene.render.filepath = str(image_path)
    exrs = index.target(f"view_{k}_")
    result = bpy.ops.render.render(write_still=True, scene=scene.name)
    if result != {"FINISHED"} or not image_path.exists() or not all(
            map(os.path.exists, exrs.values())):
        raise RuntimeError(f"render of view {k} failed ({result})")
    return exrs


@dataclass
class RenderedScene:
    """A scene rendered and read back, its scene record not yet written."""

    spec: SceneSpec
    output_dir: Path
    settings: render.RenderSettings
    masks: list[np.ndarray]  # (H, W) uint16 per view, row 0 = top
    maps: dict[str, list[np.ndarray]]  # the same per optional pass (settings.passes), by name
    render: dict  # the record's render entry
    timings: dict  # build, render, readback so far; "elapsed" = seconds spent so far


def render_views(
    spec: SceneSpec, output_dir: Path, settings: render.RenderSettings
) -> RenderedScene:
    """The bpy part: build, render the 4 views (image + index EXR each), read the masks
    back (and the optional passes' maps), empty the render scene. Images land under their
    final names as each view finishes; the EXRs go to a scratch folder in .scenegen/tmp/,
    which a build's start empties."""
    start = time.perf_counter()
    output_dir = Path(output_dir).resolve()  # Blender resolves relative paths its own way
    paths = layout.scene_paths(spec.scene_id)
    for rel in (paths["images"][0], paths["masks"][0], paths["image_single"]):
        (output_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    timings = {"build": 0.0, "render": 0.0, "readback": 0.0}
    scratch_root = layout.scratch_dir(output_dir)  # a killed worker's EXRs stay on this disk
    scratch_root.mkdir(parents=True, exist_ok=True)
    scene = scene_mod.build_scene(spec, settings, scene_mod.render_scene())
    try:
        with tempfile.TemporaryDirectory(prefix="index_", dir=scratch_root) as scratch:
            index = passes.IndexOutput(scene, scratch, settings.passes)
            timings["build"] = time.perf_counter() - start
            masks, maps = [], {name: [] for name in settings.passes}
            for k, cam in enumerate(scene_mod.view_cameras(scene)):
                t0 = time.perf_counter()
                with layout.atomic_path(output_dir / paths["images"][k]) as tmp:
                    exrs = _render_view(scene, cam, tmp, index, k)
                t1 = time.perf_counter()
                size = settings.width, settings.height
                masks.append(passes.read(exrs[compat.INDEX_ITEM], passes.INDEX, *size))
                for name, views in maps.items():
                    views.append(passes.read(exrs[name], passes.OPTIONAL[name], *size))
                timings["render"] += t1 - t0
                timings["readback"] += time.perf_counter() - t1
        info = {
            "engine": ENGINE,
            "samples": settings.samples,
            "device": scene["scenegen_device"],
            "device_name": scene["scenegen_device_name"],
            "blender_version": bpy.app.version_string,
            "seconds": timings["render"],
        }
    finally:
        scene_mod.clear_scene(scene)
    timings["elapsed"] = time.perf_counter() - start
    return RenderedScene(spec, output_dir, settings, masks, maps, info, timings)


def finish_scene(rendered: RenderedScene) -> dict:
    """The bpy-free part: masks, the single view, constraints, the scene record (last, the
    mark of a complete scene), then the scene's manifest (its files' hashes, its statistics).

    Touches no bpy, so it may run in a thread while the next scene renders. Returns the
    timings: build, render, readback, constraints, write, checksums, total (seconds of work).
    """
    start = time.perf_counter()
    spec, out = rendered.spec, rendered.output_dir
    names = rendered.settings.passes
    paths = layout.scene_paths(spec.scene_id, names)
    for k, mask in enumerate(rendered.masks):
        png.write_png16(out / paths["masks"][k], mask)
    for name in names:
        for k, values in enumerate(rendered.maps[name]):
            png.write_png16(out / paths[name][k], values)
    _link_or_copy(out / paths["images"][0], out / paths["image_single"])
    timings = {k: v for k, v in rendered.timings.items() if k != "elapsed"}
    views = camera.rig(rendered.settings.width, rendered.settings.height)
    tally = manifest.Tally()
    records.write_scene_record(out, spec, views, rendered.masks, rendered.render, timings, tally)
    written = time.perf_counter()
    manifest.write(out, spec.scene_id, tally.summary(), names)
    end = time.perf_counter()
    timings["write"] = written - start - timings["constraints"]
    timings["checksums"] = end - written
    timings["total"] = rendered.timings["elapsed"] + (end - start)
    return timings


def render_scene(spec: SceneSpec, output_dir: Path, settings: render.RenderSettings) -> dict:
    """Render `spec` into `output_dir` (FORMAT 1 layout) end to end; returns timings in
    seconds: build, render (inside Cycles; also the record's render.seconds), readback
    (index EXRs to numpy), constraints (the scene record), write (masks, single view,
    metadata), total."""
    return finish_scene(render_views(spec, output_dir, settings))
