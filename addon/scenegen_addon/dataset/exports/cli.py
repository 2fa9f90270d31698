"""`headless/export.py DIR --format {hf,vlmevalkit} --out OUT`: arguments, then one export.

Before anything is written, the blind baseline (dataset.blind) is measured; when a
category can be answered without the image the export writes nothing and exits 1, naming
it, unless --allow-blind-bias (the card then flags it).

Before the questions are generated, the dataset is checked (exports.verify) and OUT is
claimed (exports.target); nothing is written to OUT unless all of it can be.

Exit codes (launcher.exit_codes): 0 done, 1 blind bias found, or the dataset is damaged or
leads outside itself (each file named; nothing written), 2 refused (a bad argument, with a
message naming it and what is allowed, a missing package, an OUT in use), 3 the dataset is
not merged or lists incomplete scenes, 4 OUT's disk is full or read-only, 130 interrupted
(Ctrl-C: OUT is not written).
"""

import argparse
import os
import sys
import time
from pathlib import Path

from ...core import layout
from ...launcher import options, progress
from ...launcher.exit_codes import ExitCode
from .. import blind, extraction_prompts, format_doc, questions
from ..loader import Unreadable
from . import target, verify
from .common import ExportRefused, write_blind_table

FORMATS = ("hf", "vlmevalkit")
# option -> (smallest, largest or None) allowed
NUMBER_RANGES = {"seed": (0, options.MAX_SEED), "shard_mb": (1, None), "jobs": (1, None),
                 "extraction_k": (0, None)}


class BlindBias(Exception):
    """The blind baseline answers some category without the image (exit 1)."""


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
    return options.name_list(text, available, "split", "--splits")


def parser() -> argparse.ArgumentParser:
    p = options.Parser(
        prog="export.py",
        description="Export a finished scenegen dataset with its multiple-choice questions: "
                    "Hugging Face Parquet (hf) or VLMEvalKit TSV (vlmevalkit). "
                    "Exit 0 done, 1 blind bias or damaged dataset, 2 refused, 3 dataset not "
                    "merged or incomplete, 4 OUT's disk full or read-only, 130 interrupted.")
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
    p.add_argument("--keep-near-ties", action="store_true",
                   help="also ask what fails a visibility margin (near ties, partly hidden "
                        "objects, clock sector edges, small occlusions), named in `margins`")
    p.add_argument("--extraction-k", type=options.whole_number,
                   default=extraction_prompts.DEFAULT_K, metavar="K",
                   help="constraint-extraction prompts (one per scene and context): at most K "
                        f"relations of each type (default {extraction_prompts.DEFAULT_K}; 0: "
                        "no extraction prompts)")
    p.add_argument("--allow-blind-bias", action="store_true",
                   help="write the export even when the blind baseline answers a category "
                        "without the image (the card flags it)")
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
        checks, image_bytes, checked = _stage("checking the dataset", lambda ticker: verify.check(
            dataset, splits, args.jobs, ticker))
        place.check_space(image_bytes)
        question_set, table, report, prompts = _questions(args, dataset, splits, per_type)
        tmp = place.staging
        if args.format == "hf":
            files = hf.export(dataset, checked, tmp, question_set, args.shard_mb * 1_000_000,
                              table, prompts)
        else:
            files = vlmevalkit.export(checked, tmp, question_set, args.name, prompts)
        if table is not None:
            files.append(write_blind_table(tmp, table))
        files += format_doc.copy_to(tmp)
        place.publish()
    return checks + files + report


def _questions(args, dataset, splits, per_type):
    """(the questions, the blind baseline's table, the report lines, the extraction
    prompts); BlindBias or ExportRefused when the blind baseline does not allow them."""
    question_set = _stage("questions", lambda ticker: questions.generate(
        dataset, splits, per_type, args.seed, args.jobs, ticker, args.keep_near_ties))
    table = _stage("blind baseline: train questions", lambda ticker: blind.for_export(
        dataset, question_set, per_type, args.seed, args.jobs, args.keep_near_ties, ticker))
    report = question_set.summary() + ([] if table is None else table.markdown())
    if table is None and not args.allow_blind_bias:
        raise ExportRefused("DIR: the dataset has no train scenes to fit the blind baseline "
                            "on; export anyway with --allow-blind-bias")
    if table is not None and table.failed and not args.allow_blind_bias:
        raise BlindBias(report, [f"{r.split} {r.category}" for r in table.failed])
    prompts = None if not args.extraction_k else _stage(
        "extraction prompts", lambda ticker: extraction_prompts.generate(
            dataset, splits, args.extraction_k, args.seed, args.jobs, ticker,
            args.keep_near_ties))
    return question_set, table, report, prompts


def _stage(name: str, work):
    """work(ticker) with a progress.Ticker named `name` on stderr."""
    ticker = progress.Ticker(name)
    try:
        return work(ticker)
    finally:
        ticker.close()


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
    except options.Refused as exc:
        return options.refusal("export.py", exc)
    except ExportRefused as exc:
        print(f"export.py: error: {exc}", file=sys.stderr)
        return exc.code
    except Unreadable as exc:  # a file read after the check (the blind baseline's train)
        print(f"export.py: error: DIR: {exc}; nothing was written", file=sys.stderr)
        return ExitCode.CORRUPT
    except BlindBias as exc:
        report, failed = exc.args
        for line in report:
            print(line, file=sys.stderr)
        print(f"export.py: error: the blind baseline answers without the image: "
              f"{', '.join(failed)}; nothing was written to {args.out} (export anyway with "
              "--allow-blind-bias)", file=sys.stderr)
        return 1
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
