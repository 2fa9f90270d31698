"""Silhouettes and the pre-render visibility gate (FORMAT 4, 6.3), from a SceneSpec alone.

A silhouette is the set of pixel centres inside the convex hull of an object's projected
mesh vertices: since every shape is convex, that is exactly what the object covers alone.
Depth order needs no ray casts: two objects with disjoint footprints lie in the vertical
prisms over their footprints, on either side of a vertical separating plane, so along every
ray that hits both, the one on the camera's side of the plane is hit first. The gate then
removes from each silhouette the silhouettes of the objects in front of it.

Projections, facing tests and depth order use `exact` arithmetic and counts are integers,
so silhouettes and the gate's decision are the same on every CPU.
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import camera, exact, presets, shapes
from .spec import ObjectSpec

MIN_VISIBLE_FRACTION = 0.25
# Footprints overlapping by more than this have no separating plane (invalid layouts only):
# their order falls back to the centroids' depth.
OVERLAP_TOLERANCE = 1e-3


@dataclass
class Silhouette:
    """Pixel centres covered by one object alone, in the window [y0:y0+h, x0:x0+w]."""

    x0: int  # column of mask[:, 0] in the image
    y0: int  # row of mask[0, :] in the image
    mask: np.ndarray  # bool (h, w); pixel (i, j) has centre (x0 + j + 0.5, y0 + i + 0.5)
    in_frame: bool  # every projected vertex inside [0, W] x [0, H], in front of the camera

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]


@dataclass
class GateResult:
    passed: bool
    fractions: np.ndarray  # (4, n) visible fraction per view and object
    in_frame: np.ndarray  # (4, n) bool
    reason: str  # "" when passed, else the first failure, e.g. "obj_3 view_2 fraction 0.12"


def _monotone_chain(points: np.ndarray) -> np.ndarray:
    points = points[np.lexsort((points[:, 1], points[:, 0]))].tolist()

    def chain(pts):
        out = []
        for p in pts:
            while (
                len(out) >= 2
                and (
                    (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                    - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])
                )
                <= 0
            ):
                out.pop()
            out.append(p)
        return out

    lower, upper = chain(points), chain(points[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _pseudo_angle(d: np.ndarray) -> np.ndarray:
    """A number in [-2, 2] that grows with the angle of each row (dx, dy) as atan2 does:
    the position along a diamond's outline, from + - / alone (so the same on every CPU)."""
    dx, dy = d[:, 0], d[:, 1]
    span = np.abs(dx) + np.abs(dy)
    p = dy / np.where(span > 0, span, 1.0)
    return np.where(dx < 0, np.where(dy >= 0, 2.0 - p, -2.0 - p), p)


def convex_hull(points) -> np.ndarray:
    """2D convex hull, counter-clockwise in (x, y), without collinear points.

    Contour points are usually all hull vertices: sorted by angle around their mean they
    then make a strictly convex polygon, which is the hull (checked, vectorised); otherwise
    Andrew's monotone chain decides.
    """
    points = np.asarray(points, dtype=float)
    if len(points) >= 3:
        rel = points - exact.total(points) / len(points)
        poly = points[np.argsort(_pseudo_angle(rel), kind="stable")]
        edge = np.roll(poly, -1, axis=0) - poly
        turn = edge[:, 0] * np.roll(edge[:, 1], -1) - edge[:, 1] * np.roll(edge[:, 0], -1)
        if np.all(turn > 0):
            return poly
    return _monotone_chain(points)


@dataclass(frozen=True)
class _Incidence:
    """A unit mesh's faces as planes and its vertex-face incidence, for contour tests."""

    normals: np.ndarray  # (F, 3) outward, not normalised
    offsets: np.ndarray  # (F,) normal . point on the face
    vertex: np.ndarray  # (I,) vertex index of each incidence
    face: np.ndarray  # (I,) face index of each incidence
    degree: np.ndarray  # (V,) faces around each vertex


@lru_cache(maxsize=None)
def _incidence(shape: str) -> _Incidence:
    mesh = shapes.mesh(shape)
    normals, offsets, vertex, face = [], [], [], []
    for f, ids in enumerate(mesh.faces):
        corners = mesh.vertices[list(ids)]
        centre = exact.total(corners) / len(ids)
        rel = corners - centre  # Newell-style normal: sum of the fan's cross products
        normals.append(exact.total(exact.cross(rel, np.roll(rel, -1, axis=0))))
        offsets.append(exact.dot(normals[-1], centre))
        vertex.extend(ids)
        face.extend([f] * len(ids))
    vertex = np.array(vertex)
    return _Incidence(
        np.array(normals),
        np.array(offsets),
        vertex,
        np.array(face),
        np.bincount(vertex, minlength=len(mesh.vertices)),
    )


