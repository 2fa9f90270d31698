"""The constraint-extraction task (T2) as exported prompts: per scene and context, its
picture(s), the objects with their names, a stated subset of relations to give, and the
exact JSON schema of the answer (evaluation.extraction.schema, the scorer's own).

The questions' rules decide what is asked (FORMAT 10.2, 10.3):
- names: attributes only (size is asked, so never size; never a relation); an object no such
  name singles out is left out of the prompt and counted (`unnamed`);
- relations: the candidates of dataset.candidates for the type's category, visible in the
  image and clear of every margin (keep_near_ties: the near ties too), among listed objects.
Units, the relations stated to the model, per type:
- qrr, trr, topology, closer, size: one candidate (two pairs, a triple, a pair);
- axial: a pair whose left/right and front/behind records both show in the image;
- occlusion: a pair of listed objects, unless one hides a few pixels of the other (a near
  tie: less than 5% of it); most pairs hide nothing of each other.
At most `k` units per type, drawn by h("<seed>:<scene_id>:extraction:<context>:<type>")
(core.rng: one draw among those left per unit) and listed in record order.

The gold answer states, per asked type, what the record says about the asked units: an
answer valid against the schema. Nothing is stated for "about equally close" (closer), the
same size (world size) or a pair where nothing is hidden (occlusion).

World prompts show the four views (view_0..view_3); view_k prompts view k's image. `layout`
keeps what reconstruction (T3) compares with: the listed objects' ground positions and
centroid heights, the view's ground directions and the split's tau.
"""

import json
from dataclasses import dataclass

import numpy as np

from ..core import parallel, rng
from . import balance, candidates, wording
from .describe import Describer
from .evaluation.extraction import schema
from .loader import WORLD, Dataset, Scene
from .questions import DEFAULT_SEED

DEFAULT_K = 20
TYPES = {"world": ("qrr", "trr", "topology", "size", "closer"),
         "view": ("qrr", "trr", "axial", "occlusion", "size")}
INTRO = {
    "world": "The four images show the same scene from four sides: objects standing on a "
             "ground plane.",
    "view": "The image shows a scene of objects standing on a ground plane.",
}
ASK = {  # (type, context kind) -> what the model states for each unit listed below it
    ("qrr", "world"): "comparator of two distances in the 3D scene, each between the centres "
                      'of two objects: "<" when the first is shorter, ">" when longer, "~=" '
                      "when they differ by at most {tau} of the longer one. One entry per "
                      "line.",
    ("qrr", "view"): "comparator of two distances measured on the image in pixels, each "
                     'between the centres of two objects: "<" when the first is shorter, ">" '
                     'when longer, "~=" when they differ by at most {tau} of the longer one. '
                     "One entry per line.",
    ("trr", "world"): "hour (1-12) at which target stands, seen from above, standing at ref1 "
                      "and facing ref2 (12 o'clock). One entry per line.",
    ("trr", "view"): "hour (1-12) to which the line from ref1 to target points in the image, "
                     "when the line from ref1 to ref2 points to 12 o'clock. One entry per line.",
    ("topology", "world"): 'relation of the two (obj1 and obj2) seen from straight above: '
                           '"touching" when their outlines touch, "disjoint" when there is a '
                           "gap. One entry per line.",
    ("size", "world"): "bigger and smaller of the two in the 3D scene. One entry per line, "
                       "none when the two are the same size.",
    ("size", "view"): "bigger: the one of the two that covers more of the image, smaller: "
                      "the other. One entry per line.",
    ("closer", "world"): "closer and farther: which of the two others is closer to the "
                         "anchor in the 3D scene (centre to centre), and which farther. One "
                         "entry per line, none when they are equally close within {tau}.",
    ("axial", "view"): 'relation, two entries per line (obj1 and obj2): obj1 "left_of" or '
                       '"right_of" obj2 in the image, and obj1 "in_front_of" (nearer the '
                       'camera) or "behind" obj2.',
    ("occlusion", "view"): "occluder and occluded: an entry for each of the two that hides "
                           "part of the other in the image; none when neither hides the other.",
}
UNIT_TEXT = {  # type -> one listed unit, from its object ids
    "qrr": "pair1 [{0}, {1}], pair2 [{2}, {3}]",
    "trr": "target {0}, ref1 {1}, ref2 {2}",
    "closer": "anchor {0}: {1} and {2}",
}


