"""What an export checks in the dataset before it writes anything, from the dataset's own
files (a copied dataset often lacks .scenegen/), so that it never publishes a broken file or
one from outside the dataset.

The folder must be merged, with no rerun of its build pending (dataset.loader: exit 3
otherwise), and every scene of the exported splits complete (exit 3). Then each entry of
those splits, on --jobs processes: the entry is the one the merge writes for its record
(FORMAT 7.1); the record parses strictly and meets its JSON Schema; its files are the
layout's (FORMAT 1) and each is a regular file reached without a link (core.layout.path_fault);
each PNG decodes at the record's size and kind (core.png.check_png, bounded); and every
file read, the split files and dataset_info.json included, has the SHA-256 that
checksums.sha256 lists. Any fault is exit 1, each file named.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ...core import files, layout, merge, parallel, png, presets, validation
from ...core.plan import PlannedScene
from ...launcher.exit_codes import ExitCode
from ..loader import Dataset, NotMerged, Unreadable, open_dataset
from .common import ExportRefused

SHOWN = 20  # faults named one by one


def open_merged(path) -> Dataset:
    """The dataset at `path` through the loader: ExportRefused exit 3 when it is not
    merged (or a rerun's merge is pending), exit 1 when its index files are damaged."""
    try:
        return open_dataset(path)
    except NotMerged as exc:
        raise ExportRefused(f"DIR: {exc}", ExitCode.INCOMPLETE) from None
    except Unreadable as exc:
        raise ExportRefused(f"DIR: {exc}", ExitCode.CORRUPT) from None


@dataclass
class Checked:
    """One split entry as `_check_entry` found it."""

    incomplete: str = ""  # the scene id, when its record is missing
    faults: list[str] = field(default_factory=list)  # "<file>: <why>"
    digests: dict[str, str] = field(default_factory=dict)  # file -> SHA-256 as read
    image_bytes: int = 0  # the bytes of its view images (what every export copies)


class CheckedFiles:
    """The dataset's files by their SHA-256 as the check read them. The export takes every
    byte it copies from `read`, so a file changed or swapped after the check is refused
    (exit 1), never shipped. The last RECENT files read are kept as read and hashed: the
    rows come in scene order, up to 18 of them showing the same picture, which is read
    from disk and hashed once."""

    RECENT = 8

    def __init__(self, root: Path, digests: dict[str, str]):
        self.root, self.digests = root, digests
        self.recent: OrderedDict[str, bytes] = OrderedDict()

    def read(self, rel: str) -> bytes:
        if rel in self.recent:
            self.recent.move_to_end(rel)
            return self.recent[rel]
        data = self._read_checked(rel)
        self.recent[rel] = data
        if len(self.recent) > self.RECENT:
            self.recent.popitem(last=False)
        return data

    def _read_checked(self, rel: str) -> bytes:
        try:
            data = files.read_bytes(self.root / rel)
            why = "" if hashlib.sha256(data).hexdigest() == self.digests.get(rel) else (
                "other bytes")
        except OSError as exc:  # files.NotAFile: swapped for a link, a FIFO...
            why = str(exc)
        if why:
            raise ExportRefused(f"{rel}: changed since the export checked it ({why}); "
                                "nothing was written (export again)", ExitCode.CORRUPT)
        return data


def check(dataset: Dataset, splits: list[str], jobs: int,
          progress=None) -> tuple[list[str], int, CheckedFiles]:
    """Check everything the export of `splits` reads; returns (report lines, the bytes of
    the view images it copies, the files as checked) or raises ExportRefused (exit 1 or 3)
    naming the faults."""
    root = dataset.root
    tasks = [(str(root), split, i, entry)
             for split in splits for i, entry in enumerate(dataset[split].entries)]
    found = list(parallel.counted(parallel.ordered_map(_check_entry, tasks, jobs), len(tasks),
                                  progress))
    incomplete = [c.incomplete for c in found if c.incomplete]
    if incomplete:
        raise ExportRefused(f"DIR: its split files list {len(incomplete)} incomplete scenes "
                            f"({', '.join(incomplete[:SHOWN])}): rerun its build to finish "
                            "it", ExitCode.INCOMPLETE)
    faults = [f for c in found for f in c.faults]
    digests = {rel: d for c in found for rel, d in c.digests.items()}
    for rel in [*(layout.split_file(s) for s in dataset), layout.DATASET_INFO]:
        digests[rel] = hashlib.sha256(files.read_bytes(root / rel)).hexdigest()
    lines, sums_faults = _against_checksums(root, digests)
    faults += sums_faults
    if faults:
        more = f"\n  ... and {len(faults) - SHOWN} more" if len(faults) > SHOWN else ""
        raise ExportRefused(f"DIR: {len(faults)} damaged or unsafe files, nothing was "
                            "written (check the dataset with headless/validate.py):\n  "
                            + "\n  ".join(faults[:SHOWN]) + more, ExitCode.CORRUPT)
    failed = [f.get("scene_id") for f in (dataset.info.get("failed") or [])
              if isinstance(f, dict)]
    if failed:
        lines.append(f"{len(failed)} scenes failed in the build and are not in the dataset: "
                     f"{', '.join(map(str, failed[:SHOWN]))}"
                     + (" ..." if len(failed) > SHOWN else ""))
    return ([f"checked {len(found)} scenes: paths, records, PNGs", *lines],
            sum(c.image_bytes for c in found), CheckedFiles(root, digests))


def _check_entry(task) -> Checked:
    """Entry `i` of a split file, its record and its files (see the module's docstring)."""
    root, split, i, entry = task
    root, where = Path(root), f"{layout.split_file(split)} entry {i}"
    checked = Checked()
    rel = entry.get("metadata")
    fault = layout.path_fault(root, rel)
    if fault == "missing":
        checked.incomplete = str(entry.get("scene_id"))
        return checked
    if fault:
        checked.faults.append(f"{where}: metadata {rel!r}: {fault}")
        return checked
    try:
        record = layout.read_json(root / rel)
    except (OSError, ValueError) as exc:
        checked.faults.append(f"{rel}: does not parse: {exc}")
        return checked
    errors = validation.schema_errors(record)
    if not errors:
        try:
            presets.check_resolution(*record["image_size"])
        except ValueError as exc:
            errors = [f"image_size: {exc}"]
    if errors:
        checked.faults.append(f"{rel}: {errors[0]}")
        return checked
    passes = ("depth",) if "depth" in entry else ()
    scene = PlannedScene(record["scene_id"], record["split"], record["index"],
                         record["n_objects"], record["tau"], record["seed"])
    paths = layout.scene_paths(scene.scene_id, passes)
    if (split, rel) != (scene.split, paths["metadata"]) or entry != merge.split_entry(
            scene, passes):
        checked.faults.append(f"{where}: not the entry the merge writes for {rel}")
    named = [record["single_view"]["image"], *(v[key] for v in record["views"]
                                               for key in ("image", "mask"))]
    if named != [paths["image_single"], *(p for pair in zip(paths["images"], paths["masks"],
                                                            strict=True) for p in pair)]:
        checked.faults.append(f"{rel}: its file paths are not the layout's (FORMAT 1)")
        return checked
    width, height = record["image_size"]
    for name in layout.scene_files(scene.scene_id, passes):
        checked.faults += _check_file(root, name, width, height, checked)
    return checked


def _check_file(root: Path, rel: str, width: int, height: int, checked: Checked) -> list[str]:
    """One file of a scene: reached safely (layout.path_fault), a PNG of the record's size
    and kind, hashed."""
    fault = layout.path_fault(root, rel)
    if fault:
        return [f"{rel}: {fault}"]
    path = root / rel
    try:
        if rel.endswith(".png"):
            kind = png.RGB8 if rel.startswith("images/") else png.GRAY16
            fault = png.check_png(path, width, height, kind)
            if fault:
                return [f"{rel}: {fault}"]
        data = files.read_bytes(path)
    except OSError as exc:  # files.NotAFile, an unreadable file...
        return [f"{rel}: {exc}"]
    checked.digests[rel] = hashlib.sha256(data).hexdigest()
    if rel.startswith("images/multi_view/"):
        checked.image_bytes += len(data)
    return []


def _against_checksums(root: Path, digests: dict[str, str]) -> tuple[list[str], list[str]]:
    """(report lines, faults): each file read against its line of checksums.sha256 (only
    those lines are kept, read line by line). A dataset without the file is exported with
    a line saying its files could not be compared."""
    fault = layout.path_fault(root, layout.CHECKSUMS)
    if fault == "missing":
        return [f"no {layout.CHECKSUMS}: the files' SHA-256 could not be compared"], []
    if fault:
        return [], [f"{layout.CHECKSUMS}: {fault}"]
    try:
        listed = merge.read_checksums(root, digests)
    except OSError as exc:
        return [], [f"{layout.CHECKSUMS}: {exc}"]
    faults = [f"{rel}: not listed in {layout.CHECKSUMS}" if rel not in listed else
              f"{rel}: its SHA-256 is not the one {layout.CHECKSUMS} lists"
              for rel, digest in digests.items() if listed.get(rel) != digest]
    return [f"{len(digests)} files match {layout.CHECKSUMS}"] if not faults else [], faults
