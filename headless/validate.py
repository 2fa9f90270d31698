"""Check a scenegen output folder: `python headless/validate.py DIR [--sample F] [--jobs N]`.

Exit 0 when the dataset is complete and sound, 1 on corruption (each problem printed with
its file), 3 when scenes are missing or failed (each listed), 2 on bad arguments. Needs no
Blender: it imports only the pure core and numpy.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.core import validation  # noqa: E402


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Check a scenegen output folder: exit 0 sound, 1 corrupt, 3 incomplete.")
    parser.add_argument("output", type=Path, help="the dataset folder (the build's --output)")
    parser.add_argument("--sample", type=_fraction, default=1.0,
                        help="fraction of scenes whose labels are recomputed (default 1: all)")
    parser.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1,
                        help="processes checking scenes (default: all CPUs)")
    args = parser.parse_args(argv)
    if not (args.output / ".scenegen" / "plan.json").is_file():
        print(f"error: {args.output} is not a scenegen output folder "
              "(no .scenegen/plan.json)", file=sys.stderr)
        return 2
    start = time.monotonic()
    report = validation.validate(args.output, sample=args.sample, jobs=args.jobs)
    for problem in report.corrupt:
        print(f"CORRUPT {problem}")
    for problem in report.incomplete:
        print(f"INCOMPLETE {problem}")
    verdict = {0: "OK", 1: "CORRUPT", 3: "INCOMPLETE"}[report.exit_code]
    print(f"{verdict}: {report.scenes_checked} scenes checked, labels recomputed for "
          f"{report.labels_checked}; {len(report.corrupt)} problems, {len(report.incomplete)} "
          f"incomplete scenes ({time.monotonic() - start:.1f} s)")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
