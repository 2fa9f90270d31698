"""The export a model is scored on, as the evaluation sees it: one Item per row a model
answers, read from either export of headless/export.py (FORMAT 10.6).

- VLMEvalKit (`--format vlmevalkit`): files `<name>_<split>.tsv` (single image),
  `_circular.tsv` (each question once per rotation of its options, rotation r at index
  i + r * 1,000,000), `_multiview.tsv` (world questions with the four views) and `_open.tsv`
  (open answers, no options). An image cell of at most 64 characters is the index of the row
  holding the picture; a multi-view cell is a list of pictures in Python list syntax.
- Hugging Face (`--format hf`): the Parquet configs `questions` (each row is the single-image
  question and, in its open_* columns, its open form) and `questions_multiview`. Its rows
  become the files `questions_<split>`, `questions_<split>_open` and
  `questions_<split>_multiview` (no circular file: the rotations are VLMEvalKit's).
Both: the constraint-extraction prompts (FORMAT 11; `<name>_<split>_extraction.tsv`, or the
config `extraction` read as the files `extraction_<split>`) and `blind_baseline.json`. The
form of a question file is its name's suffix. Images are
read only when asked for (images_of), as base64 PNG text.
"""

import ast
import base64
import csv
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ...core.presets import SPLITS
from ..exports.common import BLIND_FILE
from ..exports.vlmevalkit import CIRCULAR_STEP, EXTRACTION
from ..extraction_prompts import JSON_FIELDS, Prompt
from ..questions import LETTERS

FORMS = ("single", "circular", "multiview", "open")
IMAGE_REFERENCE = 64  # VLMEvalKit: an image cell this short names the row holding the picture
IMAGE_COLUMNS = ("image", "images")  # Hugging Face: read only by images_of


class ExportError(Exception):
    """The export folder cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Item:
    """One row a model answers."""

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


@dataclass(frozen=True)
class PromptRow:
    """One constraint-extraction prompt (FORMAT 11.2) of one export file, with what the
    runner and the predictions' reader ask of every row; `prompt.images` holds the
    pictures' names."""

    file: str
    index: int
    question_id: str
    split: str
    question: str
    prompt: Prompt
    form = "extraction"
    rotation = 0
    options = ()


def _prompt_row(stem: str, row: dict) -> PromptRow:
    """A prompt from a TSV row (JSON text cells) or a Parquet row (lists, JSON text)."""
    def listed(value):
        return tuple(json.loads(value) if isinstance(value, str) else value)

    fields = {name: json.loads(row[name]) for name in JSON_FIELDS}
    if "image_paths" in row:
        images = tuple(row["image_paths"])
    else:  # VLMEvalKit: one name, or a list of them in Python list syntax
        cell = row["image_path"]
        images = tuple(ast.literal_eval(cell)) if cell.startswith("[") else (cell,)
    prompt = Prompt(
        question_id=row["question_id"], index=int(row["index"]), split=row["split"],
        scene_id=row["scene_id"], n_objects=int(row["n_objects"]), context=row["context"],
        images=images, objects=listed(row["objects"]),
        descriptions=listed(row["descriptions"]), unnamed=int(row["unnamed"]),
        question=row["question"], **fields)
    return PromptRow(stem, prompt.index, prompt.question_id, prompt.split, prompt.question,
                     prompt)


def form_of(stem: str) -> str:
    for form in FORMS[1:]:
        if stem.endswith("_" + form):
            return form
    return "single"


# --- VLMEvalKit TSV ------------------------------------------------------------------------

def _optional(value: str, kind):
    return None if value == "" else kind(value)


def _flag(value: str) -> bool | None:
    return None if value == "" else value in ("True", "true", "1")


def _json_list(value: str) -> tuple:
    return tuple(json.loads(value)) if value else ()


