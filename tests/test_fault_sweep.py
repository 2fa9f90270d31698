"""Fault injection: every damage to a valid output folder is caught, named by its file.

Each damage edits its own copy of a small sound folder (tests/fake_dataset.py: the real
plan, sampler, labels and merge; images painted from the masks) and runs the validate
command: it must exit 1 (CORRUPT), print every expected line, and never fail to check a file
(no "could not be checked", which is how a crash would show). The issue's list of missed
damages (item 5) is in ISSUE_DAMAGES; the sweep holds all of them and many more.
A second part does the same with scenes rendered by Cycles, for the damages that only the
image content shows.
"""

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from scenegen_addon.core import layout, merge, plan, png
from scenegen_addon.launcher import validate

from tests import fake_dataset

SEED = 111  # a plan whose scenes are small (5, 4 and 4 objects): a fast sweep
COUNTS = {"train": 2, "test_hard": 1}
S0, S1, H0 = "train_00000", "train_00001", "test_hard_00000"
DAMAGES: dict = {}  # name -> (function of the output folder, expected lines)


def damage(name: str, *expected: str):
    """Register a damage; each expected text must start a line of the validator's output."""
    def register(function):
        assert name not in DAMAGES, name
        DAMAGES[name] = (function, expected)
        return function
    return register


# --- helpers --------------------------------------------------------------------------------

def image(scene: str, k: int) -> str:
    return f"images/multi_view/{scene}/view_{k}.png"


def mask(scene: str, k: int) -> str:
    return f"masks/{scene}/view_{k}.png"


def meta(scene: str) -> str:
    return f"metadata/{scene}.json"


def edit_json(out: Path, rel: str, change) -> None:
    """Apply `change` to the parsed file (it edits in place or returns the new document)."""
    data = json.loads((out / rel).read_text(encoding="utf-8"))
    new = change(data)
    (out / rel).write_text(json.dumps(data if new is None else new), encoding="utf-8")


def edit_image(out: Path, rel: str, change) -> None:
    (out / rel).write_bytes(fake_dataset.encode_rgb(change(png.read_png(out / rel))))


def edit_mask(out: Path, rel: str, change) -> None:
    png.write_png16(out / rel, change(png.read_png16(out / rel)))


def swap(out: Path, a: str, b: str) -> None:
    first = (out / a).read_bytes()
    (out / a).write_bytes((out / b).read_bytes())
    (out / b).write_bytes(first)


def replan(out: Path, change) -> None:
    """Edit the plan's settings and give it the fingerprint of the edited settings."""
    def edit(document):
        change(document["settings"])
        document["fingerprint"] = plan.fingerprint(document["settings"])
    edit_json(out, ".scenegen/plan.json", edit)


