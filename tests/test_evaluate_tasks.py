"""evaluate.py --task extraction and --task reconstruction on the exports' extraction
prompts: the gold answers score F1 = 1 with no cycle in both export formats; planted errors
(a flipped comparator, a dropped relation, an occlusion the gold omits, a planted cycle, an
unreadable and a missing answer) give exactly the planted figures; VLMEvalKit's result file
of the extraction TSV is read; the layouts solved from the gold relations satisfy them all,
and the truth they are compared with is the scene's."""

import csv
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scenegen_addon.dataset.evaluation import cli, extraction, reconstruction
from scenegen_addon.dataset.evaluation.exported import Export
from scenegen_addon.dataset.loader import open_dataset

from tests import eval_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return eval_data.make_dataset(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="module")
def export(data):
    return Export(eval_data.export(data, data.parent / "export", per_type=1))


@pytest.fixture(scope="module")
def hf(data):
    return Export(eval_data.export(data, data.parent / "hf", per_type=1, fmt="hf"))


def jsonl(path, answers: dict):
    """`answers`: question_id -> answer (an object, or text); None leaves it out."""
    path.write_text("".join(json.dumps({"question_id": q, "form": "extraction", "answer": a})
                            + "\n" for q, a in answers.items() if a is not None))
    return path


def run(export_dir, out, *args) -> dict:
    assert cli.main([str(export_dir), *args, "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def test_gold_answers_score_one_in_both_formats(export, hf, tmp_path):
    gold = jsonl(tmp_path / "gold.jsonl", {p.question_id: p.prompt.answer
                                           for p in export.prompts()})
    for source in (export, hf):
        report = run(source.root, tmp_path / source.kind, "--task", "extraction",
                     "--predictions", str(gold))
        figures = report["extraction"]
        assert set(figures) == {"train", "test_iid", "test_hard", "all"}
        assert list(figures)[-1] == "all"
        for parts in figures.values():
            for f in parts.values():
                assert f["overall"]["f1"] == 1.0 and f["overall"]["fp"] == f["overall"]["fn"] \
                    == 0
                assert (f["qrr_on_cycle"], f["f1_x_consistency"]) == (0, 1.0)
        both = figures["all"]["both"]
        assert both["prompts"] == len(source.prompts()) == 5 * 4
        assert both["overall"]["tp"] == sum(len(x) for p in source.prompts()
                                            for x in p.prompt.answer.values())
        assert (tmp_path / source.kind / "extraction_by_type.png").read_bytes()[:4] == \
            b"\x89PNG"


def test_planted_errors_give_exactly_the_planted_figures(export, tmp_path):
    """In every view prompt: the first qrr comparator flipped to another value (1 FP, 1 FN),
    the first axial entry dropped (1 FN), an occlusion stated on an asked pair the gold has
    none on (1 FP); one view prompt's qrr list replaced by a cycle of three on pairs not
    asked (3 FP, its gold qrr FN, 3 on a cycle); one prompt unreadable, two missing (their
    gold FN)."""
    prompts = [p.prompt for p in export.prompts()]
    views = [p for p in prompts if p.context != "world"]
    unread, missing, cycled = prompts[0], prompts[1:3], views[-1]
    expected = Counter()
    answers = {}
    for p in prompts:
        gold = {t: len(entries) for t, entries in p.answer.items()}
        if p is unread or p in missing:
            expected.update({f"fn {t}": n for t, n in gold.items()})
            answers[p.question_id] = "I cannot tell." if p is unread else None
            continue
        answer = json.loads(json.dumps(p.answer))
        expected.update({f"tp {t}": n for t, n in gold.items()})
        if p.context != "world":
            if p is cycled:
                a, b, c, d = p.objects[:4]
                asked = {frozenset(map(frozenset, (u[:2], u[2:]))) for u in p.asked["qrr"]}
                units = [((a, b), (c, d)), ((c, d), (a, c)), ((a, c), (a, b))]
                assert not {frozenset(map(frozenset, u)) for u in units} & asked
                answer["qrr"] = [{"pair1": list(x), "pair2": list(y), "comparator": "<"}
                                 for x, y in units]
                expected.update({"tp qrr": -gold["qrr"], "fn qrr": gold["qrr"], "fp qrr": 3,
                                 "cycle": 3})
            elif answer.get("qrr"):
                entry = answer["qrr"][0]
                entry["comparator"] = {"<": ">", ">": "~=", "~=": "<"}[entry["comparator"]]
                expected.update({"tp qrr": -1, "fn qrr": 1, "fp qrr": 1})
            if answer.get("axial"):
                del answer["axial"][0]
                expected.update({"tp axial": -1, "fn axial": 1})
            hidden = {frozenset((e["occluder"], e["occluded"]))
                      for e in answer.get("occlusion", [])}
            free = [u for u in p.asked.get("occlusion", []) if frozenset(u) not in hidden]
            if free:
                answer["occlusion"].append({"occluder": free[0][0], "occluded": free[0][1]})
                expected.update({"fp occlusion": 1})
        answers[p.question_id] = answer
    assert expected["fp occlusion"] and expected["fn axial"] and expected["fp qrr"] > 3
    report = run(export.root, tmp_path / "out", "--task", "extraction", "--predictions",
                 str(jsonl(tmp_path / "planted.jsonl", answers)), "--no-plots")
    both = report["extraction"]["all"]["both"]
    assert (both["prompts"], both["unparseable"], both["missing"]) == (len(prompts), 1, 2)
    for t, f in both["per_type"].items():
        assert (f["tp"], f["fp"], f["fn"]) == (expected[f"tp {t}"], expected[f"fp {t}"],
                                               expected[f"fn {t}"]), t
    tp, fp, fn = (sum(expected[k] for k in expected if k.startswith(x)) for x in
                  ("tp ", "fp ", "fn "))
    assert both["overall"] == {"tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp),
                               "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn)}
    assert both["qrr_on_cycle"] == expected["cycle"] == 3
    stated = sum(len(a.get("qrr", [])) for a in answers.values() if isinstance(a, dict))
    assert both["qrr_predicted"] == stated
    assert both["f1_x_consistency"] == pytest.approx(both["overall"]["f1"] * (1 - 3 / stated))


def test_vlmevalkit_result_file_of_the_extraction_prompts(export, tmp_path):
    stem = "scenegen_test_iid_extraction"
    table = pd.read_csv(export.root / f"{stem}.tsv", sep="\t")
    table.pop("image")
    table["prediction"] = ["```json\n" + a + "\n```" for a in table["answer"]]
    path = tmp_path / f"MyModel_{stem}.csv"
    table.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    report = run(export.root, tmp_path / "out", "--task", "extraction", "--predictions",
                 str(path), "--no-plots")
    assert list(report["extraction"]) == ["test_iid", "all"]
    assert report["extraction"]["all"]["both"]["overall"]["f1"] == 1.0


def test_layouts_from_the_gold_relations(data, export, tmp_path):
    """Every gold relation satisfied by the solved layout, the truth the scene's centroids,
    the CLI's figures those of the solver called here."""
    dataset = open_dataset(data)
    report = run(export.root, tmp_path / "out", "--task", "reconstruction")
    figures = report["reconstruction"]
    assert figures["source"] == "gold" and report["predictions"] == []
    assert {s["scene_id"] for s in figures["scenes"]} | set(figures["skipped"]) == {
        p.prompt.scene_id for p in export.prompts()}
    for scene in figures["scenes"]:
        assert scene["satisfied"] == scene["gold_satisfied"] == 1.0
        prompts = [p.prompt for p in export.prompts() if p.prompt.scene_id == scene["scene_id"]]
        problem, truth = reconstruction.from_prompts(prompts)
        record = dataset[prompts[0].split][scene["scene_id"]]
        assert truth.tolist() == [list(record.object(i).centroid[:2]) for i in problem.ids]
        facts = [f for p in prompts for f in extraction.gold_facts(p)]
        assert scene["nrms"] == reconstruction.nrms(truth, reconstruction.solve(problem, facts))
        assert scene["nrms"] < 0.2
    assert figures["summary"]["all"]["scenes"] == len(figures["scenes"]) > 0
    assert figures["summary"]["all"]["median_nrms"] == float(np.median(
        [s["nrms"] for s in figures["scenes"]]))
    assert (tmp_path / "out" / "reconstruction_nrms.png").is_file()
    assert cli.main([str(export.root), "--task", "reconstruction"]) == 2  # no --out


def test_a_task_without_rows_to_score_is_refused(export, tmp_path, capsys):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question_id": i.question_id, "answer": "A"})
                                 + "\n" for i in export.items() if i.form == "single"))
    assert cli.main([str(export.root), "--task", "extraction", "--predictions",
                     str(questions)]) == 2
    assert "questions.jsonl: no rows of --task extraction to score" in capsys.readouterr().err
    assert cli.main([str(export.root), "--task", "reconstruction", "--out", str(tmp_path / "r"),
                     "--human", str(questions)]) == 2
    assert "--human is for --task questions" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
