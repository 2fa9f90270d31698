"""Ground-truth relations of FORMAT 6.3-6.4: the comparator, world and per-view constraints.

Everything is computed from unrounded values; only the stored derived numbers (ratio,
angle_deg, fractions) are rounded to 6 significant digits (`round_sig`). Objects are
always taken in integer index order (obj_2 before obj_10), never by id string.

Orders (all lexicographic in object indices):
- qrr: pairs (a, b), a < b, listed lexicographically; every two pairs with no object in
  common, earlier pair first, records in (pair1, pair2) order.
- trr: ordered triples (target, ref1, ref2) of distinct objects.
- topology, size, axial (per view: left/right first, then front/behind): pairs a < b.
- closer: anchor, then pairs (a, b) a < b of the other objects.
- occlusion: ordered pairs (occluder, occluded).

Degenerate cases (never reached by valid layouts, defined so nothing is NaN or inf):
- difficulty: min = 0 and max > 0 is level 1 (r = inf); both 0 is level 6 (r = 1).
- qrr ratio m1 / m2 is null when m2 = 0.
- clock angle of a target on top of ref1 (or ref2 on ref1): atan2(0, 0) = 0.
- visible_fraction is 0 when the silhouette is empty; occlusion needs pixels >= 4, so
  its fraction always has a non-empty silhouette.

Distances, products and angles come from `exact`, so every label and number is the same
on every CPU.
"""

import numpy as np

from . import exact, shapes, visibility
from .camera import View
from .spec import SceneSpec

COMPARATORS = ("~=", "<", ">")
# The constraint types of FORMAT 6.4, in the order a record holds them.
WORLD_TYPES = ("qrr", "trr", "topology", "size", "closer")
VIEW_TYPES = ("qrr", "trr", "axial", "occlusion", "size")
DIFFICULTY_BOUNDS = (1.05, 1.15, 1.3, 1.5, 2.0)  # r above k bounds -> difficulty 6 - k
TOUCH_TOLERANCE = 0.01  # footprint gap within this of 0 is "touching"
BOUNDARY_BAND = (0.8, 1.2)  # flagged when 0.8 T < |a - b| < 1.2 T, T = tau * max(a, b)
AXIAL_MARGIN = 0.2  # world units, as in CLEVR
MIN_OCCLUSION_PIXELS = 4
QUADRANTS = (1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4)  # indexed by hour % 12


def round_sig(values) -> list[float]:
    """Derived numbers for the record: 6 significant digits, as plain floats."""
    return [float(f"{v:.6g}") for v in np.asarray(values, dtype=float).ravel().tolist()]


def _check_tau(tau: float) -> None:
    if not 0.0 <= tau < 1.0:
        raise ValueError(f"tau must be in [0, 1), got {tau!r}")


def _comparator_codes(a: np.ndarray, b: np.ndarray, tau: float) -> np.ndarray:
    """0 for "~=", 1 for "<", 2 for ">" (indices into COMPARATORS)."""
    close = np.abs(a - b) <= tau * np.maximum(a, b)
    return np.where(close, 0, np.where(a < b, 1, 2))


