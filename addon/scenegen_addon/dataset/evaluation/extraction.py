"""Constraint extraction (T2): the answer's JSON schema, its strict parsing, and scoring.

A prompt asks, for one scene and context, for the relations of stated types among stated
objects; the answer is one JSON object with a list per type (`schema`). A reply is read
only when it is that object, alone or as the only content of one ```json fenced block, and
valid against the schema; otherwise it is unparseable (counted; it predicts nothing).

Scoring is set arithmetic on canonical facts (relations.Fact): a predicted fact is a true
positive when the gold states it, else a false positive (a wrong value, an object the gold
leaves out, or a relation the gold omits, such as an occlusion under 4 pixels); a gold fact
not predicted is a false negative. Precision, recall and F1 per type and over all types.

Consistency: the predicted strict qrr relations of one prompt form a directed graph
(distance |ab| -> |cd| when |ab| < |cd|); a relation is on a contradiction cycle when its
two distances are in one strongly connected component (a < b < c < a). "~=" relations are
not edges (a tolerance is not transitive) but count among the predicted. The headline is
F1 x (1 - the share of predicted qrr relations on a cycle).
"""

import functools
import json
import re
from dataclasses import dataclass, field

from . import relations
from .relations import Fact

TYPES = relations.TYPES
VALUES = {
    "comparator": ["<", "~=", ">"],
    "axial": ["left_of", "right_of", "in_front_of", "behind"],
    "topology": ["disjoint", "touching"],
}
FIELDS = {  # per type: its object fields (in record order) and its value field, if any
    "qrr": (("pair1", "pair2"), "comparator"),
    "trr": (("target", "ref1", "ref2"), "hour"),
    "axial": (("obj1", "obj2"), "relation"),
    "topology": (("obj1", "obj2"), "relation"),
    "size": (("bigger", "smaller"), None),
    "closer": (("anchor", "closer", "farther"), None),
    "occlusion": (("occluder", "occluded"), None),
}
_FENCED = re.compile(r"```(?:json)?\s*\n(.*)\n\s*```", re.DOTALL)


