"""The depth pass's pure parts (core.depth, shapes.surface_distance), worked by hand: the
encoding, the ideal surfaces the check measures against, and the ground plane a pixel of no
object must see. Real renders are checked in test_render.py and test_launcher.py."""

import math

import numpy as np
import pytest
from scenegen_addon.core import camera, depth, shapes
from scenegen_addon.core.spec import ObjectSpec


def test_encoding_in_millimetres_with_no_surface_and_far():
    z = np.array([12.3456, 0.0002, 65.5344, 65.5346, 70.0, 1e10, np.inf, np.nan])
    assert depth.encode(z).tolist() == [12346, 1, 65534, 65535, 65535, 0, 0, 0]
    assert depth.encode(z).dtype == np.uint16
    back = depth.metres(np.array([[12346, 0], [65535, 1]], dtype=np.uint16))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, np.array([[12.346, np.nan], [65.535, 0.001]],
                                                 dtype=np.float32))


def point(x, y, z):
    return np.array([[x, y, z]], dtype=float)


def test_surface_distance_worked_by_hand():
    d = shapes.surface_distance
    # a ball of diameter 0.7 resting at (1, 2): centre at height 0.35
    assert d("sphere", 0.7, (1, 2), 0, point(1, 2, 0.8))[0] == pytest.approx(0.1)
    assert d("sphere", 0.7, (1, 2), 33, point(1, 2, 0.35))[0] == pytest.approx(-0.35)
    # a unit cube: 0.1 beyond a face; turned by 45 degrees, the face normal turns with it
    assert d("cube", 1.0, (0, 0), 0, point(0.6, 0, 0.5))[0] == pytest.approx(0.1)
    c = math.sqrt(0.5)
    assert d("cube", 1.0, (0, 0), 45, point(0.6 * c, 0.6 * c, 0.5))[0] == pytest.approx(0.1)
    corner = 0.8 - 0.45 * math.sqrt(2) - 0.05  # towards a rounded corner
    assert d("cube", 1.0, (0, 0), 45, point(0.8, 0, 0.5))[0] == pytest.approx(corner)
    # beyond a rounded vertical edge: from the inner edge at (0.45, 0.45), less the bevel
    a = 0.1
    expected = math.sqrt(2) * (0.05 + a) - 0.05
    assert d("cube", 1.0, (0, 0), 0, point(0.5 + a, 0.5 + a, 0.5))[0] == pytest.approx(expected)
    # a cylinder of size 2 at (-1, 0): side at radius 1, top at height 2
    assert d("cylinder", 2.0, (-1, 0), 10, point(0.4, 0, 1.0))[0] == pytest.approx(0.4)
    assert d("cylinder", 2.0, (-1, 0), 10, point(-1, 0, 2.3))[0] == pytest.approx(0.3)
    assert d("cylinder", 2.0, (-1, 0), 10, point(-1, 0, 1.0))[0] == pytest.approx(-1.0)


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_the_mesh_lies_on_its_ideal_surface_within_the_inset(shape):
    """Vertices on the ideal surface; every face's centre inside it by at most MESH_INSET,
    which the check's tolerance allows for (placed, scaled and turned like an object)."""
    mesh = shapes.mesh(shape)
    size, position, yaw = 0.7, (0.3, -1.2), 37.0
    vertices = shapes.world_vertices(shape, size, position, yaw)
    on = shapes.surface_distance(shape, size, position, yaw, vertices)
    assert np.abs(on).max() < 1e-9
    centres = np.array([vertices[list(face)].mean(axis=0) for face in mesh.faces])
    inset = shapes.surface_distance(shape, size, position, yaw, centres)
    assert inset.max() < 1e-9
    assert inset.min() >= -shapes.MESH_INSET * size
    assert inset.min() < -0.1 * shapes.MESH_INSET * size  # the bound is not loose by 10x


