"""The output folder (FORMAT 1): every path, temporary name and completeness rule, and the one
atomic writer that every file of the project goes through.

A file appears under its final name only complete: it is written under a hidden temporary
name beside it, flushed to disk, then renamed. Blender's own image writes use the same
temporary names (`atomic_path`), so a killed process leaves only names that `partial_files`
recognises and a resume removes.
"""

import errno
import json
import os
import re
import shutil
import stat
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path, PurePosixPath

from . import camera, files

INTERNAL = ".scenegen"
DATASET_INFO = "dataset_info.json"
CHECKSUMS = "checksums.sha256"  # v1.1, written by the merge
# What scenegen writes inside .scenegen/ (files, and folders it alone writes into); the rest of
# .scenegen/ is left alone by --overwrite.
MERGE_PENDING = "merge_pending.json"  # a build changed scenes; its merge has not run since
INTERNAL_FILES = ("plan.json", "run.json", "progress.json", "failures.json", "lock",
                  "cluster_token", MERGE_PENDING)
INTERNAL_LOGS = re.compile(r"^(worker_[0-9]+|launcher|cluster)\.log$")  # .scenegen/logs/
MANIFESTS = "scenes"  # .scenegen/scenes/<scene_id>.json: one per complete scene (core.manifest)
SCRATCH = "tmp"  # .scenegen/tmp/: scratch files (index EXRs), emptied when a build starts
# A full, over-quota or read-only disk (exit 4). A file without the permission to read or
# write it is not one: that is refused naming the file (exit 2).
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# The optional passes (FORMAT 1 v1.1, `--passes`): each adds <pass>/<scene_id>/view_k.png.
PASSES = ("depth",)


def passes(settings: dict) -> tuple[str, ...]:
    """The optional passes a plan's settings ask for: none when the key is absent, so a
    plan without them keeps the settings, fingerprint and layout it had before v1.1.
    ValueError unless they are names of PASSES, each once, in PASSES order (paths are made
    from them)."""
    value = settings.get("passes", [])
    if not isinstance(value, list) or value != [p for p in PASSES if p in value]:
        raise ValueError(f"passes must be a list of {', '.join(PASSES)} in that order, each "
                         f"at most once, got {value!r}")
    return tuple(value)


def scene_paths(scene_id: str, passes: tuple = ()) -> dict:
    """Paths of one scene's files, relative to the output folder (FORMAT 1); `passes` add
    one list of view files each, under their own name ("depth")."""
    views = range(camera.N_VIEWS)
    paths = {
        "image_single": f"images/single_view/{scene_id}.png",
        "images": [f"images/multi_view/{scene_id}/view_{k}.png" for k in views],
        "masks": [f"masks/{scene_id}/view_{k}.png" for k in views],
        "metadata": f"metadata/{scene_id}.json",
    }
    for name in passes:
        paths[name] = [f"{name}/{scene_id}/view_{k}.png" for k in views]
    return paths


# A scene id as FORMAT 1 writes it; any id read from a file is checked against it (and against
# the plan) before a path is made from it.
SCENE_ID = re.compile(r"^(train|val|test_iid|test_comp|test_hard)_[0-9]{5,}$")


def check_scene_id(scene_id) -> str:
    """`scene_id` when it is a well-formed id; ValueError otherwise (never a path from it)."""
    if not isinstance(scene_id, str) or not SCENE_ID.match(scene_id):
        raise ValueError(f"scene id {scene_id!r} is not of the form <split>_<index>")
    return scene_id


class UnsafePath(ValueError):
    """A path read from a file that leads outside the dataset or to no regular file."""


