"""render_scene end to end on real Cycles: files, images, masks against the core's geometry.

Small renders: a hand-placed 8-object scene with touching pairs at 240x160 (4 samples) and
the first seeded 15-object test_comp scene at the draft frame 480x320 (2 samples: the index
pass does not depend on the sample count).
"""

import json
import os
import struct
import zlib
from pathlib import Path

import bpy
import jsonschema
import numpy as np
import pytest
from blender_specs import EIGHT, fifteen, make_scene, sampled
from scenegen_addon.blender import pipeline
from scenegen_addon.blender import scene as scene_mod
from scenegen_addon.blender.render import RenderSettings
from scenegen_addon.core import camera, depth, png, records, visibility

from tests import same_output

# Colours whose largest channel clearly leads (rgb argmax): a rubber object's pixels keep it.
DOMINANT = {"red": 0, "brown": 0, "green": 1, "blue": 2, "purple": 2}


def _render(tmp_path_factory, spec, settings):
    bpy.ops.wm.read_homefile(use_empty=True)
    out = tmp_path_factory.mktemp(spec.scene_id)
    timings = pipeline.render_scene(spec, out, settings)
    return spec, out, settings, timings


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    return _render(tmp_path_factory, make_scene("train_00001", EIGHT), RenderSettings(240, 160, 4))


@pytest.fixture(scope="module")
def fifteen_draft(tmp_path_factory):
    spec = sampled("test_comp", 15)
    assert spec.n_objects == 15
    return _render(tmp_path_factory, spec, RenderSettings(480, 320, 2))


@pytest.fixture(params=["eight", "fifteen_draft"])
def rendered(request):
    return request.getfixturevalue(request.param)


def _record(out: Path, spec) -> dict:
    return json.loads((out / "metadata" / f"{spec.scene_id}.json").read_text())


def test_output_layout(eight):
    spec, out, _, _ = eight
    sid = spec.scene_id
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        [f"images/multi_view/{sid}/view_{k}.png" for k in range(4)]
        + [f"masks/{sid}/view_{k}.png" for k in range(4)]
        + [f"images/single_view/{sid}.png", f"metadata/{sid}.json"]
        + [f".scenegen/scenes/{sid}.json"]  # the manifest, written after the metadata
    )
    manifest = json.loads((out / f".scenegen/scenes/{sid}.json").read_text())
    assert sorted(manifest["files"]) == sorted(f for f in files if not f.startswith("."))
    assert all(manifest["files"][f]["bytes"] == (out / f).stat().st_size
               for f in manifest["files"])
    single = out / f"images/single_view/{sid}.png"
    view0 = out / f"images/multi_view/{sid}/view_0.png"
    assert single.read_bytes() == view0.read_bytes()
    assert os.path.samefile(single, view0)  # a hard link on this filesystem, not a 2nd render


def test_images_are_rgb_at_size_and_show_the_objects(rendered):
    spec, out, settings, _ = rendered
    for k in range(4):
        image = png.read_png(out / f"images/multi_view/{spec.scene_id}/view_{k}.png")
        assert image.shape == (settings.height, settings.width, 3) and image.dtype == np.uint8
        assert image.std() > 5  # not blank
        mask = png.read_png16(out / f"masks/{spec.scene_id}/view_{k}.png")
        for i, obj in enumerate(spec.objects):
            pixels = image[mask == i + 1]
            if obj.material == "rubber" and obj.color in DOMINANT and len(pixels) >= 20:
                assert int(np.argmax(pixels.mean(axis=0))) == DOMINANT[obj.color], (obj.id, k)


def test_masks_and_record_agree(rendered):
    spec, out, settings, timings = rendered
    record = _record(out, spec)
    assert record["render"] == {
        "engine": "CYCLES",
        "samples": settings.samples,
        "device": "CPU",
        "device_name": record["render"]["device_name"],
        "blender_version": bpy.app.version_string,
        "seconds": timings["render"],
    }
    assert record["image_size"] == [settings.width, settings.height]
    for k in range(4):
        mask = png.read_png16(out / f"masks/{spec.scene_id}/view_{k}.png")
        assert mask.shape == (settings.height, settings.width)
        assert set(np.unique(mask)) <= set(range(spec.n_objects + 1))
        for i, entry in enumerate(record["views"][k]["objects"]):
            assert entry["visible_pixels"] == int((mask == i + 1).sum())


