"""What a person can see in an image, decided from the record's stored numbers.

A question is fair only when a careful person looking at its picture could answer it. The
labels are exact, but some are exact by a hair; these margins say which ones a question
may ask (docs/FORMAT.md states them for users):
- left/right in an image: A is left of B when B's projected centroid (pixel_coords u) and
  both edges of B's bounding box (bbox u0, u1) lie at least PIXEL_MARGIN of the image width
  further right than A's (an object with no visible pixel is left of or right of nothing);
- in front/behind in an image: A is in front of B when A's centroid depth (pixel_coords,
  the distance along the camera's viewing axis) is at least DEPTH_MARGIN world units less;
- comparisons (qrr, closer, on-screen size): not inside the tie band 0.8 T < |a - b| < 1.2 T,
  T = tau * max(a, b) (core.constraints.boundary_flags: the record's boundary_flag for qrr,
  the same band from the stored distances or pixel counts elsewhere);
- on-screen size: both objects at least MIN_VISIBLE visible (visible_fraction), since a
  person sees only the visible part of an outline;
- clock: the angle at least SECTOR_MARGIN_DEG from the edge of its hour's 30-degree sector;
- occlusion: a hidden share of at least MIN_OCCLUDED (fraction of the occluded silhouette).
Only comparisons of stored numbers and IEEE arithmetic (norms through
core.constraints.distance_matrix): the same answer on every CPU.
"""

import numpy as np

PIXEL_MARGIN = 0.02  # of the image width: 4.8 px at 240, 9.6 px at 480, 20.5 px at 1024
DEPTH_MARGIN = 0.5  # world units along the viewing axis (objects are 0.35 or 0.7 wide)
MIN_VISIBLE = 0.95
SECTOR_MARGIN_DEG = 5.0  # so the angle is within 10 degrees of its hour's centre
MIN_OCCLUDED = 0.05

# Names of the margins a question can fail (exported with --keep-near-ties in `margins`).
TIE = "tie_band"
HIDDEN = "partly_hidden"
SECTOR = "sector_edge"
FEW_PIXELS = "few_pixels"
NEAR_TIES = (TIE, HIDDEN, SECTOR, FEW_PIXELS)


def left_in_image(view_objects, width: int) -> np.ndarray:
    """(n, n) bool: [i, j] when object i is left of object j in the image by the margin."""
    n = len(view_objects)
    u = np.array([o.pixel_coords[0] for o in view_objects], dtype=float)
    seen = np.array([o.bbox is not None for o in view_objects], dtype=bool)
    box = np.array([o.bbox if o.bbox is not None else (0, 0, 0, 0) for o in view_objects],
                   dtype=float).reshape(n, 4)
    margin = PIXEL_MARGIN * width
    out = seen[:, None] & seen[None, :]
    for values in (u, box[:, 0], box[:, 2]):
        out &= values[None, :] - values[:, None] >= margin
    return out


def front_in_image(view_objects) -> np.ndarray:
    """(n, n) bool: [i, j] when object i is nearer the camera than object j by the margin."""
    depth = np.array([o.pixel_coords[2] for o in view_objects], dtype=float)
    return depth[None, :] - depth[:, None] >= DEPTH_MARGIN


def near_sector_edge(angle_deg) -> np.ndarray:
    """Elementwise: the clock angle lies within SECTOR_MARGIN_DEG of an hour's sector edge
    (edges at 15 + 30 k degrees)."""
    inside = np.mod(np.asarray(angle_deg, dtype=float) + 15.0, 30.0)
    return np.minimum(inside, 30.0 - inside) < SECTOR_MARGIN_DEG
