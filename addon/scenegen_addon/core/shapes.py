"""The three convex shapes (FORMAT 4): meshes for Blender and projection, and footprints.

Each mesh spans 1x1x1 with its origin at the bottom centre; an object scales it by its
size and turns it by its yaw about +Z. Blender builds exactly these vertices and faces
(ARCHITECTURE rule 8), so silhouettes, masks and labels describe the same objects.

Footprints are the horizontal cross-sections at mid-height. Each is a convex "core"
(a point, or a square) grown by a disk: a circle is a point grown by size/2, the cube's
rounded square is a square of side 0.9*size grown by 0.05*size. The gap between two
footprints is the distance between their cores minus both disk radii.

Angles and products come from `exact` (and footprint geometry from plain float arithmetic),
so vertices, footprints and gaps are the same on every CPU.
"""

import functools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import exact

SHAPES = ("cube", "sphere", "cylinder")
CUBE_BEVEL = 0.05
CUBE_BEVEL_SEGMENTS = 3
SPHERE_SEGMENTS = 64
SPHERE_RINGS = 32
CYLINDER_SIDES = 64
CYLINDER_BEVEL = 0.03
CYLINDER_BEVEL_SEGMENTS = 2


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # (V, 3) float
    faces: tuple[tuple[int, ...], ...]  # counter-clockwise seen from outside


def _grid_mesh(grid: np.ndarray) -> Mesh:
    """A closed mesh from a (rings, columns, 3) grid wrapped around in columns.

    Rings run bottom to top; coincident points (poles, collapsed corners) are merged and
    faces left with fewer than 3 distinct corners dropped. The bottom and top rings are
    closed by one cap polygon each when they keep 3 or more distinct points.
    """
    rings, cols, _ = grid.shape
    flat = grid.reshape(-1, 3)
    keys = {}
    remap = np.empty(len(flat), dtype=int)
    vertices = []
    for i, p in enumerate(flat):
        key = tuple(np.round(p, 9))
        if key not in keys:
            keys[key] = len(vertices)
            vertices.append(p)
        remap[i] = keys[key]

    def unique_cycle(ids):
        out = []
        for v in ids:
            if v not in out:
                out.append(v)
        return tuple(out)

    faces = []
    bottom = unique_cycle(remap[[c for c in reversed(range(cols))]])
    if len(bottom) >= 3:
        faces.append(bottom)
    for r in range(rings - 1):
        for c in range(cols):
            c2 = (c + 1) % cols
            ids = [r * cols + c, r * cols + c2, (r + 1) * cols + c2, (r + 1) * cols + c]
            face = unique_cycle(remap[ids])
            if len(face) >= 3:
                faces.append(face)
    top = unique_cycle(remap[[(rings - 1) * cols + c for c in range(cols)]])
    if len(top) >= 3:
        faces.append(top)
    return Mesh(np.array(vertices), tuple(tuple(int(v) for v in f) for f in faces))


def _rounded_box(half: float, radius: float, segments: int) -> np.ndarray:
    """Grid of a box of half-extent `half` with every edge rounded by `radius`."""
    inner = half - radius
    cols = []
    for q in range(4):  # quadrants counter-clockwise from +X+Y
        sx, sy = [(1, 1), (-1, 1), (-1, -1), (1, -1)][q]
        for s in range(segments + 1):
            cos_p, sin_p = exact.cos_sin_deg(90.0 * q + 90.0 * s / segments)
            cols.append((sx * inner, sy * inner, cos_p, sin_p))
    rows = []
    for hemisphere in (-1, 1):
        for s in range(segments + 1):
            theta = -90.0 + 90.0 * s / segments if hemisphere < 0 else 90.0 * s / segments
            cos_t, sin_t = exact.cos_sin_deg(theta)
            rows.append((hemisphere * inner, sin_t, cos_t))
    grid = np.empty((len(rows), len(cols), 3))
    for r, (cz, sin_t, cos_t) in enumerate(rows):
        for c, (cx, cy, cos_p, sin_p) in enumerate(cols):
            grid[r, c] = (
                cx + radius * cos_t * cos_p,
                cy + radius * cos_t * sin_p,
                cz + radius * sin_t,
            )
    grid[:, :, 2] += half  # origin at the bottom centre
    return grid


def _revolve(profile: list[tuple[float, float]], sides: int) -> np.ndarray:
    """Grid of a surface of revolution of (radius, z) points about +Z."""
    cos_phi, sin_phi = exact.cos_sin_deg_array(np.arange(sides) * 360.0 / sides)
    r = np.array([p[0] for p in profile])[:, None]
    z = np.array([p[1] for p in profile])[:, None]
    return np.stack(
        [r * cos_phi, r * sin_phi, np.broadcast_to(z, (len(profile), sides))], axis=2
    )


