"""Scene sampling (FORMAT 4) checked by code written independently of the sampler's.

Footprint gaps here come from dense outline polygons (not shapes.gap), in-frame from every
projected mesh vertex (not the contour shortcut), directions from hand-worked vectors.
Golden files pin every draw; regenerate them (only for an intended change of the draw
order) with `python tests/test_sampling.py --write-golden`.
"""

import dataclasses
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scenegen_addon.core import camera, plan, presets, records, sampling, spec, visibility

GLOBAL_SEED = 42
GOLDEN = pathlib.Path(__file__).parent / "golden"
GOLDEN_IDS = ("train_00000", "test_comp_00003", "test_hard_00005")
ADDON = pathlib.Path(__file__).resolve().parents[1] / "addon"
S2 = math.sqrt(2) / 2
LEFT0, FRONT0 = np.array([S2, -S2]), np.array([S2, S2])  # view 0 at azimuth 45 degrees
NOMINAL_LIGHTS = {"key": (-5, -5, 8, 500, 3), "fill": (5, -5, 5, 200, 5), "back": (0, 8, 6, 300, 3)}


def planned(scene_id, counts=None):
    entries = plan.build_plan(counts or presets.size_counts("tiny"), GLOBAL_SEED)
    return next(e for e in entries if e.scene_id == scene_id)


def golden_text(scene: spec.SceneSpec) -> str:
    return json.dumps(scene.to_dict(), indent=1, sort_keys=True) + "\n"


# ------------------------------------------------------------ independent geometry


def outline(obj: spec.ObjectSpec, per_quarter: int = 180) -> np.ndarray:
    """Dense polygon of the mid-height footprint, counter-clockwise."""
    s = obj.size_value
    if obj.shape == "cube":
        points = []
        for q, (cx, cy) in enumerate([(1, 1), (-1, 1), (-1, -1), (1, -1)]):
            a = np.radians(90 * q + np.linspace(0, 90, per_quarter))
            points.append(
                np.stack(
                    [0.45 * s * cx + 0.05 * s * np.cos(a), 0.45 * s * cy + 0.05 * s * np.sin(a)],
                    axis=1,
                )
            )
        local = np.concatenate(points)
    else:
        a = np.radians(np.linspace(0, 360, 4 * per_quarter, endpoint=False))
        local = 0.5 * s * np.stack([np.cos(a), np.sin(a)], axis=1)
    c, sn = math.cos(math.radians(obj.rotation)), math.sin(math.radians(obj.rotation))
    return local @ np.array([[c, sn], [-sn, c]]) + np.asarray(obj.position)


def bounding_radius(obj):
    return obj.size_value * (0.45 * math.sqrt(2) + 0.05 if obj.shape == "cube" else 0.5)


def polygon_gap(p: np.ndarray, q: np.ndarray) -> float:
    """Distance between two disjoint convex polygons; -1 when they overlap."""

    def inside(points, poly):
        a, b = poly, np.roll(poly, -1, axis=0)
        cross = (b[:, 0] - a[:, 0])[:, None] * (points[None, :, 1] - a[:, 1:2]) - (
            b[:, 1] - a[:, 1]
        )[:, None] * (points[None, :, 0] - a[:, 0:1])
        return np.all(cross >= 0, axis=0)

    if inside(p, q).any() or inside(q, p).any():
        return -1.0

    def point_to_segments(points, poly):
        a, b = poly, np.roll(poly, -1, axis=0)
        ab = b - a
        rel = points[:, None, :] - a[None]
        t = np.clip(np.einsum("ijk,jk->ij", rel, ab) / np.einsum("jk,jk->j", ab, ab), 0, 1)
        return np.linalg.norm(rel - t[..., None] * ab[None], axis=2).min()

    return float(min(point_to_segments(p, q), point_to_segments(q, p)))


def pair_gap(a, b, cap=1.0):
    """Footprint gap, computed exactly only when below `cap` (else a lower bound >= cap)."""
    lower = (
        float(np.linalg.norm(np.subtract(a.position, b.position)))
        - bounding_radius(a)
        - bounding_radius(b)
    )
    return lower if lower >= cap else polygon_gap(outline(a), outline(b))


