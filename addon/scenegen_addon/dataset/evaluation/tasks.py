"""What evaluate.py scores (--task): the questions, the constraint-extraction prompts (T2)
and the layouts their relations pin down (T3). Each task takes the export's rows a model
answered (or, for a run, the rows it asked) and the replies, (file, index) -> text, and
gives report.json's figures, the plots it drew and the lines to print."""

from pathlib import Path

from . import extraction, plots, reconstruction, scoring
from .exported import Export

TASKS = ("questions", "extraction", "reconstruction")


def rows(export: Export, task: str, replies: dict | None) -> list:
    """The rows a task scores: those of every file a reply answers; reconstruction without
    replies: every prompt (its gold relations)."""
    if task == "questions":
        return export.items([s for s in export.files if any(k[0] == s for k in replies)])
    if replies is None:
        return export.prompts()
    return export.prompts([s for s in export.prompt_files if any(k[0] == s for k in replies)])


def questions(export: Export, rows_: list, replies: dict, human, out: Path | None):
    scored = scoring.score_rows(rows_, replies)
    baselines = scoring.Baselines(export.blind, human)
    result = scoring.report(scored, baselines)
    drawn = [] if out is None else plots.write(out, scored, baselines)
    lines = [f"{split}: accuracy {h['accuracy']:.3f} over {h['n']} single-image questions"
             + ("" if h["gain_over_blind"] is None else
                f", {h['gain_over_blind']:+.3f} over the blind baseline")
             for split, h in result["headline"].items()]
    return result, drawn, lines


def extraction_task(rows_: list, replies: dict, out: Path | None):
    result = {"extraction": extraction.score(rows_, replies)}
    drawn = [] if out is None else plots.write_extraction(out, result["extraction"])
    lines = []
    for split, parts in result["extraction"].items():
        both = parts["both"]
        f1 = both["overall"]["f1"]
        lines.append(f"{split}: extraction F1 {'-' if f1 is None else f'{f1:.3f}'} over "
                     f"{both['prompts']} prompts ({both['unparseable']} unparseable, "
                     f"{both['missing']} missing), qrr on a cycle "
                     f"{both['qrr_cycle_share']:.3f}")
    return result, drawn, lines


def reconstruction_task(rows_: list, replies: dict | None, out: Path | None):
    result = {"reconstruction": reconstruction.score(rows_, replies)}
    drawn = [] if out is None else plots.write_reconstruction(out, result["reconstruction"])
    lines = [f"{split}: median NRMS {s['median_nrms']:.4f} (worst {s['max_nrms']:.4f}) over "
             f"{s['scenes']} scenes from the {result['reconstruction']['source']} relations"
             for split, s in result["reconstruction"]["summary"].items()]
    return result, drawn, lines
