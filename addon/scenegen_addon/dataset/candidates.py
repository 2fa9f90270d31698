"""What can be asked about one scene, per question category, as arrays in record order.

A candidate is one record (or, for size, closer and occlusion "no", one pair the record
deliberately leaves out) with its label class (wording.CLASSES), the view whose image shows
it, whether the relation it asks holds visibly in that image, and the margins of
dataset.margins it fails (`near`, a bit per name of margins.NEAR_TIES). Which candidates
become questions is questions.py's business.

Per category:
- world_qrr, view_qrr: every record; near the tie band when its boundary_flag is set.
- world_trr, view_trr: every record; near a sector edge by the stored angle_deg.
- world_topology: every pair's record ("overlapping" never occurs in a valid scene and is
  not asked).
- world_size: every pair a < b: "first" / "second" is bigger, or "same" size label.
- world_closer: every anchor and pair a < b of the others: "first" / "second" is closer,
  or "same" (unrecorded); in the tie band by the centroid distances.
- view_axial: every record; `visible` when the image shows it by the pixel or depth margin.
- view_occlusion: "yes" for each record (A hides B); "no" for (A, B) when B hides A (a
  record) and A hides fewer than 4 pixels of B (no record): silhouettes that clearly
  overlap, the other way round; both are few_pixels below MIN_OCCLUDED of the hidden one.
- view_size: the size records: pairs of the same shape (a cube's outline is bigger than a
  sphere's of the same size, so mixed shapes would name the answer) whose silhouette pixels
  differ (no "~="): "first" / "second" covers more; in the tie band by the counts,
  partly_hidden when either is less than MIN_VISIBLE visible.

Names: each candidate has a NAMINGS entry (what its names must avoid): no relation in a
name where a position could inform the answer (distances, clock, closer, on-screen size),
never the attribute or axis asked.
"""

from dataclasses import dataclass

import numpy as np

from ..core import layout
from ..core.constraints import boundary_flags, closer_triples, distance_matrix
from . import margins
from .loader import WORLD, Scene, Unreadable

CATEGORIES = (
    "world_qrr", "world_trr", "world_topology", "world_size", "world_closer",
    "view_qrr", "view_trr", "view_axial", "view_occlusion", "view_size",
)
ALL_RELATIONS = frozenset({"leftmost", "rightmost", "frontmost", "rearmost"})
HORIZONTAL = frozenset({"leftmost", "rightmost"})
DEPTH = frozenset({"frontmost", "rearmost"})
SIZE = frozenset({"size"})
# (banned attributes, banned relations) of a name
NAMINGS = (
    (frozenset(), ALL_RELATIONS),  # 0: relations could inform the answer
    (SIZE, frozenset()),  # 1: world size
    (SIZE, ALL_RELATIONS),  # 2: on-screen size
    (frozenset(), HORIZONTAL),  # 3: left / right asked
    (frozenset(), DEPTH),  # 4: front / behind or occlusion asked
    (frozenset(), frozenset()),  # 5: topology: footprints touch or not, wherever they stand
)
NAMING = {"world_qrr": 0, "view_qrr": 0, "world_trr": 0, "view_trr": 0, "world_topology": 5,
          "world_closer": 0, "world_size": 1, "view_size": 2, "view_occlusion": 4}
NEAR_BIT = {name: 1 << k for k, name in enumerate(margins.NEAR_TIES)}
WIDTH = {"qrr": 4, "trr": 3, "closer": 3}  # objects per candidate; 2 for the others


@dataclass
class Pool:
    """Every candidate of one category in one scene, in record order (view by view)."""

    category: str
    views: np.ndarray  # (M,) view whose image shows it (world: 0, the single view)
    objects: np.ndarray  # (M, m) object indices, in the record's order
    classes: np.ndarray  # (M,) label class
    near: np.ndarray  # (M,) margins failed, bits of NEAR_BIT
    visible: np.ndarray  # (M,) the relation asked holds visibly in the image
    naming: np.ndarray  # (M,) index into NAMINGS
    difficulty: np.ndarray | None = None  # qrr only
    boundary: np.ndarray | None = None  # qrr only

    def __len__(self) -> int:
        return len(self.classes)


def near_names(bits: int) -> list[str]:
    return [name for name, bit in NEAR_BIT.items() if bits & bit]


