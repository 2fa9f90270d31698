"""Referring expressions that single out one object of a scene ("the large red metal cube").

A question is only fair when every object it names is unambiguous, and only fair when the
naming does not give the answer away. So a description:
- uses the fewest attributes (shape, colour, size, material) that match this object alone;
  among equally short ones, the first in ATTRIBUTES order (shape preferred, so "the cube"
  rather than "the red object");
- only when no attribute set can, adds one extreme relation within the objects matching the
  attributes, in the image of one view: "the leftmost red cube". The relation must hold by
  the axial rule of FORMAT 6.4 (ground distance along the view's left or front direction above
  0.2) against every other object of that group, so it is as certain as an axial label;
- never uses a banned attribute or relation (the one the question asks about).
When nothing qualifies the object has no description (None), and a question about it is
not asked.
"""

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..core import exact
from ..core.constraints import AXIAL_MARGIN
from .loader import Scene

ATTRIBUTES = ("shape", "color", "size", "material")
PHRASE_ORDER = ("size", "color", "material")  # adjectives in CLEVR order, then the noun
# relation -> (view direction, sign): the extreme with the largest sign * (position . direction)
RELATIONS = {
    "leftmost": ("left", 1.0),
    "rightmost": ("left", -1.0),
    "frontmost": ("front", 1.0),
    "rearmost": ("front", -1.0),
}


@dataclass(frozen=True)
class Description:
    text: str  # "the leftmost red cube"
    attributes: tuple[str, ...]  # the attributes it uses
    relation: str | None  # the relation it uses, if any


class Describer:
    """Descriptions of a scene's objects; relations are judged in view `view_index`'s image."""

    def __init__(self, scene: Scene, view_index: int = 0):
        self.objects = scene.objects
        view = scene.views[view_index]
        ground = np.array([o.coords_3d[:2] for o in self.objects], dtype=float)
        # each object's ground position along the view's left and front directions
        self.along = {axis: exact.dot(ground, view.directions[axis][:2])
                      for axis in ("left", "front")}
        self._cache: dict = {}

    def _group(self, i: int, attrs: tuple[str, ...]) -> list[int]:
        me = self.objects[i]
        return [j for j, o in enumerate(self.objects)
                if all(getattr(o, a) == getattr(me, a) for a in attrs)]

    def _extreme(self, i: int, group: list[int], relation: str) -> bool:
        axis, sign = RELATIONS[relation]
        values = sign * self.along[axis]
        return all(values[i] - values[j] > AXIAL_MARGIN for j in group if j != i)

    def describe(self, i: int, banned_attributes=(), banned_relations=()) -> Description | None:
        """The description of object index i, or None when none is unique and allowed."""
        key = (i, frozenset(banned_attributes), frozenset(banned_relations))
        if key not in self._cache:
            self._cache[key] = self._search(i, key[1], key[2])
        return self._cache[key]

    def _search(self, i, banned_attributes, banned_relations) -> Description | None:
        allowed = [a for a in ATTRIBUTES if a not in banned_attributes]
        subsets = [s for k in range(len(allowed) + 1) for s in combinations(allowed, k)]
        for attrs in subsets:
            if self._group(i, attrs) == [i]:
                return Description(self._phrase(i, attrs, None), attrs, None)
        relations = [r for r in RELATIONS if r not in banned_relations]
        for attrs in subsets:
            group = self._group(i, attrs)
            for relation in relations:
                if self._extreme(i, group, relation):
                    return Description(self._phrase(i, attrs, relation), attrs, relation)
        return None

    def _phrase(self, i: int, attrs: tuple[str, ...], relation: str | None) -> str:
        obj = self.objects[i]
        words = ["the"] + ([relation] if relation else [])
        words += [getattr(obj, a) for a in PHRASE_ORDER if a in attrs]
        words.append(obj.shape if "shape" in attrs else "object")
        return " ".join(words)
