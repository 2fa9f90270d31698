"""The 4-view rig of FORMAT 5, checked against hand-worked numbers."""

import math

import numpy as np
import pytest
from scenegen_addon.core import camera

S2 = math.sqrt(2) / 2


def test_positions_follow_azimuth_elevation_distance():
    # View 0 at azimuth 45, elevation 30, distance 12: (12 cos30 cos45, .., 12 sin30).
    horizontal = 12 * math.cos(math.radians(30))
    expected = {
        0: (horizontal * S2, horizontal * S2),
        1: (-horizontal * S2, horizontal * S2),
        2: (-horizontal * S2, -horizontal * S2),
        3: (horizontal * S2, -horizontal * S2),
    }
    for view in camera.rig(480, 320):
        np.testing.assert_allclose(view.position, [*expected[view.index], 6.0], atol=1e-12)
        assert view.view_id == f"view_{view.index}"


def test_intrinsics_35mm_on_32mm_sensor():
    view = camera.View(0, 480, 320)
    f = 35 / 32 * 480  # 525 px
    np.testing.assert_allclose(view.K, [[f, 0, 240], [0, f, 160], [0, 0, 1]])
    assert view.hfov_deg == pytest.approx(math.degrees(2 * math.atan(16 / 35)))
    assert camera.View(0, 1024, 768).K[0, 0] == pytest.approx(1120.0)


def test_look_at_projects_to_the_image_centre():
    for view in camera.rig(1024, 768):
        u, v, depth = view.project([[0.0, 0.0, 0.0]])[0]
        assert (u, v) == pytest.approx((512.0, 384.0), abs=1e-9)
        assert depth == pytest.approx(12.0)


def test_hand_computed_points():
    view = camera.View(0, 480, 320)
    # (1, -1, 0) is sqrt(2) along view 0's left axis (0.707, -0.707, 0), level with the look-at:
    # x_cam = -sqrt(2), y_cam = 0, depth 12 -> u = 240 - 525 sqrt(2) / 12.
    u, v, depth = view.project([[1.0, -1.0, 0.0]])[0]
    assert (u, v, depth) == pytest.approx((240 - 525 * math.sqrt(2) / 12, 160.0, 12.0))
    # (0, 0, 2): y_cam = -2 cos30, depth = 12 - 2 sin30 = 11 -> above the centre.
    u, v, depth = view.project([[0.0, 0.0, 2.0]])[0]
    assert (u, v, depth) == pytest.approx((240.0, 160 - 525 * math.sqrt(3) / 11, 11.0))


def test_extrinsics_opencv_and_blender_conventions():
    for view in camera.rig(480, 320):
        R, t = view.R, view.t
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_allclose(R @ view.position + t, 0.0, atol=1e-12)  # camera centre
        forward = -view.position / np.linalg.norm(view.position)
        np.testing.assert_allclose(R[2], forward, atol=1e-12)  # looks along +z
        assert R[1, 2] < 0  # image y (down) points against world +Z
        m = view.matrix_world
        np.testing.assert_allclose(m[:3, 3], view.position)
        np.testing.assert_allclose(m[:3, 2], -forward, atol=1e-12)  # Blender looks along -Z
        np.testing.assert_allclose(m[:3, 1], -R[1], atol=1e-12)  # Blender +Y is image up
        np.testing.assert_allclose(m[3], [0, 0, 0, 1])


def test_directions_of_view_0():
    d = camera.View(0, 480, 320).directions
    np.testing.assert_allclose(d["left"], [S2, -S2, 0.0], atol=1e-12)
    np.testing.assert_allclose(d["right"], [-S2, S2, 0.0], atol=1e-12)
    np.testing.assert_allclose(d["front"], [S2, S2, 0.0], atol=1e-12)
    np.testing.assert_allclose(d["behind"], [-S2, -S2, 0.0], atol=1e-12)


def test_left_is_left_on_screen():
    for view in camera.rig(480, 320):
        left = np.array(view.directions["left"])
        front = np.array(view.directions["front"])
        (u0, v0, _), (u1, _, _), (_, v2, d2) = view.project([[0, 0, 0], left, front])
        assert u1 < u0
        assert v2 > v0 and d2 < 12  # nearer the camera: lower on screen


def test_record_is_plain_json_data():
    import json

    rec = camera.View(2, 480, 320).record()
    back = json.loads(json.dumps(rec))
    assert back == rec
    assert rec["resolution"] == [480, 320] and rec["azimuth"] == 225.0
    assert len(rec["matrix_world"]) == 4 and len(rec["K"]) == 3
