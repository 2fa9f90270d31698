"""The pool's GPU rules on fake workers: the abandonment of a worker that outlives its
SIGKILL. No bpy, no GPU, no worker process."""

import io
import json
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from scenegen_addon.core import layout
from scenegen_addon.launcher import build, gpus, pool, progress
from scenegen_addon.launcher.exit_codes import ExitCode

H100 = "NVIDIA H100 80GB HBM3"


def device(index: int, name: str = H100) -> gpus.Device:
    uuid = f"GPU-{index:08x}-1111-2222-3333-444455556666"
    return gpus.Device(uuid, index, uuid, name)


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
    before it is ready, its first `broken[slot]` starts."""

    def __init__(self, config, todo, stuck=(), broken=None):
        self.said, self.kills, self.spawned = [], [], []
        self.stuck, self.broken = set(stuck), dict(broken or {})
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
        else:
            answers = [{"event": "idle"}, {"event": "scene_done", "scene_id": cmd["scene_id"]}]
        for event in answers:
            self.events.put((worker, event))

    def close(self, worker) -> None:
        worker.closing = True
        if worker.slot not in self.stuck:
            self.events.put((worker, {"event": "exit", "code": 0}))

    def kill(self, worker, sig=signal.SIGKILL) -> None:
        self.kills.append((worker.slot, sig))
        if worker.slot not in self.stuck:
            self.events.put((worker, {"event": "exit", "code": -int(sig)}))


def config(out: Path, devices, **over) -> pool.Config:
    fields = {"output": out, "command": ["fake"], "device": "CUDA", "devices": list(devices),
              "scene_timeout": 600.0, "first_scene_timeout": 600.0, "recycle_after": 100,
              "scene_bytes": 1, **over}
    return pool.Config(**fields)


def scene_ids(n: int) -> list[str]:
    return [f"train_{i:05d}" for i in range(n)]


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
