"""Reconstruction from constraints (T3): ground-plane positions that satisfy a set of
relations, the share of them satisfied, and the NRMS error against the true layout.

The relations that speak about ground positions are used: world qrr (3D centroid distances,
each object's centroid height being half its size), world trr (clock hours seen from above),
closer, and axial (left/right, front/behind along a view's ground directions, by more than
0.2 units). Image-plane relations (view qrr and trr), topology, size and occlusion are not.

The solver minimises the squared violations of every relation, each required with a small
margin (distances by 1% of their sum, axial by 0.05 units beyond 0.2, clock angles 3 degrees
inside their sector; where that leaves relations unsatisfied, again from there with a tenth
and a hundredth of the margins, since a true layout may clear a relation by less), plus a
penalty on objects closer than their sizes allow, with L-BFGS from seeded random starts
(the first start that satisfies everything wins, else the fewest unsatisfied, then the
lowest loss). Ordinal relations fix a layout up to a similarity at best, and the scale not at all:
the solver holds the layout's RMS radius at the one the generator's placement square gives
on average (FORMAT 4.4), so the 0.2-unit axial margin and the heights keep their meaning.

NRMS: the estimate is aligned to the truth by the least-squares similarity (Umeyama: scale,
a proper rotation, translation; a mirror image is not aligned away, since clock and axial
relations tell left from right), and the RMS of the residuals is divided by the true
layout's diameter (its largest distance between two objects).
"""

from dataclasses import dataclass

import numpy as np

from ...core import exact
from ...core.constraints import AXIAL_MARGIN, clock_hours, compare
from ...core.sampling import PlacementRules
from ..loader import WORLD, Scene
from . import extraction, relations
from .relations import Fact

USED = ("qrr", "trr", "closer", "axial")
DISTANCE_MARGIN = 0.01  # relative: of the two distances' sum
AXIAL_SLACK = 0.05  # world units beyond AXIAL_MARGIN
CLOCK_MARGIN_DEG = 3.0
CLOCK_WEIGHT = 10.0  # a cosine is a small number next to distances of a few units
SCALE_WEIGHT = 0.1
RESTARTS = 8
SLACKS = (1.0, 0.1, 0.01)  # margins tried in turn: a true layout may clear one by less
AXIAL_SIGNS = {"left_of": ("left", 1.0), "right_of": ("left", -1.0),
               "in_front_of": ("front", 1.0), "behind": ("front", -1.0)}


def placement_rms(n_objects: int) -> float:
    """The RMS radius of n points drawn uniformly in the generator's square [-R, R]^2
    (FORMAT 4.4): R * sqrt(2/3)."""
    return PlacementRules.for_count(n_objects).half_extent * (2.0 / 3.0) ** 0.5


@dataclass(frozen=True)
class Problem:
    """What the solver knows: the objects, their centroid heights (half their sizes), each
    view's ground directions (unit 2-vectors "left" and "front") and the tolerance tau."""

    ids: tuple[str, ...]
    heights: np.ndarray
    directions: dict  # context -> {"left": (x, y), "front": (x, y)}
    tau: float

    def usable(self, facts) -> list[Fact]:
        """The facts T3 uses (see the module doc), in their given order."""
        return [f for f in facts if f.type in USED
                and (f.type == "axial") == (f.context != "world")]


def from_scene(scene: Scene) -> tuple[Problem, list[Fact], np.ndarray]:
    """A dataset scene's problem, its gold facts (world qrr, trr and closer, every view's
    axial) and its true ground positions (n, 2)."""
    facts = [relations.from_constraint(c) for c in scene.constraints(("qrr", "trr", "closer"),
                                                                      "world")]
    facts += [relations.from_constraint(c) for c in scene.constraints("axial")]
    directions = {v.view_id: {k: v.directions[k][:2] for k in ("left", "front")}
                  for v in scene.views}
    problem = Problem(tuple(o.id for o in scene.objects),
                      np.array([o.centroid[2] for o in scene.objects]), directions, scene.tau)
    return problem, facts, np.array([o.centroid[:2] for o in scene.objects])


