"""Questions from the ground truth (dataset.questions, candidates, margins, describe, balance)
on a dataset made without Blender (tests/fake_dataset.py: real sampler, masks painted from
the silhouettes, real records).

Each question is checked against the raw metadata JSON by an independent reading of FORMAT
6.4; its names are resolved against the scene's objects by a resolver written here, whose
relations are judged in the image from the stored centroids and from bounding boxes read
off the mask PNGs; every margin is checked from the stored numbers; the classes and letters
are counted.
"""

import copy
import itertools
import json
from collections import Counter
from math import comb

import numpy as np
import pytest
from scenegen_addon.core import constraints, merge, png
from scenegen_addon.core.spec import COLORS
from scenegen_addon.dataset import candidates, questions, wording
from scenegen_addon.dataset.describe import Describer
from scenegen_addon.dataset.loader import Scene, Unreadable, open_dataset

from tests import fake_dataset

COUNTS = {"train": 3, "test_comp": 2}
PER_TYPE = 3
PIXELS = 0.02  # left/right margin, of the image width
DEPTH = 0.5  # front/behind margin, world units
RELATION_WORDS = ("leftmost", "rightmost", "frontmost", "rearmost")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("questions") / "data"
    fake_dataset.make_output(out, COUNTS)
    merge.merge(out)
    return open_dataset(out)


@pytest.fixture(scope="module")
def question_set(dataset):
    return questions.generate(dataset, per_type=PER_TYPE, seed=7)


@pytest.fixture(scope="module")
def near_set(dataset):
    return questions.generate(dataset, per_type=PER_TYPE, seed=7, keep_near_ties=True)


_RECORDS: dict = {}
_BOXES: dict = {}


def record_of(dataset, scene_id):
    """The raw metadata JSON of a scene (read once)."""
    key = (str(dataset.root), scene_id)
    if key not in _RECORDS:
        _RECORDS[key] = json.loads((dataset.root / "metadata" / f"{scene_id}.json").read_text())
    return _RECORDS[key]


def mask_boxes(dataset, record, view) -> dict[str, tuple | None]:
    """Each object's (u0, u1) column range in the view's mask PNG (None if not visible)."""
    key = (record["scene_id"], view)
    if key not in _BOXES:
        mask = png.read_png16(dataset.root / record["views"][view]["mask"])
        boxes = {}
        for k, obj in enumerate(record["objects"]):
            cols = np.flatnonzero((mask == k + 1).any(axis=0))
            boxes[obj["id"]] = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else None
        _BOXES[key] = boxes
    return _BOXES[key]


def idx(object_id: str) -> int:
    return int(object_id.split("_")[1])


def view_of(q) -> int:
    return 0 if q.context == "world" else int(q.context[5:])


# --- relations in the image, from stored numbers and the masks ------------------------------

def left_in_image(dataset, record, view, a, b) -> bool:
    """a is left of b in the view's image: centroid u and both mask-box edges by the margin."""
    objs = {o["id"]: o for o in record["views"][view]["objects"]}
    boxes = mask_boxes(dataset, record, view)
    margin = PIXELS * record["image_size"][0]
    if boxes[a] is None or boxes[b] is None:
        return False
    assert list(boxes[a]) == objs[a]["bbox"][0::2]  # the stored box is the mask's
    return (objs[b]["pixel_coords"][0] - objs[a]["pixel_coords"][0] >= margin
            and boxes[b][0] - boxes[a][0] >= margin and boxes[b][1] - boxes[a][1] >= margin)


def front_in_image(record, view, a, b) -> bool:
    objs = {o["id"]: o for o in record["views"][view]["objects"]}
    return objs[b]["pixel_coords"][2] - objs[a]["pixel_coords"][2] >= DEPTH


def resolve(dataset, text: str, record: dict, view: int) -> list[str]:
    """Ids of the objects `text` ("the leftmost small red cube") can mean in the record."""
    words = text.split()
    assert words[0] == "the", text
    words = words[1:]
    relation = words.pop(0) if words[0] in RELATION_WORDS else None
    noun = words.pop()
    matches = [o for o in record["objects"] if noun == "object" or o["shape"] == noun]
    for word in words:
        key = ("size" if word in ("large", "small") else "material" if word in ("rubber", "metal")
               else "color")
        assert key != "color" or word in COLORS, text
        matches = [o for o in matches if o[key] == word]
    if relation:
        def before(a, b):
            if relation in ("leftmost", "rightmost"):
                first, second = (a, b) if relation == "leftmost" else (b, a)
                return left_in_image(dataset, record, view, first, second)
            first, second = (a, b) if relation == "frontmost" else (b, a)
            return front_in_image(record, view, first, second)
        matches = [o for o in matches
                   if all(before(o["id"], p["id"]) for p in matches if p is not o)]
    return [o["id"] for o in matches]


