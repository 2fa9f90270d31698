"""Make the sample reports of docs/evaluation/: `python tools/sample_reports.py [--out DIR]`.

A small dataset made without rendering (tests/fake_dataset.py: the generator's own layouts
and labels, painted images) is exported for VLMEvalKit, then scored twice:
- gold/: the export's own answers, every form;
- planted/: single-image and circular answers with planted errors: clock answers one
  option away from the true hour (the offered hour nearest to it), distance questions of
  difficulty 4 and above answered with the next option, everything about view_2 wrong,
  every 20th reply unreadable; and a human sheet of 60 questions answered right except
  every 8th.
"""

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "addon"))
sys.path.insert(0, str(ROOT))

from scenegen_addon.dataset.evaluation import cli, sheet  # noqa: E402
from scenegen_addon.dataset.evaluation.exported import LETTERS, Export  # noqa: E402

from tests import eval_data  # noqa: E402

COUNTS = {"train": 2, "test_iid": 4, "test_hard": 4}


def planted(item, n: int) -> str:
    letters = LETTERS[:len(item.options)]
    if n % 20 == 7:
        return "It is hard to say."
    if item.constraint == "trr":
        gold = int(item.label)
        near = min((k for k in range(len(item.options)) if letters[k] != item.answer),
                   key=lambda k: min((int(item.option_labels[k]) - gold) % 12,
                                     (gold - int(item.option_labels[k])) % 12))
        return letters[near]
    if item.context == "view_2" or (item.difficulty or 0) >= 4:
        return letters[(letters.index(item.answer) + 1) % len(letters)]
    return item.answer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "evaluation")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        export_dir = eval_data.make_export(work, per_type=4, counts=COUNTS)
        export = Export(export_dir)
        gold = [{"question_id": i.question_id, "form": i.form, "rotation": i.rotation,
                 "answer": i.answer} for i in export.items()]
        rows = [{"question_id": i.question_id, "form": i.form, "rotation": i.rotation,
                 "answer": planted(i, n)} for n, i in enumerate(export.items())]
        chosen = sheet.sample(export.items(), 60, seed=0)
        human = {"kind": sheet.ANSWERS_KIND, "sheet": sheet.sheet_id(chosen), "answers": [
            {"file": i.file, "index": i.index, "question_id": i.question_id,
             "answer": i.answer if n % 8 else LETTERS[(LETTERS.index(i.answer) + 1)
                                                       % len(i.options)]}
            for n, i in enumerate(chosen)]}
        for name, lines in (("gold", gold), ("planted", rows)):
            path = work / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in lines))
            (work / "human.json").write_text(json.dumps(human))
            out = args.out / name
            shutil.rmtree(out, ignore_errors=True)
            extra = ["--human", "human.json"] if name == "planted" else []
            with contextlib.chdir(work):  # relative paths: no temporary folder named
                code = cli.main(["export", "--predictions", path.name, "--out", str(out),
                                 *extra])
            if code:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
