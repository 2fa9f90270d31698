"""Ground-truth constraints (FORMAT 6.3-6.4) against hand-worked cases."""

import itertools
import math

import numpy as np
import pytest
from scenegen_addon.core import camera, constraints, visibility
from scenegen_addon.core.constraints import boundary_flag, compare, difficulty

from tests.gt_scenes import grid_spec, make_spec, paint_mask

SQ = math.sqrt(0.5)


def by_triple(records):
    return {(r["target"], r["ref1"], r["ref2"]): r for r in records}


def empty_sils(n):
    return [visibility.Silhouette(0, 0, np.zeros((0, 0), dtype=bool), True) for _ in range(n)]


def rect_sil(x0, y0, w, h):
    return visibility.Silhouette(x0, y0, np.ones((h, w), dtype=bool), True)


def crafted_objects(uvs, counts=None):
    counts = counts or [10] * len(uvs)
    return [
        {"id": f"obj_{i}", "pixel_coords": [u, v, 10.0], "silhouette_pixels": c}
        for i, ((u, v), c) in enumerate(zip(uvs, counts, strict=True))
    ]


def spheres(points, size="small"):
    return make_spec([(x, y, "sphere", size, 0.0) for x, y in points])


# ---------------------------------------------------------------- comparator and levels


@pytest.mark.parametrize(
    "a, b, expected", [(1, 1.05, "~="), (1, 1.11, "~="), (1, 1.15, "<"), (2, 1, ">"), (0, 0, "~=")]
)
def test_comparator_at_tau_0_1(a, b, expected):
    assert compare(a, b, 0.1) == expected


def test_comparator_tighter_tau():
    assert compare(1, 1.05, 0.05) == "~="
    assert compare(1, 1.06, 0.05) == "<"


@pytest.mark.parametrize(
    "ratio, level", [(3.0, 1), (1.8, 2), (1.4, 3), (1.2, 4), (1.1, 5), (1.02, 6)]
)
def test_difficulty_bands(ratio, level):
    assert difficulty(ratio, 1.0) == level
    assert difficulty(1.0, ratio) == level
    assert difficulty(2 * ratio, 2.0) == level


def test_difficulty_band_edges_and_degenerate():
    assert difficulty(2.0, 1.0) == 2  # r > 2.0 is needed for level 1
    assert difficulty(1.0, 1.0) == 6
    assert difficulty(0.0, 0.0) == 6  # r = 1 by definition
    assert difficulty(0.0, 3.0) == 1  # r = inf


