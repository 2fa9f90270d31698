"""Multiple-choice questions from the ground truth: every answer is a stored label.

Each question comes from one constraint (or, for size, closer and occlusion, from a pair
the record deliberately leaves out: "~=" or "no"), and carries the machine-readable fields
scene_id, context, constraint, objects and label, so anyone can check it against the record.
Objects are named by dataset.describe (unique in the scene, never with the attribute or relation
asked about); a candidate whose objects cannot be so named is skipped and counted.

Categories (CATEGORIES) are a context kind and a constraint type: world_qrr .. view_size.
"About the same" options state the split's tolerance (tau), which is the label's definition.
A clock question offers the true hour and three others, none adjacent to it, so a target
near a sector edge is hard but never ambiguous.

Randomness: numpy Generator(PCG64(seed)), `.random()` draws only, a choice among k items
being floor(u * k) (core.rng). Seeds and draw order:
- one generator per scene and category, seeded h("<seed>:<scene_id>:questions:<category>").
  For each question in turn: one draw picks a label class among those left (in sorted
  order), one draw picks a candidate of that class (in record order), which leaves the pool;
  a clock question then draws its three distractor hours one by one among those allowed.
  Drawing the class first balances the labels as far as the scene allows.
- answer positions: per split, category and option count k, decks of the k positions, each
  shuffled by k draws (each picks among the positions left) of the generator
  h("<seed>:<split>:answers:<category>:<k>"), dealt in order to that category's questions
  (scene order, then question order). So each position is the answer equally often (within
  one, per split and category). The correct option moves there; the others keep their order.
"""

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from ..core import camera, parallel, rng, visibility
from ..core.spec import SceneSpec
from .describe import Describer
from .loader import WORLD, Dataset, Scene

CATEGORIES = (
    "world_qrr", "world_trr", "world_topology", "world_size", "world_closer",
    "view_qrr", "view_trr", "view_axial", "view_occlusion", "view_size",
)
DEFAULT_PER_TYPE = 2
DEFAULT_SEED = 42
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SAME = "~="
HORIZONTAL = frozenset({"leftmost", "rightmost"})
DEPTH = frozenset({"frontmost", "rearmost"})


@dataclass(frozen=True)
class Candidate:
    """Something that can be asked: its objects, label and what the naming must avoid."""

    context: str
    constraint: str
    objects: tuple[str, ...]
    label: str
    klass: str  # label class for balanced sampling ("first"/"second" for object answers)
    difficulty: int | None = None
    boundary_flag: bool | None = None
    banned_attributes: frozenset = frozenset()
    banned_relations: frozenset = frozenset()


@dataclass(frozen=True)
class Question:
    """One multiple-choice question; `answer` is the letter of the option whose label is
    `label`. `image` is the dataset-relative path of the picture it is asked about (view k
    for view_k, the single view for world)."""

    question_id: str
    split: str
    scene_id: str
    category: str
    context: str  # "world" or "view_k"
    constraint: str  # the type as in the metadata: qrr, trr, axial, ...
    objects: tuple[str, ...]
    label: str  # the stored label, as text ("<", "12", "left_of", "obj_3", "~=", "yes")
    question: str
    options: tuple[str, ...]
    option_labels: tuple[str, ...]  # the label each option stands for
    answer: str
    difficulty: int | None
    boundary_flag: bool | None
    image: str

    @property
    def answer_index(self) -> int:
        return LETTERS.index(self.answer)

    @property
    def objects_json(self) -> str:
        return json.dumps(list(self.objects), separators=(",", ":"))

    def with_answer_at(self, position: int) -> "Question":
        """The same question with the correct option moved to `position`."""
        pairs = list(zip(self.options, self.option_labels, strict=True))
        pairs.insert(position, pairs.pop(self.answer_index))
        return replace(self, options=tuple(p[0] for p in pairs),
                       option_labels=tuple(p[1] for p in pairs), answer=LETTERS[position])


