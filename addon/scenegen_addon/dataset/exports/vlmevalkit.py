"""The questions as VLMEvalKit TSV files (standard library only).

VLMEvalKit reads a custom benchmark from `$LMUData/<name>.tsv` with pandas
(`read_csv(sep="\\t")`): columns index, image (base64 PNG), question, A, B, ... (an empty cell
is no option), answer (a letter) or, without options, the answer text; extra columns are
kept. An `image` cell of at most 64 characters is the index of another row holding the
same picture(s), so each picture is stored once per file. `image_path` names the file it
caches the decoded picture under: the PNG's SHA-256 prefix, scene and view
(common.image_name), so a rebuilt picture never meets a stale copy. A row with several
pictures holds lists of them in both cells (Python list syntax, which VLMEvalKit reads).

Four files per split, every question keeping its `index` (from 1, in the plain file's row
order) in each:
- `<name>_<split>.tsv`: multiple choice, one image;
- `<name>_<split>_circular.tsv` for circular evaluation (VLMEvalKit turns it on for dataset
  names containing "circular"): each question of k options appears k times, rotated, the
  copy with rotation r at index i + r * 1,000,000 with `g_index` = i, so a question counts
  as solved only when all are. So a split holds fewer than 1,000,000 questions (check_fits
  refuses more before generating them);
- `<name>_<split>_multiview.tsv`: the world questions with the four views as images;
- `<name>_<split>_open.tsv`: every question without options; `answer` is the answer text
  in the grammar its prompt states, `answer_choices` every allowed answer.
And, unless --extraction-k 0, `<name>_<split>_extraction.tsv`: the constraint-extraction
prompts (dataset.extraction_prompts), one per scene and context, `answer` the gold JSON.
Machine-readable columns (question_id, scene_id, context, constraint, objects, descriptions,
label, option_labels, ...) let anyone check each row against the record.
"""

import base64
import csv
import json
from pathlib import Path

from ...core import layout
from ..extraction_prompts import Prompt
from ..loader import Dataset
from ..questions import LETTERS, Question, QuestionSet
from .common import ExportRefused, image_name
from .verify import CheckedFiles

CIRCULAR_STEP = 1_000_000
EXTRA = ("question_id", "scene_id", "n_objects", "context", "constraint", "objects", "descriptions",
         "label", "option_labels", "answer_choices", "difficulty", "boundary_flag", "margins",
         "wording")


def check_fits(dataset: Dataset, splits: list[str], per_type: dict[str, int]) -> None:
    """Refuse, before hours of question generation, a split that could get CIRCULAR_STEP
    questions or more: each scene gets at most its per-type count in each category, so
    scenes x the counts' sum bounds the split's questions."""
    per_scene = sum(per_type.values())
    for split in splits:
        scenes = len(dataset[split])
        if scenes * per_scene >= CIRCULAR_STEP:
            raise ExportRefused(
                f"--format vlmevalkit: split {split} could get up to {scenes * per_scene} "
                f"questions ({scenes} scenes x {per_scene} per scene), but VLMEvalKit groups "
                f"circular rows by index % {CIRCULAR_STEP}, so a file holds at most "
                f"{CIRCULAR_STEP - 1}: give --per-type counts summing to at most "
                f"{(CIRCULAR_STEP - 1) // scenes} per scene, or leave {split} out with --splits")


def _rotations(questions: list[Question], circular: bool):
    """(index, g_index, question, options, option_labels, answer) per row, in index order."""
    if questions and questions[-1].index >= CIRCULAR_STEP:
        raise ValueError(f"{len(questions)} questions in one split: VLMEvalKit groups rows by "
                         f"index % {CIRCULAR_STEP}, so at most {CIRCULAR_STEP - 1} fit; "
                         "export fewer splits or fewer questions per type")
    rounds = max((len(q.options) for q in questions), default=1) if circular else 1
    for r in range(rounds):
        for q in questions:
            k = len(q.options)
            if r >= k:
                continue
            order = [(p + r) % k for p in range(k)]
            yield (q.index + r * CIRCULAR_STEP, q.index, q, [q.options[p] for p in order],
                   [q.option_labels[p] for p in order], LETTERS[order.index(q.answer_index)])


def _cell(value) -> str:
    if isinstance(value, (tuple, list)):
        return json.dumps(list(value), separators=(",", ":"))
    return "" if value is None else str(value)