# --- an independent reading of the labels --------------------------------------------------

def expected_label(record, q) -> str:
    if q.context == "world":
        raw = record["constraints"]["world"]
    else:
        raw = record["constraints"]["views"][int(q.context[5:])]
        assert raw["view_id"] == q.context
    objs = list(q.objects)
    if q.constraint == "qrr":
        [r] = [r for r in raw["qrr"] if r["pair1"] + r["pair2"] == objs]
        assert (q.difficulty, q.boundary_flag) == (r["difficulty"], r["boundary_flag"])
        return r["comparator"]
    assert q.difficulty is None and q.boundary_flag is None
    if q.constraint == "trr":
        [r] = [r for r in raw["trr"] if [r["target"], r["ref1"], r["ref2"]] == objs]
        return str(r["hour"])
    if q.constraint in ("topology", "axial"):
        found = [r["relation"] for r in raw[q.constraint] if [r["obj1"], r["obj2"]] == objs]
        assert q.label in found  # a pair has up to two axial relations, one per axis
        return q.label
    if q.constraint == "size":
        a, b = objs
        assert idx(a) < idx(b)
        found = [r["bigger"] for r in raw["size"] if {r["bigger"], r["smaller"]} == {a, b}]
        return found[0] if found else "~="
    if q.constraint == "closer":
        anchor, a, b = objs
        assert idx(a) < idx(b) and anchor not in (a, b)
        found = [r["closer"] for r in raw["closer"]
                 if r["anchor"] == anchor and {r["closer"], r["farther"]} == {a, b}]
        return found[0] if found else "~="
    assert q.constraint == "occlusion"
    a, b = objs
    hides = {(r["occluder"], r["occluded"]): r["fraction"] for r in raw["occlusion"]}
    if (a, b) in hides:
        return "yes"
    assert (b, a) in hides  # "no" only where b visibly hides a: the silhouettes overlap
    return "no"


def margins_failed(record, q) -> set[str]:
    """The margins of dataset.margins the question fails, read from the stored numbers."""
    tau = record["tau"]
    view = view_of(q)
    objs = {o["id"]: o for o in record["views"][view]["objects"]}

    def band(a, b):
        t = tau * max(a, b)
        return 0.8 * t < abs(a - b) < 1.2 * t

    failed = set()
    if q.constraint == "qrr" and q.boundary_flag:
        failed.add("tie_band")
    if q.constraint == "trr":
        raw = (record["constraints"]["world"] if q.context == "world"
               else record["constraints"]["views"][view])
        [r] = [r for r in raw["trr"] if [r["target"], r["ref1"], r["ref2"]] == list(q.objects)]
        inside = (r["angle_deg"] + 15) % 30
        if min(inside, 30 - inside) < 5:
            failed.add("sector_edge")
    if q.constraint == "closer":
        centre = {o["id"]: np.array(o["centroid"]) for o in record["objects"]}
        anchor, a, b = q.objects
        da, db = (float(np.sqrt(((centre[anchor] - centre[x]) ** 2).sum())) for x in (a, b))
        if band(da, db):
            failed.add("tie_band")
    if q.category == "view_size":
        a, b = q.objects
        if band(objs[a]["silhouette_pixels"], objs[b]["silhouette_pixels"]):
            failed.add("tie_band")
        if min(objs[a]["visible_fraction"], objs[b]["visible_fraction"]) < 0.95:
            failed.add("partly_hidden")
    if q.constraint == "occlusion":
        raw = record["constraints"]["views"][view]["occlusion"]
        hides = {(r["occluder"], r["occluded"]): r["fraction"] for r in raw}
        a, b = q.objects
        if hides.get((a, b), hides.get((b, a))) < 0.05:
            failed.add("few_pixels")
    return failed


# --- tests ---------------------------------------------------------------------------------

