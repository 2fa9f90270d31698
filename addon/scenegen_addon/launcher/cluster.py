"""Render on a Ray cluster: `build.py --ray [ADDRESS]` (imported only then; needs ray).

The same build as the local pool's: the same plan, lock, resume, reruns, timeouts,
progress, merge and validation, because the pool is the same launcher.pool.Pool. Only what
a worker is changes: here each worker slot is a Ray actor (launcher/node.py) that owns one
long-lived worker process on its node, speaking the same protocol. One driver thread per
actor fetches the worker's lines (a blocking `next_lines` call) and puts its events on the
pool's queue; an actor or node that dies becomes the worker's exit event, so its scenes are
rerun elsewhere with the same seed and the slot gets a new actor where the cluster has room.

Slots: with GPUs, one actor per GPU share (1/--workers-per-gpu of a GPU) of the cluster's
GPUs (or --n-gpus of them); more slots are added when GPUs join. With --n-gpus 0,
--workers CPU actors, spread over the nodes. The output folder must be the same on every
node (launcher/shared): a node that cannot see it, has another Blender, or no GPU where Ray
counts one, gets no actor again; the run stops when no node is left.
"""

import functools
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass

from ..core import files, layout, parallel
from . import node, pool, protocol, shared
from .backend import BACKENDS
from .options import Refused, check_worker_counts

try:
    import ray
    from ray.exceptions import RayError, RayTaskError
except ImportError as exc:  # --ray without the optional dependency: a refusal, exit 2
    raise Refused(f"--ray needs the ray package ({exc}): pip install -e \".[ray]\" in the "
                  "scenegen checkout") from None

LOCAL = ""  # --ray without an address: a local Ray instance
# Ray's count of attempts to reach a cluster's GCS (about 40 s each with its default
# timeouts); the launcher makes one unless the user sets it.
CONNECT_ATTEMPTS = "RAY_gcs_server_port_wait_time_s"
WAIT = 1.0  # seconds a driver thread waits in one next_lines call
LOOK_EVERY = 5.0  # seconds between two looks for GPUs that joined the cluster
DEATH_WAIT = 30.0  # seconds to see every killed actor gone at the end
WAIT_NOTE = 60.0  # seconds an actor waits for room before the run says so
NODE_ID_LABEL = "ray.io/node-id"
NAMESPACE = "scenegen"  # the driver's Ray namespace: its actors are named there
# the driver's own events about an actor (the worker's come through launcher.protocol)
PLACED, STARTED, UNUSABLE = "placed", "started", "unusable"


@ray.remote(concurrency_groups={"lines": 1, "control": 1})
class NodeActor(node.NodeWorker):
    """node.NodeWorker as a Ray actor: the blocking next_lines and kill get their own
    threads, so a command is never stuck behind them; commands keep their order."""

    def where(self) -> dict:
        return {**super().where(), "node_id": ray.get_runtime_context().get_node_id(),
                "ip": ray.util.get_node_ip_address()}

    @ray.method(concurrency_group="lines")
    def next_lines(self, wait: float):
        return super().next_lines(wait)

    @ray.method(concurrency_group="control")
    def kill(self, sig: int) -> None:
        super().kill(sig)


@dataclass(frozen=True)
class GpuSlot:
    """A worker slot on one of the run's GPUs before Ray places it (the node's own device
    is found by its actor and named in the logs)."""

    gpu: int  # which of the run's GPUs: slots that share one compare equal
    share: float  # the GPU share of its actor (1 / --workers-per-gpu)

    @property
    def gpu_uuid(self) -> str:  # what the run record counts GPUs by
        return f"ray-gpu-{self.gpu}"

    def describe(self) -> str:
        return f"a Ray GPU slot ({self.share:g} GPU)"


@dataclass(frozen=True)
class Options:
    """What the actors need beyond pool.Config."""

    address: str
    blender: str | None  # --blender, found again on each node
    blender_version: str | None  # the plan's; a node with another one is not used
    n_gpus: int | None
    workers_per_gpu: int
    command: tuple | None = None  # a fixed worker command (benchmarks), else found on nodes


def where_text(address: str) -> str:
    return "a local Ray instance" if address == LOCAL else f"the Ray cluster at {address}"


def connect(address: str) -> None:
    """ray.init, once: a local instance, or `address` as ray.init takes it. A cluster that
    does not answer is given up after one attempt (CONNECT_ATTEMPTS; Ray's own default is
    20, each of its timeouts long, about 40 s here), with Ray's own reason."""
    if ray.is_initialized():
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "namespace": NAMESPACE}
    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, **quiet)
        else:
            os.environ.setdefault(CONNECT_ATTEMPTS, "1")  # unless the user set it
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise Refused(f"cannot connect to {where_text(address)}: {exc}") from None


