"""Multiple-choice questions from the ground truth, made so that only the image answers them.

Every answer is a stored label (dataset.candidates lists what can be asked). A question is
asked only when a person could see its answer in its picture (dataset.margins: relations
in the image by a pixel or depth margin, no near ties, nothing mostly hidden), when its
objects can be named in that picture without a word that hints at the answer
(dataset.describe, candidates.NAMINGS), and when no option text contains another. What is
not asked is counted, per reason. `keep_near_ties` also asks the near ties, each with the
names of the margins it fails in `margins`.

One scene (draft_scene, on any process): per category, per label class, up to
ceil(2 per_type / k) candidates are drafted (k classes), each a complete question with its
answer as option A; balance.py then picks the split's questions and deals the letters.

World questions are about the single view (view 0's picture) and name objects as seen in
it; each also has a multi-view form (the four views as images) whose names use attributes
only, or say "in image 1" where a relation is needed.

Randomness: numpy Generator(PCG64(h(text))), `.random()` draws only, a choice among k items
being floor(u * k) (core.rng). Seeds and draw order:
- per scene and category, h("<seed>:<scene_id>:questions:<category>"): for each class in
  CLASSES order, candidates of that class drawn one by one without replacement (record
  order), until the class's cap is drafted or none is left;
- per question, h("<seed>:<scene_id>:<category>:<context>:<object ids joined by ,>"): one
  draw picks the wording; a clock question then draws one of the 35 sets of four hours, no
  two adjacent, that hold the true hour (so each offered hour is equally likely the true
  one); then the options other than the answer are put in order by draws among those left.
  That seed also orders a scene's questions of one category (question ids).
"""

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np

from ..core import parallel, rng
from . import balance, candidates, wording
from .describe import Describer, Description
from .loader import WORLD, Dataset, Scene

CATEGORIES = candidates.CATEGORIES
DEFAULT_PER_TYPE = 2
DEFAULT_SEED = 42
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SAME = wording.SAME
# skip reasons, in the order a candidate is judged
NOT_VISIBLE = "not_visible"  # the relation asked does not show in the image by the margin
NEAR_TIE = "near_tie"  # fails a margin of what a person can see (kept by keep_near_ties)
UNNAMED = "unnamed"  # an object has no unique name without a word that hints at the answer
OPTION_TEXT = "option_text"  # an option's text contains another's
SKIPS = (NOT_VISIBLE, NEAR_TIE, UNNAMED, OPTION_TEXT)
CLOCK_SETS = [s for s in combinations(range(1, 13), 4)
              if all(min((a - b) % 12, (b - a) % 12) >= 2 for a, b in combinations(s, 2))]


@dataclass(frozen=True)
class Question:
    """One question, with its multiple-choice, open-answer and (world) multi-view forms.
    `answer` is the letter of the option whose label is `label`; `image` is the
    dataset-relative path of its picture (view k for view_k, the single view for world)."""

    question_id: str
    index: int  # its row in the split, from 1
    split: str
    scene_id: str
    n_objects: int  # the scene's
    category: str
    context: str  # "world" or "view_k"
    constraint: str  # the type as in the metadata: qrr, trr, axial, ...
    objects: tuple[str, ...]
    descriptions: tuple[str, ...]  # the name used for each of `objects`
    label: str  # the stored label, as text ("<", "12", "left_of", "obj_3", "~=", "yes")
    question: str
    options: tuple[str, ...]
    option_labels: tuple[str, ...]  # the label each option stands for
    answer: str
    difficulty: int | None
    boundary_flag: bool | None
    image: str
    wording: int
    margins: tuple[str, ...]  # the margins it fails (only with keep_near_ties)
    open_question: str
    answer_text: str
    answer_choices: tuple[str, ...]
    multiview_question: str | None  # world questions only
    multiview_descriptions: tuple[str, ...] | None
    view_images: tuple[str, ...] | None  # world questions: the four views' paths
    seed: int = field(repr=False)  # its own seed (module doc)

    @property
    def answer_index(self) -> int:
        return LETTERS.index(self.answer)

    def with_answer_at(self, position: int) -> "Question":
        """The same question with the correct option moved to `position` (the others keep
        their order)."""
        pairs = list(zip(self.options, self.option_labels, strict=True))
        pairs.insert(position, pairs.pop(self.answer_index))
        return replace(self, options=tuple(p[0] for p in pairs),
                       option_labels=tuple(p[1] for p in pairs), answer=LETTERS[position])


