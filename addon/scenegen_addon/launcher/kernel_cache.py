"""GPU workers' kernel caches: where they are, when one is warm, and the start order that
compiles each GPU model's kernels once (standard library only).

The bpy wheel carries no CUDA binary for some GPUs (an H100, sm_90, gets the nearest PTX,
which the driver compiles at a worker's first render), so a cold cache costs each worker
that compile. Where the doctor measured it faster with the same Blender version
(`start_order` of its figures), the launcher starts one worker per GPU model first and the
others once its first scene is done and the cache is warm; otherwise every worker at once.
A cache is warm when a marker, written after a worker's first scene, is in it: one per GPU
model, driver, Blender version and backend (`WarmKey`), in every cache folder that backend
uses.
"""

import os
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core import layout

# CUDA's JIT cache is 256 MB to 1 GB by default; Cycles' kernels, compiled from PTX for a GPU
# the bpy wheel has no binary for (H100: sm_90), need more. 4 GiB is CUDA's largest value.
KERNEL_CACHE_BYTES = 4 * 2**30
MARKERS = "scenegen-warm"  # the markers' folder inside a cache folder
ONE_FIRST = "one_first"  # the doctor's start-order choices
ALL_AT_ONCE = "all_at_once"


def cache_env(folder, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Kernel caches that outlive a worker: CUDA's JIT cache and OptiX's, in `folder`, for
    each variable the user did not set, so a restarted or recycled worker (and the next run)
    loads compiled kernels instead of compiling them again."""
    wanted = {
        "CUDA_CACHE_PATH": os.path.join(folder, "cuda"),
        "CUDA_CACHE_MAXSIZE": str(KERNEL_CACHE_BYTES),
        "OPTIX_CACHE_PATH": os.path.join(folder, "optix"),
        "OPTIX_CACHE_MAXSIZE": str(KERNEL_CACHE_BYTES),
    }
    return {name: value for name, value in wanted.items() if name not in environ}


def cache_folders(folder, environ: Mapping[str, str], backend: str) -> tuple[Path, ...]:
    """The cache folders a worker with these variables fills: CUDA's, and for OptiX (or the
    default GPU backend, which may be OptiX) OptiX's too."""
    paths = {**environ, **cache_env(folder, environ)}
    names = ("CUDA_CACHE_PATH",) if backend == "CUDA" else ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH")
    return tuple(Path(paths[name]) for name in names)


@dataclass(frozen=True)
class WarmKey:
    """What compiled kernels are good for: a GPU model, driver, Blender version, backend."""

    model: str
    driver: str
    blender: str
    backend: str  # the workers' Cycles device: "GPU", "OPTIX" or "CUDA"

    def file_name(self) -> str:
        parts = (self.model, self.driver, self.blender, self.backend)
        return "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", part) for part in parts) + ".json"


def markers(key: WarmKey, folders: Sequence[Path]) -> tuple[Path, ...]:
    return tuple(Path(folder) / MARKERS / key.file_name() for folder in folders)


def mark_warm(paths: Sequence[Path], key: WarmKey) -> None:
    """Write the markers (best effort: a cache folder that cannot be written only means the
    next run starts every worker at once)."""
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            layout.write_json(path, {**vars(key), "written": layout.now_iso()}, compact=False)
        except OSError:
            pass


@dataclass(frozen=True)
class Group:
    """The worker slots of one GPU model on this machine, which share compiled kernels."""

    key: WarmKey
    slots: tuple[int, ...]
    markers: tuple[Path, ...]
    warm: bool  # its markers are there
    one_first: bool  # start one worker, the rest after its first scene
    why: str = ""  # why one first, for the message


def start_choice(choices: Sequence[dict], model: str, blender: str) -> dict | None:
    """The doctor's start-order figures for a GPU model (launcher.doctor), if measured with
    this Blender version."""
    for choice in choices:
        if (choice.get("model") == model and choice.get("blender_version") == blender
                and isinstance(choice.get("start_order"), dict)):
            return choice["start_order"]
    return None


def groups(devices: Sequence, drivers: Mapping[str, str], blender: str, backend: str,
           folders: Sequence[Path], choices: Sequence[dict]) -> tuple[Group, ...]:
    """One Group per GPU model of `devices` (a gpus.Device per slot; `drivers` by GPU UUID):
    one worker first where the doctor measured that order faster, there are two workers or
    more, and the cache is not warm yet."""
    found: dict[str, list[int]] = {}
    for slot, device in enumerate(devices):
        found.setdefault(device.name, []).append(slot)
    result = []
    for model, slots in found.items():
        key = WarmKey(model, drivers.get(devices[slots[0]].gpu_uuid, "unknown"), blender,
                      backend)
        paths = markers(key, folders)
        warm = all(path.is_file() for path in paths)
        order = start_choice(choices, model, blender) or {}
        one_first = order.get("chosen") == ONE_FIRST and len(slots) > 1 and not warm
        why = (f"the doctor measured {order.get('one_first_seconds')} s to start every GPU "
               f"this way against {order.get('all_at_once_seconds')} s all at once")
        result.append(Group(key, tuple(slots), paths, warm, one_first,
                            why if one_first else ""))
    return tuple(result)


class Starts:
    """Which worker slots may start, as workers report (the pool's bookkeeping, no
    processes): each one-first group has a pioneer; its other slots wait for the pioneer's
    first scene; a pioneer that exits before it hands its place to the next slot."""

    def __init__(self, start_groups: Sequence[Group] = ()):
        self.group_of = {slot: g for g in start_groups for slot in g.slots}
        self.waiting = {g.key: deque(g.slots[1:]) for g in start_groups if g.one_first}
        self.pioneers = {g.key: g.slots[0] for g in start_groups if g.one_first}
        self.warm = {g.key for g in start_groups if g.warm}

    def initial(self, n_slots: int) -> list[int]:
        """The slots to start with: every slot but those waiting for a pioneer."""
        held = {slot for waiting in self.waiting.values() for slot in waiting}
        return [slot for slot in range(n_slots) if slot not in held]

    def first_scene(self, slot: int) -> list[int]:
        """A worker of `slot` completed its first scene: its group's kernels are compiled
        (markers written once); returns the slots that may start now."""
        group = self.group_of.get(slot)
        if group is None:
            return []
        if group.key not in self.warm:
            self.warm.add(group.key)
            mark_warm(group.markers, group.key)
        self.pioneers.pop(group.key, None)
        released = self.waiting.pop(group.key, deque())
        return list(released)

    def lost(self, slot: int, startable) -> int | None:
        """A worker of `slot` exited before its first scene: when it was its group's pioneer,
        the next waiting slot that `startable(slot)` allows takes its place (returned), and
        `slot` waits with the others when it may start again."""
        group = self.group_of.get(slot)
        if group is None or self.pioneers.get(group.key) != slot:
            return None
        waiting = self.waiting[group.key]
        waiting.append(slot)
        while waiting:
            nxt = waiting.popleft()
            if startable(nxt):
                self.pioneers[group.key] = nxt
                return nxt
        del self.pioneers[group.key], self.waiting[group.key]
        return None

    def held(self, slot: int) -> bool:
        """Waiting for its group's pioneer: not to be started now."""
        group = self.group_of.get(slot)
        return group is not None and slot in self.waiting.get(group.key, ())

    def compiling(self) -> list[str]:
        """The GPU models whose pioneer is compiling the kernels now."""
        return [key.model for key in self.pioneers]
