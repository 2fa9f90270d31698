"""Read a finished scenegen dataset in plain Python: `open_dataset(DIR)` -> splits -> scenes.

Pure (standard library and numpy, PNGs decoded by core.png) so it works in any Python,
Blender's own included, with nothing to install. Metadata is read when a scene is opened,
images and masks when first touched; nothing is kept per split, so iterating a large split
holds one scene at a time.

It trusts nothing it reads: every path from a split file or a record goes through
core.layout.inside (no absolute path, no '..', no symbolic link: nothing outside the
dataset is read), records are parsed strictly (no NaN, no runaway nesting), and PNGs are
decoded by core.png's bounded reader at the record's image_size. What cannot be read so
raises Unreadable, naming the file and why; a folder that is not merged (or whose merge a
rerun of the build has made stale) raises NotMerged.

Cameras follow the OpenCV convention of FORMAT 5: x_cam = R @ x_world + t, the camera looks
along +z with x to the right and y down; a pixel is (u, v) = (x/z, y/z) through K, u to the
right, v down, origin at the image's top-left corner, pixel centres at half-integers
(pixel [row i, column j] has its centre at u = j + 0.5, v = i + 0.5). A depth map (a
dataset built with --passes depth) holds z of that camera frame, in metres.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..core import camera, depth, layout, png, presets
from ..core.constraints import VIEW_TYPES, WORLD_TYPES

WORLD = "world"


class Unreadable(ValueError):
    """A file of the dataset that cannot be read as FORMAT describes it (a path leading out
    of the dataset, a malformed record, a PNG that does not decode at its record's size);
    the message names the file and why."""


class NotMerged(FileNotFoundError):
    """The folder is not a merged dataset, or a rerun of its build has not merged yet."""


def read_file(root: Path, rel, field: str, read):
    """`read(path)` of the file `rel` (read from `field` of a split file or record) inside
    `root`: the path through layout.inside, any fault as Unreadable naming the field and
    the file ("view_1 image: 'images/...png': why")."""
    try:
        path = layout.inside(root, rel, field)
    except layout.UnsafePath as exc:
        raise Unreadable(str(exc)) from None
    try:
        return read(path)
    except (OSError, ValueError) as exc:  # NotAFile, PNG and JSON faults
        why = str(exc).removeprefix(f"{path}: ")
        raise Unreadable(f"{field}: {rel!r}: {why}") from None


# --- constraints: one typed record per FORMAT 6.4 entry ----------------------------------------

@dataclass(frozen=True)
class QRR:
    """Distance comparison of two disjoint pairs: |pair1| `comparator` |pair2|."""

    type: ClassVar[str] = "qrr"
    context: str
    pair1: tuple[str, str]
    pair2: tuple[str, str]
    metric: str
    comparator: str
    ratio: float | None
    difficulty: int
    boundary_flag: bool

    @property
    def objects(self) -> tuple[str, ...]:
        return (*self.pair1, *self.pair2)


@dataclass(frozen=True)
class TRR:
    """Clock hour of `target` standing at `ref1` facing `ref2` (12 o'clock)."""

    type: ClassVar[str] = "trr"
    context: str
    target: str
    ref1: str
    ref2: str
    hour: int
    quadrant: int
    angle_deg: float

    @property
    def objects(self) -> tuple[str, ...]:
        return (self.target, self.ref1, self.ref2)


@dataclass(frozen=True)
class PairRelation:
    """obj1 stands in `relation` to obj2 (the shape of axial and topology records)."""

    type: ClassVar[str] = ""
    context: str
    obj1: str
    obj2: str
    relation: str

    @property
    def objects(self) -> tuple[str, ...]:
        return (self.obj1, self.obj2)


@dataclass(frozen=True)
class Axial(PairRelation):
    """obj1 is `relation` (left_of, right_of, in_front_of, behind) obj2 in one view."""

    type: ClassVar[str] = "axial"


@dataclass(frozen=True)
class Topology(PairRelation):
    """Footprints of obj1 and obj2: disjoint, touching or overlapping."""

    type: ClassVar[str] = "topology"


@dataclass(frozen=True)
class Size:
    """`bigger` is larger than `smaller` (world: size label; view: silhouette pixels)."""

    type: ClassVar[str] = "size"
    context: str
    bigger: str
    smaller: str

    @property
    def objects(self) -> tuple[str, ...]:
        return (self.bigger, self.smaller)


@dataclass(frozen=True)
class Closer:
    """`closer` is nearer to `anchor` than `farther` is (centroid distances)."""

    type: ClassVar[str] = "closer"
    context: str
    anchor: str
    closer: str
    farther: str

    @property
    def objects(self) -> tuple[str, ...]:
        return (self.anchor, self.closer, self.farther)


@dataclass(frozen=True)
class Occlusion:
    """`occluder` hides `pixels` pixels (a `fraction` of the silhouette) of `occluded`."""

    type: ClassVar[str] = "occlusion"
    context: str
    occluder: str
    occluded: str
    pixels: int
    fraction: float

    @property
    def objects(self) -> tuple[str, ...]:
        return (self.occluder, self.occluded)


CONSTRAINT_TYPES = {cls.type: cls for cls in (QRR, TRR, Axial, Topology, Size, Closer, Occlusion)}
Constraint = QRR | TRR | Axial | Topology | Size | Closer | Occlusion


def _typed(kind: str, context: str, raw: dict) -> Constraint:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return CONSTRAINT_TYPES[kind](context=context, **values)


# --- objects and cameras ---------------------------------------------------------------------

@dataclass(frozen=True)
class Object:
    """A scene object (FORMAT 6.2); `coords_3d` is the record's `3d_coords` (bottom centre)."""

    id: str
    index: int
    shape: str
    size: str
    size_value: float
    color: str
    rgb: tuple[int, int, int]
    material: str
    coords_3d: tuple[float, float, float]
    centroid: tuple[float, float, float]
    rotation: float

    @classmethod
    def from_record(cls, raw: dict) -> "Object":
        return cls(
            id=raw["id"], index=int(raw["id"].split("_")[1]), shape=raw["shape"],
            size=raw["size"], size_value=raw["size_value"], color=raw["color"],
            rgb=tuple(raw["rgb"]), material=raw["material"], coords_3d=tuple(raw["3d_coords"]),
            centroid=tuple(raw["centroid"]), rotation=raw["rotation"],
        )


@dataclass(frozen=True)
class ViewObject:
    """An object as one view sees it (FORMAT 6.3); bbox is [u0, v0, u1, v1), None if hidden."""

    id: str
    pixel_coords: tuple[float, float, float]
    bbox: tuple[int, int, int, int] | None
    silhouette_pixels: int
    visible_pixels: int
    visible_fraction: float
    in_frame: bool

    @classmethod
    def from_record(cls, raw: dict) -> "ViewObject":
        bbox = raw["bbox"]
        return cls(
            id=raw["id"], pixel_coords=tuple(raw["pixel_coords"]),
            bbox=None if bbox is None else tuple(bbox),
            silhouette_pixels=raw["silhouette_pixels"], visible_pixels=raw["visible_pixels"],
            visible_fraction=raw["visible_fraction"], in_frame=raw["in_frame"],
        )


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated view, OpenCV convention: x_cam = R @ x_world + t (x right, y down, looking
    along +z); (u, v, 1) ~ K @ x_cam, pixel centres at half-integers, origin top-left.
    matrix_world is Blender's camera-to-world matrix (camera looks along its -Z there)."""

    K: np.ndarray  # (3, 3)
    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,)
    position: np.ndarray  # (3,) world position of the optical centre, = -R.T @ t
    look_at: np.ndarray  # (3,)
    matrix_world: np.ndarray  # (4, 4)
    resolution: tuple[int, int]  # (W, H)
    hfov_deg: float
    azimuth: float
    elevation: float
    distance: float
    lens_mm: float
    sensor_width_mm: float

    @classmethod
    def from_record(cls, raw: dict) -> "Camera":
        def arr(key):
            return np.array(raw[key], dtype=float)

        return cls(
            K=arr("K"), R=arr("R"), t=arr("t"), position=arr("position"), look_at=arr("look_at"),
            matrix_world=arr("matrix_world"), resolution=tuple(raw["resolution"]),
            hfov_deg=raw["hfov_deg"], azimuth=raw["azimuth"], elevation=raw["elevation"],
            distance=raw["distance"], lens_mm=raw["lens_mm"],
            sensor_width_mm=raw["sensor_width_mm"],
        )

    def project(self, points) -> np.ndarray:
        """World points (N, 3) -> (N, 3) of u, v (pixels) and depth along the optical axis."""
        cam = np.asarray(points, dtype=float).reshape(-1, 3) @ self.R.T + self.t
        uv = cam @ self.K.T
        return np.stack([uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2], cam[:, 2]], axis=1)