# --- one scene ---------------------------------------------------------------------------------

def label_of(constraint: str, klass: str, ids: tuple[str, ...]) -> str:
    """The stored label a class stands for: an object id for size and closer answers."""
    if constraint in ("size", "closer"):
        first, second = ids[-2:]
        return {"first": first, "second": second, "same": SAME}[klass]
    return klass


def cap_per_class(per_type: int, classes: int) -> int:
    """Drafts per class and scene: twice a scene's fair share, so scenes can stand in for
    each other, and at least one."""
    return max(1, math.ceil(2 * per_type / classes))


class Namer:
    """The names of a scene's objects per view and NAMINGS entry, computed once."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self._describers: dict[int, Describer] = {}
        self._tables: dict[tuple[int, int], list[Description | None]] = {}

    def table(self, view: int, naming: int) -> list[Description | None]:
        key = (view, naming)
        if key not in self._tables:
            if view not in self._describers:
                self._describers[view] = Describer(self.scene, view)
            banned = candidates.NAMINGS[naming]
            self._tables[key] = [self._describers[view].describe(i, *banned)
                                 for i in range(len(self.scene.objects))]
        return self._tables[key]

    def named(self, pool: candidates.Pool) -> np.ndarray:
        """Per candidate: every object has a name in its view."""
        out = np.zeros(len(pool), dtype=bool)
        combos = pool.views * len(candidates.NAMINGS) + pool.naming
        for combo in np.unique(combos).tolist():
            rows = combos == combo
            view, naming = divmod(combo, len(candidates.NAMINGS))
            ok = np.array([d is not None for d in self.table(view, naming)], dtype=bool)
            out[rows] = ok[pool.objects[rows]].all(axis=1)
        return out


@dataclass
class SceneDraft:
    """A scene's drafted questions (per category and class, in drawn order) and counts."""

    scene_id: str
    drafts: dict[str, dict[str, list[Question]]]
    counts: dict[str, Counter]  # per category: candidates, each skip reason, near-tie names


def _per_type(per_type) -> dict[str, int]:
    if isinstance(per_type, Mapping):
        unknown = sorted(set(per_type) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown question category {unknown[0]!r}: allowed are "
                             f"{', '.join(CATEGORIES)}")
        counts = {cat: per_type.get(cat, 0) for cat in CATEGORIES}
    else:
        counts = dict.fromkeys(CATEGORIES, per_type)
    for cat, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"questions per scene for {cat} must be an integer >= 0, got {n!r}")
    return counts


def _shuffled(items: list, g) -> list:
    """The options other than the answer, in a drawn order."""
    return balance.draw_order(g, items)


def clock_hours(hour: int, g) -> tuple[int, ...]:
    """Four hours, no two adjacent, holding `hour`: one draw among the 35 such sets."""
    sets = [s for s in CLOCK_SETS if hour in s]
    return sets[rng.index(g, len(sets))]


def _contains_another(texts: list[str]) -> bool:
    low = [t.lower() for t in texts]
    return any(a in b for i, a in enumerate(low) for j, b in enumerate(low) if i != j)