def path_fault(root, rel) -> str | None:
    """Why `rel`, a path read from a split file, a record or the plan, does not name a
    regular file inside the folder `root` (None when it does): not a relative path of
    plain names ('', '.' and '..' refused), missing, reached through a symbolic link at any
    depth (never followed), or not a regular file. Nothing outside `root` is touched."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        return "is not a file name"
    if rel.startswith("/"):
        return "is an absolute path (paths are relative to the dataset folder)"
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' component (paths stay inside the dataset folder)"
    path = Path(root)
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # absent, or a component that is not a folder
            return "missing"
        if stat.S_ISLNK(mode):
            return "is reached through a symbolic link (not followed)"
    return None if stat.S_ISREG(mode) else "is not a regular file"


def inside(root, rel, field: str) -> Path:
    """root/rel when `path_fault` finds nothing; UnsafePath naming `field` (where the path
    was read) otherwise. The one way a reader turns a path from a file into a file."""
    fault = path_fault(root, rel)
    if fault:
        shown = repr(rel) if len(repr(rel)) <= 200 else repr(rel)[:197] + "..."
        raise UnsafePath(f"{field}: {shown}: {fault}")
    return Path(root) / rel


def scene_files(scene_id: str, passes: tuple = ()) -> list[str]:
    """Every file one complete scene has, relative to the output folder."""
    paths = scene_paths(scene_id, passes)
    extra = [rel for name in passes for rel in paths[name]]
    return [paths["image_single"], *paths["images"], *paths["masks"], *extra, paths["metadata"]]


def index_files(splits) -> list[str]:
    """The merge's files: one split file per planned split, dataset_info.json and the
    checksums."""
    return [*(split_file(split) for split in splits), DATASET_INFO, CHECKSUMS]


def split_file(split: str) -> str:
    return f"splits/{split}.json"


def internal(output_dir) -> Path:
    """The folder of scenegen's own bookkeeping: plan, lock, logs, progress, failures."""
    return Path(output_dir) / INTERNAL


def plan_file(output_dir) -> Path:
    return internal(output_dir) / "plan.json"


def run_file(output_dir) -> Path:
    return internal(output_dir) / "run.json"


def failures_file(output_dir) -> Path:
    return internal(output_dir) / "failures.json"


def progress_file(output_dir) -> Path:
    return internal(output_dir) / "progress.json"


def lock_file(output_dir) -> Path:
    return internal(output_dir) / "lock"


def logs_dir(output_dir) -> Path:
    return internal(output_dir) / "logs"


def cluster_token_file(output_dir) -> Path:
    """A Ray run's token: every node reads it back before it gets work (launcher/shared)."""
    return internal(output_dir) / "cluster_token"


def kernel_cache_dir(output_dir) -> Path:
    """GPU workers' CUDA and OptiX kernel caches, when the user set none."""
    return internal(output_dir) / "kernel_cache"


def scratch_dir(output_dir) -> Path:
    """Where workers put scratch files (index EXRs): inside the output, so a killed worker's
    leftovers stay on the dataset's disk, where the next build's start removes them."""
    return internal(output_dir) / SCRATCH


def manifest_file(output_dir, scene_id: str) -> Path:
    """A complete scene's manifest (core.manifest), in the MANIFESTS folder remove_own
    clears; the id is checked before a path is made from it."""
    return internal(output_dir) / MANIFESTS / f"{check_scene_id(scene_id)}.json"


def is_complete(output_dir, scene_id: str) -> bool:
    """FORMAT 1: a scene is complete iff its metadata file exists."""
    return (Path(output_dir) / scene_paths(scene_id)["metadata"]).exists()


# --- what is scenegen's own -----------------------------------------------------------------

_ID = "\0"  # stands for a scene id in the path templates below


def _parents(rel: str) -> list[str]:
    """"a/b/c.png" -> ["a", "a/b"]."""
    parts = rel.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def templates(passes: tuple = ()) -> tuple[frozenset, frozenset]:
    """One scene's files and the folders holding them, with `_ID` for the scene id."""
    files = frozenset(scene_files(_ID, passes))
    return files, frozenset(p for rel in files for p in _parents(rel))


# Temporary names of `temp_name`: ".<name>.<pid>.<thread>.tmp<the name's extension>".
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9]+\.[0-9]+\.tmp(?P<suffix>(?:\.[^.]+)?)$")


def final_name(name: str) -> str | None:
    """The final file name a temporary name of `temp_name` stands for; None for any other."""
    m = TEMP_NAME.match(name)
    if m is None or m["suffix"] != PurePosixPath(m["name"]).suffix:
        return None
    return m["name"]


def _final_path(rel: str) -> str:
    parent, _, name = rel.rpartition("/")
    final = final_name(name)
    if final is None:
        return rel
    return f"{parent}/{final}" if parent else final


def scene_folders(scene_id: str, passes: tuple = ()) -> list[str]:
    """The folders that hold one scene's files and nothing else's."""
    return sorted(t.replace(_ID, scene_id) for t in templates(passes)[1] if _ID in t)


