"""A few relations of one scene in words, for people: the scene picture and the panel preview.

A whole record holds thousands of relations; a person checking a scene wants the few that
say the most. The choice (the same for the picture and the Blender panel's preview):
- the hardest world distance comparison (qrr): the highest difficulty; among those, the
  ratio nearest 1 (the smallest max(r, 1/r)); then the first in record order;
- one world clock relation (trr), of three objects of that comparison: standing at the
  first object of its first pair facing the second, where the first object of its second
  pair is;
- the occlusions of one view: the view with the most occlusion records (the first such
  view on a tie), largest fraction first, at most MAX_OCCLUSIONS lines. The preview has no
  rendered masks, so it passes no view.
Objects are named by their attributes alone (dataset.describe: the fewest that single one
out, or all four where none do) followed by the object's index, "(3)" for obj_3, as the
picture labels it. No relation ("leftmost") enters a name: it would hold in one view only,
and the sentences speak of the world and of any view; the index already tells objects
apart. So the picture and the panel's preview, which has no rendered view, name alike.
"""

import textwrap

from ..core import camera, presets
from .describe import Describer
from .loader import QRR, TRR, Occlusion, Scene

MAX_OCCLUSIONS = 3
NEARER = {"<": "nearer to", ">": "farther from", "~=": "about as far from"}
THAN = {"<": "than", ">": "than", "~=": "as"}
LINKED = {"<": "to", ">": "from", "~=": "from"}


def hardest_qrr(records: list[QRR]) -> QRR | None:
    """The highest difficulty, then the ratio nearest 1, then record order; None if empty."""
    def key(k: int):
        ratio = records[k].ratio
        spread = float("inf") if not ratio else max(ratio, 1.0 / ratio)
        return (-records[k].difficulty, spread, k)

    return records[min(range(len(records)), key=key)] if records else None


def clock_of(records: list[TRR], qrr: QRR | None) -> TRR | None:
    """The trr of (target, ref1, ref2) = (pair2[0], pair1[0], pair1[1]) of `qrr`, or the
    first record when there is no comparison."""
    if qrr is None:
        return records[0] if records else None
    wanted = (qrr.pair2[0], qrr.pair1[0], qrr.pair1[1])
    return next(r for r in records if (r.target, r.ref1, r.ref2) == wanted)


def busiest_view(scene: Scene) -> int | None:
    """The view with the most occlusion records (the first on a tie); None if none has any."""
    counts = [len(scene.constraints(type="occlusion", context=v.view_id)) for v in scene.views]
    best = max(range(len(counts)), key=lambda k: (counts[k], -k), default=None)
    return best if best is not None and counts[best] else None


def largest_occlusions(records: list[Occlusion]) -> list[Occlusion]:
    """Largest fraction first, record order on a tie."""
    order = sorted(range(len(records)), key=lambda k: (-records[k].fraction, k))
    return [records[k] for k in order]


def object_names(scene: Scene) -> dict[str, str]:
    """id -> "the red cube (3)": attributes only (module doc), then the index."""
    describer = Describer(scene)
    return {obj.id: f"{describer.by_attributes(i)} ({obj.index})"
            for i, obj in enumerate(scene.objects)}


def qrr_line(c: QRR, names: dict[str, str]) -> str:
    (a, b), (x, y) = c.pair1, c.pair2
    ratio = "" if c.ratio is None else f", ratio {c.ratio:g}"
    return (f"Hardest distance comparison (difficulty {c.difficulty}{ratio}): {names[a]} is "
            f"{NEARER[c.comparator]} {names[b]} {THAN[c.comparator]} {names[x]} is "
            f"{LINKED[c.comparator]} {names[y]}.")


def trr_line(c: TRR, names: dict[str, str]) -> str:
    return (f"Clock: standing at {names[c.ref1]} facing {names[c.ref2]}, {names[c.target]} "
            f"is at {c.hour} o'clock.")


def occlusion_lines(scene: Scene, view: int | None, names: dict[str, str]) -> list[str]:
    if view is None:
        return ["Occlusion: none in any view."]
    records = largest_occlusions(
        scene.constraints(type="occlusion", context=scene.views[view].view_id))
    lines = [f"View {view}: {names[c.occluder]} hides {round(100 * c.fraction)}% of "
             f"{names[c.occluded]} ({c.pixels} pixels)." for c in records[:MAX_OCCLUSIONS]]
    if len(records) > MAX_OCCLUSIONS:
        lines.append(f"View {view}: {len(records) - MAX_OCCLUSIONS} more occlusions.")
    return lines


def relation_lines(scene: Scene, occlusions: bool = True, names=None) -> list[str]:
    """The chosen relations in words, one sentence a line (occlusions only when asked);
    `names` as object_names gives them (computed when not given)."""
    names = names or object_names(scene)
    qrr = hardest_qrr(scene.constraints(type="qrr", context="world"))
    trr = clock_of(scene.constraints(type="trr", context="world"), qrr)
    lines = [qrr_line(qrr, names)] if qrr else []
    lines += [trr_line(trr, names)] if trr else []
    if occlusions:
        lines += occlusion_lines(scene, busiest_view(scene), names)
    return lines


def wrap(lines: list[str], width: int) -> list[str]:
    """Each line cut at spaces to at most `width` characters, continuations indented."""
    return [part for line in lines
            for part in textwrap.wrap(line, width, subsequent_indent="  ") or [""]]


def unrendered_scene(spec, found: dict) -> Scene:
    """A loader Scene of a sampled scene that was never rendered (the panel's preview): its
    objects, the canonical cameras and the constraints `found` ({"world", "views"}); it has
    no images, masks or per-view object records."""
    width, height = presets.CANONICAL_RESOLUTION
    views = [{"view_id": v.view_id, "image": "", "mask": "", "camera": v.record(),
              "directions": v.directions, "objects": []} for v in camera.rig(width, height)]
    record = {
        "scene_id": spec.scene_id, "split": spec.split, "index": spec.index, "seed": spec.seed,
        "tau": spec.tau, "n_objects": spec.n_objects, "image_size": [width, height],
        "objects": [o.record() for o in spec.objects], "views": views, "constraints": found,
    }
    return Scene(None, record)
