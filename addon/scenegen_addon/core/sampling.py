"""Scene sampling (FORMAT 4): one seed -> one SceneSpec, or a sampling failure.

Draw order for one seed, all from `rng.generator(seed)` with `.random()` only (pinned by
tests/golden/):
1. Objects, for i = 0..n-1: size, shape, colour, material, each `rng.index` over the order
   of spec.OBJECT_SIZES, shapes.SHAPES, spec.COLORS, spec.MATERIALS; then yaw = 360 * u degrees.
2. Lights key, fill, back: jitter x, y, z, each uniform in [-1, 1].
3. Placement: a first attempt and up to 100 restarts; in each, for object i = 0..n-1: for
   i >= 1 one draw, contact when u < 0.15; then up to 50 tries, each drawing either
   (contact) j = rng.index over the i placed objects and a direction angle 360 * u degrees,
   or x then y uniform in [-R, R]. A contact distance is found by bisection (no draws). A
   try is accepted when it passes rules (a)-(c) of FORMAT 4; when an object's 50 tries fail,
   placement restarts.
The visibility gate (core/visibility.py) then decides; it draws nothing.

Lights are aimed like Blender's Track To (-Z toward the origin, local +Y up toward world +Z).
Every number is computed with `exact` or plain float arithmetic, so a seed gives the same
bits on every CPU.
"""

import math
from dataclasses import dataclass

import numpy as np

from . import camera, exact, plan, presets, rng, shapes, spec, visibility

MAX_RESTARTS = 100
TRIES_PER_OBJECT = 50
CONTACT_PROBABILITY = 0.15
CONTACT_TOLERANCE = 1e-6  # width of the bisection bracket: the gap ends in [0, 1e-6]
JITTER = 1.0


class SamplingFailed(Exception):
    """Placement gave up or the visibility gate failed (FORMAT 2: move to the next retry)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PlacementRules:
    """The numbers of FORMAT 4 that depend on the object count."""

    half_extent: float  # R: positions uniform in [-R, R]^2
    min_gap: float
    margin: float

    @classmethod
    def for_count(cls, n_objects: int) -> "PlacementRules":
        half = 3.0 if n_objects <= 6 else 3.5 if n_objects <= 10 else 4.0
        dense = n_objects > 10
        return cls(half, 0.175 if dense else 0.25, 0.28 if dense else 0.4)


@dataclass
class Layout:
    objects: list[spec.ObjectSpec]
    lights: list[spec.LightSpec]
    restarts: int


def _draw_objects(g: np.random.Generator, n_objects: int) -> list[spec.ObjectSpec]:
    """Attributes and yaw of every object; positions are filled in by placement."""
    objects = []
    for i in range(n_objects):
        size = list(spec.OBJECT_SIZES)[rng.index(g, len(spec.OBJECT_SIZES))]
        shape = shapes.SHAPES[rng.index(g, len(shapes.SHAPES))]
        color = list(spec.COLORS)[rng.index(g, len(spec.COLORS))]
        material = list(spec.MATERIALS)[rng.index(g, len(spec.MATERIALS))]
        yaw = 360.0 * float(g.random())
        objects.append(
            spec.ObjectSpec(
                f"obj_{i}",
                shape,
                size,
                spec.OBJECT_SIZES[size],
                color,
                list(spec.COLORS[color]),
                material,
                [0.0, 0.0],
                yaw,
            )
        )
    return objects


def aim_rotation(location, target=(0.0, 0.0, 0.0)) -> list[float]:
    """XYZ Euler angles (degrees) turning local -Z toward `target`, local +Y toward world +Z.

    Blender's XYZ Euler means matrix = Rz @ Ry @ Rx. Undefined straight above the target,
    which the jittered lights never are.
    """
    z = np.asarray(location, dtype=float) - np.asarray(target, dtype=float)
    z /= exact.norm(z)
    y = np.array([0.0, 0.0, 1.0]) - z[2] * z
    y /= exact.norm(y)
    x = exact.cross(y, z)
    m = np.stack([x, y, z], axis=1).tolist()  # columns: local axes, in world coordinates
    rx = exact.atan2_deg(m[2][1], m[2][2])
    # asin(-m20) with cos(ry) = |(m21, m22)| >= 0
    ry = exact.atan2_deg(-m[2][0], math.sqrt(m[2][1] * m[2][1] + m[2][2] * m[2][2]))
    rz = exact.atan2_deg(m[1][0], m[0][0])
    return [rx, ry, rz]


def _draw_lights(g: np.random.Generator) -> list[spec.LightSpec]:
    lights = []
    for name, nominal, energy, size in spec.LIGHTS:
        location = [c + rng.uniform(g, -JITTER, JITTER) for c in nominal]
        lights.append(spec.LightSpec(name, location, aim_rotation(location), energy, size))
    return lights


def _circumradius(obj: spec.ObjectSpec) -> float:
    """Largest distance from an object's centre to its footprint outline."""
    fp = obj.footprint()
    return float(np.max(exact.norm(fp.core - np.asarray(fp.center)))) + fp.radius


