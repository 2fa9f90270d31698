"""The model runner against a chat-completions server started here on 127.0.0.1: every row
asked once with its images, answers written as they come, failures, stalls and rate limits
retried, a refused key stopping the run, a rerun asking only what is missing, the API key
sent to the endpoint only and written nowhere, and no connection anywhere else."""

import json
import sys
from pathlib import Path

import pytest
from scenegen_addon.dataset.evaluation import cli, exported, runner
from scenegen_addon.dataset.evaluation.exported import Export

from tests import eval_data
from tests.chat_server import ChatServer

SECRET = "sk-test-0123456789abcdef"
CONNECTIONS: list = []


def _audit(event, args):
    if event == "socket.connect":
        CONNECTIONS.append(args[1])


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return Export(eval_data.make_export(tmp_path_factory.mktemp("runner"), per_type=1))


def gold_replies(items):
    return {runner.prompt(i): i.answer for i in items}


def settings(server, **extra):
    values = dict(endpoint=server.url, model="test-model", concurrency=3, timeout=0.5,
                  retries=4, retry_wait=0.02, api_key_env="SCENEGEN_TEST_KEY")
    return runner.Settings(**{**values, **extra})


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_every_row_asked_through_failures_stalls_and_rate_limits(export, tmp_path,
                                                                 monkeypatch, capsys):
    monkeypatch.setenv("SCENEGEN_TEST_KEY", SECRET)
    items = export.items([s for s in export.files if "test_iid" in s])
    assert {i.form for i in items} == {"single", "circular", "multiview", "open"}
    prompts = [runner.prompt(i) for i in items]
    faults = {prompts[0]: ["500", "500"], prompts[1]: ["429", "429", "429"],
              prompts[2]: ["stall"], prompts[3]: ["500", "stall", "429"]}
    out = tmp_path / "predictions.jsonl"
    CONNECTIONS.clear()
    with ChatServer(gold_replies(items), faults, stall=2.0) as server:
        result = runner.run(export, items, out, settings(server))
        port = server.httpd.server_address[1]
    assert (result["asked"], result["already"], result["failed"]) == (len(items), 0, [])
    got = lines(out)
    assert sorted((g["form"], g["question_id"], g["rotation"]) for g in got) == sorted(
        (i.form, i.question_id, i.rotation) for i in items)
    by_index = {(i.form, i.index): i for i in items}
    for g in got:
        item = by_index[(g["form"], g["index"])]
        assert g["answer"] == item.answer and g["model"] == "test-model"
    # one request per row, plus one per planted fault
    assert len(server.requests) == len(items) + 2 + 3 + 1 + 3
    assert {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    assert {r["authorization"] for r in server.requests} == {f"Bearer {SECRET}"}
    assert {r["max_tokens"] for r in server.requests} == {runner.Settings.max_tokens}
    pictures = {runner.prompt(i): 4 if i.form == "multiview" else 1 for i in items}
    assert all(len(r["images"]) == pictures[r["text"]] and all(
        x.startswith("data:image/png;base64,") for x in r["images"]) for r in server.requests)
    assert result["tokens_in"] == sum(100 + pictures[runner.prompt(i)] for i in items)
    assert set(CONNECTIONS) == {("127.0.0.1", port)}
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err and SECRET not in out.read_text()
    assert f"{len(items)}/{len(items)} rows" in printed.err and "tokens" in printed.err


def test_a_row_that_keeps_failing_is_left_unanswered(export, tmp_path):
    items = export.items(["scenegen_test_hard"])[:5]
    failing = runner.prompt(items[2])
    with ChatServer(gold_replies(items), {failing: ["500"] * 10}) as server:
        result = runner.run(export, items, tmp_path / "p.jsonl", settings(server, retries=2))
    assert [i for i, _ in result["failed"]] == [items[2]]
    assert len(lines(tmp_path / "p.jsonl")) == 4
    assert server.attempts[failing] == 3


def test_a_refused_key_stops_the_run(export, tmp_path):
    items = export.items(["scenegen_test_hard"])[:5]
    refused = {runner.prompt(i): ["401"] for i in items}
    with ChatServer(gold_replies(items), refused) as server:
        with pytest.raises(runner.RunStopped, match=r"refused the request \(401\)"):
            runner.run(export, items, tmp_path / "p.jsonl", settings(server, concurrency=1))
    assert len(server.requests) == 1 and not (tmp_path / "p.jsonl").read_text()


def test_a_rerun_asks_only_what_is_missing(export, tmp_path):
    items = export.items(["scenegen_test_hard", "scenegen_test_hard_open"])
    assert len(items) > 7
    out = tmp_path / "p.jsonl"
    with ChatServer(gold_replies(items)) as server:
        runner.run(export, items[:7], out, settings(server))
        with open(out, "a") as f:
            f.write('{"question_id": "cut sho')  # a line a kill cut short
        result = runner.run(export, items, out, settings(server))
        asked = [r["text"] for r in server.requests]
    assert (result["asked"], result["already"]) == (len(items) - 7, 7)
    assert sorted(asked) == sorted(runner.prompt(i) for i in items)
    assert len(lines(out)) == len(items)
    with pytest.raises(runner.RunStopped, match="holds answers of model 'test-model'"):
        runner.run(export, items, out, runner.Settings("http://127.0.0.1:9/v1", "other"))


def _reworded(export, tmp_path):
    """A copy of the export whose first test_hard question reads otherwise (same ids)."""
    import csv
    import shutil

    other = Path(shutil.copytree(export.root, tmp_path / "other_export"))
    path = other / "scenegen_test_hard.tsv"
    rows = list(exported.tsv_rows(path))
    rows[0]["question"] += " (reworded)"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return rows[0]["question_id"]


def test_answers_of_another_export_are_refused_before_asking_or_scoring(export, tmp_path,
                                                                       capsys):
    """The runner's file names each row's question text: scored or resumed on another
    export with the same ids but another question, it is refused (exit 2) naming the row,
    and nothing is asked."""
    items = export.items(["scenegen_test_hard"])[:3]
    out = tmp_path / "p.jsonl"
    with ChatServer(gold_replies(items)) as server:
        runner.run(export, items, out, settings(server))
        assert {g["index"]: g["question"] for g in lines(out)} == {
            i.index: i.question for i in items}
        question_id = _reworded(export, tmp_path)
        other = tmp_path / "other_export"
        before, kept = len(server.requests), out.read_text()
        command = [str(other), "--predictions", str(out), "--out", str(tmp_path / "r")]
        assert cli.main(command) == 2
        assert question_id in capsys.readouterr().err
        assert cli.main([*command, "--run", "--endpoint", server.url, "--model",
                         "test-model", "--splits", "test_hard"]) == 2
        err = capsys.readouterr().err
        assert f"{out.name} line" in err and question_id in err and "Traceback" not in err
        assert cli.main([*command, "--run", "--endpoint", server.url, "--model",
                         "test-model", "--dry-run"]) == 2
        assert len(server.requests) == before and out.read_text() == kept


def test_ctrl_c_keeps_the_answers_of_the_requests_in_flight(export, tmp_path):
    """A Ctrl-C (SIGINT to the main thread) mid-run: the run waits for the requests in
    flight and writes their answers too, so every answer the server sent is on disk."""
    import signal
    import threading
    import time

    items = export.items(["scenegen_test_iid"])
    assert len(items) > 12
    out = tmp_path / "p.jsonl"
    main, running = threading.main_thread().ident, threading.Event()

    def press_ctrl_c_after_three_answers():
        while running.is_set() and not (out.exists() and out.read_text().count("\n") >= 3):
            time.sleep(0.01)
        if running.is_set():
            signal.pthread_kill(main, signal.SIGINT)

    ctrl_c = threading.Thread(target=press_ctrl_c_after_three_answers)
    with ChatServer(gold_replies(items), delay=0.3) as server:
        running.set()
        ctrl_c.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                runner.run(export, items, out, settings(server, timeout=10.0))
        finally:
            running.clear()
            ctrl_c.join()
        answered = len(server.requests)
    got = lines(out)
    assert 0 < len(got) == answered < len(items)
    assert all(g["answer"] == {i.index: i.answer for i in items}[g["index"]] for g in got)


def test_dry_run_counts_requests_and_images(export, tmp_path):
    items = export.items(["scenegen_test_hard", "scenegen_test_hard_circular"])
    text = runner.dry_run(export, items, tmp_path / "p.jsonl", "m")
    assert text.startswith(f"dry run: {len(items)} requests with {len(items)} images")
    assert exported.CIRCULAR_STEP == 1_000_000


def test_extraction_prompts_are_asked_and_scored(export, tmp_path, capsys):
    """--run --task extraction: each prompt once with its pictures (four for a world prompt),
    room for a long JSON reply; a dry run counts the same requests and images first."""
    prompts = export.prompts(["scenegen_test_hard_extraction"])
    images = sum(4 if p.prompt.context == "world" else 1 for p in prompts)
    out, report = tmp_path / "answers.jsonl", tmp_path / "report"
    with ChatServer({runner.prompt(p): json.dumps(p.prompt.answer) for p in prompts}) as server:
        command = [str(export.root), "--run", "--task", "extraction", "--endpoint", server.url,
                   "--model", "m", "--predictions", str(out), "--splits", "test_hard",
                   "--out", str(report)]
        assert cli.main([*command, "--dry-run"]) == 0
        assert f"dry run: {len(prompts)} requests with {images} images" in \
            capsys.readouterr().out
        assert not server.requests
        assert cli.main(command) == 0
    assert sorted(len(r["images"]) for r in server.requests) == sorted(
        4 if p.prompt.context == "world" else 1 for p in prompts)
    assert {r["max_tokens"] for r in server.requests} == {runner.EXTRACTION_TOKENS}
    figures = json.loads((report / "report.json").read_text())["extraction"]
    assert figures["all"]["both"]["overall"]["f1"] == 1.0
    assert figures["all"]["both"]["prompts"] == len(prompts)
    assert cli.main([*command[:-2], "--forms", "single"]) == 2
    assert "--forms is for --task questions" in capsys.readouterr().err


PROBE = """
import json, sys
log = open(sys.argv[1], "a")
def audit(event, args):
    if event == "socket.connect":
        log.write(json.dumps([str(x) for x in args[1]]) + "\\n")
        log.flush()
sys.addaudithook(audit)
from scenegen_addon.dataset.evaluation import cli
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_killed_run_resumes_asking_again_at_most_the_rows_in_flight(export, tmp_path):
    """headless/evaluate.py --run in a process of its own, killed (SIGKILL) mid-run, then
    run again to the end and scored. Every socket it opens is recorded (an audit hook):
    all go to the server's address."""
    import os
    import signal
    import subprocess
    import time

    root = Path(__file__).resolve().parents[1]
    items = [i for i in export.items(["scenegen_test_iid"])]
    out, connects = tmp_path / "answers.jsonl", tmp_path / "connects.log"
    env = {**os.environ, "PYTHONPATH": str(root / "addon"), "SCENEGEN_TEST_KEY": SECRET}
    with ChatServer(gold_replies(items), delay=0.25) as server:
        command = [sys.executable, "-c", PROBE, str(connects), str(export.root), "--run",
                   "--endpoint", server.url, "--model", "m", "--predictions", str(out),
                   "--forms", "single", "--splits", "test_iid", "--concurrency", "3",
                   "--api-key-env", "SCENEGEN_TEST_KEY", "--out", str(tmp_path / "report")]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                not out.exists() or out.read_text().count("\n") < 6):
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        time.sleep(0.5)  # requests already sent finish on the server
        asked_before, written = len(server.requests), out.read_text().count("\n")
        assert 6 <= written < len(items) and asked_before - written <= 3
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        port = str(server.httpd.server_address[1])
    assert len(lines(out)) == len(items)
    assert len(server.requests) - len(items) == asked_before - written <= 3
    assert {r["text"] for r in server.requests} == {runner.prompt(i) for i in items}
    assert {tuple(json.loads(x)) for x in connects.read_text().splitlines()} == {
        ("127.0.0.1", port)}
    assert "test_iid: accuracy 1.000" in second.stdout
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in second.stdout + second.stderr