def check_question(dataset, q, keep: bool) -> None:
    record = record_of(dataset, q.scene_id)
    assert q.label == expected_label(record, q), q
    assert q.option_labels[questions.LETTERS.index(q.answer)] == q.label
    assert len(set(q.option_labels)) == len(q.options) == len(set(q.options))
    low = [o.lower() for o in q.options]
    assert not [a for a, b in itertools.permutations(low, 2) if a in b], q.options
    assert q.context == "world" if q.category.startswith("world") else q.context[:5] == "view_"
    assert q.image == (record["single_view"]["image"] if q.context == "world"
                       else record["views"][int(q.context[5:])]["image"])
    view = view_of(q)
    assert [resolve(dataset, n, record, view) for n in q.descriptions] == [
        [o] for o in q.objects], q
    text = q.question
    for name in q.descriptions:
        assert name in text
    words = set(text.replace("?", " ").replace(",", " ").replace(".", " ").split())
    if q.constraint in ("qrr", "trr", "closer") or q.category == "view_size":
        assert not words & set(RELATION_WORDS), text  # no position in those names
    if q.constraint == "size":
        assert not words & {"large", "small"}, text
    if q.category == "view_size":
        shapes = {o["id"]: o["shape"] for o in record["objects"]}
        assert shapes[q.objects[0]] == shapes[q.objects[1]]
        assert len(q.options) == 2
    if q.constraint == "axial":
        a, b = q.objects
        if q.label in ("left_of", "right_of"):
            assert not words & {"leftmost", "rightmost"}, text
            first, second = (a, b) if q.label == "left_of" else (b, a)
            assert left_in_image(dataset, record, view, first, second), q
        else:
            assert not words & {"frontmost", "rearmost"}, text
            first, second = (a, b) if q.label == "in_front_of" else (b, a)
            assert front_in_image(record, view, first, second), q
    if q.constraint == "occlusion":
        assert not words & {"frontmost", "rearmost"}, text
    if q.constraint == "trr":
        hours = [int(h) for h in q.option_labels]
        assert len(hours) == 4 and int(q.label) in hours
        assert all(min((h - k) % 12, (k - h) % 12) >= 2
                   for h, k in itertools.combinations(hours, 2))
        assert q.options[q.answer_index] == f"{wording.HOUR_WORDS[int(q.label) % 12]} o'clock"
    if q.constraint == "topology":
        assert sorted(q.options) == ["Apart", "Touching"]
    failed = margins_failed(record, q)
    assert set(q.margins) == failed and (keep or not failed), (q, failed)
    # the open form: the grammar's words, the gold among them
    assert q.answer_text in q.answer_choices and q.open_question.startswith(q.question)
    assert all(f"{w}" in q.open_question for w in q.answer_choices if not w.isdigit())
    # the multi-view form of world questions: names by attributes or "in image 1"
    if q.context == "world":
        assert q.view_images == tuple(v["image"] for v in record["views"])
        assert q.multiview_question.startswith(wording.MULTI_VIEW_INTRO)
        for plain, multi in zip(q.descriptions, q.multiview_descriptions, strict=True):
            has_relation = set(plain.split()) & set(RELATION_WORDS)
            assert multi == (f"{plain} in image 1" if has_relation else plain)
            assert multi in q.multiview_question
    else:
        assert q.multiview_question is None and q.view_images is None


def test_every_question_is_the_records_and_visible_by_the_margins(dataset, question_set):
    for q in question_set.all():
        check_question(dataset, q, keep=False)


def test_near_ties_are_kept_only_when_asked_and_flagged(dataset, question_set, near_set):
    for q in near_set.all():
        check_question(dataset, q, keep=True)
    flagged = Counter(m for q in near_set.all() for m in q.margins)
    assert set(flagged) >= {"tie_band", "sector_edge"}
    assert not [q for q in question_set.all() if q.margins]
    assert near_set.counts["world_trr"][questions.NEAR_TIE] == 0
    assert question_set.counts["world_trr"][questions.NEAR_TIE] == \
        question_set.counts["world_trr"]["sector_edge"] > 0


