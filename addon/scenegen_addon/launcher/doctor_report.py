"""What the doctor's probes measured, read (pure): the verdicts, the report lines, the ETA
table, the choices the build takes (backend and start order per GPU model), and the
figures file's entries. launcher.doctor runs the probes; launcher.estimate,
launcher.backend and launcher.kernel_cache read the file."""

import dataclasses

from ..core import presets
from . import estimate, gpus, kernel_cache, progress
from .nvidia_smi import GpuInfo

# compute modes in which one CUDA process at a time may use a GPU (nvidia-smi's names)
EXCLUSIVE_MODES = ("Exclusive_Process", "Exclusive_Thread")
OTHER_BACKEND = {"OPTIX": "CUDA", "CUDA": "OPTIX"}
# A kernel load under this many seconds compiled nothing worth caching; a second process
# whose load is under CACHE_WORKS of the first one's found the first one's kernels.
SMALL_KERNEL_LOAD = 10.0
CACHE_WORKS = 0.5
# a difference under this fraction of a time is noise, not a faster setting (the 5% rule)
NOISE = 0.05
STAGES = {"cold": "cold process", "second": "second cold process", "pair": "2 workers at once",
          "other": "other backend", "alone": "one cold process alone"}


class ProbeFailed(Exception):
    """A probe did not give its result; the message says why."""


@dataclasses.dataclass
class Target:
    """One device the doctor measures, and what each stage's probes returned (a result
    dict, or the ProbeFailed of a probe that gave none)."""

    label: str
    gpu: gpus.Device | None
    info: GpuInfo = GpuInfo()
    runs: dict = dataclasses.field(default_factory=dict)

    def results(self, stage: str) -> list[dict]:
        return [r for r in self.runs.get(stage, []) if isinstance(r, dict)]

    def failures(self, stage: str) -> list[ProbeFailed]:
        return [r for r in self.runs.get(stage, []) if isinstance(r, ProbeFailed)]

    @property
    def kind(self) -> str:
        return estimate.device_kind(self.gpu)

    def used(self) -> str:
        """The backend its cold process rendered with."""
        return self.results("cold")[0]["device"]

    def other(self) -> str | None:
        """The other of OptiX and CUDA, when Cycles lists it here."""
        cold = self.results("cold")[0]
        other = OTHER_BACKEND.get(cold["device"])
        return other if other in {kind for kind, _ in cold["devices"]} else None


# --- one probe's figures ----------------------------------------------------------------------

def start_seconds(result: dict) -> float:
    """A probe's seconds outside its renders: process start, imports, exit."""
    rendered = result["first_scene_seconds"] + sum(result["scene_seconds"])
    rendered += sum(d["seconds"] for d in (result.get("denoise") or {}).values())
    return max(0.0, result["wall_seconds"] - rendered)


def ready_seconds(result: dict) -> float:
    """From the process start to its first scene done: what a worker's start costs."""
    return start_seconds(result) + result["first_scene_seconds"]


def kernel_load(result: dict) -> float:
    """The first scene's extra time over a later one: loading or compiling the kernels."""
    return max(0.0, result["first_scene_seconds"] - result["seconds_per_scene"])


def cache_verdict(cold: dict, second: dict) -> str:
    """Whether the second process found the kernels the first one compiled."""
    first, again = kernel_load(cold), kernel_load(second)
    if first < SMALL_KERNEL_LOAD:
        return "the cold process compiled little (a cache or kernels in the package)"
    if again <= CACHE_WORKS * first:
        return "the kernel cache works"
    return "it compiled again: the kernel cache is not kept"


def denoise_verdict(denoise: dict) -> str:
    """Read the denoiser's on/off times; Blender does not say which device OIDN ran on."""
    on, off = denoise["on"]["render_seconds"], denoise["off"]["render_seconds"]
    if not (denoise["on"]["denoising_use_gpu"] and not denoise["off"]["denoising_use_gpu"]):
        return "the setting did not take"
    if on < (1 - NOISE) * off:
        return f"the GPU denoiser saves {off - on:.1f} s"
    return "no faster with it on: OIDN may have run on the CPU both times"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def one_worker_seconds(target: Target) -> float | None:
    """Seconds per scene of one worker alone on the device (its single processes)."""
    found = [r["seconds_per_scene"] for s in ("cold", "second") for r in target.results(s)]
    return mean(found) if found else None


def two_worker_seconds(target: Target) -> float | None:
    """Seconds per scene of each of two workers sharing the device; None unless both ran."""
    pair = target.results("pair")
    return mean([r["seconds_per_scene"] for r in pair]) if len(pair) == 2 else None


