"""The report's plots (PNG, matplotlib without a display), from the single-image rows of
every scored split pooled: accuracy by category against chance, blind and human; accuracy
against difficulty and against object count; the clock-hour confusion matrix."""

from collections import defaultdict
from pathlib import Path

from .scoring import Baselines, Scored, cell, clock

FILES = {"category": "accuracy_by_category.png", "difficulty": "accuracy_by_difficulty.png",
         "clock": "clock_confusion.png"}


def _pooled(scored: list[Scored], dimension: str, baselines: Baselines) -> dict:
    by = defaultdict(list)
    for s in scored:
        value = getattr(s.item, dimension)
        if s.item.form == "single" and value is not None:
            by[value].append(s)
    return {v: cell(by[v], baselines, True) for v in sorted(by)}


def _errors(cells: list[dict]):
    return [[c["accuracy"] - c["ci95"][0] for c in cells],
            [c["ci95"][1] - c["accuracy"] for c in cells]]


def by_category(ax, cells: dict) -> None:
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
    ax.set_title("Single-image questions by category")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _line(ax, cells: dict, xlabel: str, title: str) -> None:
    values = list(cells.values())
    ax.errorbar(list(cells), [c["accuracy"] for c in values], yerr=_errors(values),
                marker="o", capsize=3, label="model (95% CI)")
    ax.plot(list(cells), [c["chance"] for c in values], "k--", label="chance")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)


def confusion(ax, matrix) -> None:
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(12), [str(h) for h in range(1, 13)])
    ax.set_yticks(range(12), [str(h) for h in range(1, 13)])
    ax.set_xlabel("answered hour")
    ax.set_ylabel("true hour")
    ax.set_title("Clock questions (single image): answers by true hour")
    ax.figure.colorbar(image, ax=ax, label="answers")


def write(out: Path, scored: list[Scored], baselines: Baselines) -> list[str]:
    """Write the plots that have data into `out`; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    categories = _pooled(scored, "category", baselines)
    if categories:
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        by_category(ax, categories)
        fig.savefig(out / FILES["category"], dpi=110, metadata={"Software": None})
        written.append(FILES["category"])
    panels = [(cells, xlabel, title) for cells, xlabel, title in (
        (_pooled(scored, "difficulty", baselines),
         "difficulty (1 easy .. 6 hardest; distance questions)", "Accuracy against difficulty"),
        (_pooled(scored, "n_objects", baselines), "objects in the scene",
         "Accuracy against object count")) if cells]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4),
                                 layout="constrained", squeeze=False)
        for ax, panel in zip(axes[0], panels, strict=True):
            _line(ax, *panel)
        fig.savefig(out / FILES["difficulty"], dpi=110, metadata={"Software": None})
        written.append(FILES["difficulty"])
    hours = clock(scored).get("single")
    if hours:
        fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
        confusion(ax, hours["confusion"])
        fig.savefig(out / FILES["clock"], dpi=110, metadata={"Software": None})
        written.append(FILES["clock"])
    plt.close("all")
    return written
