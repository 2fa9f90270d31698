"""The dataset plan of FORMAT 2: h(), seeds, block-wise object counts, ids, fingerprint."""

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scenegen_addon.core import plan, presets, rng


def test_h_of_known_strings():
    # SHA-256("abc") = ba7816bf8f01cfea... (the FIPS 180-2 test vector): first 6 bytes.
    assert rng.h("abc") == 0xBA7816BF8F01
    # sha256(b"42:train:0").hexdigest() starts with c4556b7bc259 (checked with hashlib).
    assert rng.h("42:train:0") == 0xC4556B7BC259
    assert plan.scene_seed(42, "train", 0) == 0xC4556B7BC259
    assert rng.h("x") < 2**48


def test_scene_and_retry_seeds():
    entry = plan.build_plan({"val": 8}, global_seed=7)[5]
    assert entry.scene_id == "val_00005" and entry.seed == rng.h("7:val:5")
    assert entry.retry_seed(0, 7) == entry.seed
    assert entry.retry_seed(3, 7) == rng.h("7:val:5:3")


def test_each_block_is_a_permutation_of_the_levels():
    counts = plan.object_counts(42, "train", 70)
    for b in range(10):
        assert sorted(counts[7 * b : 7 * b + 7]) == [4, 5, 6, 7, 8, 9, 10]
    comp = plan.object_counts(42, "test_comp", 30)
    for b in range(5):
        assert sorted(comp[6 * b : 6 * b + 6]) == [10, 11, 12, 13, 14, 15]


def test_block_draws_follow_the_documented_order():
    # Block 0 of train by hand: Generator of h("42:train:block:0"), floor(u * remaining).
    g = np.random.Generator(np.random.PCG64(rng.h("42:train:block:0")))
    remaining = [4, 5, 6, 7, 8, 9, 10]
    expected = [remaining.pop(int(g.random() * len(remaining))) for _ in range(7)]
    assert plan.block_levels(42, "train", 0) == expected


def test_level_counts_are_balanced_and_not_over_generated():
    counts = plan.object_counts(42, "test_iid", 400)
    assert len(counts) == 400
    histogram = Counter(counts)
    assert set(histogram) == set(range(4, 11))
    assert all(histogram[n] in (400 // 7, 400 // 7 + 1) for n in histogram)


def test_tiny_is_the_start_of_small_split_by_split():
    tiny = plan.build_plan(presets.size_counts("tiny"))
    small = plan.build_plan(presets.size_counts("small"))
    assert len(tiny) == 40 and len(small) == 1520
    for split in presets.SPLITS:
        t = [e for e in tiny if e.split == split]
        s = [e for e in small if e.split == split]
        assert t == s[: len(t)]
    assert [e.split for e in small[:800]] == ["train"] * 800


def test_scene_id_padding():
    assert plan.build_plan({"train": 8})[3].scene_id == "train_00003"
    assert plan.id_digits(100000) == 5  # largest index 99999
    assert plan.id_digits(100001) == 6  # largest index 100000
    started = time.perf_counter()
    big = plan.build_plan({"test_hard": 100001})
    assert time.perf_counter() - started < 10
    assert big[0].scene_id == "test_hard_000000" and big[-1].scene_id == "test_hard_100000"
    # The padding changes the id, never the scene.
    small = plan.build_plan({"test_hard": 80})
    assert [(e.seed, e.n_objects) for e in big[:80]] == [(e.seed, e.n_objects) for e in small]


def test_entries_carry_split_rules():
    for entry in plan.build_plan(presets.size_counts("tiny")):
        rule = presets.split_rule(entry.split)
        assert entry.tau == rule.tau
        assert rule.min_objects <= entry.n_objects <= rule.max_objects


def test_resolve_counts():
    assert plan.resolve_counts("tiny") == presets.size_counts("tiny")
    assert plan.resolve_counts() == presets.size_counts("small")
    assert plan.resolve_counts(scenes_per_split=3) == {s: 3 for s in presets.SPLITS}


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: plan.build_plan({"train": 0}), "count of split 'train'.*positive"),
        (lambda: plan.build_plan({"train": -4}), "count of split 'train'.*positive"),
        (lambda: plan.build_plan({"training": 4}), "split 'training'.*train, val"),
        (lambda: plan.resolve_counts(scenes_per_split=0), "scenes_per_split.*positive"),
        (lambda: plan.resolve_counts(scenes_per_split=True), "scenes_per_split.*positive"),
        (lambda: plan.resolve_counts("giant"), "size 'giant'.*tiny, small"),
    ],
)
def test_bad_counts(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_fingerprint():
    a = {"seed": 42, "size": "tiny", "samples": 64}
    assert plan.fingerprint(a) == plan.fingerprint(dict(reversed(list(a.items()))))
    b = dict(a, samples=256)
    assert plan.fingerprint(a) != plan.fingerprint(b)
    assert plan.fingerprint_difference(a, b) == ["samples: 64 -> 256"]
    assert plan.fingerprint_difference(a, a) == []


def test_a_plan_made_before_plan_settings_moved_keeps_its_fingerprint():
    """tests/golden/plan_settings_0755532.json holds the settings and fingerprints of two
    plan.json files `headless/build.py --plan-only` wrote at commit 0755532, when the
    launcher assembled the settings: the same command line (through the build's own option
    checks) and the same Blender and numpy versions give the same settings, key for key, and
    so the same fingerprint: every existing folder stays this command's."""
    from scenegen_addon.launcher import options

    golden = json.loads((Path(__file__).parent / "golden/plan_settings_0755532.json").read_text())
    assert len(golden["plans"]) == 2
    for made in golden["plans"]:
        args = options.build_parser().parse_args(made["build_options"].split())
        settings = plan.plan_settings(
            **options.check_options(args), blender_version=made["settings"]["blender_version"],
            numpy_version=made["settings"]["numpy_version"])
        assert settings == made["settings"]
        assert list(settings) == list(made["settings"])  # the same keys in the same order
        assert plan.fingerprint(settings) == made["fingerprint"]
        assert plan.document(settings)["fingerprint"] == made["fingerprint"]