def first_scene_seconds(results: list[dict]) -> float:
    """The slowest first scene counted from the process start: the allowance's basis."""
    return max(ready_seconds(r) for r in results)


# --- the choices the build takes, per GPU model -------------------------------------------------

def by_model(targets: list[Target]) -> dict[str, list[Target]]:
    """The GPU targets whose cold probe worked, by GPU model (MIG slices with their GPU's)."""
    found: dict[str, list[Target]] = {}
    for target in targets:
        if target.gpu is not None and target.results("cold"):
            found.setdefault(target.gpu.name, []).append(target)
    return found


def pick_backend(default: str, seconds: dict[str, float]) -> str:
    """Cycles' default backend, unless the other was faster by more than NOISE."""
    others = [b for b in seconds if b != default and seconds[b] < (1 - NOISE) * seconds[default]]
    return others[0] if others else default


def backend_figures(same: list[Target]) -> dict | None:
    """OptiX against CUDA on one model's GPUs, where every one measured both."""
    if not all(t.results("other") for t in same):
        return None
    seconds = {same[0].used(): mean([one_worker_seconds(t) for t in same]),
               same[0].results("other")[0]["device"]:
                   mean([t.results("other")[0]["seconds_per_scene"] for t in same])}
    default = same[0].results("cold")[0]["gpu_default"]
    if default not in seconds:
        return None
    return {"default": default, "chosen": pick_backend(default, seconds),
            "seconds_per_scene": {k: round(v, 3) for k, v in seconds.items()}}


def start_order_figures(same: list[Target]) -> dict | None:
    """One cold start alone against all of a model's GPUs cold at once, both from empty
    caches: the time until every GPU has its first scene done, all at once, or one first
    and then the rest on its cache (the second cold processes, also all at once)."""
    alone = [r for t in same for r in t.results("alone")]
    warm = [r for t in same for r in t.results("second")]
    if len(same) < 2 or not alone or len(warm) < len(same):
        return None
    together = max(ready_seconds(t.results("cold")[0]) for t in same)
    one_first = ready_seconds(alone[0]) + max(map(ready_seconds, warm))
    chosen = (kernel_cache.ONE_FIRST if one_first < (1 - NOISE) * together
              else kernel_cache.ALL_AT_ONCE)
    return {"chosen": chosen, "gpus": len(same), "backend": same[0].used(),
            "alone_seconds": round(ready_seconds(alone[0]), 3),
            "warm_seconds": round(max(map(ready_seconds, warm)), 3),
            "one_first_seconds": round(one_first, 3), "all_at_once_seconds": round(together, 3)}


def choices(targets: list[Target]) -> list[dict]:
    """Per GPU model, what the build takes: `backend` (for --gpu-backend auto) and
    `start_order`, each where it was measured."""
    found = []
    for model, same in by_model(targets).items():
        entry = {"model": model, "driver_version": same[0].info.driver_version,
                 "blender_version": same[0].results("cold")[0]["blender_version"]}
        measured = {"backend": backend_figures(same), "start_order": start_order_figures(same)}
        measured = {name: figures for name, figures in measured.items() if figures is not None}
        if measured:
            found.append({**entry, **measured})
    return found


def choice_lines(found: list[dict]) -> list[str]:
    lines = []
    for entry in found:
        model = entry["model"]
        if "backend" in entry:
            b = entry["backend"]
            times = ", ".join(f"{k} {v:.1f} s" for k, v in b["seconds_per_scene"].items())
            lines.append(f"{model}: --gpu-backend auto takes {b['chosen']} ({times} per scene; "
                         f"Cycles' default {b['default']} stays unless the other is more than "
                         f"{NOISE:.0%} faster)")
        if "start_order" in entry:
            s = entry["start_order"]
            order = ("one worker first, the others on its cache"
                     if s["chosen"] == kernel_cache.ONE_FIRST else "every worker at once")
            lines.append(f"{model}: a build starts {order} while the kernel cache is cold "
                         f"(every GPU's first scene done after {s['all_at_once_seconds']:.0f} s "
                         f"all {s['gpus']} at once; after {s['one_first_seconds']:.0f} s one "
                         f"first: {s['alone_seconds']:.0f} s alone, then "
                         f"{s['warm_seconds']:.0f} s on its cache)")
    return lines


# --- the report ---------------------------------------------------------------------------------