def _place_touching(obj, anchor, angle_deg: float) -> None:
    """Move `obj` in direction `angle_deg` from `anchor` to footprint gap 0 (up to +1e-6).

    The gap grows monotonically along a ray leaving the anchor's centre (the signed distance
    to a convex set is convex), so bisection finds its one zero.
    """
    direction = np.array(exact.cos_sin_deg(angle_deg))
    centre = np.asarray(anchor.position, dtype=float)
    anchor_fp = anchor.footprint()

    def gap_at(d: float) -> float:
        obj.position = (centre + d * direction).tolist()
        return shapes.gap(obj.footprint(), anchor_fp)

    lo, hi = 0.0, _circumradius(obj) + _circumradius(anchor) + 0.01
    while hi - lo > CONTACT_TOLERANCE:
        mid = 0.5 * (lo + hi)
        if gap_at(mid) < 0:
            lo = mid
        else:
            hi = mid
    gap_at(hi)


def _acceptable(i, objects, contact_with, rules, axes, views, radii) -> bool:
    """Rules (a) footprint gap, (b) margin along view 0's ground axes, (c) in frame, for
    object i against objects 0..i-1 (the pair with `contact_with` waives (a) and (b))."""
    obj = objects[i]
    fp = obj.footprint()
    (l0, l1), (f0, f1) = axes
    for k, other in enumerate(objects[:i]):
        if k == contact_with:
            continue
        dx, dy = obj.position[0] - other.position[0], obj.position[1] - other.position[1]
        if abs(dx * l0 + dy * l1) < rules.margin or abs(dx * f0 + dy * f1) < rules.margin:
            return False
        # The centre distance minus both circumradii bounds the gap from below.
        if math.sqrt(dx * dx + dy * dy) - radii[i] - radii[k] < rules.min_gap and (
            shapes.gap(fp, other.footprint()) < rules.min_gap
        ):
            return False
    return visibility.in_frame(obj, views)


def _place(g: np.random.Generator, objects: list[spec.ObjectSpec], rules: PlacementRules) -> int:
    """Place `objects` in order (positions set in place); returns the restarts used."""
    views = camera.rig(*presets.CANONICAL_RESOLUTION)
    dirs = views[0].directions
    axes = (tuple(dirs["left"][:2]), tuple(dirs["front"][:2]))
    radii = [_circumradius(obj) for obj in objects]  # independent of position
    for restart in range(MAX_RESTARTS + 1):  # the first try and up to 100 restarts
        for i, obj in enumerate(objects):
            contact = i >= 1 and float(g.random()) < CONTACT_PROBABILITY
            for _ in range(TRIES_PER_OBJECT):
                if contact:
                    j = rng.index(g, i)
                    _place_touching(obj, objects[j], 360.0 * float(g.random()))
                else:
                    j = -1
                    obj.position = [
                        rng.uniform(g, -rules.half_extent, rules.half_extent),
                        rng.uniform(g, -rules.half_extent, rules.half_extent),
                    ]
                if _acceptable(i, objects, j, rules, axes, views, radii):
                    break
            else:
                break  # this object's tries ran out: restart the whole placement
        else:
            return restart
    raise SamplingFailed(f"placement: {MAX_RESTARTS} restarts")


def sample_layout(n_objects: int, split: str, seed: int) -> Layout:
    """The objects and lights of one seed, placed and gated, or SamplingFailed."""
    presets.check_object_count(split, n_objects)
    g = rng.generator(seed)
    objects = _draw_objects(g, n_objects)
    lights = _draw_lights(g)
    restarts = _place(g, objects, PlacementRules.for_count(n_objects))
    result = visibility.gate(objects)
    if not result.passed:
        raise SamplingFailed(f"visibility gate: {result.reason}")
    return Layout(objects, lights, restarts)


def sample_scene(entry: plan.PlannedScene, global_seed: int) -> spec.SceneSpec:
    """The SceneSpec of a plan entry: retries 0..MAX_RETRIES until one samples."""
    reason = ""
    for k in range(plan.MAX_RETRIES + 1):
        seed = entry.retry_seed(k, global_seed)
        try:
            layout = sample_layout(entry.n_objects, entry.split, seed)
        except SamplingFailed as failure:
            reason = failure.reason
            continue
        return spec.SceneSpec(
            scene_id=entry.scene_id,
            split=entry.split,
            index=entry.index,
            seed=seed,
            retries=k,
            tau=entry.tau,
            objects=layout.objects,
            lights=layout.lights,
            restarts=layout.restarts,
        )
    raise SamplingFailed(f"{plan.MAX_RETRIES} retries exhausted; last: {reason}")
