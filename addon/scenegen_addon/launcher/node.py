"""One render worker on a node of a Ray cluster: the body of launcher.cluster's actor.

Plain Python (no ray import), so the rules are read and tested apart from Ray. The actor
owns one long-lived worker process of its node (the Blender executable or the bpy module
that blender_program.find() gives there), which speaks launcher.protocol exactly as under
the local pool: command lines in on stdin, event lines out on stdout. The driver calls
`where`, then `start`, then `next_lines` in a loop (a blocking call, on its own thread in
the actor), `send`, `close` and `kill`.

Before it starts a worker the actor checks its node: the output folder is the driver's
(launcher/shared), the node's Blender is the plan's version, and, for GPU rendering, the
GPU Ray gave it is listed by nvidia-smi (launcher/gpus); the worker is pinned to it by UUID.
A node that fails one of these is unusable: `start` says so and the actor does not run.
"""

import os
import queue
import signal
import socket
import subprocess
import threading

from . import blender_program, gpus, pool, shared

OUT, ERR = "out", "err"  # which of the worker's streams a line came from
# Ray sets OMP_NUM_THREADS to an actor's CPUs (1); a worker renders with every core of its
# node, as under the local pool, so it does not inherit it.
DROPPED_ENV = ("OMP_NUM_THREADS",)


class Unusable(Exception):
    """This node cannot render for this run (the message says why)."""


def pick_device(setup: gpus.GpuSetup, slot: int) -> gpus.Device:
    """The device of this actor among the devices of its GPU (Ray's CUDA_VISIBLE_DEVICES):
    the GPU itself, or one of its MIG slices, spread by slot number."""
    if not setup.devices:
        raise Unusable(f"Ray gave this actor a GPU, but none is visible here ({setup.note})")
    return setup.devices[slot % len(setup.devices)]


class NodeWorker:
    """The actor's state: one worker process and the lines it printed, not yet fetched."""

    def __init__(self, spec: dict):
        # output, device (Cycles), slot, token, blender (--blender or None),
        # blender_version (the plan's, None: not checked), command (None: found here)
        self.spec = spec
        self.lines: queue.Queue = queue.Queue()
        self.proc: subprocess.Popen | None = None
        self.code: int | None = None
        self.ended = False

    def where(self) -> dict:
        return {"hostname": socket.gethostname(), "actor_pid": os.getpid()}

    def start(self) -> dict:
        """Check this node, then start the worker; {"unusable": why} when the node cannot
        render for this run."""
        try:
            command = self._command()
            device = self._device()
        except Unusable as exc:
            return {"unusable": str(exc)}
        output = self.spec["output"]
        env = pool.worker_env({k: v for k, v in os.environ.items() if k not in DROPPED_ENV},
                              device, output)
        command = command + ["--output", output, "--device", self.spec["device"],
                             "--worker", str(self.spec["slot"]), "--parent-pid", str(os.getpid())]
        started = threading.Event()
        failure: list = []
        threading.Thread(target=self._run, args=(command, env, started, failure),
                         daemon=True).start()
        started.wait()
        if failure:
            raise failure[0]
        return {"pid": self.proc.pid, "command": command,
                "device": None if device is None else device.describe(),
                "uuid": None if device is None else device.uuid}

    def _command(self) -> list[str]:
        problem = shared.folder_problem(self.spec["output"], self.spec["token"])
        if problem:
            raise Unusable(f"cannot see the output folder: {problem}")
        if self.spec.get("command"):
            return list(self.spec["command"])
        try:
            blender = blender_program.find(self.spec["blender"], os.environ)
            expected = self.spec.get("blender_version")
            if expected is not None:
                found = blender_program.probe(blender)["blender_version"]
                if found != expected:
                    raise Unusable(f"its Blender is {found} ({blender.label}), the plan's is "
                                   f"{expected}")
        except blender_program.BlenderError as exc:
            raise Unusable(f"no usable Blender: {exc}") from None
        return blender.command

    def _device(self) -> gpus.Device | None:
        if self.spec["device"] == "CPU":
            return None
        try:
            setup = gpus.from_machine(None, os.environ)
        except gpus.GpuSetupError as exc:
            raise Unusable(f"its GPUs cannot be told: {exc}") from None
        return pick_device(setup, self.spec["slot"])

    def _run(self, command, env, started, failure) -> None:
        """Start the worker and read it, in one thread that lives as long as the worker:
        the worker asks the kernel to kill it when its parent thread ends (prctl)."""
        try:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, encoding="utf-8", errors="replace", bufsize=1,
                start_new_session=True)
        except OSError as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        errors = threading.Thread(target=self._copy, args=(self.proc.stderr, ERR), daemon=True)
        errors.start()
        self._copy(self.proc.stdout, OUT)
        errors.join()
        self.code = self.proc.wait()
        self.lines.put(None)

    def _copy(self, stream, name: str) -> None:
        for line in stream:
            self.lines.put((name, line))

    def next_lines(self, wait: float) -> tuple[list, int | None]:
        """The lines printed since the last call, waiting up to `wait` seconds for one;
        and the worker's exit code once it has exited and every line was fetched."""
        found = []
        try:
            item = self.lines.get(timeout=wait)
            while True:
                if item is None:
                    self.ended = True
                    break
                found.append(item)
                item = self.lines.get_nowait()
        except queue.Empty:
            pass
        return found, (self.code if self.ended else None)

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (OSError, ValueError):  # it died: its exit follows and reruns the scene
            self.kill(signal.SIGKILL)

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def kill(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
