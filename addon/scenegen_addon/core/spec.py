"""SceneSpec: the plain data of one sampled scene (FORMAT 4 and 6.2).

The Blender layer builds exactly this, and the ground truth is computed from it. It
serialises to JSON and back without loss (floats keep their shortest round-trip repr).
"""

from dataclasses import asdict, dataclass

from . import shapes

GROUND_SIZE = 100.0  # the ground plane: GROUND_SIZE x GROUND_SIZE at z = 0, centred on 0
OBJECT_SIZES = {"large": 0.7, "small": 0.35}  # scale factor of each size label
MATERIALS = {
    "rubber": {"metallic": 0.0, "roughness": 0.7},
    "metal": {"metallic": 1.0, "roughness": 0.2},
}
COLORS = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
# Nominal light placements (name, location, energy W, size) before the per-scene jitter.
LIGHTS = (
    ("key", (-5.0, -5.0, 8.0), 500.0, 3.0),
    ("fill", (5.0, -5.0, 5.0), 200.0, 5.0),
    ("back", (0.0, 8.0, 6.0), 300.0, 3.0),
)


@dataclass
class ObjectSpec:
    id: str
    shape: str
    size: str
    size_value: float
    color: str
    rgb: list[int]
    material: str
    position: list[float]  # [x, y]: bottom centre on the ground
    rotation: float  # yaw in degrees about +Z, in [0, 360)

    @property
    def coords_3d(self) -> list[float]:
        return [self.position[0], self.position[1], 0.0]

    @property
    def centroid(self) -> list[float]:
        return [self.position[0], self.position[1], self.size_value / 2]

    def footprint(self) -> shapes.Footprint:
        return shapes.footprint(self.shape, self.size_value, self.position, self.rotation)

    def world_vertices(self):
        return shapes.world_vertices(self.shape, self.size_value, self.position, self.rotation)

    def record(self) -> dict:
        """The object entry of FORMAT 6.2."""
        return {
            "id": self.id,
            "shape": self.shape,
            "size": self.size,
            "size_value": self.size_value,
            "color": self.color,
            "rgb": list(self.rgb),
            "material": self.material,
            "3d_coords": self.coords_3d,
            "centroid": self.centroid,
            "rotation": self.rotation,
        }


@dataclass
class LightSpec:
    name: str
    location: list[float]
    rotation: list[float]  # XYZ Euler, degrees; aims the light's -Z at the origin
    energy: float
    size: float


@dataclass
class SceneSpec:
    scene_id: str
    split: str
    index: int
    seed: int  # the seed actually used (of retry `retries`)
    retries: int
    tau: float
    objects: list[ObjectSpec]
    lights: list[LightSpec]
    restarts: int = 0  # placement restarts of the accepted retry (diagnostics only)

    @property
    def n_objects(self) -> int:
        return len(self.objects)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "SceneSpec":
        """The scene a metadata document (FORMAT 6) describes; position = 3d_coords[:2]."""
        objects = [
            ObjectSpec(
                id=o["id"], shape=o["shape"], size=o["size"], size_value=o["size_value"],
                color=o["color"], rgb=list(o["rgb"]), material=o["material"],
                position=list(o["3d_coords"][:2]), rotation=o["rotation"],
            )
            for o in record["objects"]
        ]
        return cls(
            record["scene_id"], record["split"], record["index"], record["seed"],
            record["retries"], record["tau"], objects,
            [LightSpec(**light) for light in record["lights"]],
        )