def contour_vertices(obj: ObjectSpec, eye) -> np.ndarray:
    """World vertices of `obj` that can project onto its outline seen from `eye`.

    A vertex whose faces all face the eye (or all face away) projects strictly inside the
    projection of the convex mesh, so the hull of the projected contour vertices (those
    with faces of both kinds, or edge-on) equals the hull of all projected vertices.
    """
    inc = _incidence(obj.shape)
    c, s = shapes.turn(obj.rotation)
    ox, oy = float(eye[0]) - obj.position[0], float(eye[1]) - obj.position[1]
    local_eye = np.array([c * ox + s * oy, c * oy - s * ox, float(eye[2])])
    facing = exact.dot(inc.normals, local_eye / obj.size_value) - inc.offsets
    front = np.bincount(inc.vertex[(facing > 0)[inc.face]], minlength=len(inc.degree))
    back = np.bincount(inc.vertex[(facing < 0)[inc.face]], minlength=len(inc.degree))
    keep = (front < inc.degree) & (back < inc.degree)
    local = shapes.mesh(obj.shape).vertices[keep]
    return shapes.place(local, obj.size_value, obj.position, obj.rotation)


def _fill(hull: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """Pixel centres of the window inside a convex polygon, row by row (scanline spans)."""
    ys = np.arange(y0, y1) + 0.5
    xs = np.arange(x0, x1) + 0.5
    if len(hull) < 3 or len(ys) == 0 or len(xs) == 0:
        return np.zeros((len(ys), len(xs)), dtype=bool)
    a, b = hull, np.roll(hull, -1, axis=0)
    dy = b[:, 1] - a[:, 1]
    sloped = dy != 0
    a, b, dy = a[sloped], b[sloped], dy[sloped]
    t = (ys[None, :] - a[:, 1:2]) / dy[:, None]  # (edges, rows)
    x = a[:, 0:1] + t * (b[:, 0:1] - a[:, 0:1])
    hit = (t >= 0) & (t <= 1)
    left = np.where(hit, x, np.inf).min(axis=0)
    right = np.where(hit, x, -np.inf).max(axis=0)
    return (xs[None, :] >= left[:, None]) & (xs[None, :] <= right[:, None])


def _inside_frame(uvd: np.ndarray, view: camera.View) -> bool:
    """Projected points (u, v, depth) all in front of the camera and inside [0, W] x [0, H].

    Checking the contour vertices suffices: the projection is their convex hull."""
    return bool(
        np.all(uvd[:, 2] > 0)
        and np.all((uvd[:, 0] >= 0) & (uvd[:, 0] <= view.width))
        and np.all((uvd[:, 1] >= 0) & (uvd[:, 1] <= view.height))
    )


def silhouette(obj: ObjectSpec, view: camera.View) -> Silhouette:
    """The pixels `obj` would cover alone in `view` (clipped to the image)."""
    uvd = view.project(contour_vertices(obj, view.position))
    uv = uvd[:, :2]
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    x0 = min(max(0, math.floor(lo[0])), view.width)
    y0 = min(max(0, math.floor(lo[1])), view.height)
    x1 = max(min(view.width, math.ceil(hi[0])), x0)
    y1 = max(min(view.height, math.ceil(hi[1])), y0)
    return Silhouette(x0, y0, _fill(convex_hull(uv), x0, x1, y0, y1), _inside_frame(uvd, view))


def silhouettes(objects: list[ObjectSpec], view: camera.View) -> list[Silhouette]:
    return [silhouette(obj, view) for obj in objects]


def in_frame(obj: ObjectSpec, views: list[camera.View]) -> bool:
    """Placement rule (c): every projected vertex inside each view's frame."""
    return all(
        _inside_frame(view.project(contour_vertices(obj, view.position)), view) for view in views
    )


class _DepthOrder:
    """Pairwise depth order of a layout; separating planes are view-independent, cached."""

    def __init__(self, objects: list[ObjectSpec]):
        self.objects = objects
        self.footprints = [obj.footprint() for obj in objects]
        self._planes: dict[tuple[int, int], tuple | None] = {}

    def _plane(self, a: int, b: int):
        key = (a, b)
        if key not in self._planes:
            fa, fb = self.footprints[a], self.footprints[b]
            if shapes.gap(fa, fb) < -OVERLAP_TOLERANCE:
                self._planes[key] = None
            else:
                self._planes[key] = shapes.separating_normal(fa, fb)
        return self._planes[key]

    def in_front(self, a: int, b: int, view: camera.View) -> bool:
        """True when `a` is hit before `b` along every ray of `view` that hits both."""
        lo, hi = min(a, b), max(a, b)
        plane = self._plane(lo, hi)
        if plane is None:
            depth = view.project([self.objects[lo].centroid, self.objects[hi].centroid])[:, 2]
            lo_first = depth[0] < depth[1]
        else:
            point, normal = plane  # normal points from lo to hi
            eye = view.position
            lo_first = (eye[0] - point[0]) * normal[0] + (eye[1] - point[1]) * normal[1] < 0
        return lo_first if a == lo else not lo_first


def front_of(objects: list[ObjectSpec], view: camera.View) -> np.ndarray:
    """(n, n) bool: [a, b] is True when a hides b wherever both cover a pixel."""
    order = _DepthOrder(objects)
    n = len(objects)
    out = np.zeros((n, n), dtype=bool)
    for a in range(n):
        for b in range(a + 1, n):
            out[a, b] = order.in_front(a, b, view)
            out[b, a] = not out[a, b]
    return out


def _fractions(sils: list[Silhouette], view: camera.View, order: _DepthOrder) -> np.ndarray:
    """Visible fraction of each silhouette once those in front of it are removed."""
    box = np.array([[s.x0, s.y0, s.x1, s.y1] for s in sils]).reshape(-1, 4)
    overlap = (
        np.maximum(box[:, None, 0], box[None, :, 0]) < np.minimum(box[:, None, 2], box[None, :, 2])
    ) & (
        np.maximum(box[:, None, 1], box[None, :, 1]) < np.minimum(box[:, None, 3], box[None, :, 3])
    )
    np.fill_diagonal(overlap, False)
    out = np.zeros(len(sils))
    for b, sb in enumerate(sils):
        total = sb.count
        if total == 0:
            continue
        hidden = np.zeros_like(sb.mask)
        for a in np.flatnonzero(overlap[:, b]):
            if not order.in_front(a, b, view):
                continue
            sa = sils[a]
            x0, x1 = max(sa.x0, sb.x0), min(sa.x1, sb.x1)
            y0, y1 = max(sa.y0, sb.y0), min(sa.y1, sb.y1)
            hidden[y0 - sb.y0 : y1 - sb.y0, x0 - sb.x0 : x1 - sb.x0] |= sa.mask[
                y0 - sa.y0 : y1 - sa.y0, x0 - sa.x0 : x1 - sa.x0
            ]
        out[b] = (total - np.count_nonzero(sb.mask & hidden)) / total
    return out


def visible_fractions(
    objects: list[ObjectSpec], view: camera.View, sils: list[Silhouette] | None = None
) -> np.ndarray:
    """(n,) the gate's visible fraction of each object in `view` (0 when it covers nothing)."""
    if sils is None:
        sils = silhouettes(objects, view)
    return _fractions(sils, view, _DepthOrder(objects))


def gate(objects: list[ObjectSpec]) -> GateResult:
    """FORMAT 4: in each canonical view every object in frame with visible fraction >= 0.25."""
    views = camera.rig(*presets.CANONICAL_RESOLUTION)
    order = _DepthOrder(objects)
    fractions = np.zeros((len(views), len(objects)))
    frame = np.zeros((len(views), len(objects)), dtype=bool)
    for k, view in enumerate(views):
        sils = silhouettes(objects, view)
        frame[k] = [s.in_frame for s in sils]
        fractions[k] = _fractions(sils, view, order)
    failures = [
        f"{obj.id} {view.view_id} out of frame"
        if not frame[k, i]
        else f"{obj.id} {view.view_id} fraction {fractions[k, i]:.2f}"
        for k, view in enumerate(views)
        for i, obj in enumerate(objects)
        if not frame[k, i] or fractions[k, i] < MIN_VISIBLE_FRACTION
    ]
    return GateResult(not failures, fractions, frame, failures[0] if failures else "")
