"""Scoring speed: seconds to score 100,000 JSON Lines predictions (no plots) beside the
seconds to parse them, in one run.

    .venv/bin/python benchmarks/bench_evaluate.py [--export DIR] [--rows 100000] [--json FILE]

Without --export it makes a dataset without rendering (tests/fake_dataset.py) and its
VLMEvalKit export in a temporary folder, large enough for --rows rows (every question
file: single, circular, multi-view and open). The predictions mix right letters, wrong
letters, option texts, open answers and unreadable replies. Parsing is reading the file
and tying each line to its export row (predictions.read); scoring is the strict answer
grammar and every figure of report.json (scoring.score_rows and scoring.report). Prints
JSON.
"""

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))
sys.path.insert(0, str(ROOT))

from figures import report  # noqa: E402  (benchmarks/figures.py)
from scenegen_addon.dataset.evaluation import predictions, scoring  # noqa: E402
from scenegen_addon.dataset.evaluation.exported import LETTERS, Export  # noqa: E402

from tests import eval_data  # noqa: E402


def reply(item, n: int) -> str:
    """Every fourth reply wrong, every tenth an option's text, every 25th unreadable; open
    answers wrong or right the same way."""
    if n % 25 == 0:
        return "I cannot tell from the picture."
    if item.form == "open":
        return item.choices[(item.choices.index(item.answer) + (n % 4 == 0))
                            % len(item.choices)]
    if n % 4 == 0:
        return LETTERS[(LETTERS.index(item.answer) + 1) % len(item.options)]
    if n % 10 == 0:
        return item.options[LETTERS.index(item.answer)]
    return item.answer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export", type=Path)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(sys.stderr):  # the export's own report
            folder = args.export or eval_data.export(
                eval_data.make_dataset(Path(tmp), {"test_iid": 110}), Path(tmp) / "export",
                per_type=40, extra=["--allow-blind-bias", "--extraction-k", "0"])
        start = time.perf_counter()
        export = Export(folder)
        read_export = time.perf_counter() - start
        items = export.items()[:args.rows]
        if len(items) < args.rows:
            print(f"bench_evaluate.py: the export has {len(items)} rows, fewer than "
                  f"--rows {args.rows}", file=sys.stderr)
            return 2
        path = Path(tmp) / "predictions.jsonl"
        path.write_text("".join(json.dumps({
            "question_id": i.question_id, "form": i.form, "rotation": i.rotation,
            "answer": reply(i, n)}) + "\n" for n, i in enumerate(items)))
        start = time.perf_counter()
        replies = predictions.read(path, export)
        parse = time.perf_counter() - start
        start = time.perf_counter()
        scored = scoring.score_rows(items, replies)
        result = scoring.report(scored, scoring.Baselines(export.blind, None))
        score = time.perf_counter() - start
    return report({
        "rows": len(items), "seconds_to_read_the_export": round(read_export, 3),
        "seconds_to_parse": round(parse, 3), "seconds_to_score": round(score, 3),
        "score_over_parse": round(score / parse, 2),
        "unparseable": sum(f["unparseable"] for f in result["files"].values()),
    }, args.json)


if __name__ == "__main__":
    sys.exit(main())
