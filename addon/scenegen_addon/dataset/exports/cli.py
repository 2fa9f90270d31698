"""`headless/export.py DIR --format {hf,vlmevalkit} --out OUT`: arguments, then one export.

Before the questions are generated, the dataset is checked (exports.verify) and OUT is
claimed (exports.target); nothing is written to OUT unless all of it can be.

Exit codes (launcher.exit_codes): 0 done, 1 the dataset is damaged or leads outside itself
(each file named), 2 refused (a bad argument, with a message naming it and what is allowed,
a missing package, an OUT in use), 3 the dataset is not merged or lists incomplete scenes,
4 OUT's disk is full or read-only, 130 interrupted (Ctrl-C: OUT is not written).
"""

import argparse
import os
import sys
import time
from pathlib import Path

from ...core import layout
from ...launcher import options, progress
from ...launcher.exit_codes import ExitCode
from .. import questions
from . import target, verify
from .common import ExportRefused

FORMATS = ("hf", "vlmevalkit")
# option -> (smallest, largest or None) allowed
NUMBER_RANGES = {"seed": (0, options.MAX_SEED), "shard_mb": (1, None), "jobs": (1, None)}


def _per_type(values: list[str] | None) -> dict[str, int]:
    """`N` for every category, `CATEGORY=N` for one; later entries override earlier ones."""
    counts = dict.fromkeys(questions.CATEGORIES, questions.DEFAULT_PER_TYPE)
    for value in values or []:
        name, _, number = value.rpartition("=")
        if (not options.WHOLE_NUMBER.fullmatch(number) or int(number) < 0
                or (name and name not in questions.CATEGORIES)):
            raise ExportRefused(
                f"--per-type {value!r}: expected N or CATEGORY=N with N >= 0 and CATEGORY one "
                f"of {', '.join(questions.CATEGORIES)}")
        for cat in [name] if name else questions.CATEGORIES:
            counts[cat] = int(number)
    return counts


def _splits(text: str | None, available: list[str]) -> list[str]:
    if text is None:
        return available
    names = [s for s in text.split(",") if s]
    unknown = [s for s in names if s not in available]
    if unknown or not names or len(set(names)) != len(names):
        raise ExportRefused(f"--splits {text!r}: allowed are splits of this dataset, "
                            f"comma-separated, each once: {', '.join(available)}")
    return names


def parser() -> argparse.ArgumentParser:
    p = options.Parser(
        prog="export.py",
        description="Export a finished scenegen dataset with its multiple-choice questions: "
                    "Hugging Face Parquet (hf) or VLMEvalKit TSV (vlmevalkit). "
                    "Exit 0 done, 1 damaged dataset, 2 refused, 3 dataset not merged or "
                    "incomplete, 4 OUT's disk full or read-only, 130 interrupted.")
    p.add_argument("dataset", type=Path, help="the dataset folder (the build's --output)")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument("--out", required=True, type=Path,
                   help="a new or empty folder outside the dataset folder")
    p.add_argument("--splits", help="comma-separated splits to export (default: all)")
    p.add_argument("--per-type", action="append", metavar="N|CATEGORY=N",
                   help=f"questions per scene and category (default {questions.DEFAULT_PER_TYPE}"
                        f"); repeat CATEGORY=N to set one of: {', '.join(questions.CATEGORIES)}")
    p.add_argument("--seed", type=options.whole_number, default=questions.DEFAULT_SEED,
                   help=f"seed of the questions (default {questions.DEFAULT_SEED})")
    p.add_argument("--name", default="scenegen",
                   help="vlmevalkit: the dataset name, file prefix (default scenegen)")
    p.add_argument("--shard-mb", type=options.whole_number, default=500,
                   help="hf: image megabytes per Parquet shard (default 500)")
    p.add_argument("--jobs", type=options.whole_number, default=os.cpu_count() or 1,
                   help="processes making the questions (default: all CPUs; the questions "
                        "are the same for any number)")
    return p


def run(args: argparse.Namespace) -> list[str]:
    """Check the arguments, write the export, return the report lines."""
    if not args.name or "/" in args.name or args.name.startswith("."):
        raise ExportRefused(f"--name {args.name!r}: must be a plain file name prefix")
    per_type = _per_type(args.per_type)
    dataset = verify.open_merged(args.dataset)
    splits = _splits(args.splits, list(dataset))
    if args.format == "hf":
        try:
            from . import hf
        except ImportError as exc:
            raise ExportRefused(f"--format hf needs the packages datasets and pyarrow ({exc}): "
                                "pip install datasets pyarrow") from None
    else:
        from . import vlmevalkit
        vlmevalkit.check_fits(dataset, splits, per_type)
    with target.claimed(args.dataset, args.out) as place:
        ticker = progress.Ticker("checking the dataset")
        try:
            checks, image_bytes = verify.check(dataset, splits, args.jobs, ticker)
        finally:
            ticker.close()
        place.check_space(image_bytes)
        ticker = progress.Ticker("questions")
        try:
            question_set = questions.generate(dataset, splits, per_type, args.seed, args.jobs,
                                              ticker)
        finally:
            ticker.close()
        if args.format == "hf":
            files = hf.export(dataset, place.staging, question_set, args.shard_mb * 1_000_000)
        else:
            files = vlmevalkit.export(dataset.root, place.staging, question_set, args.name)
        place.publish()
    return checks + files + question_set.summary()


def main(argv=None) -> int:
    try:
        args = parser().parse_args(argv)
        options.check_ranges(args, NUMBER_RANGES)
        options.check_path_length(args.dataset, "DIR")
        options.check_path_length(args.out, "--out")
    except options.Refused as exc:
        return options.refusal("export.py", exc)
    start = time.monotonic()
    try:
        lines = run(args)
    except ExportRefused as exc:
        print(f"export.py: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"export.py: interrupted: nothing was written to {args.out}", file=sys.stderr)
        return ExitCode.SIGINT
    except OSError as exc:
        if not layout.is_disk_error(exc):
            raise
        print(f"export.py: error: --out {args.out}: its disk is full or read-only ({exc}); "
              "nothing was written", file=sys.stderr)
        return ExitCode.DISK
    for line in lines:
        print(line)
    print(f"done: {args.format} export in {args.out} ({time.monotonic() - start:.1f} s)",
          flush=True)
    return ExitCode.OK