# --- candidates --------------------------------------------------------------------------------

def _pair_class(label: str, a: str, b: str) -> str:
    return "first" if label == a else "second" if label == b else SAME


def _view_contexts(scene: Scene) -> list[str]:
    return [v.view_id for v in scene.views]


def _compared(scene, context, constraint, make) -> list[Candidate]:
    return [make(c) for c in scene.constraints(constraint, context)]


def _qrr(scene, contexts):
    return _compared(scene, contexts, "qrr", lambda c: Candidate(
        c.context, "qrr", c.objects, c.comparator, c.comparator, c.difficulty, c.boundary_flag))


def _trr(scene, contexts):
    return _compared(scene, contexts, "trr", lambda c: Candidate(
        c.context, "trr", c.objects, str(c.hour), str(c.hour)))


def _topology(scene):
    return _compared(scene, WORLD, "topology", lambda c: Candidate(
        WORLD, "topology", c.objects, c.relation, c.relation))


def _axial(scene):
    def make(c):
        banned = HORIZONTAL if c.relation in ("left_of", "right_of") else DEPTH
        return Candidate(c.context, "axial", c.objects, c.relation, c.relation,
                         banned_relations=banned)
    return _compared(scene, _view_contexts(scene), "axial", make)


def _sizes(scene, context) -> list[Candidate]:
    """Every pair a < b: label the bigger one, or "~=" where the record has no entry."""
    bigger = {frozenset(c.objects): c.bigger for c in scene.constraints("size", context)}
    ids = [o.id for o in scene.objects]
    out = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            label = bigger.get(frozenset((a, b)), SAME)
            out.append(Candidate(context, "size", (a, b), label, _pair_class(label, a, b),
                                 banned_attributes=frozenset({"size"})))
    return out


def _closer(scene) -> list[Candidate]:
    """Every anchor and pair a < b of the others: the closer one, or "~=" when unrecorded."""
    closer = {(c.anchor, frozenset((c.closer, c.farther))): c.closer
              for c in scene.constraints("closer", WORLD)}
    ids = [o.id for o in scene.objects]
    out = []
    for anchor in ids:
        others = [i for i in ids if i != anchor]
        for k, a in enumerate(others):
            for b in others[k + 1:]:
                label = closer.get((anchor, frozenset((a, b))), SAME)
                out.append(Candidate(WORLD, "closer", (anchor, a, b), label,
                                     _pair_class(label, a, b)))
    return out


def _touching(sa: visibility.Silhouette, sb: visibility.Silhouette) -> bool:
    """Do two silhouettes share a pixel or touch (8-neighbours)?"""
    x0, y0 = max(sa.x0 - 1, sb.x0), max(sa.y0 - 1, sb.y0)
    x1, y1 = min(sa.x1 + 1, sb.x1), min(sa.y1 + 1, sb.y1)
    if x0 >= x1 or y0 >= y1:
        return False
    grown = np.zeros((sa.mask.shape[0] + 2, sa.mask.shape[1] + 2), dtype=bool)
    for dy in range(3):
        for dx in range(3):
            grown[dy:dy + sa.mask.shape[0], dx:dx + sa.mask.shape[1]] |= sa.mask
    # grown[r, c] covers image pixel (sa.y0 - 1 + r, sa.x0 - 1 + c)
    near = grown[y0 - sa.y0 + 1:y1 - sa.y0 + 1, x0 - sa.x0 + 1:x1 - sa.x0 + 1]
    return bool((near & sb.mask[y0 - sb.y0:y1 - sb.y0, x0 - sb.x0:x1 - sb.x0]).any())


