"""Which NVIDIA GPUs a run uses and which device each worker gets (standard library only).

The whole rule lives here, as pure functions of explicit inputs, so every machine state can
be tested with recorded `nvidia-smi` output; only `from_machine` (through
launcher.nvidia_smi) and `nvidia_device_nodes` look at the real machine.

The launcher's calls, in order:

    setup = gpus.from_machine(args.n_gpus)        # GpuSetup, or raises GpuSetupError
    print(setup.note)                             # one line: what was found, or why the CPU
    print(setup.warning)                          # when nvidia-smi warned (exit 14)
    print(setup.query_warning)                    # when its per-GPU query failed
    devices = gpus.assign(setup, args.n_gpus, args.workers_per_gpu or 1)
    for line in gpus.worker_lines(devices):       # before any work starts
        print(line)
    env of worker k = {**os.environ, **devices[k].env()}

Public API:
- `from_machine(n_gpus=None, environ=os.environ) -> GpuSetup`: `decide` fed from this
  machine (runs `nvidia-smi -L` and its per-GPU query unless n_gpus == 0, globs
  /dev/nvidia*, reads the CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER of `environ`).
- `decide(nvidia_smi, device_nodes, cuda_visible_devices, *, n_gpus=None,
  cuda_device_order=None, nvidia_smi_failure=None, infos=None, warning=None) -> GpuSetup`:
  the devices a run may use (none: render on the CPU) and a one-line note. Raises
  GpuSetupError, whose message names the cause and the fix, for every ambiguous state and
  every CUDA_VISIBLE_DEVICES entry that names no GPU, unless n_gpus == 0 (always the CPU).
- `assign(setup, n_gpus=None, workers_per_gpu=1) -> tuple[Device, ...]`: the device of each
  worker slot, by UUID; () means CPU workers (the launcher picks how many). Raises
  GpuSetupError when n_gpus is more than the GPUs visible, naming the allowed range, and
  when a GPU it would use has MIG enabled but no MIG device.
- `Device.env()`: the variables pinning one worker to its device; `Device.describe()`.
- `worker_lines(devices) -> list[str]`: one line per worker naming its device.
- `parse_nvidia_smi(text) -> list[Gpu]` and `visible_devices(...)`: the two steps of `decide`.
- `GpuSetupError`: every refusal of this module.
"""

import glob
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from . import nvidia_smi as smi
from .nvidia_smi import GpuInfo

CPU_FIX = "or pass --n-gpus 0 to render on the CPU"

_GPU_LINE = re.compile(r"GPU (\d+): (.+?) \(UUID: (GPU-[^\s()]+)\)")
# new drivers: "MIG 3g.40gb     Device  0: (UUID: MIG-<uuid>)"; old ones (R450/R460):
# "MIG 1g.5gb Device 0: (UUID: MIG-GPU-<gpu uuid>/<gpu instance>/<compute instance>)"
_MIG_LINE = re.compile(r"MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^\s()]+)\)")


class GpuSetupError(Exception):
    """The GPUs to use cannot be told for sure; the message says why and how to fix it."""