def _pool(category, views, objects, classes, near=None, visible=None, naming=None,
          **extra) -> Pool:
    m = len(classes)
    width = WIDTH.get(category.split("_", 1)[1], 2)
    objects = np.asarray(objects, dtype=np.int64).reshape(m, width)
    return Pool(category, np.asarray(views, dtype=np.int64).reshape(m), objects,
                np.asarray(classes, dtype=object).reshape(m),
                np.zeros(m, dtype=np.int64) if near is None else np.asarray(near, np.int64),
                np.ones(m, dtype=bool) if visible is None else np.asarray(visible, bool),
                np.full(m, NAMING.get(category, 0), dtype=np.int64) if naming is None
                else np.asarray(naming, dtype=np.int64), **extra)


def _joined(parts: list[Pool]) -> Pool:
    def cat(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    first = parts[0]
    return Pool(first.category, *(cat(n) for n in ("views", "objects", "classes", "near",
                                                   "visible", "naming", "difficulty",
                                                   "boundary")))


def _records(scene: Scene, context: str, kind: str) -> list[dict]:
    """The raw records (dicts) of one kind: faster than typed ones for thousands."""
    found = scene.record["constraints"]
    return (found["world"] if context == WORLD else found["views"][int(context[5:])])[kind]


def _index(scene: Scene) -> dict[str, int]:
    return {o.id: k for k, o in enumerate(scene.objects)}


def _contexts(category: str, scene: Scene) -> list[tuple[str, int]]:
    if category.startswith("world"):
        return [(WORLD, 0)]
    return [(v.view_id, v.index) for v in scene.views]


def _qrr(scene, category) -> Pool:
    ix, parts = _index(scene), []
    for context, view in _contexts(category, scene):
        recs = _records(scene, context, "qrr")
        objs = [(ix[r["pair1"][0]], ix[r["pair1"][1]], ix[r["pair2"][0]], ix[r["pair2"][1]])
                for r in recs]
        boundary = np.array([r["boundary_flag"] for r in recs], dtype=bool)
        parts.append(_pool(category, [view] * len(recs), objs,
                           [r["comparator"] for r in recs],
                           np.where(boundary, NEAR_BIT[margins.TIE], 0),
                           difficulty=np.array([r["difficulty"] for r in recs], np.int64),
                           boundary=boundary))
    return _joined(parts)


def _trr(scene, category) -> Pool:
    ix, parts = _index(scene), []
    for context, view in _contexts(category, scene):
        recs = _records(scene, context, "trr")
        objs = [(ix[r["target"]], ix[r["ref1"]], ix[r["ref2"]]) for r in recs]
        edge = margins.near_sector_edge([r["angle_deg"] for r in recs])
        parts.append(_pool(category, [view] * len(recs), objs, [str(r["hour"]) for r in recs],
                           np.where(edge, NEAR_BIT[margins.SECTOR], 0)))
    return _joined(parts)


def _topology(scene, category) -> Pool:
    ix = _index(scene)
    recs = [r for r in _records(scene, WORLD, "topology") if r["relation"] != "overlapping"]
    return _pool(category, [0] * len(recs), [(ix[r["obj1"]], ix[r["obj2"]]) for r in recs],
                 [r["relation"] for r in recs])


def _pair_classes(n: int, winners: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pairs a < b and their class: "first" / "second" for the recorded winner, or "same"."""
    a, b = np.triu_indices(n, 1)
    classes = []
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        won = winners.get((i, j))
        classes.append("same" if won is None else "first" if won == i else "second")
    return a, b, classes


def _size_classes(scene, context: str):
    """Every pair a < b and which of the two the context's size records call bigger."""
    ix = _index(scene)
    winners = {}
    for r in _records(scene, context, "size"):
        big, small = ix[r["bigger"]], ix[r["smaller"]]
        winners[(min(big, small), max(big, small))] = big
    return _pair_classes(len(ix), winners)


def _world_size(scene, category) -> Pool:
    a, b, classes = _size_classes(scene, WORLD)
    return _pool(category, np.zeros(len(a)), np.stack([a, b], axis=1), classes)


def _closer(scene, category) -> Pool:
    ix = _index(scene)
    n = len(ix)
    code = np.zeros((n, n, n), dtype=np.int64)  # [anchor, a, b]: 1 a closer, 2 b closer
    for r in _records(scene, WORLD, "closer"):
        k, near, far = ix[r["anchor"]], ix[r["closer"]], ix[r["farther"]]
        code[k, min(near, far), max(near, far)] = 1 if near < far else 2
    anchor, a, b = closer_triples(n)
    classes = np.array(("same", "first", "second"), dtype=object)[code[anchor, a, b]]
    dist = distance_matrix([o.centroid for o in scene.objects])
    tie = boundary_flags(dist[anchor, a], dist[anchor, b], scene.tau)
    return _pool(category, np.zeros(len(a)), np.stack([anchor, a, b], axis=1), classes,
                 np.where(tie, NEAR_BIT[margins.TIE], 0))


def _axial(scene, category) -> Pool:
    ix, parts = _index(scene), []
    width = scene.image_size[0]
    for context, view in _contexts(category, scene):
        seen = scene.views[view].objects
        left, front = margins.left_in_image(seen, width), margins.front_in_image(seen)
        recs = _records(scene, context, "axial")
        objs = np.array([(ix[r["obj1"]], ix[r["obj2"]]) for r in recs],
                        dtype=np.int64).reshape(-1, 2)
        classes = [r["relation"] for r in recs]
        first, second = objs[:, 0], objs[:, 1]
        shown = {"left_of": left[first, second], "right_of": left[second, first],
                 "in_front_of": front[first, second], "behind": front[second, first]}
        visible = [shown[c][k] for k, c in enumerate(classes)]
        naming = [3 if c in ("left_of", "right_of") else 4 for c in classes]
        parts.append(_pool(category, [view] * len(recs), objs, classes, None, visible, naming))
    return _joined(parts)


def _occlusion(scene, category) -> Pool:
    ix, parts = _index(scene), []
    few = NEAR_BIT[margins.FEW_PIXELS]
    for context, view in _contexts(category, scene):
        recs = _records(scene, context, "occlusion")
        hidden = {(ix[r["occluder"]], ix[r["occluded"]]): r["fraction"] for r in recs}
        objs, classes, near = [], [], []
        for (a, b), fraction in hidden.items():
            small = few if fraction < margins.MIN_OCCLUDED else 0
            objs.append((a, b))
            classes.append("yes")
            near.append(small)
            if (b, a) not in hidden:  # b hides a: does a hide part of b? no
                objs.append((b, a))
                classes.append("no")
                near.append(small)
        parts.append(_pool(category, [view] * len(objs), objs, classes, near))
    return _joined(parts)


def _view_size(scene, category) -> Pool:
    parts = []
    shapes = [o.shape for o in scene.objects]
    for context, view in _contexts(category, scene):
        a, b, classes = _size_classes(scene, context)
        keep = np.array([shapes[i] == shapes[j] and c != "same"
                         for i, j, c in zip(a, b, classes, strict=True)], dtype=bool)
        a, b, classes = a[keep], b[keep], np.array(classes, dtype=object)[keep]
        seen = scene.views[view].objects
        pixels = np.array([o.silhouette_pixels for o in seen], dtype=float)
        shown = np.array([o.visible_fraction for o in seen], dtype=float)
        near = np.where(boundary_flags(pixels[a], pixels[b], scene.tau),
                        NEAR_BIT[margins.TIE], 0)
        near |= np.where((shown[a] < margins.MIN_VISIBLE) | (shown[b] < margins.MIN_VISIBLE),
                         NEAR_BIT[margins.HIDDEN], 0)
        parts.append(_pool(category, [view] * len(a), np.stack([a, b], axis=1), classes, near))
    return _joined(parts)


MAKERS = {
    "world_qrr": _qrr, "view_qrr": _qrr, "world_trr": _trr, "view_trr": _trr,
    "world_topology": _topology, "world_size": _world_size, "world_closer": _closer,
    "view_axial": _axial, "view_occlusion": _occlusion, "view_size": _view_size,
}


def pool(scene: Scene, category: str) -> Pool:
    """Every candidate of `category` in the scene; Unreadable naming the scene and the
    category when its records do not fit together (a record naming an object the scene does
    not have, a field or a list missing)."""
    if category not in MAKERS:
        raise ValueError(f"unknown question category {category!r}: allowed are "
                         f"{', '.join(CATEGORIES)}")
    try:
        return MAKERS[category](scene, category)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise Unreadable(f"{layout.scene_paths(scene.scene_id)['metadata']}: its records "
                         f"cannot be asked as {category} ({exc!r})") from None
