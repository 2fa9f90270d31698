"""The human-baseline sheet end to end in a real headless Chromium (Debian's chromium and
chromium-driver; skipped without them, except under CI=true where that fails): questions
answered by clicking, kept over a reload, saved as a file that --human reads into exact
per-category figures; the page holds no gold and needs no network."""

import dataclasses
import json
import os
import shutil
import time

import pytest
from scenegen_addon.dataset.evaluation import cli, sheet
from scenegen_addon.dataset.evaluation.exported import LETTERS, Export

from tests import eval_data

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1000,1300")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return eval_data.make_export(tmp_path_factory.mktemp("sheet"), per_type=1)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    if not (CHROMIUM and DRIVER):
        reason = ("no Chromium or chromedriver on PATH (apt-get install -y chromium "
                  "chromium-driver)")
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": .ci/run installs them")
        pytest.skip(reason)
    from selenium import webdriver

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must fetch nothing
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=DRIVER))
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver, downloads
    driver.quit()


def test_the_page_holds_no_gold(export_dir, tmp_path):
    """The same page whatever the answers and labels are; its data has no such field."""
    export = Export(export_dir)
    chosen = sheet.sample(export.items(), 15, seed=3)
    first = sheet.page(export, chosen)
    for stem, items in export.files.items():
        export.files[stem] = [dataclasses.replace(i, answer="Z", label="nothing",
                                                  option_labels=("x",) * len(i.options))
                              for i in items]
    assert sheet.page(export, sheet.sample(export.items(), 15, seed=3)) == first
    data = json.loads(first.split('type="application/json">')[1].split("</script>")[0])
    assert {key for q in data["questions"] for key in q} == {
        "file", "index", "question_id", "question", "options", "image"}
    assert "http://" not in first and "https://" not in first
    # one question per category in turn (10 categories), then the second round
    assert [q.category for q in chosen[:10]] == sorted({q.category for q in chosen[:10]},
                                                        key=[q.category for q in chosen].index)
    assert len({q.category for q in chosen[:10]}) == 10


def test_a_person_answers_in_the_browser_and_the_report_has_their_figures(
        export_dir, tmp_path, browser):
    from selenium.webdriver.common.by import By

    driver, downloads = browser
    page = tmp_path / "sheet.html"
    assert cli.main([str(export_dir), "--sheet", str(page), "--questions", "12",
                     "--seed", "3"]) == 0
    export = Export(export_dir)
    chosen = sheet.sample(export.items(), 12, seed=3)
    # the person answers the first 10: right on even positions, wrong on odd ones
    plan = {n: q.answer if n % 2 == 0 else LETTERS[(LETTERS.index(q.answer) + 1)
                                                   % len(q.options)]
            for n, q in enumerate(chosen[:10])}
    driver.get(page.as_uri())
    for n, letter in plan.items():
        driver.find_element(By.CSS_SELECTOR, f'input[name="q{n}"][value="{letter}"]').click()
    driver.save_screenshot(str(tmp_path / "sheet.png"))
    driver.refresh()  # the choices survive a reload
    assert driver.find_element(By.ID, "count").text == "10 of 12 answered"
    checked = {int(e.get_attribute("name")[1:]): e.get_attribute("value") for e in
               driver.find_elements(By.CSS_SELECTOR, "input[type=radio]:checked")}
    assert checked == plan
    driver.find_element(By.ID, "save").click()
    deadline = time.monotonic() + 20
    while not list(downloads.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [saved] = downloads.glob("*.json")
    assert saved.name == f"human_answers_{sheet.sheet_id(chosen)}.json"
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"question_id": i.question_id, "answer": i.answer})
                            + "\n" for i in export.items() if i.form == "single"))
    assert cli.main([str(export_dir), "--predictions", str(gold), "--human", str(saved),
                     "--out", str(tmp_path / "report"), "--no-plots"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    expected = {}
    for n, q in enumerate(chosen[:10]):
        right, count = expected.get((q.split, q.category), (0, 0))
        expected[(q.split, q.category)] = (right + (n % 2 == 0), count + 1)
    for split, entry in report["accuracy"]["single"].items():
        for category, cell in entry["category"].items():
            right_n = expected.get((split, category))
            assert cell["human"] == (None if right_n is None else
                                     {"accuracy": right_n[0] / right_n[1], "n": right_n[1]})


def test_answers_from_another_export_are_refused(export_dir, tmp_path, capsys):
    saved = tmp_path / "answers.json"
    saved.write_text(json.dumps({"kind": sheet.ANSWERS_KIND, "sheet": "x", "answers": [
        {"file": "scenegen_test_iid", "index": 0, "question_id": "elsewhere_00", "answer": "A"}]}))
    gold = tmp_path / "gold.jsonl"
    gold.write_text("")
    code = cli.main([str(export_dir), "--predictions", str(gold), "--human", str(saved)])
    assert code == 2
    assert "question 'elsewhere_00' (file scenegen_test_iid, index 0) is not in the export" in \
        capsys.readouterr().err
