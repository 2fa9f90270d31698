"""SceneSpecs for the Blender-layer tests: hand-placed layouts, and seeded sampled scenes.

Hand layouts are fixed and readable (touching pairs by construction); their lights sit at
the nominal places, aimed by the sampler's own aim_rotation, so the Blender tests also
check that Blender turns a light the way the sampler means.
"""

from scenegen_addon.core import camera, plan, presets, sampling, visibility
from scenegen_addon.core import spec as spec_mod

GLOBAL_SEED = 42


def aimed_lights() -> list[spec_mod.LightSpec]:
    return [
        spec_mod.LightSpec(name, list(location), sampling.aim_rotation(location), energy, size)
        for name, location, energy, size in spec_mod.LIGHTS
    ]


def sampled(split: str, n_objects: int) -> spec_mod.SceneSpec:
    """The first planned scene of `split` with `n_objects` objects (global seed 42)."""
    counts = plan.object_counts(GLOBAL_SEED, split, 2 * len(presets.split_rule(split).levels))
    index = counts.index(n_objects)
    entry = plan.PlannedScene(
        plan.scene_id(split, index),
        split,
        index,
        n_objects,
        presets.split_rule(split).tau,
        plan.scene_seed(GLOBAL_SEED, split, index),
    )
    return sampling.sample_scene(entry, GLOBAL_SEED)


def make_object(i, shape, size, color, material, x, y, yaw=0.0) -> spec_mod.ObjectSpec:
    return spec_mod.ObjectSpec(
        id=f"obj_{i}",
        shape=shape,
        size=size,
        size_value=spec_mod.OBJECT_SIZES[size],
        color=color,
        rgb=list(spec_mod.COLORS[color]),
        material=material,
        position=[float(x), float(y)],
        rotation=float(yaw),
    )


def make_scene(scene_id: str, rows) -> spec_mod.SceneSpec:
    """rows: (shape, size, colour, material, x, y, yaw) per object, in object order."""
    objects = [make_object(i, *row) for i, row in enumerate(rows)]
    views = camera.rig(*presets.CANONICAL_RESOLUTION)
    outside = [o.id for o in objects if not visibility.in_frame(o, views)]
    assert not outside, f"test layout leaves the canonical frame: {outside}"
    split, index = scene_id.rsplit("_", 1)
    return spec_mod.SceneSpec(scene_id, split, int(index), 7, 0, 0.1, objects, aimed_lights())


# A large cylinder and a small sphere touch (centre distance 0.35 + 0.175); a small cube
# touches a large sphere face-on (yaw 0, centre distance 0.35 + 0.175 along x).
EIGHT = [
    ("cube", "large", "red", "metal", 0.0, 0.0, 30.0),
    ("cylinder", "large", "yellow", "rubber", -1.4, 1.2, 0.0),
    ("sphere", "small", "cyan", "rubber", -1.4 + 0.525, 1.2, 0.0),
    ("sphere", "large", "blue", "metal", 1.2, -1.3, 0.0),
    ("cube", "small", "green", "rubber", 1.2 + 0.525, -1.3, 0.0),
    ("cylinder", "small", "purple", "metal", 1.9, 1.6, 0.0),
    ("cube", "large", "gray", "rubber", -2.0, -0.6, 10.0),
    ("sphere", "small", "brown", "rubber", 0.6, 1.5, 0.0),
]

_SHAPES = ("cube", "sphere", "cylinder")
_COLORS = tuple(spec_mod.COLORS)


def fifteen() -> list[tuple]:
    """15 objects on a 4x4 grid of spacing 1.2 (one cell empty), every attribute in turn."""
    rows = []
    for i in range(15):
        r, c = divmod(i, 4)
        rows.append(
            (
                _SHAPES[i % 3],
                "large" if i % 4 else "small",
                _COLORS[i % 8],
                "metal" if i % 5 in (1, 3) else "rubber",
                -1.8 + 1.2 * c + 0.1 * (r % 2),
                -1.8 + 1.2 * r,
                23.0 * i,
            )
        )
    return rows
