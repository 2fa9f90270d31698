"""The constraint-extraction prompts (T2) of the exports: each gold answer is valid against
the schema the prompt states and says exactly what the scene's record says about the
relations asked (checked against the loader's typed constraints); objects are listed when
an attribute name without size singles them out (worked out here from the objects alone),
the others counted; at most K relations per type, drawn by the seed; no near tie unless
asked for."""

import itertools
import json

import jsonschema
import pytest
from scenegen_addon.dataset import extraction_prompts, margins
from scenegen_addon.dataset.evaluation import extraction, relations
from scenegen_addon.dataset.loader import open_dataset

from tests import eval_data


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return open_dataset(eval_data.make_dataset(tmp_path_factory.mktemp("prompts")))


@pytest.fixture(scope="module")
def prompts(dataset):
    return extraction_prompts.generate(dataset, list(dataset), k=20, seed=3)


def unit_key(type_: str, objects) -> tuple:
    """What a relation is about, whoever states it: the asked unit's key."""
    if type_ == "qrr":
        return tuple(sorted((frozenset(objects[:2]), frozenset(objects[2:])), key=sorted))
    if type_ == "trr":
        return tuple(objects)
    if type_ == "closer":
        return objects[0], frozenset(objects[1:])
    return frozenset(objects)


def scene_of(dataset, p):
    return dataset[p.split][p.scene_id]


def test_gold_answers_state_exactly_the_records_about_the_units_asked(dataset, prompts):
    counted = 0
    for split, rows in prompts.items():
        assert [p.index for p in rows] == list(range(1, len(rows) + 1))
        assert {p.split for p in rows} == {split}
        for p in rows:
            jsonschema.Draft202012Validator.check_schema(p.schema)
            jsonschema.validate(p.answer, p.schema)
            assert p.schema == extraction.schema(p.objects, tuple(p.asked))
            gold = extraction.parse(json.dumps(p.answer), p.schema, p.context)
            asked = {(t, unit_key(t, u)) for t, units in p.asked.items() for u in units}
            record = {relations.from_constraint(c)
                      for c in scene_of(dataset, p).constraints(context=p.context)}
            about = {f for f in record if (f.type, unit_key(f.type, f.objects)) in asked}
            assert set(gold) == about and len(gold) == len(about), p.question_id
            counted += len(gold)
    assert counted > 300


def test_objects_listed_when_an_attribute_name_without_size_singles_them_out(dataset,
                                                                             prompts):
    seen_unnamed = 0
    for p in (p for rows in prompts.values() for p in rows):
        objects = scene_of(dataset, p).objects
        nameable = {
            o.id for o in objects if any(
                all(any(getattr(o, a) != getattr(x, a) for a in attrs)
                    for x in objects if x.id != o.id)
                for k in (1, 2, 3) for attrs in itertools.combinations(
                    ("shape", "color", "material"), k))}
        assert set(p.objects) == nameable and p.unnamed == len(objects) - len(nameable)
        assert list(p.objects) == sorted(p.objects, key=relations.index)
        assert len(set(p.descriptions)) == len(p.descriptions)
        for obj_id, name in zip(p.objects, p.descriptions, strict=True):
            words = set(name.split())
            assert not words & {"large", "small", "leftmost", "rightmost", "frontmost",
                                "rearmost"}
            obj = next(o for o in objects if o.id == obj_id)
            assert words - {"the", "object"} <= {obj.shape, obj.color, obj.material}
            assert f"- {obj_id}: {name}\n" in p.question
        units = [u for us in p.asked.values() for u in us]
        assert {x for u in units for x in u} <= set(p.objects)
        seen_unnamed += p.unnamed
    assert seen_unnamed > 0


def test_each_prompt_states_its_units_and_schema(prompts):
    for p in (p for rows in prompts.values() for p in rows):
        assert p.question.endswith(json.dumps(p.schema, separators=(",", ":")))
        assert len(p.images) == (4 if p.context == "world" else 1)
        for type_, units in p.asked.items():
            block = p.question.split(f"\n{type_}: ", 1)[1].split("\n\n", 1)[0].splitlines()
            listed = [line for line in block if line.startswith("- ")]
            assert listed == ["- " + extraction_prompts.UNIT_TEXT.get(
                type_, "{0} and {1}").format(*u) for u in units]
        assert set(p.asked) <= set(extraction_prompts.TYPES[extraction_prompts.kind(
            p.context)])


def test_at_most_k_units_per_type_drawn_by_the_seed(dataset, prompts):
    scene = dataset["test_iid"][dataset["test_iid"].scene_ids[0]]
    full = {p.context: p.asked for p in extraction_prompts.scene_prompts(scene, 1000, 3)}
    few = {p.context: p.asked for p in extraction_prompts.scene_prompts(scene, 3, 3)}
    other = {p.context: p.asked for p in extraction_prompts.scene_prompts(scene, 3, 4)}
    assert few == {p.context: p.asked for p in extraction_prompts.scene_prompts(scene, 3, 3)}
    for context, asked in full.items():
        for type_, units in asked.items():
            assert few[context][type_] == [u for u in units if u in few[context][type_]]
            assert len(few[context][type_]) == min(3, len(units))
    assert any(len(units) > 3 for asked in full.values() for units in asked.values())
    assert few != other
    twenty = {p.context: p.asked for p in prompts["test_iid"] if p.scene_id == scene.scene_id}
    assert all(len(u) <= 20 for asked in twenty.values() for u in asked.values())


def test_near_ties_only_with_keep_near_ties(dataset):
    def near(scene, p):
        """The units of a prompt that fail a margin (FORMAT 10.2), from the records."""
        out = []
        for c in scene.constraints(context=p.context):
            f = relations.from_constraint(c)
            if (c.type == "qrr" and c.boundary_flag) or (
                    c.type == "trr" and margins.near_sector_edge(c.angle_deg)) or (
                    c.type == "occlusion" and c.fraction < margins.MIN_OCCLUDED):
                if unit_key(f.type, f.objects) in {unit_key(f.type, u)
                                                   for u in p.asked.get(f.type, [])}:
                    out.append(f)
        return out

    strict = kept = 0
    for scene in dataset.scenes():
        strict += sum(len(near(scene, p))
                      for p in extraction_prompts.scene_prompts(scene, 1000, 0))
        kept += sum(len(near(scene, p))
                    for p in extraction_prompts.scene_prompts(scene, 1000, 0, True))
    assert strict == 0 and kept > 0
