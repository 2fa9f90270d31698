"""The batch operator's overlap: scene k is post-processed in a thread while scene k+1
renders. Real bpy, 96x64 at 2 samples; seed 47 makes test_comp_00000 a 15-object
scene. The overlapped batch must write exactly what render_scene writes scene by scene."""

import json
import threading
import time
from pathlib import Path

import pytest
from scenegen_addon.core import layout, plan, records, sampling
from scenegen_addon.launcher import protocol

SEED = 47
COUNTS = {"train": 2, "test_comp": 1}
IDS = ["train_00000", "train_00001", "test_comp_00000"]


def write_plan(out: Path) -> None:
    settings = plan.plan_settings(seed=SEED, size=None, counts=COUNTS, quality="draft",
                                  resolution=(96, 64), samples=2, blender_version="5.0.1",
                                  numpy_version="x")
    layout.write_json(layout.internal(out) / "plan.json",
                              plan.document(settings), compact=True)


def events(text: str) -> list[dict]:
    return [e for e in map(protocol.parse_event, text.splitlines()) if e]


def without_timing(path: Path) -> dict:
    record = json.loads(path.read_text())
    del record["render"]["seconds"]
    return record


@pytest.fixture
def traced(monkeypatch):
    """Wrap the operator's two halves, noting when and in which thread each ran."""
    from scenegen_addon.blender import batch

    calls = []

    def wrap(name):
        original = getattr(batch, name)

        def traced_call(arg, *rest):
            start = time.perf_counter()
            result = original(arg, *rest)
            scene_id = (arg.spec if name == "finish_scene" else arg).scene_id
            calls.append((name, scene_id, start, time.perf_counter(),
                          threading.current_thread() is threading.main_thread()))
            return result

        monkeypatch.setattr(batch, name, traced_call)

    wrap("render_views")
    wrap("finish_scene")
    return calls


def test_overlapped_batch_writes_what_render_scene_writes(addon, empty_file, tmp_path,
                                                          capsys, traced):
    from scenegen_addon.blender import pipeline
    from scenegen_addon.blender.render import RenderSettings

    overlapped, one_by_one = tmp_path / "overlapped", tmp_path / "one_by_one"
    write_plan(overlapped)
    assert empty_file.ops.scenegen.batch(output=str(overlapped), scene_ids=",".join(IDS),
                                         device="CPU") == {"FINISHED"}
    done = events(capsys.readouterr().out)
    assert [(e["event"], e["scene_id"]) for e in done] == [("scene_done", s) for s in IDS]
    assert all(e["timings"]["sampling"] > 0 for e in done)

    entries = {e.scene_id: e for e in plan.build_plan(COUNTS, SEED)}
    for scene_id in IDS:
        spec = sampling.sample_scene(entries[scene_id], SEED)
        pipeline.render_scene(spec, one_by_one, RenderSettings(96, 64, 2, "CPU"))
    for scene_id in IDS:
        paths = layout.scene_paths(scene_id)
        assert without_timing(overlapped / paths["metadata"]) == without_timing(
            one_by_one / paths["metadata"])
        for mask in paths["masks"]:
            assert (overlapped / mask).read_bytes() == (one_by_one / mask).read_bytes()
        assert (overlapped / paths["image_single"]).exists()

    # every finish ran in the background, started before the next scene's render ended
    renders = {s: (start, end) for name, s, start, end, _ in traced if name == "render_views"}
    finishes = [(s, start, main) for name, s, start, _, main in traced if name == "finish_scene"]
    assert [s for s, _, _ in finishes] == IDS
    assert not any(main for _, _, main in finishes)
    for (scene_id, start, _), following in zip(finishes[:-1], IDS[1:], strict=True):
        assert start < renders[following][1], f"{scene_id} finished only after the next render"


def test_a_failing_post_processing_leaves_its_scene_incomplete(addon, empty_file, tmp_path,
                                                               capsys, monkeypatch):
    out = tmp_path / "data"
    write_plan(out)
    original = records.write_scene_record

    def fail_second(output, spec, *args):
        if spec.scene_id == IDS[1]:
            raise RuntimeError("constraints crashed")
        return original(output, spec, *args)

    monkeypatch.setattr(records, "write_scene_record", fail_second)
    with pytest.raises(RuntimeError, match="constraints crashed"):
        empty_file.ops.scenegen.batch(output=str(out), scene_ids=",".join(IDS), device="CPU")
    reported = [(e["event"], e["scene_id"]) for e in events(capsys.readouterr().out)]
    assert reported == [("scene_done", IDS[0]), ("scene_error", IDS[1])]
    assert sorted(p.stem for p in (out / "metadata").glob("*.json")) == [IDS[0]]
    assert layout.is_complete(out, IDS[0])
    assert not layout.is_complete(out, IDS[1]) and not layout.is_complete(out, IDS[2])


def test_finisher_runs_one_job_at_a_time_and_raises_failures_later():
    from scenegen_addon.blender.finisher import Finisher, FinishFailed

    finisher, log = Finisher(), []
    release = threading.Event()
    finisher.submit("a", lambda: release.wait(5) and "A", log.append)
    assert log == []  # still running
    release.set()
    finisher.submit("b", lambda: 1 / 0, log.append)  # waits for "a" first
    assert log == ["A"]
    with pytest.raises(FinishFailed) as failure:
        finisher.wait()
    assert failure.value.scene_id == "b" and isinstance(failure.value.cause, ZeroDivisionError)
    finisher.wait()  # the failure is raised once