@dataclass(frozen=True)
class Device:
    """One CUDA device a worker is pinned to: a whole GPU, or one MIG slice of a GPU."""

    uuid: str  # what CUDA_VISIBLE_DEVICES gets: the MIG UUID of a slice, else the GPU's
    gpu_index: int  # the GPU's index in `nvidia-smi -L` (PCI bus order)
    gpu_uuid: str
    name: str  # the GPU's model
    mig_profile: str | None = None  # e.g. "3g.40gb" for a slice
    mig_device: int | None = None  # the slice's device number on its GPU

    def env(self) -> dict[str, str]:
        """Pin a worker by UUID; the bus order makes any index it reports match nvidia-smi."""
        return {"CUDA_VISIBLE_DEVICES": self.uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

    def describe(self) -> str:
        where = f"GPU {self.gpu_index} {self.name}"
        if self.mig_profile is None:
            return f"{where} ({self.uuid})"
        return f"{where}, MIG {self.mig_profile} device {self.mig_device} ({self.uuid})"


@dataclass(frozen=True)
class Gpu:
    """One line `GPU i: NAME (UUID: ...)` of `nvidia-smi -L` with the MIG lines under it."""

    index: int
    name: str
    uuid: str
    migs: tuple[Device, ...] = ()

    def devices(self) -> tuple[Device, ...]:
        """A MIG-enabled GPU is its slices (CUDA cannot use it whole); any other is itself."""
        return self.migs or (Device(self.uuid, self.index, self.uuid, self.name),)


@dataclass(frozen=True)
class GpuSetup:
    """What a run may use: `devices` (empty: the CPU) and the one-line `note` to print; the
    GPUs' facts by GPU UUID (`nvidia-smi --query-gpu`, {} when it said nothing) and
    nvidia-smi's warning to print (exit 14), if any; `query_warning` to print when that
    query failed."""

    devices: tuple[Device, ...]
    note: str
    infos: Mapping[str, GpuInfo] = field(default_factory=dict)
    warning: str | None = None
    query_warning: str | None = None

    def info(self, gpu_uuid: str) -> GpuInfo:
        return self.infos.get(gpu_uuid, GpuInfo())

    @property
    def gpus(self) -> tuple[str, ...]:
        """UUIDs of the physical GPUs behind `devices`, in their order, each once."""
        return tuple(dict.fromkeys(d.gpu_uuid for d in self.devices))


# --- reading the machine (the only impure part) -------------------------------------------

def nvidia_device_nodes() -> list[str]:
    """The /dev/nvidia* nodes: present wherever an NVIDIA driver is loaded."""
    return sorted(glob.glob("/dev/nvidia*"))


def from_machine(n_gpus: int | None = None, environ: Mapping[str, str] = os.environ) -> GpuSetup:
    """`decide` with this machine's inputs; --n-gpus 0 runs nothing."""
    if n_gpus == 0:
        return decide(None, [], None, n_gpus=0)
    listing = smi.run()
    infos, failure = smi.query() if listing.output is not None else (None, None)
    setup = decide(listing.output, nvidia_device_nodes(), environ.get("CUDA_VISIBLE_DEVICES"),
                   n_gpus=n_gpus, cuda_device_order=environ.get("CUDA_DEVICE_ORDER"),
                   nvidia_smi_failure=listing.failure, warning=listing.warning, infos=infos)
    if failure is None:
        return setup
    return replace(setup, query_warning=(
        f"`nvidia-smi --query-gpu` failed ({failure}): the GPUs' driver, compute mode and MIG "
        "mode are unknown, so a GPU with MIG enabled but no MIG devices is not refused "
        "before its workers start"))


# --- parsing ------------------------------------------------------------------------------

def parse_nvidia_smi(text: str) -> list[Gpu]:
    """The GPUs of `nvidia-smi -L` output, with their MIG slices.

    Strict: any other non-blank line raises GpuSetupError, since a line we cannot read may
    be a GPU we would silently leave out.
    """
    gpus: list[Gpu] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        gpu = _GPU_LINE.fullmatch(stripped)
        mig = _MIG_LINE.fullmatch(stripped)
        if gpu:
            gpus.append(Gpu(int(gpu.group(1)), gpu.group(2), gpu.group(3)))
        elif mig and gpus:
            parent = gpus[-1]
            piece = Device(mig.group(3), parent.index, parent.uuid, parent.name,
                           mig.group(1), int(mig.group(2)))
            gpus[-1] = Gpu(parent.index, parent.name, parent.uuid, (*parent.migs, piece))
        else:
            raise GpuSetupError(
                f"cannot read line {number} of `nvidia-smi -L`: {stripped!r}. Fix the NVIDIA "
                f"driver until `nvidia-smi -L` lists only GPU and MIG lines, {CPU_FIX}")
    if not gpus:
        shown = text.strip()[:200] or "nothing"
        raise GpuSetupError(f"`nvidia-smi -L` lists no GPU (it printed {shown!r}). Fix the "
                            f"NVIDIA driver until it lists the GPUs, {CPU_FIX}")
    return gpus


# --- CUDA_VISIBLE_DEVICES -----------------------------------------------------------------

def _entry_devices(entry: str, gpus: Sequence[Gpu]) -> tuple[Device, ...] | None:
    """The devices one CUDA_VISIBLE_DEVICES entry names; None when CUDA finds it invalid."""
    key = entry.lower()
    if entry.isascii() and entry.isdigit():
        found = [g for g in gpus if g.index == int(entry)]
    elif key.startswith("gpu-"):
        found = [g for g in gpus if g.uuid.lower().startswith(key)]  # a unique prefix will do
    elif key.startswith("mig-"):
        return next(((m,) for g in gpus for m in g.migs if m.uuid.lower() == key), None)
    else:
        return None
    return found[0].devices() if len(found) == 1 else None


def visible_devices(gpus: Sequence[Gpu], cuda_visible_devices: str | None,
                    cuda_device_order: str | None = None) -> tuple[list[Device], list[str]]:
    """(devices CUDA would show, entries it ignores), as CUDA reads CUDA_VISIBLE_DEVICES.

    Unset: every device in listing order. Set: its entries in order (an index, a GPU UUID
    or a unique prefix of one starting with `GPU-`, a `MIG-` UUID); a GPU entry for a
    MIG-enabled GPU stands for all its slices; a device named twice counts once. CUDA stops
    at the first entry that names nothing: that entry and the rest are ignored. An index
    counts in CUDA_DEVICE_ORDER, which is fastest-first unless set to PCI_BUS_ID: on a
    machine mixing GPU models that order is not nvidia-smi's, so indices raise there.
    """
    everything = [d for g in gpus for d in g.devices()]
    if cuda_visible_devices is None:
        return everything, []
    entries = [e.strip() for e in cuda_visible_devices.split(",")]
    chosen: dict[str, Device] = {}
    for position, entry in enumerate(entries):
        devices = _entry_devices(entry, gpus)
        if devices is None:
            return list(chosen.values()), entries[position:]
        if entry.isdigit():
            _check_index_order(entry, gpus, cuda_device_order)
        for device in devices:
            chosen.setdefault(device.uuid, device)
    return list(chosen.values()), []


def _check_index_order(entry: str, gpus: Sequence[Gpu], cuda_device_order: str | None) -> None:
    models = sorted({g.name for g in gpus})
    if len(models) > 1 and (cuda_device_order or "").strip() != "PCI_BUS_ID":
        raise GpuSetupError(
            f"CUDA_VISIBLE_DEVICES names GPU {entry} by index, but this machine mixes "
            f"{' and '.join(models)} and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA counts "
            "the GPUs fastest first, not in nvidia-smi's order. Fix: set "
            f"CUDA_DEVICE_ORDER=PCI_BUS_ID, or name the GPUs by UUID, {CPU_FIX}")


# --- the decision -------------------------------------------------------------------------

def decide(nvidia_smi: str | None, device_nodes: Sequence[str],
           cuda_visible_devices: str | None, *, n_gpus: int | None = None,
           cuda_device_order: str | None = None, nvidia_smi_failure: str | None = None,
           infos: Mapping[str, GpuInfo] | None = None,
           warning: str | None = None) -> GpuSetup:
    """The devices a run may use, from explicit inputs.

    `nvidia_smi` is the output of `nvidia-smi -L`, None when it did not run:
    `nvidia_smi_failure` then says why (None: it is not on PATH); `warning` is what it
    warned of while listing (exit 14). `device_nodes` are the /dev/nvidia* paths;
    `cuda_visible_devices` the user's value (None: unset); `infos` the GPUs' facts.
    - n_gpus == 0: the CPU, whatever the machine shows.
    - No sign of an NVIDIA GPU (no nvidia-smi, no device nodes, CUDA_VISIBLE_DEVICES unset or
      hiding every GPU): the CPU, with a note saying so.
    - Ambiguous (raises GpuSetupError): nvidia-smi failing; device nodes without nvidia-smi;
      CUDA_VISIBLE_DEVICES naming GPUs where no driver is seen; output that cannot be read;
      a CUDA_VISIBLE_DEVICES that is empty or names no listed device while GPUs are listed.
    - A CUDA_VISIBLE_DEVICES entry that names no GPU, anywhere in the list, raises too: CUDA
      would silently stop there (a typo in `0,9,1` makes an 8-GPU run a 1-GPU run).
    - Otherwise the visible devices (see `visible_devices`).
    """
    if n_gpus == 0:
        return GpuSetup((), "rendering on the CPU (--n-gpus 0)")
    if nvidia_smi is None:
        return _without_nvidia_smi(device_nodes, cuda_visible_devices, nvidia_smi_failure)
    gpus = parse_nvidia_smi(nvidia_smi)
    devices, ignored = visible_devices(gpus, cuda_visible_devices, cuda_device_order)
    if not devices:
        raise GpuSetupError(_hidden_message(gpus, cuda_visible_devices or ""))
    if ignored:
        raise GpuSetupError(_ignored_message(gpus, cuda_visible_devices, devices, ignored[0]))
    return GpuSetup(tuple(devices), _gpu_note(devices, cuda_visible_devices), infos or {},
                    warning)


def _hides_all(cuda_visible_devices: str) -> bool:
    """Empty, or starting with a negative index (`-1`): the usual ways to hide every GPU."""
    first = cuda_visible_devices.split(",")[0].strip()
    return first == "" or re.fullmatch(r"-\d+", first) is not None


def _without_nvidia_smi(device_nodes: Sequence[str], cuda_visible_devices: str | None,
                        failure: str | None) -> GpuSetup:
    if failure is not None:
        raise GpuSetupError(
            f"`nvidia-smi -L` failed ({failure}), so the NVIDIA GPUs cannot be listed. Fix: "
            f"repair the NVIDIA driver until `nvidia-smi -L` lists the GPUs, {CPU_FIX}")
    if device_nodes:
        shown = ", ".join(device_nodes[:4]) + (", ..." if len(device_nodes) > 4 else "")
        raise GpuSetupError(
            f"NVIDIA device nodes exist ({shown}) but nvidia-smi is not on PATH, so the GPUs "
            "cannot be listed. Fix: install the NVIDIA driver utilities or add nvidia-smi to "
            f"PATH, {CPU_FIX}")
    if cuda_visible_devices is not None and not _hides_all(cuda_visible_devices):
        raise GpuSetupError(
            f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} asks for GPUs, but no NVIDIA "
            "driver is visible here (no nvidia-smi on PATH, no /dev/nvidia*). Fix: run where "
            f"the GPUs are (a container needs them passed through), unset it, {CPU_FIX}")
    why = ("no nvidia-smi on PATH, no /dev/nvidia* devices" if cuda_visible_devices is None
           else f"no nvidia-smi, no /dev/nvidia*, CUDA_VISIBLE_DEVICES={cuda_visible_devices!r}")
    return GpuSetup((), f"no NVIDIA GPU here ({why}): rendering on the CPU")


