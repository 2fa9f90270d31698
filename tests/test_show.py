"""The scene picture (dataset.picture, dataset.font, dataset.highlights), its PNG writer and
`headless/show.py`, on the fake dataset's folder (real sampled scenes, masks painted from
the silhouettes, records written by the real core).

Everything drawn is read back from the pixels: labels and text with the font's own table
(each glyph's bitmap is unique), outlines against mask edges found here independently.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scenegen_addon.core import layout, png
from scenegen_addon.dataset import font, highlights, picture, show
from scenegen_addon.dataset.loader import QRR, Scene

from tests import fake_dataset

ROOT = Path(__file__).resolve().parents[1]
SCENES = ("train_00000", "test_comp_00000")
READ_BACK = {font.glyph(c).tobytes(): c for c in font.FONT}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("show") / "data"
    fake_dataset.make_output(out, {"train": 1, "test_comp": 1})
    return out


def load(out: Path, scene_id: str) -> Scene:
    return Scene(out, layout.read_json(out / "metadata" / f"{scene_id}.json"))


def read_text(pixels: np.ndarray, x: int, y: int, n: int, colour) -> str:
    """n characters read from the pixels of `colour` at (x, y), by the font's bitmaps."""
    on = np.all(pixels == np.array(colour, dtype=np.uint8), axis=2)
    return "".join(
        READ_BACK.get(on[y : y + font.HEIGHT, x + k * font.ADVANCE : x + k * font.ADVANCE
                         + font.WIDTH].tobytes(), "\0") for k in range(n))


