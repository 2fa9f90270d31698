"""Validate a folder and print the report: `headless/validate.py` and the end of every
build. The checks themselves are core.validation. A folder that is not finished (scenes
missing, or never merged) is incomplete (exit 3), not corrupt."""

import argparse
import os
import sys
import time
from pathlib import Path

from ..core import layout, validation
from . import options, progress, protocol
from .exit_codes import ExitCode

VERDICTS = {ExitCode.OK: "OK", ExitCode.CORRUPT: "CORRUPT", ExitCode.INCOMPLETE: "INCOMPLETE"}


def run(output: Path, sample: float = 1.0, jobs: int = 1, map_tasks=None,
        status=None) -> ExitCode:
    """Validate `output`, print every problem, what was not checked, and a verdict line;
    return the exit code. `map_tasks` spreads the scene checks elsewhere (a Ray cluster);
    `status(text)` gets the count now and then (progress.Ticker)."""
    start = time.monotonic()
    ticker = progress.Ticker(protocol.VALIDATING, status=status)
    try:
        report = validation.validate(output, sample=sample, jobs=jobs, map_tasks=map_tasks,
                                     progress=ticker)
    finally:
        ticker.close()
    for problem in report.corrupt:
        print(f"CORRUPT {problem}")
    for problem in report.incomplete:
        print(f"INCOMPLETE {problem}")
    if report.unmerged:
        print(f"INCOMPLETE {report.unmerged}")
    for note in report.notes:
        print(f"NOTE {note}")
    code = (ExitCode.CORRUPT if report.corrupt else
            ExitCode.INCOMPLETE if report.incomplete or report.unmerged else ExitCode.OK)
    print(f"{VERDICTS[code]}: {report.scenes_checked} scenes checked, labels recomputed for "
          f"{report.labels_checked}; {len(report.corrupt)} problems, {len(report.incomplete)} "
          f"incomplete scenes{', not merged' if report.unmerged else ''} "
          f"({time.monotonic() - start:.1f} s)", flush=True)
    return code


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def main(argv=None) -> int:
    codes = ", ".join(f"{int(c)} {VERDICTS[c].lower()}" for c in VERDICTS)
    parser = options.Parser(
        prog="validate.py",
        description=f"Check a scenegen output folder: exit {codes}, "
                    f"{int(ExitCode.REFUSED)} bad arguments.")
    parser.add_argument("output", type=Path, help="the dataset folder (the build's --output)")
    parser.add_argument("--sample", type=_fraction, default=1.0,
                        help="fraction of scenes whose labels are recomputed (default 1: all)")
    parser.add_argument("--jobs", type=options.whole_number, default=os.cpu_count() or 1,
                        help="processes checking scenes (default: all CPUs)")
    try:
        args = parser.parse_args(argv)
        options.check_ranges(args, {"jobs": (1, None)})
        if not layout.plan_file(args.output).is_file():
            raise options.Refused(f"{args.output} is not a scenegen output folder (no "
                                  ".scenegen/plan.json)")
    except options.Refused as exc:
        return options.refusal(parser.prog, exc)
    try:
        return run(args.output, args.sample, args.jobs)
    except KeyboardInterrupt:
        print("validate.py: interrupted (it only reads: nothing was changed)", file=sys.stderr)
        return ExitCode.SIGINT