def _hidden_message(gpus: Sequence[Gpu], cuda_visible_devices: str) -> str:
    listed = f"`nvidia-smi -L` lists {len(gpus)} GPU(s)"
    if not cuda_visible_devices.strip():
        cause = f"CUDA_VISIBLE_DEVICES is set but empty, which hides every GPU, while {listed}"
    else:
        first = cuda_visible_devices.split(",")[0].strip()
        cause = (f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} names no GPU of the "
                 f"{len(gpus)} that `nvidia-smi -L` lists: CUDA stops at its first entry "
                 f"{first!r} and sees none")
    return f"{cause}. Fix: unset it to use every GPU, {_naming(gpus)}, {CPU_FIX}"


def _naming(gpus: Sequence[Gpu]) -> str:
    indices = ", ".join(str(g.index) for g in gpus)
    return (f"set it to the GPUs to use (indices {indices}, or the GPU-/MIG- UUIDs "
            "`nvidia-smi -L` prints)")


def _ignored_message(gpus: Sequence[Gpu], cuda_visible_devices: str,
                     devices: Sequence[Device], entry: str) -> str:
    return (f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r}: its entry {entry!r} names no GPU "
            f"of the {len(gpus)} that `nvidia-smi -L` lists, and CUDA stops reading at such an "
            f"entry: the run would use {len(devices)} device(s) instead of the ones you listed. "
            f"Fix: correct or remove {entry!r}, unset it to use every GPU, or "
            f"{_naming(gpus)}; {CPU_FIX}")


