"""The launcher's worker pool: dynamic dispatch, restarts, timeouts, recycling, merge.

Each worker is a long-lived Blender (or Python with bpy) running blender/worker.py. It
gets one scene at a time on its stdin and asks for the next when it is free, so slow
scenes never leave a device idle. A worker that dies or hangs is killed and replaced, and
its scenes are rerun with the same seed up to MAX_RERUNS times before they are recorded
failed.
One thread per worker reads its stdout into a single event queue; all state lives in the
main thread. A worker gets a command only after its "ready" or "idle" event, and is closed
(recycled, or at the end) only when idle with no scene in flight, so a pipe that closes in
the middle of a command always means that the launcher is gone. A worker asks for the
next scene (idle) before reporting the last (scene_done): it finishes one scene while
rendering the next. Every scene in flight is tracked by its id, rerun if the worker dies,
and the oldest one is timed. A closed worker still there after STOP_GRACE_SECONDS is killed
(its slot is started again once it exits). A worker that outlives its SIGKILL by
KILL_GRACE_SECONDS (stuck in the GPU driver) is abandoned: its slot is given up and its
scenes go to other workers.
Where the doctor measured it faster, one worker per GPU model starts first and the others
once its first scene has filled the kernel cache (launcher.kernel_cache).
"""

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..core import files, layout
from . import kernel_cache, progress, protocol

MAX_RERUNS = 3
START_FAILURES = 3  # a slot whose worker fails to start this many times in a row is given up
# A slot whose workers fail this many different scenes in a row, completing none, is given
# up (a GPU or driver fault, not a bad scene: one scene failing again and again only uses up
# its own reruns).
SLOT_FAILURES = 3
STOP_GRACE_SECONDS = 10.0  # from a worker's close (or SIGTERM) to its SIGKILL
# A killed process is gone within seconds, even one freeing a large GPU context; one that is
# still there after this long is stuck in the kernel (a GPU driver after an Xid error) and
# may never exit: it is abandoned instead of waited for.
KILL_GRACE_SECONDS = 120.0


class DiskFull(Exception):
    """The output disk is full, over quota or read-only: stop at once (exit 4)."""


class RunFailed(Exception):
    """Workers cannot start, or the merge failed (exit 5)."""


class DevicesFailed(Exception):
    """Every worker slot was given up, failing scene after scene or abandoned (exit 6)."""


class Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def worker_env(environ, device, output) -> dict:
    """A worker's environment: pinned to its GPU (`device`; None: the CPU) with its kernel
    caches in the output unless set, and its temporary files in the output's scratch folder,
    which a build's start and end empty: Blender's own blender_* folder stays behind
    whenever a worker is killed or ends with os._exit."""
    env = dict(environ)
    if device is not None:
        env.update(device.env())
        env.update(kernel_cache.cache_env(str(layout.kernel_cache_dir(output)), environ))
    scratch = layout.scratch_dir(output)
    scratch.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(scratch)
    return env


@dataclass
class Config:
    output: Path
    command: list[str]  # how to start worker.py, before the worker's own arguments
    device: str  # the workers' Cycles device: "CPU", "GPU" (the best GPU type), "OPTIX", "CUDA"
    devices: list  # the gpus.Device of each worker slot, None for CPU workers
    scene_timeout: float
    first_scene_timeout: float
    recycle_after: int
    scene_bytes: int  # a generous size of one scene, for the free-space check
    passes: tuple = ()  # the plan's optional passes: their files are the scenes' too
    start_groups: tuple = ()  # kernel_cache.Group per GPU model; none: every worker at once
    kill_grace: float = KILL_GRACE_SECONDS
    close_grace: float = STOP_GRACE_SECONDS


@dataclass
class Worker:
    slot: int
    proc: subprocess.Popen
    log: object
    spawned: float
    ready: bool = False  # started (its first "ready" event)
    idle: bool = False  # waiting for a command ("ready" or "idle" event)
    scenes: dict = field(default_factory=dict)  # scene id in flight -> when it was sent
    rendered: int = 0
    closed_at: float | None = None  # when the launcher closed it (recycled, or at the end)
    error: str | None = None
    alive: bool = True
    killed_at: float | None = None  # when the launcher killed it (a timeout)
    abandoned: bool = False  # it outlived its SIGKILL: its events are ignored
    merging: bool = False
    merged: bool = False

    @property
    def closing(self) -> bool:
        return self.closed_at is not None


