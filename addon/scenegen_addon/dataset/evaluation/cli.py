"""`headless/evaluate.py EXPORT ...`: score predictions, run a model, or write a sheet.

    evaluate.py EXPORT [--task questions|extraction] --predictions FILE [...] [--out DIR]
                [--human FILE]
    evaluate.py EXPORT --task reconstruction [--predictions FILE] --out DIR
    evaluate.py EXPORT --run [--task ...] --endpoint URL --model NAME --predictions FILE.jsonl
                [--concurrency N] [--limit N] [--forms LIST] [--splits LIST] [--dry-run]
    evaluate.py EXPORT --sheet OUT.html [--questions N] [--seed S]

Exit codes (launcher.exit_codes): 0 done; 2 refused (a bad argument, predictions or human
answers made on another export, an endpoint that refuses the key, model or address; the
message names it); 3 incomplete (a run left rows unanswered after its retries: run it again
to ask them); 130 interrupted (the answers written so far are kept).
"""

import argparse
import sys
from pathlib import Path

from ...launcher import options
from ...launcher.exit_codes import ExitCode
from . import exported, predictions, sheet
from .tasks import TASKS

FORMS = exported.FORMS
DEFAULT_FORMS = tuple(f for f in FORMS if f != "circular")
# option -> (smallest, largest or None) allowed
NUMBER_RANGES = {"concurrency": (1, None), "limit": (1, None), "retries": (0, None),
                 "questions": (1, None), "seed": (0, options.MAX_SEED)}


def parser() -> argparse.ArgumentParser:
    p = options.Parser(
        prog="evaluate.py",
        description="Score a model's answers on a scenegen export (VLMEvalKit result files "
                    "or JSON Lines), run a model behind an OpenAI-compatible endpoint, or "
                    "write a human-baseline sheet.", epilog=options.exit_code_epilog())
    p.add_argument("export", type=Path, help="the folder headless/export.py wrote")
    p.add_argument("--predictions", type=Path, action="append", metavar="FILE",
                   help="answers to score (repeat for several files); with --run, the JSON "
                        "Lines file the answers go to (resumed when it exists)")
    p.add_argument("--out", type=Path, help="report folder (default: REPORT beside the "
                                            "first predictions file, <stem>_report)")
    p.add_argument("--task", choices=TASKS, default="questions",
                   help="what to score or ask: the questions (default), the constraint-"
                        "extraction prompts (T2), or the layouts their relations pin down "
                        "(T3: from a model's extraction answers, or without --predictions "
                        "from the gold ones)")
    p.add_argument("--human", type=Path, help="answers saved from a --sheet page")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    run = p.add_argument_group("running a model (--run)")
    run.add_argument("--run", action="store_true", help="ask a model, then score its answers")
    run.add_argument("--endpoint", help="base URL of the API, e.g. http://127.0.0.1:8000/v1")
    run.add_argument("--model", help="the model name the endpoint serves")
    run.add_argument("--concurrency", type=options.whole_number, default=4, metavar="N",
                     help="requests in flight at once (default 4)")
    run.add_argument("--limit", type=options.whole_number, metavar="N",
                     help="ask only the first N rows")
    run.add_argument("--forms", help=f"--task questions: comma-separated forms to ask, of "
                                      f"{', '.join(FORMS)} (default: all but circular)")
    run.add_argument("--splits", help="comma-separated splits to ask (default: all exported)")
    run.add_argument("--timeout", type=options.duration_seconds, default=120.0, metavar="S",
                     help="seconds to wait for one answer before asking again (default 120)")
    run.add_argument("--retries", type=options.whole_number, default=6, metavar="N",
                     help="retries of a failed request, with doubling waits (default 6)")
    run.add_argument("--api-key-env", default="OPENAI_API_KEY",
                     help="environment variable holding the API key (default "
                          "OPENAI_API_KEY); the key is never printed or written")
    run.add_argument("--dry-run", action="store_true",
                     help="print the number of requests and images, send nothing")
    human = p.add_argument_group("the human-baseline sheet (--sheet)")
    human.add_argument("--sheet", type=Path, metavar="OUT.html", help="write the sheet page")
    human.add_argument("--questions", type=options.whole_number, default=100, metavar="N",
                       help="questions on the sheet (default 100)")
    human.add_argument("--seed", type=options.whole_number, default=0, metavar="S",
                       help="seed of the sample (default 0)")
    return p