class _Compiled:
    """The facts as index arrays, for a vectorised loss and its gradient."""

    def __init__(self, problem: Problem, facts: list[Fact]):
        pos = {obj: k for k, obj in enumerate(problem.ids)}
        n = len(problem.ids)
        self.n, self.heights = n, np.asarray(problem.heights, dtype=float)
        keep = 1.0 - problem.tau
        # distance inequalities: a * d(P) - b * d(Q) - margin * (d(P) + d(Q)) >= 0
        P, Q, A, B = [], [], [], []
        axial_pairs, axial_dirs = [], []
        clocks, hours = [], []
        for f in facts:
            o = [pos[x] for x in f.objects]
            if f.type == "qrr" or f.type == "closer":
                p, q = ((o[0], o[1]), (o[2], o[3])) if f.type == "qrr" else (
                    (o[0], o[1]), (o[0], o[2]))
                if f.value == "<":
                    P.append(q), Q.append(p), A.append(keep), B.append(1.0)
                elif f.value == ">":
                    P.append(p), Q.append(q), A.append(keep), B.append(1.0)
                else:
                    P += [p, q]
                    Q += [q, p]
                    A += [1.0, 1.0]
                    B += [keep, keep]
            elif f.type == "axial":
                name, sign = AXIAL_SIGNS[f.value]
                axial_pairs.append(o)
                axial_dirs.append(sign * np.asarray(problem.directions[f.context][name][:2]))
            elif f.type == "trr":
                clocks.append(o)
                hours.append(int(f.value))
        self.P = np.array(P, dtype=int).reshape(-1, 2)
        self.Q = np.array(Q, dtype=int).reshape(-1, 2)
        self.A, self.B = np.array(A), np.array(B)
        self.axial = np.array(axial_pairs, dtype=int).reshape(-1, 2)
        self.axial_dir = np.array(axial_dirs, dtype=float).reshape(-1, 2)
        self.clock = np.array(clocks, dtype=int).reshape(-1, 3)
        turn = np.radians(30.0 * np.array(hours, dtype=float))
        # rotating the facing direction clockwise by 30 h degrees (seen from above)
        self.rot = np.stack([np.stack([np.cos(turn), np.sin(turn)], -1),
                             np.stack([-np.sin(turn), np.cos(turn)], -1)], -2)
        i, j = np.triu_indices(n, 1)
        self.sep, self.sep_min = np.stack([i, j], 1), self.heights[i] + self.heights[j]

    def _dist(self, X, pairs):
        d = X[pairs[:, 0]] - X[pairs[:, 1]]
        dz = self.heights[pairs[:, 0]] - self.heights[pairs[:, 1]]
        r = np.sqrt((d * d).sum(1) + dz * dz)
        return r, d / np.maximum(r, 1e-12)[:, None]  # the gradient w.r.t. the first point

    @staticmethod
    def _spread(grad, pairs, g):
        np.add.at(grad, pairs[:, 0], g)
        np.add.at(grad, pairs[:, 1], -g)

    def loss(self, x, scale, slack):
        """The penalty and its gradient; `slack` scales every margin (1 at first)."""
        X = x.reshape(self.n, 2)
        margin = DISTANCE_MARGIN * slack
        grad = np.zeros_like(X)
        total = 0.0
        if len(self.P):
            dp, up = self._dist(X, self.P)
            dq, uq = self._dist(X, self.Q)
            g = (self.A - margin) * dp - (self.B + margin) * dq
            v = np.minimum(g, 0.0)
            total += (v * v).sum()
            self._spread(grad, self.P, (2 * v * (self.A - margin))[:, None] * up)
            self._spread(grad, self.Q, (-2 * v * (self.B + margin))[:, None] * uq)
        if len(self.axial):
            d = X[self.axial[:, 0]] - X[self.axial[:, 1]]
            v = np.minimum((d * self.axial_dir).sum(1) - AXIAL_MARGIN - AXIAL_SLACK * slack,
                           0.0)
            total += (v * v).sum()
            self._spread(grad, self.axial, (2 * v)[:, None] * self.axial_dir)
        if len(self.clock):
            total += self._clock(X, grad, np.cos(np.radians(15.0 - CLOCK_MARGIN_DEG * slack)))
        ds, us = self._dist(X, self.sep)
        v = np.minimum(ds - self.sep_min, 0.0)
        total += (v * v).sum()
        self._spread(grad, self.sep, (2 * v)[:, None] * us)
        centred = X - X.mean(0)
        excess = (centred * centred).sum(1).mean() - scale * scale
        total += SCALE_WEIGHT * excess * excess
        grad += SCALE_WEIGHT * 2 * excess * (2 * centred / self.n)
        return total, grad.ravel()

    def _clock(self, X, grad, cos_inside):
        """cos(angle between the target and the hour's direction) >= cos(15 deg - margin)."""
        target, ref1, ref2 = (self.clock[:, k] for k in range(3))
        t = X[target] - X[ref1]
        c = np.einsum("kij,kj->ki", self.rot, X[ref2] - X[ref1])
        nt = np.maximum(np.sqrt((t * t).sum(1)), 1e-12)
        nc = np.maximum(np.sqrt((c * c).sum(1)), 1e-12)
        cos = (t * c).sum(1) / (nt * nc)
        v = np.minimum(cos - cos_inside, 0.0)
        w = 2 * CLOCK_WEIGHT * v
        dt = c / (nt * nc)[:, None] - cos[:, None] * t / (nt * nt)[:, None]
        dc = t / (nt * nc)[:, None] - cos[:, None] * c / (nc * nc)[:, None]
        df = np.einsum("kji,kj->ki", self.rot, dc)  # R^T dc
        np.add.at(grad, target, w[:, None] * dt)
        np.add.at(grad, ref2, w[:, None] * df)
        np.add.at(grad, ref1, -w[:, None] * (dt + df))
        return CLOCK_WEIGHT * (v * v).sum()


