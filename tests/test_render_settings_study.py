"""benchmarks/bench_render_settings.py: its acceptance rule on hand-worked scores, and one
tiny real run (1 scene, 1 view, a 2-sample reference)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "benchmarks" / "bench_render_settings.py"


@pytest.fixture(scope="module")
def study():
    from benchmarks import bench_render_settings  # it imports bpy: only when needed

    return bench_render_settings


def scene(draft, **variants) -> dict:
    """One scene's result: name -> (cpu seconds, PSNR per crop, max object error per crop)."""
    rows = {"draft": draft, **variants}
    return {"variants": {name: {"wall": cpu, "cpu": cpu, "psnr": psnr, "max_object_error": err}
                         for name, (cpu, psnr, err) in rows.items()}}


def test_a_variant_must_keep_psnr_the_overall_and_each_scenes_max_error(study):
    results = [
        scene((10.0, [40.0, 42.0], [10, 30]),
              close=(8.0, [39.8, 41.6], [12, 30]),  # scene max 30 -> 30: fine
              noisy=(6.0, [40.0, 42.0], [10, 33]),  # overall 33 > 30
              worse=(5.0, [38.0, 39.0], [10, 30])),  # -5 dB / 6 crops
        scene((10.0, [44.0, 44.0], [5, 5]),
              close=(8.0, [43.8, 43.8], [7, 6]),  # rises 2: within the slack
              noisy=(6.0, [44.0, 44.0], [5, 5]),
              worse=(5.0, [44.0, 44.0], [5, 5])),
        scene((10.0, [44.0, 44.0], [8, 9]),
              close=(8.0, [44.0, 44.0], [9, 9]),
              noisy=(6.0, [44.0, 44.0], [8, 9]),
              worse=(5.0, [44.0, 44.0], [8, 9])),
    ]
    table = study.summary(results, ["draft", "close", "noisy", "worse"], tolerance=0.5)
    assert table["close"]["cpu_ratio"] == pytest.approx(0.8)
    assert table["close"]["delta_psnr"] == pytest.approx(-1.0 / 6)  # (0.2+0.4+0.2+0.2) / 6
    assert table["close"]["worst_scene_error_rise"] == 2
    assert [table[n]["acceptable"] for n in ("draft", "close", "noisy", "worse")] == [
        True, True, False, False]
    results[1]["variants"]["close"]["max_object_error"] = [8, 6]  # now rises 3 in a scene
    table = study.summary(results, ["draft", "close"], tolerance=0.5)
    assert table["close"]["max_object_error"] == 30 and not table["close"]["acceptable"]


@pytest.mark.slow  # runs the study's renders; its acceptance rule is tested above
def test_a_tiny_study_scores_a_variant_that_changes_no_pixel_like_the_draft(tmp_path):
    """With one view, persistent data has nothing to carry over: the same pixels."""
    out = tmp_path / "study.json"
    run = subprocess.run(
        [sys.executable, str(STUDY), "--scenes", "1", "--views", "1", "--reference-samples",
         "2", "--variants", "draft,persistent,samples_32", "--json", str(out)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["crop"] == [256, 192] and doc["scenes"][0]["n_objects"] == 15
    table = doc["summary"]
    assert table["persistent"]["mean_psnr"] == table["draft"]["mean_psnr"]
    assert table["persistent"]["max_object_error"] == table["draft"]["max_object_error"]
    assert math.isfinite(table["draft"]["mean_psnr"]) and table["draft"]["mean_psnr"] > 10
    assert table["samples_32"]["mean_psnr"] != table["draft"]["mean_psnr"]
