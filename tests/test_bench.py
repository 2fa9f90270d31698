"""headless/bench.py: its figures from hand-worked numbers, and one real tiny run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scenegen_addon.launcher import bench

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "headless" / "bench.py"


def test_slope_is_the_least_squares_slope():
    assert bench.slope([1, 2, 3], [10, 12, 14]) == pytest.approx(2.0)
    assert bench.slope([1, 2, 3, 4], [0, 1, 1, 2]) == pytest.approx(0.6)  # 3 / 5
    assert bench.slope([5], [1.0]) is None


def test_non_render_ratio_counts_everything_between_completions():
    # ready at 0; scenes done at 3 and 5 with 2 s and 1 s inside Cycles
    assert bench.non_render_ratios(0.0, [3.0, 5.0], [2.0, 1.0]) == pytest.approx([0.5, 1.0])


def test_figures_from_a_watched_run(tmp_path):
    watch = bench.Watch(tmp_path)
    watch.spawned, watch.ready, watch.pids = [1.0], [3.0], [123]
    timings = {"sampling": 0.1, "build": 0.2, "render": 4.0, "readback": 0.1,
               "constraints": 0.3, "write": 0.2}
    watch.scenes = [dict(timings=timings, at=3.0 + 5 * (i + 1), rss_mb=500.0 + i, pid=123)
                    for i in range(6)]
    watch.merged, watch.validating, watch.end, watch.peak_mb = 34.0, 35.0, 40.0, 600.0
    fig = bench.figures(watch, wall=40.0, plan_seconds=0.01, images_per_scene=4)
    assert fig["scenes"] == 6 and fig["render_seconds"] == pytest.approx(24.0)
    assert fig["scenes_per_hour"] == pytest.approx(6 / 40 * 3600)
    assert fig["images_per_hour"] == pytest.approx(24 / 40 * 3600)
    assert fig["non_render_ratio"]["mean"] == pytest.approx(0.25)  # 5 s per scene, 4 inside
    assert fig["overhead_ratio"] == pytest.approx(40 / 24)
    assert fig["worker_startup_seconds"] == [pytest.approx(2.0)]
    assert fig["stage_seconds"]["merge"] == pytest.approx(1.0)  # last scene done at 33
    assert fig["stage_seconds"]["validation"] == pytest.approx(5.0)
    assert fig["stage_seconds"]["constraints"] == pytest.approx(1.8)
    assert fig["rss_growth_mb_per_100_scenes"] == pytest.approx(100.0)  # 1 MB per scene
    assert fig["rss_growth_from_scenes"] == 3


def test_rss_growth_is_taken_within_the_longest_lived_worker(tmp_path):
    watch = bench.Watch(tmp_path)
    watch.spawned, watch.ready, watch.pids = [1.0, 40.0], [3.0, 41.0], [123, 456]
    timings = {"render": 4.0}
    first = [dict(timings=timings, at=3.0 + 5 * (i + 1), rss_mb=500.0 + 2 * i, pid=123)
             for i in range(7)]  # 2 MB per scene
    second = [dict(timings=timings, at=45.0 + 5 * i, rss_mb=400.0, pid=456) for i in range(2)]
    watch.scenes, watch.end = first + second, 60.0  # recycled after 7 scenes
    fig = bench.figures(watch, wall=60.0, plan_seconds=0.0, images_per_scene=4)
    assert fig["rss_growth_mb_per_100_scenes"] == pytest.approx(200.0)
    assert fig["rss_growth_from_scenes"] == 4


def test_a_scenes_rss_is_the_lowest_seen_since_the_scene_before(tmp_path):
    from scenegen_addon.launcher import protocol

    watch = bench.Watch(tmp_path)
    watch.pids = [os.getpid()]  # this process stands in for the worker
    watch.floor_mb = 1.0  # a low sample since the last scene ...
    watch.poll()  # ... stays the floor when a higher one comes
    watch.line(protocol.event_line(protocol.SCENE_DONE, scene_id="a"), 5.0)
    assert watch.scenes[0]["rss_mb"] == 1.0 and watch.floor_mb is None
    watch.poll()  # the next scene's floor starts afresh
    assert watch.floor_mb == pytest.approx(bench.proc_memory(os.getpid())[0], rel=0.1)


@pytest.mark.slow  # runs the whole benchmark; its figures are tested above on watched data
def test_a_tiny_run_reports_every_figure(tmp_path):
    run = subprocess.run(
        [sys.executable, str(BENCH), "--scenes-per-split", "1", "--resolution", "96x64",
         "--samples", "2", "--seed", "47", "--output", str(tmp_path / "data"),
         "--json", str(tmp_path / "bench.json")],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-2000:]
    fig = json.loads(run.stdout.strip().splitlines()[-1])
    assert fig == json.loads((tmp_path / "bench.json").read_text())
    assert "non-render ratio" in run.stdout and "stage validation" in run.stdout
    assert (fig["scenes"], fig["failed"]) == (5, 0)
    assert len(list((tmp_path / "data" / "metadata").glob("*.json"))) == 5
    records = [json.loads(p.read_text()) for p in (tmp_path / "data" / "metadata").iterdir()]
    assert fig["render_seconds"] == pytest.approx(sum(r["render"]["seconds"] for r in records))
    assert fig["overhead_ratio"] == pytest.approx(fig["wall_seconds"] / fig["render_seconds"])
    assert fig["overhead_ratio"] > 1
    stages = fig["stage_seconds"]
    assert all(stages[name] is not None and stages[name] >= 0 for name in stages)
    assert stages["render"] + stages["merge"] + stages["validation"] < fig["wall_seconds"]
    assert len(fig["worker_startup_seconds"]) == 1 and fig["worker_startup_seconds"][0] > 0
    assert fig["worker_peak_rss_mb"] > 100  # bpy alone is larger


def test_the_watch_reads_the_launchers_own_marks(tmp_path, capsys):
    """A worker's start is the launcher's start mark in its log (pool and Ray alike), not
    any line that mentions a start; the validation starts where the build names it."""
    from scenegen_addon.launcher import protocol

    watch = bench.Watch(tmp_path)
    for at, line in enumerate([
            protocol.log_mark(f"{protocol.WORKER_START} (CPU): python run.py worker"),
            "Blender 5.2.3: start of the render\n",
            protocol.log_mark(f"{protocol.WORKER_START} on node 10.0.0.2 (ab12cd34, n1) "
                              "(CPU): python run.py worker"),
            protocol.log_mark(f"{protocol.WORKER_EXIT} 0")]):
        watch.line(line, float(at))
    assert watch.spawned == [0.0, 2.0]
    assert protocol.log_mark_says(protocol.log_mark("exit code 0")) == "exit code 0"
    watch.stderr_reader(["scenegen: rendered: 5/5 complete, 0 failed; validating\n"])
    assert watch.validating is not None
    assert "validating" in capsys.readouterr().err
