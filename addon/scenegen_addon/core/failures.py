"""`.scenegen/failures.json`: the scenes that failed, with their reasons (FORMAT 2).

One rule for every writer (the batch loop outside the launcher, the launcher at the end of a
run): scenes that completed since are dropped, new failures replace older entries of the
same scene, and every other entry is kept, in plan order when a plan order is given.
"""

from . import layout


def read(output_dir) -> dict[str, str]:
    """scene_id -> reason (empty when the file is absent)."""
    path = layout.failures_file(output_dir)
    if not path.exists():
        return {}
    return {e["scene_id"]: e["reason"] for e in layout.read_json(path)}


def update(output_dir, failed: dict[str, str], finished, order=None) -> None:
    """Record `failed` (scene_id -> reason) and forget the `finished` scenes; `order`, every
    scene id of the plan in plan order, sorts the file."""
    entries = {sid: reason for sid, reason in read(output_dir).items() if sid not in finished}
    entries.update(failed)
    ids = [sid for sid in order if sid in entries] if order is not None else list(entries)
    layout.write_json(layout.failures_file(output_dir),
                      [{"scene_id": sid, "reason": entries[sid]} for sid in ids], compact=False)
