"""Reconstruction from constraints (T3): NRMS against hand-worked figures and an independent
search, the solver recovering a hand-made 5-object layout from its gold relations (computed
by the generator's own constraint code, axial by FORMAT 6.4.8's rule written out here)."""

import numpy as np
import pytest
from scenegen_addon.core import camera, constraints
from scenegen_addon.core import spec as spec_mod
from scenegen_addon.dataset.evaluation import reconstruction as t3
from scenegen_addon.dataset.evaluation import relations

DIAMOND = np.array([(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)])
# five objects on the ground, sizes alternating: (x, y, size label)
LAYOUT = [(-2.0, -1.5, "large"), (1.8, -2.2, "small"), (0.4, 0.3, "large"),
          (-1.6, 2.1, "small"), (2.3, 1.7, "large")]


def similarity(points, scale, degrees, shift):
    a = np.radians(degrees)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return scale * np.asarray(points) @ rot.T + np.asarray(shift)


def test_nrms_of_a_similar_layout_is_zero():
    moved = similarity(DIAMOND + [(0.3, 0.1), (0, 0), (0, 0), (0, 0)], 2.5, 73.0, (4.0, -1.0))
    true = DIAMOND + [(0.3, 0.1), (0, 0), (0, 0), (0, 0)]
    assert t3.nrms(true, moved) == pytest.approx(0.0, abs=1e-12)


def test_nrms_hand_worked_stretch():
    """The diamond stretched by a = 3/4 along x and shrunk along y: the perturbation is
    orthogonal to translation and rotation, so the best similarity is a pure scale
    s = 1 / (1 + a^2); RMS = a / sqrt(1 + a^2) = 0.6, the diameter is 2: NRMS = 0.3, also
    after any similarity of the estimate."""
    a = 0.75
    stretched = DIAMOND * [(1 + a, 0), (1 + a, 0), (0, 1 - a), (0, 1 - a)] + \
        DIAMOND * [(0, 1), (0, 1), (1, 0), (1, 0)]
    assert stretched.tolist() == [[1.75, 0], [-1.75, 0], [0, 0.25], [0, -0.25]]
    assert t3.nrms(DIAMOND, stretched) == pytest.approx(0.3, abs=1e-12)
    assert t3.nrms(DIAMOND, similarity(stretched, 0.2, -140.0, (9, 9))) == pytest.approx(0.3)


def test_alignment_is_the_best_similarity_and_keeps_handedness():
    """Against a brute-force search over the rotation (scale and shift in closed form) on
    random layouts; a mirror image is not a similarity, so its NRMS stays above zero."""
    g = np.random.default_rng(3)
    for _ in range(5):
        X, Y = g.normal(size=(6, 2)), g.normal(size=(6, 2))
        best = np.inf
        for deg in np.arange(0, 360, 0.05):
            Yr = similarity(Y - Y.mean(0), 1.0, deg, (0, 0))
            Xc = X - X.mean(0)
            s = (Xc * Yr).sum() / (Yr * Yr).sum()
            best = min(best, ((Xc - s * Yr) ** 2).sum(1).mean())
        aligned = t3.align(X, Y)
        assert ((X - aligned) ** 2).sum(1).mean() == pytest.approx(best, rel=1e-5)
    L = np.array([(0, 0), (3, 0), (3, 1), (0, 2.0)])
    assert t3.nrms(L, L * [-1, 1]) > 0.1
    assert t3.nrms(L, similarity(L * [-1, 1], 2.0, 30.0, (1, 1)), mirror=True) == \
        pytest.approx(0.0, abs=1e-12)


def gold_facts():
    """World qrr, trr and closer from core.constraints; axial per view by FORMAT 6.4.8."""
    objects = [spec_mod.ObjectSpec(f"obj_{i}", "sphere", size, spec_mod.OBJECT_SIZES[size],
                                   "red", [173, 35, 35], "rubber", [x, y], 0.0)
               for i, (x, y, size) in enumerate(LAYOUT)]
    scene = spec_mod.SceneSpec("hand", "test_iid", 0, 0, 0, 0.1, objects, [], 0)
    world = constraints.world_constraints(scene)
    facts = [relations.from_fields(t, "world", f) for t in ("qrr", "trr", "closer")
             for f in world[t]]
    directions = {}
    for view in camera.rig(480, 320):
        d = {k: np.array(view.directions[k][:2]) for k in ("left", "front")}
        directions[view.view_id] = d
        for i in range(5):
            for j in range(i + 1, 5):
                delta = np.subtract(LAYOUT[i][:2], LAYOUT[j][:2])
                for name, yes, no in (("left", "left_of", "right_of"),
                                      ("front", "in_front_of", "behind")):
                    along = float(delta @ d[name])
                    if abs(along) > 0.2:
                        facts.append(relations.pair_relation(
                            "axial", view.view_id, f"obj_{i}", f"obj_{j}",
                            yes if along > 0 else no))
    heights = np.array([o.size_value / 2 for o in objects])
    problem = t3.Problem(tuple(o.id for o in objects), heights, directions, 0.1)
    return problem, facts


def test_solver_recovers_a_hand_made_layout_from_its_gold_relations():
    problem, facts = gold_facts()
    counts = {t: sum(f.type == t for f in facts) for t in t3.USED}
    assert (counts["qrr"], counts["trr"]) == (15, 60)  # 3 C(5, 4) and 5 x 4 x 3
    assert 20 <= counts["closer"] <= 30 and 70 <= counts["axial"] <= 80  # less the near ones
    true = np.array([p[:2] for p in LAYOUT])
    assert t3.satisfied(problem, facts, true).all()
    found = t3.solve(problem, facts)
    assert t3.satisfied(problem, facts, found).all()
    assert t3.nrms(true, found) < 0.05
    assert np.array_equal(found, t3.solve(problem, facts))  # deterministic


def test_satisfied_counts_a_wrong_relation_and_clock_hours_follow_the_spec():
    problem, facts = gold_facts()
    true = np.array([p[:2] for p in LAYOUT])
    wrong = [f._replace(value={"<": ">", ">": "<", "~=": "<"}[f.value]) if f.type == "qrr"
             else f for f in facts]
    ok = t3.satisfied(problem, wrong, true)
    assert (~ok).sum() == 15 and ok.sum() == len(facts) - 15
    # standing at the origin facing +y (12 o'clock): +x is 3, -y is 6, -x is 9
    for target, hour in (((0, 5), 12), ((5, 0), 3), ((0, -5), 6), ((-5, 0), 9), ((5, 5), 2)):
        assert t3.clock_hour(target, (0, 0), (0, 1)) == hour
