"""Object-index masks (and depth maps) from the render: each data pass to a float EXR, read
back to numpy.

A 16-bit PNG from the compositor clips the index to 1.0 and Blender cannot read a
multilayer EXR back, so each render writes one single-layer float EXR per pass (compat),
which bpy.data.images.load reads (rows bottom to top); core.png writes the 16-bit mask and
core.depth encodes the depth map.
"""

import bpy
import numpy as np

from ..core import depth
from . import compat


class IndexOutput:
    """The compositor output of one scene: the index EXR of each render under `directory`,
    and with `depth` its depth EXR beside it."""

    def __init__(self, scene, directory: str, depth: bool = False):
        self.directory = directory.rstrip("/") + "/"
        self.depth = depth
        self.node = compat.add_index_output(scene, self.directory, depth)

    def target(self, file_name: str) -> dict[str, str]:
        """Point the next render's EXRs at `file_name`; returns their paths by item."""
        self.node.file_name = file_name
        items = (compat.INDEX_ITEM, compat.DEPTH_ITEM) if self.depth else (compat.INDEX_ITEM,)
        return {item: compat.exr_path(self.directory, file_name, item) for item in items}


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


def read_index_exr(path: str, width: int, height: int) -> np.ndarray:
    """The object-index EXR as a (H, W) uint16 array, row 0 = top of the image."""
    return np.rint(read_exr(path, width, height)).astype(np.uint16)


def read_depth_exr(path: str, width: int, height: int) -> np.ndarray:
    """The depth EXR as the stored (H, W) uint16 millimetres (core.depth)."""
    return depth.encode(read_exr(path, width, height))
