"""Draw docs/format_cameras_clock.svg, the figure of docs/FORMAT.md sections 5 and 6.4.4:
`python tools/format_figure.py [--out PATH]`.

Left: the four cameras seen from above, where core.camera puts them, with each view's
`front` and `left` ground directions. Right: the clock on the ground, each hour's label put
where core.constraints' own clock code says that hour is. Written as SVG text, so a change
reads in a diff; tests/test_format_doc.py checks that the committed file is what this draws.
"""

import argparse
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "addon"))

from scenegen_addon.core import camera, constraints, exact, presets, sampling, spec  # noqa: E402

OUT = ROOT / "docs" / "format_cameras_clock.svg"
WIDTH, HEIGHT = 1000, 560
CAMERAS_CENTRE = (250.0, 270.0)  # page position of the world origin, left panel
CAMERAS_SCALE = 18.0  # page units per world unit
CLOCK_CENTRE = (750.0, 270.0)
CLOCK_RADIUS = 170.0
FRONT_COLOUR, LEFT_COLOUR = "#c0392b", "#2471a3"
QUADRANT_FILLS = ("#fdebd0", "#d6eaf8", "#d5f5e3", "#ebdef0")
# The worked example of FORMAT 6.4.4: ref1 (1, 1), ref2 (4, 5), target (2, -1).
EXAMPLE = np.array([[2.0, -1.0], [1.0, 1.0], [4.0, 5.0]])


def fmt(value: float) -> str:
    """A page coordinate, to 0.1 (and never "-0.0")."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def page(centre, scale: float, x: float, y: float) -> tuple[str, str]:
    """World (x, y), +y up, to page coordinates, whose y runs down."""
    return fmt(centre[0] + scale * x), fmt(centre[1] - scale * y)


def text(x, y, words: str, size: int = 14, anchor: str = "middle", colour: str = "#222",
         weight: str = "normal") -> str:
    return (f'<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{colour}">{escape(words)}</text>')


def arrow(x0, y0, x1, y1, colour: str, width: float = 2.0, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    marker = colour.lstrip("#")
    return (f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="{colour}" '
            f'stroke-width="{width}"{dash} marker-end="url(#head{marker})"/>')


def markers(colours) -> str:
    heads = "".join(
        f'<marker id="head{c.lstrip("#")}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>' for c in colours)
    return f"<defs>{heads}</defs>"


def cameras_panel() -> list[str]:
    """The rig from above: ground axes, the widest placement square, each camera with its
    line of sight and its view's front (toward the camera) and left directions."""
    c, s = CAMERAS_CENTRE, CAMERAS_SCALE
    at = lambda x, y: page(c, s, x, y)  # noqa: E731
    out = [text(c[0], 34, "The four cameras, seen from above (+Z toward you)", 16,
                weight="bold")]
    half = max(sampling.PlacementRules.for_count(rule.max_objects).half_extent
               for rule in presets.SPLIT_RULES.values())  # the widest placement square
    x0, y0 = at(-half, half)
    out.append(f'<rect x="{x0}" y="{y0}" width="{fmt(2 * half * s)}" '
               f'height="{fmt(2 * half * s)}" fill="#f4f4f4" stroke="#999" '
               'stroke-dasharray="4 3"/>')
    out.append(text(*at(0.0, -half + 0.5), f"placement square [-R, R]², R ≤ {half:g}", 12,
                    colour="#666"))
    ox, oy = at(0.0, 0.0)
    out.append(arrow(ox, oy, *at(3.2, 0.0), "#444", 1.5))
    out.append(text(*at(3.3, -0.75), "+X", 13, anchor="start"))
    out.append(arrow(ox, oy, *at(0.0, 3.2), "#444", 1.5))
    out.append(text(*at(0.35, 3.0), "+Y", 13, anchor="start"))
    for view in camera.rig(*presets.CANONICAL_RESOLUTION):
        px, py = (float(v) for v in view.position[:2])
        length = float(exact.norm(np.array([px, py])))
        ux, uy = px / length, py / length
        cx, cy = at(px, py)
        out.append(arrow(*at(ux * (length - 0.8), uy * (length - 0.8)), *at(ux * 1.2, uy * 1.2),
                         "#888", 1.0, dashed=True))
        out.append(f'<circle cx="{cx}" cy="{cy}" r="7" fill="#222"/>')
        out.append(text(*at(ux * (length + 1.2), uy * (length + 1.2) - 0.25),
                        f"{view.view_id} (azimuth {view.azimuth:.0f}°)", 13, weight="bold"))
        base = (ux * 6.4, uy * 6.4)  # where this view's two ground directions are drawn
        for name, colour in (("front", FRONT_COLOUR), ("left", LEFT_COLOUR)):
            dx, dy = view.directions[name][:2]
            tip = (base[0] + 1.6 * dx, base[1] + 1.6 * dy)
            out.append(arrow(*at(*base), *at(*tip), colour, 2.2))
            out.append(text(*at(base[0] + 2.3 * dx, base[1] + 2.3 * dy - 0.25), name, 12,
                            colour=colour))
    arc_end = exact.cos_sin_deg(camera.azimuth_deg(0))
    out.append(f'<path d="M{" ".join(at(2.2, 0.0))} A{fmt(2.2 * s)},{fmt(2.2 * s)} 0 0 0 '
               f'{" ".join(at(2.2 * arc_end[0], 2.2 * arc_end[1]))}" fill="none" '
               'stroke="#444"/>')
    out.append(text(*at(2.55, 0.85), f"{camera.azimuth_deg(0):.0f}°", 12, anchor="start"))
    out.append(text(c[0], HEIGHT - 30, "front: from the scene toward that view's camera",
                    12, colour=FRONT_COLOUR))
    out.append(text(c[0], HEIGHT - 12, "left: the camera's left, as its image shows it", 12,
                    colour=LEFT_COLOUR))
    return out


