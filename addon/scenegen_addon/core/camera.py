"""The 4-view camera rig of FORMAT 5 and projection of world points to pixels.

Conventions: OpenCV extrinsics (x_cam = R x_world + t; camera x right, y down, looks along
+z); pixels u right, v down, origin at the image's top-left corner, pixel centres at
half-integers. Blender's matrix_world is R^T @ diag(1, -1, -1) with the camera position as
translation. Every number comes from `exact`, so it is the same on every CPU.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import exact

N_VIEWS = 4
ELEVATION_DEG = 30.0
DISTANCE = 12.0
LOOK_AT = (0.0, 0.0, 0.0)
LENS_MM = 35.0
SENSOR_WIDTH_MM = 32.0


def azimuth_deg(view: int) -> float:
    return 45.0 + 90.0 * view


@dataclass(frozen=True)
class View:
    """One calibrated camera: rig parameters plus the resolution it renders at."""

    index: int
    width: int
    height: int

    @property
    def view_id(self) -> str:
        return f"view_{self.index}"

    @property
    def azimuth(self) -> float:
        return azimuth_deg(self.index)

    @cached_property
    def position(self) -> np.ndarray:
        cos_az, sin_az = exact.cos_sin_deg(self.azimuth)
        cos_el, sin_el = exact.cos_sin_deg(ELEVATION_DEG)
        offset = DISTANCE * np.array([cos_el * cos_az, cos_el * sin_az, sin_el])
        return np.array(LOOK_AT) + offset

    @cached_property
    def R(self) -> np.ndarray:
        forward = np.array(LOOK_AT) - self.position
        forward /= exact.norm(forward)
        right = exact.cross(forward, [0.0, 0.0, 1.0])
        right /= exact.norm(right)
        down = exact.cross(forward, right)
        return np.stack([right, down, forward])

    @cached_property
    def t(self) -> np.ndarray:
        return 0.0 - exact.dot(self.R, self.position)

    @property
    def focal_px(self) -> float:
        return LENS_MM / SENSOR_WIDTH_MM * self.width

    @cached_property
    def K(self) -> np.ndarray:
        f = self.focal_px
        return np.array([[f, 0.0, self.width / 2], [0.0, f, self.height / 2], [0.0, 0.0, 1.0]])

    @property
    def hfov_deg(self) -> float:
        return 2.0 * exact.atan2_deg(SENSOR_WIDTH_MM / 2, LENS_MM)

    @cached_property
    def matrix_world(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.R.T * [1.0, -1.0, -1.0]  # R^T @ diag(1, -1, -1): columns 1, 2 negated
        m[:3, 3] = self.position
        return m

    @cached_property
    def directions(self) -> dict[str, list[float]]:
        """Ground-plane unit vectors: front points toward the camera, left is camera -x."""
        front = self.position[:2] - np.array(LOOK_AT[:2])
        front /= exact.norm(front)
        left = -self.R[0, :2] / exact.norm(self.R[0, :2])
        vec = lambda v: [float(v[0]), float(v[1]), 0.0]  # noqa: E731
        return {"left": vec(left), "right": vec(-left), "front": vec(front), "behind": vec(-front)}

    def project(self, points) -> np.ndarray:
        """World points (N, 3) -> (N, 3) of pixel u, pixel v and depth along the view axis."""
        cam = exact.transform(points, self.R) + self.t
        depth = cam[:, 2]
        f = self.focal_px
        u = f * cam[:, 0] / depth + self.width / 2
        v = f * cam[:, 1] / depth + self.height / 2
        return np.stack([u, v, depth], axis=1)

    def record(self) -> dict:
        """The `camera` object of FORMAT 6.3, at full precision."""
        return {
            "azimuth": self.azimuth,
            "elevation": ELEVATION_DEG,
            "distance": DISTANCE,
            "position": self.position.tolist(),
            "look_at": list(LOOK_AT),
            "lens_mm": LENS_MM,
            "sensor_width_mm": SENSOR_WIDTH_MM,
            "resolution": [self.width, self.height],
            "hfov_deg": self.hfov_deg,
            "K": self.K.tolist(),
            "R": self.R.tolist(),
            "t": self.t.tolist(),
            "matrix_world": self.matrix_world.tolist(),
        }


def rig(width: int, height: int) -> list[View]:
    return [View(k, width, height) for k in range(N_VIEWS)]
