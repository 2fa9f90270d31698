"""Question generation on one 15-object scene: this checkout against a base commit, in the
same run, each in its own subprocess importing its own code.

    .venv/bin/python benchmarks/bench_question_scene.py [DIR] [--base 0755532] [--repeat 5]

DIR: a dataset with a 15-object scene (default: a fake one made here with
tests/fake_dataset.py, the real sampler and records, in a temporary folder). The base
commit's add-on is unpacked with `git archive` into a temporary folder. Each side times,
best of --repeat, reading the scene's record and making its questions with the default
options (`questions.scene_questions`). Prints JSON with both times and their ratio.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "addon"), str(ROOT)]

from figures import report  # noqa: E402  (benchmarks/figures.py)

TIMER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from scenegen_addon.dataset import questions
from scenegen_addon.dataset.loader import Scene, open_dataset
dataset = open_dataset(sys.argv[2])
entry = next(e for e in dataset["test_comp"].entries if e["n_objects"] == 15)
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    questions.scene_questions(Scene.from_entry(dataset.root, entry))
    times.append(time.perf_counter() - start)
print(json.dumps({"scene": entry["scene_id"], "seconds": min(times)}))
"""


def fake_dataset(folder: Path) -> Path:
    from scenegen_addon.core import merge

    from tests import fake_dataset as fake

    out = folder / "data"
    fake.make_output(out, {"test_comp": 6})
    merge.merge(out)
    return out


def timed(addon: Path, data: Path, repeat: int) -> dict:
    run = subprocess.run([sys.executable, "-c", TIMER, str(addon), str(data), str(repeat)],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path, nargs="?")
    p.add_argument("--base", default="0755532")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.dataset or fake_dataset(tmp)
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "addon"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        before = timed(base / "addon", data, args.repeat)
        now = timed(ROOT / "addon", data, args.repeat)
    return report({
        "scene": now["scene"], "base": args.base,
        "seconds_base": round(before["seconds"], 4), "seconds_now": round(now["seconds"], 4),
        "ratio_now_to_base": round(now["seconds"] / before["seconds"], 3),
    }, args.json)


if __name__ == "__main__":
    sys.exit(main())
