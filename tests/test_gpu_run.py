"""A GPU run's choices and the pool's GPU rules, on fake workers and fake doctor figures: the
backend (`auto` resolved once per folder and kept), the start order per GPU model (one
worker first while the kernel cache is cold, where the doctor measured it faster), and the
abandonment of a worker that outlives its SIGKILL. No bpy, no GPU, no worker process."""

import io
import json
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from scenegen_addon.core import layout
from scenegen_addon.launcher import backend, build, estimate, gpus, kernel_cache, pool, progress
from scenegen_addon.launcher.exit_codes import ExitCode

H100 = "NVIDIA H100 80GB HBM3"
L40S = "NVIDIA L40S"
BLENDER = "5.2.3 LTS"  # the Blender version of the doctor's figures below


def device(index: int, name: str = H100) -> gpus.Device:
    uuid = f"GPU-{index:08x}-1111-2222-3333-444455556666"
    return gpus.Device(uuid, index, uuid, name)


def choice(model=H100, chosen="CUDA", order=kernel_cache.ONE_FIRST) -> dict:
    """A `choices` entry of the doctor's figures file (launcher.doctor_report.choices)."""
    return {"model": model, "driver_version": "550.54.15", "blender_version": "5.2.3 LTS",
            "backend": {"default": "OPTIX", "chosen": chosen,
                        "seconds_per_scene": {"OPTIX": 14.0, "CUDA": 12.5}},
            "start_order": {"chosen": order, "gpus": 8, "backend": "OPTIX",
                            "alone_seconds": 300.0, "warm_seconds": 20.0,
                            "one_first_seconds": 320.0, "all_at_once_seconds": 900.0}}


def figures(tmp_path, *choices) -> dict:
    """The doctor's figures file where a build finds it ($XDG_CACHE_HOME/scenegen/); what
    the build reads from it."""
    layout.write_json(tmp_path / "cache" / "scenegen" / "doctor.json",
                      {"format": estimate.FIGURES_FORMAT, "entries": [],
                       "choices": list(choices)})
    return estimate.read_figures()


# --- the backend: resolved once per folder, kept ---------------------------------------------

def test_auto_takes_the_doctors_choice_else_cycles_default():
    found = backend.resolve("auto", None, [choice()], [H100] * 8, BLENDER, False)
    assert found.device == "CUDA"
    assert found.line() == (f"GPU backend CUDA: faster than OPTIX by more than 5%: the doctor "
                            f"measured {H100} (CUDA 12.50 s, OPTIX 14.00 s per scene)")
    kept = backend.resolve("auto", None, [choice(chosen="OPTIX")], [H100], BLENDER, False)
    assert kept.device == "OPTIX" and kept.why.startswith("Cycles' default, not beaten by more "
                                                          "than 5%: the doctor measured")
    none = backend.resolve("auto", None, [], [H100], BLENDER, False)
    assert none == backend.Choice("GPU", "Cycles' default: OptiX where it lists it, else CUDA "
                                         f"(the doctor has not compared OptiX and CUDA on {H100}: "
                                         "headless/doctor.py)")
    mixed = backend.resolve("auto", None, [choice(), choice(L40S, "OPTIX")], [H100, L40S],
                            BLENDER, False)
    assert mixed.device == "GPU" and "the doctor's choices differ between the models" in mixed.why
    other_model = backend.resolve("auto", None, [choice(L40S)], [H100], BLENDER, False)
    assert other_model.device == "GPU"
    ray = backend.resolve("auto", None, [choice()], [], BLENDER, True)
    assert ray.device == "GPU" and "did not measure a --ray run's GPUs" in ray.why
    asked = backend.resolve("optix", backend.Choice("CUDA", "x"), [choice()], [H100], BLENDER,
                            False)
    assert asked == backend.Choice("OPTIX", "--gpu-backend optix")