def test_boundary_flag():
    # T = 0.1 * max; flag when 0.8 T < |a - b| < 1.2 T
    assert boundary_flag(1.0, 1.1, 0.1)  # 0.1 in (0.088, 0.132)
    assert boundary_flag(1.13, 1.0, 0.1)  # 0.13 in (0.0904, 0.1356)
    assert not boundary_flag(1.0, 1.05, 0.1)  # 0.05 <= 0.084
    assert not boundary_flag(1.0, 1.2, 0.1)  # 0.2 >= 0.144
    assert not boundary_flag(1.0, 1.0, 0.1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: compare(-1, 1, 0.1),
        lambda: compare(1, 1, 1.5),
        lambda: boundary_flag(1, float("nan"), 0.1),
        lambda: difficulty(-2, 1),
    ],
)
def test_bad_scalars_raise(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------- world


def test_world_clock_hand_worked():
    spec = spheres([(0, 0), (0, 2), (2, 0), (-2, 0), (0, -2)])
    trr = by_triple(constraints.world_constraints(spec)["trr"])
    # ref1 at the origin facing ref2 due north
    assert (trr["obj_2", "obj_0", "obj_1"]["hour"], trr["obj_2", "obj_0", "obj_1"]["quadrant"]) == (
        3,
        2,
    )
    assert (trr["obj_3", "obj_0", "obj_1"]["hour"], trr["obj_3", "obj_0", "obj_1"]["quadrant"]) == (
        9,
        4,
    )
    assert (trr["obj_4", "obj_0", "obj_1"]["hour"], trr["obj_4", "obj_0", "obj_1"]["quadrant"]) == (
        6,
        3,
    )
    assert trr["obj_2", "obj_0", "obj_1"]["angle_deg"] == pytest.approx(90.0)
    assert trr["obj_3", "obj_0", "obj_1"]["angle_deg"] == pytest.approx(270.0)
    # facing east, north is on the left
    assert trr["obj_1", "obj_0", "obj_2"]["hour"] == 9
    # from obj_3 (west) facing east: obj_2 straight ahead
    assert (trr["obj_2", "obj_3", "obj_0"]["hour"], trr["obj_2", "obj_3", "obj_0"]["quadrant"]) == (
        12,
        1,
    )


@pytest.mark.parametrize(
    "clockwise_deg, hour",
    [(14.9, 12), (15.1, 1), (44.9, 1), (45.1, 2), (194.9, 6), (195.1, 7), (344.9, 11), (345.1, 12)],
)
def test_world_clock_hour_edges(clockwise_deg, hour):
    bearing = math.radians(90.0 - clockwise_deg)  # ref2 due north; target clockwise from it
    spec = spheres([(0, 0), (0, 2), (2 * math.cos(bearing), 2 * math.sin(bearing))])
    rec = by_triple(constraints.world_constraints(spec)["trr"])["obj_2", "obj_0", "obj_1"]
    assert rec["hour"] == hour
    assert rec["angle_deg"] == pytest.approx(clockwise_deg)


def test_clock_label_from_unrounded_angle():
    bearing = math.radians(90.0 - 344.9999999)  # rounds to 345.0, which would be hour 12
    spec = spheres([(0, 0), (0, 2), (2 * math.cos(bearing), 2 * math.sin(bearing))])
    rec = by_triple(constraints.world_constraints(spec)["trr"])["obj_2", "obj_0", "obj_1"]
    assert rec["angle_deg"] == 345.0
    assert (rec["hour"], rec["quadrant"]) == (11, 4)


def test_topology_hand_worked():
    half_diag = 0.315 * math.sqrt(2)  # core half-side 0.45 * 0.7, turned 45 degrees
    x4 = 0.35 + 0.035 + half_diag + 0.005  # corner 0.005 beyond obj_2's flat face at x = 0.35
    x6 = x4 + half_diag + 0.035 + 0.02 + 0.35  # 0.02 beyond obj_5's rounded corner
    spec = make_spec(
        [
            (0, 0, "sphere", "large", 0),  # obj_0
            (0.7, 0, "sphere", "large", 0),  # obj_1: gap 0 to obj_0
            (0, 2, "cube", "large", 0),  # obj_2: 1.3 from obj_0
            (0, 2.3, "sphere", "small", 0),  # obj_3: inside obj_2
            (x4, 2, "cube", "large", 45),  # obj_4: gap 0.005 to obj_2
            (x4, -1, "cube", "large", 45),  # obj_5
            (x6, -1, "sphere", "large", 0),  # obj_6: gap 0.02 to obj_5
        ]
    )
    topo = {
        (r["obj1"], r["obj2"]): r["relation"]
        for r in constraints.world_constraints(spec)["topology"]
    }
    assert len(topo) == 21
    assert topo["obj_0", "obj_1"] == "touching"
    assert topo["obj_0", "obj_2"] == "disjoint"
    assert topo["obj_2", "obj_3"] == "overlapping"
    assert topo["obj_2", "obj_4"] == "touching"
    assert topo["obj_5", "obj_6"] == "disjoint"


def test_size_hand_worked():
    spec = make_spec(
        [(0, 0, "cube", "large", 0), (2, 0, "sphere", "small", 0), (0, 2, "cylinder", "large", 0)]
    )
    assert constraints.world_constraints(spec)["size"] == [
        {"bigger": "obj_0", "smaller": "obj_1"},
        {"bigger": "obj_2", "smaller": "obj_1"},
    ]


def test_closer_hand_worked():
    spec = spheres([(0, 0), (1, 0), (3, 0)])
    assert constraints.world_constraints(spec)["closer"] == [
        {"anchor": "obj_0", "closer": "obj_1", "farther": "obj_2"},  # 1 < 3
        {"anchor": "obj_1", "closer": "obj_0", "farther": "obj_2"},  # 1 < 2
        {"anchor": "obj_2", "closer": "obj_1", "farther": "obj_0"},  # 3 > 2
    ]


def test_closer_skips_ties():
    spec = spheres([(0, 0), (1, 0), (0, 1.05), (0, -3)])
    anchor0 = [r for r in constraints.world_constraints(spec)["closer"] if r["anchor"] == "obj_0"]
    # d(0,1) = 1 and d(0,2) = 1.05 agree within tau: no record for that pair
    assert anchor0 == [
        {"anchor": "obj_0", "closer": "obj_1", "farther": "obj_3"},
        {"anchor": "obj_0", "closer": "obj_2", "farther": "obj_3"},
    ]


def reference_qrr(points, tau):
    """Independent FORMAT 6.4 qrr: itertools order, comparator written out."""
    n = len(points)
    pairs = list(itertools.combinations(range(n), 2))
    out = []
    for p, q in itertools.combinations(pairs, 2):
        if set(p) & set(q):
            continue
        m1, m2 = math.dist(points[p[0]], points[p[1]]), math.dist(points[q[0]], points[q[1]])
        if abs(m1 - m2) <= tau * max(m1, m2):
            comp = "~="
        else:
            comp = "<" if m1 < m2 else ">"
        out.append(([f"obj_{p[0]}", f"obj_{p[1]}"], [f"obj_{q[0]}", f"obj_{q[1]}"], comp, m1 / m2))
    return out


def test_qrr_twelve_objects_world_and_view():
    g = np.random.default_rng(7)
    spec = make_spec(
        [
            (x, y, "sphere", "large" if s < 0.5 else "small", 0)
            for x, y, s in zip(
                6 * g.random(12) - 3, 6 * g.random(12) - 3, g.random(12), strict=True
            )
        ]
    )
    centroids = [o.centroid for o in spec.objects]
    qrr = constraints.world_constraints(spec)["qrr"]
    expected = reference_qrr(centroids, 0.1)
    assert [(r["pair1"], r["pair2"]) for r in qrr] == [(e[0], e[1]) for e in expected]
    assert [r["comparator"] for r in qrr] == [e[2] for e in expected]
    assert [r["ratio"] for r in qrr] == pytest.approx([e[3] for e in expected], rel=1e-5)
    assert all(r["metric"] == "dist3D" for r in qrr)
    assert {r["comparator"] for r in qrr} == {"~=", "<", ">"}
    # integer order: the pair (obj_2, obj_10) comes before (obj_3, obj_4)
    order = [tuple(r["pair1"]) for r in qrr]
    assert order.index(("obj_2", "obj_10")) < order.index(("obj_3", "obj_4"))
    for r in qrr:
        m1 = math.dist(*(centroids[int(i[4:])] for i in r["pair1"]))
        m2 = math.dist(*(centroids[int(i[4:])] for i in r["pair2"]))
        assert r["difficulty"] == difficulty(m1, m2)
        assert r["boundary_flag"] == boundary_flag(m1, m2, 0.1)

    uvs = [(float(u), float(v)) for u, v in 400 * g.random((12, 2))]
    view = camera.View(0, 12, 8)
    vc = constraints.view_constraints(
        spec, view, np.zeros((8, 12), np.uint16), crafted_objects(uvs), empty_sils(12)
    )
    expected = reference_qrr(uvs, 0.1)
    assert [(r["pair1"], r["pair2"], r["comparator"]) for r in vc["qrr"]] == [
        e[:3] for e in expected
    ]
    assert all(r["metric"] == "dist2D" for r in vc["qrr"])


def test_ratio_rounded_to_six_significant_digits():
    spec = spheres([(0, 0), (1, 0), (0, 3), (math.pi, 3)])
    (rec,) = constraints.world_constraints(spec)["qrr"][:1]
    assert rec["pair1"] == ["obj_0", "obj_1"] and rec["pair2"] == ["obj_2", "obj_3"]
    assert rec["ratio"] == 0.31831  # 1 / pi = 0.3183098...
    assert rec["comparator"] == "<" and rec["difficulty"] == 1


@pytest.mark.parametrize("n", range(3, 16))
def test_counts(n):
    g = np.random.default_rng(n)
    spec = spheres([(float(x), float(y)) for x, y in 8 * g.random((n, 2)) - 4])
    world = constraints.world_constraints(spec)
    assert len(world["qrr"]) == 3 * math.comb(n, 4)
    assert len(world["trr"]) == n * (n - 1) * (n - 2)
    assert len(world["topology"]) == math.comb(n, 2)
    assert len({(r["target"], r["ref1"], r["ref2"]) for r in world["trr"]}) == len(world["trr"])
    uvs = [(float(u), float(v)) for u, v in 300 * g.random((n, 2))]
    vc = constraints.view_constraints(
        spec,
        camera.View(1, 12, 8),
        np.zeros((8, 12), np.uint16),
        crafted_objects(uvs),
        empty_sils(n),
    )
    assert len(vc["qrr"]) == 3 * math.comb(n, 4)
    assert len(vc["trr"]) == n * (n - 1) * (n - 2)
    assert vc["view_id"] == "view_1"


# ---------------------------------------------------------------- per view


def test_image_clock_hand_worked():
    spec = spheres([(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)])
    uvs = [(50, 50), (50, 20), (80, 50), (20, 50), (50, 80)]  # centre, up, right, left, down
    vc = constraints.view_constraints(
        spec,
        camera.View(0, 12, 8),
        np.zeros((8, 12), np.uint16),
        crafted_objects(uvs),
        empty_sils(5),
    )
    trr = by_triple(vc["trr"])
    assert (trr["obj_2", "obj_0", "obj_1"]["hour"], trr["obj_2", "obj_0", "obj_1"]["quadrant"]) == (
        3,
        2,
    )
    assert trr["obj_3", "obj_0", "obj_1"]["hour"] == 9
    assert trr["obj_4", "obj_0", "obj_1"]["hour"] == 6
    assert trr["obj_1", "obj_0", "obj_2"]["hour"] == 9  # facing right on screen, up is on the left


def test_axial_with_view_0_directions():
    view = camera.rig(480, 320)[0]
    assert view.directions["left"] == pytest.approx([SQ, -SQ, 0.0])
    assert view.directions["front"] == pytest.approx([SQ, SQ, 0.0])
    spec = make_spec([(1.5, -0.5, "sphere", "small", 0), (0, 0, "cube", "large", 30)])
    # d = (1.5, -0.5): d.left = 1.414 > 0.2, d.front = 0.707 > 0.2
    mask = np.zeros((320, 480), np.uint16)
    objects = constraints.view_objects(spec, view, mask)
    assert constraints.view_constraints(spec, view, mask, objects)["axial"] == [
        {"obj1": "obj_0", "obj2": "obj_1", "relation": "left_of"},
        {"obj1": "obj_0", "obj2": "obj_1", "relation": "in_front_of"},
    ]


def test_touching_pair_along_the_view_axis():
    view = camera.rig(480, 320)[0]
    spec = make_spec([(0, 0, "sphere", "large", 0), (-0.7 * SQ, -0.7 * SQ, "sphere", "large", 0)])
    assert constraints.world_constraints(spec)["topology"][0]["relation"] == "touching"
    mask = paint_mask(spec, view)
    objects = constraints.view_objects(spec, view, mask)
    axial = constraints.view_constraints(spec, view, mask, objects)["axial"]
    # d = (0.495, 0.495) lies along front: no left/right record
    assert axial == [{"obj1": "obj_0", "obj2": "obj_1", "relation": "in_front_of"}]


def synthetic_case():
    """A 12x8 image with four rectangular silhouettes, painted obj_0, obj_3, obj_1, obj_2.

    obj_0 cols 1-5 rows 1-4 (20 px); obj_1 cols 4-8 rows 2-6 (25); obj_2 cols 8-10 rows 4-6
    (9); obj_3 cols 5-6 rows 3-4 (4), entirely under obj_1.
    """
    spec = spheres([(0, 0), (1, 0), (2, 0), (3, 0)])
    sils = [rect_sil(1, 1, 5, 4), rect_sil(4, 2, 5, 5), rect_sil(8, 4, 3, 3), rect_sil(5, 3, 2, 2)]
    mask = np.zeros((8, 12), np.uint16)
    mask[1:5, 1:6] = 1
    mask[3:5, 5:7] = 4
    mask[2:7, 4:9] = 2
    mask[4:7, 8:11] = 3
    return spec, camera.View(0, 12, 8), mask, sils


def test_view_objects_on_synthetic_mask():
    spec, view, mask, sils = synthetic_case()
    objects = constraints.view_objects(spec, view, mask, sils)
    got = [
        (o["id"], o["bbox"], o["silhouette_pixels"], o["visible_pixels"], o["visible_fraction"])
        for o in objects
    ]
    assert got == [
        ("obj_0", [1, 1, 6, 5], 20, 14, 0.7),
        ("obj_1", [4, 2, 9, 7], 25, 22, 0.88),
        ("obj_2", [8, 4, 11, 7], 9, 9, 1.0),
        ("obj_3", None, 4, 0, 0.0),
    ]
    for o in objects:
        if o["bbox"]:
            u0, v0, u1, v1 = o["bbox"]
            index = int(o["id"][4:]) + 1
            assert (mask[v0:v1, u0:u1] == index).sum() == (mask == index).sum()


def test_occlusion_on_synthetic_mask():
    spec, view, mask, sils = synthetic_case()
    objects = constraints.view_objects(spec, view, mask, sils)
    vc = constraints.view_constraints(spec, view, mask, objects, sils)
    # obj_1 covers 6 px of obj_0 and all 4 of obj_3; obj_2 covers only 3 px of obj_1 (< 4);
    # nothing where the occluder is behind (e.g. obj_0 under obj_1)
    assert vc["occlusion"] == [
        {"occluder": "obj_1", "occluded": "obj_0", "pixels": 6, "fraction": 0.3},
        {"occluder": "obj_1", "occluded": "obj_3", "pixels": 4, "fraction": 1.0},
    ]
    # apparent size from silhouettes 20, 25, 9, 4 (all differ by more than 10 %)
    assert vc["size"] == [
        {"bigger": "obj_1", "smaller": "obj_0"},
        {"bigger": "obj_0", "smaller": "obj_2"},
        {"bigger": "obj_0", "smaller": "obj_3"},
        {"bigger": "obj_1", "smaller": "obj_2"},
        {"bigger": "obj_1", "smaller": "obj_3"},
        {"bigger": "obj_2", "smaller": "obj_3"},
    ]


def test_apparent_size_tie_gives_nothing():
    spec, view, mask, _ = synthetic_case()
    objects = crafted_objects([(1, 1), (2, 2), (3, 3), (4, 4)], counts=[100, 105, 50, 200])
    size = constraints.view_constraints(spec, view, mask, objects, empty_sils(4))["size"]
    assert {"bigger": "obj_1", "smaller": "obj_0"} not in size
    assert {"bigger": "obj_0", "smaller": "obj_1"} not in size
    assert len(size) == 5


def test_occlusion_with_real_silhouettes():
    view = camera.rig(240, 160)[0]
    # obj_0 nearer view 0's camera (azimuth 45) and in line with obj_1 behind it
    spec = make_spec([(0.6, 0.6, "sphere", "large", 0), (-0.2, -0.2, "cube", "large", 10)])
    sils = visibility.silhouettes(spec.objects, view)
    mask = paint_mask(spec, view, sils)
    objects = constraints.view_objects(spec, view, mask, sils)
    (rec,) = constraints.view_constraints(spec, view, mask, objects, sils)["occlusion"]
    whole = [np.zeros((160, 240), bool) for _ in sils]
    for w, s in zip(whole, sils, strict=True):
        w[s.y0 : s.y0 + s.mask.shape[0], s.x0 : s.x0 + s.mask.shape[1]] = s.mask
    overlap = int((whole[0] & whole[1]).sum())
    assert overlap >= 4
    assert (rec["occluder"], rec["occluded"], rec["pixels"]) == ("obj_0", "obj_1", overlap)
    assert objects[1]["visible_pixels"] == sils[1].count - overlap


def test_pixel_coords_by_hand():
    view = camera.rig(480, 320)[2]
    spec = make_spec([(0.5, -1.0, "cube", "large", 0)])
    (obj,) = constraints.view_objects(spec, view, np.zeros((320, 480), np.uint16))
    # azimuth 225: camera at 12 (cos30 cos225, cos30 sin225, sin30); look along -position
    az, el = math.radians(225), math.radians(30)
    pos = 12 * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    fwd = -pos / 12
    right = np.array([fwd[1], -fwd[0], 0.0]) / math.hypot(fwd[0], fwd[1])
    down = np.cross(fwd, right)
    p = np.array([0.5, -1.0, 0.35]) - pos
    f = 35 / 32 * 480
    depth = p @ fwd
    assert obj["pixel_coords"] == pytest.approx(
        [240 + f * (p @ right) / depth, 160 + f * (p @ down) / depth, depth]
    )
    assert obj["bbox"] is None and obj["visible_pixels"] == 0 and obj["in_frame"]


def test_grid_scene_views_are_consistent():
    spec = grid_spec(10)
    for view in camera.rig(96, 64):
        sils = visibility.silhouettes(spec.objects, view)
        mask = paint_mask(spec, view, sils)
        objects = constraints.view_objects(spec, view, mask, sils)
        assert sum(o["visible_pixels"] for o in objects) == int((mask > 0).sum())
        assert all(o["visible_pixels"] <= o["silhouette_pixels"] for o in objects)


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.zeros((8, 13), np.uint16), "shape"),
        (np.zeros((8, 12), np.float32), "integer"),
        (np.full((8, 12), 5, np.uint16), "values"),
    ],
)
def test_bad_mask_raises(mask, match):
    spec, view, _, sils = synthetic_case()
    with pytest.raises(ValueError, match=match):
        constraints.view_objects(spec, view, mask, sils)


def test_bad_tau_raises():
    spec = spheres([(0, 0), (1, 0), (0, 1)])
    spec.tau = 1.5
    with pytest.raises(ValueError, match="tau"):
        constraints.world_constraints(spec)