def _occlusion(scene) -> list[Candidate]:
    """Per view: "yes" for each recorded (occluder, occluded); "no" for ordered pairs whose
    silhouettes overlap or touch while not one pixel of B's silhouette shows A (pairs with
    1-3 such pixels are neither, so no answer is a matter of pixel counting)."""
    spec = SceneSpec.from_record(scene.record)
    width, height = scene.image_size
    ids = [o.id for o in scene.objects]
    out = []
    for view in scene.views:
        recorded = {c.objects for c in scene.constraints("occlusion", view.view_id)}
        sils = visibility.silhouettes(spec.objects, camera.View(view.index, width, height))
        mask = view.mask
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if i == j:
                    continue
                if (a, b) in recorded:
                    label = "yes"
                else:
                    sb = sils[j]
                    shown = mask[sb.y0:sb.y1, sb.x0:sb.x1][sb.mask]
                    if (shown == i + 1).any() or not _touching(sils[i], sb):
                        continue
                    label = "no"
                out.append(Candidate(view.view_id, "occlusion", (a, b), label, label,
                                     banned_relations=DEPTH))
    return out


def candidates(scene: Scene, category: str) -> list[Candidate]:
    """Everything of one category that could be asked about the scene, in record order."""
    views = _view_contexts(scene)
    makers = {
        "world_qrr": lambda: _qrr(scene, WORLD),
        "world_trr": lambda: _trr(scene, WORLD),
        "world_topology": lambda: _topology(scene),
        "world_size": lambda: _sizes(scene, WORLD),
        "world_closer": lambda: _closer(scene),
        "view_qrr": lambda: _qrr(scene, views),
        "view_trr": lambda: _trr(scene, views),
        "view_axial": lambda: _axial(scene),
        "view_occlusion": lambda: _occlusion(scene),
        "view_size": lambda: [c for v in views for c in _sizes(scene, v)],
    }
    return makers[category]()


# --- templates ---------------------------------------------------------------------------------

def _percent(tau: float) -> str:
    return f"{tau * 100:g}%"


def _hours(label: str, g) -> list[tuple[str, str]]:
    """The true hour and three distractors at least two hours away, in clock order."""
    hour = int(label)
    allowed = [h for h in range(1, 13) if min((h - hour) % 12, (hour - h) % 12) >= 2]
    chosen = [hour] + [allowed.pop(rng.index(g, len(allowed))) for _ in range(3)]
    return [(f"{h} o'clock", str(h)) for h in sorted(chosen, key=lambda h: h % 12)]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _template(c: Candidate, names: list[str], tau: float, g) -> tuple[str, list]:
    """Question text and canonical options [(text, label)] of a candidate."""
    world = c.context == WORLD
    within = _percent(tau)
    if c.constraint == "qrr":
        a, b, x, y = names
        where = "the distance" if world else "the on-screen distance"
        lead = "In the 3D scene, is" if world else "In this image, is"
        text = (f"{lead} {where} between {a} and {b} shorter than, about the same as, or "
                f"longer than {where} between {x} and {y}?")
        return text, [("Shorter", "<"), (f"About the same (within {within})", SAME),
                      ("Longer", ">")]
    if c.constraint == "trr":
        target, ref1, ref2 = names
        if world:
            text = (f"Imagine standing at {ref1} and facing {ref2}, which is at 12 o'clock. "
                    f"Seen from above, at what clock position is {target}?")
        else:
            text = (f"In this image, take the direction from {ref1} to {ref2} as 12 o'clock. "
                    f"At what clock position around {ref1} is {target}?")
        return text, _hours(c.label, g)
    if c.constraint == "topology":
        a, b = names
        return (f"Are {a} and {b} apart, touching, or overlapping each other?",
                [("Apart", "disjoint"), ("Touching", "touching"), ("Overlapping", "overlapping")])
    if c.constraint == "axial":
        a, b = names
        if c.label in ("left_of", "right_of"):
            return (f"In this image, is {a} to the left of or to the right of {b}?",
                    [("To the left", "left_of"), ("To the right", "right_of")])
        return (f"In this image, is {a} in front of or behind {b}?",
                [("In front", "in_front_of"), ("Behind", "behind")])
    if c.constraint == "occlusion":
        a, b = names
        return (f"In this image, does {a} hide part of {b}?", [("Yes", "yes"), ("No", "no")])
    if c.constraint == "size":
        a, b = names
        ids = c.objects
        if world:
            return (f"Which is bigger in the 3D scene: {a} or {b}?",
                    [(_cap(a), ids[0]), (_cap(b), ids[1]), ("They are the same size", SAME)])
        return (f"In this image, which covers more of the picture with its whole outline "
                f"(hidden parts included): {a} or {b}?",
                [(_cap(a), ids[0]), (_cap(b), ids[1]), (f"About the same (within {within})",
                                                        SAME)])
    if c.constraint == "closer":
        anchor, a, b = names
        ids = c.objects
        return (f"In the 3D scene, which is closer to {anchor}: {a} or {b}?",
                [(_cap(a), ids[1]), (_cap(b), ids[2]),
                 (f"About equally close (within {within})", SAME)])
    raise ValueError(f"no template for constraint {c.constraint!r}")


