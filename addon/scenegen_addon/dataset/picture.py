"""One picture of a scene for people: the four views, ids, mask outlines and a few relations.

A person checking a dataset wants to see at a glance that the labels fit the pixels: each
view is drawn as rendered, each object's mask outlined (every object pixel with a 4-neighbour
of another mask value), and each object's index written in a dark rim (so the object still
shows between the strokes) centred on the pixel of its projected centroid (the record's
pixel_coords), far objects first so a nearer label is never hidden. Below the 2x2 grid, a
panel names the objects and states the relations of dataset.highlights. Drawing only: it stores
nothing and decides no label.
"""

from dataclasses import dataclass, field

import numpy as np

from . import font, highlights
from .loader import Scene

MARGIN = 6  # around the grid and between views
LINE = font.HEIGHT + 3  # a text line's height, with its spacing
BACKGROUND = (28, 28, 28)
TEXT = (235, 235, 235)
OUTLINE = (255, 255, 255)
LABEL_BOX = (0, 0, 0)
LABEL_TEXT = (255, 230, 0)
PAD = 1  # label box padding around the digits


@dataclass(frozen=True)
class Label:
    view: int
    object_id: str
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in the picture
    centroid: tuple[int, int]  # (x, y) of the centroid's pixel in the picture


@dataclass(frozen=True)
class Text:
    x: int
    y: int
    text: str
    colour: tuple[int, int, int]


@dataclass
class Picture:
    """The pixels and where everything was drawn (for tests and for anyone reusing it)."""

    pixels: np.ndarray  # (H, W, 3) uint8
    cells: list[tuple[int, int]] = field(default_factory=list)  # each view's top-left (x, y)
    scale: int = 1
    labels: list[Label] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)

    def write(self, text: Text) -> None:
        font.draw(self.pixels, text.text, text.x, text.y, text.colour)
        self.texts.append(text)


def outline(mask: np.ndarray) -> np.ndarray:
    """Object pixels (mask > 0) that have a 4-neighbour inside the image of another value."""
    edge = np.zeros(mask.shape, dtype=bool)
    horizontal = mask[:, 1:] != mask[:, :-1]
    vertical = mask[1:, :] != mask[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return edge & (mask > 0)


def upscale(array: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel repeated into a scale x scale block (masks stay exact)."""
    return array if scale == 1 else np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def legend_lines(names: dict[str, str]) -> list[str]:
    return ["Objects: " + ", ".join(names.values()) + "."]


def scene_picture(scene: Scene, scale: int = 1) -> Picture:
    """The picture of one rendered scene; views upscaled `scale` times (pixel copies)."""
    width, height = scene.image_size[0] * scale, scene.image_size[1] * scale
    grid_width = 2 * width + 3 * MARGIN
    columns = (grid_width - 2 * MARGIN + 1) // font.ADVANCE
    names = highlights.object_names(scene)
    relations = highlights.relation_lines(scene, names=names)
    panel = highlights.wrap(legend_lines(names) + relations, columns)
    header = f"{scene.scene_id}: {scene.n_objects} objects, tau {scene.tau:g}"
    key = "yellow numbers: object indices (3 = obj_3); white lines: mask outlines"
    top = MARGIN + 2 * LINE
    cell_height = LINE + height
    grid_bottom = top + 2 * (cell_height + MARGIN)
    pixels = np.empty((grid_bottom + LINE * len(panel) + MARGIN, grid_width, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    picture = Picture(pixels, scale=scale)
    picture.write(Text(MARGIN, MARGIN, header, TEXT))
    picture.write(Text(MARGIN, MARGIN + LINE, highlights.wrap([key], columns)[0], TEXT))
    for k, view in enumerate(scene.views):
        x = MARGIN + (k % 2) * (width + MARGIN)
        y = top + (k // 2) * (cell_height + MARGIN)
        picture.write(Text(x, y, f"view {k}", TEXT))
        picture.cells.append((x, y + LINE))
        _draw_view(picture, k, view, x, y + LINE)
    for row, line in enumerate(panel):
        picture.write(Text(MARGIN, grid_bottom + row * LINE, line, TEXT))
    return picture


def _draw_view(picture: Picture, k: int, view, x: int, y: int) -> None:
    scale = picture.scale
    image, mask = upscale(view.image, scale), upscale(view.mask, scale)
    cell = picture.pixels[y : y + image.shape[0], x : x + image.shape[1]]
    cell[:] = image
    cell[outline(mask)] = OUTLINE
    far_first = sorted(view.objects, key=lambda o: -o.pixel_coords[2])
    for obj in far_first:
        u, v = obj.pixel_coords[0] * scale, obj.pixel_coords[1] * scale
        picture.labels.append(_label(cell, k, obj.id, int(u), int(v), x, y))


def halo(ink: np.ndarray, width: int = PAD) -> np.ndarray:
    """The pixels within `width` (8-neighbourhood steps) of the ink, but not the ink, on a
    canvas `width` larger on each side: a dark rim that keeps the digits readable on any
    colour while the object still shows between them."""
    height, breadth = ink.shape
    grown = np.zeros((height + 2 * width, breadth + 2 * width), dtype=bool)
    for dy in range(2 * width + 1):
        for dx in range(2 * width + 1):
            grown[dy : dy + height, dx : dx + breadth] |= ink
    grown[width : width + height, width : width + breadth] &= ~ink
    return grown


def _label(cell: np.ndarray, k: int, object_id: str, col: int, row: int, x: int,
           y: int) -> Label:
    """The object's index in a dark rim, its box centred on pixel (col, row) of the cell and
    moved inside the cell when it would stick out (it still covers that pixel)."""
    text = object_id.split("_")[1]
    ink = font.bitmap(text)[: font.ASCENT]
    rim = halo(ink)
    box_h, box_w = rim.shape
    height, width = cell.shape[:2]
    x0 = min(max(col - box_w // 2, 0), width - box_w)
    y0 = min(max(row - box_h // 2, 0), height - box_h)
    box = cell[y0 : y0 + box_h, x0 : x0 + box_w]
    box[rim] = LABEL_BOX
    box[PAD : PAD + font.ASCENT, PAD : PAD + ink.shape[1]][ink] = LABEL_TEXT
    return Label(k, object_id, text, (x + x0, y + y0, x + x0 + box_w, y + y0 + box_h),
                 (x + col, y + row))