def test_auto_ignores_a_choice_of_another_blender_or_a_damaged_one():
    """Before: any Blender version's choice was taken, and a `chosen` missing or unknown
    ended the build with a KeyError (exit 70) or went to Cycles as a device."""
    other_blender = backend.resolve("auto", None, [choice()], [H100], "5.3.0", False)
    assert other_blender.device == "GPU" and "has not compared OptiX and CUDA" in other_blender.why
    for damaged in ({}, {"chosen": "METAL"}, {"chosen": None}):
        entry = choice()
        entry["backend"] = {**entry["backend"], **damaged}
        if not damaged:
            del entry["backend"]["chosen"]
        found = backend.resolve("auto", None, [entry], [H100], BLENDER, False)
        assert found.device == "GPU" and "has not compared OptiX and CUDA" in found.why


def run_args(**over):
    return SimpleNamespace(**{"gpu_backend": "auto", "overwrite": False, "ray": None, **over})


def gpu_start(out: Path, devices=None) -> build.Start:
    """A GPU run's start, with the doctor's figures as the build reads them when it starts."""
    devices = devices or [device(0), device(1)]
    return build.Start(out, None, "", "GPU", devices,
                       {"settings": {"blender_version": "5.2.3 LTS"}},
                       {d.gpu_uuid: "550.54.15" for d in devices}, estimate.read_figures())


def record(out: Path, start: build.Start) -> dict:
    """The run record as the build writes it when its render starts."""
    fake_pool = SimpleNamespace(config=SimpleNamespace(devices=start.devices))
    return build.start_run_record(out, fake_pool, start.device, start.gpu_backend)