def test_masks_lie_on_the_core_silhouettes(rendered):
    """Centroids project into their silhouettes (and masks when mostly visible); every mask
    pixel lies inside its object's silhouette grown by one pixel."""
    spec, out, settings, _ = rendered
    for view in camera.rig(settings.width, settings.height):
        mask = png.read_png16(out / f"masks/{spec.scene_id}/{view.view_id}.png")
        sils = visibility.silhouettes(spec.objects, view)
        fractions = visibility.visible_fractions(spec.objects, view, sils)
        uv = view.project(np.array([o.centroid for o in spec.objects]))[:, :2]
        rows, cols = np.mgrid[0 : settings.height, 0 : settings.width]
        for i, sil in enumerate(sils):
            full = np.zeros(mask.shape, dtype=bool)
            full[sil.y0 : sil.y1, sil.x0 : sil.x1] = sil.mask
            own = mask == i + 1
            assert own.sum() > 0 or fractions[i] == 0, (view.view_id, i)
            for region, needed in ((full, True), (own, fractions[i] >= 0.9)):
                if needed:
                    du = cols[region] + 0.5 - uv[i, 0]
                    dv = rows[region] + 0.5 - uv[i, 1]
                    assert np.sqrt(du**2 + dv**2).min() <= 2.0, (view.view_id, i)
            grown = full.copy()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    grown |= np.roll(np.roll(full, dy, axis=0), dx, axis=1)
            assert not (own & ~grown).any(), (view.view_id, i)


def test_mask_fractions_agree_with_the_gate(fifteen_draft):
    spec, out, settings, _ = fifteen_draft
    record = _record(out, spec)
    views = camera.rig(settings.width, settings.height)
    for view, entry in zip(views, record["views"], strict=True):
        gate = visibility.visible_fractions(spec.objects, view)
        masks = np.array([o["visible_pixels"] / o["silhouette_pixels"] for o in entry["objects"]])
        assert np.abs(masks - gate).max() <= 0.05, view.view_id


def test_metadata_validates_and_timings_add_up(eight):
    spec, out, _, timings = eight
    jsonschema.validate(_record(out, spec), records.schema())
    parts = ("build", "render", "readback", "constraints", "write", "checksums")
    assert set(timings) == {*parts, "total"}
    assert all(timings[p] >= 0 for p in parts) and timings["render"] > 0
    assert sum(timings[p] for p in parts) <= timings["total"]


def test_png16_round_trip_and_bytes(tmp_path):
    values = np.array([[0, 1, 2], [258, 65535, 15]], dtype=np.uint16)
    path = tmp_path / "mask.png"
    png.write_png16(path, values)
    assert np.array_equal(png.read_png16(path), values)
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]
    blob = path.read_bytes()
    # by hand: IHDR 3x2, depth 16, grey; rows = filter byte 0 + big-endian samples
    assert blob[12:16] == b"IHDR" and struct.unpack(">IIBB", blob[16:26]) == (3, 2, 16, 0)
    idat = blob.index(b"IDAT")
    (length,) = struct.unpack(">I", blob[idat - 4 : idat])
    raw = zlib.decompress(blob[idat + 4 : idat + 4 + length])
    assert raw == bytes([0, 0, 0, 0, 1, 0, 2, 0, 1, 2, 255, 255, 0, 15])
    with pytest.raises(ValueError, match="0..65535"):
        png.write_png16(path, np.array([[70000]]))


def test_png_reader_agrees_with_blender(eight):
    """core.png decodes Blender's own (filtered) PNGs exactly as Blender reads them."""
    spec, out, settings, _ = eight
    path = out / f"images/multi_view/{spec.scene_id}/view_1.png"
    ours = png.read_png(path)
    image = bpy.data.images.load(str(path))
    theirs = np.empty(settings.width * settings.height * 4, dtype=np.float32)
    image.pixels.foreach_get(theirs)
    bpy.data.images.remove(image)
    theirs = np.rint(theirs.reshape(settings.height, settings.width, 4)[::-1, :, :3] * 255)
    assert np.array_equal(ours, theirs.astype(np.uint8))


def _chunk_types(path: Path) -> list[bytes]:
    """The chunk types of a PNG file, in file order."""
    blob = path.read_bytes()
    assert blob[:8] == png.SIGNATURE
    kinds, pos = [], 8
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kinds.append(blob[pos + 4 : pos + 8])
        pos += 12 + length  # length, type, data, CRC
    return kinds