def _draft(scene: Scene, pool: candidates.Pool, k: int, namer: Namer,
           seed: int) -> Question | None:
    """Candidate k as a question with its answer at A; None when option texts collide."""
    category = pool.category
    constraint = category.split("_", 1)[1]
    klass = pool.classes[k]
    view = int(pool.views[k])
    context = WORLD if category.startswith("world") else f"view_{view}"
    objects = pool.objects[k].tolist()
    ids = tuple(scene.objects[i].id for i in objects)
    table = namer.table(view, int(pool.naming[k]))
    found = [table[i] for i in objects]
    names = [d.text for d in found]
    own = rng.h(f"{seed}:{scene.scene_id}:{category}:{context}:{','.join(ids)}")
    g = rng.generator(own)
    chosen = rng.index(g, len(wording.WORDINGS[wording.template_key(category, klass)]))
    hours = clock_hours(int(klass), g) if constraint == "trr" else ()
    offered = wording.options(category, klass, names, scene.tau, hours)
    right = [o for o in offered if o[1] == klass]
    ordered = right + _shuffled([o for o in offered if o[1] != klass], g)
    if _contains_another([text for text, _ in ordered]):
        return None
    text = wording.question_text(category, klass, chosen, names)
    multi = multi_names = None
    if context == WORLD:
        multi_names = tuple(wording.MULTI_VIEW_NAME.format(d.text) if d.relation else d.text
                            for d in found)
        multi = wording.MULTI_VIEW_INTRO + wording.question_text(category, klass, chosen,
                                                                 list(multi_names))
    difficulty = None if pool.difficulty is None else int(pool.difficulty[k])
    boundary = None if pool.boundary is None else bool(pool.boundary[k])
    return Question(
        question_id="", index=0, split=scene.split, scene_id=scene.scene_id,
        n_objects=scene.n_objects, category=category, context=context, constraint=constraint,
        objects=ids,
        descriptions=tuple(names), label=label_of(constraint, klass, ids), question=text,
        options=tuple(t for t, _ in ordered),
        option_labels=tuple(label_of(constraint, c, ids) for _, c in ordered), answer="A",
        difficulty=difficulty, boundary_flag=boundary,
        image=scene.single_view_path if context == WORLD else scene.views[view].image_path,
        wording=chosen, margins=tuple(candidates.near_names(int(pool.near[k]))),
        open_question=f"{text} {wording.open_grammar(category, klass, names, scene.tau)}",
        answer_text=wording.OPEN_WORDS[klass],
        answer_choices=wording.open_choices(category, klass),
        multiview_question=multi, multiview_descriptions=multi_names,
        view_images=tuple(v.image_path for v in scene.views) if context == WORLD else None,
        seed=own)


def draft_scene(scene: Scene, per_type=DEFAULT_PER_TYPE, seed: int = DEFAULT_SEED,
                keep_near_ties: bool = False) -> SceneDraft:
    """The scene's drafts of every category with a count above 0 (module doc)."""
    counts = _per_type(per_type)
    namer = Namer(scene)
    result = SceneDraft(scene.scene_id, {}, {})
    for category in CATEGORIES:
        if counts[category] == 0:
            continue
        pool = candidates.pool(scene, category)
        classes = wording.CLASSES[category]
        tally = Counter(candidates=len(pool))
        shown = pool.visible
        clear = shown & ((pool.near == 0) | keep_near_ties)
        eligible = clear & namer.named(pool)
        tally[NOT_VISIBLE] = np.count_nonzero(~shown)
        tally[NEAR_TIE] = np.count_nonzero(shown & ~clear)
        tally[UNNAMED] = np.count_nonzero(clear & ~eligible)
        for name, bit in candidates.NEAR_BIT.items():
            tally[name] = np.count_nonzero(shown & ~clear & (pool.near & bit != 0))
        g = rng.generator(rng.h(f"{seed}:{scene.scene_id}:questions:{category}"))
        cap = cap_per_class(counts[category], len(classes))
        drafts = {}
        for klass in classes:
            members = np.flatnonzero(eligible & (pool.classes == klass)).tolist()
            picked = []
            while members and len(picked) < cap:
                q = _draft(scene, pool, members.pop(rng.index(g, len(members))), namer, seed)
                if q is None:
                    tally[OPTION_TEXT] += 1
                else:
                    picked.append(q)
            drafts[klass] = picked
        result.drafts[category] = drafts
        result.counts[category] = +tally
    return result


def scene_questions(scene: Scene, per_type=DEFAULT_PER_TYPE, seed: int = DEFAULT_SEED,
                    keep_near_ties: bool = False) -> list[Question]:
    """The questions one scene would get as a split of its own (balance and letters as in
    generate): for looking at one scene."""
    return select([draft_scene(scene, per_type, seed, keep_near_ties)], scene.split,
                  _per_type(per_type), seed)


# --- a split -----------------------------------------------------------------------------------

def select(drafts: list[SceneDraft], split: str, per_type: dict[str, int], seed: int,
           balances: dict | None = None) -> list[Question]:
    """The split's questions from its scenes' drafts (balance.py), numbered: question ids
    per scene and category in the order of their seeds, indices from 1 in row order
    (scene, category, id); answers dealt. `balances` collects each category's Balance."""
    picked: list[dict[str, list[Question]]] = [{} for _ in drafts]
    for category in CATEGORIES:
        if not per_type.get(category):
            continue
        classes = wording.CLASSES[category]
        supply = [{c: len(d.drafts[category][c]) for c in classes} for d in drafts]
        plan = balance.plan(supply, classes, per_type[category],
                            f"{seed}:{split}:balance:{category}")
        if balances is not None:
            balances[category] = plan
        for s, d in enumerate(drafts):
            chosen = [q for c in classes for q in d.drafts[category][c][:plan.takes[s][c]]]
            picked[s][category] = sorted(chosen, key=lambda q: q.seed)
    rows = []
    for s, d in enumerate(drafts):
        for category, qs in picked[s].items():
            for n, q in enumerate(qs):
                rows.append(replace(q, question_id=f"{d.scene_id}_{category}_{n:02d}",
                                    index=len(rows) + 1))
    dealt = {}
    for category in CATEGORIES:
        mine = [q for q in rows if q.category == category]
        for q in balance.deal_answers(mine, f"{seed}:{split}:answers:{category}"):
            dealt[q.index] = q
    return [dealt[q.index] for q in rows]