def solve(problem: Problem, facts, seed: int = 0, restarts: int = RESTARTS) -> np.ndarray:
    """(n, 2) ground positions satisfying the usable facts as far as the solver finds;
    the same positions for the same inputs (seeded starts, see the module doc)."""
    from scipy.optimize import minimize

    usable = problem.usable(facts)
    compiled = _Compiled(problem, usable)
    n = len(problem.ids)
    scale = placement_rms(n)
    g = np.random.Generator(np.random.PCG64(seed))
    best = None
    for _ in range(restarts):
        x = ((g.random((n, 2)) * 2.0 - 1.0) * scale * 1.5 ** 0.5).ravel()
        for slack in SLACKS:  # smaller margins only while something is left unsatisfied
            found = minimize(compiled.loss, x, args=(scale, slack), jac=True,
                             method="L-BFGS-B", options={"maxiter": 3000})
            x = found.x
            X = x.reshape(n, 2)
            misses = int((~satisfied(problem, usable, X)).sum())
            if misses == 0:
                break
        key = (misses, float(found.fun))
        if best is None or key < best[0]:
            best = (key, X)
        if misses == 0:
            break
    return best[1]


def satisfied(problem: Problem, facts, positions) -> np.ndarray:
    """Per usable fact (Problem.usable order), whether the layout makes it true by its
    definition (FORMAT 6.4; axial by its sign and the 0.2-unit margin)."""
    pos = {obj: k for k, obj in enumerate(problem.ids)}
    X = np.asarray(positions, dtype=float)
    centroids = np.column_stack([X, np.asarray(problem.heights, dtype=float)])

    def dist(a, b):
        return float(exact.norm(centroids[pos[a]] - centroids[pos[b]]))

    out = []
    for f in problem.usable(facts):
        o = f.objects
        if f.type == "qrr":
            ok = compare(dist(o[0], o[1]), dist(o[2], o[3]), problem.tau) == f.value
        elif f.type == "closer":
            ok = compare(dist(o[0], o[1]), dist(o[0], o[2]), problem.tau) == f.value
        elif f.type == "axial":
            name, sign = AXIAL_SIGNS[f.value]
            d = X[pos[o[0]]] - X[pos[o[1]]]
            along = float(exact.dot(d, np.asarray(problem.directions[f.context][name][:2])))
            ok = sign * along > AXIAL_MARGIN
        else:
            ok = clock_hour(X[pos[o[0]]], X[pos[o[1]]], X[pos[o[2]]]) == int(f.value)
        out.append(ok)
    return np.array(out, dtype=bool)