def clock_hour(target, ref1, ref2) -> dict:
    """The `trr` record core.constraints writes for three objects standing at these ground
    points (obj_0 the target, obj_1 ref1, obj_2 ref2: the first record of the list)."""
    objects = [spec.ObjectSpec(f"obj_{i}", "sphere", "small", spec.OBJECT_SIZES["small"],
                               "gray", list(spec.COLORS["gray"]), "rubber",
                               [float(point[0]), float(point[1])], 0.0)
               for i, point in enumerate((target, ref1, ref2))]
    scene = spec.SceneSpec("train_00000", "train", 0, 0, 0, presets.SPLIT_RULES["train"].tau,
                           objects, [])
    record = constraints.world_constraints(scene)["trr"][0]
    assert (record["target"], record["ref1"], record["ref2"]) == ("obj_0", "obj_1", "obj_2")
    return record


def clock_panel() -> list[str]:
    """ref1 at the centre facing ref2 (12 o'clock, up the page): the hour sectors, their
    quadrants, and the worked example of FORMAT 6.4.4, all labelled by the project's code."""
    c, r = CLOCK_CENTRE, CLOCK_RADIUS
    at = lambda x, y: page(c, r, x, y)  # noqa: E731  (unit circle -> page)
    ref1, ref2 = (0.0, 0.0), (0.0, 1.0)
    out = [text(c[0], 34, "The clock: at ref1, facing ref2 = 12 o'clock", 16, weight="bold")]
    for hour in range(1, 13):  # each hour's wedge, filled with its quadrant's colour
        start, end = 30.0 * hour - 15.0, 30.0 * hour + 15.0  # clockwise from 12
        middle = exact.cos_sin_deg(90.0 - 30.0 * hour)
        record = clock_hour(middle, ref1, ref2)
        assert record["hour"] == hour, record  # the label is the code's, not this drawing's
        (c0, s0), (c1, s1) = exact.cos_sin_deg(90.0 - start), exact.cos_sin_deg(90.0 - end)
        out.append(f'<path d="M{c[0]},{c[1]} L{" ".join(at(c0, s0))} '
                   f'A{r},{r} 0 0 1 {" ".join(at(c1, s1))} z" '
                   f'fill="{QUADRANT_FILLS[record["quadrant"] - 1]}" stroke="#bbb"/>')
        out.append(text(*at(0.82 * middle[0], 0.82 * middle[1] - 0.035), str(hour), 16,
                        weight="bold"))
    for quadrant, hour in enumerate((1, 4, 7, 10), start=1):
        direction = exact.cos_sin_deg(90.0 - 30.0 * hour)
        out.append(text(*at(1.12 * direction[0], 1.12 * direction[1] - 0.03), f"Q{quadrant}", 13,
                        colour="#555"))
    out.append(arrow(*at(0.0, 0.0), *at(0.0, 0.55), "#222", 2.5))
    out.append(f'<circle cx="{c[0]}" cy="{c[1]}" r="5" fill="#222"/>')
    out.append(text(c[0] + 8, c[1] + 20, "ref1", 13, anchor="start", weight="bold"))
    out.append(text(*at(0.04, 0.36), "toward ref2", 13, anchor="start", weight="bold"))
    example = clock_hour(*EXAMPLE)
    vector = EXAMPLE[0] - EXAMPLE[1]
    facing = EXAMPLE[2] - EXAMPLE[1]
    turn = exact.cos_sin_deg(90.0 - exact.atan2_deg(facing[1], facing[0]))
    rotated = (turn[0] * vector[0] - turn[1] * vector[1], turn[1] * vector[0] + turn[0] * vector[1])
    unit = float(exact.norm(np.array(rotated)))
    tip = (0.5 * rotated[0] / unit, 0.5 * rotated[1] / unit)  # ref2 turned to 12 o'clock
    out.append(arrow(*at(0.0, 0.0), *at(*tip), "#7d3c98", 2.0, dashed=True))
    out.append(text(*at(tip[0], tip[1] - 0.14),
                    f"example: {example['hour']} o'clock ({example['angle_deg']:g}°)", 12,
                    colour="#7d3c98"))
    out.append(text(c[0], HEIGHT - 48, "clockwise: on the ground as seen from above (world),",
                    12, colour="#444"))
    out.append(text(c[0], HEIGHT - 30, "on the screen as it is seen (image plane)", 12,
                    colour="#444"))
    out.append(text(c[0], HEIGHT - 12, "hour h: 30h - 15° ≤ angle < 30h + 15°;  "
                    "Q1 = 12, 1, 2 ... Q4 = 9, 10, 11", 12, colour="#444"))
    return out


def svg() -> str:
    body = [markers(["#222", "#444", "#888", FRONT_COLOUR, LEFT_COLOUR, "#7d3c98"]),
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
            *cameras_panel(), *clock_panel()]
    lines = "\n".join(f"  {item}" for item in body)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif">\n'
            f"{lines}\n</svg>\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"the SVG to write ({OUT})")
    args = parser.parse_args(argv)
    args.out.write_text(svg(), encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
