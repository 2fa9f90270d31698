"""Asking `nvidia-smi` (standard library only): the one place that runs it.

Two questions: `-L` (the GPUs and their MIG devices; launcher.gpus reads the answer) and
`--query-gpu` (per GPU its model, driver, compute mode and MIG mode: `GpuInfo`).

nvidia-smi exits 14 when a GPU's infoROM is corrupted, yet lists every GPU: that status is
a warning (`Answer.warning`) and the output stands; any other non-zero status is a failure.
"""

import csv
import io
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

TIMEOUT = 60.0  # seconds; nvidia-smi can be slow while a driver initialises
INFOROM_CORRUPTED = 14  # its exit status for a corrupted infoROM: a warning, not a failure
_INFOROM_LINE = re.compile(r"\s*WARNING: infoROM is corrupted.*")
QUERY = ("uuid", "name", "driver_version", "compute_mode", "mig.mode.current")
UNKNOWN = "unknown"


class Answer(NamedTuple):
    """What nvidia-smi said: `output` when it ran and exited 0 or 14, else None with the
    `failure` (None too when it is not on PATH); `warning` for exit 14."""

    output: str | None
    failure: str | None
    warning: str | None = None


def run(args: Sequence[str] = ("-L",), timeout: float = TIMEOUT) -> Answer:
    """`nvidia-smi ARGS`. With exit 14 its infoROM warning lines are taken out of the output
    into `warning` (with what it wrote on stderr); the rest must then read as usual."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return Answer(None, None)
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Answer(None, f"timed out after {timeout:g} s")
    except OSError as exc:
        return Answer(None, str(exc))
    if done.returncode == INFOROM_CORRUPTED:
        lines = done.stdout.splitlines(keepends=True)
        warned = [line.strip() for line in lines if _INFOROM_LINE.fullmatch(line.rstrip("\n"))]
        said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        kept = "".join(line for line in lines if not _INFOROM_LINE.fullmatch(line.rstrip("\n")))
        text = "; ".join(dict.fromkeys(warned + said)) or "no message"
        return Answer(kept, None, f"nvidia-smi exited with status 14 (a corrupted infoROM): "
                                  f"{text}")
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return Answer(None, f"exit status {done.returncode}" + (f": {said[0]}" if said else ""))
    return Answer(done.stdout, None)


@dataclass(frozen=True)
class GpuInfo:
    """What nvidia-smi says of one physical GPU; "unknown" where it said nothing."""

    name: str = UNKNOWN
    driver_version: str = UNKNOWN
    compute_mode: str = UNKNOWN
    mig_mode: str = UNKNOWN  # "Enabled", "Disabled", "N/A" (no MIG on this model)


def parse_query(text: str | None) -> dict[str, GpuInfo]:
    """GpuInfo by GPU UUID from `nvidia-smi --query-gpu=<QUERY> --format=csv,noheader`.
    Lines it cannot read are left out (their GPUs show "unknown")."""
    found = {}
    for row in csv.reader(io.StringIO(text or ""), skipinitialspace=True):
        values = [value.strip().strip("[]") for value in row]
        if len(values) == len(QUERY) and values[0].startswith("GPU-"):
            found[values[0]] = GpuInfo(*(value or UNKNOWN for value in values[1:]))
    return found


def query(timeout: float = TIMEOUT) -> tuple[dict[str, GpuInfo], str | None]:
    """Every GPU's facts, and why nvidia-smi failed to give them (None: it answered, or is
    not on PATH); {} when it failed (an old driver may not know mig.mode.current: it has no
    MIG either)."""
    answer = run([f"--query-gpu={','.join(QUERY)}", "--format=csv,noheader"], timeout)
    return parse_query(answer.output), answer.failure
