"""The tables of FORMAT 2-3 and their bad-input errors."""

import pytest
from scenegen_addon.core import presets


def test_size_totals_match_the_spec():
    totals = {name: sum(presets.size_counts(name).values()) for name in presets.DATASET_SIZES}
    assert totals == {"tiny": 40, "small": 1520, "medium": 15200, "large": 152000}
    assert presets.size_counts("small") == {
        "train": 800,
        "val": 160,
        "test_iid": 400,
        "test_comp": 80,
        "test_hard": 80,
    }


def test_split_rules():
    assert presets.split_rule("test_comp").levels == (10, 11, 12, 13, 14, 15)
    assert presets.split_rule("train").levels == (4, 5, 6, 7, 8, 9, 10)
    assert presets.split_rule("test_hard").tau == 0.05
    assert {presets.split_rule(s).tau for s in ("train", "val", "test_iid", "test_comp")} == {0.1}


def test_quality_presets():
    """FORMAT 3's table; draft's own Cycles settings are those docs/PERFORMANCE.md adopted,
    normal and high keep Cycles' defaults."""
    draft = presets.quality("draft")
    assert (draft.width, draft.height, draft.samples) == (480, 320, 64)
    assert dict(draft.cycles) == {"adaptive_threshold": 0.03}
    assert presets.quality("normal") == presets.Quality(1024, 768, 256, cycles=())
    assert presets.quality("high") == presets.Quality(1024, 768, 512, cycles=())


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: presets.split_rule("test"), "split 'test'.*train, val, test_iid"),
        (lambda: presets.size_counts("huge"), "size 'huge'.*tiny, small, medium, large"),
        (lambda: presets.quality("ultra"), "quality 'ultra'.*draft, normal, high"),
        (lambda: presets.check_object_count("train", 3), "n_objects 3.*4..10"),
        (lambda: presets.check_object_count("test_comp", 16), "n_objects 16.*10..15"),
        (lambda: presets.check_resolution(481, 320), "resolution 481x320.*W/H <= 1.5"),
        (lambda: presets.check_resolution(0, 320), "resolution"),
        (lambda: presets.parse_resolution("480by320"), "resolution.*WxH"),
    ],
)
def test_bad_input_names_the_argument_and_allowed_values(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_resolutions_up_to_3_to_2_are_allowed():
    assert presets.parse_resolution("480x320") == (480, 320)
    assert presets.parse_resolution("1024X768") == (1024, 768)
    assert presets.check_resolution(300, 400) == (300, 400)
    assert presets.check_object_count("test_comp", 15) == 15