class Predicted:
    """The names a plan predicts in an output folder (FORMAT 1): every planned scene's files,
    the index files, the temporary names of those files, and the folders holding them.
    Nothing else in the layout is scenegen's, so nothing else is ever removed."""

    def __init__(self, scene_ids=(), splits=(), passes: tuple = ()):
        self.ids = frozenset(scene_ids)
        self.passes = tuple(passes)
        self.files = frozenset(index_files(splits))
        self.scene_templates, self.folder_templates = templates(self.passes)
        shared = {t for t in self.folder_templates if _ID not in t}
        shared.update(_parents(split_file("train")))  # an empty splits/ is scenegen's too
        self.folders = frozenset(shared | {p for rel in self.files for p in _parents(rel)})

    def _template(self, rel: str) -> str | None:
        """`rel` with its planned scene id replaced by the template marker (None: no id)."""
        for part in rel.split("/"):
            scene_id = part.split(".", 1)[0]
            if scene_id in self.ids:
                return rel.replace(scene_id, _ID)
        return None

    def scene(self, rel: str) -> str | None:
        """The planned scene whose file (or temporary file) `rel` is."""
        final = _final_path(rel)
        if self._template(final) not in self.scene_templates:
            return None
        return next(p.split(".", 1)[0] for p in final.split("/")
                    if p.split(".", 1)[0] in self.ids)

    def file(self, rel: str) -> bool:
        final = _final_path(rel)
        return final in self.files or self._template(final) in self.scene_templates

    def folder(self, rel: str) -> bool:
        return rel in self.folders or self._template(rel) in self.folder_templates

    def manifest(self, name: str) -> bool:
        """A planned scene's manifest in .scenegen/scenes/, or its temporary name."""
        final = final_name(name) or name
        return final.endswith(".json") and final[:-len(".json")] in self.ids


@dataclass
class Survey:
    """What an output folder holds beyond its plan's names."""

    links: list[str] = field(default_factory=list)  # symbolic links: never followed
    foreign: list[str] = field(default_factory=list)  # the first unpredicted entries
    n_foreign: int = 0
    temporary: list[Path] = field(default_factory=list)  # leftovers of killed writers
    wrong: list[str] = field(default_factory=list)  # "<entry> (what it is)": _wrong_kind
    limit: int = 10

    def add_foreign(self, rel: str) -> None:
        self.n_foreign += 1
        if len(self.foreign) < self.limit:
            self.foreign.append(rel)


def survey(output_dir, predicted: Predicted, limit: int = 10) -> Survey:
    """Walk the whole folder, never following a link: the links, the entries `predicted`
    does not name (a folder is not entered), and the temporary names of scenegen's files.
    .scenegen/ is scenegen's own: only links and temporary names count there."""
    out = Path(output_dir)
    found = Survey(limit=limit)
    pending = deque([""] if out.is_dir() else [])
    while pending:  # breadth first: the names closest to the top are listed first
        folder = pending.popleft()
        for entry in _entries(out / folder):
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_symlink():
                found.links.append(rel)
            elif rel == INTERNAL and entry.is_dir():
                _survey_internal(out, predicted, found)
            elif entry.is_dir():
                if predicted.folder(rel):
                    pending.append(rel)
                else:
                    found.add_foreign(rel + "/")
            elif entry.is_file() and predicted.file(rel):
                if final_name(entry.name):
                    found.temporary.append(Path(entry.path))
            else:
                found.add_foreign(rel)
    return found


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


# .scenegen/'s entries that scenegen opens, and what each must be: a folder, a regular file,
# or a regular file with one link (written in place: the lock, the logs), so that no write
# of scenegen ever lands outside the folder through a hard link
INTERNAL_FOLDERS = ("logs", MANIFESTS, SCRATCH, "kernel_cache")
IN_PLACE = ("lock",)


def _survey_internal(out: Path, predicted: Predicted, found: Survey) -> None:
    """.scenegen/: its links, its own entries of the wrong kind (a FIFO where a log goes, a
    folder where progress.json goes: `Survey.wrong`), and the temporary names of its own
    files and of the planned scenes' manifests (a worker killed between a scene's record
    and its manifest)."""
    own = {INTERNAL: lambda name: name in INTERNAL_FILES,
           f"{INTERNAL}/{MANIFESTS}": predicted.manifest,
           f"{INTERNAL}/logs": INTERNAL_LOGS.match}
    pending = [INTERNAL]
    while pending:
        folder = pending.pop()
        for entry in _entries(out / folder):
            rel = f"{folder}/{entry.name}"
            wrong = _wrong_kind(entry, folder, own)
            if entry.is_symlink():
                found.links.append(rel)
            elif wrong:
                found.wrong.append(f"{rel} ({wrong})")
            elif entry.is_dir():
                pending.append(rel)
            elif folder in own and final_name(entry.name) and own[folder](final_name(entry.name)):
                found.temporary.append(Path(entry.path))


