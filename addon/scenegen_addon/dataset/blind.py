"""The blind baseline: how well the questions can be answered without looking at the image.

Four guessers read only the text; each is fitted on train questions, per category, and
scored on every other split, per category (for an export: its train questions, or those of
at most TRAIN_SCENES seeded train scenes made for this when train is not exported):
- constant_answer: the label class most often right on train (ties: CLASSES order); where
  a question does not offer it, letter A;
- constant_letter: the letter most often right on train (ties: alphabetical);
- naive_bayes_label: the label class from the question's words and the options offered
  (for clocks, each offered hour and each offered hour with no offered neighbour), among
  the classes the question offers;
- naive_bayes_letter: the letter from what stands at each letter: its text, its words,
  its class (so an option out of its usual place shows) and, for clocks, how many offered
  neighbours its hour has.
Both naive Bayes guessers count features present in a question (Bernoulli, present
features only) with add-one smoothing: a class's score is (n_c + 1) x the product over
features of (n_fc + 1) / (n_c + 2). Scores are compared exactly, as integer numerators and
denominators by cross-multiplication; ties go to the earlier class or letter. So the
table is the same on every CPU.

A row (split, category) fails when a guesser beats chance (the mean of 1/k over its
questions, k options) by more than MIN_EXCESS and Holm's step-down procedure over every
(row, guesser) rejects "no better than chance" at family level ALPHA = Q(2), the normal
upper tail beyond 2 standard errors. The p-value of c right answers out of n is Q(z),
z = (c - E) / sqrt(V), E and V the sum of p and of p (1 - p) over the questions (p = 1/k);
Q is computed in decimal arithmetic (the same digits everywhere).
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from fractions import Fraction

from . import questions, wording
from .questions import LETTERS, Question

MIN_EXCESS = Fraction(1, 20)
TRAIN_SCENES = 2000  # at most, when train questions are made only to fit the guessers
GUESSERS = ("constant_answer", "constant_letter", "naive_bayes_label", "naive_bayes_letter")
PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
Z_CAP = 8  # Q(8) < 1e-15, far below any Holm threshold of a table this size
WORD = re.compile(r"[a-z0-9']+")


def upper_tail(z: Decimal) -> Decimal:
    """Q(z) = P(N(0, 1) > z), from the series of erf in 60-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 60
        z = max(min(Decimal(z), Decimal(Z_CAP)), Decimal(-Z_CAP))
        x = abs(z) / Decimal(2).sqrt()
        term, total, n = x, x, 0
        while abs(term) > Decimal("1e-70"):
            n += 1
            term = -term * x * x / n
            total += term / (2 * n + 1)
        erf = 2 / PI.sqrt() * total
        tail = (1 - erf) / 2
        return +(tail if z >= 0 else 1 - tail)


ALPHA = upper_tail(Decimal(2))


def option_classes(q: Question) -> list[str]:
    """The class each option stands for (first / second / same for object options)."""
    if q.constraint in ("size", "closer"):
        first, second = q.objects[-2:]
        return [{first: "first", second: "second"}.get(label, "same")
                for label in q.option_labels]
    return list(q.option_labels)


def answer_class(q: Question) -> str:
    return option_classes(q)[q.answer_index]


def _neighbours(q: Question) -> dict[str, int]:
    """Clock questions: per offered hour, how many of its two neighbours are offered."""
    if q.constraint != "trr":
        return {}
    hours = {int(h) for h in q.option_labels}
    return {str(h): sum((h + d - 1) % 12 + 1 in hours for d in (-1, 1)) for h in hours}


def label_features(q: Question) -> set[str]:
    near = _neighbours(q)
    return ({f"w:{w}" for w in WORD.findall(q.question.lower())}
            | {f"offer:{c}" for c in option_classes(q)}
            | {f"alone:{h}" for h, k in near.items() if k == 0})


def letter_features(q: Question) -> set[str]:
    near = _neighbours(q)
    out = set()
    for letter, text, klass in zip(LETTERS, q.options, option_classes(q), strict=False):
        out |= {f"{letter}={text}", f"{letter}:class={klass}"}
        out |= {f"{letter}:w:{w}" for w in WORD.findall(text.lower())}
        if klass in near:
            out.add(f"{letter}:neighbours={near[klass]}")
    return out