@dataclass(frozen=True)
class Prompt:
    """One extraction prompt; `images` are dataset-relative paths. `question_id` names it
    like a question row (<scene_id>_<context>), `question` is the prompt's text."""

    question_id: str
    index: int  # its row in the split, from 1
    split: str
    scene_id: str
    n_objects: int
    context: str
    images: tuple[str, ...]
    objects: tuple[str, ...]
    descriptions: tuple[str, ...]
    unnamed: int
    asked: dict  # type -> [unit: object ids]
    answer: dict  # the gold answer: type -> [entry]
    schema: dict
    question: str
    layout: dict

    def json_fields(self) -> dict[str, str]:
        """The nested fields as the exports write them: compact JSON text."""
        return {name: json.dumps(getattr(self, name), separators=(",", ":"))
                for name in JSON_FIELDS}


JSON_FIELDS = ("asked", "answer", "schema", "layout")


def kind(context: str) -> str:
    return "world" if context == WORLD else "view"


def _entry(type_: str, ids: tuple[str, ...], klass: str) -> dict | None:
    """The answer's entry for one unit of a candidate class (None: nothing to state)."""
    if type_ == "qrr":
        return {"pair1": list(ids[:2]), "pair2": list(ids[2:]), "comparator": klass}
    if type_ == "trr":
        return {"target": ids[0], "ref1": ids[1], "ref2": ids[2], "hour": int(klass)}
    if type_ in ("topology", "axial"):
        return {"obj1": ids[0], "obj2": ids[1], "relation": klass}
    if type_ == "occlusion":
        return {"occluder": ids[0], "occluded": ids[1]} if klass == "yes" else None
    if klass == "same":
        return None
    first, second = ids[-2:] if klass == "first" else ids[-2:][::-1]
    if type_ == "size":
        return {"bigger": first, "smaller": second}
    return {"anchor": ids[0], "closer": first, "farther": second}


def _units(scene: Scene, context: str, type_: str, listed: set[int], keep: bool) -> list:
    """[(object indices of the unit, [(object indices, class) of its records])] of one type,
    in record order, among listed objects (module doc)."""
    pool = candidates.pool(scene, f"{kind(context)}_{type_}")
    view = 0 if context == WORLD else int(context[5:])
    here = pool.views == view
    clear = pool.visible & ((pool.near == 0) | keep)
    rows = [k for k in np.flatnonzero(here).tolist()
            if set(pool.objects[k].tolist()) <= listed]

    def record(k: int) -> tuple[tuple[int, ...], str]:
        return tuple(pool.objects[k].tolist()), pool.classes[k]

    if type_ not in ("axial", "occlusion"):
        return [(record(k)[0], [record(k)]) for k in rows if clear[k]]
    by_pair: dict[tuple[int, ...], list[int]] = {}
    for k in rows:
        by_pair.setdefault(tuple(sorted(record(k)[0])), []).append(k)
    if type_ == "axial":  # both axes recorded, both visible
        pairs = [p for p, ks in by_pair.items() if clear[ks].all()
                 and {pool.classes[k] in wording.LEFT_RIGHT for k in ks} == {True, False}]
    else:  # every pair of listed objects but those hiding a few pixels of each other
        order = sorted(listed)
        pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]
                 if clear[by_pair.get((a, b), [])].all()]
    return [(p, [record(k) for k in by_pair.get(p, [])]) for p in pairs]