# --- one scene ---------------------------------------------------------------------------------

@dataclass
class SceneQuestions:
    questions: list[Question]
    candidates: Counter  # per category: candidates considered
    skipped: Counter  # per category: candidates whose objects cannot be named uniquely


def _per_type(per_type) -> dict[str, int]:
    if isinstance(per_type, Mapping):
        unknown = sorted(set(per_type) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown question category {unknown[0]!r}: allowed are "
                             f"{', '.join(CATEGORIES)}")
        counts = {cat: per_type.get(cat, 0) for cat in CATEGORIES}
    else:
        counts = {cat: per_type for cat in CATEGORIES}
    for cat, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"questions per scene for {cat} must be an integer >= 0, got {n!r}")
    return counts


def _draw(pool: list[Candidate], count: int, g) -> list[Candidate]:
    """Label class first, then a candidate of it; without replacement (see module doc)."""
    by_class: dict[str, list[Candidate]] = {}
    for c in pool:
        by_class.setdefault(c.klass, []).append(c)
    classes = sorted(by_class)
    chosen = []
    while classes and len(chosen) < count:
        klass = classes[rng.index(g, len(classes))]
        members = by_class[klass]
        chosen.append(members.pop(rng.index(g, len(members))))
        if not members:
            classes.remove(klass)
    return chosen


def scene_questions(scene: Scene, per_type=DEFAULT_PER_TYPE,
                    seed: int = DEFAULT_SEED) -> SceneQuestions:
    """The questions of one scene, options in canonical order (see balance_answers).

    per_type: questions per category, an int for all or a mapping category -> count
    (categories it leaves out get none).
    """
    counts = _per_type(per_type)
    describers: dict[int, Describer] = {}
    position = {o.id: k for k, o in enumerate(scene.objects)}
    result = SceneQuestions([], Counter(), Counter())

    def names(c: Candidate) -> list[str] | None:
        view = 0 if c.context == WORLD else int(c.context.split("_")[1])
        if view not in describers:
            describers[view] = Describer(scene, view)
        found = [describers[view].describe(position[o], c.banned_attributes, c.banned_relations)
                 for o in c.objects]
        return None if None in found else [d.text for d in found]

    for category in CATEGORIES:
        if counts[category] == 0:
            continue
        pool, named = [], {}
        for c in candidates(scene, category):
            texts = names(c)
            if texts is None:
                result.skipped[category] += 1
            else:
                pool.append(c)
                named[id(c)] = texts
        result.candidates[category] += len(pool) + result.skipped[category]
        g = rng.generator(rng.h(f"{seed}:{scene.scene_id}:questions:{category}"))
        for n, c in enumerate(_draw(pool, counts[category], g)):
            text, options = _template(c, named[id(c)], scene.tau, g)
            labels = [label for _, label in options]
            view = None if c.context == WORLD else int(c.context.split("_")[1])
            result.questions.append(Question(
                question_id=f"{scene.scene_id}_{category}_{n:02d}", split=scene.split,
                scene_id=scene.scene_id, category=category, context=c.context,
                constraint=c.constraint, objects=c.objects, label=c.label, question=text,
                options=tuple(t for t, _ in options), option_labels=tuple(labels),
                answer=LETTERS[labels.index(c.label)], difficulty=c.difficulty,
                boundary_flag=c.boundary_flag,
                image=scene.single_view_path if view is None else scene.views[view].image_path,
            ))
    return result


