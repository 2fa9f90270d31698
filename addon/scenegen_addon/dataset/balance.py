"""Which drafted questions a split asks: label classes equally often, answer letters too.

A blind guesser profits from any class that is asked more often than another, and from any
letter that is right more often than another. So, per split and category:
- quotas: the target is per_type x the split's scenes; each label class of the category
  (wording.CLASSES, all of them, also those no scene supplies) gets target // k questions,
  one more for target % k classes drawn by the seed; when some class cannot supply that
  many, every class gets what the scarcest supplies (fewer questions, never lopsided);
- scenes: the scarcest class takes its quota one question per scene per round, scenes in a
  seeded order; every other class first takes as many from each scene as the scarcest
  class took there (so the classes come from the same scenes, and nothing about a scene, its
  object count or its names, tells the class), then fills any gap the same round-robin way;
- answer letters: per option count k, decks of the k positions, each shuffled by k draws,
  dealt to the split's questions of the category in row order: each letter is the answer
  equally often (within one). The other options keep the order drawn for them
  independently of the label (see questions.py).

Randomness: numpy Generator(PCG64(h(text))), `.random()` draws only, a choice among k being
floor(u * k):
- h("<seed>:<split>:balance:<category>"): first target % k draws pick the classes with one
  more (among those left, in CLASSES order), then the scenes' order (a draw per scene
  among those left);
- h("<seed>:<split>:answers:<category>:<k>"): the decks.
"""

from dataclasses import dataclass, field

import numpy as np

from ..core import rng


@dataclass
class Balance:
    """What one split asks of one category and why it may be fewer than the target."""

    target: int
    quotas: dict[str, int]  # class -> questions asked
    supply: dict[str, int]  # class -> drafted questions available
    takes: list[dict[str, int]] = field(default_factory=list)  # per scene: class -> taken

    @property
    def asked(self) -> int:
        return sum(self.quotas.values())

    def shortfall(self) -> str | None:
        """Why fewer than the target were asked, or None."""
        if self.asked >= self.target:
            return None
        scarce = min(self.supply, key=lambda c: (self.supply[c], list(self.supply).index(c)))
        return (f"class {scarce!r} has {self.supply[scarce]} candidates, so each of the "
                f"{len(self.supply)} classes gets {self.supply[scarce]}")


def draw_order(g: np.random.Generator, items, count: int | None = None) -> list:
    """`count` (default: all) of the items, each drawn by one draw among those left."""
    left = list(items)
    return [left.pop(rng.index(g, len(left))) for _ in range(len(left) if count is None
                                                              else count)]


def _round_robin(take: list[int], available: list[int], order: list[int], want: int) -> None:
    """Add one per scene per round, in `order`, until `want` are taken or none is left."""
    total = sum(take)
    while total < want:
        moved = False
        for s in order:
            if total == want:
                break
            if take[s] < available[s]:
                take[s] += 1
                total += 1
                moved = True
        if not moved:
            return


def plan(supply_per_scene: list[dict[str, int]], classes: tuple[str, ...], per_type: int,
         key: str) -> Balance:
    """How many questions of each class each scene gives (see the module doc); `key` is
    "<seed>:<split>:balance:<category>"."""
    scenes = len(supply_per_scene)
    target = per_type * scenes
    supply = {c: sum(s.get(c, 0) for s in supply_per_scene) for c in classes}
    g = rng.generator(rng.h(key))
    k = len(classes)
    scarcest = min(supply.values())
    if scarcest * k >= target:
        quotas = dict.fromkeys(classes, target // k)
        for c in draw_order(g, list(classes))[:target % k]:
            quotas[c] += 1
    else:
        quotas = dict.fromkeys(classes, scarcest)
    order = draw_order(g, list(range(scenes)))
    takes = [dict.fromkeys(classes, 0) for _ in range(scenes)]
    share = None
    for c in sorted(classes, key=lambda c: (supply[c], classes.index(c))):
        available = [s.get(c, 0) for s in supply_per_scene]
        take = [0] * scenes
        if share is not None:
            total = 0
            for s in order:
                take[s] = min(share[s], available[s], quotas[c] - total)
                total += take[s]
        _round_robin(take, available, order, quotas[c])
        if share is None:
            share = take
        for s in range(scenes):
            takes[s][c] = take[s]
    return Balance(target, quotas, supply, takes)


def deal_answers(questions: list, key: str) -> list:
    """Each question with its answer moved to a dealt position (see the module doc); `key`
    is "<seed>:<split>:answers:<category>", the option count is appended."""
    decks: dict[int, tuple[np.random.Generator, list[int]]] = {}
    out = []
    for q in questions:
        k = len(q.options)
        if k not in decks:
            decks[k] = (rng.generator(rng.h(f"{key}:{k}")), [])
        g, deck = decks[k]
        if not deck:
            deck.extend(draw_order(g, list(range(k))))
        out.append(q.with_answer_at(deck.pop(0)))
    return out
