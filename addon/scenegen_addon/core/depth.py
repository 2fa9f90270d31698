"""The optional depth pass (FORMAT 1 v1.1, `--passes depth`): its encoding, and the check of a
depth map against the scene's geometry.

`depth/<scene_id>/view_k.png` is a 16-bit grayscale PNG. Each pixel holds the depth of the
front-most surface at the pixel centre along the camera's viewing axis (the OpenCV camera's
z, as `pixel_coords`' depth), in millimetres rounded to the nearest; 0 where the pixel sees
no surface (the sky beyond the ground's edge), and 65535 where that surface is 65.535 m away
or farther: a portrait frame such as 768x1024 sees ground that far. It comes from the same
render and the same sample as the mask (Cycles writes its Depth and Object Index passes
together), so a pixel's depth belongs to the object its mask names.
"""

import numpy as np

from . import camera, exact, shapes
from .spec import GROUND_SIZE, ObjectSpec

FAR_MM = 65535  # 65.535 m or farther
NO_SURFACE = 0
CYCLES_NO_HIT = 1e9  # Cycles' Depth pass holds 1e10 m where a ray leaves the scene
# The check's tolerance, in metres: 1 mm for the rounding, 2e-4 of the depth for Cycles'
# single-precision rays (seen: up to 9e-5 on the ground at 60 m) and, on an object, its
# mesh's flat faces (shapes.MESH_INSET x its size).
TOLERANCE_M = 0.001
TOLERANCE_RELATIVE = 2e-4
EDGE_MARGIN_M = 0.05  # ground hits this close to the ground's edge may fall either side


def encode(z: np.ndarray) -> np.ndarray:
    """Cycles' Depth pass (metres, float) -> the stored uint16 millimetres."""
    z = np.asarray(z, dtype=np.float64)
    hit = z < CYCLES_NO_HIT  # False for nan too
    mm = np.clip(np.rint(np.where(hit, z, 0.0) * 1000.0), 1, FAR_MM)
    return np.where(hit, mm, NO_SURFACE).astype(np.uint16)


def metres(mm: np.ndarray) -> np.ndarray:
    """A stored depth map -> float32 metres, nan where no surface (65.535 means that far or
    farther)."""
    out = np.asarray(mm).astype(np.float32) / np.float32(1000.0)
    out[np.asarray(mm) == NO_SURFACE] = np.nan
    return out


def tolerance(z: np.ndarray, size: float = 0.0) -> np.ndarray:
    """How far (m) a point at depth `z` may lie off the surface of an object of `size`
    (0: the ground)."""
    return TOLERANCE_M + shapes.MESH_INSET * size + TOLERANCE_RELATIVE * z


def _rays(view: camera.View) -> np.ndarray:
    """(H, W, 3) world directions of the pixel-centre rays, scaled to camera z = 1."""
    f = view.focal_px
    x = (np.arange(view.width) + 0.5 - view.width / 2) / f
    y = (np.arange(view.height) + 0.5 - view.height / 2) / f
    cam = np.stack(np.broadcast_arrays(x[None, :], y[:, None], 1.0), axis=-1)
    return exact.transform(cam.reshape(-1, 3), view.R.T).reshape(view.height, view.width, 3)


def ground_expected(view: camera.View) -> tuple[np.ndarray, np.ndarray]:
    """What a pixel that sees no object holds: the stored depth of the ground where its
    centre ray meets the ground square, else NO_SURFACE; and where that is certain (hits
    within EDGE_MARGIN_M of the square's edge may fall either side)."""
    rays = _rays(view)
    down = rays[..., 2] < 0
    z = np.where(down, view.position[2] / -np.where(down, rays[..., 2], -1.0), 0.0)
    x = view.position[0] + rays[..., 0] * z
    y = view.position[1] + rays[..., 1] * z
    reach = np.maximum(np.abs(x), np.abs(y))
    half = GROUND_SIZE / 2
    expected = encode(np.where(down & (reach <= half), z, np.inf))
    certain = ~down | (np.abs(reach - half) > EDGE_MARGIN_M)
    return expected.astype(np.int64), certain


def view_faults(depth_mm: np.ndarray, mask: np.ndarray, objects: list[ObjectSpec],
                view: camera.View) -> list[str]:
    """What disagrees with the geometry in one view's depth map: an object pixel whose depth
    puts its point off that object's surface by more than the tolerance, and a pixel of no
    object whose depth is not the ground's (or not NO_SURFACE past the ground's edge)."""
    faults = []
    z = depth_mm.astype(np.float64) / 1000.0
    rays = _rays(view)
    points = view.position + rays * z[..., None]
    for i, obj in enumerate(objects):
        where = mask == i + 1
        if not where.any():
            continue
        off = np.abs(shapes.surface_distance(obj.shape, obj.size_value, obj.position,
                                             obj.rotation, points[where]))
        bad = off > tolerance(z[where], obj.size_value)
        if bad.any():
            faults.append(f"{obj.id}: {np.count_nonzero(bad)} of {np.count_nonzero(where)} "
                          "pixels off its "
                          f"surface (up to {float(off.max()):.3f} m, tolerance "
                          f"{float(tolerance(z[where], obj.size_value).max()):.4f} m)")
    expected, certain = ground_expected(view)
    ground = (mask == 0) & certain
    have = depth_mm.astype(np.int64)
    tol_mm = np.rint(tolerance(expected / 1000.0) * 1000.0)
    wrong = ground & (np.abs(have - expected) > tol_mm)
    wrong |= ground & ((have == NO_SURFACE) != (expected == NO_SURFACE))
    if wrong.any():
        v, u = np.argwhere(wrong)[0]
        faults.append(f"{np.count_nonzero(wrong)} pixels of no object disagree with the "
                      f"ground plane (first at u={u}, v={v}: {int(have[v, u])} mm, expected "
                      f"{int(expected[v, u])} mm)")
    return faults
