"""The strict answer grammar: what is read as a choice and what is counted unparseable."""

import pytest
from scenegen_addon.dataset.evaluation import answers
from scenegen_addon.dataset.evaluation.exported import Item

MCQ = Item(file="f", form="single", index=1, question_id="q", split="test_iid",
           scene_id="s", category="world_trr", context="world", constraint="trr",
           objects=("obj_0", "obj_1", "obj_2"), label="11", question="Which hour?",
           options=("one o'clock", "eleven o'clock", "four o'clock", "seven o'clock"),
           option_labels=("1", "11", "4", "7"), answer="B", choices=(), difficulty=None,
           boundary_flag=None, margins=(), n_objects=None)
OPEN = Item(**{**MCQ.__dict__, "form": "open", "options": (), "option_labels": (),
               "answer": "11", "choices": tuple(str(h) for h in range(1, 13))})


@pytest.mark.parametrize("reply, letter", [
    ("B", "B"), (" B ", "B"), ("B.", "B"), ("(B)", "B"), ("B)", "B"), ("B:", "B"),
    ("**B**", "B"), ("Answer: B", "B"), ("answer:B", "B"),
    ("B. eleven o'clock", "B"), ("(B) Eleven  O'clock.", "B"), ("B: eleven o'clock", "B"),
    ("eleven o'clock", "B"), ("Eleven o'clock.", "B"), ("D", "D"),
])
def test_replies_read_as_a_choice(reply, letter):
    assert answers.choice(MCQ, reply) == letter


@pytest.mark.parametrize("reply", [
    "", "E", "b", "B or C", "B. one o'clock", "I think B", "The answer is B.", "11",
    "one", "B C", None, 2,
])
def test_replies_that_are_unparseable(reply):
    assert answers.choice(MCQ, reply) is None


def test_open_answers_follow_the_stated_grammar():
    assert [answers.choice(OPEN, r) for r in ("11", " 11. ", "11..", "eleven", "11 o'clock",
                                              "12")] == ["11", "11", None, None, None, "12"]
    assert answers.chosen_label(OPEN, "12") == "12"
    assert answers.chosen_label(MCQ, "D") == "7"