def set_key(path: list, value):
    """A change that sets document[path...] = value."""
    def change(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


# --- images (format and content) ----------------------------------------------------------

def _fits(k: int, j: int, scene: str = S0) -> str:
    return f"CORRUPT {image(scene, k)}: does not show the scene of {mask(scene, k)}: edge contrast"


damage("views swapped within a scene", _fits(1, 2), _fits(2, 1))(
    lambda out: swap(out, image(S0, 1), image(S0, 2)))
damage("views swapped between scenes", _fits(2, 2, S0), _fits(2, 2, S1))(
    lambda out: swap(out, image(S0, 2), image(S1, 2)))
damage("image replaced by another scene's image", _fits(3, 3, S1))(
    lambda out: shutil.copy(out / image(H0, 3), out / image(S1, 3)))
damage("image replaced by a valid all-black PNG",
       f"CORRUPT {image(S0, 3)}: the image is blank")(
    lambda out: edit_image(out, image(S0, 3), np.zeros_like))
damage("bytes after the PNG's end", f"CORRUPT {image(S0, 1)}: 7 bytes after the IEND chunk")(
    lambda out: (out / image(S0, 1)).write_bytes((out / image(S0, 1)).read_bytes() + b"garbage"))
damage("truncated image", f"CORRUPT {image(S1, 0)}: truncated (no IEND chunk)")(
    lambda out: (out / image(S1, 0)).write_bytes((out / image(S1, 0)).read_bytes()[:-20]))
damage("image of the wrong size", f"CORRUPT {image(H0, 1)}: size 120x80, expected 240x160")(
    lambda out: (out / image(H0, 1)).write_bytes(fake_dataset.rgb_png(120, 80)))
damage("image with a flipped bit", f"CORRUPT {image(S0, 2)}: bad CRC in chunk IDAT")(
    lambda out: _flip_byte(out / image(S0, 2), 60))
damage("image as 16-bit grey", f"CORRUPT {image(S0, 0)}: bit depth 16 colour type 0")(
    lambda out: shutil.copy(out / mask(S0, 0), out / image(S0, 0)))
damage("single view differs from view 0",
       f"CORRUPT images/single_view/{S1}.png: differs from view_0")(
    lambda out: shutil.copy(out / image(S1, 1), out / f"images/single_view/{S1}.png"))
damage("single view and view 0 both replaced by view 1", _fits(0, 0, S1))(
    lambda out: [shutil.copy(out / image(S1, 1), out / rel)
                 for rel in (image(S1, 0), f"images/single_view/{S1}.png")])
damage("image colours inverted", f"CORRUPT {image(S0, 1)}: objects are not in their colours")(
    lambda out: edit_image(out, image(S0, 1), lambda a: 255 - a))
damage("image mirrored", _fits(3, 3, H0))(
    lambda out: edit_image(out, image(H0, 3), lambda a: np.ascontiguousarray(a[:, ::-1])))
damage("image shifted by 4 pixels",
       f"CORRUPT {image(H0, 1)}: is shifted by (4, 0) px against {mask(H0, 1)}")(
    lambda out: edit_image(out, image(H0, 1), lambda a: np.roll(a, 4, axis=1)))
damage("image tinted red", f"CORRUPT {image(H0, 2)}: the ground under {mask(H0, 2)} is not "
       "grey")(lambda out: edit_image(
           out, image(H0, 2), lambda a: np.minimum(a.astype(int) + [45, 0, 0], 255).astype(
               np.uint8)))
damage("image deleted", f"CORRUPT {image(S1, 2)}: missing")(
    lambda out: (out / image(S1, 2)).unlink())
damage("image emptied", f"CORRUPT {image(S0, 3)}: not a PNG file")(
    lambda out: (out / image(S0, 3)).write_bytes(b""))
damage("image replaced by a GIF", f"CORRUPT {image(H0, 0)}: not a PNG file")(
    lambda out: (out / image(H0, 0)).write_bytes(b"GIF89a" + bytes(100)))


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# --- masks ----------------------------------------------------------------------------------

def _clear(a):
    a[a == 1] = 0
    return a


def _overflow(a):
    a[0, 0] = 9
    return a


damage("mask object erased", f"CORRUPT {mask(S1, 3)}: obj_0 has 0 pixels, metadata says")(
    lambda out: edit_mask(out, mask(S1, 3), _clear))
damage("masks swapped within a scene", f"CORRUPT {mask(S0, 1)}: obj_", f"CORRUPT {mask(S0, 2)}:",
       _fits(1, 1), _fits(2, 2))(lambda out: swap(out, mask(S0, 1), mask(S0, 2)))
damage("mask truncated", f"CORRUPT {mask(H0, 0)}: truncated (no IEND chunk)")(
    lambda out: (out / mask(H0, 0)).write_bytes((out / mask(H0, 0)).read_bytes()[:-30]))
damage("mask value of no object", f"CORRUPT {mask(S1, 1)}: value 9 but the scene has 4 objects")(
    lambda out: edit_mask(out, mask(S1, 1), _overflow))
damage("mask deleted", f"CORRUPT {mask(S0, 2)}: missing")(
    lambda out: (out / mask(S0, 2)).unlink())
damage("mask as an RGB image", f"CORRUPT {mask(S0, 0)}: bit depth 8 colour type 2")(
    lambda out: shutil.copy(out / image(S0, 0), out / mask(S0, 0)))
damage("bytes after a mask's end", f"CORRUPT {mask(H0, 3)}: 1 bytes after the IEND chunk")(
    lambda out: (out / mask(H0, 3)).write_bytes((out / mask(H0, 3)).read_bytes() + b"\n"))
damage("mask shifted by 5 pixels",
       f"CORRUPT {image(S1, 2)}: is shifted by (0, -5) px against {mask(S1, 2)}")(
    lambda out: edit_mask(out, mask(S1, 2), lambda a: np.roll(a, 5, axis=0)))


# --- metadata -------------------------------------------------------------------------------

def _resampled(field: str) -> str:
    return f"not the scene its seed gives: {field}: stored"


def _meta_line(scene: str, text: str) -> str:
    return f"CORRUPT {meta(scene)}: {text}"


damage("metadata truncated", _meta_line(S0, "does not parse"))(
    lambda out: (out / meta(S0)).write_bytes((out / meta(S0)).read_bytes()[:500]))
damage("metadata not text", _meta_line(S1, "does not parse"))(
    lambda out: (out / meta(S1)).write_bytes(b"\xff\xfe\x00garbage"))
damage("metadata an empty list", _meta_line(H0, "schema: "))(
    lambda out: (out / meta(H0)).write_text("[]"))
OTHER = {"color": {"red": "cyan"}, "material": {"rubber": "metal", "metal": "rubber"},
         "shape": {"cube": "sphere", "sphere": "cylinder", "cylinder": "cube"}}


def _other(field: str, value):
    """A value of `field` other than `value`: the edit always changes the record."""
    if field in OTHER:
        return OTHER[field].get(value, "red")
    if field == "rgb":
        return [(v + 25) % 256 for v in value]
    if field in ("3d_coords", "centroid"):  # on the ground, at its height
        return [value[0] + 0.25, value[1] + 0.25, value[2]]
    if isinstance(value, list):
        return [v + 0.25 for v in value]
    return value + 12.5


for _field, _leaf, _scene in [
    ("color", "", S0), ("rgb", "[0]", S1), ("material", "", S0), ("rotation", "", H0),
    ("shape", "", S1), ("size_value", "", S0), ("3d_coords", "[0]", H0),
    ("centroid", "[1]", S1),
]:
    damage(f"object {_field} edited",
           _meta_line(_scene, _resampled(f"objects[1].{_field}{_leaf}")))(
        lambda out, f=_field, s=_scene: edit_json(
            out, meta(s), lambda d: d["objects"][1].__setitem__(f, _other(f, d["objects"][1][f]))))
damage("object colour and rgb edited together", _meta_line(S0, _resampled("objects[0].color")),
       _meta_line(S0, _resampled("objects[0].rgb[0]")))(
    lambda out: edit_json(out, meta(S0), lambda d: d["objects"][0].update(
        color="yellow", rgb=[255, 238, 51])))
for _field, _leaf, _index in [("energy", "", 0), ("location", "[0]", 1), ("size", "", 2),
                              ("rotation", "[0]", 0)]:
    damage(f"light {_field} edited",
           _meta_line(S1, _resampled(f"lights[{_index}].{_field}{_leaf}")))(
        lambda out, f=_field, i=_index: edit_json(
            out, meta(S1), lambda d: d["lights"][i].__setitem__(f, _other(f, d["lights"][i][f]))))
damage("render.samples edited", _meta_line(H0, "render.samples is 64, the plan says 2"))(
    lambda out: edit_json(out, meta(H0), set_key(["render", "samples"], 64)))
damage("render.engine edited", _meta_line(S0, "render.engine is 'BLENDER_EEVEE', the plan "
                                              "says 'CYCLES'"))(
    lambda out: edit_json(out, meta(S0), set_key(["render", "engine"], "BLENDER_EEVEE")))
damage("render.blender_version edited", _meta_line(S1, "render.blender_version is '4.2.0'"))(
    lambda out: edit_json(out, meta(S1), set_key(["render", "blender_version"], "4.2.0")))
damage("camera position edited", _meta_line(S0, _resampled("views[1].camera.position[0]")))(
    lambda out: edit_json(out, meta(S0), set_key(["views", 1, "camera", "position"],
                                                 [1.0, 2.0, 3.0])))
damage("camera lens edited", _meta_line(H0, _resampled("views[3].camera.lens_mm")))(
    lambda out: edit_json(out, meta(H0), set_key(["views", 3, "camera", "lens_mm"], 50.0)))
damage("view directions edited", _meta_line(S1, _resampled("views[2].directions.left[0]")))(
    lambda out: edit_json(out, meta(S1), set_key(["views", 2, "directions", "left"],
                                                 [0.5, 0.5, 0.0])))
damage("world qrr comparator edited", _meta_line(
    S0, "label mismatch: metadata.constraints.world.qrr[0].comparator: stored '<'"))(
    lambda out: edit_json(out, meta(S0), lambda d: d["constraints"]["world"]["qrr"][0].update(
        comparator="<")))
damage("view axial relation edited", _meta_line(
    S0, "label mismatch: metadata.constraints.views[2].axial[0].relation: stored 'left_of'"))(
    lambda out: edit_json(out, meta(S0), lambda d: d["constraints"]["views"][2]["axial"][0]
                          .update(relation="left_of")))
damage("trr hour out of range", _meta_line(
    H0, "schema: constraints/world/trr/3/hour: 13 is more than the maximum of 12"))(
    lambda out: edit_json(out, meta(H0), lambda d: d["constraints"]["world"]["trr"][3].update(
        hour=13)))
damage("derived ratio edited", _meta_line(
    S1, "label mismatch: metadata.constraints.world.qrr[1].ratio: stored 9.5"))(
    lambda out: edit_json(out, meta(S1), lambda d: d["constraints"]["world"]["qrr"][1].update(
        ratio=9.5)))
damage("retries edited", _meta_line(S0, _resampled("retries")))(
    lambda out: edit_json(out, meta(S0), set_key(["retries"], 3)))
damage("seed edited", _meta_line(S1, _resampled("seed")))(
    lambda out: edit_json(out, meta(S1), set_key(["seed"], 12345)))
damage("scene_id with ../", _meta_line(H0, "schema: scene_id"))(
    lambda out: edit_json(out, meta(H0), set_key(["scene_id"], "../../outside")))
damage("scene_id of another scene", _meta_line(S0, "scene_id is 'train_00001', planned "
                                                   "'train_00000'"))(
    lambda out: edit_json(out, meta(S0), set_key(["scene_id"], S1)))
damage("n_objects edited", _meta_line(S1, "n_objects is 5, planned 4"))(
    lambda out: edit_json(out, meta(S1), set_key(["n_objects"], 5)))
damage("image_size edited", _meta_line(H0, "image_size [480, 320], config [240, 160]"))(
    lambda out: edit_json(out, meta(H0), set_key(["image_size"], [480, 320])))
damage("metadata names another image", _meta_line(S0, "names files"))(
    lambda out: edit_json(out, meta(S0), set_key(["views", 0, "image"], image(S1, 0))))
damage("visible_pixels edited", f"CORRUPT {mask(S1, 0)}: obj_2 has")(
    lambda out: edit_json(out, meta(S1), lambda d: d["views"][0]["objects"][2].update(
        visible_pixels=d["views"][0]["objects"][2]["visible_pixels"] + 1)))
damage("metadata deleted after the merge",
       f"CORRUPT splits/train.json: entry 1: scene {S1} is not complete")(
    lambda out: (out / meta(S1)).unlink())
damage("object appended", _meta_line(S0, "6 objects, n_objects says 5"))(
    lambda out: edit_json(out, meta(S0), lambda d: d["objects"].append(dict(d["objects"][0]))))


# --- split files ----------------------------------------------------------------------------

TRAIN = "splits/train.json"


def _split_line(text: str, rel: str = TRAIN) -> str:
    return f"CORRUPT {rel}: {text}"


damage("split entry scene_id is a list",
       _split_line("entry 0: scene id ['train_00000'] is not of the form <split>_<index>"))(
    lambda out: edit_json(out, TRAIN, lambda d: d[0].update(scene_id=[S0])))
damage("split entry scene_id with ../",
       _split_line("entry 1: scene id '../../outside/x' is not of the form"))(
    lambda out: edit_json(out, TRAIN, lambda d: d[1].update(scene_id="../../outside/x")))
damage("split file an object", _split_line("is not a JSON list: {}"))(
    lambda out: (out / TRAIN).write_text("{}"))
damage("split entry duplicated", _split_line(f"entry 2: duplicate of scene {S0}"))(
    lambda out: edit_json(out, TRAIN, lambda d: d + [d[0]]))
damage("split entries out of order", _split_line("entries are not in index order"))(
    lambda out: edit_json(out, TRAIN, lambda d: d[::-1]))
damage("split entry field edited", _split_line(f"entry 0 ({S0}) differs from the planned entry"))(
    lambda out: edit_json(out, TRAIN, lambda d: d[0].update(n_objects=9)))
damage("split file deleted", _split_line("missing"))(lambda out: (out / TRAIN).unlink())
damage("split file truncated", _split_line("does not parse", "splits/test_hard.json"))(
    lambda out: (out / "splits/test_hard.json").write_text("[{\"scene_id\": "))
damage("complete scene left out of its split",
       _split_line(f"complete scene {S1} is not listed"))(
    lambda out: edit_json(out, TRAIN, lambda d: d[:1]))
damage("entry of another split",
       _split_line(f"entry 0: scene {H0} is planned in test_hard, not train"))(
    lambda out: edit_json(out, TRAIN, lambda d: [
        json.loads((out / "splits/test_hard.json").read_text())[0], *d]))
damage("split entry a string", _split_line("entry 0: is not a JSON object: 'train_00000'"))(
    lambda out: edit_json(out, TRAIN, lambda d: [S0, d[1]]))
damage("split entry of an unplanned scene",
       _split_line("entry 2: scene train_00005 is not in the plan"))(
    lambda out: edit_json(out, TRAIN, lambda d: d + [dict(d[1], scene_id="train_00005")]))
damage("split entry path edited", _split_line(f"entry 1 ({S1}) differs from the planned entry"))(
    lambda out: edit_json(out, TRAIN, lambda d: d[1].update(metadata="../metadata/x.json")))


# --- dataset_info.json ----------------------------------------------------------------------

INFO = "dataset_info.json"


def _info_line(text: str) -> str:
    return f"CORRUPT {INFO}: {text}"


def _computed(field: str) -> str:
    return _info_line(f"not what the merge computes: {field}: stored")


damage("dataset_info an empty list", _info_line("is not a JSON object: []"))(
    lambda out: (out / INFO).write_text("[]"))
damage("dataset_info failed holds a string",
       _info_line("failed entry 0: is not {scene_id, reason}: 'x'"),
       _info_line("not what the merge computes: failed: stored 1 entries, recomputed 0"))(
    lambda out: edit_json(out, INFO, set_key(["failed"], ["x"])))
damage("dataset_info statistics edited", _computed("statistics.train.object_counts.4"))(
    lambda out: edit_json(out, INFO, set_key(["statistics", "train", "object_counts", "4"], 2)))
damage("dataset_info mean visible fraction nudged",
       _computed("statistics.test_hard.mean_visible_fraction"))(
    lambda out: edit_json(out, INFO, lambda d: d["statistics"]["test_hard"].update(
        mean_visible_fraction=d["statistics"]["test_hard"]["mean_visible_fraction"] - 1e-6)))
damage("dataset_info config edited", _computed("config.samples"))(
    lambda out: edit_json(out, INFO, set_key(["config", "samples"], 64)))
damage("dataset_info config resolution edited", _computed("config.resolution[0]"))(
    lambda out: edit_json(out, INFO, set_key(["config", "resolution"], [480, 160])))
damage("dataset_info fingerprint edited", _computed("fingerprint"))(
    lambda out: edit_json(out, INFO, set_key(["fingerprint"], "0" * 64)))
damage("dataset_info split count edited", _computed("splits.train"))(
    lambda out: edit_json(out, INFO, set_key(["splits", "train"], 3)))
damage("dataset_info created not a time",
       _info_line("created 'yesterday' is not an ISO 8601 time"))(
    lambda out: edit_json(out, INFO, set_key(["created"], "yesterday")))
damage("dataset_info deleted", _info_line("missing"))(lambda out: (out / INFO).unlink())
damage("dataset_info timing edited", _computed("timing.render_seconds"))(
    lambda out: edit_json(out, INFO, set_key(["timing", "render_seconds"], 1.0)))
damage("dataset_info generator edited", _computed("generator.version"))(
    lambda out: edit_json(out, INFO, set_key(["generator", "version"], "9.9")))
damage("dataset_info truncated", _info_line("does not parse"))(
    lambda out: (out / INFO).write_text((out / INFO).read_text()[:100]))
damage("dataset_info extra key", _computed("extra"))(
    lambda out: edit_json(out, INFO, set_key(["extra"], 1)))
damage("dataset_info failed list with a made-up scene",
       _info_line("failed entry 0: scene id '../x' is not of the form"),
       _info_line("not what the merge computes: failed: stored 1 entries"))(
    lambda out: edit_json(out, INFO, set_key(["failed"], [{"scene_id": "../x", "reason": "r"}])))


# --- checksums.sha256 ----------------------------------------------------------------------
# Its lines: the 10 files of each scene (single view, views 0-3, masks 0-3, metadata) in plan
# order (S0 lines 1-10, S1 11-20, H0 21-30), then the split files and dataset_info.json.

SUMS = "checksums.sha256"


def _sums_line(text: str) -> str:
    return f"CORRUPT {SUMS}: {text}"


def edit_lines(out: Path, change) -> None:
    """Apply `change` to the list of lines (each with its newline) of checksums.sha256."""
    lines = (out / SUMS).read_text(encoding="utf-8").splitlines(keepends=True)
    (out / SUMS).write_text("".join(change(lines)), encoding="utf-8")


def resum(out: Path, rel: str) -> None:
    """checksums.sha256's line of `rel` given the file's SHA-256 now: an edit that hides
    itself from `sha256sum -c` (the manifests still hold the true hashes)."""
    digest = hashlib.sha256((out / rel).read_bytes()).hexdigest()
    edit_lines(out, lambda lines: [f"{digest}  {rel}\n" if line.endswith(f"  {rel}\n")
                                   else line for line in lines])


def _other_digest(line: str) -> str:
    return ("0" if line[0] != "0" else "1") + line[1:]


def _split_idat(path: Path) -> None:
    """The same pixels in other bytes: the image data split into two IDAT chunks (a valid
    PNG every check but the checksum accepts)."""
    data = path.read_bytes()
    at = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[at:at + 4])[0]
    body = data[at + 8:at + 8 + length]
    chunks = b"".join(struct.pack(">I", len(part)) + b"IDAT" + part
                      + struct.pack(">I", zlib.crc32(b"IDAT" + part))
                      for part in (body[:length // 2], body[length // 2:]))
    path.write_bytes(data[:at] + chunks + data[at + 12 + length:])


damage("checksums deleted", _sums_line("missing"))(lambda out: (out / SUMS).unlink())
damage("checksums line altered", _sums_line(f"line 12: {image(S1, 0)} has the SHA-256"))(
    lambda out: edit_lines(out, lambda lines: [
        _other_digest(line) if n == 11 else line for n, line in enumerate(lines)]))
damage("checksums line missing", _sums_line(f"does not list {image(H0, 3)}"))(
    lambda out: edit_lines(out, lambda lines: lines[:24] + lines[25:]))
damage("checksums garbage", _sums_line("line 1 is not '<SHA-256>  <file>'"))(
    lambda out: (out / SUMS).write_bytes(bytes(range(256)) * 4))
damage("checksums emptied", _sums_line(f"does not list images/single_view/{S0}.png"))(
    lambda out: (out / SUMS).write_bytes(b""))
damage("checksums lines swapped", _sums_line("its lines are not in the merge's order"))(
    lambda out: edit_lines(out, lambda lines: [lines[1], lines[0], *lines[2:]]))
damage("checksums line repeated", _sums_line(f"line 34 lists {image(S0, 1)} a second time"))(
    lambda out: edit_lines(out, lambda lines: [*lines, lines[2]]))
damage("checksums line of a file not in the dataset",
       _sums_line("line 34 lists 'notes.txt', not a file the merge lists"))(
    lambda out: edit_lines(out, lambda lines: [*lines, "0" * 64 + "  notes.txt\n"]))
damage("checksums last newline dropped", _sums_line("line 33 is not '<SHA-256>  <file>'"))(
    lambda out: edit_lines(out, lambda lines: [*lines[:-1], lines[-1].rstrip("\n")]))
damage("checksums of the split file stale",
       _split_line(f"entry 0 ({S0}) differs from the planned entry"),
       _sums_line("line 31: splits/train.json has the SHA-256"))(
    lambda out: edit_json(out, TRAIN, lambda d: d[0].update(tau=0.5)))
damage("image re-encoded: same pixels, other bytes",
       _sums_line(f"line 5: {image(S0, 3)} has the SHA-256"))(
    lambda out: _split_idat(out / image(S0, 3)))


# --- the plan and the failures --------------------------------------------------------------

PLAN = ".scenegen/plan.json"
FAILURES = ".scenegen/failures.json"


def _plan_line(text: str) -> str:
    return f"CORRUPT {PLAN}: {text}"


damage("plan count written as a string",
       _plan_line("its settings give no plan: count of split 'train' must be a positive "
                  "integer, got '2'"))(
    lambda out: replan(out, lambda s: s["counts"].update(train="2")))
damage("plan count edited, fingerprint kept",
       _plan_line("its settings do not give its fingerprint"))(
    lambda out: edit_json(out, PLAN, lambda d: d["settings"]["counts"].update(train=3)))
damage("plan truncated", _plan_line("is not valid JSON"))(
    lambda out: (out / PLAN).write_text((out / PLAN).read_text()[:50]))
damage("plan an empty list", _plan_line("has no valid 'fingerprint' or 'settings' or 'scenes'"))(
    lambda out: (out / PLAN).write_text("[]"))
damage("plan scene id with ../", _plan_line("scene entry 0: scene id '../x'"))(
    lambda out: edit_json(out, PLAN, lambda d: d["scenes"][0].update(scene_id="../x")))
damage("plan samples edited and re-fingerprinted",
       _meta_line(S0, "render.samples is 2, the plan says 3"), _computed("fingerprint"))(
    lambda out: replan(out, lambda s: s.update(samples=3)))
damage("plan resolution as text", _plan_line("settings.resolution is '240x160', not of type "
                                             "list"))(
    lambda out: replan(out, lambda s: s.update(resolution="240x160")))
damage("plan seed edited and re-fingerprinted", _plan_line("its scene list is not the one its "
                                                           "settings give"))(
    lambda out: replan(out, lambda s: s.update(seed=112)))
damage("failures file an object", f"CORRUPT {FAILURES}: is not a JSON list: {{}}")(
    lambda out: (out / FAILURES).write_text("{}"))
damage("failures entry with ../", f"CORRUPT {FAILURES}: entry 0: scene id '../../x' is not")(
    lambda out: (out / FAILURES).write_text(json.dumps([{"scene_id": "../../x",
                                                         "reason": "r"}])))
damage("failures entry of an unplanned scene",
       f"CORRUPT {FAILURES}: entry 0: scene train_00007 is not in the plan")(
    lambda out: (out / FAILURES).write_text(json.dumps([{"scene_id": "train_00007",
                                                         "reason": "r"}])))
damage("failures not JSON", f"CORRUPT {FAILURES}: does not parse")(
    lambda out: (out / FAILURES).write_text("[{"))
damage("failures entry of a complete scene",
       f"CORRUPT {FAILURES}: lists {S1} as failed, but it is complete")(
    lambda out: (out / FAILURES).write_text(json.dumps([{"scene_id": S1, "reason": "r"}])))


# --- stray files ----------------------------------------------------------------------------

def _stray(rel: str, text: str = "stray: a file the plan does not predict") -> str:
    return f"CORRUPT {rel}: {text}"


def _put(rel: str, data: bytes = b"x"):
    def write(out: Path) -> None:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return write


for _rel in ["notes.txt", "images/foo.png", "images/single_view/train_0005.png",
             f"images/multi_view/{S0}/view_4.png", f"masks/{S1}/extra.png", "splits/extra.json",
             "images/.DS_Store", f"images/multi_view/{H0}/view_0.png.bak",
             "checksums.md5"]:
    damage(f"stray file {_rel}", _stray(_rel))(_put(_rel))
damage("stray metadata of an unplanned scene",
       _stray("metadata/train_00002.json", "stray: scene train_00002 is not in the plan"))(
    lambda out: shutil.copy(out / meta(S1), out / "metadata/train_00002.json"))
for _rel in ["extra/", "depth/", f"masks/{S0}/old/"]:
    damage(f"stray folder {_rel}", _stray(_rel, "stray: a folder the plan does not predict"))(
        lambda out, r=_rel: (out / r).mkdir(parents=True))
for _rel, _id in [("images/multi_view/train_09999/", "train_09999"),
                  ("masks/train_00099/", "train_00099"),
                  ("images/single_view/val_00000.png", "val_00000")]:
    damage(f"stray entry of unplanned scene {_rel}",
           _stray(_rel, f"stray: scene {_id} is not in the plan"))(
        lambda out, r=_rel: (out / r).mkdir(parents=True) if r.endswith("/") else _put(r)(out))
damage("leftover temporary file of a complete scene",
       _stray(f"images/multi_view/{S0}/.view_0.png.123.456.tmp.png",
              "stray: a leftover temporary file"))(
    _put(f"images/multi_view/{S0}/.view_0.png.123.456.tmp.png"))
damage("metadata is a link", f"CORRUPT {meta(H0)}: is a symbolic link",
       f"CORRUPT {meta(H0)}: is reached through a symbolic link (not followed)")(
    lambda out: _link(out, meta(H0)))
damage("images folder is a link", "CORRUPT images: is a symbolic link")(
    lambda out: _link(out, "images"))


def _link(out: Path, rel: str) -> None:
    """Move out/rel beside the folder and leave a link to it in its place."""
    outside = out.parent / ("moved_" + rel.replace("/", "_"))
    (out / rel).rename(outside)
    (out / rel).symlink_to(outside)


# The damages item 5 of the trust issue lists as missed or crashing; all must be here.
ISSUE_DAMAGES = [
    "views swapped within a scene", "views swapped between scenes",
    "image replaced by a valid all-black PNG", "image replaced by another scene's image",
    "bytes after the PNG's end", "stray file notes.txt", "stray file images/foo.png",
    f"stray file masks/{S1}/extra.png", "stray file splits/extra.json",
    "stray metadata of an unplanned scene", "object color edited", "object rgb edited",
    "object material edited", "object rotation edited", "light energy edited",
    "render.samples edited", "dataset_info statistics edited", "dataset_info config edited",
    "split entry scene_id is a list", "dataset_info an empty list",
    "dataset_info failed holds a string", "plan count written as a string",
]


# --- the sweep ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "data"
    fake_dataset.make_output(out, COUNTS, seed=SEED)
    merge.merge(out)
    return out


def run(out: Path, capsys) -> tuple[int, str]:
    code = validate.main([str(out), "--jobs", "1"])
    return code, capsys.readouterr().out


def test_the_pristine_folder_passes(pristine, capsys):
    code, text = run(pristine, capsys)
    assert code == 0, text
    assert text.splitlines()[-1].startswith("OK: 3 scenes checked, labels recomputed for 3;")


def test_the_sweep_holds_the_issues_damages_and_60_more():
    assert set(ISSUE_DAMAGES) <= set(DAMAGES)
    assert len(DAMAGES) >= 60
    assert len({tuple(expected) for _, expected in DAMAGES.values()}) == len(DAMAGES)


@pytest.mark.parametrize("name", [
    name if name in ISSUE_DAMAGES else pytest.param(name, marks=pytest.mark.heavy)
    for name in DAMAGES])
def test_damage_is_caught(name, pristine, tmp_path, capsys):
    out = tmp_path / "data"
    shutil.copytree(pristine, out, symlinks=True)
    inflict, expected = DAMAGES[name]
    inflict(out)
    code, text = run(out, capsys)
    lines = text.splitlines()
    assert code == 1, text
    assert lines[-1].startswith("CORRUPT: ")
    for line in expected:
        assert any(printed.startswith(line) for printed in lines), f"{line!r} not in\n{text}"
    assert "could not be checked" not in text


# --- real renders: the damages only the image content shows -------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two planned scenes rendered by Cycles through the build's pipeline (240x160, 2
    samples: the content check's smallest width, and noisy), merged."""
    import bpy
    from scenegen_addon.blender import batch, pipeline
    from scenegen_addon.core import sampling

    bpy.ops.wm.read_homefile(use_empty=True)
    out = tmp_path_factory.mktemp("rendered") / "data"
    settings = plan.plan_settings(
        seed=SEED, size=None, counts={"train": 2}, quality="draft", resolution=(240, 160),
        samples=2, blender_version=bpy.app.version_string, numpy_version=np.__version__)
    layout.write_json(layout.plan_file(out), plan.document(settings))
    _, scenes = plan.read_document(layout.plan_file(out))
    for scene in scenes:
        spec = sampling.sample_scene(scene, SEED)
        pipeline.render_scene(spec, out, batch.render_settings(settings, "CPU"))
    merge.merge(out)
    return out


REAL_DAMAGES = {
    "views swapped within a scene": (lambda out: swap(out, image(S0, 0), image(S0, 3)),
                                     [_fits(0, 0), _fits(3, 3)]),
    "views swapped between scenes": (lambda out: swap(out, image(S0, 1), image(S1, 1)),
                                     [_fits(1, 1, S0), _fits(1, 1, S1)]),
    "image replaced by another scene's image": (
        lambda out: shutil.copy(out / image(S1, 2), out / image(S0, 2)), [_fits(2, 2, S0)]),
    "image replaced by a valid all-black PNG": (
        lambda out: edit_image(out, image(S1, 3), np.zeros_like),
        [f"CORRUPT {image(S1, 3)}: the image is blank"]),
    "single view and view 0 both replaced by view 2": (
        lambda out: [shutil.copy(out / image(S1, 2), out / rel)
                     for rel in (image(S1, 0), f"images/single_view/{S1}.png")],
        [_fits(0, 0, S1)]),
    "image shifted by 2 pixels": (
        lambda out: edit_image(out, image(S0, 1), lambda a: np.roll(a, (-2, 1), axis=(0, 1))),
        [f"CORRUPT {image(S0, 1)}: is shifted by (1, -2) px against {mask(S0, 1)}"]),
    "bytes after the PNG's end": (
        lambda out: (out / image(S1, 1)).write_bytes((out / image(S1, 1)).read_bytes() + b"x"),
        [f"CORRUPT {image(S1, 1)}: 1 bytes after the IEND chunk"]),
    "an 8x8 block painted and checksums.sha256 edited to match": (
        lambda out: [edit_image(out, image(S1, 2), _painted_block), resum(out, image(S1, 2))],
        [f"CORRUPT {image(S1, 2)}: its SHA-256 is not the one .scenegen/scenes/{S1}.json "
         "took when the scene was written"]),
}


def _painted_block(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.copy()
    pixels[80:88, 120:128] = 240
    return pixels


def test_rendered_scenes_pass_with_their_content_checked(rendered, capsys):
    code, text = run(rendered, capsys)
    assert code == 0, text
    assert "NOTE images not checked" not in text
    assert text.splitlines()[-1].startswith("OK: 2 scenes checked, labels recomputed for 2;")


@pytest.mark.parametrize("name", list(REAL_DAMAGES))
def test_rendered_damage_is_caught(name, rendered, tmp_path, capsys):
    out = tmp_path / "data"
    shutil.copytree(rendered, out)
    inflict, expected = REAL_DAMAGES[name]
    inflict(out)
    code, text = run(out, capsys)
    assert code == 1, text
    for line in expected:
        assert any(printed.startswith(line) for printed in text.splitlines()), (line, text)
    assert "could not be checked" not in text