@dataclass
class NaiveBayes:
    """Counts of one category's train questions: per class, and per feature and class."""

    classes: Counter = field(default_factory=Counter)
    features: dict = field(default_factory=dict)  # feature -> Counter of classes

    def fit(self, items) -> "NaiveBayes":
        for klass, feats in items:
            self.classes[klass] += 1
            for f in feats:
                self.features.setdefault(f, Counter())[klass] += 1
        return self

    def score(self, klass: str, feats: set[str]) -> tuple[int, int]:
        """(numerator, denominator) of the class's score."""
        n = self.classes[klass]
        num, den = n + 1, 1
        for f in feats:
            found = self.features.get(f)
            num *= (found[klass] if found else 0) + 1
            den *= n + 2
        return num, den

    def best(self, choices: list[str], feats: set[str]) -> str:
        """The choice with the highest score; the earliest on a tie."""
        top, top_score = choices[0], self.score(choices[0], feats)
        for c in choices[1:]:
            num, den = self.score(c, feats)
            if num * top_score[1] > top_score[0] * den:
                top, top_score = c, (num, den)
        return top


@dataclass
class Guessers:
    """The four guessers of one category, fitted on its train questions."""

    constant: str
    letter: str
    by_label: NaiveBayes
    by_letter: NaiveBayes

    @classmethod
    def fit(cls, category: str, train: list[Question]) -> "Guessers":
        order = list(wording.CLASSES[category])
        answers = Counter(answer_class(q) for q in train)
        letters = Counter(q.answer for q in train)
        return cls(
            constant=max(order, key=lambda c: (answers[c], -order.index(c))),
            letter=max(LETTERS, key=lambda x: (letters[x], -LETTERS.index(x))),
            by_label=NaiveBayes().fit((answer_class(q), label_features(q)) for q in train),
            by_letter=NaiveBayes().fit((q.answer, letter_features(q)) for q in train))

    def guesses(self, q: Question) -> dict[str, str]:
        """Each guesser's letter for the question."""
        offered = option_classes(q)
        letters = list(LETTERS[:len(q.options)])
        constant = LETTERS[offered.index(self.constant)] if self.constant in offered else "A"
        by_label = self.by_label.best(offered, label_features(q))
        return {
            "constant_answer": constant,
            "constant_letter": self.letter,
            "naive_bayes_label": LETTERS[offered.index(by_label)],
            "naive_bayes_letter": self.by_letter.best(letters, letter_features(q)),
        }


@dataclass
class Row:
    split: str
    category: str
    questions: int
    expected: Fraction  # right answers expected by chance: the sum of 1/k
    variance: Fraction  # their variance: the sum of (k - 1) / k^2
    correct: dict[str, int]
    choices: dict[str, str]  # the constants' choices
    p_values: dict[str, Decimal] = field(default_factory=dict)
    rejected: dict[str, bool] = field(default_factory=dict)

    def excess(self, guesser: str) -> Fraction:
        return Fraction(self.correct[guesser], self.questions) - self.expected / self.questions

    @property
    def fails(self) -> bool:
        return any(self.rejected[g] and self.excess(g) > MIN_EXCESS for g in GUESSERS)

    @property
    def worst(self) -> str:
        return max(GUESSERS, key=lambda g: (self.excess(g), -GUESSERS.index(g)))

    def to_json(self) -> dict:
        guessers = {}
        for g in GUESSERS:
            entry = {"correct": self.correct[g],
                     "accuracy": round(self.correct[g] / self.questions, 4),
                     "p_value": f"{self.p_values[g]:.4e}", "rejected": self.rejected[g]}
            if g in self.choices:
                entry = {"choice": self.choices[g], **entry}
            guessers[g] = entry
        return {"split": self.split, "category": self.category, "questions": self.questions,
                "chance": round(float(self.expected / self.questions), 4),
                "guessers": guessers, "worst": self.worst,
                "excess": round(float(self.excess(self.worst)), 4), "fails": self.fails}


