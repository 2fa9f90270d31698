"""Referring expressions that single out one object of a scene ("the large red metal cube").

A question is only fair when every object it names is unambiguous, and only fair when the
naming does not give the answer away. So a description:
- uses the fewest attributes (shape, colour, size, material) that match this object alone;
  among equally short ones, the first in ATTRIBUTES order (shape preferred, so "the cube"
  rather than "the red object");
- only when no attribute set can, adds one extreme relation within the objects matching the
  attributes, in the image of one view: "the leftmost red cube". The relation must hold in
  that image by the margins of dataset.margins (left/right: projected centroid and both
  bounding-box edges; front/rear: centroid depth) against every other object of that group,
  so a person sees it at a glance;
- never uses a banned attribute or relation (the one the question asks about, or every
  relation where one could inform the answer).
When nothing qualifies the object has no description (None), and a question about it is
not asked.
"""

from dataclasses import dataclass
from itertools import combinations

from . import margins
from .loader import Scene

ATTRIBUTES = ("shape", "color", "size", "material")
PHRASE_ORDER = ("size", "color", "material")  # adjectives in CLEVR order, then the noun
# relation -> (matrix, whether the object is the row): "leftmost" is left of every other
RELATIONS = {
    "leftmost": ("left", True),
    "rightmost": ("left", False),
    "frontmost": ("front", True),
    "rearmost": ("front", False),
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
        seen = scene.views[view_index].objects  # empty for a scene never rendered
        self.order = {} if not seen else {
            "left": margins.left_in_image(seen, scene.image_size[0]),
            "front": margins.front_in_image(seen)}
        self._cache: dict = {}
        self._groups: dict = {}  # attrs -> each object's group (list of indices)

    def _group(self, i: int, attrs: tuple[str, ...]) -> list[int]:
        """The objects that share object i's values of `attrs` (i among them)."""
        if attrs not in self._groups:
            keys = [tuple(getattr(o, a) for a in attrs) for o in self.objects]
            members: dict = {}
            for j, key in enumerate(keys):
                members.setdefault(key, []).append(j)
            self._groups[attrs] = [members[key] for key in keys]
        return self._groups[attrs][i]

    def _extreme(self, i: int, group: list[int], relation: str) -> bool:
        if not self.order:
            return False
        kind, first = RELATIONS[relation]
        before = self.order[kind]
        return all(before[i, j] if first else before[j, i] for j in group if j != i)

    def describe(self, i: int, banned_attributes=(), banned_relations=()) -> Description | None:
        """The description of object index i, or None when none is unique and allowed."""
        key = (i, frozenset(banned_attributes), frozenset(banned_relations))
        if key not in self._cache:
            self._cache[key] = self._search(i, key[1], key[2])
        return self._cache[key]

    def by_attributes(self, i: int) -> str:
        """The shortest unique attribute phrase, or all four attributes where none is."""
        found = self.describe(i, banned_relations=RELATIONS)
        return found.text if found else self._phrase(i, ATTRIBUTES, None)

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
