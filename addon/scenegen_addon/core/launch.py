"""Pure helpers of the headless launcher: GPU mapping, settings, estimates, lock, resume.

They live in the core (no bpy) so the launcher runs in any Python with numpy, the batch
operator shares the plan settings, and each rule is tested with fake inputs.
"""

import errno
import json
import math
import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path

from . import camera, plan, presets, records

INTERNAL = ".scenegen"
GENERATOR = "scenegen"
GENERATOR_VERSION = "0.1.0"
SPEC_VERSION = "1"
MIN_BLENDER = (5, 0)
# Top-level names scenegen writes into an output folder (SPEC 1); anything else is foreign.
OWN_ENTRIES = ("images", "masks", "metadata", "splits", "dataset_info.json", INTERNAL)
# Cycles settings that change pixels (SPEC 3); recorded in the fingerprint.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


# --- the worker protocol ----------------------------------------------------------------

PREFIX = "SCENEGEN "


def event_line(event: dict) -> str:
    """One progress line of a worker or the batch operator: `SCENEGEN {json}`."""
    return PREFIX + json.dumps(event, separators=(",", ":"))


def parse_event(line: str) -> dict | None:
    """The event of a progress line; None for any other output line."""
    if not line.startswith(PREFIX):
        return None
    try:
        event = json.loads(line[len(PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


# --- GPUs -------------------------------------------------------------------------------

def parse_gpu_list(nvidia_smi_l: str) -> list[tuple[int, str]]:
    """(index, UUID) of each line `GPU 0: NAME (UUID: GPU-...)` of `nvidia-smi -L`."""
    gpus = []
    for line in nvidia_smi_l.splitlines():
        m = re.match(r"\s*GPU (\d+):.*\(UUID: ([^)]+)\)", line)
        if m:
            gpus.append((int(m.group(1)), m.group(2).strip()))
    return gpus


def visible_gpus(nvidia_smi_l: str, cuda_visible_devices: str | None) -> list[str]:
    """The GPUs this user may use, as CUDA_VISIBLE_DEVICES entries.

    Without CUDA_VISIBLE_DEVICES: every GPU nvidia-smi lists, by index. With it: its own
    entries in its order, up to the first one naming no listed GPU (as CUDA reads it).
    """
    gpus = parse_gpu_list(nvidia_smi_l)
    if cuda_visible_devices is None:
        return [str(i) for i, _ in gpus]
    indices = {str(i) for i, _ in gpus}
    uuids = [u for _, u in gpus]
    chosen = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        known = entry in indices or (
            entry.startswith("GPU-") and any(u.startswith(entry) for u in uuids)
        )
        if not known:
            break
        chosen.append(entry)
    return chosen


def worker_gpus(n_gpus: int, workers_per_gpu: int, visible: list[str]) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each worker: worker k runs on GPU k // workers_per_gpu."""
    if n_gpus > len(visible):
        raise ValueError(
            f"n-gpus {n_gpus} is more than the {len(visible)} GPU(s) visible"
            f"{' (' + ', '.join(visible) + ')' if visible else ''}: allowed are 0..{len(visible)}"
        )
    return [visible[k // workers_per_gpu] for k in range(n_gpus * workers_per_gpu)]


# --- settings and plan ------------------------------------------------------------------

def plan_settings(*, seed: int, size: str | None, counts: dict, quality: str,
                  resolution: tuple[int, int], samples: int, blender_version: str,
                  numpy_version: str) -> dict:
    """Everything that changes the output (SPEC 2): hashed into the fingerprint."""
    return {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "spec_version": SPEC_VERSION,
        "seed": seed,
        "size": size,
        "counts": dict(counts),
        "quality": quality,
        "resolution": [int(resolution[0]), int(resolution[1])],
        "samples": samples,
        "cycles": dict(presets.quality(quality).cycles),
        "render": dict(presets.RENDER_SETTINGS),
        "blender_version": blender_version,
        "numpy_version": numpy_version,
    }


def plan_document(settings: dict) -> dict:
    """The contents of .scenegen/plan.json for these settings."""
    scenes = plan.build_plan(settings["counts"], settings["seed"])
    return {
        "fingerprint": plan.fingerprint(settings),
        "settings": settings,
        "scenes": [s.to_dict() for s in scenes],
    }


def parse_blender_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `blender --version` output, None if it is not Blender's."""
    m = re.search(r"^Blender (\d+)\.(\d+)(?:\.(\d+))?", text, re.MULTILINE)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


# --- estimates and progress -------------------------------------------------------------

# Bytes per pixel of a denoised 8-bit RGB PNG and of a 16-bit index mask PNG, and bytes per
# constraint record of the metadata JSON: measured on draft scenes (0.87, 0.005 and 115),
# rounded up so that the estimate errs on the safe side.
IMAGE_BYTES_PER_PIXEL = 1.0
MASK_BYTES_PER_PIXEL = 0.02
RECORD_BYTES = 125
# Render cost in seconds per Cycles sample per megapixel (denoising included): on the CPU in
# core-seconds (measured: a draft scene, 4 views of 480x320 at 64 samples, takes about 120
# CPU-seconds), on a GPU a rough figure for a current NVIDIA card; plus a per-scene overhead
# (build, masks, labels, writing). headless/doctor.py measures the real machine.
CPU_CORE_SECONDS_PER_SAMPLE_MPIX = 3.0
GPU_SECONDS_PER_SAMPLE_MPIX = 0.03
SCENE_OVERHEAD_SECONDS = 3.0


def record_count(n: int) -> int:
    """Upper bound of the constraint records of an n-object scene (SPEC 6.4)."""
    qrr, trr, pairs = 3 * math.comb(n, 4), n * (n - 1) * (n - 2), math.comb(n, 2)
    world = qrr + trr + pairs + pairs + n * math.comb(n - 1, 2)  # + topology, size, closer
    view = qrr + trr + 2 * pairs + n * (n - 1) + pairs  # + axial, occlusion, size
    return world + camera.N_VIEWS * view


def scene_bytes(width: int, height: int, n_objects: int) -> int:
    """Estimated bytes of one scene: 4 images (the single view is a hard link to view 0),
    4 masks, the metadata."""
    pixels = width * height
    images = camera.N_VIEWS * pixels * IMAGE_BYTES_PER_PIXEL
    masks = camera.N_VIEWS * pixels * MASK_BYTES_PER_PIXEL
    return int(images + masks + RECORD_BYTES * record_count(n_objects) + 8192)


def disk_estimate(scenes, width: int, height: int) -> int:
    return sum(scene_bytes(width, height, s.n_objects) for s in scenes)


def scene_seconds(width: int, height: int, samples: int, gpu: bool, cpu_cores: int = 1) -> float:
    """Rough seconds for one scene (4 views) on one GPU, or on the CPU with `cpu_cores`."""
    sample_mpix = camera.N_VIEWS * samples * width * height / 1e6
    if gpu:
        return SCENE_OVERHEAD_SECONDS + sample_mpix * GPU_SECONDS_PER_SAMPLE_MPIX
    return SCENE_OVERHEAD_SECONDS + sample_mpix * CPU_CORE_SECONDS_PER_SAMPLE_MPIX / cpu_cores


def rate(done: int, elapsed: float) -> float | None:
    """Scenes per hour, None before the first scene or the first second."""
    if done <= 0 or elapsed <= 0:
        return None
    return done / elapsed * 3600.0


def eta(remaining: int, per_hour: float | None) -> float | None:
    if remaining <= 0:
        return 0.0
    if not per_hour:
        return None
    return remaining / per_hour * 3600.0


def duration(seconds: float | None) -> str:
    """`1h02m`, `4m05s`, `12s`; `?` when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def size_text(n_bytes: float) -> str:
    """`512 B`, `12.3 MB`, ... (decimal units, as disks are sold)."""
    units = ("B", "KB", "MB", "GB", "TB")
    power = 0
    while n_bytes >= 1000 and power < len(units) - 1:
        n_bytes /= 1000
        power += 1
    return f"{n_bytes:.0f} B" if power == 0 else f"{n_bytes:.1f} {units[power]}"


def progress_bar(done: int, total: int, failed: int, per_hour: float | None,
                 eta_seconds: float | None, width: int = 30) -> str:
    filled = width * done // total if total else width
    speed = "?" if per_hour is None else f"{per_hour:.1f}"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} scenes  "
        f"{speed} scenes/h  ETA {duration(eta_seconds)}  failures {failed}"
    )


def progress_document(done, total, failed, per_hour, eta_seconds, state, message="") -> dict:
    if state not in ("running", "merging", "done", "failed"):
        raise ValueError(f"state {state!r}: allowed are running, merging, done, failed")
    return {
        "done": done, "total": total, "failed": failed,
        "scenes_per_hour": None if per_hour is None else round(per_hour, 3),
        "eta_seconds": None if eta_seconds is None else round(eta_seconds, 1),
        "state": state, "message": message,
    }


def read_progress(output_dir) -> dict | None:
    """The launcher's progress.json (for the panel), None before the launcher writes it."""
    try:
        return json.loads((internal(output_dir) / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def launcher_command(python: str, build_py, output, blender: str | None = None,
                     **options) -> list[str]:
    """The command line that runs headless/build.py, e.g. from the panel's Generate button
    (`blender` = bpy.app.binary_path); options are build.py's, `n_gpus=0` -> `--n-gpus 0`,
    True -> a bare flag."""
    command = [python, str(build_py), "--output", str(output)]
    if blender:
        command += ["--blender", blender]
    for name, value in options.items():
        if value is None or value is False:
            continue
        command.append("--" + name.replace("_", "-"))
        if value is not True:
            command.append(str(value))
    return command


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- output folder ----------------------------------------------------------------------

def internal(output_dir) -> Path:
    return Path(output_dir) / INTERNAL


def is_complete(output_dir, scene_id: str) -> bool:
    """SPEC 1: a scene is complete iff its metadata file exists."""
    return (Path(output_dir) / records.scene_paths(scene_id)["metadata"]).exists()


def foreign_entries(output_dir) -> list[str]:
    """Top-level names in the folder that scenegen did not write."""
    return sorted(p.name for p in Path(output_dir).iterdir() if p.name not in OWN_ENTRIES)


SCENE_FILE = re.compile(r"^\.?([a-z_]+?_\d+)(?!\d)")


def partial_files(output_dir, scene_ids) -> list[Path]:
    """Files and folders left by scenes that are not complete (resume removes them): a
    scene's own names and its temporary names (`.<scene_id>...`, `<scene_id>.png.tmp`)."""
    out = Path(output_dir)
    wanted = set(scene_ids)
    found = []
    for folder in ("images/single_view", "images/multi_view", "masks", "metadata"):
        path = out / folder
        if path.is_dir():
            for entry in path.iterdir():
                m = SCENE_FILE.match(entry.name)
                if m and m.group(1) in wanted:
                    found.append(entry)
    return sorted(found)


def is_disk_error(exc: BaseException) -> bool:
    """A full, over-quota, read-only or unwritable disk: retrying cannot help."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


# --- lock -------------------------------------------------------------------------------

class LockHeld(Exception):
    def __init__(self, pid: int, host: str, path: Path):
        super().__init__(
            f"another launcher (PID {pid} on {host}) is using this folder; "
            f"if it is gone, remove {path}"
        )
        self.pid, self.host = pid, host


def pid_alive(pid: int) -> bool:
    """True for a running process (a zombie, already dead, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def acquire_lock(path, pid: int | None = None, host: str | None = None) -> None:
    """Create the lock file; a lock of a dead process on this host is taken over."""
    path = Path(path)
    pid = os.getpid() if pid is None else pid
    host = socket.gethostname() if host is None else host
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"pid": pid, "host": host, "started": now_iso()})
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                held = {}
            other_pid, other_host = int(held.get("pid", 0)), held.get("host", "?")
            if other_host == host and other_pid and not pid_alive(other_pid):
                path.unlink(missing_ok=True)
                continue
            raise LockHeld(other_pid, other_host, path) from None
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return
    raise LockHeld(0, "?", path)


def release_lock(path, pid: int | None = None) -> None:
    """Remove the lock if it is ours."""
    path = Path(path)
    pid = os.getpid() if pid is None else pid
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass

