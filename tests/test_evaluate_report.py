"""Scoring an export (headless/evaluate.py EXPORT --predictions FILE): gold answers score
100% everywhere, a constant letter scores 1/k within one question per category, planted
errors by category, difficulty and view give exactly the planted figures, unparseable and
missing answers are counted, VLMEvalKit's own result files are read, and predictions made
on another export are refused naming the first difference."""

import csv
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
from scenegen_addon.dataset.evaluation import cli, plots, scoring
from scenegen_addon.dataset.evaluation.exported import LETTERS, Export

from tests import eval_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return eval_data.make_dataset(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def export_dir(data):
    return eval_data.export(data, data.parent / "export", per_type=2)


@pytest.fixture(scope="module")
def hf_dir(data):
    return eval_data.export(data, data.parent / "hf", per_type=2, fmt="hf")


@pytest.fixture(scope="module")
def export(export_dir):
    return Export(export_dir)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def answer_rows(items, answer_of):
    return [{"question_id": i.question_id, "form": i.form, "rotation": i.rotation,
             "answer": answer_of(i)} for i in items if answer_of(i) is not None]


def evaluate(export_dir, out, *files, extra=()) -> dict:
    args = [str(export_dir)]
    for f in files:
        args += ["--predictions", str(f)]
    assert cli.main([*args, "--out", str(out), *extra]) == 0
    return json.loads((out / "report.json").read_text())


def cells(report, form="single"):
    """Every breakdown cell of a form: (split, dimension, value) -> cell."""
    return {(split, dim, value): cell
            for split, entry in report["accuracy"][form].items()
            for dim, table in entry.items() if dim != "overall"
            for value, cell in table.items()}


def test_gold_scores_100_percent_everywhere(export_dir, export, tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", answer_rows(export.items(), lambda i: i.answer))
    report = evaluate(export_dir, tmp_path / "out", gold)
    assert set(report["files"]) == set(export.files)
    assert all(f["answered"] == f["rows"] > 0 for f in report["files"].values())
    assert all(c["accuracy"] == 1.0 and c["unparseable"] == c["missing"] == 0
               for c in cells(report).values())
    assert {s: h["accuracy"] for s, h in report["headline"].items()} == {
        "train": 1.0, "test_iid": 1.0, "test_hard": 1.0}
    assert all(c["accuracy"] == c["consistency"] == 1.0
               for split in report["circular"].values() for c in split.values())
    assert set(report["clock"]) == {"single", "multiview", "open"}
    for form, clock in report["clock"].items():
        assert (clock["hour_accuracy"], clock["quadrant_accuracy"],
                clock["mean_abs_hour_error"]) == (1.0, 1.0, 0.0)
        assert sum(map(sum, clock["confusion"])) == clock["n"] == sum(
            i.constraint == "trr" for i in export.items() if i.form == form)
    for name in ("accuracy_by_category.png", "accuracy_by_difficulty.png",
                 "clock_confusion.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in (tmp_path / "out" / "report.md").read_text()


def test_the_hugging_face_export_reads_as_the_vlmevalkit_one(export, hf_dir, tmp_path):
    """The same questions, answers and pictures from the Parquet configs (single, open and
    multi-view; circular rotations are VLMEvalKit's), so one JSON Lines file scores both
    alike."""
    hf = Export(hf_dir)
    assert hf.kind == "hf" and export.kind == "vlmevalkit"
    assert hf.blind == export.blind

    def rows(source, form):
        return sorted(({**i.__dict__, "file": None} for i in source.items() if i.form == form),
                      key=lambda row: (row["split"], row["index"]))

    for form in ("single", "open", "multiview"):
        assert rows(hf, form) == rows(export, form), form
    for split in ("test_iid", "test_hard"):
        for suffix in ("", "_multiview"):
            assert hf.images_of(f"questions_{split}{suffix}") == export.images_of(
                f"scenegen_{split}{suffix}")
    gold = write_jsonl(tmp_path / "gold.jsonl", answer_rows(
        [i for i in export.items() if i.form != "circular"], lambda i: i.answer))
    from_tsv = evaluate(export.root, tmp_path / "tsv", gold, extra=["--no-plots"])
    from_hf = evaluate(hf_dir, tmp_path / "hf", gold, extra=["--no-plots"])
    assert from_hf["accuracy"] == from_tsv["accuracy"] and from_hf["clock"] == from_tsv["clock"]
    assert all(c["accuracy"] == 1.0 for c in cells(from_hf).values())
    assert from_hf["views_agree"]["consistency"] == 1.0


def test_a_constant_letter_scores_chance_within_one_question(export_dir, export, tmp_path):
    single = [i for i in export.items() if i.form == "single"]
    constant = write_jsonl(tmp_path / "a.jsonl", answer_rows(single, lambda i: "A"))
    report = evaluate(export_dir, tmp_path / "out", constant, extra=["--no-plots"])
    for (split, dim, category), cell in cells(report).items():
        if dim == "category":
            k = round(1 / cell["chance"])
            assert abs(cell["correct"] - cell["n"] / k) <= 1, (split, category)


def test_planted_errors_give_exactly_the_planted_figures(export_dir, export, tmp_path):
    """Wrong: every test_iid world_trr question, every qrr of difficulty 1 or 2, every
    question about view_2; unparseable: every third view_size question; missing: the
    first row of each split's world_topology. Expected figures are counted here from the
    plan, row by row."""
    single = [i for i in export.items() if i.form == "single"]

    def wrong(i):
        return ((i.split, i.category) == ("test_iid", "world_trr")
                or (i.constraint == "qrr" and i.difficulty in (1, 2)) or i.context == "view_2")

    sizes = [i for i in single if i.category == "view_size"]
    unread = {(i.file, i.index) for i in sizes[::3]}
    missing = {}
    for i in single:
        if i.category == "world_topology":
            missing.setdefault(i.split, (i.file, i.index))

    def reply(i):
        if (i.file, i.index) in missing.values():
            return None
        if (i.file, i.index) in unread:
            return "maybe the first one"
        if wrong(i):
            return LETTERS[(LETTERS.index(i.answer) + 1) % len(i.options)]
        return i.answer

    assert any(wrong(i) for i in single) and unread and missing
    planted = write_jsonl(tmp_path / "planted.jsonl", answer_rows(single, reply))
    report = evaluate(export_dir, tmp_path / "out", planted)
    expected = defaultdict(Counter)
    for i in single:
        ok = reply(i) == i.answer
        for dim in ("category", "context", "difficulty", "n_objects", "boundary_flag"):
            value = getattr(i, dim)
            if value is not None:
                key = (i.split, dim, str(value))
                expected[key]["n"] += 1
                expected[key]["correct"] += ok
                expected[key]["unparseable"] += (i.file, i.index) in unread
                expected[key]["missing"] += reply(i) is None
    got = cells(report)
    assert set(got) == set(expected)
    for key, cell in got.items():
        e = expected[key]
        assert (cell["n"], cell["correct"], cell["unparseable"], cell["missing"]) == (
            e["n"], e["correct"], e["unparseable"], e["missing"]), key
        assert cell["accuracy"] == e["correct"] / e["n"]
    assert got[("test_iid", "category", "world_trr")]["correct"] == 0
    assert got[("test_iid", "context", "view_2")]["accuracy"] == 0.0
    files = report["files"]
    assert sum(f["unparseable"] for f in files.values()) == len(unread)
    assert sum(f["missing"] for f in files.values()) == len(missing)


def test_near_ties_kept_are_broken_down_by_margin(data, tmp_path):
    """An export made with --keep-near-ties: every near tie answered wrong, the rest right.
    Each margin's cell has exactly its rows, all wrong; "none" all right; the boundary
    flag's cells count the qrr rows right outside the tie band."""
    kept = Export(eval_data.export(data, tmp_path / "kept", per_type=2,
                                   extra=["--keep-near-ties"]))
    single = [i for i in kept.items() if i.form == "single"]
    near = [i for i in single if i.margins]
    assert near and {m for i in near for m in i.margins} >= {"tie_band", "sector_edge"}

    def reply(i):
        return LETTERS[(LETTERS.index(i.answer) + 1) % len(i.options)] if i.margins \
            else i.answer

    path = write_jsonl(tmp_path / "p.jsonl", answer_rows(single, reply))
    report = evaluate(kept.root, tmp_path / "out", path, extra=["--no-plots"])
    got = cells(report)
    for split in {i.split for i in single}:
        rows = [i for i in single if i.split == split]
        names = Counter(m for i in rows for m in i.margins) + Counter(
            none=sum(not i.margins for i in rows))
        margins = {v: c for (sp, dim, v), c in got.items() if (sp, dim) == (split, "margins")}
        assert {v: (c["n"], c["correct"]) for v, c in margins.items()} == {
            name: (n, n if name == "none" else 0) for name, n in names.items()}
        flags = {v: (c["n"], c["correct"]) for (sp, dim, v), c in got.items()
                 if (sp, dim) == (split, "boundary_flag")}
        assert flags == {str(flag): (sum(i.boundary_flag is flag for i in rows),
                                     sum(i.boundary_flag is flag and not i.margins
                                         for i in rows))
                         for flag in {i.boundary_flag for i in rows} - {None}}
    assert "| margins |" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("suffix", ["xlsx", "csv", "tsv"])
def test_vlmevalkit_result_files_are_read(export_dir, export, tmp_path, suffix):
    """A result file written as VLMEvalKit writes it: the dataset TSV read with pandas, its
    image column dropped, the replies in `prediction`, dumped with its writer settings."""
    for stem in ("scenegen_test_iid", "scenegen_test_iid_circular"):
        data = pd.read_csv(export_dir / f"{stem}.tsv", sep="\t")
        data.pop("image")
        rows = {i.index: i for i in export.files[stem]}
        data["prediction"] = [f"{rows[x].answer}. {rows[x].options[LETTERS.index(rows[x].answer)]}"
                              if x % 2 else rows[x].answer for x in data["index"]]
        path = tmp_path / f"MyModel_{stem}.{suffix}"
        if suffix == "xlsx":
            with pd.ExcelWriter(path, engine="xlsxwriter",
                                engine_kwargs={"options": {"strings_to_formulas": False}}) as w:
                data.to_excel(w, index=False)
        else:
            data.to_csv(path, sep="\t" if suffix == "tsv" else ",", index=False,
                        encoding="utf-8", quoting=csv.QUOTE_ALL)
    report = evaluate(export_dir, tmp_path / "out",
                      tmp_path / f"MyModel_scenegen_test_iid.{suffix}",
                      tmp_path / f"MyModel_scenegen_test_iid_circular.{suffix}",
                      extra=["--no-plots"])
    assert report["headline"]["test_iid"]["accuracy"] == 1.0
    assert set(report["files"]) == {"scenegen_test_iid", "scenegen_test_iid_circular"}
    assert report["circular"]["test_iid"]["all"]["accuracy"] == 1.0


def test_predictions_made_on_another_export_are_refused(export_dir, export, tmp_path, capsys):
    single = [i for i in export.items() if i.form == "single"]
    rows = answer_rows(single, lambda i: i.answer)
    cases = [
        ([*rows[:3], {**rows[3], "question_id": "test_iid_00099_world_qrr_00"}],
         "line 4: question_id 'test_iid_00099_world_qrr_00' (form single, rotation 0) is not "
         "in the export"),
        ([*rows[:1], {**rows[1], "question": "Is it?"}], "line 2: question 'Is it?' of "
         f"question_id {rows[1]['question_id']!r} is "),
        ([*rows[:2], {**rows[2], "index": 12345}], "line 3: index 12345"),
        ([rows[0], rows[0]], "line 2: question_id"),
    ]
    for n, (lines, message) in enumerate(cases):
        path = write_jsonl(tmp_path / f"p{n}.jsonl", lines)
        assert cli.main([str(export_dir), "--predictions", str(path),
                         "--out", str(tmp_path / f"o{n}")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / f"o{n}").exists()
    data = pd.read_csv(export_dir / "scenegen_test_hard.tsv", sep="\t")
    data.pop("image")
    data["prediction"] = "A"
    data.loc[4, "question"] = "Another question?"
    data.to_csv(tmp_path / "M_scenegen_test_hard.csv", index=False)
    assert cli.main([str(export_dir), "--predictions",
                     str(tmp_path / "M_scenegen_test_hard.csv")]) == 2
    err = capsys.readouterr().err
    assert f"index {data.loc[4, 'index']} asks 'Another question?'" in err


def _refused(args, capsys, *named):
    assert cli.main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evaluate.py: error: ") and "Traceback" not in err
    for name in named:
        assert name in err, (name, err)


@pytest.mark.parametrize("name, content, named", [
    ("M_scenegen_test_hard.xlsx", b"not a zip file", []),
    ("M_scenegen_test_hard.json", b'{"index": 0, "prediction": "A"}', []),
    ("M_scenegen_test_hard.json", b'[{"index": 0, "prediction": "A"}, 3]', []),
    ("M_scenegen_test_hard.json", b"[{", []),
    ("M_scenegen_test_hard.csv", b"index,prediction\n,B\n", ["row 1", "index"]),
    ("M_scenegen_test_hard.csv", b"index,prediction\nfirst,A\n", ["row 1", "index"]),
])
def test_a_result_file_that_does_not_read_is_refused_naming_it(export_dir, tmp_path, capsys,
                                                               name, content, named):
    path = tmp_path / name
    path.write_bytes(content)
    _refused([export_dir, "--predictions", path, "--out", tmp_path / "out"], capsys, name,
             *named)
    assert not (tmp_path / "out").exists()


def test_an_export_folder_with_a_file_not_ours_is_refused_naming_it(export_dir, hf_dir,
                                                                    export, tmp_path, capsys):
    import shutil

    import pyarrow.parquet as pq

    answers = write_jsonl(tmp_path / "p.jsonl", answer_rows(export.items()[:1],
                                                           lambda i: i.answer))
    other = Path(shutil.copytree(export_dir, tmp_path / "tsv"))
    (other / "notes.tsv").write_text("name\tvalue\nlights\t3\n")
    _refused([other, "--predictions", answers], capsys, "notes.tsv", "no column 'index'")
    hf = Path(shutil.copytree(hf_dir, tmp_path / "hf"))
    for shard in (hf / "data" / "questions").glob("*.parquet"):
        table = pq.read_table(shard)
        pq.write_table(table.drop([c for c in table.column_names if c.startswith("open_")]),
                       shard)
    _refused([hf, "--predictions", answers], capsys, str(hf / "data" / "questions"),
             "no column 'open_question'")


def test_an_out_that_is_a_file_is_refused(export_dir, export, tmp_path, capsys):
    answers = write_jsonl(tmp_path / "p.jsonl", answer_rows(export.items()[:1],
                                                           lambda i: i.answer))
    taken = tmp_path / "report.txt"
    taken.write_text("mine")
    _refused([export_dir, "--predictions", answers, "--out", taken], capsys, f"--out {taken}")
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("draw, figures", [
    (plots.write_extraction,
     {"all": {"world": {"per_type": {"qrr": {"precision": 1.0, "recall": 0.5, "f1": 0.6}}}}}),
    (plots.write_reconstruction,
     {"source": "gold", "scenes": [{"split": "test_iid", "n_objects": 5, "nrms": 0.02}],
      "summary": {"test_iid": {"median_nrms": 0.02}}}),
])
def test_a_plot_cut_short_leaves_no_png(tmp_path, monkeypatch, draw, figures):
    """A PNG appears whole or not at all: a save that fails half-way (a full disk) leaves
    neither a partial PNG nor a temporary file."""
    from matplotlib.figure import Figure

    def half_written(fig, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device", str(path))

    assert draw(tmp_path, figures)
    monkeypatch.setattr(Figure, "savefig", half_written)
    full = tmp_path / "full"
    full.mkdir()
    with pytest.raises(OSError, match="No space left"):
        draw(full, figures)
    assert list(full.iterdir()) == []


def test_entry_point_refuses_bad_arguments(export_dir, capsys):
    script = [sys.executable, str(ROOT / "headless" / "evaluate.py"), str(export_dir)]
    bad = subprocess.run([*script, "--run", "--concurrency", "0"], capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert "evaluate.py: error: --concurrency must be at least 1, got 0" in bad.stderr
    for args, message in ((["--seed", "-1"], "--seed must be 0.."),
                          (["--timeout", "0"], "--timeout must be more than 0"),
                          (["--limit", "٣"], "argument --limit: invalid integer '٣'")):
        assert cli.main([str(export_dir), *args]) == 2
        assert message in capsys.readouterr().err
    bad = cli.main([str(export_dir), "--run", "--endpoint", "http://127.0.0.1:9/v1", "--model",
                    "m", "--predictions", "p.jsonl", "--dry-run", "--forms", "single,circle"])
    assert bad == 2 and ("--forms: unknown form 'circle': allowed are single, circular, "
                         "multiview, open") in capsys.readouterr().err
    none = subprocess.run(script, capture_output=True, text=True)
    assert none.returncode == 2 and "give --predictions FILE to score" in none.stderr


def test_wilson_interval_hand_worked():
    """8 of 10 at 95%: centre (0.8 + z^2/20) / (1 + z^2/10), the known 0.4902-0.9433."""
    lo, hi = scoring.wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert scoring.wilson(0, 0) is None


def test_readme_documents_every_evaluate_option():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Evaluate a model"):readme.index("## On the 8-GPU")]
    options = {o for action in cli.parser()._actions for o in action.option_strings
               if o.startswith("--") and o != "--help"}
    assert not sorted(o for o in options if o not in section)


def test_blind_baseline_and_gain_come_from_the_exports_table(export_dir, export, tmp_path):
    """The best guesser of each (split, category) row (its correct answers over the row's
    questions) is the blind figure; over a split, the categories' figures weighted by their
    rows scored; gain = accuracy - blind."""
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    test_iid = [i for i in export.items() if i.form == "single" and i.split == "test_iid"]
    counts = Counter(i.category for i in test_iid)
    table = json.loads((export_dir / "blind_baseline.json").read_text())
    guessed = {}
    for k, row in enumerate(r for r in table["rows"] if r["split"] == "test_iid"):
        row["questions"] = 20
        row["guessers"]["constant_answer"]["correct"] = 5 + k
        row["guessers"]["naive_bayes_label"]["correct"] = 6 + k
        guessed[row["category"]] = (6 + k) / 20
    assert set(guessed) == set(counts)
    (copy / "blind_baseline.json").write_text(json.dumps(table))
    gold = write_jsonl(tmp_path / "gold.jsonl",
                       answer_rows(test_iid, lambda i: i.answer))
    report = evaluate(copy, tmp_path / "out", gold, extra=["--no-plots"])
    for cat, cell in report["accuracy"]["single"]["test_iid"]["category"].items():
        assert cell["blind"] == guessed[cat]
        assert cell["gain_over_blind"] == pytest.approx(1.0 - guessed[cat])
    blind = sum(guessed[c] * n for c, n in counts.items()) / sum(counts.values())
    assert report["headline"]["test_iid"]["blind"] == pytest.approx(blind)
    assert report["headline"]["test_iid"]["gain_over_blind"] == pytest.approx(1.0 - blind)
    assert "gain over blind" in (tmp_path / "out" / "report.md").read_text()
