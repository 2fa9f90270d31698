"""Draw docs/evaluation/reconstruction.png: how well the gold relations of a dataset's
scenes pin their layouts down (T3), `python tools/reconstruction_figure.py DIR [--out PNG]
[--scenes N]`.

For each of the first N scenes of every split, the reconstruction solver is given the
scene's gold relations in three sets (world qrr alone; with world trr; with closer and every
view's axial too) and the figure shows the NRMS of its layout against the object count,
with the share of relations satisfied printed per set as JSON. Distances alone cannot tell
a layout from its mirror image, so for qrr alone the alignment may mirror too.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "addon"))

from scenegen_addon.dataset import open_dataset  # noqa: E402
from scenegen_addon.dataset.evaluation import reconstruction as t3  # noqa: E402

SETS = {"qrr": ("qrr",), "qrr + trr": ("qrr", "trr"),
        "qrr + trr + closer + axial": ("qrr", "trr", "closer", "axial")}
MIRRORED = "qrr"  # distances alone cannot tell a layout from its mirror image


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "evaluation" /
                   "reconstruction.png")
    p.add_argument("--scenes", type=int, default=10, help="scenes per split (default 10)")
    args = p.parse_args()
    dataset = open_dataset(args.dataset)
    rows = []
    for split in dataset:
        for scene in dataset[split][:args.scenes]:
            problem, facts, true = t3.from_scene(scene)
            for name, types in SETS.items():
                chosen = [f for f in facts if f.type in types]
                start = time.perf_counter()
                found = t3.solve(problem, chosen)
                rows.append({"scene": scene.scene_id, "objects": scene.n_objects, "set": name,
                             "relations": len(chosen),
                             "satisfied": float(t3.satisfied(problem, chosen, found).mean()),
                             "nrms": t3.nrms(true, found, mirror=name == MIRRORED),
                             "seconds": round(time.perf_counter() - start, 2)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    summary = {name: {"scenes": len(r), "median_nrms": float(np.median([x["nrms"] for x in r])),
                      "max_nrms": max(x["nrms"] for x in r),
                      "mean_satisfied": float(np.mean([x["satisfied"] for x in r]))}
               for name in SETS for r in [[x for x in rows if x["set"] == name]]}
    print(json.dumps(summary, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for k, name in enumerate(SETS):
        r = [x for x in rows if x["set"] == name]
        ax.scatter([x["objects"] + (k - 1) * 0.15 for x in r], [x["nrms"] for x in r],
                   s=18, label=f"{name}{' (mirror allowed)' if name == MIRRORED else ''}: "
                   f"median NRMS {summary[name]['median_nrms']:.4f}")
    ax.set_yscale("log")
    ax.set_xlabel("objects in the scene")
    ax.set_ylabel("NRMS of the reconstruction")
    ax.set_title(f"Layouts from their gold relations ({len(rows) // len(SETS)} scenes)")
    ax.legend(fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110, metadata={"Software": None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