def clock_hour(target, ref1, ref2) -> int:
    """The world clock (FORMAT 6.4.4): at ref1 facing ref2, the hour of target (1..12)."""
    facing, to_target = np.subtract(ref2, ref1), np.subtract(target, ref1)
    angle = (float(exact.atan2_deg(facing[1], facing[0]))
             - float(exact.atan2_deg(to_target[1], to_target[0]))) % 360.0
    return int(clock_hours(angle))


def align(true, estimate, mirror: bool = False) -> np.ndarray:
    """The estimate moved onto the truth by the least-squares similarity (module doc);
    `mirror`: a reflection is allowed too (for relations that cannot tell left from right,
    such as distance comparisons alone)."""
    X, Y = np.asarray(true, dtype=float), np.asarray(estimate, dtype=float)
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    U, D, Vt = np.linalg.svd(Xc.T @ Yc / len(X))
    S = np.eye(2)
    if not mirror:
        S[1, 1] = np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0
    R = U @ S @ Vt
    spread = (Yc * Yc).sum(1).mean()
    s = float((D * np.diag(S)).sum() / spread) if spread > 0 else 0.0
    return s * Yc @ R.T + mx


def nrms(true, estimate, mirror: bool = False) -> float:
    """RMS distance after `align`, divided by the true layout's diameter."""
    X = np.asarray(true, dtype=float)
    residual = X - align(X, estimate, mirror)
    rms = float(np.sqrt((residual * residual).sum(1).mean()))
    diff = X[:, None, :] - X[None, :, :]
    return rms / float(np.sqrt((diff * diff).sum(-1)).max())


MIN_OBJECTS = 3  # fewer listed objects leave no layout to compare after a similarity


def from_prompts(prompts) -> tuple[Problem, np.ndarray]:
    """A scene's problem and its listed objects' true ground positions, from its extraction
    prompts (dataset.extraction_prompts.Prompt; FORMAT 11.2 `layout`)."""
    first = prompts[0]
    directions = {p.context: p.layout["directions"] for p in prompts if p.context != WORLD}
    problem = Problem(tuple(first.objects), np.array(first.layout["heights"], dtype=float),
                      directions, first.layout["tau"])
    return problem, np.array(first.layout["positions"], dtype=float)


def score(rows, replies: dict | None) -> dict:
    """report.json's reconstruction figures, per scene of the prompt rows (exported.
    PromptRow): the layout solved from the gold answers (`replies` None) or from a model's
    (file, index) -> text, the share of its relations the layout satisfies, the share of the
    gold relations it satisfies, and its NRMS; per split the median and the worst."""
    scenes: dict = {}
    for row in rows:
        scenes.setdefault((row.split, row.prompt.scene_id), []).append(row)
    out, skipped = [], []
    for (split, scene_id), group in scenes.items():
        prompts = [r.prompt for r in group]
        if len(prompts[0].objects) < MIN_OBJECTS:
            skipped.append(scene_id)
            continue
        problem, truth = from_prompts(prompts)
        gold = [f for p in prompts for f in extraction.gold_facts(p)]
        facts = gold
        if replies is not None:
            said = [replies.get((r.file, r.index)) for r in group]
            parsed = [None if x is None else extraction.parse(x, p.schema, p.context)
                      for x, p in zip(said, prompts, strict=True)]
            facts = [f for found in parsed for f in found or []]
        found = solve(problem, facts)
        used, gold_used = problem.usable(facts), problem.usable(gold)
        out.append({
            "split": split, "scene_id": scene_id, "n_objects": prompts[0].n_objects,
            "objects": len(problem.ids), "relations": len(used),
            "satisfied": float(satisfied(problem, used, found).mean()) if used else None,
            "gold_relations": len(gold_used),
            "gold_satisfied": (float(satisfied(problem, gold_used, found).mean())
                               if gold_used else None),
            "nrms": nrms(truth, found)})
    summary = {}
    for split in dict.fromkeys([r["split"] for r in out] + ["all"] if out else []):
        mine = [r for r in out if split in ("all", r["split"])]
        errors = [r["nrms"] for r in mine]
        summary[split] = {"scenes": len(mine), "median_nrms": float(np.median(errors)),
                          "max_nrms": max(errors),
                          "mean_gold_satisfied": _mean(r["gold_satisfied"] for r in mine)}
    return {"source": "gold" if replies is None else "predicted", "summary": summary,
            "scenes": out, "skipped": skipped}


def _mean(values) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None