def _wrong_kind(entry: os.DirEntry, folder: str, own: dict) -> str | None:
    """What is wrong with an entry of .scenegen/ that scenegen opens, None if nothing."""
    if folder == INTERNAL and entry.name in INTERNAL_FOLDERS:
        return None if entry.is_dir(follow_symlinks=False) else "not a folder"
    if folder not in own or not own[folder](entry.name):
        return None
    found = entry.stat(follow_symlinks=False)
    if not stat.S_ISREG(found.st_mode):
        return files.KINDS.get(stat.S_IFMT(found.st_mode), "not a regular file")
    in_place = folder.endswith("/logs") or entry.name in IN_PLACE
    return f"{found.st_nlink} hard links" if in_place and found.st_nlink != 1 else None


def _real_folder(out: Path, rel: str, known: dict) -> bool:
    """True when every component of out/rel is a folder and none is a link (memoised in
    `known`), so that nothing is ever listed or removed through a link."""
    if rel not in known:
        parent = rel.rpartition("/")[0]
        if parent and not _real_folder(out, parent, known):
            known[rel] = False
        else:
            try:
                mode = os.lstat(out / rel).st_mode
            except FileNotFoundError:
                mode = 0
            known[rel] = stat.S_ISDIR(mode)
    return known[rel]


def partial_files(output_dir, scene_ids, passes: tuple = ()) -> list[Path]:
    """The files incomplete scenes left behind, which a resume or a rerun removes: each
    scene's own names and their temporary names, regular files only (a link is neither
    followed nor removed)."""
    out = Path(output_dir)
    predicted = Predicted(scene_ids, passes=passes)
    holders = sorted({rel.rpartition("/")[0] for rel in predicted.scene_templates})
    folders = [h for h in holders if _ID not in h]
    folders += [h.replace(_ID, sid) for sid in sorted(predicted.ids) for h in holders if _ID in h]
    known: dict = {}
    found = []
    for folder in folders:
        if not _real_folder(out, folder, known):
            continue
        for entry in _entries(out / folder):
            rel = f"{folder}/{entry.name}"
            if entry.is_file(follow_symlinks=False) and predicted.scene(rel) is not None:
                found.append(Path(entry.path))
    return sorted(found)


def remove_partial(output_dir, scene_ids, passes: tuple = ()) -> None:
    """Remove what incomplete scenes left behind (FORMAT 1: a scene without metadata): their
    own files, and their own folders once empty. A complete scene among `scene_ids` (one
    that finished while its worker was being stopped, say) is kept whole."""
    out = Path(output_dir)
    scene_ids = [s for s in scene_ids if not is_complete(out, s)]
    for path in partial_files(out, scene_ids, passes):
        path.unlink(missing_ok=True)
    known: dict = {}
    for scene_id in scene_ids:
        for folder in scene_folders(scene_id, passes):
            if _real_folder(out, folder, known):
                _remove_empty(out / folder)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty: something else is in it, which stays
        pass


def remove_own(output_dir, predicted: Predicted) -> None:
    """--overwrite: remove every file `predicted` names and its folders once empty, and
    scenegen's own entries of .scenegen/ but the lock. Never follows or removes a link and
    never removes anything else."""
    out = Path(output_dir)
    _remove_predicted(out, "", predicted)
    if not _real_folder(out, INTERNAL, {}):
        return
    internal_dir = out / INTERNAL
    for entry in _entries(internal_dir):
        if entry.is_symlink():
            continue
        own = entry.name in INTERNAL_FILES or final_name(entry.name) in INTERNAL_FILES
        if entry.is_file() and own and entry.name != "lock":
            os.unlink(entry.path)
    for folder, own in (("logs", INTERNAL_LOGS.match), (MANIFESTS, predicted.manifest)):
        if _real_folder(out, f"{INTERNAL}/{folder}", {}):
            for entry in _entries(internal_dir / folder):
                if entry.is_file(follow_symlinks=False) and own(entry.name):
                    os.unlink(entry.path)
            _remove_empty(internal_dir / folder)
    empty_scratch(out)


def _remove_predicted(out: Path, folder: str, predicted: Predicted) -> None:
    """Depth first: predicted files, then predicted folders left empty."""
    for entry in _entries(out / folder):
        rel = f"{folder}/{entry.name}" if folder else entry.name
        if entry.is_symlink():
            continue
        if entry.is_dir() and rel != INTERNAL and predicted.folder(rel):
            _remove_predicted(out, rel, predicted)
            _remove_empty(Path(entry.path))
        elif entry.is_file() and predicted.file(rel):
            os.unlink(entry.path)


