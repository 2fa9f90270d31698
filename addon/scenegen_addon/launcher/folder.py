"""The output folder before a run: is it writable, is it scenegen's, does its plan match this
command (core.plan makes the plan's settings, document and fingerprint); --overwrite.

A folder is scenegen's only when its plan proves itself (core.plan.read_document) and every
entry of its layout is a name that plan predicts (core.layout.Predicted). A link anywhere,
anything the plan does not predict, scene files without a plan, or a plan that does not prove
itself refuse the build, with or without --overwrite, and everything stays as it was.
"""

import itertools
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core import layout, plan
from .lock import FolderLock

SHOWN = 10  # entries named in a refusal


class FolderRefused(Exception):
    """The folder cannot be used as asked; the message says why and what to do. `disk`: the
    folder cannot be written (exit 4) rather than a refusal (exit 2)."""

    def __init__(self, message: str, disk: bool = False):
        super().__init__(message)
        self.disk = disk


# --- before anything is created -----------------------------------------------------------

def check_path(out: Path) -> None:
    """The output is a folder or nothing yet, and neither .scenegen nor its lock is a link:
    taking the lock would follow one."""
    if out.exists() and not out.is_dir():
        raise FolderRefused(f"--output {out} is not a folder")
    links = [p for p in (layout.internal(out), layout.lock_file(out)) if p.is_symlink()]
    if links:
        raise FolderRefused(links_message(out, [p.relative_to(out).as_posix() for p in links]))
    if layout.internal(out).exists() and not layout.internal(out).is_dir():
        raise FolderRefused(f"{out} holds a file named {layout.INTERNAL}, not scenegen's folder; "
                            "choose an empty or new folder")


@contextmanager
def claimed(out: Path):
    """Create the folder and .scenegen/ as needed, check they can be written, and hold the
    lock for the block. When the block ends with .scenegen/ holding only the lock, whatever
    this call created is removed again: a refused run leaves nothing behind."""
    created = list(itertools.takewhile(lambda p: not p.exists(), (out, *out.parents)))
    made_internal = not layout.internal(out).exists()
    try:
        layout.internal(out).mkdir(parents=True, exist_ok=True)
        probe = layout.temp_name(layout.internal(out) / "write-test")
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        _remove_created(out, created, made_internal)
        raise FolderRefused(f"--output {out} cannot be written: {exc.strerror or exc}",
                            disk=layout.is_disk_error(exc)) from None
    lock = FolderLock(layout.lock_file(out))
    lock.acquire()
    try:
        yield
    finally:
        _remove_created(out, created, made_internal)
        lock.release()


def _remove_created(out: Path, created: list[Path], made_internal: bool) -> None:
    """Undo `claimed` while nothing but the lock was written (a held lock stays valid: its
    open descriptor keeps it)."""
    internal = layout.internal(out)
    if not made_internal or not internal.is_dir() or set(os.listdir(internal)) - {"lock"}:
        return
    layout.lock_file(out).unlink(missing_ok=True)
    for path in (internal, *created):
        try:
            path.rmdir()
        except OSError:
            return


# --- is it this command's folder ----------------------------------------------------------

@dataclass
class Existing:
    """What `check` found: the names its plan predicts, and the temporary files that killed
    writers left, which the start removes."""

    predicted: layout.Predicted
    temporary: list[Path]


def check(out: Path, document: dict, overwrite: bool) -> Existing:
    """Refuse (FolderRefused) a folder that is not provably scenegen's or, without
    --overwrite, not provably this command's; change nothing."""
    old = existing_plan(out, document["settings"])
    if old is None:
        predicted = layout.Predicted()
    else:
        old_settings = old[0]["settings"]
        predicted = layout.Predicted([s.scene_id for s in old[1]], old_settings["counts"],
                                     layout.passes(old_settings))
    try:
        found = layout.survey(out, predicted, limit=SHOWN)
    except OSError as exc:
        raise FolderRefused(f"{out} cannot be read: {exc}") from None
    if found.links:
        raise FolderRefused(links_message(out, found.links))
    if found.n_foreign:
        raise FolderRefused(foreign_message(out, found, has_plan=old is not None))
    if old is not None and not overwrite and old[0]["fingerprint"] != document["fingerprint"]:
        raise FolderRefused(f"{out} holds a dataset with different settings:\n  "
                            + "\n  ".join(difference(old[0]["settings"], document["settings"]))
                            + "\nrerun with the same options, or --overwrite to start over")
    return Existing(predicted, found.temporary)


def existing_plan(out: Path, settings: dict):
    """The folder's plan (document, scenes) when it proves itself, None when there is none."""
    path = layout.plan_file(out)
    if path.is_symlink():
        raise FolderRefused(links_message(out, [path.relative_to(out).as_posix()]))
    if not path.exists():
        return None
    try:
        return plan.read_document(path)
    except plan.PlanError as exc:
        raise FolderRefused(
            f"{exc}\n{compared(exc.settings, settings)}\nwithout a plan that proves itself "
            f"scenegen cannot tell its files from others in {out}, so it changes nothing there, "
            "with or without --overwrite; move the folder aside or choose another --output"
        ) from None


def difference(old: dict, new: dict) -> list[str]:
    return [f"{line} (the folder's -> this command's)"
            for line in plan.fingerprint_difference(old, new)]


def compared(old: dict | None, new: dict) -> str:
    """The settings of an untrusted plan against this command's, for the refusal."""
    if old is None:
        return "its settings cannot be read, so they cannot be compared with this command's"
    lines = difference(old, new)
    if not lines:
        return "no setting differs from this command's"
    return "its settings differ from this command's:\n  " + "\n  ".join(lines)


def links_message(out: Path, links: list[str]) -> str:
    return (f"{out} holds symbolic links, which scenegen never follows: "
            f"{listing(links, len(links))}; replace them with real folders, or choose another "
            "--output")


def foreign_message(out: Path, found: layout.Survey, has_plan: bool) -> str:
    names = listing(found.foreign, found.n_foreign)
    if not has_plan:
        return (f"--output {out} is not empty and holds no scenegen plan ({names}); choose "
                "an empty or new folder")
    return (f"{out} holds {found.n_foreign} entries its plan does not predict: {names}; "
            "scenegen never removes them: move them out of the dataset folder and rerun")


def listing(names: list[str], total: int) -> str:
    shown = names[:SHOWN]
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    return ", ".join(shown) + more


# --- the start ------------------------------------------------------------------------------

def clear_leftovers(out: Path, existing: Existing) -> None:
    """The start: temporary files killed writers left, and .scenegen/tmp/."""
    for path in existing.temporary:
        path.unlink(missing_ok=True)
    layout.empty_scratch(out)


def remove_own_files(out: Path, existing: Existing) -> None:
    """--overwrite: remove what the folder's plan predicts and scenegen's own .scenegen/
    entries, keeping the lock (`check` has made sure that nothing else is there)."""
    layout.remove_own(out, existing.predicted)
