"""The compiled schema checker against the jsonschema package (tests only) and by hand.

Every verdict on the real scene-record schema must equal jsonschema's: on sound records and
on many mutated ones (wrong types, out-of-range numbers, unknown enum values, missing and
extra keys, bool in place of numbers).
"""

import copy

import jsonschema
import numpy as np
import pytest
from scenegen_addon.core import camera, plan, records, schema_check

from tests import fake_dataset

SCHEMA = records.schema()
CHECK = schema_check.compile_schema(SCHEMA)
REFERENCE = jsonschema.Draft202012Validator(SCHEMA)


@pytest.fixture(scope="module")
def record():
    entry = plan.build_plan({"train": 1}, 42)[0].to_dict()  # obj counts 4..10
    views = camera.rig(120, 80)
    spec, masks = fake_dataset.make_scene(entry, views)
    return records.scene_record(spec, views, masks, fake_dataset.RENDER)


def trimmed(record):
    """The record with 2 entries per constraint list: jsonschema is slow on the full one."""
    doc = copy.deepcopy(record)
    for group in [doc["constraints"]["world"], *doc["constraints"]["views"]]:
        for kind, entries in group.items():
            if isinstance(entries, list):
                group[kind] = entries[:2]
    return doc


def verdict(check, doc) -> bool:
    try:
        check(doc)
    except schema_check.SchemaError:
        return False
    return True


def leaves(doc, path=()):
    """Every (path, value) of the document, containers included."""
    yield path, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from leaves(value, (*path, i))


def mutations(value):
    """Replacements that may or may not break the schema."""
    out = [None, True, "x", -1, 13, 0.5, 1.0, [], {}]
    if isinstance(value, dict) and value:
        key = sorted(value)[0]
        out += [{k: v for k, v in value.items() if k != key}, {**value, "extra": 1}]
    if isinstance(value, list) and value:
        out += [value[:-1], value + value[-1:]]
    return out


def test_sound_record(record):
    assert REFERENCE.is_valid(record)
    CHECK(record)


def test_same_verdicts_as_jsonschema(record):
    record = trimmed(record)
    rs = np.random.default_rng(5)
    places = [p for p, _ in leaves(record) if p]
    broken = agreed = 0
    for i in rs.choice(len(places), size=60, replace=False):
        path = places[i]
        for replacement in mutations(get(record, path)):
            doc = copy.deepcopy(record)
            set_(doc, path, replacement)
            expected = REFERENCE.is_valid(doc)
            assert verdict(CHECK, doc) == expected, (path, replacement)
            broken += not expected
            agreed += 1
    assert broken > 300 and agreed - broken > 50  # both verdicts were exercised


def get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def set_(doc, path, value):
    get(doc, path[:-1])[path[-1]] = value


def test_error_names_the_place(record):
    doc = copy.deepcopy(record)
    doc["views"][1]["objects"][0]["bbox"] = "box"
    with pytest.raises(schema_check.SchemaError) as exc:
        CHECK(doc)
    assert exc.value.path[:4] == ["views", 1, "objects", 0]
    assert str(exc.value).startswith("views/1/objects/0/bbox: ")


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "integer"}, [1, 1.0, -3], [True, 1.5, "1", None]),
    ({"type": "number"}, [1, 0.5], [False, "1"]),
    ({"type": ["number", "null"]}, [None, 2], [[], "a"]),
    ({"const": 0}, [0, 0.0], [False, None]),
    ({"enum": [1, "a"]}, [1, "a", 1.0], [True, "b"]),
    ({"minimum": 0, "exclusiveMaximum": 1}, [0, 0.5, "text"], [-0.1, 1]),
    ({"pattern": "^a[0-9]+$", "minLength": 3}, ["a12", 5], ["a1", "ab12"]),
    ({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}, "maxItems": 3},
     [["a", 1, 2], ["a"], []], [[1, 1], ["a", "b"], ["a", 1, 2, 3]]),
    ({"properties": {"a": {"type": "integer"}}, "required": ["a"],
      "additionalProperties": False}, [{"a": 1}], [{}, {"a": 1, "b": 2}, {"a": "1"}]),
    ({"additionalProperties": {"type": "string"}}, [{"x": "y"}], [{"x": 1}]),
    # "s" passes only the second (minimum ignores strings); 6 passes both
    ({"oneOf": [{"type": "integer"}, {"minimum": 5}]}, [1, 5.5, "s"], [6, 7.0]),
    ({"allOf": [{"minimum": 1}, {"maximum": 2}]}, [1, 2], [0, 3]),
    ({"$defs": {"node": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "$ref": "#/$defs/node"}, [[], [[[]]]], [[1], [[], [2]]]),
])
def test_keywords_by_hand(schema, good, bad):
    check = schema_check.compile_schema(schema)
    reference = jsonschema.Draft202012Validator(schema)
    for value in good:
        assert verdict(check, value) and reference.is_valid(value), value
    for value in bad:
        assert not verdict(check, value) and not reference.is_valid(value), value


def test_unsupported_keyword_is_refused():
    with pytest.raises(ValueError, match="'uniqueItems'.*not supported"):
        schema_check.compile_schema({"type": "array", "uniqueItems": True})
    with pytest.raises(ValueError, match="only local references"):
        schema_check.compile_schema({"$ref": "https://example.org/s.json"})
