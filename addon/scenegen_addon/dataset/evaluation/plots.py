"""The report's plots (PNG, matplotlib without a display). Questions, from the single-image
rows of every scored split but train pooled: accuracy by category against chance, blind and human;
accuracy against difficulty and against object count; the clock-hour confusion matrix.
Extraction (T2): precision, recall and F1 per relation type, world and view prompts.
Reconstruction (T3): the NRMS of each scene's layout against its object count. Each PNG
appears whole (core.layout's atomic write), like the report's other files."""

from collections import defaultdict
from pathlib import Path

from ...core import layout
from .scoring import Baselines, Scored, cell, clock

FILES = {"category": "accuracy_by_category.png", "difficulty": "accuracy_by_difficulty.png",
         "clock": "clock_confusion.png", "extraction": "extraction_by_type.png",
         "reconstruction": "reconstruction_nrms.png"}
SAVE = {"dpi": 110, "metadata": {"Software": None}}


def _plotted(scored: list[Scored]) -> list[Scored]:
    """The single-image rows the plots pool: every split but train (on which the blind
    baseline is fitted), or train when nothing else was scored."""
    single = [s for s in scored if s.item.form == "single"]
    tests = [s for s in single if s.item.split != "train"]
    return tests or single


def _pooled(rows: list[Scored], dimension: str, baselines: Baselines) -> dict:
    by = defaultdict(list)
    for s in rows:
        value = getattr(s.item, dimension)
        if value is not None:
            by[value].append(s)
    return {v: cell(by[v], baselines, True) for v in sorted(by)}


def _errors(cells: list[dict]):
    return [[c["accuracy"] - c["ci95"][0] for c in cells],
            [c["ci95"][1] - c["accuracy"] for c in cells]]


def by_category(ax, cells: dict, splits: str) -> None:
    names = list(cells)
    values = list(cells.values())
    x = range(len(names))
    ax.bar(x, [c["accuracy"] for c in values], yerr=_errors(values), capsize=3,
           color="#4c72b0", label="model (95% CI)")
    for key, style, label in (("chance", dict(color="black", marker="_", s=400), "chance"),
                              ("blind", dict(color="#dd8452", marker="_", s=400),
                               "blind baseline"),
                              ("human", dict(color="#55a868", marker="o", s=30), "human")):
        points = [(i, c[key]["accuracy"] if key == "human" else c[key])
                  for i, c in zip(x, values, strict=True) if c.get(key) is not None]
        if points:
            ax.scatter(*zip(*points, strict=True), zorder=3, label=label, **style)
    ax.set_xticks(list(x), names, rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Single-image questions by category ({splits})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _line(ax, cells: dict, xlabel: str, title: str) -> None:
    values = list(cells.values())
    ax.errorbar(list(cells), [c["accuracy"] for c in values], yerr=_errors(values),
                marker="o", capsize=3, label="model (95% CI)")
    ax.plot(list(cells), [c["chance"] for c in values], "k--", label="chance")
    if all(c["blind"] is not None for c in values):
        ax.plot(list(cells), [c["blind"] for c in values], "--", color="#dd8452",
                label="blind baseline")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)


def confusion(ax, matrix) -> None:
    from matplotlib.ticker import MaxNLocator

    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(12), [str(h) for h in range(1, 13)])
    ax.set_yticks(range(12), [str(h) for h in range(1, 13)])
    ax.set_xlabel("answered hour")
    ax.set_ylabel("true hour")
    ax.set_title("Clock questions (single image): answers by true hour")
    bar = ax.figure.colorbar(image, ax=ax, label="answers")
    bar.locator = MaxNLocator(integer=True)  # counts, never 0.5
    bar.update_ticks()


def _save(fig, path: Path) -> None:
    with layout.atomic_path(path) as tmp:
        fig.savefig(tmp, **SAVE)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write(out: Path, scored: list[Scored], baselines: Baselines) -> list[str]:
    """Write the plots that have data into `out`; returns their file names."""
    plt = _pyplot()
    written = []
    rows = _plotted(scored)
    splits = ", ".join(dict.fromkeys(s.item.split for s in rows))
    categories = _pooled(rows, "category", baselines)
    if categories:
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        by_category(ax, categories, splits)
        _save(fig, out / FILES["category"])
        written.append(FILES["category"])
    panels = [(cells, xlabel, title) for cells, xlabel, title in (
        (_pooled(rows, "difficulty", baselines),
         "difficulty (1 easy .. 6 hardest; distance questions)", "Accuracy against difficulty"),
        (_pooled(rows, "n_objects", baselines), "objects in the scene",
         "Accuracy against object count")) if cells]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4),
                                 layout="constrained", squeeze=False)
        for ax, panel in zip(axes[0], panels, strict=True):
            _line(ax, *panel)
        _save(fig, out / FILES["difficulty"])
        written.append(FILES["difficulty"])
    hours = clock(rows).get("single")
    if hours:
        fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
        confusion(ax, hours["confusion"])
        _save(fig, out / FILES["clock"])
        written.append(FILES["clock"])
    plt.close("all")
    return written


def write_extraction(out: Path, figures: dict) -> list[str]:
    """Precision, recall and F1 per type of the world and view prompts of every split
    pooled (extraction.score's "all")."""
    parts = {part: figures["all"][part]["per_type"] for part in ("world", "view")
             if part in figures.get("all", {})}
    bars = [(f"{part} {t}", f) for part, types in parts.items() for t, f in types.items()]
    if not bars:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(bars)), 4.2), layout="constrained")
    for k, (name, color) in enumerate((("precision", "#4c72b0"), ("recall", "#dd8452"),
                                       ("f1", "#55a868"))):
        ax.bar([x + (k - 1) * 0.27 for x in range(len(bars))],
               [0 if f[name] is None else f[name] for _, f in bars], 0.27, color=color,
               label=name if name != "f1" else "F1")
    ax.set_xticks(range(len(bars)), [b for b, _ in bars], rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share")
    ax.set_title("Constraint extraction (T2) by relation type")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, out / FILES["extraction"])
    plt.close("all")
    return [FILES["extraction"]]


def write_reconstruction(out: Path, figures: dict) -> list[str]:
    """Each scene's NRMS against its object count (reconstruction.score)."""
    scenes = figures["scenes"]
    if not scenes:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for split in dict.fromkeys(s["split"] for s in scenes):
        mine = [s for s in scenes if s["split"] == split]
        ax.scatter([s["n_objects"] for s in mine], [max(s["nrms"], 1e-4) for s in mine],
                   s=18, label=f"{split}: median {figures['summary'][split]['median_nrms']:.4f}")
    ax.set_yscale("log")
    ax.set_xlabel("objects in the scene")
    ax.set_ylabel("NRMS of the reconstruction")
    ax.set_title(f"Layouts from the {figures['source']} relations (T3, {len(scenes)} scenes)")
    ax.legend(fontsize=8)
    _save(fig, out / FILES["reconstruction"])
    plt.close("all")
    return [FILES["reconstruction"]]