def gpu_slots(cluster_gpus: float, n_gpus: int | None, workers_per_gpu: int) -> list[GpuSlot]:
    """The run's GPU slots: every GPU of the cluster (or n_gpus of them), each shared by
    workers_per_gpu actors."""
    used = int(cluster_gpus) if n_gpus is None else min(n_gpus, int(cluster_gpus))
    return [GpuSlot(k // workers_per_gpu, 1 / workers_per_gpu)
            for k in range(used * workers_per_gpu)]


def choose_devices(address: str, n_gpus: int | None, workers: int | None,
                   workers_per_gpu: int | None, backend: str) -> tuple[str, list]:
    """build.choose_devices under --ray (its options as given): the workers' Cycles device
    and one entry per slot (None: a CPU actor; GpuSlot). Connects to Ray and prints what it
    found."""
    check_worker_counts(workers, workers_per_gpu, cpu=n_gpus == 0)
    connect(address)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    resources = ray.cluster_resources()
    where = f"{where_text(address)} ({len(nodes)} node(s), {resources.get('CPU', 0):g} CPUs, " \
            f"{resources.get('GPU', 0):g} GPUs)"
    if n_gpus == 0:
        workers = workers or 1
        print(f"scenegen: rendering on the CPU: {workers} Ray actor(s) on {where}", flush=True)
        return "CPU", [None] * workers
    per = workers_per_gpu or 1
    slots = gpu_slots(resources.get("GPU", 0), n_gpus, per)
    if not slots:
        raise Refused(f"{where} lists no GPU: start its nodes with GPUs, or pass --n-gpus 0 "
                      "to render on CPU actors")
    print(f"scenegen: rendering on GPUs: {len(slots)} Ray actor(s), {per} per GPU, on {where}; "
          "each actor finds its own GPU on its node", flush=True)
    return BACKENDS[backend], slots


def pool_factory(options: Options):
    """RayPool with its options, called as build.run calls pool.Pool."""
    return functools.partial(RayPool, options=options)


@dataclass(eq=False)
class RayWorker(pool.Worker):
    actor: object = None
    name: str = ""  # the actor's name in NAMESPACE
    node_id: str | None = None
    node: str = "a node not yet chosen"
    created: float = 0.0  # when the actor was asked for (it may wait for room)
    placed: bool = False  # Ray started the actor on a node
    started: bool = False  # its worker process runs


class RayPool(pool.Pool):
    """pool.Pool whose workers are Ray actors (see the module docstring)."""

    def __init__(self, config: pool.Config, todo, total, complete, estimate, say,
                 options: Options):
        super().__init__(config, todo, total, complete, estimate, say)
        self.options = options
        self.token = shared.write_token(config.output)
        self.excluded: dict[str, str] = {}  # node id -> why it renders nothing for this run
        self.actors: list = []  # every actor started, all killed at the end
        self.next_look = time.monotonic() + LOOK_EVERY
        self.n_actors = 0
        self.cluster_log = files.append_text(self.logs / "cluster.log")
        self.record(f"run on {where_text(options.address)} (GCS "
                    f"{ray.get_runtime_context().gcs_address}, namespace {NAMESPACE})")

    # --- workers --------------------------------------------------------------------

    def spawn(self, slot: int) -> RayWorker:
        log = files.append_text(self.logs / f"worker_{slot}.log")
        worker = RayWorker(slot, None, log, time.monotonic(), created=time.monotonic())
        self.n_actors += 1
        worker.name = f"scenegen-{self.token[:8]}-worker-{slot}-{self.n_actors}"
        spec = {"output": str(self.config.output), "device": self.config.device, "slot": slot,
                "token": self.token, "blender": self.options.blender,
                "blender_version": None if self.options.command else self.options.blender_version,
                "command": list(self.options.command) if self.options.command else None}
        worker.actor = NodeActor.options(name=worker.name, **self.resources(slot)).remote(spec)
        self.actors.append(worker.actor)
        self.workers.append(worker)
        threading.Thread(target=self._pump, args=(worker,), daemon=True).start()
        return worker

    def resources(self, slot: int) -> dict:
        """A GPU share for a GPU slot (no CPU: a head node's few CPUs must not limit the
        GPUs), one CPU for a CPU actor, spread over the nodes; never a node left out."""
        device = self.config.devices[slot]
        found = ({"num_cpus": 1, "scheduling_strategy": "SPREAD"} if device is None
                 else {"num_cpus": 0, "num_gpus": device.share})
        if self.excluded:
            found["label_selector"] = {NODE_ID_LABEL: f"!in({','.join(sorted(self.excluded))})"}
        return found

    def _pump(self, worker: RayWorker) -> None:
        """The actor's driver thread: where it runs, its start, then its lines as events;
        the last event is always the exit, whatever happens."""
        actor, node_text = worker.actor, "a node not yet chosen"
        try:
            where = ray.get(actor.where.remote())
            node_text = node_name(where)
            self.events.put((worker, {"event": PLACED, **where}))
            started = ray.get(actor.start.remote())
            if "unusable" in started:
                self.events.put((worker, {"event": UNUSABLE, "reason": started["unusable"]}))
                return
            device = started["device"] or "CPU"
            worker.log.write(protocol.log_mark(
                f"{protocol.WORKER_START} on node {node_text} ({device}): "
                f"{' '.join(started['command'])}"))
            self.events.put((worker, {"event": STARTED, **started}))
            while True:
                lines, code = ray.get(actor.next_lines.remote(WAIT))
                for stream, line in lines:
                    self._copy(worker, stream, line)
                if code is not None:
                    self.events.put((worker, {"event": protocol.EXIT, "code": code}))
                    return
        except RayError as exc:
            reason = (f"its Ray actor failed on node {node_text}: {exc.cause!r}"
                      if isinstance(exc, RayTaskError) and exc.cause is not None else
                      f"its Ray actor died on node {node_text} ({type(exc).__name__})")
            self.events.put((worker, {"event": protocol.EXIT, "code": -1, "reason": reason}))

    def _copy(self, worker: RayWorker, stream: str, line: str) -> None:
        try:
            worker.log.write(line)
        except (OSError, ValueError):  # a full disk must not hide the worker's events
            pass
        event = protocol.parse_event(line) if stream == node.OUT else None
        if event is not None:
            self.events.put((worker, event))

    def send(self, worker: RayWorker, command: str) -> None:
        self.record(f"worker {worker.slot} ({worker.name}) on node {worker.node}: "
                    f"{command.strip()}")
        worker.actor.send.remote(command)

    def close(self, worker: RayWorker) -> None:
        worker.closed_at = worker.closed_at or time.monotonic()
        if worker.started:
            worker.actor.close.remote()
        else:  # nothing runs yet: nothing to finish
            ray.kill(worker.actor, no_restart=True)

    def kill(self, worker: RayWorker, sig=signal.SIGKILL) -> None:
        if sig == signal.SIGKILL or not worker.started:
            ray.kill(worker.actor, no_restart=True)  # its worker dies with it (prctl)
        else:
            worker.actor.kill.remote(int(sig))

    # --- events ---------------------------------------------------------------------

    def handle(self, worker: RayWorker, event: dict) -> None:
        kind = event.get("event")
        if kind == PLACED:
            worker.placed, worker.spawned = True, time.monotonic()
            worker.node_id, worker.node = event["node_id"], node_name(event)
            self.record(f"worker {worker.slot}: actor {worker.name} placed on node "
                        f"{worker.node}, actor pid {event['actor_pid']}")
        elif kind == STARTED:
            worker.started = True
            self.record(f"worker {worker.slot}: worker process {event['pid']} started on node "
                        f"{worker.node} ({event['device'] or 'CPU'})")
        elif kind == UNUSABLE:
            self.unusable(worker, event["reason"])
        else:
            if kind == protocol.EXIT and event.get("reason") and worker.error is None:
                worker.error = event["reason"]
            if kind in (protocol.SCENE_DONE, protocol.SCENE_FAILED) and (
                    event.get("scene_id") in worker.scenes):
                self.record(f"{event['scene_id']} {kind}: worker {worker.slot} on node "
                            f"{worker.node}")
            if kind == protocol.EXIT:
                self.record(f"worker {worker.slot} on node {worker.node} exited: "
                            f"{worker.error or 'code ' + str(event['code'])}")
                # its actor holds the slot's resources: free them for the replacement
                ray.kill(worker.actor, no_restart=True)
            super().handle(worker, event)

    def unusable(self, worker: RayWorker, reason: str) -> None:
        """A node that cannot render for this run: named, left out, its slot started again
        on another node; the run stops when every node that could host a worker is out."""
        self.excluded[worker.node_id] = reason
        message = f"node {worker.node} is not used: {reason}"
        self.note(f"worker {worker.slot}: {message}")
        self.record(f"worker {worker.slot}: {message}")
        try:
            worker.log.write(protocol.log_mark(message))
        except (OSError, ValueError):
            pass
        worker.closed_at, worker.error = time.monotonic(), message  # not a start failure
        ray.kill(worker.actor, no_restart=True)
        self.check_nodes_left()
        self.exited(worker, -1)

    def check_nodes_left(self) -> None:
        kind = "CPU" if self.config.device == "CPU" else "GPU"
        hosts = {n["NodeID"] for n in ray.nodes()
                 if n["Alive"] and n["Resources"].get(kind, 0) > 0}
        if hosts and hosts <= set(self.excluded):
            reasons = "; ".join(f"node {nid[:8]}: {why}" for nid, why in self.excluded.items())
            raise pool.RunFailed(
                f"no node of {where_text(self.options.address)} can render for this run: "
                f"{reasons}. Every node needs the output folder at {self.config.output}, the "
                "plan's Blender and, for GPU rendering, the GPUs Ray counts (docs/CLUSTER.md)")

    def step(self, timeout: float = 0.5) -> None:
        now = time.monotonic()
        for worker in self.live():
            if not worker.placed:  # a start-up is timed from when Ray placed the actor
                worker.spawned = now
                if now - worker.created > WAIT_NOTE and not worker.closing:
                    worker.created = float("inf")  # said once
                    self.note(f"worker {worker.slot} waits for room on the cluster "
                              f"({self.resources(worker.slot)})")
        super().step(timeout)
        self.grow()

    def grow(self) -> None:
        """New GPU slots when GPUs joined the cluster (within --n-gpus)."""
        if self.config.device == "CPU" or time.monotonic() < self.next_look:
            return
        self.next_look = time.monotonic() + LOOK_EVERY
        total = ray.cluster_resources().get("GPU", 0)
        wanted = gpu_slots(total, self.options.n_gpus, self.options.workers_per_gpu)
        for slot in range(len(self.config.devices), len(wanted)):
            self.config.devices.append(wanted[slot])
            self.start_failures[slot], self.failed_scenes[slot] = 0, set()
            self.note(f"the Ray cluster lists {total:g} GPU(s) now: worker slot {slot} added")
            if self.todo:
                self.spawn(slot)

    # --- the end ----------------------------------------------------------------------

    def stop(self, grace: float = pool.STOP_GRACE_SECONDS) -> None:
        """Close every worker, SIGTERM, then kill every actor (its worker dies with it) and
        wait until Ray has seen them gone; remove the partial files of the scenes cut."""
        cut = [scene_id for w in self.live() for scene_id in w.scenes]
        for worker in self.live():
            self.close(worker)
            if worker.started:
                self.kill(worker, signal.SIGTERM)
        self.drain(lambda: not any(w.started for w in self.live()), grace)
        self.release()
        for worker in self.live():
            worker.alive = False
        layout.remove_partial(self.config.output, cut, self.config.passes)

    def wait_closed(self, timeout: float = 60.0) -> None:
        """After the merge: closed workers exit on their own; actors never started, and
        stragglers, are killed."""
        for worker in self.live():
            if not worker.started:
                self.kill(worker)
        deadline = time.monotonic() + timeout
        while self.live() and time.monotonic() < deadline:
            self.step()
        self.release()

    def release(self) -> None:
        """Kill every actor this run started and wait for each driver thread's exit event,
        which comes once Ray has seen its actor dead."""
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except (RayError, ValueError):
                pass
        self.drain(lambda: not self.live(), DEATH_WAIT)
        self.record("every actor of this run was stopped")

    def drain(self, done, seconds: float) -> None:
        """Only exit events, until done() or `seconds` (the run is ending)."""
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            try:
                worker, event = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event.get("event") == protocol.EXIT and worker.alive:
                worker.alive = False
                try:
                    worker.log.write(protocol.log_mark(f"{protocol.WORKER_EXIT} {event['code']}"))
                    worker.log.close()
                except (OSError, ValueError):
                    pass

    # --- validation on the cluster's CPUs ----------------------------------------------

    def map_tasks(self, function, tasks: list):
        """function over tasks as Ray tasks on the cluster's CPUs, yielded in order as their
        chunks come back; a chunk that landed on a node that cannot see the folder is done
        here instead."""
        if not tasks:
            return
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        size = parallel.chunk_size(len(tasks), cpus)
        chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        options = {"label_selector": {NODE_ID_LABEL: f"!in({','.join(sorted(self.excluded))})"}
                   } if self.excluded else {}
        refs = [_run_chunk.options(**options).remote(function, chunk, str(self.config.output),
                                                     self.token) for chunk in chunks]
        for chunk, ref in zip(chunks, refs, strict=True):
            results = ray.get(ref)
            yield from results if results is not None else map(function, chunk)

    def record(self, message: str) -> None:
        """A line of .scenegen/logs/cluster.log: which node and worker did what."""
        try:
            self.cluster_log.write(f"{layout.now_iso()} {message}\n")
        except (OSError, ValueError):
            pass


@ray.remote(num_cpus=1)
def _run_chunk(function, chunk: list, output: str, token: str):
    if shared.folder_problem(output, token):
        return None
    return [function(task) for task in chunk]


def node_name(where: dict) -> str:
    return f"{where['ip']} ({where['node_id'][:8]}, {where['hostname']})"