def _gpu_note(devices: Sequence[Device], cuda_visible_devices: str | None) -> str:
    models: dict[str, set[str]] = {}
    for d in devices:
        models.setdefault(d.name, set()).add(d.gpu_uuid)
    n_gpus = sum(len(uuids) for uuids in models.values())
    kinds = ", ".join(f"{len(uuids)}x {name}" for name, uuids in models.items())
    note = f"{n_gpus} NVIDIA GPU(s) visible ({kinds})"
    slices = sum(d.mig_profile is not None for d in devices)
    if slices:
        note += f", {len(devices)} devices, {slices} of them MIG slices"
    if cuda_visible_devices is not None:
        note += f", as CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} allows"
    return note


# --- workers ------------------------------------------------------------------------------

def assign(setup: GpuSetup, n_gpus: int | None = None,
           workers_per_gpu: int = 1) -> tuple[Device, ...]:
    """The device of each worker slot: worker k runs on the k-th device returned.

    Takes the first `n_gpus` physical GPUs of `setup` (None: all) in their visible order
    (the order of the user's CUDA_VISIBLE_DEVICES when it is set) and lists each GPU's
    workers together. A whole GPU gets `workers_per_gpu` workers. A MIG-enabled GPU with s
    visible slices gets max(s, workers_per_gpu) workers, and its j-th worker runs on slice
    j mod s: every slice gets a worker, and extra workers spread over the slices before any
    slice gets a second one. () means the CPU (n_gpus 0, or a setup without devices).
    """
    if isinstance(workers_per_gpu, bool) or workers_per_gpu < 1:
        raise ValueError(f"workers_per_gpu must be 1 or more, got {workers_per_gpu!r}")
    gpus = setup.gpus
    wanted = len(gpus) if n_gpus is None else n_gpus
    if not 0 <= wanted <= len(gpus):
        raise GpuSetupError(f"--n-gpus {wanted}: {len(gpus)} GPU(s) are visible, so allowed "
                            f"are 0..{len(gpus)} ({setup.note})")
    workers: list[Device] = []
    for gpu_uuid in gpus[:wanted]:
        slots = [d for d in setup.devices if d.gpu_uuid == gpu_uuid]
        if slots[0].mig_profile is None and setup.info(gpu_uuid).mig_mode == "Enabled":
            raise GpuSetupError(_mig_without_devices(slots[0]))
        workers += [slots[j % len(slots)] for j in range(max(workers_per_gpu, len(slots)))]
    return tuple(workers)


def _mig_without_devices(gpu: Device) -> str:
    """A MIG-enabled GPU without MIG devices: CUDA cannot use it at all."""
    i = gpu.gpu_index
    return (f"GPU {i} {gpu.name} ({gpu.gpu_uuid}) has MIG enabled but no MIG devices "
            "(`nvidia-smi -L` lists none under it), so no worker could use it. Fix: create "
            f"MIG instances (e.g. `sudo nvidia-smi mig -i {i} -cgi <profiles> -C`), or disable "
            f"MIG (`sudo nvidia-smi -i {i} -mig 0`, then reset the GPU), or leave the GPU out "
            f"(CUDA_VISIBLE_DEVICES, --n-gpus), {CPU_FIX}")


def worker_lines(devices: Sequence[Device]) -> list[str]:
    """One line per worker naming its device, to print before work starts."""
    return [f"worker {k}: {device.describe()}" for k, device in enumerate(devices)]