def eta_table(seconds_per_scene: list[float], sizes: dict | None = None) -> list[dict]:
    """ETA of each size preset with one worker per entry working in parallel.

    The workers' rates add up: scenes per hour = sum of 3600 / seconds over the entries.
    """
    if not seconds_per_scene or any(s <= 0 for s in seconds_per_scene):
        raise ValueError(f"seconds_per_scene must be positive numbers, got {seconds_per_scene}")
    per_hour = sum(3600.0 / s for s in seconds_per_scene)
    rows = []
    for size, counts in (sizes or presets.DATASET_SIZES).items():
        scenes = sum(counts.values())
        rows.append({"size": size, "scenes": scenes, "seconds": progress.eta(scenes, per_hour)})
    return rows


def _objects(result: dict) -> str:
    return ", ".join(str(n) for n in result["n_objects"])


def _failed(target: Target, stage: str, what: str) -> list[str]:
    return [f"  {what}: FAILED: {exc}" for exc in target.failures(stage)]


def target_lines(target: Target) -> list[str]:
    """What was measured on one device, a line per question."""
    header = target.label
    if target.gpu is not None:
        info = target.info
        header += (f": driver {info.driver_version}, compute mode {info.compute_mode}, "
                   f"MIG {info.mig_mode}")
    cold = target.results("cold")
    if not cold:
        return [header, *_failed(target, "cold", "probe")]
    c = cold[0]
    lines = [header, "  Cycles sees " + ", ".join(f"{kind} {name}" for kind, name in c["devices"])]
    load = f" (kernel load ~{kernel_load(c):.1f} s)" if target.gpu is not None else ""
    lines.append(f"  {c['device']} ({c['device_name']}), cold process: started in "
                 f"{start_seconds(c):.1f} s, first scene {c['first_scene_seconds']:.1f} s{load}, "
                 f"then {c['seconds_per_scene']:.1f} s per scene ({_objects(c)} objects)")
    if target.gpu is None:
        return lines
    return (lines + _second_lines(target, c) + _pair_lines(target) + _other_lines(target, c)
            + _alone_lines(target))


def _second_lines(target: Target, cold: dict) -> list[str]:
    lines = _failed(target, "second", f"{cold['device']}, second cold process")
    for s in target.results("second"):
        lines.append(f"  {s['device']}, second cold process: first scene "
                     f"{s['first_scene_seconds']:.1f} s (kernel load ~{kernel_load(s):.1f} s): "
                     f"{cache_verdict(cold, s)}")
        if s.get("denoise"):
            d = s["denoise"]
            lines.append(f"  denoiser: {d['on']['render_seconds']:.1f} s in Cycles per scene "
                         f"with denoising_use_gpu on, {d['off']['render_seconds']:.1f} s off: "
                         f"{denoise_verdict(d)} (Blender does not say which device OIDN used)")
    return lines


def _pair_lines(target: Target) -> list[str]:
    if target.info.compute_mode in EXCLUSIVE_MODES:
        return [f"  2 workers at once: skipped: compute mode {target.info.compute_mode} lets "
                "one process at a time use the GPU (use --workers-per-gpu 1)"]
    lines = _failed(target, "pair", "2 workers at once")
    two, one = two_worker_seconds(target), one_worker_seconds(target)
    if two is not None:
        each = " and ".join(f"{r['seconds_per_scene']:.1f}" for r in target.results("pair"))
        lines.append(f"  2 workers at once: {each} s per scene, {2 * 3600 / two:.0f} scenes per "
                     f"hour together against {3600 / one:.0f} with 1 worker")
    return lines


def _other_lines(target: Target, cold: dict) -> list[str]:
    other = target.other()
    if other is None:
        return [f"  OptiX against CUDA: not compared, Cycles lists only {cold['device']}"]
    lines = _failed(target, "other", other)
    for o in target.results("other"):
        mine, theirs = one_worker_seconds(target), o["seconds_per_scene"]
        faster = cold["device"] if mine < theirs else other
        lines.append(f"  {other} ({o['device_name']}), one process: first scene "
                     f"{o['first_scene_seconds']:.1f} s, then {theirs:.1f} s per scene: "
                     f"{faster} is faster ({cold['device']} {mine:.1f} s, {other} "
                     f"{theirs:.1f} s per scene)")
    return lines


def _alone_lines(target: Target) -> list[str]:
    lines = _failed(target, "alone", "one cold process alone")
    for a in target.results("alone"):
        lines.append(f"  one cold process alone on the machine, empty caches: its first scene "
                     f"done {ready_seconds(a):.1f} s after its start (here "
                     f"{ready_seconds(target.results('cold')[0]):.1f} s with every GPU at once)")
    return lines


