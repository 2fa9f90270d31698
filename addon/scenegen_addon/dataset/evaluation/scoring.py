"""The figures of report.json, from the export's rows and a model's answers.

Every row of a scored file counts: a row with no prediction is "missing" and a reply the
strict grammar cannot read (answers.py) is "unparseable"; both score as wrong and are
counted. Accuracy comes with its count and a 95% Wilson interval, beside chance (the mean
of 1/k over the rows), the export's blind baseline (per split and category, its best
guesser; over several categories, their mean weighted by the rows scored) and, given a
human sheet's answers, the human baseline on the questions the person answered.

Breakdowns, per form (single, multiview, open) and split: category, context, difficulty
(qrr), object count, boundary flag (qrr) and, in an export made with --keep-near-ties, each
visibility margin (FORMAT 10.2) beside "none" (a row failing two counts in both). Circular
files: a question counts as solved when every rotation is right (VLMEvalKit's circular
accuracy); consistency is the share of questions whose rotations all chose the same option,
and the share of world questions answered alike in their single-image and multi-view forms.
Clock questions: hour accuracy, quadrant accuracy (hours 12-2, 3-5, 6-8, 9-11), the mean
absolute error in hours around the dial (parsed answers only), and the confusion matrix.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass

from ...core.constraints import QUADRANTS
from . import answers
from .exported import Item

Z95 = 1.959963984540054
DIMENSIONS = ("category", "context", "difficulty", "n_objects", "boundary_flag", "margins")
PLAIN_FORMS = ("single", "multiview", "open")


@dataclass(frozen=True)
class Scored:
    item: Item
    status: str  # "answered", "unparseable" or "missing"
    choice: str | None  # the letter or open answer read from the reply
    correct: bool


def score_rows(items: list[Item], replies: dict) -> list[Scored]:
    """`replies`: (file, index) -> the model's text, for the rows it answered."""
    out = []
    for item in items:
        reply = replies.get((item.file, item.index))
        choice = None if reply is None else answers.choice(item, reply)
        status = "missing" if reply is None else "unparseable" if choice is None else "answered"
        out.append(Scored(item, status, choice, answers.correct(item, choice)))
    return out


def wilson(correct: int, n: int) -> list[float] | None:
    """The 95% Wilson score interval of a proportion, None for no rows."""
    if n == 0:
        return None
    p = correct / n
    centre = (p + Z95 * Z95 / (2 * n)) / (1 + Z95 * Z95 / n)
    half = Z95 * ((p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) ** 0.5) / (1 + Z95 * Z95 / n)
    # at 0 and at n correct the bound is 0 or 1 exactly (rounding would leave it off by ulps)
    return [0.0 if correct == 0 else centre - half, 1.0 if correct == n else centre + half]


class Baselines:
    """Blind (from the export's table) and human (from a sheet's answers) accuracies."""

    def __init__(self, blind: dict | None, human: dict | None):
        self.blind = {}
        for row in (blind or {}).get("rows", []):  # blind_baseline.json (FORMAT 10.7)
            best = max(g["correct"] for g in row["guessers"].values())
            self.blind[(row["split"], row["category"])] = best / row["questions"]
        self.human = human or {}  # (split, category) -> (correct, n)

    def blind_of(self, rows: list[Scored]) -> float | None:
        counts = Counter((s.item.split, s.item.category) for s in rows)
        if not counts or any(k not in self.blind for k in counts):
            return None
        return sum(self.blind[k] * n for k, n in counts.items()) / sum(counts.values())

    def human_of(self, rows: list[Scored]) -> dict | None:
        keys = {(s.item.split, s.item.category) for s in rows}
        found = [self.human[k] for k in keys if k in self.human]
        if not found:
            return None
        correct, n = sum(c for c, _ in found), sum(n for _, n in found)
        return {"accuracy": correct / n, "n": n}


def cell(rows: list[Scored], baselines: Baselines, single: bool) -> dict:
    n = len(rows)
    correct = sum(s.correct for s in rows)
    status = Counter(s.status for s in rows)
    out = {"n": n, "correct": correct, "accuracy": correct / n if n else None,
           "ci95": wilson(correct, n), "unparseable": status["unparseable"],
           "missing": status["missing"], "chance": sum(s.item.chance for s in rows) / n}
    if single:  # the blind table and the sheet are about single-image questions
        blind = baselines.blind_of(rows)
        out["blind"] = blind
        out["gain_over_blind"] = None if blind is None else out["accuracy"] - blind
        out["human"] = baselines.human_of(rows)
    return out


def _values(item: Item, dimension: str) -> list:
    """The breakdown cells a row counts in: its value, or each margin it fails ("none" for
    a row that fails none)."""
    value = getattr(item, dimension)
    if dimension == "margins":
        return list(value) or ["none"]
    return [] if value is None else [value]


