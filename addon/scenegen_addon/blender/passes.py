"""Object-index masks from the render: the index pass to a float EXR, read back to numpy.

A 16-bit PNG from the compositor clips the index to 1.0 and Blender cannot read a
multilayer EXR back, so each render writes a single-layer float EXR (compat), which
bpy.data.images.load reads (rows bottom to top); core.png writes the 16-bit mask.
"""

import bpy
import numpy as np

from . import compat


class IndexOutput:
    """The compositor output of one scene: one EXR per render under `directory`."""

    def __init__(self, scene, directory: str):
        self.directory = directory.rstrip("/") + "/"
        self.node = compat.add_index_output(scene, self.directory)

    def target(self, file_name: str) -> str:
        """Point the next render's index EXR at `file_name`; returns that EXR's path."""
        self.node.file_name = file_name
        return compat.index_file_path(self.directory, file_name)


def read_index_exr(path: str, width: int, height: int) -> np.ndarray:
    """The object-index EXR as a (H, W) uint16 array, row 0 = top of the image."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        if tuple(image.size) != (width, height):
            raise RuntimeError(
                f"index pass {path} is {tuple(image.size)}, expected {(width, height)}"
            )
        pixels = np.empty(width * height * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    index = pixels.reshape(height, width, -1)[::-1, :, 0]
    return np.rint(index).astype(np.uint16)
