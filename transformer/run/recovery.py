"""Starting a training session in a run's checkpoints/ folder: what a crash left is repaired,
and files no manifest names are moved out of the way (nothing of a run is ever lost)."""

from __future__ import annotations

import logging
import time

from transformer.checkpoint import CheckpointError, load_checkpoint
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.layout import BEST, FINAL, LAST
from transformer.run.upgrade import adopt_legacy, is_legacy

logger = logging.getLogger(__name__)


def remove_temporaries(checkpoints: CheckpointDir) -> None:
    """Delete `.*.tmp` files left by a crash in the middle of a write."""
    for path in checkpoints.folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)
        logger.info("removed %s, left by an interrupted save", path)


def _remove_orphans(checkpoints: CheckpointDir) -> None:
    # A crash between writing a state file and publishing the manifest leaves a file of this
    # run that no manifest names: its "run_id" proves it ours. Other files are left alone.
    assert checkpoints.manifest is not None
    live = checkpoints.manifest.files() | {LAST, BEST, FINAL}
    for path in checkpoints.folder.glob("*.pt"):
        if path.name in live:
            continue
        try:
            ours = load_checkpoint(path).get("run_id") == checkpoints.run_id
        except CheckpointError:
            ours = False
        if ours:
            path.unlink()
            logger.info("removed %s, written by a save that a crash interrupted", path)


def recover(checkpoints: CheckpointDir) -> None:
    """Bring the folder to its manifest after a crash: temporaries and unreferenced files
    removed, a final.pt the manifest does not name removed, last.pt/best.pt relinked."""
    remove_temporaries(checkpoints)
    if checkpoints.manifest is None:
        return
    checkpoints.collect()
    if checkpoints.manifest.final is None:
        (checkpoints.folder / FINAL).unlink(missing_ok=True)
    _remove_orphans(checkpoints)
    checkpoints.sync_links()


def set_aside_strangers(checkpoints: CheckpointDir) -> None:
    """A folder without a manifest: move its files out of the new run's way."""
    folder = checkpoints.folder
    strangers = sorted(p.name for p in folder.glob("*") if p.is_file())
    aside = checkpoints.set_aside(f"unowned.{time.strftime('%Y%m%d-%H%M%S')}", strangers)
    if aside is not None:
        logger.warning(
            "%s had files no manifest names (%s): moved to %s; the new run starts empty",
            folder, ", ".join(strangers), aside,
        )  # fmt: skip


def open_session(checkpoints: CheckpointDir) -> str | None:
    """Ready the folder for a resumed or new training session (rank 0, before anything reads
    it).

    Removes temporaries; adopts a folder saved before manifests; moves files no manifest names
    out of the way; repairs what a crash left (`recover`).

    Returns:
        Why the run must start over instead (the caller sets the old run aside), or None.
    """
    remove_temporaries(checkpoints)
    if checkpoints.last_was_deleted():
        return f"{checkpoints.last_path} was deleted"
    if is_legacy(checkpoints):
        adopt_legacy(checkpoints)
    elif checkpoints.manifest is None:  # a crash before the first manifest, or foreign files
        set_aside_strangers(checkpoints)
    recover(checkpoints)
    return None