# --- a whole dataset ---------------------------------------------------------------------------

@dataclass
class QuestionSet:
    """Questions per split; per category what was considered and skipped (all splits);
    per split and category how the classes were balanced."""

    questions: dict[str, list[Question]]
    counts: dict[str, Counter]
    balances: dict[str, dict[str, balance.Balance]]

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

    def shortfalls(self) -> list[str]:
        """One line per split and category that got fewer questions than its target."""
        return [f"{split} {cat}: {b.asked} of {b.target} questions: {b.shortfall()}"
                for split, per_cat in self.balances.items() for cat, b in per_cat.items()
                if b.shortfall()]

    def summary(self) -> list[str]:
        """Lines for the export's report: per category asked, candidates and skips (with
        their reasons), answer positions; then every shortfall."""
        asked, positions = self.asked(), self.positions()
        lines = [f"{'category':<16}{'asked':>7}{'candidates':>12}{'not_visible':>12}"
                 f"{'near_tie':>10}{'unnamed':>9}{'option_text':>12}  answer positions"]
        for cat in CATEGORIES:
            if cat not in self.counts:
                continue
            c = self.counts[cat]
            letters = " ".join(f"{k}:{v}" for k, v in sorted(positions.get(cat, {}).items()))
            lines.append(f"{cat:<16}{asked[cat]:>7}{c['candidates']:>12}{c[NOT_VISIBLE]:>12}"
                         f"{c[NEAR_TIE]:>10}{c[UNNAMED]:>9}{c[OPTION_TEXT]:>12}  {letters}")
        return lines + self.shortfalls()


def _scene_task(task) -> SceneDraft:
    root, entry, per_type, seed, keep = task
    return draft_scene(Scene.from_entry(root, entry), per_type, seed, keep)


def sample_entries(entries: list, limit: int | None, key: str) -> list:
    """At most `limit` entries, drawn by h(key) (one draw each among those left), in their
    original order; all of them when limit is None or not smaller."""
    if limit is None or len(entries) <= limit:
        return list(entries)
    chosen = balance.draw_order(rng.generator(rng.h(key)), range(len(entries)), limit)
    return [entries[i] for i in sorted(chosen)]


def generate(dataset: Dataset, splits: Iterable[str] | None = None,
             per_type=DEFAULT_PER_TYPE, seed: int = DEFAULT_SEED, jobs: int = 1,
             progress=None, keep_near_ties: bool = False,
             limit: int | None = None) -> QuestionSet:
    """Questions for every scene of the given splits (all by default): per_type x the
    split's scenes per category where the classes allow; scenes drafted on `jobs` processes
    (the same questions for any number), `progress(n, total)` called as the n-th of the
    total scenes is done. `limit`: at most that many scenes per split, drawn by
    h("<seed>:<split>:scenes")."""
    counts_per_type = _per_type(per_type)
    names = list(dataset) if splits is None else list(splits)
    entries = [(split, entry) for split in names
               for entry in sample_entries(dataset[split].entries, limit, f"{seed}:{split}:scenes")]
    tasks = [(dataset.root, entry, counts_per_type, seed, keep_near_ties)
             for _, entry in entries]
    done = parallel.counted(parallel.ordered_map(_scene_task, tasks, jobs), len(tasks), progress)
    drafts: dict[str, list[SceneDraft]] = {split: [] for split in names}
    counts: dict[str, Counter] = {}
    for (split, _), d in zip(entries, done, strict=True):
        drafts[split].append(d)
        for cat, tally in d.counts.items():
            counts.setdefault(cat, Counter()).update(tally)
    result = QuestionSet({}, counts, {})
    for split in names:
        result.balances[split] = {}
        result.questions[split] = select(drafts[split], split, counts_per_type, seed,
                                         result.balances[split])
    return result