def breakdowns(scored: list[Scored], baselines: Baselines) -> dict:
    """Per form and split: the whole, and per value of each dimension that has values."""
    groups = defaultdict(list)
    for s in scored:
        if s.item.form in PLAIN_FORMS:
            groups[(s.item.form, s.item.split)].append(s)
    out = {}
    for (form, split), rows in groups.items():
        single = form == "single"
        entry = {"overall": cell(rows, baselines, single)}
        for dim in DIMENSIONS:
            by = defaultdict(list)
            for s in rows:
                for value in _values(s.item, dim):
                    by[value].append(s)
            if by and list(by) != ["none"]:  # margins: only in --keep-near-ties exports
                entry[dim] = {str(v): cell(by[v], baselines, single) for v in sorted(by)}
        out.setdefault(form, {})[split] = entry
    return out


def circular(scored: list[Scored]) -> dict:
    """Per split and category: questions, solved in every rotation, and rotations agreeing."""
    groups = defaultdict(list)
    for s in scored:
        if s.item.form == "circular":
            groups[(s.item.split, s.item.group)].append(s)
    tally = defaultdict(Counter)
    for (split, _), rows in groups.items():
        labels = {answers.chosen_label(s.item, s.choice) if s.choice else None for s in rows}
        for key in ((split, "all"), (split, rows[0].item.category)):
            tally[key]["n"] += 1
            tally[key]["solved"] += all(s.correct for s in rows)
            tally[key]["agree"] += len(labels) == 1 and None not in labels
    out = defaultdict(dict)
    for (split, category), t in sorted(tally.items()):
        out[split][category] = {"n": t["n"], "solved": t["solved"],
                                "accuracy": t["solved"] / t["n"],
                                "ci95": wilson(t["solved"], t["n"]),
                                "consistency": t["agree"] / t["n"]}
    return dict(out)


def views_agree(scored: list[Scored]) -> dict | None:
    """World questions answered in both the single-image and multi-view forms: the share
    whose chosen labels agree (an unread answer never agrees)."""
    single = {(s.item.question_id): s for s in scored if s.item.form == "single"}
    pairs = [(single[s.item.question_id], s) for s in scored
             if s.item.form == "multiview" and s.item.question_id in single]
    if not pairs:
        return None
    agree = sum(a.choice is not None and b.choice is not None
                and answers.chosen_label(a.item, a.choice)
                == answers.chosen_label(b.item, b.choice) for a, b in pairs)
    both = sum(a.correct and b.correct for a, b in pairs)
    return {"n": len(pairs), "agree": agree, "consistency": agree / len(pairs),
            "both_correct": both}


def _hour(s: Scored) -> int | None:
    if s.choice is None:
        return None
    return int(answers.chosen_label(s.item, s.choice))


def quadrant(hour: int) -> int:
    return QUADRANTS[hour % 12]


def clock(scored: list[Scored]) -> dict:
    """Per form: hour and quadrant accuracy, mean absolute hour error, confusion matrix."""
    out = {}
    for form in PLAIN_FORMS:
        rows = [s for s in scored if s.item.form == form and s.item.constraint == "trr"]
        if not rows:
            continue
        matrix = [[0] * 12 for _ in range(12)]
        quadrants, errors = 0, []
        for s in rows:
            gold, said = int(s.item.label), _hour(s)
            if said is None:
                continue
            matrix[gold - 1][said - 1] += 1
            quadrants += quadrant(gold) == quadrant(said)
            gap = abs(gold - said) % 12
            errors.append(min(gap, 12 - gap))
        n = len(rows)
        out[form] = {"n": n, "read": len(errors),
                     "hour_accuracy": sum(s.correct for s in rows) / n,
                     "quadrant_accuracy": quadrants / n,
                     "mean_abs_hour_error": sum(errors) / len(errors) if errors else None,
                     "confusion": matrix}
    return out


def files(scored: list[Scored]) -> dict:
    """Per export file scored: its form, rows, and how many were answered, unread, missing."""
    out = {}
    for s in scored:
        entry = out.setdefault(s.item.file, {"form": s.item.form, "rows": 0, "answered": 0,
                                             "unparseable": 0, "missing": 0})
        entry["rows"] += 1
        entry[s.status] += 1
    return out


def report(scored: list[Scored], baselines: Baselines) -> dict:
    table = breakdowns(scored, baselines)
    headline = {split: {k: entry["overall"][k] for k in
                        ("n", "accuracy", "ci95", "chance", "blind", "gain_over_blind", "human")}
                for split, entry in table.get("single", {}).items()}
    return {"files": files(scored), "headline": headline, "accuracy": table,
            "circular": circular(scored), "views_agree": views_agree(scored),
            "clock": clock(scored)}
