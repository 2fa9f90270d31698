"""Before a rerun: which complete scenes are damaged, so they are rendered again with the
same seed instead of being kept (or breaking the merge, or being certified by it).

The cheap check, always: every file of the scene's manifest is there, at the size it had
when it was written, and ends as a complete PNG or JSON file does. `--verify` adds the
SHA-256 of every file. A complete scene without a manifest (a crash between its metadata
and its manifest, or a lost .scenegen/scenes/) is never trusted on its own files: they must
have the SHA-256 that the last merge's checksums.sha256 lists (kept in place by a rerun
until its own merge, layout.mark_merge_pending); where it lists none of them (the scene
finished after that merge), they must pass the validator's checks of the scene, and below
the width where images can be checked against their masks the scene is rendered again.
Only then it gets a manifest, written once the run goes ahead (`heal`): a refused run
leaves nothing behind.
"""

from pathlib import Path

from ..core import content, layout, manifest, merge, plan, validation


def find_damaged(output_dir, scenes: list[plan.PlannedScene], settings: dict,
                 verify: bool = False) -> tuple[dict[str, str], dict[str, dict]]:
    """What a rerun finds among the complete scenes `scenes` of a plan with `settings`:
    scene_id -> what is wrong, for the damaged ones; scene_id -> the manifest to write
    (`heal`), for sound ones without one."""
    passes = layout.passes(settings)
    damaged, missing = {}, {}
    for scene in scenes:
        document = manifest.read(output_dir, scene.scene_id, passes)
        found = manifest.damage(output_dir, scene.scene_id, document, passes, verify)
        if not found and document is None:
            try:
                missing[scene.scene_id] = merge.scene_manifest(output_dir, scene.scene_id,
                                                               passes, trust=False)
            except ValueError as exc:  # the metadata does not parse
                found = [str(exc)]
        if found:
            damaged[scene.scene_id] = _summary(found)
    by_id = {s.scene_id: s for s in scenes}
    for scene_id, found in _unmanifested_damage(output_dir, by_id, settings, missing).items():
        damaged[scene_id] = _summary(found)
        del missing[scene_id]
    return damaged, missing


def _summary(found: list[str]) -> str:
    return "; ".join(found[:3]) + (f"; {len(found) - 3} more" if len(found) > 3 else "")


def _unmanifested_damage(output_dir, by_id: dict, settings: dict,
                         made: dict[str, dict]) -> dict[str, list[str]]:
    """What is wrong with the whole scenes without a manifest (`made`: the manifests made
    from their files now), by the last merge's checksums.sha256 or by the validator."""
    wanted = {rel for document in made.values() for rel in document["files"]}
    try:
        sums = merge.read_checksums(output_dir, wanted) if made else {}
    except OSError:  # none (never merged), or not a file: the validator's checks decide
        sums = {}
    found = {}
    for scene_id, document in made.items():
        listed = [rel for rel in document["files"] if rel in sums]
        if listed:
            found[scene_id] = [
                f"{rel}: not the SHA-256 the last merge's {layout.CHECKSUMS} lists"
                for rel, entry in document["files"].items() if sums.get(rel) != entry["sha256"]]
        else:
            found[scene_id] = _content_faults(output_dir, by_id[scene_id], settings)
    return {scene_id: faults for scene_id, faults in found.items() if faults}


def _content_faults(output_dir, scene: plan.PlannedScene, settings: dict) -> list[str]:
    width, height = settings["resolution"]
    if width < content.MIN_CONTENT_WIDTH:
        return [f"no manifest and no line in {layout.CHECKSUMS}, and at {width}x{height} "
                f"(below {content.MIN_CONTENT_WIDTH} px wide) its images cannot be checked "
                "against their masks"]
    try:
        return [str(p) for p in validation.check_scene(output_dir, scene, settings, labels=True)]
    except Exception as exc:  # noqa: BLE001 - a scene that cannot be checked is not kept
        return [f"{scene.scene_id} could not be checked: {exc!r}"]


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