def test_images_carry_no_stamps_and_render_again_to_the_same_bytes(eight, tmp_path_factory):
    """No text chunks (Blender's date, render time, memory, Cycles' timings), so a second
    render of the same spec writes byte-identical image and mask files."""
    spec, out, settings, _ = eight
    _, again, _, _ = _render(tmp_path_factory, spec, settings)
    sid = spec.scene_id
    names = [f"images/single_view/{sid}.png"] + [
        f"{folder}/{sid}/view_{k}.png" for folder in ("images/multi_view", "masks")
        for k in range(4)
    ]
    for name in names:
        kinds = _chunk_types(out / name)
        assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds, name
        assert not {b"tEXt", b"zTXt", b"iTXt"} & set(kinds), (name, kinds)
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_stays_flat_over_scenes(tmp_path):
    """12 tiny scenes in one process: RSS grows by less than 80 MB after two warm-up scenes."""
    bpy.ops.wm.read_homefile(use_empty=True)
    settings = RenderSettings(48, 32, 1)
    rss = []
    for n in range(12):
        spec = make_scene(f"train_{n:05d}", fifteen() if n % 2 else EIGHT)
        pipeline.render_scene(spec, tmp_path, settings)
        rss.append(_rss_mb())
    assert rss[-1] - rss[1] < 80, rss
    # every scene was rendered in the one reused scene, which is left empty
    assert [s.name for s in bpy.data.scenes] == ["Scene", scene_mod.RENDER_SCENE]
    assert len(bpy.data.scenes[scene_mod.RENDER_SCENE].objects) == 0
    for kind in ("objects", "meshes", "materials", "lights", "cameras", "worlds", "node_groups"):
        assert len(getattr(bpy.data, kind)) == 0, kind


def test_persistent_data_changes_no_pixel_and_no_record(tmp_path):
    """GPU workers keep Cycles' session alive between renders (kernels load once): on the
    CPU, three scenes rendered both ways give the same files, byte for byte, but timings."""
    bpy.ops.wm.read_homefile(use_empty=True)
    specs = [make_scene(f"train_{n:05d}", fifteen() if n % 2 else EIGHT) for n in range(3)]
    outs = {}
    for persistent in (False, True):
        out = outs[persistent] = tmp_path / f"persistent_{persistent}"
        settings = RenderSettings(64, 48, 2, "CPU", persistent_data=persistent)
        for spec in specs:
            pipeline.render_scene(spec, out, settings)
        scene = bpy.data.scenes[scene_mod.RENDER_SCENE]
        assert scene.render.use_persistent_data is persistent
    assert same_output.differences(outs[False], outs[True]) == []
    assert len(same_output.output_files(outs[True])) == 3 * 10  # 5 images, 4 masks, 1 record


def test_depth_pass_lies_on_the_geometry_and_changes_no_other_file(tmp_path):
    """--passes depth on a portrait frame (96x128, which sees the sky and ground beyond
    65.535 m): 16-bit maps for the 4 views whose every pixel core.depth finds on its object's
    surface or on the ground plane, both kinds of sentinel present, and the images, masks
    and record the same as without the pass."""
    bpy.ops.wm.read_homefile(use_empty=True)
    spec = sampled("train", 6)
    outs = {}
    for on in (False, True):
        outs[on] = tmp_path / f"depth_{on}"
        pipeline.render_scene(spec, outs[on], RenderSettings(96, 128, 2, "CPU",
                                                             passes=("depth",) if on else ()))
    sid = spec.scene_id
    maps = [f"depth/{sid}/view_{k}.png" for k in range(4)]
    assert same_output.differences(outs[False], outs[True]) == [
        f"only in {outs[True]}: {rel}" for rel in maps]
    record = json.loads((outs[True] / f"metadata/{sid}.json").read_text())
    found = set()
    for k, rel in enumerate(maps):
        assert _chunk_types(outs[True] / rel)[0] == b"IHDR"
        mm = png.read_png16(outs[True] / rel)
        mask = png.read_png16(outs[True] / f"masks/{sid}/view_{k}.png")
        assert mm.shape == (128, 96)
        assert depth.view_faults(mm, mask, spec.objects, camera.View(k, 96, 128)) == [], rel
        assert np.all(mm[mask > 0] > 0)
        found.update(np.unique(mm[mask == 0]).tolist())
        # each object's nearest pixel is no nearer than its record's centroid depth allows
        for i, obj in enumerate(record["views"][k]["objects"]):
            if obj["visible_pixels"]:
                assert mm[mask == i + 1].min() / 1000 < obj["pixel_coords"][2]
    assert depth.NO_SURFACE in found and depth.FAR_MM in found