def _difficulties(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    r = np.where(lo > 0, hi / np.where(lo > 0, lo, 1.0), np.where(hi > 0, np.inf, 1.0))
    return 6 - np.count_nonzero(r[..., None] > np.array(DIFFICULTY_BOUNDS), axis=-1)


def boundary_flags(a, b, tau: float) -> np.ndarray:
    """Elementwise FORMAT 6.4.1 boundary flag: |a - b| inside BOUNDARY_BAND x T, T = tau *
    max(a, b). Also the questions' tie band (dataset.margins), from stored numbers."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    t = tau * np.maximum(a, b)
    diff = np.abs(a - b)
    return (BOUNDARY_BAND[0] * t < diff) & (diff < BOUNDARY_BAND[1] * t)


def _scalars(a: float, b: float, tau: float | None = None) -> tuple[np.float64, np.float64]:
    if tau is not None:
        _check_tau(tau)
    if not (a >= 0 and b >= 0):
        raise ValueError(f"a and b must be >= 0, got a={a!r}, b={b!r}")
    return np.float64(a), np.float64(b)


def compare(a: float, b: float, tau: float) -> str:
    """FORMAT 6.4 comparator: "~=" within tau * max(a, b), else "<" or ">"."""
    a, b = _scalars(a, b, tau)
    return COMPARATORS[int(_comparator_codes(a, b, tau))]


def difficulty(a: float, b: float) -> int:
    """Level 1 (r = max/min > 2.0, easy) .. 6 (r <= 1.05, hardest)."""
    a, b = _scalars(a, b)
    return int(_difficulties(a, b))


def boundary_flag(a: float, b: float, tau: float) -> bool:
    """True when |a - b| lies within 20% of the tolerance tau * max(a, b)."""
    a, b = _scalars(a, b, tau)
    return bool(boundary_flags(a, b, tau))


# ---------------------------------------------------------------- shared record builders


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All (a, b) with a < b in lexicographic order."""
    return np.triu_indices(n, 1)


def _qrr(points: np.ndarray, ids: list[str], metric: str, tau: float) -> list[dict]:
    a, b = _pairs(len(points))
    dist = exact.norm(points[a] - points[b])
    p, q = _pairs(len(a))
    disjoint = (a[p] != a[q]) & (a[p] != b[q]) & (b[p] != a[q]) & (b[p] != b[q])
    p, q = p[disjoint], q[disjoint]
    m1, m2 = dist[p], dist[q]
    codes = _comparator_codes(m1, m2, tau).tolist()
    levels = _difficulties(m1, m2).tolist()
    flags = boundary_flags(m1, m2, tau).tolist()
    ratios = round_sig(m1 / np.where(m2 > 0, m2, 1.0))
    ratios = [r if d > 0 else None for r, d in zip(ratios, m2.tolist(), strict=True)]
    names = [[ids[i], ids[j]] for i, j in zip(a.tolist(), b.tolist(), strict=True)]
    return [
        {
            "pair1": list(names[i]),
            "pair2": list(names[j]),
            "metric": metric,
            "comparator": COMPARATORS[c],
            "ratio": r,
            "difficulty": d,
            "boundary_flag": f,
        }
        for i, j, c, r, d, f in zip(
            p.tolist(), q.tolist(), codes, ratios, levels, flags, strict=True
        )
    ]


def _triples(n: int) -> np.ndarray:
    """All ordered triples (target, ref1, ref2) of distinct indices, lexicographic."""
    t, r1, r2 = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    t, r1, r2 = t.ravel(), r1.ravel(), r2.ravel()
    keep = (t != r1) & (t != r2) & (r1 != r2)
    return np.stack([t[keep], r1[keep], r2[keep]], axis=1)


def clock_hours(angle_deg) -> np.ndarray:
    """FORMAT 6.4.4: the hour (1..12) of clockwise angles in degrees, 12 o'clock centred on
    0 (each hour a 30-degree sector)."""
    hours = np.floor(np.mod(np.asarray(angle_deg) + 15.0, 360.0) / 30.0).astype(int) % 12
    return np.where(hours == 0, 12, hours)


def _trr(xy: np.ndarray, ids: list[str]) -> list[dict]:
    """Clock of target standing at ref1 facing ref2, clockwise as seen with +y up.

    The image-plane clock is this same clock on (u, -v): flipping v turns the screen's
    clockwise into the world's.
    """
    tri = _triples(len(xy))
    target, ref1, ref2 = tri[:, 0], tri[:, 1], tri[:, 2]
    # theta[i, j]: direction from object i to object j in degrees (one atan2 per pair)
    rel = xy[None, :, :] - xy[:, None, :]
    theta = exact.atan2_deg_array(rel[..., 1], rel[..., 0])
    angle = np.mod(theta[ref1, ref2] - theta[ref1, target], 360.0)
    angle = np.where(angle >= 360.0, angle - 360.0, angle)  # mod can round up to 360
    hours = clock_hours(angle).tolist()
    angles = round_sig(angle)
    return [
        {
            "target": ids[t],
            "ref1": ids[r1],
            "ref2": ids[r2],
            "hour": h,
            "quadrant": QUADRANTS[h % 12],
            "angle_deg": g,
        }
        for (t, r1, r2), h, g in zip(tri.tolist(), hours, angles, strict=True)
    ]


def _bigger_smaller(values, ids: list[str], tau: float) -> list[dict]:
    """{bigger, smaller} for each pair a < b whose values compare "<" or ">"."""
    v = np.asarray(values, dtype=float)
    a, b = _pairs(len(v))
    codes = _comparator_codes(v[a], v[b], tau).tolist()
    out = []
    for i, j, c in zip(a.tolist(), b.tolist(), codes, strict=True):
        if c == 1:
            out.append({"bigger": ids[j], "smaller": ids[i]})
        elif c == 2:
            out.append({"bigger": ids[i], "smaller": ids[j]})
    return out


# ---------------------------------------------------------------- world


def _topology(spec: SceneSpec) -> list[dict]:
    prints = [o.footprint() for o in spec.objects]
    out = []
    for a, b in zip(*(x.tolist() for x in _pairs(len(prints))), strict=True):
        g = shapes.gap(prints[a], prints[b])
        if g > TOUCH_TOLERANCE:
            relation = "disjoint"
        elif g >= -TOUCH_TOLERANCE:
            relation = "touching"
        else:
            relation = "overlapping"
        out.append({"obj1": spec.objects[a].id, "obj2": spec.objects[b].id, "relation": relation})
    return out


def _size_labels(spec: SceneSpec) -> list[dict]:
    """{bigger, smaller} for each pair a < b with different size labels."""
    out = []
    for a, b in zip(*(x.tolist() for x in _pairs(spec.n_objects)), strict=True):
        oa, ob = spec.objects[a], spec.objects[b]
        if oa.size != ob.size:
            big, small = (oa, ob) if oa.size_value > ob.size_value else (ob, oa)
            out.append({"bigger": big.id, "smaller": small.id})
    return out


def distance_matrix(points) -> np.ndarray:
    """(n, n) Euclidean distances between points (core.exact: the same on every CPU)."""
    p = np.asarray(points, dtype=float)
    return exact.norm(p[:, None, :] - p[None, :, :])


def closer_triples(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchor, a, b) of every closer comparison: a < b, both other than the anchor."""
    anchor, a, b = (x.ravel() for x in np.meshgrid(*[np.arange(n)] * 3, indexing="ij"))
    keep = (a < b) & (anchor != a) & (anchor != b)
    return anchor[keep], a[keep], b[keep]


def _closer(centroids: np.ndarray, ids: list[str], tau: float) -> list[dict]:
    dist = distance_matrix(centroids)
    anchor, a, b = closer_triples(len(centroids))
    codes = _comparator_codes(dist[anchor, a], dist[anchor, b], tau).tolist()
    out = []
    for k, i, j, c in zip(anchor.tolist(), a.tolist(), b.tolist(), codes, strict=True):
        if c:
            near, far = (i, j) if c == 1 else (j, i)
            out.append({"anchor": ids[k], "closer": ids[near], "farther": ids[far]})
    return out


def world_constraints(spec: SceneSpec) -> dict:
    """constraints.world of FORMAT 6.4, from the exact centroids and footprints."""
    _check_tau(spec.tau)
    ids = [o.id for o in spec.objects]
    centroids = np.array([o.centroid for o in spec.objects], dtype=float).reshape(-1, 3)
    return {
        "qrr": _qrr(centroids, ids, "dist3D", spec.tau),
        "trr": _trr(centroids[:, :2], ids),
        "topology": _topology(spec),
        "size": _size_labels(spec),
        "closer": _closer(centroids, ids, spec.tau),
    }


# ---------------------------------------------------------------- per view


def _silhouettes(spec: SceneSpec, view: View, sils):
    if sils is None:
        sils = visibility.silhouettes(spec.objects, view)
    if len(sils) != spec.n_objects:
        raise ValueError(
            f"sils must hold one silhouette per object ({spec.n_objects}), got {len(sils)}"
        )
    return sils


def _check_mask(spec: SceneSpec, view: View, mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (view.height, view.width):
        raise ValueError(
            f"mask must have shape (height, width) = {(view.height, view.width)}, got {mask.shape}"
        )
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must be an integer array, got dtype {mask.dtype}")
    if mask.size and (mask.min() < 0 or mask.max() > spec.n_objects):
        raise ValueError(
            f"mask values must be in 0..{spec.n_objects} (0 = background, i+1 = obj_i)"
        )
    return mask


def view_objects(spec: SceneSpec, view: View, mask, sils=None) -> list[dict]:
    """The per-view object records of FORMAT 6.3 (mask: (H, W), row 0 = top, i+1 = obj_i)."""
    mask = _check_mask(spec, view, mask)
    sils = _silhouettes(spec, view, sils)
    n = spec.n_objects
    centroids = np.array([o.centroid for o in spec.objects], dtype=float).reshape(-1, 3)
    coords = view.project(centroids).tolist()
    visible = np.bincount(mask.ravel().astype(np.int64), minlength=n + 1)[1:].tolist()
    out = []
    for i, obj in enumerate(spec.objects):
        bbox = None
        if visible[i]:
            here = mask == i + 1
            rows, cols = np.flatnonzero(here.any(axis=1)), np.flatnonzero(here.any(axis=0))
            bbox = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]
        count = int(sils[i].count)
        out.append(
            {
                "id": obj.id,
                "pixel_coords": coords[i],
                "bbox": bbox,
                "silhouette_pixels": count,
                "visible_pixels": visible[i],
                "visible_fraction": round_sig(visible[i] / count if count else 0.0)[0],
                "in_frame": bool(sils[i].in_frame),
            }
        )
    return out


def _axial(spec: SceneSpec, view: View, ids: list[str]) -> list[dict]:
    ground = np.array([o.position for o in spec.objects], dtype=float).reshape(-1, 2)
    left = np.array(view.directions["left"][:2])
    front = np.array(view.directions["front"][:2])
    a, b = _pairs(len(ground))
    d = ground[a] - ground[b]
    along_left, along_front = exact.dot(d, left).tolist(), exact.dot(d, front).tolist()
    out = []
    for k, (i, j) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        for value, pos, neg in (
            (along_left[k], "left_of", "right_of"),
            (along_front[k], "in_front_of", "behind"),
        ):
            if abs(value) > AXIAL_MARGIN:
                out.append({"obj1": ids[i], "obj2": ids[j], "relation": pos if value > 0 else neg})
    return out


def _occlusion(mask: np.ndarray, sils, ids: list[str]) -> list[dict]:
    n = len(ids)
    counts = np.zeros((n, n), dtype=np.int64)  # [occluder, occluded]
    for b, sil in enumerate(sils):
        h, w = sil.mask.shape
        window = mask[sil.y0 : sil.y0 + h, sil.x0 : sil.x0 + w]
        counts[:, b] = np.bincount(window[sil.mask].astype(np.int64), minlength=n + 1)[1:]
    np.fill_diagonal(counts, 0)
    out = []
    for a, b in zip(*np.nonzero(counts >= MIN_OCCLUSION_PIXELS), strict=True):
        pixels = int(counts[a, b])
        out.append(
            {
                "occluder": ids[a],
                "occluded": ids[b],
                "pixels": pixels,
                "fraction": round_sig(pixels / int(sils[b].count))[0],
            }
        )
    return out


def view_constraints(spec: SceneSpec, view: View, mask, objects: list[dict], sils=None) -> dict:
    """constraints.views[k] of FORMAT 6.4; `objects` are this view's view_objects records."""
    _check_tau(spec.tau)
    mask = _check_mask(spec, view, mask)
    sils = _silhouettes(spec, view, sils)
    if [o["id"] for o in objects] != [o.id for o in spec.objects]:
        raise ValueError("objects must be the view_objects records of spec.objects, in order")
    ids = [o.id for o in spec.objects]
    uv = np.array([o["pixel_coords"][:2] for o in objects], dtype=float).reshape(-1, 2)
    return {
        "view_id": view.view_id,
        "qrr": _qrr(uv, ids, "dist2D", spec.tau),
        "trr": _trr(uv * np.array([1.0, -1.0]), ids),
        "axial": _axial(spec, view, ids),
        "occlusion": _occlusion(mask, sils, ids),
        "size": _bigger_smaller([o["silhouette_pixels"] for o in objects], ids, spec.tau),
    }
