"""The three meshes (closed, convex, outward, 1x1x1) and footprint gaps worked by hand."""

import math

import numpy as np
import pytest
from scenegen_addon.core import shapes


def face_normal(vertices, face):
    """Newell normal of a polygon (length = twice its area)."""
    p = vertices[list(face)]
    q = np.roll(p, -1, axis=0)
    return np.array(
        [
            np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2])),
            np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0])),
            np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1])),
        ]
    )


# Sphere: 64 segments x 32 rings = 31 inner rings of 64 plus 2 poles. Cylinder: 64 sides x
# 6 rings (3 profile points per rounded edge). Cube: 16 columns (4 corners x 4) x 8 rows
# (4 per rounded edge), where the top and bottom rows collapse to the 4 flat-face corners.
VERTEX_COUNTS = {"sphere": 64 * 31 + 2, "cylinder": 64 * 6, "cube": 16 * 8 - 2 * (16 - 4)}


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_mesh_is_closed_convex_outward_unit(shape):
    mesh = shapes.mesh(shape)
    v = mesh.vertices
    assert len(v) == VERTEX_COUNTS[shape]
    np.testing.assert_allclose(v.min(axis=0), [-0.5, -0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(v.max(axis=0), [0.5, 0.5, 1.0], atol=1e-12)
    # Closed and consistently oriented: every directed edge appears once, its reverse once.
    directed = [(f[k], f[(k + 1) % len(f)]) for f in mesh.faces for k in range(len(f))]
    assert len(set(directed)) == len(directed)
    assert set(directed) == {(b, a) for a, b in directed}
    edges = len(directed) // 2
    assert len(v) - edges + len(mesh.faces) == 2  # Euler characteristic of a sphere
    centre = np.array([0.0, 0.0, 0.5])
    volume = 0.0
    for face in mesh.faces:
        n = face_normal(v, face)
        p = v[list(face)]
        offset = n @ p[0]
        assert np.allclose(p @ n, offset, atol=1e-9 * np.linalg.norm(n) + 1e-12)  # planar
        assert n @ (p.mean(axis=0) - centre) > 0  # outward
        assert np.all(v @ n <= offset + 1e-9)  # convex: every vertex behind every face
        volume += offset / 6
    assert volume > 0


def test_mesh_volumes_close_to_the_ideal_solids():
    vol = {}
    for shape in shapes.SHAPES:
        mesh = shapes.mesh(shape)
        vol[shape] = sum(
            face_normal(mesh.vertices, f) @ mesh.vertices[f[0]] / 6 for f in mesh.faces
        )
    assert vol["sphere"] == pytest.approx(math.pi / 6, rel=0.01)
    # Unit box with rounded edges: within the box, above the box minus its edge strips.
    assert 0.97 < vol["cube"] < 1.0
    assert 0.98 * math.pi / 4 < vol["cylinder"] < math.pi / 4


def test_world_vertices_scale_turn_and_move():
    v = shapes.world_vertices("cube", 0.7, [1.0, 2.0], 90.0)
    np.testing.assert_allclose(v.min(axis=0), [0.65, 1.65, 0.0], atol=1e-12)
    np.testing.assert_allclose(v.max(axis=0), [1.35, 2.35, 0.7], atol=1e-12)


def test_gap_circle_circle():
    a = shapes.footprint("sphere", 0.7, [0.0, 0.0], 10.0)
    b = shapes.footprint("cylinder", 0.35, [1.0, 0.0], 80.0)
    assert shapes.gap(a, b) == pytest.approx(1.0 - 0.35 - 0.175, abs=1e-12)


def test_gap_circle_rounded_square():
    cube = shapes.footprint("cube", 0.7, [0.0, 0.0], 0.0)
    # Face on: the square reaches x = 0.35 (core half 0.315 plus corner radius 0.035).
    side = shapes.footprint("sphere", 0.35, [1.0, 0.0], 0.0)
    assert shapes.gap(cube, side) == pytest.approx(1.0 - 0.35 - 0.175, abs=1e-12)
    # Diagonal: nearest point is the core corner (0.315, 0.315).
    diag = shapes.footprint("sphere", 0.35, [1.0, 1.0], 0.0)
    assert shapes.gap(cube, diag) == pytest.approx(0.685 * math.sqrt(2) - 0.035 - 0.175, abs=1e-12)


def test_gap_rounded_square_pair_including_a_rotated_one():
    a = shapes.footprint("cube", 0.7, [0.0, 0.0], 0.0)
    b = shapes.footprint("cube", 0.7, [1.0, 0.0], 90.0)
    assert shapes.gap(a, b) == pytest.approx(0.3, abs=1e-12)
    # Turned by 45 degrees, b's core corner points at a: x = 1.5 - 0.315 * sqrt(2).
    c = shapes.footprint("cube", 0.7, [1.5, 0.0], 45.0)
    expected = 1.5 - 0.315 * math.sqrt(2) - 0.315 - 2 * 0.035
    assert shapes.gap(a, c) == pytest.approx(expected, abs=1e-12)
    # Overlapping footprints give a negative gap.
    d = shapes.footprint("cube", 0.7, [0.5, 0.0], 0.0)
    assert shapes.gap(a, d) < 0


def test_separating_normal_separates():
    a = shapes.footprint("cube", 0.7, [0.0, 0.0], 20.0)
    b = shapes.footprint("sphere", 0.35, [0.9, 0.6], 0.0)
    point, n = shapes.separating_normal(a, b)
    assert np.linalg.norm(n) == pytest.approx(1.0)
    corners = a.core - point
    assert np.max(corners @ n) + a.radius <= 1e-9
    assert (np.asarray(b.center) - point) @ n - b.radius >= -1e-9


def test_unknown_shape_names_the_allowed_values():
    with pytest.raises(ValueError, match="shape.*cube, sphere, cylinder"):
        shapes.mesh("cone")
    with pytest.raises(ValueError, match="shape.*cube, sphere, cylinder"):
        shapes.footprint("cone", 0.7, [0, 0], 0)
