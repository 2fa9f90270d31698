"""docs/FORMAT.md against the code it describes.

(a) Every property of the scene-record schema is named in section 6, and every string value
    a field can take is named somewhere in FORMAT.md.
(b) Every threshold and table of the label code stands in the section that defines it, read
    from the code's own constants (each test says where its numbers come from).
(c) Every "FORMAT n.m" cited in the repository's code and documents is a heading of FORMAT.md.
(d) Nothing there cites the old specification, which is not in the repository.
Also: FORMAT.md's own section references and picture links resolve, and the committed figure
is what tools/format_figure.py draws.
"""

import re
from pathlib import Path

import numpy as np
from scenegen_addon.core import (
    camera,
    constraints,
    depth,
    plan,
    presets,
    records,
    sampling,
    spec,
    validation,
    visibility,
)

from tools import format_figure

ROOT = Path(__file__).resolve().parent.parent
FORMAT = ROOT / "docs" / "FORMAT.md"
# Where "FORMAT n.m" may be cited (and the old citations must go).
CITING = ("addon", "headless", "benchmarks", "tools", "tests", "README.md", "docs")
HEADING = re.compile(r"^(#{1,6})\s+(\d+(?:\.\d+)*)\s+\S")
NUMBERS = r"(\d+(?:\.\d+)*(?:\s*(?:-|–|,|and)\s*\d+(?:\.\d+)*)*)"


def citations(word: str) -> re.Pattern:
    """`word` citing sections: "WORD 6.4", "WORD 6.3-6.4", "WORD sections 2-3", "WORD 1 and 7",
    "WORD.md section 5"."""
    return re.compile(rf"\b{word}(?:\.md)?(?:,?\s+(?:sections?|§))?\s+{NUMBERS}")


def section_numbers(group: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)*", group)


def read_lines() -> list[str]:
    """FORMAT.md's lines, with those inside ``` fences blanked (no headings there)."""
    lines, fenced = [], False
    for line in FORMAT.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("" if fenced else line)
    return lines


def headings() -> dict[str, int]:
    """Section number -> line index of its heading."""
    found = {}
    for i, line in enumerate(read_lines()):
        m = HEADING.match(line)
        if m:
            assert m[2] not in found, f"section {m[2]} has two headings"
            found[m[2]] = i
    return found


def section_lines(number: str) -> list[str]:
    """The lines of a section, its sub-sections included."""
    lines = FORMAT.read_text(encoding="utf-8").splitlines()
    marked = read_lines()
    start = headings()[number]
    level = len(HEADING.match(marked[start])[1])
    end = next((i for i in range(start + 1, len(marked))
                if HEADING.match(marked[i]) and len(HEADING.match(marked[i])[1]) <= level),
               len(lines))
    return lines[start:end]


def section(number: str) -> str:
    """The text of a section, whitespace collapsed to single spaces."""
    return " ".join(" ".join(section_lines(number)).split())


def table_rows(number: str, first_cell) -> list[list[str]]:
    """The cells of the table rows of a section whose first cell is `first_cell` (a string,
    or a pattern the whole cell matches)."""
    pattern = re.compile(re.escape(first_cell) if isinstance(first_cell, str) else first_cell)
    rows = []
    for line in section_lines(number):
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if pattern.fullmatch(cells[0]):
                rows.append(cells)
    assert rows, f"FORMAT {number} has no table row starting with {first_cell!r}"
    return rows


