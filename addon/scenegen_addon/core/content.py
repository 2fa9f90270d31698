"""The image against its mask (FORMAT 6.3: "from the same render as the image"): measures
that tell a view image from another view's, another scene's, a shifted or a blank one, and
the faults they find. Pure numpy and integer arithmetic (the same verdict on every CPU).

The renderer and the mask draw the same silhouettes, so:
- edges: the image changes most where the mask does (`edge_contrast`);
- alignment: nowhere near is the fit better than in place (`misalignment`);
- colour: the pixels inside each object's mask look like its palette colour, the ground
  grey (`colour_agreement`). Shading multiplies a colour, grey light and highlights add
  grey: both keep its hue (the direction away from grey), which is what is compared.
benchmarks/bench_validator.py measures every margin below on real renders.
"""

import math

import numpy as np

from .spec import COLORS

# The margins below were measured by benchmarks/bench_validator.py on 60 scenes at 240x160
# (2 samples), 60 at 480x320 and 10 at 1024x768 (8 samples), and 39 with every object grey.
# Below this width the check is skipped (the report says so): the benchmark's smallest frame.
MIN_CONTENT_WIDTH = 240
# Edge contrast: the mean colour step across the mask's boundaries over the mean step
# between any two neighbouring pixels. Valid views measured 11.8 and up (the all-grey scenes;
# 12.7 with their colours at 240 wide, 18.0 from 480 wide, 27.9 at 1024); an image on
# another view's or another scene's mask at most 6.7, and every such pairing above 4 was
# also caught by the colour test.
EDGE_MIN = 8.0
# Alignment: moving the coloured objects' outlines by any offset within ALIGN_REACH pixels
# must not put them on larger image steps than where they are: valid views measured at
# most 0.91 of them (one pixel off); an image moved by one pixel at least 1.15 times, by two
# or more at least 1.5 times as much.
ALIGN_REACH = 25
ALIGN_MAX = 1.1
# Colour: an object's interior (its mask pixels whose 8 neighbours are it too, at least
# MIN_INTERIOR of them) has a median colour; its saturation (distance from grey over
# brightness) is below CHROMA_GREY for grey objects (measured <= 0.084) and above it for the
# others (>= 0.38), whose hue must then be nearest their own palette colour's (no object
# view of the benchmark missed). A view passes when at least COLOUR_MIN_SHARE of its
# objects so judged look like themselves and its ground is grey (measured <= 0.011).
MIN_INTERIOR = 12
CHROMA_GREY = 0.2
COLOUR_MIN_SHARE = 0.5
GROUND_CHROMA_MAX = 0.1
DARK = 8.0  # a median brighter than this (0-255) has a meaningful hue


def _total(values: np.ndarray) -> int:
    """The exact sum of an integer array (a running sum: no float, no SIMD reduction)."""
    flat = values.reshape(-1).astype(np.int64)
    return int(np.cumsum(flat)[-1]) if flat.size else 0