def schema(object_ids, types) -> dict:
    """The JSON Schema (draft 2020-12) of the answer: an object with exactly one list per
    asked type, each entry naming objects by id (one of `$defs/id`)."""
    obj = {"$ref": "#/$defs/id"}
    pair = {"type": "array", "items": obj, "minItems": 2, "maxItems": 2}
    value = {
        "qrr": {"enum": VALUES["comparator"]},
        "trr": {"type": "integer", "minimum": 1, "maximum": 12},
        "axial": {"enum": VALUES["axial"]},
        "topology": {"enum": VALUES["topology"]},
    }
    properties = {}
    for t in types:
        names, value_field = FIELDS[t]
        props = {n: pair if t == "qrr" else obj for n in names}
        if value_field:
            props[value_field] = value[t]
        properties[t] = {"type": "array", "items": {
            "type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"id": {"enum": list(object_ids)}}, "type": "object",
            "properties": properties, "required": list(types), "additionalProperties": False}


@functools.lru_cache(maxsize=1024)
def _validator(schema_text: str):
    """The validator of one schema (its JSON text), made once: the schemas are the
    scorer's own (`schema`), so they are not checked again."""
    import jsonschema

    answer_schema = json.loads(schema_text)
    return jsonschema.validators.validator_for(answer_schema)(answer_schema)


def _facts(answer: dict, context: str) -> list[Fact]:
    return [relations.from_fields(t, context, item) for t in answer for item in answer[t]]


def parse(reply, answer_schema: dict, context: str) -> list[Fact] | None:
    """The facts of a reply (text, or an already decoded object), None if unparseable."""
    if isinstance(reply, str):
        text = reply.strip()
        fenced = _FENCED.fullmatch(text)
        try:
            reply = json.loads(fenced.group(1) if fenced else text)
        except ValueError:
            return None
    if not _validator(json.dumps(answer_schema, sort_keys=True)).is_valid(reply):
        return None
    return _facts(reply, context)


def cycle_members(facts) -> set[Fact]:
    """The strict qrr facts on a contradiction cycle (module doc); facts of one prompt."""
    import networkx as nx

    edges = {}
    for f in facts:
        if f.type == "qrr" and f.value != "~=":
            a, b = f.objects[:2], f.objects[2:]
            edges[f] = (a, b) if f.value == "<" else (b, a)
    graph = nx.DiGraph(list(edges.values()))
    component = {node: k for k, nodes in enumerate(nx.strongly_connected_components(graph))
                 for node in nodes}
    return {f for f, (u, v) in edges.items() if component[u] == component[v]}


@dataclass
class Tally:
    """Counts of one type (or all): true and false positives, false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, gold: set, predicted: set) -> None:
        self.tp += len(gold & predicted)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    def merge(self, other: "Tally") -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    def figures(self) -> dict:
        def ratio(a, b):
            return a / b if b else None

        return {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": ratio(self.tp, self.tp + self.fp),
                "recall": ratio(self.tp, self.tp + self.fn),
                "f1": ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)}


@dataclass
class Extraction:
    """The running score of extraction answers, one prompt at a time."""

    types: dict = field(default_factory=lambda: {t: Tally() for t in TYPES})
    prompts: int = 0
    unparseable: int = 0
    missing: int = 0
    qrr_predicted: int = 0
    qrr_on_cycle: int = 0

    def add(self, gold, predicted, missing: bool = False) -> None:
        """One prompt: its gold facts and the parsed answer (None: unparseable, or no
        answer at all when `missing`)."""
        self.prompts += 1
        if predicted is None:
            self.missing += missing
            self.unparseable += not missing
            predicted = []
        gold, predicted = set(gold), set(predicted)
        for t, tally in self.types.items():
            tally.add({f for f in gold if f.type == t}, {f for f in predicted if f.type == t})
        self.qrr_predicted += sum(f.type == "qrr" for f in predicted)
        self.qrr_on_cycle += len(cycle_members(predicted))

    COUNTS = ("prompts", "unparseable", "missing", "qrr_predicted", "qrr_on_cycle")

    def merge(self, other: "Extraction") -> None:
        """Add the counts of `other` (one prompt's, scored once) to these."""
        for t, tally in self.types.items():
            tally.merge(other.types[t])
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def report(self) -> dict:
        tallies = self.types.values()
        overall = Tally(*(sum(getattr(x, k) for x in tallies) for k in ("tp", "fp", "fn")))
        overall = overall.figures()
        share = self.qrr_on_cycle / self.qrr_predicted if self.qrr_predicted else 0.0
        return {
            "prompts": self.prompts, "unparseable": self.unparseable, "missing": self.missing,
            "per_type": {t: x.figures() for t, x in self.types.items() if x.tp + x.fp + x.fn},
            "overall": overall,
            "qrr_predicted": self.qrr_predicted, "qrr_on_cycle": self.qrr_on_cycle,
            "qrr_cycle_share": share,
            "f1_x_consistency": None if overall["f1"] is None else overall["f1"] * (1 - share),
        }


def gold_facts(prompt) -> list[Fact]:
    """The facts of a prompt's gold answer (dataset.extraction_prompts.Prompt), which is
    valid against its schema by construction (tests/test_extraction_prompts.py)."""
    return _facts(prompt.answer, prompt.context)


def score(rows, replies: dict) -> dict:
    """report.json's extraction figures: per split (and "all"), the report of the world
    prompts, the view prompts and both, from the prompt rows (exported.PromptRow) and the
    replies, (file, index) -> text. A prompt with no reply is missing and states nothing."""
    tallies: dict = {}
    for row in rows:
        p = row.prompt
        reply = replies.get((row.file, row.index))
        predicted = None if reply is None else parse(reply, p.schema, p.context)
        prompt = Extraction()
        prompt.add(gold_facts(p), predicted, missing=reply is None)
        kind = "world" if p.context == "world" else "view"
        for split in (p.split, "all"):
            for part in (kind, "both"):
                tallies.setdefault(split, {}).setdefault(part, Extraction()).merge(prompt)
    order = [split for split in tallies if split != "all"] + ["all"] if tallies else []
    return {split: {part: tallies[split][part].report() for part in ("world", "view", "both")
                    if part in tallies[split]} for split in order}