def code_spans(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


def cited_files():
    """(relative path, text) of every text file where sections are cited."""
    for name in CITING:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for file in files:
            data = file.read_bytes()
            if b"\0" in data:
                continue
            try:
                yield file.relative_to(ROOT).as_posix(), data.decode("utf-8")
            except UnicodeDecodeError:
                continue


# --- (a) the record's fields ------------------------------------------------------------------

def schema_names(node, names: set, values: set) -> None:
    """Every property name of the schema and every string its enums and consts allow."""
    if isinstance(node, dict):
        names.update(node.get("properties", {}))
        values.update(v for v in node.get("enum", []) if isinstance(v, str))
        if isinstance(node.get("const"), str):
            values.add(node["const"])
        for value in node.values():
            schema_names(value, names, values)
    elif isinstance(node, list):
        for item in node:
            schema_names(item, names, values)


def test_every_field_of_the_record_is_named_in_section_6():
    names, values = set(), set()
    schema_names(records.schema(), names, values)
    assert {"3d_coords", "matrix_world", "boundary_flag", "occluder", "farther"} <= names
    spans = code_spans(section("6"))
    missing = sorted(n for n in names if n not in spans)
    assert not missing, f"schema properties not named (as `name`) in FORMAT 6: {missing}"
    spans = code_spans("\n".join(read_lines()))
    unnamed = sorted(v for v in values if v not in spans and f'"{v}"' not in spans)
    assert not unnamed, f"values a record field takes, not named in FORMAT.md: {unnamed}"


# --- (b) the thresholds and tables of the code ------------------------------------------------

def test_tau_of_every_split():
    """core.presets.SPLIT_RULES: each split's object range and tau, in the table of 2.1."""
    for split, rule in presets.SPLIT_RULES.items():
        (row,) = table_rows("2.1", f"`{split}`")
        assert row[1] == f"{rule.min_objects}-{rule.max_objects}", row
        assert row[2] == f"{rule.tau:.2f}", row
    assert f"{presets.SPLIT_RULES['test_hard'].tau:.2f} for `test_hard`" in section("6.4.1")


def test_difficulty_bands():
    """core.constraints.DIFFICULTY_BOUNDS: r above k of them is difficulty 6 - k (6.4.1)."""
    bounds = sorted(constraints.DIFFICULTY_BOUNDS)
    assert len(bounds) == 5
    for k, bound in enumerate(bounds):  # r above bounds[0..k] and not above bounds[k + 1]
        (row,) = table_rows("6.4.1", str(5 - k))
        assert f"r > {bound}" in row[1] or f"{bound} < r" in row[1], row
        if k + 1 < len(bounds):
            assert f"r <= {bounds[k + 1]}" in row[1], row
    (row,) = table_rows("6.4.1", "6")
    assert row[1] == f"r <= {bounds[0]}", row
    # the table agrees with the code on both sides of every bound
    for k, bound in enumerate(bounds):
        assert constraints.difficulty(bound, 1.0) == 6 - k
        assert constraints.difficulty(bound * 1.001, 1.0) == 5 - k


def test_boundary_band():
    """The band of core.constraints.boundary_flags, measured through
    constraints.boundary_flag (not read from its constant), then looked up in 6.4.1."""
    tau = 0.1  # a = 1 > b, so T = tau x max(a, b) = tau
    x = np.round(np.arange(0, 2001) / 1000, 3)  # |a - b| / T
    flags = np.array([constraints.boundary_flag(1.0, 1.0 - v * tau, tau) for v in x])
    inside = x[flags]
    low = round((inside[0] + x[np.flatnonzero(flags)[0] - 1]) / 2, 2)
    high = round((inside[-1] + x[np.flatnonzero(flags)[-1] + 1]) / 2, 2)
    assert np.all(flags[(x > low) & (x < high)]) and not np.any(flags[(x < low) | (x > high)])
    assert f"{low:g} T < |a - b| < {high:g} T" in section("6.4.1")


def test_axial_margin():
    """core.constraints.AXIAL_MARGIN, in 6.4.8 both ways, for left/right and front/behind."""
    text = section("6.4.8")
    m = constraints.AXIAL_MARGIN
    for axis in ("left", "front"):
        assert f"dot(d, {axis}) > {m}" in text
        assert f"dot(d, {axis}) < -{m}" in text
    assert f"margin is {m} world units" in text


def test_topology_band():
    """core.constraints.TOUCH_TOLERANCE, the three bands of 6.4.5."""
    t = constraints.TOUCH_TOLERANCE
    for relation, rule in (("disjoint", f"g > {t}"), ("touching", f"-{t} <= g <= {t}"),
                           ("overlapping", f"g < -{t}")):
        (row,) = table_rows("6.4.5", f"`{relation}`")
        assert row[1] == rule, row


def test_occlusion_pixels():
    """core.constraints.MIN_OCCLUSION_PIXELS, in 6.4.9 and in the table of 6.4."""
    n = constraints.MIN_OCCLUSION_PIXELS
    assert f"`pixels >= {n}`" in section("6.4.9")
    assert f"pixels >= {n}" in section("6.4")
    assert f"at least {n} pixels" in section("6.5")


def test_visibility_gate_and_validator_fractions():
    """core.visibility.MIN_VISIBLE_FRACTION (the gate, at presets.CANONICAL_RESOLUTION) and
    core.validation.MIN_MASK_FRACTION (from validation.MIN_FRACTION_WIDTH up), in 4.6."""
    text = section("4.6")
    assert f"at least **{visibility.MIN_VISIBLE_FRACTION:.2f}**" in text
    assert f"at least **{validation.MIN_MASK_FRACTION:.2f}**" in text
    width, height = presets.CANONICAL_RESOLUTION
    assert f"{width} x {height} frame" in text
    assert f"at least {validation.MIN_FRACTION_WIDTH} pixels wide" in text


def test_placement_rules():
    """core.sampling: PlacementRules for every object count a split allows, the tries and
    restarts, and the contact probability (4.4, 4.5)."""
    text = section("4.4")
    table = {}
    for cells in table_rows("4.4", re.compile(r"\d+-\d+")):
        low, high = (int(v) for v in cells[0].split("-"))
        for n in range(low, high + 1):
            table[n] = tuple(float(c) for c in cells[1:4])
    counts = {n for rule in presets.SPLIT_RULES.values() for n in rule.levels}
    assert counts <= set(table), sorted(counts - set(table))
    for n in counts:
        rules = sampling.PlacementRules.for_count(n)
        assert table[n] == (rules.half_extent, rules.min_gap, rules.margin), n
    assert f"{sampling.TRIES_PER_OBJECT} tries" in text
    assert f"After {sampling.MAX_RESTARTS} restarts" in text
    assert f"with probability {sampling.CONTACT_PROBABILITY}" in section("4.5")
    assert f"up to retry {plan.MAX_RETRIES} ({plan.MAX_RETRIES + 1} attempts" in section("2.5")


def test_vocabulary():
    """core.spec's sizes, materials and colours, in 4.1."""
    text = section("4.1")
    for name, value in spec.OBJECT_SIZES.items():
        assert f"`{name}` (scale {value})" in text
    for name, params in spec.MATERIALS.items():
        assert (f"`{name}` (metallic {params['metallic']:g}, roughness {params['roughness']})"
                in text)
    for name, rgb in spec.COLORS.items():
        assert f"`{name}` | {', '.join(map(str, rgb))} |" in text


def test_size_and_quality_presets():
    """core.presets.DATASET_SIZES (2.2) and QUALITIES (3)."""
    for size, counts in presets.DATASET_SIZES.items():
        label = f"`{size}` (default)" if size == presets.DEFAULT_SIZE else f"`{size}`"
        (row,) = table_rows("2.2", label)
        numbers = [int(c.replace(",", "")) for c in row[1:]]
        assert numbers == [*(counts[s] for s in presets.SPLITS), sum(counts.values())], row
    for name, q in presets.QUALITIES.items():
        label = f"`{name}` (default)" if name == presets.DEFAULT_QUALITY else f"`{name}`"
        (row,) = table_rows("3", label)
        assert row[1] == f"{q.width}x{q.height}" and row[2] == str(q.samples), row
        for _, value in q.cycles:
            assert str(value) in row[3], row


def test_cameras():
    """core.camera's rig: the constants and each view's position and ground directions (5)."""
    text = section("5")
    step = camera.azimuth_deg(1) - camera.azimuth_deg(0)
    assert f"azimuth {camera.azimuth_deg(0):g} + {step:g}k degrees" in text
    assert f"{camera.ELEVATION_DEG:g} degrees above the ground, {camera.DISTANCE:g} units" in text
    assert f"{camera.LENS_MM:g} mm lens on a {camera.SENSOR_WIDTH_MM:g} mm wide sensor" in text
    assert f"f = {camera.LENS_MM:g} / {camera.SENSOR_WIDTH_MM:g} x W" in text
    rig = camera.rig(*presets.CANONICAL_RESOLUTION)
    assert f"horizontal field of view is {rig[0].hfov_deg:.4f} degrees" in text

    def vector(values) -> str:
        return "(" + ", ".join(f"{round(float(v), 4) + 0.0:g}" for v in values) + ")"

    for view in rig:
        (row,) = table_rows("5", f"`{view.view_id}`")
        assert row[1:] == [f"{view.azimuth:g}", vector(view.position),
                           vector(view.directions["front"][:2]),
                           vector(view.directions["left"][:2])], row


def test_depth_encoding():
    """core.depth's special values, in 9."""
    text = section("9")
    assert f"**{depth.NO_SURFACE}** means that the pixel sees no surface" in text
    assert f"**{depth.FAR_MM}** means {depth.FAR_MM / 1000:g} m or farther" in text


# --- (c), (d) citations -----------------------------------------------------------------------

def test_every_cited_format_section_is_a_heading():
    known = set(headings())
    for number in ("1", "2", "3", "4", "5", "6", "6.1", "6.2", "6.3", "6.4", "7"):
        assert number in known, f"FORMAT.md has no heading {number}"
    found, missing = 0, []
    for rel, text in cited_files():
        for m in citations("FORMAT").finditer(text):
            for number in section_numbers(m[1]):
                found += 1
                if number not in known:
                    line = text.count("\n", 0, m.start()) + 1
                    missing.append(f"{rel}:{line}: FORMAT {number}")
    assert found, "no FORMAT citation found at all (is the pattern broken?)"
    assert not missing, "cited but not a heading of docs/FORMAT.md:\n" + "\n".join(missing)


def test_format_references_resolve():
    """"section n.m" inside FORMAT.md, and its pictures."""
    known = set(headings())
    text = FORMAT.read_text(encoding="utf-8")
    referenced = set(re.findall(r"\bsections? (\d+(?:\.\d+)*)", text))
    assert referenced and not referenced - known, sorted(referenced - known)
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert pictures and all((FORMAT.parent / p).is_file() for p in pictures), pictures


def test_the_figure_is_what_its_tool_draws():
    assert format_figure.OUT.read_text(encoding="utf-8") == format_figure.svg(), (
        "run python tools/format_figure.py and commit docs/format_cameras_clock.svg")


def test_nothing_cites_the_old_specification():
    found = []
    for rel, text in cited_files():
        for m in (*citations("SPEC").finditer(text), *re.finditer(r"\bSPEC\.md\b", text)):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{rel}:{line}: {' '.join(m[0].split())}")
    assert not found, f"{len(found)} citations of the old specification:\n" + "\n".join(found)