def _tsv_item(stem: str, form: str, row: dict) -> Item:
    get = row.get
    return Item(
        file=stem, form=form, index=int(row["index"]), question_id=row["question_id"],
        split=row["split"], scene_id=row["scene_id"], category=row["category"],
        context=row["context"], constraint=row["constraint"],
        objects=_json_list(row["objects"]), label=row["label"], question=row["question"],
        options=tuple(row[c] for c in LETTERS if row.get(c)),
        option_labels=_json_list(get("option_labels", "")),
        answer=row["answer"],
        choices=_json_list(get("answer_choices", "")) if form == "open" else (),
        difficulty=_optional(get("difficulty", ""), int),
        boundary_flag=_flag(get("boundary_flag", "")),
        margins=_json_list(get("margins", "")), n_objects=_optional(get("n_objects", ""), int),
    )


def tsv_rows(path: Path):
    csv.field_size_limit(sys.maxsize)  # base64 images are long cells
    with open(path, encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter="\t")


def tsv_images(path: Path) -> dict[int, list[str]]:
    """Per row of a TSV file, its picture(s) as base64 text (multiview: view_0..view_3)."""
    cells = {int(row["index"]): row["image"] for row in tsv_rows(path)}

    def pictures(cell: str) -> list[str]:
        if len(cell) <= IMAGE_REFERENCE:
            cell = cells[int(cell)]
        return list(ast.literal_eval(cell)) if cell.startswith("[") else [cell]

    return {index: pictures(cell) for index, cell in cells.items()}


# --- Hugging Face Parquet -------------------------------------------------------------------

def parquet_rows(root: Path, config: str, split: str, keep=None) -> list[dict]:
    """The rows of one config's split, shards in order: the columns `keep`, by default all
    but the images (pyarrow, of the export extra)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ExportError(f"EXPORT {root}: reading a Hugging Face export needs pyarrow "
                          f"({exc}): pip install pyarrow") from None
    rows = []
    for shard in sorted((root / "data" / config).glob(f"{split}-*.parquet")):
        names = keep or [n for n in pq.read_schema(shard).names if n not in IMAGE_COLUMNS]
        rows += pq.read_table(shard, columns=names).to_pylist()
    return rows


def parquet_splits(root: Path, config: str) -> list[str]:
    """The splits a config has shards of, in the dataset's order."""
    found = {p.name.rsplit("-", 3)[0] for p in (root / "data" / config).glob("*.parquet")}
    return sorted(found, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))


def _hf_item(stem: str, form: str, row: dict) -> Item:
    opened = form == "open"
    return Item(
        file=stem, form=form, index=row["index"], question_id=row["question_id"],
        split=row["split"], scene_id=row["scene_id"], category=row["category"],
        context=row["context"], constraint=row["constraint"], objects=tuple(row["objects"]),
        label=row["label"], question=row["open_question"] if opened else row["question"],
        options=() if opened else tuple(row["options"]),
        option_labels=tuple(row["option_labels"]),
        answer=row["answer_text"] if opened else row["answer"],
        choices=tuple(row["answer_choices"]) if opened else (),
        difficulty=row["difficulty"], boundary_flag=row["boundary_flag"],
        margins=tuple(row["margins"]), n_objects=row["n_objects"])


HF_FILES = {  # form -> (config, the file's stem suffix, its image column)
    "single": ("questions", "", "image"),
    "open": ("questions", "_open", "image"),
    "multiview": ("questions_multiview", "_multiview", "images"),
}


# --- the export ----------------------------------------------------------------------------

@contextmanager
def _reading(where: str):
    """A file that is not one headless/export.py wrote (a column missing, a cell that does
    not read) is an ExportError naming `where` and the column."""
    try:
        yield
    except KeyError as exc:
        raise ExportError(f"{where}: no column {exc.args[0]!r}: not a file headless/export.py "
                          "wrote (move it out of the export folder, or export again)") from None
    except (ValueError, TypeError, AttributeError, SyntaxError) as exc:
        raise ExportError(f"{where}: a cell does not read ({type(exc).__name__}: {exc}): not "
                          "a file headless/export.py wrote") from None