def test_classes_and_letters_are_balanced_per_split_and_category(dataset, question_set):
    for split, qs in question_set.questions.items():
        scenes = len(dataset[split])
        for cat in questions.CATEGORIES:
            mine = [q for q in qs if q.category == cat]
            vocabulary = wording.CLASSES[cat]
            by_class = Counter(blind_class(q) for q in mine)
            counts = [by_class[c] for c in vocabulary]
            assert max(counts) - min(counts) <= 1, (split, cat, counts)
            assert len(mine) <= PER_TYPE * scenes
            balance = question_set.balances[split][cat]
            assert balance.asked == len(mine) and balance.target == PER_TYPE * scenes
            if len(mine) < balance.target:
                assert len(mine) == len(vocabulary) * min(balance.supply.values())
                assert any(line.startswith(f"{split} {cat}: {len(mine)} of ")
                           for line in question_set.shortfalls())
            letters = Counter(q.answer for q in mine)
            k = {len(q.options) for q in mine}
            assert len(k) <= 1
            if mine:
                spread = [letters[x] for x in questions.LETTERS[:k.pop()]]
                assert max(spread) - min(spread) <= 1, (split, cat, spread)
    assert {q.category for q in question_set.all()} == set(questions.CATEGORIES)


def blind_class(q) -> str:
    """The label class, read from the stored label (independent of the blind module)."""
    if q.constraint in ("size", "closer"):
        return {q.objects[-2]: "first", q.objects[-1]: "second"}.get(q.label, "same")
    return q.label


def test_ids_indices_and_wordings(question_set):
    for qs in question_set.questions.values():
        assert [q.index for q in qs] == list(range(1, len(qs) + 1))
        ids = [q.question_id for q in qs]
        assert len(set(ids)) == len(ids)
        assert len({(q.context, q.objects, q.label) for q in qs}) == len(ids)
        for q in qs:
            scene, rest = q.question_id.split(f"_{q.category}_")
            assert scene == q.scene_id and len(rest) == 2
    used = Counter((q.category, q.wording) for q in question_set.all())
    for cat in questions.CATEGORIES:
        assert len({w for c, w in used if c == cat}) >= 3, cat
    for key, texts in wording.WORDINGS.items():
        assert len(texts) >= 3 and len(set(texts)) == len(texts), key


def test_counts_per_scene_and_category(dataset):
    for scene in dataset.scenes():
        record = record_of(dataset, scene.scene_id)
        n = scene.n_objects
        d = questions.draft_scene(scene, PER_TYPE, seed=7)
        world, views = record["constraints"]["world"], record["constraints"]["views"]
        counts = {cat: d.counts[cat]["candidates"] for cat in questions.CATEGORIES}
        assert counts["world_qrr"] == len(world["qrr"]) == 3 * comb(n, 4)
        assert counts["world_trr"] == n * (n - 1) * (n - 2)
        assert counts["world_topology"] == comb(n, 2)
        assert counts["world_size"] == comb(n, 2)
        assert counts["world_closer"] == n * comb(n - 1, 2)
        assert counts["view_qrr"] == 4 * 3 * comb(n, 4)
        assert counts["view_trr"] == 4 * n * (n - 1) * (n - 2)
        assert counts["view_axial"] == sum(len(v["axial"]) for v in views)
        shapes = [o["shape"] for o in record["objects"]]
        assert counts["view_size"] == sum(
            1 for v in views for r in v["size"] if shapes[idx(r["bigger"])] ==
            shapes[idx(r["smaller"])])
        occluded = [{(r["occluder"], r["occluded"]) for r in v["occlusion"]} for v in views]
        assert counts["view_occlusion"] == sum(len(o) + sum((b, a) not in o for a, b in o)
                                               for o in occluded)
        for cat in questions.CATEGORIES:
            tally = d.counts[cat]
            cap = questions.cap_per_class(PER_TYPE, len(wording.CLASSES[cat]))
            assert all(len(v) <= cap for v in d.drafts[cat].values())
            drafted = sum(len(v) for v in d.drafts[cat].values())
            skipped = sum(tally[r] for r in questions.SKIPS)
            assert drafted + skipped <= tally["candidates"]
    with pytest.raises(ValueError, match="unknown question category 'axial'"):
        questions.draft_scene(dataset["train"][0], {"axial": 1})


def test_deterministic_seeded_and_the_same_on_two_processes(dataset, question_set):
    again = questions.generate(dataset, per_type=PER_TYPE, seed=7, jobs=2)
    assert again.questions == question_set.questions
    assert again.counts == question_set.counts
    other = questions.generate(dataset, per_type=PER_TYPE, seed=8)
    assert other.questions != question_set.questions
    assert all(other.counts[c]["candidates"] == question_set.counts[c]["candidates"]
               for c in questions.CATEGORIES)