def check_scene(scene: spec.SceneSpec, entry: plan.PlannedScene) -> int:
    """Every FORMAT 4 rule and range; returns the number of contact pairs found."""
    n = entry.n_objects
    assert scene.n_objects == n and scene.tau == entry.tau and scene.split == entry.split
    assert scene.seed == entry.retry_seed(scene.retries, GLOBAL_SEED)
    assert 0 <= scene.retries <= plan.MAX_RETRIES and 0 <= scene.restarts <= 100
    half = 3.0 if n <= 6 else 3.5 if n <= 10 else 4.0
    min_gap, margin = (0.175, 0.28) if n > 10 else (0.25, 0.4)
    for i, obj in enumerate(scene.objects):
        assert obj.id == f"obj_{i}"
        assert obj.shape in ("cube", "sphere", "cylinder")
        assert (obj.size, obj.size_value) in (("large", 0.7), ("small", 0.35))
        assert obj.material in ("rubber", "metal")
        assert tuple(obj.rgb) == spec.COLORS[obj.color]
        assert 0.0 <= obj.rotation < 360.0
    contacts = 0
    for i, obj in enumerate(scene.objects):
        exceptions = []
        for k in range(i):
            other = scene.objects[k]
            d = np.subtract(obj.position, other.position)
            g = pair_gap(obj, other)
            assert g > -1e-3  # never overlapping
            if g < min_gap - 1e-4 or abs(d @ LEFT0) < margin or abs(d @ FRONT0) < margin:
                exceptions.append(g)
        # Only a contact pair may break rules (a)/(b), and it touches within 0.001.
        assert len(exceptions) <= 1, (scene.scene_id, obj.id)
        if exceptions:
            assert abs(exceptions[0]) <= 1e-3
            contacts += 1
        else:  # not contact-placed: drawn uniformly in [-R, R]^2
            assert max(abs(obj.position[0]), abs(obj.position[1])) <= half
    for view in camera.rig(*presets.CANONICAL_RESOLUTION):
        for obj in scene.objects:
            uv = view.project(obj.world_vertices())
            assert np.all((uv[:, 0] >= 0) & (uv[:, 0] <= 480) & (uv[:, 1] >= 0) & (uv[:, 1] <= 320))
    assert visibility.gate(scene.objects).passed
    check_lights(scene.lights)
    return contacts


def euler_xyz(angles_deg):
    rx, ry, rz = np.radians(angles_deg)
    x = np.array([[1, 0, 0], [0, math.cos(rx), -math.sin(rx)], [0, math.sin(rx), math.cos(rx)]])
    y = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
    z = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0], [0, 0, 1]])
    return z @ y @ x


def check_lights(lights):
    assert [li.name for li in lights] == ["key", "fill", "back"]
    for light in lights:
        x, y, z, energy, size = NOMINAL_LIGHTS[light.name]
        assert np.all(np.abs(np.subtract(light.location, (x, y, z))) <= 1.0)
        assert (light.energy, light.size) == (energy, size)
        m = euler_xyz(light.rotation)
        aim = -np.asarray(light.location) / np.linalg.norm(light.location)
        np.testing.assert_allclose(-m[:, 2], aim, atol=1e-12)  # -Z at the origin
        assert m[2, 1] > 0 and abs(m[2, 0]) < 1e-12  # +Y up, X horizontal


# ------------------------------------------------------------------ tests


def test_aim_rotation_hand_cases():
    # From (0, -5, 5) the origin lies along (0, 1, -1): a 45 degree turn about X.
    assert sampling.aim_rotation((0.0, -5.0, 5.0)) == pytest.approx([45.0, 0.0, 0.0])
    # From (5, 0, 5): the same tilt, then 90 degrees about Z.
    assert sampling.aim_rotation((5.0, 0.0, 5.0)) == pytest.approx([45.0, 0.0, 90.0])


SLICE = [(split, i) for split in presets.SPLITS for i in range(2)]


@pytest.mark.parametrize(("split", "index"), SLICE)
def test_sampled_scenes_follow_every_rule(split, index):
    entry = plan.build_plan({split: 8}, GLOBAL_SEED)[index]
    check_scene(sampling.sample_scene(entry, GLOBAL_SEED), entry)


def test_contact_pairs_touch():
    # test_comp_00003 of the tiny plan holds a contact pair (found by the rule check above).
    entry = planned("test_comp_00003")
    assert check_scene(sampling.sample_scene(entry, GLOBAL_SEED), entry) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("split", presets.SPLITS)
def test_sampled_scenes_follow_every_rule_sweep(split):
    contacts = 0
    for entry in plan.build_plan({split: 40}, GLOBAL_SEED):
        contacts += check_scene(sampling.sample_scene(entry, GLOBAL_SEED), entry)
    assert contacts > 0


def test_retries_before_the_accepted_one_fail():
    entry = planned("train_00000")
    scene = sampling.sample_scene(entry, GLOBAL_SEED)
    for k in range(scene.retries):
        with pytest.raises(sampling.SamplingFailed):
            sampling.sample_layout(entry.n_objects, entry.split, entry.retry_seed(k, GLOBAL_SEED))