class Pool:
    # How the validation maps its per-scene checks: None is its own local processes
    # (launcher.cluster.RayPool maps them over the cluster's CPUs).
    map_tasks = None

    def __init__(self, config: Config, todo: list[str], total: int, complete: int,
                 estimate_seconds: float, say):
        self.config = config
        self.todo = deque(todo)
        self.total, self.complete, self.initial = total, complete, complete
        self.estimate = estimate_seconds
        self.events: queue.Queue = queue.Queue()
        self.workers: list[Worker] = []
        self.start_failures = {slot: 0 for slot in range(len(config.devices))}
        self.failed_scenes = {slot: set() for slot in range(len(config.devices))}
        self.given_up: dict[int, str] = {}  # slot -> the reason of its last failure
        self.abandoned: list[str] = []  # each abandoned worker: its device and PID
        self.starts = kernel_cache.Starts(config.start_groups)
        self.attempts: dict[str, int] = {}
        self.failures: dict[str, str] = {}
        self.signal: int | None = None
        self.started = time.monotonic()
        self.last_progress = 0.0
        self.logs = layout.logs_dir(config.output)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.display = progress.Display(config.output, say)

    # --- workers --------------------------------------------------------------------

    def spawn(self, slot: int) -> Worker:
        gpu = self.config.devices[slot]
        env = worker_env(os.environ, gpu, self.config.output)
        args = ["--output", str(self.config.output), "--device", self.config.device,
                "--worker", str(slot), "--parent-pid", str(os.getpid())]
        command = self.config.command + args
        log = files.append_text(self.logs / f"worker_{slot}.log")  # never a FIFO or a link
        device = "CPU" if gpu is None else f"CUDA_VISIBLE_DEVICES={gpu.uuid}: {gpu.describe()}"
        log.write(protocol.log_mark(f"{protocol.WORKER_START} ({device}): {' '.join(command)}"))
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
            encoding="utf-8", errors="replace", bufsize=1, start_new_session=True,
        )
        worker = Worker(slot, proc, log, time.monotonic())
        self.workers.append(worker)
        threading.Thread(target=self._read, args=(worker,), daemon=True).start()
        return worker

    def _read(self, worker: Worker) -> None:
        """Copy the worker's stdout to its log and its progress lines to the event queue;
        nothing here may stop the thread before the exit event is queued."""
        for line in worker.proc.stdout:
            try:
                worker.log.write(line)
            except (OSError, ValueError):  # a full disk must not hide the worker's events
                pass
            event = protocol.parse_event(line)
            if event is not None:
                self.events.put((worker, event))
        code = worker.proc.wait()
        self.events.put((worker, {"event": protocol.EXIT, "code": code}))

    def send(self, worker: Worker, command: str) -> None:
        try:
            worker.proc.stdin.write(command)
            worker.proc.stdin.flush()
        except OSError:
            worker.killed_at = worker.killed_at or time.monotonic()
            self.kill(worker)  # its exit event follows and reruns the scene

    def close(self, worker: Worker) -> None:
        worker.closed_at = worker.closed_at or time.monotonic()
        try:
            worker.proc.stdin.close()
        except OSError:
            pass

    def kill(self, worker: Worker, sig=signal.SIGKILL) -> None:
        try:
            os.killpg(worker.proc.pid, sig)
        except ProcessLookupError:
            pass

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    # --- the render phase -----------------------------------------------------------

    def run(self) -> None:
        """Render every scene of the queue; raises DiskFull, RunFailed, DevicesFailed or
        Stopped."""
        for slot in self.starts.initial(len(self.config.devices))[:len(self.todo)]:
            self.spawn(slot)
        for group in self.config.start_groups:
            if group.one_first:
                self.note(f"compiling Cycles kernels for {group.key.model} (first start on "
                          f"this machine) on worker {group.slots[0]} first; its "
                          f"{len(group.slots) - 1} other worker(s) start once its first scene "
                          f"is done ({group.why})")
        while self.todo or any(w.scenes for w in self.live()):
            self.step()
            self.dispatch()

    def step(self, timeout: float = 0.5) -> None:
        if self.signal is not None:
            raise Stopped(self.signal)
        try:
            worker, event = self.events.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self.handle(worker, event)
        self.check_timeouts()
        self.progress()

    def dispatch(self) -> None:
        for worker in self.live():
            if not worker.idle or worker.closing or not self.todo:
                continue
            if worker.rendered + len(worker.scenes) >= self.config.recycle_after:
                if not worker.scenes:
                    self.close(worker)  # recycled: a fresh worker replaces it on exit
                continue
            self.check_disk()
            scene_id = self.todo.popleft()
            worker.idle = False
            # the worker's start-up counts against its first scene only
            first = not worker.rendered and not worker.scenes
            worker.scenes[scene_id] = worker.spawned if first else time.monotonic()
            self.send(worker, protocol.command(protocol.RENDER, scene_id=scene_id))

    def handle(self, worker: Worker, event: dict) -> None:
        kind = event.get("event")
        if worker.abandoned:
            return
        if kind in (protocol.READY, protocol.IDLE):
            worker.ready = worker.idle = True
        elif kind in (protocol.SCENE_DONE, protocol.SCENE_FAILED) and (
                event.get("scene_id") in worker.scenes):
            scene_id = event["scene_id"]
            del worker.scenes[scene_id]
            if kind == protocol.SCENE_DONE:
                self.complete += 1
                self.start_failures[worker.slot] = 0
                self.failed_scenes[worker.slot].clear()
                if not event.get("already_complete"):  # rendered: the kernels are built
                    self.kernels_compiled(worker.slot)
            else:
                self.failures[scene_id] = event.get("reason", "sampling failed")
                self.note(f"scene {scene_id} failed: {self.failures[scene_id]}")
            worker.rendered += 1
        elif kind == protocol.SCENE_ERROR:
            worker.error = event.get("reason")
        elif kind == protocol.DISK_ERROR:
            raise DiskFull(event.get("reason", "disk error"))
        elif kind == protocol.MERGE_FAILED:
            raise RunFailed(f"the merge failed: {event.get('reason')}")
        elif kind == protocol.EXIT:
            self.exited(worker, event["code"])
        elif kind == protocol.MERGED:
            worker.merged = True

    def exited(self, worker: Worker, code: int) -> None:
        worker.alive = False
        try:
            worker.log.write(protocol.log_mark(f"{protocol.WORKER_EXIT} {code}"))
            worker.log.close()
        except OSError:
            pass
        slot = worker.slot
        reason = worker.error or f"worker exited with code {code}"
        for scene_id in worker.scenes:
            self.rerun(scene_id, reason)
        if worker.scenes:
            self.failed_scenes[slot].update(worker.scenes)
            worker.scenes.clear()
            if len(self.failed_scenes[slot]) >= SLOT_FAILURES:
                self.give_up(slot, reason)
        elif not worker.closing and not worker.ready:
            self.start_failures[slot] += 1
            self.note(f"worker {slot} failed to start ({reason}); see its log")
        if worker.merging:
            raise RunFailed(f"worker {slot} exited during the merge (code {code}); see its log")
        self.replace(worker, reason)

    def startable(self, slot: int) -> bool:
        return slot not in self.given_up and self.start_failures[slot] < START_FAILURES

    def replace(self, worker: Worker, reason: str) -> None:
        """After a worker went: start its slot again (or, for a pioneer that never finished a
        scene, the next slot of its GPU model); stop the run when no worker is left."""
        slot = worker.slot
        if not worker.rendered and (pioneer := self.starts.lost(slot, self.startable)) is not None:
            if self.todo and pioneer != slot:
                self.note(f"worker {pioneer} compiles the Cycles kernels in place of worker "
                          f"{slot}")
            slot = pioneer
        if self.todo and self.startable(slot) and not self.starts.held(slot):
            self.spawn(slot)
        elif self.todo and not self.live():
            if len(self.given_up) == len(self.config.devices):
                raise DevicesFailed(self.devices_failed(reason))
            raise RunFailed(
                f"workers keep failing to start; see {self.logs}/worker_<k>.log"
            )

    def devices_failed(self, reason: str) -> str:
        fix = ("Complete scenes are kept; check the device (headless/doctor.py) and rerun the "
               "same command")
        if not self.abandoned:
            return (f"every worker failed {SLOT_FAILURES} different scenes in a row and was "
                    f"given up; the last failure: {reason}. {fix}")
        return (f"every worker slot was given up; abandoned after SIGKILL (stuck, e.g. in the "
                f"GPU driver): {'; '.join(self.abandoned)}; the last failure: {reason}. "
                f"{fix}; a stuck GPU usually needs a reset or a reboot")

    def kernels_compiled(self, slot: int) -> None:
        """A worker rendered a scene: its GPU model's kernels are in the cache; start the
        workers that waited for them (once; later calls find none waiting)."""
        waiting = self.starts.first_scene(slot)
        if waiting:
            model = self.config.devices[slot].name
            self.note(f"Cycles kernels for {model} compiled and cached: starting "
                      f"{len(waiting)} more worker(s)")
        for other in waiting:
            if self.todo and self.startable(other):
                self.spawn(other)

    def abandon(self, worker: Worker) -> None:
        """The worker outlived its SIGKILL: stop waiting for it. Its slot is given up, its
        scenes go back to the queue; its process is left behind (it may never exit)."""
        worker.alive, worker.abandoned = False, True
        device = self.config.devices[worker.slot]
        where = "the CPU" if device is None else device.describe()
        where += f", PID {worker.proc.pid if worker.proc is not None else 'unknown'}"
        self.abandoned.append(f"worker {worker.slot} on {where}")
        reason = (f"{worker.error or 'killed'}, then did not exit within "
                  f"{self.config.kill_grace:.0f} s of SIGKILL")
        self.note(f"worker {worker.slot} ({where}) abandoned: {reason} (stuck, e.g. in the "
                  "GPU driver); its slot is given up, its scenes go to other workers")
        self.given_up[worker.slot] = reason
        for scene_id in worker.scenes:
            self.rerun(scene_id, reason)
        worker.scenes.clear()
        if worker.merging:
            raise RunFailed(f"worker {worker.slot} was abandoned during the merge ({reason})")
        self.replace(worker, reason)

    def give_up(self, slot: int, reason: str) -> None:
        """The circuit breaker: no more workers on this slot for the rest of the run."""
        self.given_up[slot] = reason
        device = self.config.devices[slot]
        where = "the CPU" if device is None else device.describe()
        self.note(f"worker slot {slot} ({where}) given up: {SLOT_FAILURES} different scenes "
                  f"failed in a row, none completed; the last: {reason}")

    def rerun(self, scene_id: str, reason: str) -> None:
        """A crash, timeout or render error: the same scene again (same seed), or failed. A
        scene that completed before its worker went (its event lost) is kept and counted."""
        if layout.is_complete(self.config.output, scene_id):
            self.complete += 1
            return
        layout.remove_partial(self.config.output, [scene_id], self.config.passes)
        self.attempts[scene_id] = self.attempts.get(scene_id, 0) + 1
        if self.attempts[scene_id] <= MAX_RERUNS:
            self.note(f"scene {scene_id}: {reason}; rerun {self.attempts[scene_id]}/{MAX_RERUNS}")
            self.todo.appendleft(scene_id)
        else:
            self.failures[scene_id] = f"{reason} (after {MAX_RERUNS} reruns)"
            self.note(f"scene {scene_id} failed: {self.failures[scene_id]}")

    def check_timeouts(self) -> None:
        now = time.monotonic()
        for worker in self.live():
            if worker.killed_at is not None:
                if now - worker.killed_at > self.config.kill_grace:
                    self.abandon(worker)
                continue
            if worker.closing and now - worker.closed_at > self.config.close_grace:
                error = f"did not exit within {self.config.close_grace:.0f} s of being closed"
                self.note(f"worker {worker.slot} {error}: killed")
                self.time_out(worker, error, now)
                continue
            if not worker.ready and now - worker.spawned > self.config.first_scene_timeout:
                self.time_out(worker, f"did not start within "
                                      f"{self.config.first_scene_timeout:.0f} s", now)
                continue
            if not worker.scenes:
                continue
            first = worker.rendered == 0
            limit = self.config.first_scene_timeout if first else self.config.scene_timeout
            if now - min(worker.scenes.values()) > limit:
                kind = "first scene of a worker" if first else "scene"
                self.time_out(worker, f"timed out ({kind} limit {limit:.0f} s)", now)

    def time_out(self, worker: Worker, error: str, now: float) -> None:
        worker.error, worker.killed_at = error, now
        self.kill(worker)

    def check_disk(self) -> None:
        free = shutil.disk_usage(self.config.output).free
        if free < 2 * self.config.scene_bytes:
            raise DiskFull(
                f"only {progress.size_text(free)} free on the output disk; a scene needs "
                f"about {progress.size_text(self.config.scene_bytes)}"
            )

    # --- merge and stop -------------------------------------------------------------

    def merge(self) -> None:
        """The last live worker runs the merge (core.merge); others are closed."""
        open_ = sorted((w for w in self.live() if not w.closing),
                       key=lambda w: not (w.idle and not w.scenes))
        worker = open_[0] if open_ else self.spawn(0)
        for other in self.live():
            if other is not worker:
                self.close(other)
        while not worker.idle or worker.scenes:
            self.step()
            if not worker.alive:
                raise RunFailed("no worker could start for the merge; see its log")
        worker.merging, worker.idle = True, False
        self.send(worker, protocol.command(protocol.MERGE))
        while not (worker.merged and worker.idle):
            self.step()
        worker.merging = False
        self.close(worker)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Close every worker, SIGTERM, SIGKILL after `grace`; remove the partial files of
        the scenes cut short."""
        cut = [scene_id for w in self.live() for scene_id in w.scenes]
        for worker in self.live():
            self.close(worker)
            self.kill(worker, signal.SIGTERM)
        deadline = time.monotonic() + grace
        killed = []
        for worker in self.live():
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(worker)
                killed.append(worker)
        self.wait_killed(killed)
        for worker in self.live():
            worker.alive = False
        layout.remove_partial(self.config.output, cut, self.config.passes)

    def wait_killed(self, workers: list[Worker]) -> None:
        """Wait for killed workers, together at most the kill grace: one stuck in the driver
        is left behind, named, rather than waited for forever."""
        deadline = time.monotonic() + self.config.kill_grace
        for worker in workers:
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.note(f"worker {worker.slot} (PID {worker.proc.pid}) did not exit within "
                          f"{self.config.kill_grace:.0f} s of SIGKILL: left behind")

    def wait_closed(self, timeout: float = 60.0) -> None:
        """After the merge: let closed workers exit on their own, kill stragglers."""
        deadline = time.monotonic() + timeout
        while self.live() and time.monotonic() < deadline:
            self.step()
        for worker in self.live():
            self.kill(worker)
        self.wait_killed(self.live())

    # --- progress -------------------------------------------------------------------

    def note(self, message: str) -> None:
        """A message on its own line, below the bar."""
        self.display.note(message)

    def numbers(self) -> tuple[float | None, float | None]:
        """Scenes per hour in this run, and the ETA (from the estimate until one is done)."""
        done_now = self.complete - self.initial
        elapsed = time.monotonic() - self.started
        per_hour = progress.rate(done_now, elapsed)
        remaining = len(self.todo) + sum(len(w.scenes) for w in self.live())
        if per_hour is None and self.estimate:
            workers = max(1, len(self.config.devices))
            eta = remaining * self.estimate / workers
        else:
            eta = progress.eta(remaining, per_hour)
        return per_hour, eta

    def progress(self, state: str | None = None, message: str | None = None,
                 force: bool = False, draw: bool = True) -> None:
        """progress.json and the bar (progress.Display; `draw=False`: the file only); while
        rendering, the message says which GPU models' kernels are being compiled."""
        if message is None and (state or self.display.state) == progress.RUNNING:
            message = "; ".join(f"compiling Cycles kernels for {model} (first start on this "
                                "machine)" for model in self.starts.compiling())
        self.display.update(self.complete, self.total, len(self.failures), *self.numbers(),
                            state=state, message=message, force=force, draw=draw)