def _steps(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour steps (summed over RGB) between vertical and horizontal pixel neighbours."""
    pixels = image.astype(np.int16)
    steps = []
    for axis in (0, 1):
        step = np.abs(np.diff(pixels, axis=axis))
        steps.append(step[..., 0] + step[..., 1] + step[..., 2])
    return steps[0], steps[1]


def _boundaries(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the mask changes between vertical and horizontal neighbours."""
    labels = mask.astype(np.int32)
    return np.diff(labels, axis=0) != 0, np.diff(labels, axis=1) != 0


def edge_contrast(image: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean colour step between neighbouring pixels that the mask puts on different objects
    (or object and ground), over the mean step between all neighbours.

    Why it works: the renderer and the mask draw the same silhouettes, so the image changes
    most exactly where the mask does; against another view's mask the boundaries fall on
    ground and objects alike and the ratio stays near 1. None when it is undefined: the image
    is flat (blank) or the mask has no boundary.
    """
    steps = boundary = pairs = boundary_pairs = 0
    for step, edge in zip(_steps(image), _boundaries(mask), strict=True):
        steps += _total(step)
        pairs += step.size
        boundary += _total(step[edge])
        boundary_pairs += int(np.count_nonzero(edge))
    if steps == 0 or boundary_pairs == 0:
        return None
    return (boundary * pairs) / (boundary_pairs * steps)


def _outlines(mask: np.ndarray, values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Where the mask goes from the ground (0) to one of `values`, between vertical and
    horizontal neighbours."""
    chosen = np.isin(mask, values)
    ground = mask == 0
    vertical = (ground[:-1] & chosen[1:]) | (chosen[:-1] & ground[1:])
    horizontal = (ground[:, :-1] & chosen[:, 1:]) | (chosen[:, :-1] & ground[:, 1:])
    return vertical, horizontal


def misalignment(image: np.ndarray, mask: np.ndarray, values: list[int]):
    """The offset (dx, dy) other than (0, 0), within ALIGN_REACH pixels, at which the
    outlines of the objects `values` against the ground, moved by it, fall on the largest
    image steps; and their total there over their total unmoved (below 1 when the image
    sits on its mask). ((0, 0), 0.0) when there is no such outline.

    Only coloured objects count: a grey object on the grey ground has a faint outline and
    its shading's edges (terminator, contact shadow) may lie a pixel off it; a coloured one
    differs from the ground in hue, which shading keeps, right at its silhouette.
    Searched on a grid every 3 pixels with each step map summed over 3x3 pixels, so that
    every offset counts at the grid point next to it, however sharp the picture; then at
    the offsets around the grid's best point and around (0, 0), unsummed.
    """
    pad = ALIGN_REACH + 1
    maps = []
    outlines = _outlines(mask, values)
    if not any(np.any(edge) for edge in outlines):
        return (0, 0), 0.0
    for step, edge in zip(_steps(image), outlines, strict=True):
        sharp = np.pad(step.astype(np.int32), pad)  # an offset beyond the frame sees no step
        summed = np.zeros_like(sharp)
        height, width = sharp.shape
        for i in (0, 1, 2):
            for j in (0, 1, 2):
                summed[1:-1, 1:-1] += sharp[i:height - 2 + i, j:width - 2 + j]
        ys, xs = np.nonzero(edge)
        maps.append((sharp, summed, ys + pad, xs + pad))

    def fit(which: int, dx: int, dy: int) -> int:
        return sum(_total(m[which][ys + dy, xs + dx]) for *m, ys, xs in maps)

    reach = ALIGN_REACH - 1  # grid points whose 3x3 block stays within reach
    grid = range(-(reach // 3) * 3, reach + 1, 3)
    coarse = {(dx, dy): fit(1, dx, dy) for dx in grid for dy in grid if (dx, dy) != (0, 0)}
    cx, cy = max(coarse, key=coarse.__getitem__)
    near = {(x + i, y + j) for x, y in ((cx, cy), (0, 0)) for i in (-1, 0, 1) for j in (-1, 0, 1)}
    scores = {d: fit(0, *d) for d in near - {(0, 0)}}
    best = max(scores, key=scores.__getitem__)
    unmoved = fit(0, 0, 0)
    return best, (scores[best] / unmoved if unmoved else math.inf)


def interior_labels(mask: np.ndarray) -> np.ndarray:
    """Each pixel's mask value when its 8 neighbours share it, else -1 (the frame's edge
    pixels are dropped): far from any boundary, so no blending with the next object."""
    height, width = mask.shape
    centre = mask[1:-1, 1:-1].astype(np.int32)
    same = np.ones(centre.shape, dtype=bool)
    for dy in range(3):
        for dx in range(3):
            same &= mask[dy:dy + height - 2, dx:dx + width - 2] == centre
    return np.where(same, centre, -1)


def chroma(rgb) -> tuple[tuple[float, float, float], float]:
    """(the colour minus its grey, that distance over the grey's brightness): a hue direction
    and a saturation that shading (a common factor) leaves alone."""
    grey = (rgb[0] + rgb[1] + rgb[2]) / 3.0
    direction = (rgb[0] - grey, rgb[1] - grey, rgb[2] - grey)
    length = math.sqrt(direction[0] * direction[0] + direction[1] * direction[1]
                       + direction[2] * direction[2])
    return direction, (length / grey if grey > DARK else 0.0)


def _cosine(a, b) -> float:
    na = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    nb = math.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
    if na == 0 or nb == 0:
        return -1.0
    return (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / (na * nb)


# Hue directions of the chromatic palette colours (FORMAT 4); the sRGB encoding of the image
# keeps their order, which is all the nearest-hue rule needs (the benchmark measures it).
_HUES = {name: chroma(rgb)[0] for name, rgb in COLORS.items() if name != "gray"}


def colour_name(rgb) -> str:
    """The palette colour an (8-bit, shaded) median colour looks like: "gray" when it is
    nearly grey (or too dark to tell), else the palette hue nearest its own."""
    direction, saturation = chroma(rgb)
    if saturation < CHROMA_GREY:
        return "gray"
    return max(_HUES, key=lambda name: _cosine(direction, _HUES[name]))


def median_colour(pixels: np.ndarray) -> tuple[float, float, float]:
    m = np.median(pixels, axis=0)
    return float(m[0]), float(m[1]), float(m[2])


def colour_agreement(image: np.ndarray, mask: np.ndarray, objects: list[dict]):
    """(objects judged, objects that look like their colour, the misfits as 'obj_2 (red)
    looks blue', the ground's chroma or None when no ground is seen)."""
    labels = interior_labels(mask)
    inner = image[1:-1, 1:-1]
    judged, misfits = 0, []
    for i, obj in enumerate(objects):
        where = labels == i + 1
        if int(np.count_nonzero(where)) < MIN_INTERIOR:
            continue
        judged += 1
        seen = colour_name(median_colour(inner[where]))
        if seen != obj["color"]:
            misfits.append(f"{obj['id']} ({obj['color']}) looks {seen}")
    ground = labels == 0
    ground_chroma = chroma(median_colour(inner[ground]))[1] if np.any(ground) else None
    return judged, judged - len(misfits), misfits, ground_chroma


def view_faults(images: list, masks: list, k: int, objects: list[dict], mask_rel: str) -> list:
    """What is wrong with view k's image against its mask (messages; [] when nothing): no
    edges on the mask's boundaries (naming the view whose mask it fits: swapped?), edges
    that fit better a few pixels away, objects not in their colours, a ground not grey."""
    image, mask = images[k], masks[k]
    contrast = edge_contrast(image, mask)
    if contrast is None or contrast < EDGE_MIN:
        return [_edge_message(contrast, image, masks, k, mask_rel)]
    faults = []
    coloured = [i + 1 for i, obj in enumerate(objects) if obj["color"] != "gray"]
    (dx, dy), ratio = misalignment(image, mask, coloured)
    if ratio > ALIGN_MAX:
        faults.append(f"is shifted by ({dx}, {dy}) px against {mask_rel}: its edges fit "
                      f"{ratio:.2f} times better there")
    judged, fit, misfits, ground = colour_agreement(image, mask, objects)
    if judged and fit < COLOUR_MIN_SHARE * judged:
        faults.append(f"objects are not in their colours under {mask_rel} ({fit} of {judged} "
                      f"fit: {'; '.join(misfits[:3])})")
    if ground is not None and ground > GROUND_CHROMA_MAX:
        faults.append(f"the ground under {mask_rel} is not grey (chroma {ground:.3f} > "
                      f"{GROUND_CHROMA_MAX})")
    return faults


def _edge_message(contrast, image, masks, k: int, mask_rel: str) -> str:
    if contrast is None:
        return "the image is blank (no pixel differs from its neighbours)"
    text = (f"does not show the scene of {mask_rel}: edge contrast {contrast:.2f} < "
            f"{EDGE_MIN}")
    fits = [j for j, other in enumerate(masks)
            if j != k and (edge_contrast(image, other) or 0.0) >= EDGE_MIN]
    if fits:
        text += f"; it fits view_{fits[0]}'s mask (views swapped?)"
    return text


