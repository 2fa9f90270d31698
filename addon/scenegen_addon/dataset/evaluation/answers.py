"""Strict reading of a model's answer: no judge model, no guessing.

Multiple choice (the option letters A.. of the row): after surrounding whitespace, a pair of
"**" around the whole reply, a leading "Answer:" and one trailing "." are dropped, the reply
must be
- one of the row's letters, alone or as "(B)", "B)", "B:" ; or
- a letter with its own option's text: "B. Longer", "(B) Longer", "B) Longer", "B: Longer";
- or exactly one option's text.
Texts compare without case and with runs of spaces as one. Anything else, a letter outside
the row's options included, is unparseable.

Open answers: the grammar every open prompt states (FORMAT 10.5, dataset.wording.read_open)
against the row's allowed answers (`answer_choices`).
"""

import re

from .. import wording
from .exported import LETTERS, Item

_LETTER = re.compile(r"\(?([A-Z])\)?[.:)]?(?:\s+(.*))?", re.DOTALL)
_ANSWER = re.compile(r"answer\s*:\s*", re.IGNORECASE)


def _plain(text: str) -> str:
    return " ".join(text.split()).lower()


def _trimmed(reply: str) -> str:
    text = reply.strip()
    if len(text) > 4 and text.startswith("**") and text.endswith("**"):
        text = text[2:-2].strip()
    prefix = _ANSWER.match(text)
    if prefix:
        text = text[prefix.end():]
    return text[:-1] if text.endswith(".") else text


def choice(item: Item, reply) -> str | None:
    """The letter (multiple choice) or allowed answer (open) a reply gives, None if it gives
    none by the grammar above."""
    if not isinstance(reply, str):
        return None
    if item.form == "open":
        return wording.read_open(reply, item.choices)
    text = _trimmed(reply)
    letters = LETTERS[:len(item.options)]
    found = _LETTER.fullmatch(text)
    if found and found.group(1) in letters:
        rest = found.group(2)
        if rest is None or _plain(rest.rstrip(".")) == _plain(
                item.options[letters.index(found.group(1))]):
            return found.group(1)
        return None
    matches = [k for k, option in enumerate(item.options) if _plain(option) == _plain(text)]
    return letters[matches[0]] if len(matches) == 1 else None


def chosen_label(item: Item, answer: str) -> str:
    """The label an answer (a letter, or an open answer) stands for, in the record's terms
    where the row says (option_labels); an open answer is its own text."""
    if item.form == "open":
        return answer
    return item.option_labels[LETTERS.index(answer)]


def correct(item: Item, answer: str | None) -> bool:
    return answer is not None and answer == item.answer
