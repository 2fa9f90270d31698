"""Constraint extraction (T2): the answer schema (checked by jsonschema against gold
answers), strict parsing, and exact precision, recall, F1 and contradiction-cycle figures
for hand-worked answers with planted errors."""

import json

import pytest
from scenegen_addon.dataset.evaluation import extraction, relations
from scenegen_addon.dataset.evaluation.relations import Fact

IDS = ["obj_0", "obj_1", "obj_2", "obj_3", "obj_10"]
TYPES = ["qrr", "trr", "axial", "size", "occlusion"]
GOLD_ANSWER = {
    "qrr": [{"pair1": ["obj_0", "obj_1"], "pair2": ["obj_2", "obj_3"], "comparator": "<"},
            {"pair1": ["obj_0", "obj_2"], "pair2": ["obj_1", "obj_3"], "comparator": "~="},
            {"pair1": ["obj_0", "obj_3"], "pair2": ["obj_1", "obj_2"], "comparator": ">"},
            {"pair1": ["obj_2", "obj_10"], "pair2": ["obj_0", "obj_1"], "comparator": ">"}],
    "trr": [{"target": "obj_0", "ref1": "obj_1", "ref2": "obj_2", "hour": 3},
            {"target": "obj_3", "ref1": "obj_1", "ref2": "obj_2", "hour": 12},
            {"target": "obj_10", "ref1": "obj_0", "ref2": "obj_2", "hour": 7},
            {"target": "obj_2", "ref1": "obj_0", "ref2": "obj_1", "hour": 11}],
    "axial": [{"obj1": "obj_0", "obj2": "obj_1", "relation": "left_of"},
              {"obj1": "obj_0", "obj2": "obj_1", "relation": "behind"},
              {"obj1": "obj_10", "obj2": "obj_2", "relation": "right_of"}],
    "size": [{"bigger": "obj_10", "smaller": "obj_0"}],
    "occlusion": [{"occluder": "obj_3", "occluded": "obj_2"}],
}
SCHEMA = extraction.schema(IDS, TYPES)


def facts(answer, context="view_1"):
    return extraction.parse(json.dumps(answer), SCHEMA, context)


def test_gold_answer_is_valid_and_scores_one():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(GOLD_ANSWER, SCHEMA)
    gold = facts(GOLD_ANSWER)
    assert len(set(gold)) == 13
    score = extraction.Extraction()
    score.add(gold, gold)
    report = score.report()
    assert report["overall"] == {"tp": 13, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0,
                                 "f1": 1.0}
    assert (report["qrr_cycle_share"], report["f1_x_consistency"]) == (0.0, 1.0)
    assert set(report["per_type"]) == set(TYPES)


def test_the_same_relation_said_another_way_is_the_same_fact():
    said = [relations.qrr("world", ("obj_3", "obj_2"), ("obj_1", "obj_0"), ">"),
            relations.pair_relation("axial", "view_1", "obj_1", "obj_0", "right_of"),
            relations.size("world", "obj_10", "obj_2"),
            relations.closer("world", "obj_3", "obj_10", "obj_2")]
    assert said == [Fact("qrr", "world", ("obj_0", "obj_1", "obj_2", "obj_3"), "<"),
                    Fact("axial", "view_1", ("obj_0", "obj_1"), "left_of"),
                    Fact("size", "world", ("obj_2", "obj_10"), "<"),  # obj_2 before obj_10
                    Fact("closer", "world", ("obj_3", "obj_2", "obj_10"), ">")]


def test_a_clock_hour_written_as_a_whole_float_is_the_hour():
    """JSON Schema's integer accepts 12.0: it states the same fact as 12."""
    said = {**GOLD_ANSWER, "trr": [{**r, "hour": float(r["hour"])} for r in GOLD_ANSWER["trr"]]}
    assert '.0}' in json.dumps(said)
    assert facts(said) == facts(GOLD_ANSWER)
    assert relations.trr("world", "obj_0", "obj_1", "obj_2", 12.0).value == "12"