@pytest.mark.parametrize("scene_id", GOLDEN_IDS)
def test_golden_scene_specs(scene_id):
    scene = sampling.sample_scene(planned(scene_id), GLOBAL_SEED)
    assert golden_text(scene) == (GOLDEN / f"{scene_id}.json").read_text()


def test_a_scene_comes_back_from_its_record_unchanged():
    """SceneSpec.from_record, the one reader of a scene record, loses nothing the record
    holds (the placement restarts are diagnostics, not part of the record)."""
    scene = sampling.sample_scene(planned("test_hard_00005"), GLOBAL_SEED)
    views = camera.rig(48, 32)
    masks = [np.zeros((32, 48), dtype=np.uint16)] * 4
    render = {"engine": "CYCLES", "samples": 1, "device": "CPU", "device_name": "CPU",
              "blender_version": "5.2.3", "seconds": 0.0}
    record = json.loads(json.dumps(records.scene_record(scene, views, masks, render)))
    back = spec.SceneSpec.from_record(record)
    assert back == dataclasses.replace(scene, restarts=0)


DETERMINISM_PROBE = """
import json
from scenegen_addon.core import plan, presets, sampling
entry = [e for e in plan.build_plan(presets.size_counts("tiny"), 42) if e.scene_id == "{0}"][0]
print(json.dumps(sampling.sample_scene(entry, 42).to_dict()))
"""


def test_same_entry_same_bytes_in_separate_processes():
    probe = DETERMINISM_PROBE.format("test_comp_00003")
    outs = [
        subprocess.run(
            [sys.executable, "-c", probe], cwd=ADDON, capture_output=True, check=True
        ).stdout
        for _ in range(2)
    ]
    assert outs[0] == outs[1]
    here = json.dumps(sampling.sample_scene(planned("test_comp_00003"), GLOBAL_SEED).to_dict())
    assert outs[0].decode().strip() == here


def test_exhausted_retries_raise_with_the_last_reason(monkeypatch):
    calls = []

    def failing_gate(objects):
        calls.append(1)
        return visibility.GateResult(
            False,
            np.zeros((4, len(objects))),
            np.ones((4, len(objects)), bool),
            "obj_0 view_0 fraction 0.10",
        )

    monkeypatch.setattr(sampling.visibility, "gate", failing_gate)
    entry = next(e for e in plan.build_plan({"train": 7}, GLOBAL_SEED) if e.n_objects == 4)
    with pytest.raises(sampling.SamplingFailed) as failure:
        sampling.sample_scene(entry, GLOBAL_SEED)
    assert len(calls) == plan.MAX_RETRIES + 1
    assert (
        failure.value.reason
        == "100 retries exhausted; last: visibility gate: obj_0 view_0 fraction 0.10"
    )


def test_placement_gives_up_after_100_restarts(monkeypatch):
    impossible = sampling.PlacementRules(3.0, 0.25, 100.0)  # no two centres 100 apart fit
    monkeypatch.setattr(
        sampling.PlacementRules, "for_count", classmethod(lambda cls, n: impossible)
    )
    with pytest.raises(sampling.SamplingFailed, match="^placement: 100 restarts$"):
        sampling.sample_layout(4, "train", 123)


def test_placement_rules_by_count():
    assert sampling.PlacementRules.for_count(6) == sampling.PlacementRules(3.0, 0.25, 0.4)
    assert sampling.PlacementRules.for_count(7) == sampling.PlacementRules(3.5, 0.25, 0.4)
    assert sampling.PlacementRules.for_count(10) == sampling.PlacementRules(3.5, 0.25, 0.4)
    assert sampling.PlacementRules.for_count(11) == sampling.PlacementRules(4.0, 0.175, 0.28)


def test_bad_input():
    with pytest.raises(ValueError, match="n_objects 3.*4..10"):
        sampling.sample_layout(3, "train", 1)
    with pytest.raises(ValueError, match="n_objects 16.*10..15"):
        sampling.sample_layout(16, "test_comp", 1)
    with pytest.raises(ValueError, match="split 'nope'.*train"):
        sampling.sample_layout(5, "nope", 1)


if __name__ == "__main__" and sys.argv[1:] == ["--write-golden"]:
    GOLDEN.mkdir(exist_ok=True)
    for sid in GOLDEN_IDS:
        text = golden_text(sampling.sample_scene(planned(sid), GLOBAL_SEED))
        (GOLDEN / f"{sid}.json").write_text(text)
        print("wrote", sid)