def _extra(q: Question, descriptions, labels) -> list[str]:
    values = {**{name: getattr(q, name) for name in EXTRA}, "descriptions": descriptions,
              "option_labels": labels}
    return [_cell(values[name]) for name in EXTRA]


class _Images:
    """The image cells of one file: base64 the first time a picture (or set) is seen, the
    index of that row after; names from the SHA-256 the check read."""

    def __init__(self, source: CheckedFiles):
        self.source = source
        self.first_row: dict[tuple[str, ...], int] = {}

    def cells(self, index: int, rels: tuple[str, ...]) -> tuple[str, str]:
        names = [image_name(rel, self.source.digests[rel]) for rel in rels]
        path = names[0] if len(rels) == 1 else repr(names)
        if rels in self.first_row:
            return str(self.first_row[rels]), path
        self.first_row[rels] = index
        blobs = [base64.b64encode(self.source.read(rel)).decode("ascii") for rel in rels]
        return (blobs[0] if len(rels) == 1 else repr(blobs)), path


def _write(path: Path, header: list[str], rows) -> int:
    count = 0
    with layout.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, delimiter="\t", lineterminator="\n")
        out.writerow(header)
        for row in rows:
            out.writerow(row)
            count += 1
    return count


def write_tsv(path: Path, source: CheckedFiles, questions: list[Question], kind: str) -> int:
    """Write one TSV of `kind` (plain, circular, multiview or open); returns its row count."""
    images = _Images(source)
    if kind == "open":
        header = ["index", "image", "image_path", "question", "answer", "category", "split",
                  *EXTRA]
        rows = ([q.index, *images.cells(q.index, (q.image,)), q.open_question, q.answer_text,
                 q.category, q.split, *_extra(q, q.descriptions, q.option_labels)]
                for q in questions)
        return _write(path, header, rows)
    width = max((len(q.options) for q in questions), default=2)
    circular = kind == "circular"
    header = ["index", *(["g_index"] if circular else []), "image", "image_path", "question",
              *LETTERS[:width], "answer", "category", "split", *EXTRA]

    def rows():
        for index, group, q, options, labels, answer in _rotations(questions, circular):
            if kind == "multiview":
                rels, text, names = q.view_images, q.multiview_question, q.multiview_descriptions
            else:
                rels, text, names = (q.image,), q.question, q.descriptions
            yield [index, *([group] if circular else []), *images.cells(index, rels), text,
                   *options, *[""] * (width - len(options)), answer, q.category, q.split,
                   *_extra(q, names, labels)]

    return _write(path, header, rows())


EXTRACTION_COLUMNS = ("question_id", "scene_id", "n_objects", "context", "objects",
                      "descriptions", "unnamed", "asked", "schema", "layout")


def write_extraction(path: Path, source: CheckedFiles, prompts: list[Prompt]) -> int:
    """Write the extraction prompts of one split (`answer` is the gold answer as JSON, the
    object lists and `asked`, `schema`, `layout` JSON too); returns the row count."""
    images = _Images(source)
    header = ["index", "image", "image_path", "question", "answer", "category", "split",
              *EXTRACTION_COLUMNS]

    def rows():
        for p in prompts:
            values = {**p.__dict__, **p.json_fields()}
            yield [p.index, *images.cells(p.index, p.images), p.question, values["answer"],
                   "extraction", p.split, *(_cell(values[c]) for c in EXTRACTION_COLUMNS)]

    return _write(path, header, rows())


KINDS = {"plain": "", "circular": "_circular", "multiview": "_multiview", "open": "_open"}
EXTRACTION = "_extraction"


def export(source: CheckedFiles, out: Path, question_set: QuestionSet, name: str,
           prompts: dict[str, list[Prompt]] | None = None) -> list[str]:
    """Write the four TSV files of every split into `out`, and its extraction prompts when
    given (`<name>_<split>_extraction.tsv`); returns report lines."""
    lines = []
    for split, questions in question_set.questions.items():
        for kind, suffix in KINDS.items():
            chosen = ([q for q in questions if q.view_images] if kind == "multiview"
                      else questions)
            file = out / f"{name}_{split}{suffix}.tsv"
            rows = write_tsv(file, source, chosen, kind)
            lines.append(f"{file.name}: {rows} rows")
        if prompts is not None:
            file = out / f"{name}_{split}{EXTRACTION}.tsv"
            rows = write_extraction(file, source, prompts[split])
            lines.append(f"{file.name}: {rows} rows")
    return lines