def edges(mask: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another value: each pixel against each neighbour,
    the image border padded with the pixel's own value."""
    padded = np.pad(mask.astype(np.int64), 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    found = np.zeros(mask.shape, dtype=bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        found |= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]] != centre
    return found & (mask > 0)


# ------------------------------------------------------------------ font and PNG


def test_every_glyph_is_unique_and_within_its_cell():
    assert len(READ_BACK) == len(font.FONT)  # so reading back is unambiguous
    for char in "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:()-~=<>%'":
        assert char in font.FONT, char
        assert font.glyph(char).shape == (font.HEIGHT, font.WIDTH)
    assert not font.glyph("A")[font.ASCENT:].any() and font.glyph("g")[font.ASCENT:].any()
    assert (font.glyph("\u2248") == font.glyph("?")).all()  # unknown -> "?"


def test_text_is_drawn_where_asked_and_clipped_at_the_edges():
    canvas = np.zeros((20, 40, 3), dtype=np.uint8)
    font.draw(canvas, "ab1", 3, 4, (9, 8, 7))
    assert read_text(canvas, 3, 4, 3, (9, 8, 7)) == "ab1"
    assert not canvas[:4].any() and not canvas[:, :3].any()
    font.draw(canvas, "xyz", 36, 15, (1, 1, 1))  # mostly outside: no error, clipped
    assert np.all(canvas[15:, 36:] == 1, axis=2).any() and not canvas[12:, 20:36].any()


@pytest.mark.parametrize("kind", range(5))
def test_rgb_png_round_trips_under_every_filter(tmp_path, kind):
    rs = np.random.default_rng(kind)
    smooth = np.add.outer(np.arange(37), np.arange(23))[:, :, None] * [3, 5, 7]
    image = ((smooth + rs.integers(0, 40, (37, 23, 3))) % 256).astype(np.uint8)
    blob = png.encode_png_rgb(image, kinds=(kind,))
    path = tmp_path / "x.png"
    path.write_bytes(blob)
    assert np.array_equal(png.read_png(path), image)
    pil = pytest.importorskip("PIL.Image")
    with pil.open(path) as img:  # an independent decoder
        assert img.mode == "RGB" and np.array_equal(np.asarray(img), image)


def test_rgb_writer_keeps_the_smallest_filter_and_refuses_bad_arrays(tmp_path):
    image = np.repeat(np.arange(0, 250, 2, dtype=np.uint8)[None, :, None], 30, axis=0)
    image = np.repeat(image, 3, axis=2)  # each row the same ramp: Up makes zeros of it
    sizes = [len(png.encode_png_rgb(image, kinds=(k,))) for k in range(5)]
    assert len(png.encode_png_rgb(image)) == min(sizes)
    png.write_png_rgb(tmp_path / "ramp.png", image)
    assert np.array_equal(png.read_png(tmp_path / "ramp.png"), image)
    for bad in (image[:, :, 0], image.astype(np.uint16), image[:, :, :2]):
        with pytest.raises(ValueError):
            png.encode_png_rgb(bad)


# ------------------------------------------------------------------ the picture


@pytest.mark.parametrize("scale", [1, 2])
def test_each_label_reads_its_object_index_on_the_pixel_of_its_projected_centroid(data, scale):
    for scene_id in SCENES:
        scene = load(data, scene_id)
        drawn = picture.scene_picture(scene, scale)
        assert len(drawn.labels) == 4 * scene.n_objects
        for k, view in enumerate(scene.views):
            labels = [lab for lab in drawn.labels if lab.view == k]
            depth = {o.id: o.pixel_coords[2] for o in view.objects}
            assert [depth[lab.object_id] for lab in labels] == sorted(depth.values(),
                                                                      reverse=True)
            x0, y0 = drawn.cells[k]
            under = np.repeat(np.repeat(view.image, scale, axis=0), scale, axis=1)
            under[edges(np.repeat(np.repeat(view.mask, scale, axis=0), scale, axis=1))] = (
                picture.OUTLINE)
            uvd = view.camera.project([o.centroid for o in scene.objects])
            whole = 0
            for later, lab in enumerate(labels, start=1):
                i = int(lab.object_id.split("_")[1])
                u, v = uvd[i, 0] * scale, uvd[i, 1] * scale
                assert (lab.centroid[0] - x0, lab.centroid[1] - y0) == (int(u), int(v))
                bx0, by0, bx1, by1 = lab.box
                assert bx0 <= lab.centroid[0] < bx1 and by0 <= lab.centroid[1] < by1
                if any(_overlap(lab.box, other.box) for other in labels[later:]):
                    continue  # nearer labels are drawn over it; it is whole when none is
                whole += 1
                assert read_text(drawn.pixels, bx0 + 1, by0 + 1, len(str(i)),
                                 picture.LABEL_TEXT) == str(i), (scene_id, k, lab)
                if not any(_overlap(lab.box, other.box) for other in labels[: later - 1]):
                    _assert_rim(drawn.pixels[by0:by1, bx0:bx1],
                                under[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0])
            assert whole >= scene.n_objects // 2


def _assert_rim(box: np.ndarray, under: np.ndarray) -> None:
    """Every pixel of a label's box is ink, rim (dark, touching ink) or the picture below;
    all ink is surrounded by ink or rim."""
    ink = np.all(box == np.array(picture.LABEL_TEXT, dtype=np.uint8), axis=2)
    rim = np.all(box == np.array(picture.LABEL_BOX, dtype=np.uint8), axis=2) & ~ink
    assert np.all(ink | rim | np.all(box == under, axis=2))
    near_ink = np.zeros(ink.shape, dtype=bool)
    padded = np.pad(ink, 1)
    for dy in range(3):
        for dx in range(3):
            near_ink |= padded[dy : dy + ink.shape[0], dx : dx + ink.shape[1]]
    assert rim.any() and (near_ink == (ink | rim)).all()


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("scale", [1, 2])
def test_outline_pixels_are_exactly_the_mask_edges(data, scale):
    scene = load(data, "test_comp_00000")
    drawn = picture.scene_picture(scene, scale)
    for k, view in enumerate(scene.views):
        x0, y0 = drawn.cells[k]
        image = np.repeat(np.repeat(view.image, scale, axis=0), scale, axis=1)
        mask = np.repeat(np.repeat(view.mask, scale, axis=0), scale, axis=1)
        cell = drawn.pixels[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
        free = np.ones(mask.shape, dtype=bool)  # not under a label
        for lab in drawn.labels:
            if lab.view == k:
                free[lab.box[1] - y0 : lab.box[3] - y0, lab.box[0] - x0 : lab.box[2] - x0] = 0
        edge = edges(mask)
        assert edge.any() and (edge & free).any()
        white = np.all(cell == np.array(picture.OUTLINE, dtype=np.uint8), axis=2)
        assert white[edge & free].all()
        assert np.array_equal(cell[~edge & free], image[~edge & free])
        # each object's outline surrounds its mask pixels (every object is outlined)
        for i in range(scene.n_objects):
            assert (edge & (mask == i + 1)).any()


def test_header_captions_and_panel_read_back_from_the_pixels(data):
    scene = load(data, "train_00000")
    drawn = picture.scene_picture(scene)
    for text in drawn.texts:
        assert read_text(drawn.pixels, text.x, text.y, len(text.text), text.colour) == text.text
        assert text.x + font.text_width(text.text) <= drawn.pixels.shape[1] - picture.MARGIN
    lines = [t.text for t in drawn.texts]
    assert lines[0] == "train_00000: 8 objects, tau 0.1"
    assert [t for t in lines if t.startswith("view ")] == [f"view {k}" for k in range(4)]
    panel = " ".join(line.strip() for line in lines[lines.index("view 3") + 1 :])
    names = highlights.object_names(scene)
    assert panel == " ".join(
        ["Objects: " + ", ".join(names[o.id] for o in scene.objects) + "."]
        + highlights.relation_lines(scene))
    grid_bottom = max(y for _, y in drawn.cells) + scene.image_size[1]
    assert all(t.y >= grid_bottom for t in drawn.texts[6:])  # the panel is under the grid


# ------------------------------------------------------------------ the relations


def test_the_hardest_qrr_is_the_highest_difficulty_then_the_ratio_nearest_one():
    def qrr(difficulty, ratio, n):
        return QRR("world", (f"obj_{n}", "obj_1"), ("obj_2", "obj_3"), "dist3D",
                   "~=", ratio, difficulty, False)

    records = [qrr(5, 1.07, 0), qrr(6, 1.04, 1), qrr(6, 0.97, 2), qrr(6, 1.02, 3),
               qrr(6, 1 / 1.02, 4), qrr(4, 1.0, 5)]
    assert highlights.hardest_qrr(records) is records[3]  # 1/1.02 ties 1.02: first wins
    assert highlights.hardest_qrr(records[4:]) is records[4]
    assert highlights.hardest_qrr([]) is None


def test_relation_lines_state_the_chosen_records_in_words(data):
    for scene_id in SCENES:
        scene = load(data, scene_id)
        names = highlights.object_names(scene)
        world = scene.record["constraints"]["world"]
        top = max(r["difficulty"] for r in world["qrr"])
        spread = min(max(r["ratio"], 1 / r["ratio"]) for r in world["qrr"]
                     if r["difficulty"] == top)
        hardest = next(r for r in world["qrr"] if r["difficulty"] == top
                       and max(r["ratio"], 1 / r["ratio"]) == spread)
        (a, b), (c, d) = hardest["pair1"], hardest["pair2"]
        clock = next(r for r in world["trr"]
                     if (r["target"], r["ref1"], r["ref2"]) == (c, a, b))
        counts = [len(v["occlusion"]) for v in scene.record["constraints"]["views"]]
        busiest = counts.index(max(counts))
        occlusions = sorted(scene.record["constraints"]["views"][busiest]["occlusion"],
                            key=lambda r: -r["fraction"])
        phrase = {"<": ("nearer to", "than", "to"), ">": ("farther from", "than", "from"),
                  "~=": ("about as far from", "as", "from")}[hardest["comparator"]]
        lines = highlights.relation_lines(scene)
        assert lines[0] == (
            f"Hardest distance comparison (difficulty {top}, ratio {hardest['ratio']:g}): "
            f"{names[a]} is {phrase[0]} {names[b]} {phrase[1]} {names[c]} is {phrase[2]} "
            f"{names[d]}.")
        assert lines[1] == (f"Clock: standing at {names[a]} facing {names[b]}, {names[c]} "
                            f"is at {clock['hour']} o'clock.")
        assert len(lines) == 2 + min(len(occlusions), highlights.MAX_OCCLUSIONS) + (
            len(occlusions) > highlights.MAX_OCCLUSIONS)
        for line, r in zip(lines[2:], occlusions, strict=False):
            assert line.startswith(f"View {busiest}: {names[r['occluder']]} hides "
                                   f"{round(100 * r['fraction'])}% of {names[r['occluded']]} "
                                   f"({r['pixels']} pixels)")
        for obj in scene.objects:  # a name singles the object out and carries its index
            assert names[obj.id].endswith(f" ({obj.index})")


def test_a_scene_without_occlusions_says_so(data):
    scene = load(data, "train_00000")
    record = dict(scene.record, constraints=dict(scene.record["constraints"]))
    record["constraints"]["views"] = [dict(v, occlusion=[]) for v in
                                      scene.record["constraints"]["views"]]
    lines = highlights.relation_lines(Scene(data, record))
    assert lines[-1] == "Occlusion: none in any view." and len(lines) == 3


def test_the_panel_preview_lists_the_pictures_relations(data):
    """The Blender panel's summary (operators.preview, from the sampled spec alone) states
    the same qrr and trr sentences as the picture of the rendered scene."""
    pytest.importorskip("bpy")
    from scenegen_addon.core.spec import SceneSpec
    from scenegen_addon.operators import preview

    scene = load(data, "train_00000")
    spec = SceneSpec.from_record(scene.record)
    found = preview.preview_constraints(spec)
    assert found["world"] == scene.record["constraints"]["world"]
    summary = preview.summary_lines(spec, found)
    assert all(len(line) <= preview.SUMMARY_WIDTH for line in summary[2:])
    assert " ".join(line.strip() for line in summary[2:]) == " ".join(
        highlights.relation_lines(scene)[:2])


# ------------------------------------------------------------------ headless/show.py


def run_show(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH="")
    return subprocess.run([sys.executable, str(ROOT / "headless" / "show.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_show_writes_the_picture_to_out_and_by_default_to_the_current_folder(data, tmp_path):
    out = tmp_path / "pictures" / "scene.png"
    done = run_show(data, "train_00000", "--out", out)
    assert done.returncode == 0, done.stderr
    expected = picture.scene_picture(load(data, "train_00000")).pixels
    assert np.array_equal(png.read_png(out), expected)
    assert done.stdout.splitlines()[-1] == f"wrote {out}"
    here = tmp_path / "here"
    here.mkdir()
    done = run_show(data, "train_00000", cwd=here)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in here.iterdir()] == ["train_00000.png"]
    assert np.array_equal(png.read_png(here / "train_00000.png"), expected)


def test_show_refuses_bad_arguments_naming_them(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(data)
    before = sorted(p for p in data.rglob("*"))
    cases = [
        ([str(tmp_path / "missing"), "train_00000"], "DIR"),
        ([str(data), "train_00007"], "SCENE_ID"),
        ([str(data), "../etc"], "SCENE_ID"),
        ([str(data), "train_00000", "--out", str(data / "x.png")], "--out"),
        ([str(data), "train_00000", "--out", str(link / "images" / "x.png")], "--out"),
        ([str(link), "train_00000", "--out", str(data / "metadata" / "y.png")], "--out"),
        ([str(data), "train_00000", "--out", str(tmp_path)], "--out"),
    ]
    for argv, named in cases:
        assert show.main(argv) == 2, argv
        assert f"error: {named}: " in capsys.readouterr().err, argv
    assert sorted(p for p in data.rglob("*")) == before  # nothing written inside DIR
    done = run_show(tmp_path / "missing", "train_00000")
    assert done.returncode == 2 and "error: DIR: " in done.stderr


def test_the_committed_example_picture_is_small_and_a_scene_picture():
    path = ROOT / "docs" / "scene_example.png"
    assert path.stat().st_size < 150_000
    pixels = png.read_png(path)
    assert pixels.ndim == 3 and pixels.shape[2] == 3
    # the header line, drawn by the picture, reads back as a scene id and object count
    header = read_text(pixels, picture.MARGIN, picture.MARGIN, 40, picture.TEXT).rstrip()
    scene_id, _, rest = header.partition(": ")
    layout.check_scene_id(scene_id)
    assert " objects, tau " in rest