def centre_column_ground(view: camera.View, row: int) -> float:
    """Camera-z of the ground under pixel (W // 2, row) of an odd-width frame, by hand: the
    ray (0, y, 1) in camera coordinates falls (sin 30 + y cos 30) per unit of z, from a
    camera 12 sin 30 = 6 m high."""
    y = (row + 0.5 - view.height / 2) / view.focal_px
    fall = 0.5 + y * math.sqrt(3) / 2
    return 6.0 / fall if fall > 0 else math.inf


def test_the_ground_a_pixel_of_no_object_sees():
    # the principal point of an odd frame is a pixel centre: it sees the origin, 12 m away
    view = camera.View(0, 33, 21)
    expected, certain = depth.ground_expected(view)
    assert expected[10, 16] == 12000 and certain[10, 16]
    # a portrait frame looks over the horizon: sky on top, ground beyond 65.535 m below it
    view = camera.View(0, 95, 127)
    expected, certain = depth.ground_expected(view)
    column = expected[:, 47]
    by_hand = [centre_column_ground(view, row) for row in range(view.height)]
    # view 0 looks along the diagonal towards the corner (-50, -50): the ground reaches
    # (50 + 12 cos 30 cos 45) sqrt 2 horizontally from the camera
    reach = (50 + 12 * math.sqrt(3) / 2 * math.sqrt(0.5)) * math.sqrt(2)
    for row, z in enumerate(by_hand):
        horizontal = z * (math.sqrt(3) / 2 - (row + 0.5 - view.height / 2) / view.focal_px * 0.5)
        if not certain[row, 47]:
            continue
        want = depth.encode(np.array(z))[()] if horizontal <= reach else 0
        assert column[row] == want, row
    assert column[0] == depth.NO_SURFACE
    assert depth.FAR_MM in column and column[-1] == depth.encode(np.array(by_hand[-1]))[()]


def test_view_faults_name_the_object_and_the_ground():
    """A synthetic view: one ball in front of the camera, painted by hand (each pixel's ray
    against the ball), the ground from ground_expected; then one object pixel and one ground
    pixel moved."""
    view = camera.View(0, 161, 121)
    ball = ObjectSpec("obj_0", "sphere", "large", 0.7, "red", [173, 35, 35], "rubber",
                      [1.5, -0.5], 0.0)
    expected, _ = depth.ground_expected(view)
    mm = expected.astype(np.uint16)
    mask = np.zeros(mm.shape, dtype=np.uint16)
    centre = np.array([1.5, -0.5, 0.35])
    f = view.focal_px
    for v in range(view.height):
        for u in range(view.width):
            ray = view.R.T @ np.array([(u + 0.5 - 80.5) / f, (v + 0.5 - 60.5) / f, 1.0])
            # |position + s ray - centre| = 0.35: nearest root s = camera z
            oc = view.position - centre
            b, c = ray @ oc, oc @ oc - 0.35 ** 2
            a = ray @ ray
            disc = b * b - a * c
            if disc >= 0:
                mask[v, u] = 1
                mm[v, u] = round((-b - math.sqrt(disc)) / a * 1000)
    assert 20 < np.count_nonzero(mask) < 200
    assert depth.view_faults(mm, mask, [ball], view) == []
    moved = mm.copy()
    v, u = np.argwhere(mask)[len(np.argwhere(mask)) // 2]
    moved[v, u] += 30  # 3 cm behind the ball's front: inside it
    faults = depth.view_faults(moved, mask, [ball], view)
    assert len(faults) == 1 and faults[0].startswith("obj_0: 1 of ")
    moved = mm.copy()
    moved[0, 0] += 100
    faults = depth.view_faults(moved, mask, [ball], view)
    assert faults == [f"1 pixels of no object disagree with the ground plane (first at u=0, "
                      f"v=0: {int(moved[0, 0])} mm, expected {int(mm[0, 0])} mm)"]
    # the same map read as another view's
    assert depth.view_faults(mm, mask, [ball], camera.View(1, 161, 121))
