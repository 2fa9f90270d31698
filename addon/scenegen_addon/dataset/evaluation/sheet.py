"""The human-baseline sheet: one self-contained HTML page (images embedded, no network, any
browser) with a sample of the single-image questions and a radio button per option. Its
"Save answers" button downloads a JSON file that `--human` reads; the choices also stay in
the browser's local storage, so a reload loses nothing.

The page holds what a person needs and nothing of the gold: per question its row (file,
index, question_id), text, options and image. The sample: questions drawn category by
category in turn (CATEGORY order of the export's rows), each category's order shuffled by
the generator h("<seed>:sheet:<category>") (core.rng), until N are taken.
"""

import hashlib
import json
from pathlib import Path

from ...core import layout, rng
from ..balance import draw_order
from .exported import LETTERS, Export, Item

ANSWERS_KIND = "scenegen-human-answers"


class SheetRefused(Exception):
    """A sheet's answers that do not fit the export; the message names the first."""


def sample(items: list[Item], count: int, seed: int) -> list[Item]:
    by_category: dict[str, list[Item]] = {}
    for item in items:
        if item.form == "single":
            by_category.setdefault(item.category, []).append(item)
    decks = []
    for category, rows in by_category.items():
        decks.append(draw_order(rng.generator(rng.h(f"{seed}:sheet:{category}")), rows))
    chosen = []
    while len(chosen) < count and any(decks):
        for deck in decks:
            if deck and len(chosen) < count:
                chosen.append(deck.pop(0))
    return chosen


def sheet_id(chosen: list[Item]) -> str:
    keys = "\n".join(f"{i.file}:{i.index}:{i.question_id}" for i in chosen)
    return hashlib.sha256(keys.encode("utf-8")).hexdigest()[:16]


_STYLE = """
body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;color:#222}
.q{border:1px solid #ccc;border-radius:6px;padding:.8em;margin:1em 0}
.q img{width:100%;max-width:40em;display:block;margin:.5em 0}
.q label{display:block;padding:.25em 0;cursor:pointer}
.bar{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc}
button{font-size:1em;padding:.3em 1em}
"""

_SCRIPT = """
const data = JSON.parse(document.getElementById('sheet-data').textContent);
const store = 'scenegen-sheet-' + data.sheet;
const chosen = JSON.parse(localStorage.getItem(store) || '{}');
const list = document.getElementById('questions');
function count() {
  document.getElementById('count').textContent =
    Object.keys(chosen).length + ' of ' + data.questions.length + ' answered';
}
data.questions.forEach((q, n) => {
  const box = document.createElement('div');
  box.className = 'q';
  box.id = 'q' + n;
  const title = document.createElement('p');
  title.textContent = (n + 1) + '. ' + q.question;
  const img = document.createElement('img');
  img.src = 'data:image/png;base64,' + data.images[q.image];
  img.alt = 'picture of question ' + (n + 1);
  box.append(title, img);
  q.options.forEach((text, k) => {
    const letter = String.fromCharCode(65 + k);
    const label = document.createElement('label');
    const radio = document.createElement('input');
    radio.type = 'radio';
    radio.name = 'q' + n;
    radio.value = letter;
    radio.checked = chosen[n] === letter;
    radio.addEventListener('change', () => {
      chosen[n] = letter;
      localStorage.setItem(store, JSON.stringify(chosen));
      count();
    });
    label.append(radio, ' ' + letter + '. ' + text);
    box.append(label);
  });
  list.append(box);
});
count();
document.getElementById('save').addEventListener('click', () => {
  const out = {kind: data.kind, sheet: data.sheet, answers: data.questions.flatMap(
    (q, n) => chosen[n] === undefined ? [] :
      [{file: q.file, index: q.index, question_id: q.question_id, answer: chosen[n]}])};
  const blob = new Blob([JSON.stringify(out, null, 1)], {type: 'application/json'});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'human_answers_' + data.sheet + '.json';
  document.body.append(link);
  link.click();
  link.remove();
});
"""


def page(export: Export, chosen: list[Item]) -> str:
    """The sheet's HTML (module doc)."""
    images, questions = {}, []
    for stem in dict.fromkeys(i.file for i in chosen):
        pictures = export.images_of(stem)
        for item in (i for i in chosen if i.file == stem):
            [picture] = pictures[item.index]
            name = hashlib.sha256(picture.encode("ascii")).hexdigest()[:16]
            images[name] = picture
            questions.append((item, name))
    order = {(i.file, i.index): n for n, i in enumerate(chosen)}
    questions.sort(key=lambda pair: order[(pair[0].file, pair[0].index)])
    data = {"kind": ANSWERS_KIND, "sheet": sheet_id(chosen), "images": images,
            "questions": [{"file": i.file, "index": i.index, "question_id": i.question_id,
                           "question": i.question, "options": list(i.options), "image": name}
                          for i, name in questions]}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>scenegen: human baseline</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>Spatial questions: your answers</h1>",
        "<p>Answer each question from its picture alone. Your choices are kept in this "
        "browser; when you are done, press <b>Save answers</b> and send the file it "
        "downloads.</p>",
        '<div class="bar"><button id="save">Save answers</button> '
        '<span id="count"></span></div>', '<div id="questions"></div>',
        f'<script id="sheet-data" type="application/json">{payload}</script>',
        f"<script>{_SCRIPT}</script>", "</body></html>", ""])


def write(export: Export, out: Path, count: int, seed: int) -> str:
    chosen = sample(export.items(), count, seed)
    if not chosen:
        raise SheetRefused(f"EXPORT {export.root}: no single-image questions to put in a sheet")
    layout.write_text(out, [page(export, chosen)])
    return f"sheet {out}: {len(chosen)} questions, id {sheet_id(chosen)}"


def read_answers(path, export: Export) -> dict[tuple[str, str], tuple[int, int]]:
    """(split, category) -> (correct, answered) from a sheet's saved answers; refused when
    a row is not in the export as the sheet showed it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rows = data["answers"] if data.get("kind") == ANSWERS_KIND else None
    except (OSError, ValueError, KeyError, AttributeError):
        rows = None
    if rows is None:
        raise SheetRefused(f"--human {path}: not a file saved by a scenegen sheet")
    items = {(i.file, i.index): i for i in export.items()}
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        item = items.get((row.get("file"), row.get("index")))
        if item is None or item.question_id != row.get("question_id"):
            raise SheetRefused(f"--human {path}: question {row.get('question_id')!r} (file "
                               f"{row.get('file')}, index {row.get('index')}) is not in the "
                               "export: the sheet was made from another export")
        if row.get("answer") not in LETTERS[:len(item.options)]:
            raise SheetRefused(f"--human {path}: answer {row.get('answer')!r} to "
                               f"{item.question_id} is not one of its letters")
        correct, n = out.get((item.split, item.category), (0, 0))
        out[(item.split, item.category)] = (correct + (row["answer"] == item.answer), n + 1)
    return out