def linked_folders(output_dir, scene_id: str, passes: tuple = ()) -> list[str]:
    """The folders a scene's files are written through (its own, the shared ones and
    .scenegen's) that are symbolic links: a batch never writes through one, as the launcher
    never starts in a folder holding one."""
    out = Path(output_dir)
    folders = {p for rel in scene_files(scene_id, passes) for p in _parents(rel)}
    folders |= {INTERNAL, f"{INTERNAL}/{SCRATCH}", f"{INTERNAL}/{MANIFESTS}"}
    return sorted(rel for rel in folders if (out / rel).is_symlink())


def merge_pending_file(output_dir) -> Path:
    return internal(output_dir) / MERGE_PENDING


def mark_merge_pending(output_dir) -> None:
    """Before a build changes any scene (or the merge any index file): from now until the
    merge has written all of them, splits/, dataset_info.json and checksums.sha256 are the
    last merge's, kept in place rather than removed, and the validator, the loader and the
    exports read the folder as not merged (`merge_pending`). The merge removes the mark."""
    path = merge_pending_file(output_dir)
    if not path.exists():
        write_json(path, {"since": now_iso(), "pid": os.getpid()}, compact=False)


def merge_pending(output_dir) -> str | None:
    """Why the folder's index files are not its scenes' (`mark_merge_pending`); None when
    there is no mark."""
    path = merge_pending_file(output_dir)
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        since = read_json(path)["since"]
    except (OSError, ValueError, KeyError, TypeError):
        since = "an unknown time"
    return (f"merge pending: a build began changing its scenes at {since} and has not "
            f"merged them since ({INTERNAL}/{MERGE_PENDING}); splits/, {DATASET_INFO} and "
            f"{CHECKSUMS} are the last merge's; rerun the build to finish")


def empty_scratch(output_dir) -> None:
    """Empty .scenegen/tmp/ (a build's start: no worker runs yet); a link is left alone."""
    out = Path(output_dir)
    if not _real_folder(out, f"{INTERNAL}/{SCRATCH}", {}):
        return
    for entry in _entries(scratch_dir(out)):
        if entry.is_symlink():
            continue
        if entry.is_dir():
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def is_disk_error(exc: BaseException) -> bool:
    """A full, over-quota or read-only disk: retrying cannot help."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


# --- the one atomic writer ------------------------------------------------------------------

def temp_name(path) -> Path:
    """A hidden name beside `path`, unique per process and thread, ending in the same
    extension (Blender adds none then)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")


@contextmanager
def atomic_path(path):
    """Yield a temporary name to write `path` under; when the block succeeds the file is
    flushed to disk and renamed to `path`, when it fails the temporary file is removed. An
    OSError about the temporary file names `path` instead (a full disk names the file that
    could not be written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and str(exc.filename) == str(tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def write_text(path, pieces) -> None:
    """Write the text pieces (any iterable of str) to `path` atomically, in UTF-8."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for piece in pieces:
            f.write(piece)


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def dumps(data, compact: bool = True) -> str:
    """JSON text: compact (no spaces) or indented by 2; NaN and inf are refused."""
    return json.dumps(data, allow_nan=False, separators=(",", ":") if compact else None,
                      indent=None if compact else 2)


def write_json(path, data, compact: bool = True) -> None:
    write_text(path, [dumps(data, compact)])


# A positive exponent of three digits or more, or a run of 309 digits (10**308 and beyond
# written out): the only ways JSON text reaches infinity.
_HUGE = re.compile(r"[eE]\+?[0-9]{3}|[0-9]{309}")


def loads(text: str):
    """Parse JSON as scenegen writes it: no NaN or Infinity (nor a number too large for a
    float), and ValueError rather than a crash for nesting too deep to parse."""
    try:
        return json.loads(text, parse_constant=_refuse, parse_float=_finite if _HUGE.search(
            text) else None)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _refuse(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large for a number")
    return value


# The most a JSON file scenegen reads may hold: its largest, a `large` build's
# splits/train.json with depth, is about 61 MiB; a scene record at most 4 MB.
JSON_LIMIT = 256 << 20


def read_json(path, limit: int = JSON_LIMIT):
    """The JSON file at `path`, opened safely (core.files: a regular file, never through a
    final link, never blocking, at most `limit` bytes read) and parsed by `loads`."""
    return loads(files.read_bytes(path, limit).decode("utf-8"))


def now_iso() -> str:
    """The time now in UTC, to the second, as every file and log line of a run states it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