@pytest.mark.parametrize("reply", [
    "",
    "the answer is {}",
    json.dumps({**GOLD_ANSWER, "extra": []}),
    json.dumps({k: v for k, v in GOLD_ANSWER.items() if k != "size"}),
    json.dumps({**GOLD_ANSWER, "trr": [{"target": "obj_0", "ref1": "obj_1", "ref2": "obj_2",
                                        "hour": 13}]}),
    json.dumps({**GOLD_ANSWER, "size": [{"bigger": "obj_9", "smaller": "obj_0"}]}),
    json.dumps({**GOLD_ANSWER, "qrr": [{"pair1": ["obj_0"], "pair2": ["obj_2", "obj_3"],
                                        "comparator": "<"}]}),
    "```json\n" + json.dumps(GOLD_ANSWER) + "\n```\nThat is all.",
])
def test_replies_that_are_not_the_schema_are_unparseable(reply):
    assert extraction.parse(reply, SCHEMA, "view_1") is None


def test_a_fenced_reply_is_read():
    reply = "```json\n" + json.dumps(GOLD_ANSWER, indent=2) + "\n```"
    assert extraction.parse(reply, SCHEMA, "view_1") == facts(GOLD_ANSWER)


def test_planted_errors_give_the_hand_worked_figures():
    """Planted: one qrr comparator flipped (1 FP, 1 FN), one trr hour off (1 FP, 1 FN),
    one axial left out (1 FN), an occlusion the gold omits (1 FP), and a second prompt
    left unparseable (its 13 gold facts are FN). Then TP = 13 + 13 - 3 = 10 of the first
    prompt's 13 gold: TP 10, FP 3, FN 3 + 13 = 16."""
    planted = json.loads(json.dumps(GOLD_ANSWER))
    planted["qrr"][0]["comparator"] = ">"
    planted["trr"][1]["hour"] = 1
    del planted["axial"][2]
    planted["occlusion"].append({"occluder": "obj_0", "occluded": "obj_1"})
    score = extraction.Extraction()
    score.add(facts(GOLD_ANSWER), facts(planted))
    score.add(facts(GOLD_ANSWER), extraction.parse("I cannot tell.", SCHEMA, "view_1"))
    report = score.report()
    assert (report["prompts"], report["unparseable"]) == (2, 1)
    assert report["overall"] == {"tp": 10, "fp": 3, "fn": 16, "precision": 10 / 13,
                                 "recall": 10 / 26, "f1": 20 / 39}
    per_type = report["per_type"]
    assert per_type["qrr"] == {"tp": 3, "fp": 1, "fn": 5, "precision": 0.75,
                               "recall": 3 / 8, "f1": 0.5}
    assert per_type["axial"] == {"tp": 2, "fp": 0, "fn": 4, "precision": 1.0,
                                 "recall": 1 / 3, "f1": 0.5}
    assert per_type["occlusion"] == {"tp": 1, "fp": 1, "fn": 1, "precision": 0.5,
                                     "recall": 0.5, "f1": 0.5}
    # the flipped comparator says |01| > |23| while another says |2,10| > |01|: no cycle
    assert report["qrr_cycle_share"] == 0.0


def test_a_planted_cycle_is_found():
    """|01| < |23|, |23| < |0,10|, |0,10| < |01| is a cycle of three; a fourth relation
    off it and a "~=" are not on it: share 3/5, headline F1 x 2/5."""
    cycle = [relations.qrr("world", ("obj_0", "obj_1"), ("obj_2", "obj_3"), "<"),
             relations.qrr("world", ("obj_2", "obj_3"), ("obj_0", "obj_10"), "<"),
             relations.qrr("world", ("obj_10", "obj_0"), ("obj_1", "obj_0"), "<")]
    off = [relations.qrr("world", ("obj_1", "obj_2"), ("obj_0", "obj_1"), ">"),
           relations.qrr("world", ("obj_1", "obj_3"), ("obj_0", "obj_2"), "~=")]
    assert extraction.cycle_members(cycle + off) == set(cycle)
    score = extraction.Extraction()
    score.add(cycle + off, cycle + off)
    report = score.report()
    assert (report["qrr_predicted"], report["qrr_on_cycle"]) == (5, 3)
    assert report["qrr_cycle_share"] == pytest.approx(0.6)
    assert report["f1_x_consistency"] == pytest.approx(0.4)
    # a relation stated both ways is a cycle of two
    both = [cycle[0], cycle[0]._replace(value=">")]
    assert extraction.cycle_members(both) == set(both)