def advice(targets: list[Target]) -> str | None:
    """The fastest settings measured on every GPU: the backend, and 1 or 2 workers each."""
    measured = [t for t in targets if t.gpu is not None and t.results("cold")]
    if not measured or len(measured) < len(targets):
        return None
    picked = {e["backend"]["chosen"] for e in choices(targets) if "backend" in e}
    backend = picked.pop() if len(picked) == 1 else measured[0].used()
    two = all(p is not None and 2 / p > (1 + NOISE) / one_worker_seconds(t)
              for t, p in ((t, two_worker_seconds(t)) for t in measured))
    if any(t.gpu.mig_profile is not None for t in measured):
        workers = f"{2 if two else 1} worker(s) per MIG slice"
    else:
        workers = f"--workers-per-gpu {2 if two else 1}"
    return f"Fastest measured here: --gpu-backend {backend.lower()}, {workers}"


def eta_lines(targets: list[Target], setting: str) -> list[str]:
    """ETA per size preset with one worker per measured device, and with two where every
    device was measured with two."""
    ones = [s for s in map(one_worker_seconds, targets) if s is not None]
    if not ones:
        return []
    twos = [two_worker_seconds(t) for t in targets if t.results("cold")]
    both = eta_table([s for s in twos for _ in (0, 1)]) if None not in twos else None
    lines = [f"ETA at {setting} on {len(ones)} device(s) working together:"]
    for k, row in enumerate(eta_table(ones)):
        lines.append(f"  --size {row['size']:<7} {row['scenes']:>7} scenes  "
                     f"{progress.duration(row['seconds'])}")
        if both:
            lines[-1] += f"  (2 workers per device: {progress.duration(both[k]['seconds'])})"
    return lines


def report_lines(blender_version: str, targets: list[Target], setting: str) -> list[str]:
    """The human summary: each device's measurements, the ETA table, the choices a build
    takes, the fastest settings."""
    lines = [f"Blender {blender_version}"]
    for target in targets:
        lines += target_lines(target)
    lines += eta_lines(targets, setting) + choice_lines(choices(targets))
    found = advice(targets)
    return lines + ([found] if found else [])


# --- the figures file ---------------------------------------------------------------------------

def _entry(targets: list[Target], backend: str, stages: tuple, setting: dict) -> dict:
    """One figures entry: devices of one kind measured with one backend."""
    results = [r for t in targets for s in stages for r in t.results(s)]
    ones = [mean([r["seconds_per_scene"] for s in stages if s != "pair" for r in t.results(s)])
            for t in targets]
    entry = {
        "kind": targets[0].kind, "backend": backend, **setting,
        "default": backend == "CPU" or results[0].get("gpu_default") == backend,
        "seconds_per_scene": {"1": round(mean(ones), 3)},
        "first_scene_seconds": round(first_scene_seconds(results), 3),
        "cold_start_seconds": round(max(t.results(stages[0])[0]["first_scene_seconds"]
                                        for t in targets), 3),
        "devices": len(targets),
        "blender_version": results[0]["blender_version"],
    }
    if backend != "CPU":
        entry["driver_version"] = targets[0].info.driver_version
    seconds_two = [two_worker_seconds(t) for t in targets] if "pair" in stages else [None]
    if None not in seconds_two:
        entry["seconds_per_scene"]["2"] = round(mean(seconds_two), 3)
    warm = [t.results("second") for t in targets] if "second" in stages else [[]]
    if all(warm):
        entry["warm_start_seconds"] = round(max(w[0]["first_scene_seconds"] for w in warm), 3)
    return entry


def figures_entries(targets: list[Target], setting: dict) -> list[dict]:
    """Entries per device kind and backend, over the devices whose cold probe worked."""
    kinds: dict[str, list[Target]] = {}
    for target in targets:
        if target.results("cold"):
            kinds.setdefault(target.kind, []).append(target)
    entries = []
    for same in kinds.values():
        entries.append(_entry(same, same[0].used(), ("cold", "second", "pair"), setting))
        other = [t for t in same if t.results("other")]
        if other:
            entries.append(_entry(other, other[0].results("other")[0]["device"], ("other",),
                                  setting))
    return entries


def merge_figures(old: dict | None, entries: list[dict], found: list[dict], host: str,
                  now: str) -> dict:
    """The figures file with `entries` in place of older ones of the same key, and the
    choices `found` in place of older ones of the same GPU model."""
    stamp = {"host": host, "measured": now}
    new_keys = {estimate.entry_key(e) for e in entries}
    kept = [e for e in (old or {}).get("entries", []) if estimate.entry_key(e) not in new_keys]
    models = {c["model"] for c in found}
    kept_choices = [c for c in (old or {}).get("choices", []) if c.get("model") not in models]
    return {"format": estimate.FIGURES_FORMAT,
            "entries": kept + [{**e, **stamp} for e in entries],
            "choices": kept_choices + [{**c, **stamp} for c in found]}
