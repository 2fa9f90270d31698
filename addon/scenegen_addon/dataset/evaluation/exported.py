"""The export a model is scored on, as the evaluation sees it: one Item per row a model
answers, read from the VLMEvalKit TSV export (headless/export.py --format vlmevalkit).

Files are `<name>_<split>.tsv` (single image), `_circular.tsv` (each question once per
rotation of its options, rotation r at index i + r * 1,000,000), `_multiview.tsv` (world
questions with the four views) and `_open.tsv` (open answers, no options), plus
`blind_baseline.json`. The form of a file is its name's suffix; columns an older export
lacks are empty. Images stay in the file (a cell of at most 64 characters is the index of
the row holding the picture) and are read only when asked for.
"""

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

CIRCULAR_STEP = 1_000_000
FORMS = ("single", "circular", "multiview", "open")
BLIND = "blind_baseline.json"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class ExportError(Exception):
    """The export folder cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Item:
    """One row of one export file."""

    file: str  # the file's stem, e.g. scenegen_test_iid_circular
    form: str  # one of FORMS
    index: int
    question_id: str
    split: str
    scene_id: str
    category: str
    context: str
    constraint: str
    objects: tuple[str, ...]
    label: str
    question: str
    options: tuple[str, ...]  # empty for open answers
    option_labels: tuple[str, ...]
    answer: str  # a letter; open answers: the gold answer text
    choices: tuple[str, ...]  # open answers: every allowed answer
    difficulty: int | None
    boundary_flag: bool | None
    margins: tuple[str, ...]
    n_objects: int | None

    @property
    def group(self) -> int:
        """The question's own index (circular rotations share it)."""
        return self.index % CIRCULAR_STEP

    @property
    def rotation(self) -> int:
        return self.index // CIRCULAR_STEP

    @property
    def chance(self) -> float:
        return 1.0 / len(self.options or self.choices)


def form_of(stem: str) -> str:
    for form in FORMS[1:]:
        if stem.endswith("_" + form):
            return form
    return "single"


def _optional(value: str, kind):
    return None if value == "" else kind(value)


def _flag(value: str) -> bool | None:
    return None if value == "" else value in ("True", "true", "1")


def _json_list(value: str) -> tuple:
    return tuple(json.loads(value)) if value else ()


def _item(stem: str, form: str, row: dict) -> Item:
    options = tuple(row[c] for c in LETTERS if row.get(c))
    get = row.get
    return Item(
        file=stem, form=form, index=int(row["index"]), question_id=row["question_id"],
        split=row["split"], scene_id=row["scene_id"], category=row["category"],
        context=row["context"], constraint=row["constraint"],
        objects=_json_list(row["objects"]), label=row["label"], question=row["question"],
        options=options, option_labels=_json_list(get("option_labels", "")),
        answer=row["answer"], choices=_json_list(get("answer_choices", "")),
        difficulty=_optional(get("difficulty", ""), int),
        boundary_flag=_flag(get("boundary_flag", "")),
        margins=_json_list(get("margins", "")), n_objects=_optional(get("n_objects", ""), int),
    )


def _rows(path: Path):
    csv.field_size_limit(sys.maxsize)  # base64 images are long cells
    with open(path, encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter="\t")


class Export:
    """An export folder: its files' items in row order, and the blind table."""

    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ExportError(f"EXPORT {root}: not a folder")
        paths = sorted(self.root.glob("*.tsv"))
        if not paths:
            raise ExportError(f"EXPORT {root}: no .tsv files: give the folder that "
                              "headless/export.py --format vlmevalkit wrote")
        self.paths = {p.stem: p for p in paths}
        self.files: dict[str, list[Item]] = {}
        for stem, path in self.paths.items():
            form = form_of(stem)
            self.files[stem] = [_item(stem, form, row) for row in _rows(path)]
        blind = self.root / BLIND
        self.blind = json.loads(blind.read_text(encoding="utf-8")) if blind.is_file() else None

    def items(self, stems=None) -> list[Item]:
        return [i for stem in (stems or self.files) for i in self.files[stem]]

    def images_of(self, stem: str) -> dict[int, list[str]]:
        """Per row of one file, its PNG image(s) as base64 text, in order (multiview:
        view_0..view_3). Read from the file at each call: nothing is kept in memory."""
        cells = {int(row["index"]): row["image"] for row in _rows(self.paths[stem])}

        def pictures(cell: str) -> list[str]:
            if len(cell) <= 64:  # the index of the row that holds this picture
                cell = cells[int(cell)]
            return json.loads(cell) if cell.startswith("[") else [cell]

        return {index: pictures(cell) for index, cell in cells.items()}
