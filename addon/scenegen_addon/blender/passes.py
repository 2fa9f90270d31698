"""The data passes of a render, read back to numpy: the object index (the masks) and the
optional passes of the plan (core.layout.PASSES, `--passes`).

A 16-bit PNG from the compositor clips the index to 1.0 and Blender cannot read a
multilayer EXR back, so each render writes one single-layer float EXR per pass (compat),
which bpy.data.images.load reads (rows bottom to top); each pass's encoder turns it into
the 16-bit values its PNG stores (core.png writes them). A new optional pass is an entry of
OPTIONAL (and of core.layout.PASSES), with its reader and encoder in core.
"""

from collections.abc import Callable
from dataclasses import dataclass

import bpy
import numpy as np

from ..core import depth
from . import compat


@dataclass(frozen=True)
class DataPass:
    """A render pass stored as 16-bit PNGs: the view layer's switch that renders it, the
    Render Layers output the compositor writes to its EXR, and the encoder of the EXR's
    float values into the stored (H, W) uint16 array."""

    switch: str
    output: str
    encode: Callable[[np.ndarray], np.ndarray]


INDEX = DataPass("use_pass_object_index", "Object Index",
                 lambda values: np.rint(values).astype(np.uint16))
# the optional passes by their name in core.layout.PASSES (and in the file names)
OPTIONAL = {
    "depth": DataPass("use_pass_z", "Depth", depth.encode),  # millimetres (core.depth)
}


def enable(view_layer, names: tuple) -> None:
    """Render the index pass and exactly the optional passes `names` (a reused scene
    forgets the last scene's)."""
    setattr(view_layer, INDEX.switch, True)
    for name, data_pass in OPTIONAL.items():
        setattr(view_layer, data_pass.switch, name in names)


class IndexOutput:
    """The compositor output of one scene: the index EXR of each render under `directory`,
    and one EXR beside it per optional pass of `names`."""

    def __init__(self, scene, directory: str, names: tuple = ()):
        self.directory = directory.rstrip("/") + "/"
        self.items = {compat.INDEX_ITEM: INDEX.output,
                      **{name: OPTIONAL[name].output for name in names}}
        self.node = compat.add_index_output(scene, self.directory, self.items)

    def target(self, file_name: str) -> dict[str, str]:
        """Point the next render's EXRs at `file_name`; returns their paths by item (the
        index, then each optional pass by its name)."""
        self.node.file_name = file_name
        return {item: compat.exr_path(self.directory, file_name, item) for item in self.items}


def read_exr(path: str, width: int, height: int) -> np.ndarray:
    """A single-layer float EXR's first channel as (H, W) float32, row 0 = top."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        if tuple(image.size) != (width, height):
            raise RuntimeError(f"pass {path} is {tuple(image.size)}, expected {(width, height)}")
        pixels = np.empty(width * height * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, -1)[::-1, :, 0]


def read(path: str, data_pass: DataPass, width: int, height: int) -> np.ndarray:
    """A pass's EXR as the (H, W) uint16 array its PNG stores, row 0 = top of the image."""
    return data_pass.encode(read_exr(path, width, height))