def _sphere_profile() -> list[tuple[float, float]]:
    out = []
    for i in range(SPHERE_RINGS + 1):
        cos_t, sin_t = exact.cos_sin_deg(-90.0 + 180.0 * i / SPHERE_RINGS)
        out.append((0.5 * cos_t, 0.5 + 0.5 * sin_t))
    return out


def _cylinder_profile() -> list[tuple[float, float]]:
    r, n = CYLINDER_BEVEL, CYLINDER_BEVEL_SEGMENTS
    out = []
    for s in range(n + 1):  # bottom edge, from the flat bottom up to the side
        cos_a, sin_a = exact.cos_sin_deg(-90.0 + 90.0 * s / n)
        out.append((0.5 - r + r * cos_a, r + r * sin_a))
    for s in range(n + 1):  # top edge, from the side to the flat top
        cos_a, sin_a = exact.cos_sin_deg(90.0 * s / n)
        out.append((0.5 - r + r * cos_a, 1.0 - r + r * sin_a))
    return out


@lru_cache(maxsize=None)
def mesh(shape: str) -> Mesh:
    """The unit mesh of `shape` (1x1x1, origin at the bottom centre)."""
    if shape == "cube":
        return _grid_mesh(_rounded_box(0.5, CUBE_BEVEL, CUBE_BEVEL_SEGMENTS))
    if shape == "sphere":
        return _grid_mesh(_revolve(_sphere_profile(), SPHERE_SEGMENTS))
    if shape == "cylinder":
        return _grid_mesh(_revolve(_cylinder_profile(), CYLINDER_SIDES))
    raise ValueError(f"unknown shape {shape!r}: allowed are {', '.join(SHAPES)}")


@lru_cache(maxsize=4096)
def turn(yaw_deg: float) -> tuple[float, float]:
    """(cos, sin) of a yaw: a scene asks for the same few yaws again and again."""
    return exact.cos_sin_deg(yaw_deg)


def place(local: np.ndarray, size: float, position, yaw_deg: float) -> np.ndarray:
    """Unit-mesh points (N, 3) scaled by `size`, turned by `yaw_deg` about +Z, moved to
    `position` (x, y): the same arithmetic for every vertex, whichever are asked for."""
    c, s = turn(yaw_deg)
    v = np.asarray(local, dtype=float) * size
    x = v[:, 0] * c - v[:, 1] * s + position[0]
    y = v[:, 0] * s + v[:, 1] * c + position[1]
    return np.stack([x, y, v[:, 2]], axis=1)


def world_vertices(shape: str, size: float, position, yaw_deg: float) -> np.ndarray:
    """The mesh of one object placed in the world: scaled, turned about +Z, moved."""
    return place(mesh(shape).vertices, size, position, yaw_deg)


# ---------------------------------------------------------------- surfaces

# The meshes' vertices lie on the ideal shapes (a ball, a box or a cylinder with rounded
# edges); their flat faces lie inside by at most this much (unit size): the coarsest step is
# the cube's bevel, 3 segments of 30 degrees each way on a radius of 0.05.
MESH_INSET = 0.004


def surface_distance(shape: str, size: float, position, yaw_deg: float,
                     points: np.ndarray) -> np.ndarray:
    """Signed distance of world points (N, 3) from the ideal surface of one placed object:
    negative inside. Each ideal shape is a core (a point, a box, a disk) grown by a ball, so
    the distance is the distance from the core minus the ball's radius."""
    c, s = turn(yaw_deg)
    dx = points[:, 0] - position[0]
    dy = points[:, 1] - position[1]
    x = (dx * c + dy * s) / size  # unit coordinates around the shape's centre
    y = (dy * c - dx * s) / size
    z = points[:, 2] / size - 0.5
    if shape == "sphere":
        return (np.sqrt(x * x + y * y + z * z) - 0.5) * size
    if shape == "cube":
        inner = 0.5 - CUBE_BEVEL
        axes, radius = (np.abs(x) - inner, np.abs(y) - inner, np.abs(z) - inner), CUBE_BEVEL
    elif shape == "cylinder":
        inner = 0.5 - CYLINDER_BEVEL
        axes = (np.sqrt(x * x + y * y) - inner, np.abs(z) - inner)
        radius = CYLINDER_BEVEL
    else:
        raise ValueError(f"unknown shape {shape!r}: allowed are {', '.join(SHAPES)}")
    beyond = [np.maximum(a, 0.0) for a in axes]
    outside = np.sqrt(sum(b * b for b in beyond))
    inside = np.minimum(functools.reduce(np.maximum, axes), 0.0)
    return (outside + inside - radius) * size


# ---------------------------------------------------------------- footprints