def test_the_backend_is_chosen_at_the_first_run_and_kept_across_resumes(tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "data"
    (out / ".scenegen").mkdir(parents=True)
    figures(tmp_path, choice(chosen="CUDA"))
    first = gpu_start(out)
    build.choose_backend(run_args(), first)
    assert first.device == "CUDA"
    assert capsys.readouterr().out.startswith("scenegen: GPU backend CUDA: faster than OPTIX")
    assert record(out, first)["gpu_backend"] == {"device": "CUDA",
                                                 "why": first.gpu_backend.why}
    # the doctor now prefers OptiX: a resume keeps the folder's CUDA all the same
    figures(tmp_path, choice(chosen="OPTIX"))
    again = gpu_start(out)
    build.choose_backend(run_args(), again)
    assert again.device == "CUDA"
    assert capsys.readouterr().out == (
        "scenegen: GPU backend CUDA: kept from this folder's first GPU run (.scenegen/run.json: "
        f"{first.gpu_backend.why})\n")
    # a CPU run in between keeps it too
    cpu = build.Start(out, None, "", "CPU", [None], {"settings": {}}, {})
    build.choose_backend(run_args(), cpu)
    assert cpu.gpu_backend is None and record(out, cpu)["gpu_backend"]["device"] == "CUDA"
    # --gpu-backend names another: used, and kept from then on
    asked = gpu_start(out)
    build.choose_backend(run_args(gpu_backend="optix"), asked)
    assert asked.device == "OPTIX"
    record(out, asked)
    later = gpu_start(out)
    build.choose_backend(run_args(), later)
    assert later.device == "OPTIX"
    assert "kept from this folder's first GPU run" in later.gpu_backend.why
    # --overwrite starts the folder over: the doctor's choice again
    over = gpu_start(out)
    build.choose_backend(run_args(overwrite=True), over)
    assert over.device == "OPTIX"
    assert over.gpu_backend.why.startswith("Cycles' default, not beaten")


# --- the start order: the build reads the doctor's figures -------------------------------------

def test_the_start_order_comes_from_the_doctors_figures_and_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "data"
    devices = [device(0), device(1, L40S), device(2), device(3)]
    start = gpu_start(out, devices)
    start.device = "CUDA"
    no_figures = build.start_groups(run_args(), start)
    assert [(g.key.model, g.slots, g.one_first) for g in no_figures] == [
        (H100, (0, 2, 3), False), (L40S, (1,), False)]  # every worker at once
    start.figures = figures(tmp_path, choice(H100), choice(L40S))
    h100, l40s = build.start_groups(run_args(), start)
    cache = out / ".scenegen" / "kernel_cache"
    key = kernel_cache.WarmKey(H100, "550.54.15", "5.2.3 LTS", "CUDA")
    assert (h100.key, h100.slots, h100.one_first) == (key, (0, 2, 3), True)
    assert h100.markers == (cache / "cuda" / "scenegen-warm" /
                            "NVIDIA_H100_80GB_HBM3-550.54.15-5.2.3_LTS-CUDA.json",)
    assert "320.0 s to start every GPU this way against 900.0 s all at once" in h100.why
    start.settings["blender_version"] = "5.3.0"  # the doctor measured another Blender
    assert not build.start_groups(run_args(), start)[0].one_first
    start.settings["blender_version"] = BLENDER
    assert (l40s.slots, l40s.one_first) == ((1,), False)  # one GPU: nothing to share
    assert build.start_groups(run_args(ray=""), start) == ()  # Ray: the default order
    # OptiX fills both caches: both must hold the marker; then the cache is warm
    start.device = "OPTIX"
    h100 = build.start_groups(run_args(), start)[0]
    assert [p.parent.parent.name for p in h100.markers] == ["cuda", "optix"]
    kernel_cache.mark_warm(h100.markers[:1], h100.key)
    assert build.start_groups(run_args(), start)[0].one_first
    kernel_cache.mark_warm(h100.markers, h100.key)
    assert not build.start_groups(run_args(), start)[0].one_first
    start.figures = figures(tmp_path, choice(H100, order=kernel_cache.ALL_AT_ONCE))
    start.device = "CUDA"
    assert not build.start_groups(run_args(), start)[0].one_first
    # the user's own cache folder holds the markers
    monkeypatch.setenv("CUDA_CACHE_PATH", str(tmp_path / "mine"))
    assert build.start_groups(run_args(), start)[0].markers[0].parent == (
        tmp_path / "mine" / "scenegen-warm")


def test_a_build_reads_the_doctors_figures_once(tmp_path, monkeypatch):
    """The backend, the time estimate and the start order come from the figures the build
    read when it started, never from a file a doctor may be writing meanwhile."""
    start = gpu_start(tmp_path / "data")
    start.document["settings"].update(quality="draft", resolution=[480, 320], samples=64)
    start.figures = {"format": estimate.FIGURES_FORMAT, "entries": [], "choices": [choice()]}
    reads = []
    monkeypatch.setattr(estimate, "read_figures", lambda path=None: reads.append(path))
    build.choose_backend(run_args(), start)
    build.estimate_time(False, start, SimpleNamespace(todo=[]))
    groups = build.start_groups(run_args(), start)
    assert reads == []
    assert start.device == "CUDA" and groups[0].one_first  # the doctor's choices


# --- fake workers -----------------------------------------------------------------------------

class FakeProc:
    """A worker process as the pool holds it: a PID and stdin; it never exits by itself."""

    def __init__(self, pid: int):
        self.pid, self.stdin = pid, io.StringIO()

    def wait(self, timeout=None):
        raise subprocess.TimeoutExpired("fake worker", timeout)


class FakeWorkers(pool.Pool):
    """Workers that answer at once through the event queue, as blender/worker.py does. A
    worker on a `stuck` slot hangs in its first render, its kill has no effect and it never
    reports its exit (a process stuck in the GPU driver); one on a `broken` slot exits
    before it is ready, its first `broken[slot]` starts; one on an `unclosable` slot does not
    exit when closed (stuck tearing down), only when killed."""

    def __init__(self, config, todo, stuck=(), broken=None, unsampled=(), unclosable=()):
        self.said, self.kills, self.spawned = [], [], []
        self.stuck, self.broken = set(stuck), dict(broken or {})
        self.unclosable = set(unclosable)
        self.unsampled = set(unsampled)  # scenes whose sampling runs out of retries
        super().__init__(config, list(todo), len(todo), 0, 1.0, say=self.said.append)

    def spawn(self, slot: int) -> pool.Worker:
        worker = pool.Worker(slot, FakeProc(4000 + len(self.workers)), io.StringIO(),
                             time.monotonic())
        self.workers.append(worker)
        self.spawned.append(slot)
        if self.broken.get(slot, 0) > 0:
            self.broken[slot] -= 1
            self.events.put((worker, {"event": "exit", "code": 1}))
        else:
            self.events.put((worker, {"event": "ready"}))
        return worker

    def send(self, worker, command: str) -> None:
        cmd = json.loads(command)
        if cmd["cmd"] == "merge":
            answers = [{"event": "merged"}, {"event": "idle"}]
        elif worker.slot in self.stuck:
            answers = []
        elif cmd["scene_id"] in self.unsampled:
            answers = [{"event": "idle"}, {"event": "scene_failed", "scene_id": cmd["scene_id"],
                                           "reason": "sampling failed"}]
        else:
            answers = [{"event": "idle"}, {"event": "scene_done", "scene_id": cmd["scene_id"]}]
        for event in answers:
            self.events.put((worker, event))

    def close(self, worker) -> None:
        worker.closed_at = worker.closed_at or time.monotonic()
        if worker.slot not in self.stuck | self.unclosable:
            self.events.put((worker, {"event": "exit", "code": 0}))

    def kill(self, worker, sig=signal.SIGKILL) -> None:
        self.kills.append((worker.slot, sig))
        if worker.slot not in self.stuck:
            self.events.put((worker, {"event": "exit", "code": -int(sig)}))


def config(out: Path, devices, groups=(), **over) -> pool.Config:
    fields = {"output": out, "command": ["fake"], "device": "CUDA", "devices": list(devices),
              "scene_timeout": 600.0, "first_scene_timeout": 600.0, "recycle_after": 100,
              "scene_bytes": 1, "start_groups": tuple(groups), **over}
    return pool.Config(**fields)


def scene_ids(n: int) -> list[str]:
    return [f"train_{i:05d}" for i in range(n)]


def one_first(out: Path, devices) -> tuple:
    """The build's groups for `devices` where the doctor measured one worker first faster."""
    folders = kernel_cache.cache_folders(out / "cache", {}, "CUDA")
    return kernel_cache.groups(devices, {}, "5.2.3 LTS", "CUDA", folders,
                               [choice(H100), choice(L40S)])


def step_until(workers: pool.Pool, condition, seconds=10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the pool did not get there"
        workers.step(timeout=0.05)
        workers.dispatch()


def test_one_worker_per_gpu_model_first_the_rest_after_its_first_scene(tmp_path):
    devices = [device(0), device(1), device(2, L40S), device(3), device(4, L40S)]
    groups = one_first(tmp_path, devices)
    workers = FakeWorkers(config(tmp_path, devices, groups), scene_ids(10))
    # at the start: the first H100 and the first L40S, nothing else
    for slot in workers.starts.initial(len(devices)):
        workers.spawn(slot)
    assert workers.spawned == [0, 2]
    workers.progress(force=True)
    assert progress.read(tmp_path)["message"] == (
        f"compiling Cycles kernels for {H100} (first start on this machine); compiling Cycles "
        f"kernels for {L40S} (first start on this machine)")
    # each pioneer's first scene done: the markers are written, its model's others start
    step_until(workers, lambda: len(workers.spawned) == 5)
    assert sorted(workers.spawned[2:]) == [1, 3, 4]
    assert all(path.is_file() for g in groups for path in g.markers)
    assert sum("compiled and cached: starting" in line for line in workers.said) == 2
    workers.progress(force=True)
    assert progress.read(tmp_path)["message"] == ""
    step_until(workers, lambda: not workers.todo and not any(w.scenes for w in workers.live()))
    assert workers.complete == 10
    # the next run finds the cache warm: every worker at once
    warm = FakeWorkers(config(tmp_path, devices, one_first(tmp_path, devices)), scene_ids(10))
    assert warm.starts.initial(len(devices)) == [0, 1, 2, 3, 4]


def test_a_pioneer_whose_first_scene_cannot_be_sampled_releases_the_rest_on_its_first_render(
        tmp_path):
    """A scene that fails sampling renders nothing: the kernels are compiled by the pioneer's
    first rendered scene, which starts the others (not its recycling 100 scenes later)."""
    devices = [device(0), device(1), device(3)]
    workers = FakeWorkers(config(tmp_path, devices, one_first(tmp_path, devices)),
                          scene_ids(6), unsampled={"train_00000"})
    for slot in workers.starts.initial(len(devices)):
        workers.spawn(slot)
    assert workers.spawned == [0]
    step_until(workers, lambda: workers.complete == 1)
    assert "train_00000" in workers.failures
    step_until(workers, lambda: len(workers.spawned) == 3)
    assert workers.complete == 1 and sorted(workers.spawned) == [0, 1, 2]


def test_without_figures_every_worker_starts_at_once_and_the_cache_is_marked(tmp_path):
    devices = [device(0), device(1), device(2)]
    folders = kernel_cache.cache_folders(tmp_path / "cache", {}, "CUDA")
    groups = kernel_cache.groups(devices, {}, "5.2.3 LTS", "CUDA", folders, [])
    workers = FakeWorkers(config(tmp_path, devices, groups), scene_ids(6))
    workers.run()
    assert sorted(workers.spawned) == [0, 1, 2] and workers.complete == 6
    assert not any("compiling Cycles kernels" in line for line in workers.said)
    assert all(path.is_file() for path in groups[0].markers)  # known warm for the next run


def test_a_pioneer_that_fails_to_start_hands_its_place_to_the_next(tmp_path):
    devices = [device(0), device(1), device(2)]
    workers = FakeWorkers(config(tmp_path, devices, one_first(tmp_path, devices)),
                          scene_ids(8), broken={0: 3})
    workers.run()
    assert workers.complete == 8
    # 0 fails; 1 compiles in its place; after 1's first scene, 2 and 0 start (0 fails twice
    # more and is not started again: three failed starts)
    assert workers.spawned[:2] == [0, 1]
    assert sorted(workers.spawned[2:]) == [0, 0, 2]
    assert "worker 1 compiles the Cycles kernels in place of worker 0" in workers.said
    assert workers.start_failures[0] == 3


# --- abandonment of a worker that outlives its SIGKILL --------------------------------------------

def test_a_worker_that_does_not_die_is_abandoned_and_its_scene_goes_elsewhere(tmp_path):
    devices = [device(0), device(1)]
    workers = FakeWorkers(config(tmp_path, devices, first_scene_timeout=0.2, kill_grace=0.3),
                          scene_ids(4), stuck={0})
    started = time.monotonic()
    workers.run()  # returns: nothing waits on the stuck worker
    assert time.monotonic() - started < 10
    assert workers.complete == 4 and not workers.failures
    stuck = workers.workers[0]
    assert stuck.slot == 0 and stuck.abandoned and not stuck.alive
    assert workers.kills == [(0, signal.SIGKILL)]  # killed once, then waited 0.3 s, no more
    assert workers.spawned == [0, 1]  # slot 0 is given up, not started again
    assert workers.given_up[0].startswith("timed out (first scene of a worker limit 0 s), then "
                                          "did not exit within 0 s of SIGKILL")
    where = f"GPU 0 {H100} ({device(0).uuid}), PID 4000"
    assert workers.abandoned == [f"worker 0 on {where}"]
    assert any(line.startswith(f"worker 0 ({where}) abandoned: timed out") and
               line.endswith("its slot is given up, its scenes go to other workers")
               for line in workers.said)
    assert workers.attempts == {"train_00000": 1}  # its scene went to worker 1
    # a late exit event of the abandoned worker changes nothing
    workers.handle(stuck, {"event": "exit", "code": -9})
    assert workers.complete == 4 and workers.spawned == [0, 1]


def test_the_run_ends_with_exit_0_listing_what_was_abandoned(tmp_path, monkeypatch):
    out = tmp_path / "data"
    out.mkdir()
    monkeypatch.setattr(build.validate, "run", lambda *args, **kwargs: ExitCode.OK)
    devices = [device(0), device(1)]
    workers = FakeWorkers(config(out, devices, first_scene_timeout=0.2, kill_grace=0.3),
                          scene_ids(3), stuck={0})
    scenes = [SimpleNamespace(scene_id=s) for s in scene_ids(3)]
    code = build.render_and_end(workers, out, scenes, "CUDA")
    assert code == ExitCode.OK
    result = workers.said[-1]
    assert result == ("done: the dataset is complete and valid (exit code 0); abandoned after "
                      f"SIGKILL: worker 0 on GPU 0 {H100} ({device(0).uuid}), PID 4000")
    assert progress.read(out)["message"] == result


def test_when_no_slot_is_left_the_run_stops_with_exit_6_naming_gpus_and_pids(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    devices = [device(0), device(1)]
    workers = FakeWorkers(config(out, devices, first_scene_timeout=0.2, kill_grace=0.3),
                          scene_ids(3), stuck={0, 1})
    scenes = [SimpleNamespace(scene_id=s) for s in scene_ids(3)]
    started = time.monotonic()
    assert build.render_and_end(workers, out, scenes, "CUDA") == ExitCode.DEVICES_FAILED
    assert time.monotonic() - started < 10
    message = workers.said[-1]
    assert message.startswith("every worker slot was given up; abandoned after SIGKILL (stuck, "
                              f"e.g. in the GPU driver): worker 0 on GPU 0 {H100} "
                              f"({device(0).uuid}), PID 4000; worker 1 on GPU 1 {H100} "
                              f"({device(1).uuid}), PID 4001; the last failure: ")
    assert message.endswith("a stuck GPU usually needs a reset or a reboot")
    assert json.loads(layout.run_file(out).read_text())["runs"] == 1


def test_a_closed_worker_that_does_not_exit_is_killed_and_its_slot_started_again(tmp_path):
    """Recycled after each scene, its close has no effect: before, the slot was lost for the
    rest of the run (the run never ended with one slot)."""
    workers = FakeWorkers(config(tmp_path, [device(0)], recycle_after=1, close_grace=0.1),
                          scene_ids(3), unclosable={0})
    workers.spawn(0)
    step_until(workers, lambda: workers.complete == 3)
    assert workers.spawned == [0, 0, 0]
    assert workers.kills == [(0, signal.SIGKILL)] * 2
    assert workers.said.count("worker 0 did not exit within 0 s of being closed: killed") == 2
    assert not workers.given_up and not workers.abandoned


def test_a_closed_worker_that_outlives_its_sigkill_is_abandoned_and_named(tmp_path):
    devices = [device(0), device(1)]
    workers = FakeWorkers(config(tmp_path, devices, recycle_after=1, close_grace=0.1,
                                 kill_grace=0.2), scene_ids(4), unclosable={0})
    for slot in (0, 1):
        workers.spawn(slot)
    step_until(workers, lambda: workers.workers[0].closing)
    workers.stuck.add(0)  # stuck in the GPU driver: its SIGKILL has no effect either
    step_until(workers, lambda: workers.complete == 4 and workers.workers[0].abandoned)
    assert workers.spawned.count(0) == 1 and workers.kills == [(0, signal.SIGKILL)]
    assert workers.given_up[0] == ("did not exit within 0 s of being closed, then did not "
                                   "exit within 0 s of SIGKILL")
    assert workers.abandoned == [f"worker 0 on GPU 0 {H100} ({device(0).uuid}), PID 4000"]


@pytest.mark.parametrize("where", ["stop", "wait_closed"])
def test_stopping_never_waits_forever_for_a_killed_worker(tmp_path, where):
    workers = FakeWorkers(config(tmp_path, [device(0)], kill_grace=0.2), scene_ids(1),
                          stuck={0})
    worker = workers.spawn(0)
    started = time.monotonic()
    if where == "stop":
        workers.stop(grace=0.1)
    else:
        workers.wait_closed(timeout=0.1)
    assert time.monotonic() - started < 5
    assert not worker.alive or where == "wait_closed"
    assert workers.said[-1] == ("worker 0 (PID 4000) did not exit within 0 s of SIGKILL: left "
                                "behind")
