"""Hand-made scenes and synthetic masks for the ground-truth tests and benchmark.

Layouts are placed by hand (no sampling), so the constraint tests do not depend on the
sampler; masks are painted from silhouettes, farthest object first, in the gate's depth
order (visibility.front_of).
"""

import numpy as np
from scenegen_addon.core import spec as spec_mod
from scenegen_addon.core import visibility

SHAPE_CYCLE = ("cube", "sphere", "cylinder")
COLOR_CYCLE = tuple(spec_mod.COLORS)


def make_spec(placements, tau=0.1, split="train", index=0) -> spec_mod.SceneSpec:
    """placements: (x, y, shape, size_label, yaw_deg) per object, in object order."""
    objects = [
        spec_mod.ObjectSpec(
            id=f"obj_{i}",
            shape=shape,
            size=size,
            size_value=spec_mod.OBJECT_SIZES[size],
            color=COLOR_CYCLE[i % len(COLOR_CYCLE)],
            rgb=list(spec_mod.COLORS[COLOR_CYCLE[i % len(COLOR_CYCLE)]]),
            material="rubber" if i % 2 else "metal",
            position=[float(x), float(y)],
            rotation=float(yaw),
        )
        for i, (x, y, shape, size, yaw) in enumerate(placements)
    ]
    lights = [
        spec_mod.LightSpec(name, list(loc), [10.0, 20.0, 30.0], energy, size)
        for name, loc, energy, size in spec_mod.LIGHTS
    ]
    return spec_mod.SceneSpec(
        scene_id=f"{split}_{index:05d}",
        split=split,
        index=index,
        seed=12345,
        retries=0,
        tau=tau,
        objects=objects,
        lights=lights,
    )


def grid_spec(n: int, tau=0.1) -> spec_mod.SceneSpec:
    """n <= 16 objects on a jittered 4x4 grid of spacing 1.1: inside every frame, some hidden."""
    jitter = np.random.default_rng(n).random((16, 3))
    placements = []
    for i in range(n):
        row, col = divmod(i, 4)
        x = -1.65 + 1.1 * col + 0.2 * (jitter[i, 0] - 0.5)
        y = -1.65 + 1.1 * row + 0.2 * (jitter[i, 1] - 0.5)
        size = "large" if i % 3 else "small"
        placements.append((x, y, SHAPE_CYCLE[i % 3], size, 360.0 * jitter[i, 2]))
    return make_spec(placements, tau=tau)


def paint_mask(spec, view, sils=None) -> np.ndarray:
    """(H, W) uint16 object-index mask: silhouettes painted back to front."""
    if sils is None:
        sils = visibility.silhouettes(spec.objects, view)
    front = visibility.front_of(spec.objects, view)
    mask = np.zeros((view.height, view.width), dtype=np.uint16)
    # objects with more objects in front of them are farther back: paint them first
    for i in np.argsort(-front.sum(axis=0), kind="stable"):
        s = sils[i]
        h, w = s.mask.shape
        window = mask[s.y0 : s.y0 + h, s.x0 : s.x0 + w]
        window[s.mask] = i + 1
    return mask