class Export:
    """An export folder: its files' items in row order, and the blind table."""

    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ExportError(f"EXPORT {root}: not a folder")
        self.kind = "hf" if (self.root / "data" / "questions").is_dir() else "vlmevalkit"
        self.files: dict[str, list[Item]] = {}
        self.prompt_files: dict[str, list[PromptRow]] = {}
        self._images = {}  # stem -> a function returning its images_of
        if self.kind == "hf":
            self._read_hf()
        else:
            self._read_tsv()
        if not self.files:
            raise ExportError(f"EXPORT {root}: no question files: give the folder that "
                              "headless/export.py wrote (--format vlmevalkit or hf)")
        blind = self.root / BLIND_FILE
        self.blind = json.loads(blind.read_text(encoding="utf-8")) if blind.is_file() else None

    def _read_tsv(self) -> None:
        for path in sorted(self.root.glob("*.tsv")):
            stem, form = path.stem, form_of(path.stem)
            with _reading(f"EXPORT {path}"):
                if stem.endswith(EXTRACTION):
                    self.prompt_files[stem] = [_prompt_row(stem, row)
                                               for row in tsv_rows(path)]
                else:
                    self.files[stem] = [_tsv_item(stem, form, row) for row in tsv_rows(path)]
            self._images[stem] = lambda path=path: tsv_images(path)

    def _read_hf(self) -> None:
        for split in parquet_splits(self.root, "questions"):
            rows = {"questions": parquet_rows(self.root, "questions", split),
                    "questions_multiview": parquet_rows(self.root, "questions_multiview", split)}
            for form, (config, suffix, column) in HF_FILES.items():
                stem = f"questions_{split}{suffix}"
                if not rows[config]:
                    continue
                with _reading(f"EXPORT {self.root / 'data' / config}/{split}-*.parquet"):
                    self.files[stem] = [_hf_item(stem, form, row) for row in rows[config]]
                self._images[stem] = (lambda config=config, split=split, column=column:
                                      self._parquet_images(config, split, column))
        for split in parquet_splits(self.root, "extraction"):
            stem = f"extraction_{split}"
            with _reading(f"EXPORT {self.root / 'data' / 'extraction'}/{split}-*.parquet"):
                self.prompt_files[stem] = [_prompt_row(stem, row) for row in
                                           parquet_rows(self.root, "extraction", split)]
            self._images[stem] = (lambda split=split:
                                  self._parquet_images("extraction", split, "images"))

    def _parquet_images(self, config: str, split: str, column: str) -> dict[int, list[str]]:
        rows = parquet_rows(self.root, config, split, ["index", column])
        return {row["index"]: [base64.b64encode(x["bytes"]).decode("ascii")
                               for x in (row[column] if column == "images" else [row[column]])]
                for row in rows}

    def items(self, stems=None) -> list[Item]:
        """The question rows of the files `stems` (default: every question file)."""
        return [i for stem in (self.files if stems is None else stems) for i in self.files[stem]]

    def prompts(self, stems=None) -> list[PromptRow]:
        """The extraction prompts of the files `stems` (default: every extraction file)."""
        chosen = self.prompt_files if stems is None else stems
        return [p for stem in chosen for p in self.prompt_files[stem]]

    def rows(self) -> list:
        """Every row a model answers: questions and extraction prompts."""
        return self.items() + self.prompts()

    def stems(self) -> list[str]:
        """Every file a model answers rows of."""
        return [*self.files, *self.prompt_files]

    def rows_of(self, stem: str) -> list:
        return self.files[stem] if stem in self.files else self.prompt_files[stem]

    def images_of(self, stem: str) -> dict[int, list[str]]:
        """Per row of one file, its PNG image(s) as base64 text, in order (multiview:
        view_0..view_3). Read from the export at each call: nothing is kept in memory."""
        return self._images[stem]()
