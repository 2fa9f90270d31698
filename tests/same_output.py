""""The same output", as the project defines it: every file of two output folders
byte-identical, except the scene records' timing and device fields and dataset_info.json's
creation time, timing and worker counts (and so the lines of these files in
checksums.sha256).
`.scenegen/` (logs, progress, run, manifests) is not output."""

import json
from pathlib import Path

VOLATILE_RENDER = ("seconds", "device", "device_name")
VOLATILE_CONFIG = ("n_gpus", "workers")


def output_files(root) -> set[str]:
    root = Path(root)
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and ".scenegen" not in p.relative_to(root).parts}


def _stable(rel: str, data: bytes):
    """The comparable content of one file: the bytes, or JSON without its volatile fields."""
    if rel.startswith("metadata/"):
        record = json.loads(data)
        for key in VOLATILE_RENDER:
            record["render"].pop(key)
        return record
    if rel == "checksums.sha256":
        return [line for line in data.splitlines()
                if not line.endswith(b".json") or b"  splits/" in line]
    if rel == "dataset_info.json":
        info = json.loads(data)
        for key in ("created", "timing"):
            info.pop(key)
        for key in VOLATILE_CONFIG:
            info["config"].pop(key)
        return info
    return data


def differences(a, b) -> list[str]:
    """What differs between output folders a and b (empty: the same output)."""
    a, b = Path(a), Path(b)
    names_a, names_b = output_files(a), output_files(b)
    found = [f"only in {a}: {n}" for n in sorted(names_a - names_b)]
    found += [f"only in {b}: {n}" for n in sorted(names_b - names_a)]
    for rel in sorted(names_a & names_b):
        if _stable(rel, (a / rel).read_bytes()) != _stable(rel, (b / rel).read_bytes()):
            found.append(f"differs: {rel}")
    return found