# --- a whole dataset ---------------------------------------------------------------------------

def balance_answers(questions: list[Question], split: str, seed: int = DEFAULT_SEED):
    """Move each correct option to a position dealt from shuffled decks (see module doc)."""
    decks: dict[tuple[str, int], tuple[np.random.Generator, list[int]]] = {}
    out = []
    for q in questions:
        k = len(q.options)
        key = (q.category, k)
        if key not in decks:
            decks[key] = (rng.generator(rng.h(f"{seed}:{split}:answers:{q.category}:{k}")), [])
        g, deck = decks[key]
        if not deck:
            left = list(range(k))
            deck.extend(left.pop(rng.index(g, len(left))) for _ in range(k))
        out.append(q.with_answer_at(deck.pop(0)))
    return out


@dataclass
class QuestionSet:
    """Questions per split, and per category how many were considered and skipped."""

    questions: dict[str, list[Question]]
    candidates: Counter
    skipped: Counter

    def all(self) -> list[Question]:
        return [q for qs in self.questions.values() for q in qs]

    def asked(self) -> Counter:
        return Counter(q.category for q in self.all())

    def positions(self) -> dict[str, Counter]:
        """Per category, how often each letter is the answer."""
        out: dict[str, Counter] = {}
        for q in self.all():
            out.setdefault(q.category, Counter())[q.answer] += 1
        return out

    def summary(self) -> list[str]:
        """Lines for the export's report: counts, skips and answer positions per category."""
        asked, positions = self.asked(), self.positions()
        lines = [f"{'category':<16}{'asked':>7}{'skipped':>9}{'candidates':>12}"
                 "  answer positions"]
        for cat in CATEGORIES:
            if not self.candidates[cat] and not asked[cat]:
                continue
            letters = " ".join(f"{k}:{v}" for k, v in sorted(positions.get(cat, {}).items()))
            lines.append(f"{cat:<16}{asked[cat]:>7}{self.skipped[cat]:>9}"
                         f"{self.candidates[cat]:>12}  {letters}")
        return lines


def _scene_task(task) -> SceneQuestions:
    root, entry, per_type, seed = task
    return scene_questions(Scene.from_entry(root, entry), per_type, seed)


def generate(dataset: Dataset, splits: Iterable[str] | None = None,
             per_type=DEFAULT_PER_TYPE, seed: int = DEFAULT_SEED, jobs: int = 1,
             progress=None) -> QuestionSet:
    """Questions for every scene of the given splits (all by default), answers balanced;
    scenes on `jobs` processes (the same questions for any number), `progress(n, total)`
    called as the n-th of the total scenes is done."""
    names = list(dataset) if splits is None else list(splits)
    entries = [(split, entry) for split in names for entry in dataset[split].entries]
    tasks = [(dataset.root, entry, per_type, seed) for _, entry in entries]
    result = QuestionSet({split: [] for split in names}, Counter(), Counter())
    done = parallel.counted(parallel.ordered_map(_scene_task, tasks, jobs), len(tasks), progress)
    for (split, _), sq in zip(entries, done, strict=True):
        result.questions[split].extend(sq.questions)
        result.candidates.update(sq.candidates)
        result.skipped.update(sq.skipped)
    for split in names:
        result.questions[split] = balance_answers(result.questions[split], split, seed)
    return result
