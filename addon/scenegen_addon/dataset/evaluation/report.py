"""report.json (every figure, scoring.report's structure) and report.md (the same figures
as tables for reading, with the plots); each file appears whole (core.layout's atomic
write)."""

import json
from pathlib import Path

from ...core import layout


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _acc(cell: dict) -> str:
    if cell["accuracy"] is None:
        return "-"
    lo, hi = cell["ci95"]
    return f"{_pct(cell['accuracy'])} ({_pct(lo)}-{_pct(hi)})"


def _human(cell: dict) -> str:
    human = cell.get("human")
    return "-" if not human else f"{_pct(human['accuracy'])} (n={human['n']})"


def _table(title: str, cells: dict, single: bool) -> list[str]:
    head = f"| {title} | n | accuracy % (95% CI) | chance % |"
    rule = "| --- | ---: | ---: | ---: |"
    if single:
        head += " blind % | gain over blind (points) | human % |"
        rule += " ---: | ---: | ---: |"
    lines = [head, rule]
    for name, c in cells.items():
        line = f"| {name} | {c['n']} | {_acc(c)} | {_pct(c['chance'])} |"
        if single:
            line += f" {_pct(c['blind'])} | {_pct(c['gain_over_blind'])} | {_human(c)} |"
        lines.append(line)
    return lines + [""]


def _questions(report: dict) -> list[str]:
    out = ["Accuracy counts every row of a scored file: a missing or unparseable answer is "
           "wrong. Intervals are 95% Wilson intervals; chance is 1/k; blind is the export's "
           "best text-only guesser; gain over blind is the headline.", ""]
    if report["headline"]:
        out += ["## Headline: single-image questions", ""]
        out += _table("split", report["headline"], True)
    names = {"single": "single image", "multiview": "four views", "open": "open answer"}
    for form, splits in report["accuracy"].items():
        for split, entry in splits.items():
            out += [f"## {split}, {names[form]}", ""]
            for dim, cells in entry.items():
                if dim != "overall":
                    out += _table(dim.replace("_", " "), cells, form == "single")
    if report["circular"]:
        out += ["## Circular evaluation", "",
                "A question counts when every rotation of its options is answered right; "
                "consistency: all rotations chose the same option.", "",
                "| split | category | questions | solved % (95% CI) | consistency % |",
                "| --- | --- | ---: | ---: | ---: |"]
        for split, cells in report["circular"].items():
            out += [f"| {split} | {cat} | {c['n']} | {_acc(c)} | {_pct(c['consistency'])} |"
                    for cat, c in cells.items()]
        out.append("")
    agree = report["views_agree"]
    if agree:
        out += ["## Single image against four views", "",
                f"{agree['n']} world questions answered in both forms: the same answer in "
                f"{_pct(agree['consistency'])}%, both right in {agree['both_correct']}.", ""]
    if report["clock"]:
        out += ["## Clock questions", "", "| form | n | hour % | quadrant % | mean abs. hour "
                "error (read answers) |", "| --- | ---: | ---: | ---: | ---: |"]
        for form, c in report["clock"].items():
            error = "-" if c["mean_abs_hour_error"] is None else f"{c['mean_abs_hour_error']:.2f}"
            out.append(f"| {names[form]} | {c['n']} | {_pct(c['hour_accuracy'])} | "
                       f"{_pct(c['quadrant_accuracy'])} | {error} ({c['read']} read) |")
        out.append("")
    return out


def _extraction(figures: dict) -> list[str]:
    out = ["## Constraint extraction (T2)", "",
           "Per relation type, the relations stated against the gold answer: a stated "
           "relation the gold does not hold is a false positive, a gold one not stated a "
           "false negative. Cycle share: stated qrr relations on a contradiction cycle; the "
           "headline is F1 x (1 - cycle share).", ""]
    for split, parts in figures.items():
        both, overall = parts["both"], parts["both"]["overall"]
        out += [f"### {split}", "",
                f"{both['prompts']} prompts ({both['unparseable']} unparseable, "
                f"{both['missing']} missing); F1 {_pct(overall['f1'])}%, qrr on a cycle "
                f"{both['qrr_on_cycle']} of {both['qrr_predicted']}, F1 x consistency "
                f"{_pct(both['f1_x_consistency'])}%.", "",
                "| prompts | type | true pos. | false pos. | false neg. | precision % | "
                "recall % | F1 % |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        out += [f"| {part} | {t} | {x['tp']} | {x['fp']} | {x['fn']} | {_pct(x['precision'])} "
                f"| {_pct(x['recall'])} | {_pct(x['f1'])} |"
                for part, f in parts.items()
                for t, x in (f["per_type"] if part != "both" else {}).items()]
        out += [f"| all | all | {overall['tp']} | {overall['fp']} | {overall['fn']} | "
                f"{_pct(overall['precision'])} | {_pct(overall['recall'])} | "
                f"{_pct(overall['f1'])} |", ""]
    return out


def _reconstruction(figures: dict) -> list[str]:
    out = ["## Reconstruction from constraints (T3)", "",
           f"Each scene's layout solved from the {figures['source']} relations (world "
           "distances, clock hours and closer; every view's left/right and front/behind). "
           "Satisfied: the share of the relations used (and of the gold ones) that the layout "
           "makes true; NRMS: the RMS distance to the true positions after the best "
           "similarity, over the layout's diameter.", "",
           "| split | scenes | median NRMS | worst NRMS | gold relations satisfied % |",
           "| --- | ---: | ---: | ---: | ---: |"]
    out += [f"| {split} | {s['scenes']} | {s['median_nrms']:.4f} | {s['max_nrms']:.4f} | "
            f"{_pct(s['mean_gold_satisfied'])} |" for split, s in figures["summary"].items()]
    out += ["", "| scene | objects (listed) | relations | satisfied % | gold satisfied % | "
            "NRMS |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    out += [f"| {s['scene_id']} | {s['n_objects']} ({s['objects']}) | {s['relations']} | "
            f"{_pct(s['satisfied'])} | {_pct(s['gold_satisfied'])} | {s['nrms']:.4f} |"
            for s in figures["scenes"]]
    if figures["skipped"]:
        out += ["", "Not solved (fewer than 3 listed objects): "
                + ", ".join(figures["skipped"]) + "."]
    return out + [""]


def markdown(report: dict, plots: list[str]) -> str:
    out = ["# Evaluation report", "",
           f"Export: `{report['export']}`; task: {report['task']}; predictions: "
           + (", ".join(f"`{p}`" for p in report["predictions"]) or "none (gold)") + ".", ""]
    if "headline" in report:
        out += _questions(report)
    if "extraction" in report:
        out += _extraction(report["extraction"])
    if "reconstruction" in report:
        out += _reconstruction(report["reconstruction"])
    if plots:
        out += ["## Plots", ""] + [f"![{p[:-4]}]({p})" for p in plots] + [""]
    if "files" in report:
        out += ["## Files scored", "",
                "| file | form | rows | answered | unparseable | missing |",
                "| --- | --- | ---: | ---: | ---: | ---: |"]
        out += [f"| {name} | {f['form']} | {f['rows']} | {f['answered']} | "
                f"{f['unparseable']} | {f['missing']} |" for name, f in report["files"].items()]
    return "\n".join(out) + "\n"


def write(out: Path, report: dict, plots: list[str]) -> None:
    """report.json and report.md into `out` (the plots are already there)."""
    layout.write_text(out / "report.json", [json.dumps(report, indent=1, sort_keys=False)])
    layout.write_text(out / "report.md", [markdown(report, plots)])
