"""Reading a model's predictions and tying each to the export row it answers.

Two formats:
- VLMEvalKit's result files (`<model>_<dataset>.xlsx`, `.csv`, `.tsv` or `.json`): the
  dataset's rows without `image`, plus `prediction`. The dataset is the export file whose
  name is the longest export file name inside the result file's name; rows are matched by
  `index`, and each row's `question` must be the export's.
- JSON Lines (`.jsonl`): one object per line with `question_id` and `answer`; `form`
  (single, circular, multiview, open or extraction; default single) and, for circular rows,
  `rotation` say which row; an extraction answer may be the JSON object itself; `index`
  and `question`, when given, must be the export's. headless/evaluate.py --run writes
  this format.

Predictions made on another export are refused (PredictionsRefused, exit 2) naming the
first id, index or question text that differs. Answers are returned as the model wrote
them; answers.choice (questions) and extraction.parse (prompts) read them.
"""

import csv
import json
import sys
from pathlib import Path

from .exported import Export, Item, PromptRow


class PredictionsRefused(Exception):
    """The predictions do not belong to this export; the message names the first mismatch."""


def key(item: Item | PromptRow) -> tuple[str, str, int]:
    """How a JSON Lines prediction names its row: (form, question_id, rotation)."""
    return item.form, item.question_id, item.rotation


def _text(value) -> str:
    """A cell as text: spreadsheets hold a reply "3" as the number 3 (or 3.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _table(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        import zipfile

        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            book = openpyxl.load_workbook(path, read_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
            raise PredictionsRefused(f"--predictions {path.name}: not a readable .xlsx "
                                     f"workbook ({type(exc).__name__}: {exc})") from None
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [_text(h) for h in next(rows, [])]
        table = [dict(zip(header, map(_text, row), strict=False)) for row in rows]
        book.close()
        return table
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise PredictionsRefused(f"--predictions {path.name}: not JSON ({exc})") from None
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise PredictionsRefused(f"--predictions {path.name}: not a list of objects (one "
                                     "per row, as VLMEvalKit writes its .json results)")
        return [{k: _text(v) for k, v in row.items()} for row in data]
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))


def _dataset_file(path: Path, export: Export) -> str:
    names = [stem for stem in export.stems() if stem in path.stem]
    if not names:
        raise PredictionsRefused(
            f"--predictions {path.name}: its name holds none of the export's file names "
            f"({', '.join(export.stems())}); VLMEvalKit names results <model>_<dataset>")
    return max(names, key=len)


def read_vlmevalkit(path: Path, export: Export) -> dict[tuple[str, int], str]:
    """(export file, index) -> prediction, from a VLMEvalKit result file."""
    stem = _dataset_file(path, export)
    rows = {item.index: item for item in export.rows_of(stem)}
    table = _table(path)
    missing = [c for c in ("index", "prediction") if table and c not in table[0]]
    if not table or missing:
        raise PredictionsRefused(f"--predictions {path.name}: no rows with "
                                 f"columns index and prediction (missing: {missing})")
    out = {}
    for number, row in enumerate(table, 1):
        try:
            index = int(row["index"])
        except (TypeError, ValueError):
            raise PredictionsRefused(f"--predictions {path.name}: row {number}: column index "
                                     f"holds {row['index']!r}, not a row index") from None
        item = rows.get(index)
        if item is None:
            raise PredictionsRefused(f"--predictions {path.name}: index {index} is not in "
                                     f"{stem}.tsv: made on another export?")
        if "question" in row and row["question"] != item.question:
            raise PredictionsRefused(
                f"--predictions {path.name}: index {index} asks {row['question']!r}, the "
                f"export's {stem}.tsv asks {item.question!r}: made on another export?")
        out[(stem, index)] = row["prediction"]
    return out


def read_jsonl(path: Path, export: Export) -> dict[tuple[str, int], str]:
    """(export file, index) -> answer, from JSON Lines (module doc)."""
    items = {key(item): item for item in export.rows()}
    out, seen = {}, {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--predictions {path.name} line {number}"
        try:
            row = json.loads(line)
            wanted = (row.get("form", "single"), row["question_id"], int(row.get("rotation", 0)))
            answer = row["answer"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PredictionsRefused(f"{where}: not a JSON object with question_id and "
                                     "answer") from None
        item = items.get(wanted)
        if item is None:
            raise PredictionsRefused(
                f"{where}: question_id {wanted[1]!r} (form {wanted[0]}, rotation {wanted[2]}) "
                "is not in the export: made on another export?")
        for name in ("index", "question"):
            if name in row and row[name] != getattr(item, name):
                raise PredictionsRefused(
                    f"{where}: {name} {row[name]!r} of question_id {item.question_id!r} is "
                    f"{getattr(item, name)!r} in the export: made on another export?")
        if wanted in seen:
            raise PredictionsRefused(f"{where}: question_id {item.question_id!r} is answered "
                                     f"again (first on line {seen[wanted]})")
        seen[wanted] = number
        out[(item.file, item.index)] = answer if isinstance(answer, str) else json.dumps(answer)
    return out


def read(path, export: Export) -> dict[tuple[str, int], str]:
    path = Path(path)
    if not path.is_file():
        raise PredictionsRefused(f"--predictions {path}: no such file")
    if path.suffix.lower() == ".jsonl":
        return read_jsonl(path, export)
    if path.suffix.lower() in (".xlsx", ".csv", ".tsv", ".json"):
        return read_vlmevalkit(path, export)
    raise PredictionsRefused(f"--predictions {path.name}: allowed are .jsonl (question_id, "
                             "answer) and VLMEvalKit's .xlsx, .csv, .tsv or .json results")
