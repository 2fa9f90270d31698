"""Relations as comparable facts: one canonical form per relation, whoever states it (the
record's typed constraints, or a model's extraction answer), so scoring is set arithmetic.

A fact is (type, context, objects, value) with the objects in a canonical order and the
value relative to it (object order is by index as integers, obj_2 before obj_10):
- qrr: (a, b, c, d), a < b, c < d, (a, b) < (c, d); value "<", "~=" or ">" of |ab| vs |cd|.
- trr: (target, ref1, ref2); value the hour "1".."12".
- axial: (a, b), a < b; value left_of, right_of, in_front_of or behind (a relative to b).
- topology: (a, b), a < b; value disjoint, touching or overlapping.
- size: (a, b), a < b; value ">" when a is the bigger, "<" when b is.
- closer: (anchor, a, b), a < b; value "<" when a is the closer to anchor, ">" when b is.
- occlusion: (occluder, occluded); value "yes".
"""

from typing import NamedTuple

from ..loader import Constraint

TYPES = ("qrr", "trr", "axial", "topology", "size", "closer", "occlusion")
FLIP = {"<": ">", ">": "<", "~=": "~=", "left_of": "right_of", "right_of": "left_of",
        "in_front_of": "behind", "behind": "in_front_of"}


class Fact(NamedTuple):
    type: str
    context: str
    objects: tuple[str, ...]
    value: str


def index(object_id: str) -> int:
    """obj_12 -> 12 (objects are ordered by this integer, never by the id string)."""
    return int(object_id.rsplit("_", 1)[1])


def _pair(a: str, b: str) -> tuple[tuple[str, str], bool]:
    """(a, b) in index order, and whether it was swapped."""
    return ((a, b), False) if index(a) < index(b) else ((b, a), True)


def qrr(context: str, pair1, pair2, comparator: str) -> Fact:
    p1, _ = _pair(*pair1)
    p2, _ = _pair(*pair2)
    if (index(p2[0]), index(p2[1])) < (index(p1[0]), index(p1[1])):
        p1, p2, comparator = p2, p1, FLIP[comparator]
    return Fact("qrr", context, (*p1, *p2), comparator)


def trr(context: str, target: str, ref1: str, ref2: str, hour: int | float) -> Fact:
    """`hour` as a whole number: JSON's 12.0 is the schema's integer 12, the same fact."""
    return Fact("trr", context, (target, ref1, ref2), str(int(hour)))


def pair_relation(type_: str, context: str, obj1: str, obj2: str, relation: str) -> Fact:
    """axial or topology: obj1 `relation` obj2 (topology is symmetric, axial flips)."""
    pair, swapped = _pair(obj1, obj2)
    return Fact(type_, context, pair, FLIP.get(relation, relation) if swapped else relation)


def size(context: str, bigger: str, smaller: str) -> Fact:
    pair, swapped = _pair(bigger, smaller)
    return Fact("size", context, pair, "<" if swapped else ">")


def closer(context: str, anchor: str, near: str, far: str) -> Fact:
    pair, swapped = _pair(near, far)
    return Fact("closer", context, (anchor, *pair), ">" if swapped else "<")


def occlusion(context: str, occluder: str, occluded: str) -> Fact:
    return Fact("occlusion", context, (occluder, occluded), "yes")


def from_fields(type_: str, context: str, fields: dict) -> Fact:
    """The fact of one relation given by its record fields (FORMAT 6.4 names)."""
    f = fields
    if type_ == "qrr":
        return qrr(context, f["pair1"], f["pair2"], f["comparator"])
    if type_ == "trr":
        return trr(context, f["target"], f["ref1"], f["ref2"], f["hour"])
    if type_ in ("axial", "topology"):
        return pair_relation(type_, context, f["obj1"], f["obj2"], f["relation"])
    if type_ == "size":
        return size(context, f["bigger"], f["smaller"])
    if type_ == "closer":
        return closer(context, f["anchor"], f["closer"], f["farther"])
    if type_ == "occlusion":
        return occlusion(context, f["occluder"], f["occluded"])
    raise ValueError(f"unknown relation type {type_!r}: allowed are {', '.join(TYPES)}")


def from_constraint(c: Constraint) -> Fact:
    """The fact of a typed constraint of the loader (its record fields)."""
    fields = {name: getattr(c, name) for name in c.__dataclass_fields__ if name != "context"}
    return from_fields(c.type, c.context, fields)