@dataclass(eq=False)
class View:
    """One of the four views: its camera, images and per-view object records."""

    root: Path
    index: int
    view_id: str
    camera: Camera
    directions: dict[str, tuple[float, float, float]]  # unit ground vectors (FORMAT 6.3)
    objects: list[ViewObject]
    image_path: str  # relative to the dataset folder
    mask_path: str
    depth_path: str | None = None  # None: the dataset was built without --passes depth
    image_size: tuple[int, int] | None = None  # the record's (W, H), which every file has

    def _read(self, rel: str, field: str, read) -> np.ndarray:
        return read_file(self.root, rel, f"{self.view_id} {field}",
                         lambda path: read(path, self.image_size))

    @cached_property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, row 0 = top."""
        return self._read(self.image_path, "image", png.read_png)

    @cached_property
    def mask(self) -> np.ndarray:
        """(H, W) uint16 object index: 0 = background, i + 1 = obj_i (front-most surface)."""
        return self._read(self.mask_path, "mask", png.read_png16)

    @cached_property
    def depth(self) -> np.ndarray:
        """(H, W) float32 metres along the camera's z axis (the OpenCV frame above) of the
        front-most surface at each pixel centre, to the millimetre; nan where the pixel sees
        no surface; 65.535 means that far or farther (core.depth)."""
        if self.depth_path is None:
            raise ValueError("this dataset has no depth maps: build it with --passes depth")
        return depth.metres(self._read(self.depth_path, "depth map", png.read_png16))


# --- scenes, splits, dataset -----------------------------------------------------------------

def _names(value, allowed: Sequence[str], what: str) -> set[str] | None:
    if value is None:
        return None
    names = {value} if isinstance(value, str) else set(value)
    unknown = sorted(names - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}: allowed are {', '.join(allowed)}")
    return names


@dataclass(eq=False)
class Scene:
    """One scene: its record (FORMAT 6), typed objects, views and constraints."""

    root: Path
    record: dict = field(repr=False)
    depth_paths: list[str] | None = field(default=None, repr=False)  # the split entry's

    def __post_init__(self):
        r = self.record
        self.scene_id: str = r["scene_id"]
        self.split: str = r["split"]
        self.index: int = r["index"]
        self.seed: int = r["seed"]
        self.tau: float = r["tau"]
        self.n_objects: int = r["n_objects"]
        self.image_size: tuple[int, int] = presets.check_resolution(*r["image_size"])
        self.objects = [Object.from_record(o) for o in r["objects"]]
        self.views = [
            View(self.root, k, v["view_id"], Camera.from_record(v["camera"]),
                 {name: tuple(vec) for name, vec in v["directions"].items()},
                 [ViewObject.from_record(o) for o in v["objects"]], v["image"], v["mask"],
                 self.depth_paths[k] if self.depth_paths else None, self.image_size)
            for k, v in enumerate(r["views"])
        ]
        self._by_id = {o.id: o for o in self.objects}
        self._constraints: dict[tuple[str, str], list] = {}

    @classmethod
    def from_entry(cls, root: Path, entry: dict, field: str = "split entry") -> "Scene":
        """The scene an entry of a split file names (its record read now); `field` says
        where the entry is, for the messages."""
        depth_paths = entry.get("depth")
        if depth_paths is not None and not (isinstance(depth_paths, list)
                                            and len(depth_paths) == camera.N_VIEWS):
            raise Unreadable(f"{field}: depth is {depth_paths!r}, not 4 paths")
        return read_scene(root, entry.get("metadata"), f"{field} metadata", depth_paths)

    def __repr__(self) -> str:
        return f"Scene({self.scene_id!r}, n_objects={self.n_objects})"

    def object(self, object_id: str) -> Object:
        return self._by_id[object_id]

    @property
    def contexts(self) -> list[str]:
        """"world", then "view_0" .. "view_3"."""
        return [WORLD] + [v.view_id for v in self.views]

    @property
    def cameras(self) -> list[Camera]:
        return [v.camera for v in self.views]

    @cached_property
    def single_view_image(self) -> np.ndarray:
        """The single-view image (view 0's camera and pixels), (H, W, 3) uint8."""
        return read_file(self.root, self.single_view_path, "single_view image",
                         lambda path: png.read_png(path, self.image_size))

    @property
    def single_view_path(self) -> str:
        return self.record["single_view"]["image"]

    def _raw(self, context: str) -> dict:
        if context == WORLD:
            return self.record["constraints"]["world"]
        return self.record["constraints"]["views"][int(context.split("_")[1])]

    def constraints(self, type=None, context=None) -> list[Constraint]:
        """Typed constraint records, world first then views, each in record order.

        `type`: a name of CONSTRAINT_TYPES or several; `context`: "world", "view_k" or
        several. None means all. View contexts have no topology or closer; world has no
        axial or occlusion (asking for them gives an empty list).
        """
        types = _names(type, tuple(CONSTRAINT_TYPES), "constraint type")
        contexts = _names(context, self.contexts, "context")
        out = []
        for ctx in self.contexts:
            if contexts is not None and ctx not in contexts:
                continue
            kinds = WORLD_TYPES if ctx == WORLD else VIEW_TYPES
            for kind in kinds:
                if types is not None and kind not in types:
                    continue
                key = (ctx, kind)
                if key not in self._constraints:
                    try:
                        raws = self._raw(ctx)[kind]
                        self._constraints[key] = [_typed(kind, ctx, raw) for raw in raws]
                    except (KeyError, TypeError, IndexError, AttributeError) as exc:
                        raise Unreadable(f"{self.scene_id}: its {ctx} {kind} records are not "
                                         f"those of FORMAT 6.4 ({exc!r})") from None
                out.extend(self._constraints[key])
        return out


class Split(Sequence):
    """The complete scenes of one split, in index order; scene = split[i] or split[scene_id]."""

    def __init__(self, root: Path, name: str, entries: list[dict]):
        self.root, self.name, self.entries = root, name, entries
        self._position = {e["scene_id"]: i for i, e in enumerate(entries)}

    def __repr__(self) -> str:
        return f"Split({self.name!r}, {len(self)} scenes)"

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def scene_ids(self) -> list[str]:
        return [e["scene_id"] for e in self.entries]

    def __getitem__(self, key):
        if isinstance(key, slice):
            return [self[i] for i in range(*key.indices(len(self)))]
        if isinstance(key, str):
            if key not in self._position:
                raise KeyError(f"no scene {key!r} in split {self.name!r}")
            key = self._position[key]
        return Scene.from_entry(self.root, self.entries[key],
                                f"{layout.split_file(self.name)} entry {key}")

    def __iter__(self) -> Iterator[Scene]:
        for i in range(len(self)):
            yield self[i]


class Dataset(Mapping):
    """A merged scenegen folder: a mapping split name -> Split, in FORMAT 2.1 order."""

    def __init__(self, root: Path, splits: dict[str, Split], info: dict | None):
        self.root, self.splits, self.info = root, splits, info

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {len(s)}" for name, s in self.splits.items())
        return f"Dataset({str(self.root)!r}, {{{sizes}}})"

    def __getitem__(self, name: str) -> Split:
        if name not in self.splits:
            raise KeyError(f"no split {name!r}: this dataset has {', '.join(self.splits)}")
        return self.splits[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)

    def scenes(self, splits: Iterable[str] | None = None) -> Iterator[Scene]:
        """Every scene of the given splits (all by default), split by split."""
        for name in self if splits is None else splits:
            yield from self[name]


def read_scene(root: Path, rel, field: str, depth_paths=None) -> Scene:
    """The scene whose record is the file `rel` inside `root` (a path read from `field`)."""
    record = read_file(root, rel, field, layout.read_json)
    try:
        return Scene(root, record, depth_paths)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise Unreadable(f"{rel}: not a scene record as FORMAT 6 describes it ({exc!r})") from None


def open_scene(root, scene_id: str) -> Scene:
    """A complete scene of any folder holding it, by id (a finished build or one still
    running): the scene picture's way in."""
    rel = layout.scene_paths(layout.check_scene_id(scene_id))["metadata"]
    return read_scene(Path(root), rel, f"the metadata of {scene_id}")


def _split_entries(root: Path, name: str, count) -> list[dict]:
    """splits/<name>.json: a list of `count` entries, each a distinct scene id's."""
    rel = layout.split_file(name)
    entries = read_file(root, rel, f"{layout.DATASET_INFO} lists split {name}", layout.read_json)
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("scene_id"), str) for e in entries):
        raise Unreadable(f"{rel}: not a list of scene entries (FORMAT 7.1)")
    if len({e["scene_id"] for e in entries}) != len(entries):
        raise Unreadable(f"{rel}: lists a scene more than once")
    if len(entries) != count:
        raise Unreadable(f"{rel}: {len(entries)} scenes, {layout.DATASET_INFO} says {count!r}")
    return entries


def open_dataset(path) -> Dataset:
    """Open a merged dataset folder (the build's --output); reads only dataset_info.json
    and the split files it names. NotMerged when the build has not merged it, or a rerun
    has changed scenes since its last merge (FORMAT 1.3); Unreadable when its index files
    are not FORMAT 7's."""
    root = Path(path)
    pending = layout.merge_pending(root)
    if pending:
        raise NotMerged(f"{root}: {pending}")
    if layout.path_fault(root, layout.DATASET_INFO) == "missing":
        raise NotMerged(f"{root} is not a merged scenegen dataset: it has no "
                        f"{layout.DATASET_INFO} (run the build, or the merge, to completion "
                        "first)")
    info = read_file(root, layout.DATASET_INFO, layout.DATASET_INFO, layout.read_json)
    sizes = info.get("splits") if isinstance(info, dict) else None
    if not isinstance(sizes, dict) or not set(sizes) <= set(presets.SPLITS):
        raise Unreadable(f"{layout.DATASET_INFO}: its splits are not {{split: scenes}} of "
                         "FORMAT 7.2")
    splits = {name: Split(root, name, _split_entries(root, name, sizes[name]))
              for name in presets.SPLITS if name in sizes}
    return Dataset(root, splits, info)