def _selected(export: exported.Export, args) -> list:
    """The rows a run asks: the questions of --forms, or the extraction prompts."""
    if args.task == "questions":
        forms = options.name_list(args.forms or ",".join(DEFAULT_FORMS), FORMS, "form",
                                  "--forms")
        rows = [i for i in export.items() if i.form in forms]
    elif args.forms:
        raise options.Refused(f"--forms is for --task questions; --task {args.task} asks the "
                              "extraction prompts")
    else:
        rows = export.prompts()
    if args.splits is not None:
        splits = options.name_list(args.splits, list(dict.fromkeys(r.split for r in rows)),
                                   "split", "--splits")
        rows = [r for r in rows if r.split in splits]
    return rows[:args.limit] if args.limit else rows


def _score(args, export: exported.Export, scope=None) -> list[str]:
    """Score the task's rows of every file answered (or the rows of `scope`, a run's)."""
    from . import report, tasks

    gold = args.task == "reconstruction" and not args.predictions
    if args.out is None and gold:
        raise options.Refused("--task reconstruction of the gold relations: give --out DIR")
    if args.human and args.task != "questions":
        raise options.Refused("--human is for --task questions (the sheet asks questions)")
    human = sheet.read_answers(args.human, export) if args.human else None
    replies = {}
    for path in args.predictions or []:
        replies.update(predictions.read(path, export))
    rows = scope or tasks.rows(export, args.task, None if gold else replies)
    if not rows:
        given = ", ".join(map(str, args.predictions or [])) or "the export"
        raise options.Refused(f"{given}: no rows of --task {args.task} to score")
    out = args.out or args.predictions[0].with_name(args.predictions[0].stem + "_report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, or under one
        raise options.Refused(f"--out {out}: cannot be the report's folder ({exc.strerror}): "
                              "give a folder") from None
    drawing = None if args.no_plots else out
    if args.task == "questions":
        result, drawn, lines = tasks.questions(export, rows, replies, human, drawing)
    elif args.task == "extraction":
        result, drawn, lines = tasks.extraction_task(rows, replies, drawing)
    else:
        result, drawn, lines = tasks.reconstruction_task(rows, None if gold else replies,
                                                         drawing)
    head = {"export": str(export.root), "task": args.task,
            "predictions": [str(p) for p in args.predictions or []]}
    report.write(out, {**head, **result}, drawn)
    return lines + [f"report: {out / 'report.md'}"]


def _run(args, export: exported.Export) -> tuple[list[str], int]:
    from . import runner

    for name in ("endpoint", "model", "predictions"):
        if not getattr(args, name):
            raise options.Refused(f"--run needs --{name}")
    if len(args.predictions) != 1 or args.predictions[0].suffix != ".jsonl":
        raise options.Refused("--run: give one --predictions FILE.jsonl for the answers")
    items = _selected(export, args)
    path = args.predictions[0]
    if args.dry_run:
        return [runner.dry_run(export, items, path, args.model)], ExitCode.OK
    settings = runner.Settings(args.endpoint, args.model, args.concurrency, args.timeout,
                               args.retries, api_key_env=args.api_key_env)
    result = runner.run(export, items, path, settings)
    lines = [f"asked {result['asked']} rows ({result['already']} were answered before), "
             f"tokens {result['tokens_in']} in, {result['tokens_out']} out"]
    for item, error in result["failed"]:
        lines.append(f"unanswered: {item.question_id} ({item.form}, index {item.index}): "
                     f"{type(error).__name__}: {error}")
    if result["failed"]:
        lines.append(f"{len(result['failed'])} rows unanswered: run the same command again "
                     "to ask them")
        return lines, ExitCode.INCOMPLETE
    return lines + _score(args, export, items), ExitCode.OK


def main(argv=None) -> int:
    try:
        args = parser().parse_args(argv)
        options.check_ranges(args, NUMBER_RANGES)
        options.check_duration(args.timeout, "--timeout")
    except options.Refused as exc:
        return options.refusal("evaluate.py", exc)
    from . import runner

    code = ExitCode.OK
    try:
        modes = [m for m in ("run", "sheet") if getattr(args, m)]
        if len(modes) > 1:
            raise options.Refused("give one of --run and --sheet")
        export = exported.Export(args.export)
        if args.sheet:
            lines = [sheet.write(export, args.sheet, args.questions, args.seed)]
        elif args.run:
            lines, code = _run(args, export)
        elif not args.predictions and args.task != "reconstruction":
            raise options.Refused("give --predictions FILE to score, --run to ask a model, or "
                                  "--sheet OUT.html")
        else:
            lines = _score(args, export)
    except (options.Refused, exported.ExportError, predictions.PredictionsRefused,
            sheet.SheetRefused, runner.RunStopped) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    except KeyboardInterrupt:
        print("evaluate.py: interrupted: answers written so far are kept; run the same "
              "command again to go on", file=sys.stderr)
        return ExitCode.SIGINT
    for line in lines:
        print(line)
    return code