def _question(context: str, ids, names, asked: dict, answer_schema: dict, tau: float,
              unnamed: int) -> str:
    lines = [INTRO[kind(context)], "", "The objects, by id:"]
    lines += [f"- {i}: {name}" for i, name in zip(ids, names, strict=True)]
    if unnamed:
        lines.append(f"({unnamed} other object{'s' if unnamed > 1 else ''} in the picture "
                     "cannot be told apart by these words: leave them out.)")
    lines += ["", "Give these relations:"]
    for type_, units in asked.items():
        ask = ASK[(type_, kind(context))].format(tau=wording.percent(tau))
        lines += ["", f"{type_}: {ask}"]
        lines += ["- " + UNIT_TEXT.get(type_, "{0} and {1}").format(*unit) for unit in units]
    lines += ["", "Answer with one JSON object and nothing else (or that object alone in one "
              "```json block), with one list per type above, valid against this JSON Schema:",
              json.dumps(answer_schema, separators=(",", ":"))]
    return "\n".join(lines)


def scene_prompts(scene: Scene, k: int = DEFAULT_K, seed: int = DEFAULT_SEED,
                  keep_near_ties: bool = False) -> list[Prompt]:
    """The prompts of one scene (index 0 until numbered in its split), one per context with
    something to ask."""
    describer = Describer(scene, 0)
    found = [describer.describe(i, candidates.SIZE, candidates.ALL_RELATIONS)
             for i in range(len(scene.objects))]
    order = [i for i, d in enumerate(found) if d is not None]
    listed = set(order)
    ids = tuple(scene.objects[i].id for i in order)
    names = tuple(found[i].text for i in order)
    truth = {"tau": scene.tau,
             "positions": [list(scene.objects[i].centroid[:2]) for i in order],
             "heights": [scene.objects[i].centroid[2] for i in order]}
    out = []
    for context in scene.contexts:
        asked, answer = {}, {}
        for type_ in TYPES[kind(context)]:
            units = _units(scene, context, type_, listed, keep_near_ties)
            g = rng.generator(rng.h(f"{seed}:{scene.scene_id}:extraction:{context}:{type_}"))
            drawn = balance.draw_order(g, range(len(units)), min(k, len(units)))
            if not drawn:
                continue
            chosen = [units[u] for u in sorted(drawn)]
            asked[type_] = [tuple(scene.objects[i].id for i in unit) for unit, _ in chosen]
            entries = [_entry(type_, tuple(scene.objects[i].id for i in objs), klass)
                       for _, records in chosen for objs, klass in records]
            answer[type_] = [e for e in entries if e is not None]
        if not asked:
            continue
        answer_schema = schema(ids, tuple(asked))
        layout = dict(truth)
        if context == WORLD:
            images = tuple(v.image_path for v in scene.views)
        else:
            view = scene.views[int(context[5:])]
            images = (view.image_path,)
            layout["directions"] = {d: list(view.directions[d][:2]) for d in ("left", "front")}
        unnamed = len(scene.objects) - len(listed)
        out.append(Prompt(
            f"{scene.scene_id}_{context}", 0, scene.split, scene.scene_id, scene.n_objects,
            context, images, ids, names, unnamed, asked, answer, answer_schema,
            _question(context, ids, names, asked, answer_schema, scene.tau, unnamed), layout))
    return out


def _scene_task(task) -> list[Prompt]:
    root, entry, k, seed, keep = task
    return scene_prompts(Scene.from_entry(root, entry), k, seed, keep)


def generate(dataset: Dataset, splits, k: int = DEFAULT_K, seed: int = DEFAULT_SEED,
             jobs: int = 1, progress=None,
             keep_near_ties: bool = False) -> dict[str, list[Prompt]]:
    """Per split, its prompts numbered from 1 in scene order, then context order; scenes on
    `jobs` processes (the same prompts for any number)."""
    tasks = [(dataset.root, entry, k, seed, keep_near_ties)
             for split in splits for entry in dataset[split].entries]
    done = parallel.counted(parallel.ordered_map(_scene_task, tasks, jobs), len(tasks), progress)
    out: dict[str, list[Prompt]] = {split: [] for split in splits}
    for prompts in done:
        for p in prompts:
            rows = out[p.split]
            rows.append(Prompt(**{**p.__dict__, "index": len(rows) + 1}))
    return out
