"""A complete scene's manifest, `.scenegen/scenes/<scene_id>.json`: the size and SHA-256 of
each of its files, and its share of dataset_info's statistics.

With it a rerun tells a damaged scene from a sound one without reading its images, the
merge writes `checksums.sha256` and the statistics without reading a single metadata file
(they are up to 4 MB each), and the record itself never has to hold its own hash. It is
written right after the metadata file; a complete scene that has none (a crash between the
two, or a folder from before manifests) gets one from its files.
"""

import hashlib
import os
import stat
from collections import Counter
from decimal import Decimal
from pathlib import Path

from . import files, layout
from .constraints import VIEW_TYPES, WORLD_TYPES

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with


class Tally:
    """One scene's share of the statistics, fed a record's parts as they are built (the
    worker never holds a whole record) or from a parsed record (`of_record`)."""

    def __init__(self):
        self.world = Counter({t: 0 for t in WORLD_TYPES})
        self.views = Counter({t: 0 for t in VIEW_TYPES})
        self.comparators = Counter()
        self.difficulty = Counter()
        self.fractions = Decimal(0)  # exact: the sum is the same in any order
        self.fraction_count = 0
        self.head: dict = {}

    def add_document(self, document: dict) -> None:
        """The record without its constraints (objects, views, render)."""
        self.head = {"n_objects": document["n_objects"], "retries": document["retries"],
                     "render_seconds": document["render"]["seconds"]}
        for view in document["views"]:
            for obj in view["objects"]:
                self.fractions += Decimal(repr(obj["visible_fraction"]))
                self.fraction_count += 1

    def add_world(self, world: dict) -> None:
        for kind in WORLD_TYPES:
            self.world[kind] += len(world[kind])
        for r in world["qrr"]:
            self.comparators[r["comparator"]] += 1
            self.difficulty[r["difficulty"]] += 1

    def add_view(self, view: dict) -> None:
        for kind in VIEW_TYPES:
            self.views[kind] += len(view[kind])

    def summary(self) -> dict:
        return {**self.head, "world": dict(self.world), "views": dict(self.views),
                "world_qrr_comparators": dict(sorted(self.comparators.items())),
                "world_qrr_difficulty": {str(d): n for d, n in sorted(self.difficulty.items())},
                "visible_fraction_sum": str(self.fractions),
                "visible_fraction_count": self.fraction_count}

    @classmethod
    def of_record(cls, record: dict) -> "Tally":
        tally = cls()
        tally.add_document(record)
        tally.add_world(record["constraints"]["world"])
        for view in record["constraints"]["views"]:
            tally.add_view(view)
        return tally


def path(output_dir, scene_id: str) -> Path:
    return layout.manifest_file(output_dir, scene_id)


def file_entry(file: Path) -> dict:
    """The size and SHA-256 of a regular file (core.files: a FIFO there is NotAFile, never a
    hang)."""
    data = files.read_bytes(file)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write(output_dir, scene_id: str, summary: dict, passes: tuple = ()) -> dict:
    """Hash the scene's files as they are now and write its manifest; returns it."""
    out = Path(output_dir)
    document = {"scene_id": scene_id, "summary": summary,
                "files": {rel: file_entry(out / rel)
                          for rel in layout.scene_files(scene_id, passes)}}
    layout.write_json(path(out, scene_id), document)
    return document


def read(output_dir, scene_id: str, passes: tuple = ()) -> dict | None:
    """The manifest, None when there is none, it cannot be read or it lists other files than
    the plan's (then it is made again)."""
    try:
        document = layout.read_json(path(output_dir, scene_id))
    except (OSError, ValueError):
        return None
    ok = (isinstance(document, dict) and document.get("scene_id") == scene_id
          and isinstance(document.get("files"), dict))
    return document if ok and set(document["files"]) == set(
        layout.scene_files(scene_id, passes)) else None


def damage(output_dir, scene_id: str, document: dict | None = None, passes: tuple = (),
           verify: bool = False) -> list[str]:
    """What is wrong with a complete scene's files: "<file>: why" for each file missing, not
    ending as a complete PNG or JSON does, and, against its manifest `document` when there
    is one, of another size or (with `verify`) another SHA-256."""
    out = Path(output_dir)
    files = document["files"] if document else dict.fromkeys(layout.scene_files(scene_id, passes))
    found = []
    for rel, expected in files.items():
        why = file_damage(out / rel, expected, verify)
        if why:
            found.append(f"{rel}: {why}")
    return found


def file_damage(file: Path, expected: dict | None = None, verify: bool = False) -> str | None:
    try:
        found = os.lstat(file)
    except OSError:
        return "missing"
    if not stat.S_ISREG(found.st_mode):
        return f"{files.kind(file)}, not a regular file"
    size = found.st_size
    if expected is not None and size != expected["bytes"]:
        return f"{size} bytes, {expected['bytes']} when it was written"
    if not _ends_whole(file):
        return "truncated"
    if verify and expected is not None and file_entry(file)["sha256"] != expected["sha256"]:
        return "altered (SHA-256 differs)"
    return None


def _ends_whole(file: Path) -> bool:
    """A PNG ends with its IEND chunk, a compact JSON object with its closing brace."""
    with os.fdopen(files.open_fd(file, os.O_RDONLY), "rb") as f:
        f.seek(0, 2)
        tail_size = min(len(PNG_END), f.tell())
        f.seek(-tail_size, 2)
        tail = f.read()
    return tail == PNG_END if file.suffix == ".png" else tail.endswith(b"}")