def _p_value(row: Row, guesser: str) -> Decimal:
    if row.variance == 0:
        return Decimal(1)
    with localcontext() as ctx:
        ctx.prec = 60
        diff = Fraction(row.correct[guesser]) - row.expected
        z = (Decimal(diff.numerator) / Decimal(diff.denominator)) / (
            Decimal(row.variance.numerator) / Decimal(row.variance.denominator)).sqrt()
    return upper_tail(z)


def _holm(rows: list[Row]) -> None:
    tests = [(row, g) for row in rows for g in GUESSERS]
    for row, g in tests:
        row.p_values[g] = _p_value(row, g)
        row.rejected[g] = False
    order = sorted(range(len(tests)), key=lambda t: (tests[t][0].p_values[tests[t][1]], t))
    for rank, t in enumerate(order):
        row, g = tests[t]
        if row.p_values[g] > ALPHA / (len(tests) - rank):
            break
        row.rejected[g] = True


@dataclass
class Table:
    """The blind table: one row per scored split and category."""

    rows: list[Row]
    fitted_on: dict

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.fails]

    def to_json(self) -> dict:
        return {"fitted_on": self.fitted_on,
                "rule": {"min_excess": float(MIN_EXCESS), "family_alpha": f"{ALPHA:.6e}",
                         "correction": "holm", "guessers": list(GUESSERS)},
                "rows": [r.to_json() for r in self.rows],
                "failed": [f"{r.split} {r.category}" for r in self.failed]}

    def markdown(self) -> list[str]:
        """The table for the dataset card: accuracies in percent, chance, verdict."""
        lines = ["| split | category | questions | chance | constant answer | constant letter "
                 "| naive Bayes (label) | naive Bayes (letter) | verdict |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in self.rows:
            cells = [f"{100 * r.correct[g] / r.questions:.1f}" for g in GUESSERS]
            verdict = "FAILS: answerable blind" if r.fails else "within bound"
            lines.append(f"| {r.split} | {r.category} | {r.questions} | "
                         f"{100 * float(r.expected / r.questions):.1f} | {' | '.join(cells)} | "
                         f"{verdict} |")
        return lines


def measure(train: list[Question], scored: dict[str, list[Question]],
            fitted_on: dict) -> Table:
    """Fit per category on `train`, score every split of `scored`, apply the rule."""
    by_category: dict[str, list[Question]] = {}
    for q in train:
        by_category.setdefault(q.category, []).append(q)
    fitted = {cat: Guessers.fit(cat, by_category.get(cat, [])) for cat in wording.CLASSES}
    rows = []
    for split, asked in scored.items():
        for category, guessers in fitted.items():
            mine = [q for q in asked if q.category == category]
            if not mine:
                continue
            correct = Counter()
            for q in mine:
                for g, letter in guessers.guesses(q).items():
                    correct[g] += letter == q.answer
            expected = sum((Fraction(1, len(q.options)) for q in mine), Fraction(0))
            variance = sum((Fraction(len(q.options) - 1, len(q.options) * len(q.options))
                            for q in mine), Fraction(0))
            rows.append(Row(split, category, len(mine), expected, variance,
                            {g: correct[g] for g in GUESSERS},
                            {"constant_answer": guessers.constant,
                             "constant_letter": guessers.letter}))
    _holm(rows)
    return Table(rows, fitted_on)


def for_export(dataset, question_set, per_type, seed: int, jobs: int = 1,
               keep_near_ties: bool = False, progress=None) -> Table | None:
    """The table of an export: fitted on its train questions or, when train is not
    exported, on those of at most TRAIN_SCENES train scenes drawn by the seed and made
    here with the same options; scored on every other exported split. None when the
    dataset has no train scene."""
    if "train" in question_set.questions:
        train, source = question_set.questions["train"], "exported"
        scenes = len(dataset["train"])
    elif "train" in dataset and len(dataset["train"]):
        made = questions.generate(dataset, ["train"], per_type, seed, jobs, progress,
                                  keep_near_ties, limit=TRAIN_SCENES)
        train, source = made.questions["train"], "generated"
        scenes = min(len(dataset["train"]), TRAIN_SCENES)
    else:
        return None
    scored = {s: qs for s, qs in question_set.questions.items() if s != "train"}
    return measure(train, scored, {"split": "train", "source": source, "scenes": scenes,
                                   "questions": len(train)})