@dataclass(frozen=True)
class Footprint:
    """Mid-height cross-section: a convex core (point or square) grown by `radius`."""

    center: tuple[float, float]
    core: np.ndarray  # (k, 2) corners counter-clockwise; one row for a point
    radius: float


def footprint(shape: str, size: float, position, yaw_deg: float) -> Footprint:
    center = (float(position[0]), float(position[1]))
    if shape == "cube":
        half = (0.5 - CUBE_BEVEL) * size
        c, s = turn(yaw_deg)
        core = [
            (hx * c - hy * s + center[0], hx * s + hy * c + center[1])
            for hx, hy in ((half, half), (-half, half), (-half, -half), (half, -half))
        ]
        return Footprint(center, np.array(core), CUBE_BEVEL * size)
    if shape in ("sphere", "cylinder"):
        return Footprint(center, np.array([center]), size / 2)
    raise ValueError(f"unknown shape {shape!r}: allowed are {', '.join(SHAPES)}")


# Cores below are lists of (x, y) float pairs: plain float arithmetic, in a written order.


def _distance(p, q) -> float:
    dx, dy = p[0] - q[0], p[1] - q[1]
    return math.sqrt(dx * dx + dy * dy)


def _point_segment(p, a, b) -> tuple[float, float]:
    """Closest point to p on segment ab."""
    abx, aby = b[0] - a[0], b[1] - a[1]
    denom = abx * abx + aby * aby
    t = (p[0] - a[0]) * abx + (p[1] - a[1]) * aby
    t = 0.0 if denom == 0 else min(1.0, max(0.0, t / denom))
    return (a[0] + t * abx, a[1] + t * aby)


def _edges(poly):
    return (
        [(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]
        if len(poly) > 1
        else [(poly[0], poly[0])]
    )


def _overlap_depth(p, q) -> float:
    """Separating-axis test of two convex polygons: the largest separation along an edge
    normal; negative when they overlap (then minus the penetration depth)."""
    best = -math.inf
    for poly, other in ((p, q), (q, p)):
        if len(poly) < 3:
            continue
        for a, b in _edges(poly):
            nx, ny = b[1] - a[1], a[0] - b[0]
            length = math.sqrt(nx * nx + ny * ny)
            nx, ny = nx / length, ny / length
            near = min(x * nx + y * ny for x, y in other)
            far = max(x * nx + y * ny for x, y in poly)
            best = max(best, near - far)
    return best


def _inside(point, poly) -> bool:
    return all(
        (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0]) >= 0
        for a, b in _edges(poly)
    )


def _middle(poly) -> np.ndarray:
    """Mean of a core's corners, summed in order."""
    return np.array([sum(c[0] for c in poly) / len(poly), sum(c[1] for c in poly) / len(poly)])


def core_distance(p: np.ndarray, q: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Signed distance between two convex cores and their closest points (p side, q side).

    Cores are points or convex polygons. Negative when they overlap (minus the depth);
    the closest points are then the cores' centres.
    """
    p, q = [tuple(c) for c in np.asarray(p).tolist()], [tuple(c) for c in np.asarray(q).tolist()]
    depth = None
    if len(p) >= 3 and len(q) >= 3:
        depth = _overlap_depth(p, q)
    elif len(p) >= 3 or len(q) >= 3:
        poly, point = (p, q[0]) if len(p) >= 3 else (q, p[0])
        if _inside(point, poly):
            depth = -min(_distance(point, _point_segment(point, a, b)) for a, b in _edges(poly))
    if depth is not None and depth < 0:
        return depth, _middle(p), _middle(q)
    best = (math.inf, None, None)
    for src, dst, flip in ((p, q, False), (q, p, True)):
        for point in src:
            for a, b in _edges(dst):
                c = _point_segment(point, a, b)
                d = _distance(point, c)
                if d < best[0]:
                    best = (d, c, point) if flip else (d, point, c)
    return best[0], np.array(best[1]), np.array(best[2])


def gap(a: Footprint, b: Footprint) -> float:
    """Distance between two footprints (negative when they overlap)."""
    return core_distance(a.core, b.core)[0] - a.radius - b.radius


def separating_normal(a: Footprint, b: Footprint) -> tuple[np.ndarray, np.ndarray]:
    """A point on, and the unit normal (pointing from a to b) of, a line between a and b.

    For disjoint footprints the line separates them; the vertical plane through it then
    separates the two objects (each lies inside the prism over its footprint).
    """
    d, pa, pb = core_distance(a.core, b.core)
    n = pb - pa
    if d <= 0 or exact.norm(n) == 0:
        n = np.asarray(b.center) - np.asarray(a.center)
    n = n / exact.norm(n)
    point = pa + n * (a.radius + (d - a.radius - b.radius) / 2)
    return point, n
