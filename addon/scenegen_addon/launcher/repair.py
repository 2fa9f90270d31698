"""Before a rerun: which complete scenes are damaged, so they are rendered again with the
same seed instead of being kept (or breaking the merge).

The cheap check, always: every file of the scene's manifest is there, at the size it had
when it was written, and ends as a complete PNG or JSON file does. `--verify` adds the
SHA-256 of every file. A complete scene without a manifest (a crash between its metadata
and its manifest, or a folder from before manifests) is checked for whole files and then
gets one, written only once the run goes ahead (`heal`): a refused run leaves nothing
behind.
"""

from pathlib import Path

from ..core import layout, manifest, merge


def find_damaged(output_dir, scene_ids, passes: tuple = (),
                 verify: bool = False) -> tuple[dict[str, str], dict[str, dict]]:
    """What a rerun finds among the complete scenes `scene_ids` (`passes`: the plan's
    optional passes, whose files the scenes have too): scene_id -> what is wrong, for the
    damaged ones; scene_id -> the manifest to write (`heal`), for whole ones without one."""
    damaged, missing = {}, {}
    for scene_id in scene_ids:
        document = manifest.read(output_dir, scene_id, passes)
        found = manifest.damage(output_dir, scene_id, document, passes, verify)
        if not found and document is None:
            try:
                missing[scene_id] = merge.scene_manifest(output_dir, scene_id, passes,
                                                         trust=False)
            except ValueError as exc:  # the metadata does not parse
                found = [str(exc)]
        if found:
            damaged[scene_id] = "; ".join(found[:3]) + (
                f"; {len(found) - 3} more" if len(found) > 3 else "")
    return damaged, missing


def heal(output_dir, missing: dict[str, dict]) -> None:
    """Write the manifests `find_damaged` made for whole scenes that had none."""
    for scene_id, document in missing.items():
        layout.write_json(manifest.path(output_dir, scene_id), document)


def reopen(output_dir, scene_ids) -> None:
    """Make damaged scenes incomplete again: their metadata file (the mark of a complete
    scene) and their manifest go, so that the rerun removes their files and renders them
    like any incomplete scene."""
    for scene_id in scene_ids:
        (Path(output_dir) / layout.scene_paths(scene_id)["metadata"]).unlink(missing_ok=True)
        manifest.path(output_dir, scene_id).unlink(missing_ok=True)