def describable(dataset, record, i, view, banned_attributes, banned_relations):
    """Brute force: every allowed phrase that resolves to object i alone."""
    obj = record["objects"][i]
    attrs = [a for a in ("shape", "color", "size", "material") if a not in banned_attributes]
    found = []
    for k in range(len(attrs) + 1):
        for subset in itertools.combinations(attrs, k):
            for relation in [None] + [r for r in RELATION_WORDS if r not in banned_relations]:
                words = ["the"] + ([relation] if relation else [])
                words += [obj[a] for a in ("size", "color", "material") if a in subset]
                words.append(obj["shape"] if "shape" in subset else "object")
                if resolve(dataset, " ".join(words), record, view) == [obj["id"]]:
                    found.append((len(subset), relation))
    return found


def test_look_alike_objects_get_image_relations_or_are_skipped(dataset):
    """All objects red rubber (geometry unchanged, so every label stays exact): names need
    shape, size and relations that hold in the image; who cannot be named is skipped and
    counted."""
    scene = dataset["test_comp"][0]
    record = copy.deepcopy(scene.record)
    for obj in record["objects"]:
        obj["color"], obj["material"] = "red", "rubber"
    twins = Scene(scene.root, record)
    missing = {}
    for view in range(4):
        describer = Describer(twins, view)
        for banned in candidates.NAMINGS:
            for i in range(twins.n_objects):
                found = describable(dataset, record, i, view, *banned)
                got = describer.describe(i, *banned)
                assert (got is None) == (not found)
                if got is not None:
                    assert resolve(dataset, got.text, record, view) == [f"obj_{i}"]
                    attribute_only = [k for k, r in found if r is None]
                    if attribute_only:
                        assert got.relation is None
                        assert len(got.attributes) == min(attribute_only)
                    else:
                        assert got.relation is not None
                        assert len(got.attributes) == min(k for k, _ in found)
                    assert not set(got.attributes) & set(banned[0])
                    assert got.relation not in banned[1]
                else:
                    missing.setdefault((view, banned), set()).add(f"obj_{i}")
    assert missing[(0, candidates.NAMINGS[1])]  # some cannot be named without their size
    d = questions.draft_scene(twins, PER_TYPE, seed=7)
    assert d.counts["world_size"][questions.UNNAMED] > 0
    for q in questions.select([d], twins.split, questions._per_type(PER_TYPE), 7):
        assert q.label == expected_label(record, q)
        assert [resolve(dataset, n, record, view_of(q)) for n in q.descriptions] == [
            [o] for o in q.objects]


@pytest.mark.parametrize("category, edit", [
    ("view_axial", lambda r: r["constraints"]["views"][1]["axial"][0].update(obj2="obj_99")),
    ("world_qrr", lambda r: r["constraints"]["world"]["qrr"][0].pop("boundary_flag")),
    ("view_trr", lambda r: r["constraints"]["views"][2].pop("trr")),
])
def test_records_that_do_not_fit_together_are_unreadable_naming_scene_and_category(
        dataset, category, edit):
    """Schema-shaped records that contradict the scene gave a raw KeyError out of question
    generation (the export's blind baseline catches only Unreadable)."""
    scene = dataset["train"][0]
    record = copy.deepcopy(scene.record)
    edit(record)
    broken = Scene(scene.root, record)
    with pytest.raises(Unreadable, match=f"^metadata/{scene.scene_id}.json: its records "
                                         f"cannot be asked as {category} \\(KeyError"):
        candidates.pool(broken, category)
    with pytest.raises(Unreadable, match=category):
        questions.draft_scene(broken, PER_TYPE, seed=7)


def test_format_doc_states_the_margins_the_code_uses():
    """docs/FORMAT.md section 10 gives each margin as dataset.margins has it."""
    from pathlib import Path

    from scenegen_addon.dataset import margins

    text = (Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md").read_text()
    section = text[text.index("## 10 Questions"):]
    assert f"at least {margins.PIXEL_MARGIN:.0%} of the image width" in section
    assert f"at least {margins.DEPTH_MARGIN:g} world units less" in section
    low, high = constraints.BOUNDARY_BAND
    assert f"{low:g} T < \\|a - b\\| < {high:g} T" in section
    assert f"at least {margins.MIN_VISIBLE:.0%} visible" in section
    assert f"at least {margins.SECTOR_MARGIN_DEG:g} degrees from the edge" in section
    assert f"at least {margins.MIN_OCCLUDED:.0%}" in section
    for name in margins.NEAR_TIES:
        assert f"`{name}`" in section
    assert all(sum(h in s for s in questions.CLOCK_SETS) == 35 for h in range(1, 13))
