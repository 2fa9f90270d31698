"""The questions as VLMEvalKit multiple-choice TSV files (standard library only).

VLMEvalKit reads a custom MCQ benchmark from `$LMUData/<name>.tsv` with pandas
(`read_csv(sep="\\t")`): columns index, image (base64 PNG), question, A, B, ... (an empty cell
is no option), answer (a letter), category and split; extra columns are kept. An `image`
cell of at most 64 characters is the index of another row holding the same picture, so each
picture is stored once per file. `image_path` names the decoded file in its image cache.

Two files per split: `<name>_<split>.tsv`, and `<name>_<split>_circular.tsv` for circular
evaluation (VLMEvalKit turns it on for dataset names containing "circular"): each question
of k options appears k times, rotated, the copy with rotation r at index i + r * 1,000,000,
so `index % 1e6` groups the copies; a question counts as solved only when all are. So a
split holds fewer than 1,000,000 questions (check_fits refuses more before generating them).
Machine-readable columns (question_id, scene_id, context, constraint, objects, label,
option_labels) let anyone check each row against the record.
"""

import base64
import csv
import json
from pathlib import Path

from ...core import layout
from ..loader import Dataset
from ..questions import LETTERS, Question, QuestionSet
from .common import ExportRefused

CIRCULAR_STEP = 1_000_000
EXTRA = ("question_id", "scene_id", "context", "constraint", "objects", "label",
         "option_labels", "difficulty", "boundary_flag")


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


def _rows(questions: list[Question], circular: bool):
    """(index, question, options, option_labels, answer) per TSV row, in index order."""
    if len(questions) >= CIRCULAR_STEP:
        raise ValueError(f"{len(questions)} questions in one split: VLMEvalKit groups rows by "
                         f"index % {CIRCULAR_STEP}, so at most {CIRCULAR_STEP - 1} fit; "
                         "export fewer splits or fewer questions per type")
    rounds = max((len(q.options) for q in questions), default=1) if circular else 1
    for r in range(rounds):
        for i, q in enumerate(questions):
            k = len(q.options)
            if r >= k:
                continue
            order = [(p + r) % k for p in range(k)]
            yield (i + r * CIRCULAR_STEP, q, [q.options[p] for p in order],
                   [q.option_labels[p] for p in order], LETTERS[order.index(q.answer_index)])


def _cell(value) -> str:
    return "" if value is None else str(value)


def write_tsv(path: Path, dataset_root: Path, questions: list[Question], circular: bool) -> int:
    """Write one TSV; returns its number of rows."""
    width = max((len(q.options) for q in questions), default=2)
    header = ["index", "image", "image_path", "question", *LETTERS[:width], "answer",
              "category", "split", *EXTRA]
    first_row_of: dict[str, int] = {}  # image file -> index of the row holding its base64
    count = 0
    with layout.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, delimiter="\t", lineterminator="\n")
        out.writerow(header)
        for index, q, options, labels, answer in _rows(questions, circular):
            if q.image in first_row_of:
                image = str(first_row_of[q.image])
            else:
                first_row_of[q.image] = index
                image = base64.b64encode((dataset_root / q.image).read_bytes()).decode("ascii")
            out.writerow([
                index, image, q.image.replace("/", "__"), q.question,
                *options, *[""] * (width - len(options)), answer, q.category, q.split,
                q.question_id, q.scene_id, q.context, q.constraint, q.objects_json, q.label,
                json.dumps(labels, separators=(",", ":")), _cell(q.difficulty),
                _cell(q.boundary_flag),
            ])
            count += 1
    return count


def export(dataset_root: Path, out: Path, question_set: QuestionSet, name: str) -> list[str]:
    """Write the plain and circular TSV of every split into `out`; returns report lines."""
    lines = []
    for split, questions in question_set.questions.items():
        for circular in (False, True):
            file = out / f"{name}_{split}{'_circular' if circular else ''}.tsv"
            rows = write_tsv(file, dataset_root, questions, circular)
            lines.append(f"{file.name}: {rows} rows")
    return lines
