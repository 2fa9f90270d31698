"""Make the sample reports of docs/evaluation/: `python tools/sample_reports.py [--out DIR]`.

A small dataset made without rendering (tests/fake_dataset.py: the generator's own layouts
and labels, painted images) is exported for VLMEvalKit, then scored four times:
- gold/: the export's own answers to every question form;
- planted/: answers with planted errors: clock answers one option away from the true hour
  (the offered hour nearest to it; open answers one hour off), distance questions of
  difficulty 4 and above answered with the next option, everything about view_2 wrong,
  every 20th reply unreadable; and a human sheet of 60 questions answered right except
  every 8th;
- extraction/: the extraction prompts (T2) answered with planted errors: every third qrr
  comparator moved to the next value, every fourth clock hour one off, every fifth axial
  relation left out, every view prompt stating one occlusion too many, every seventh
  prompt unreadable;
- reconstruction/: the layouts solved from the prompts' gold relations (T3).
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
    """A reply with the errors of the module doc (the n-th row); open answers the same way,
    a clock one hour off."""
    if n % 20 == 7:
        return "It is hard to say."
    if item.form == "open":
        if item.constraint == "trr":
            return str(int(item.answer) % 12 + 1)
        if item.context == "view_2" or (item.difficulty or 0) >= 4:
            return item.choices[(item.choices.index(item.answer) + 1) % len(item.choices)]
        return item.answer
    letters = LETTERS[:len(item.options)]
    if item.constraint == "trr":
        gold = int(item.label)
        near = min((k for k in range(len(item.options)) if letters[k] != item.answer),
                   key=lambda k: min((int(item.option_labels[k]) - gold) % 12,
                                     (gold - int(item.option_labels[k])) % 12))
        return letters[near]
    if item.context == "view_2" or (item.difficulty or 0) >= 4:
        return letters[(letters.index(item.answer) + 1) % len(letters)]
    return item.answer


def planted_extraction(prompt, n: int):
    """A prompt's answer with the errors of the module doc (the n-th prompt)."""
    if n % 7 == 3:
        return "The picture shows several objects."
    answer = json.loads(json.dumps(prompt.answer))
    for k, entry in enumerate(answer.get("qrr", [])):
        if k % 3 == 0:
            entry["comparator"] = {"<": "~=", "~=": ">", ">": "<"}[entry["comparator"]]
    for k, entry in enumerate(answer.get("trr", [])):
        if k % 4 == 1:
            entry["hour"] = entry["hour"] % 12 + 1
    if "axial" in answer:
        answer["axial"] = [e for k, e in enumerate(answer["axial"]) if k % 5 != 2]
    hidden = {frozenset(e.values()) for e in answer.get("occlusion", [])}
    free = [u for u in prompt.asked.get("occlusion", []) if frozenset(u) not in hidden]
    if free:
        answer["occlusion"].append({"occluder": free[0][0], "occluded": free[0][1]})
    return answer


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
        extracted = [{"question_id": p.question_id, "form": p.form,
                      "answer": planted_extraction(p.prompt, n)}
                     for n, p in enumerate(export.prompts())]
        (work / "human.json").write_text(json.dumps(human))
        runs = {"gold": (gold, []), "planted": (rows, ["--human", "human.json"]),
                "extraction": (extracted, ["--task", "extraction"]),
                "reconstruction": (None, ["--task", "reconstruction"])}
        for name, (lines, extra) in runs.items():
            if lines is not None:
                path = work / f"{name}.jsonl"
                path.write_text("".join(json.dumps(r) + "\n" for r in lines))
                extra = [*extra, "--predictions", path.name]
            out = args.out / name
            shutil.rmtree(out, ignore_errors=True)
            with contextlib.chdir(work):  # relative paths: no temporary folder named
                code = cli.main(["export", "--out", str(out), *extra])
            if code:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
