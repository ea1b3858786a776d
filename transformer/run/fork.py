"""Fork: the next training session of a run resumes from an earlier update; the checkpoints of
later updates are set aside (nothing is deleted). `tmt-fork RUN_DIR --update N` runs it
(`transformer.commands.fork`)."""

from __future__ import annotations

from transformer.checkpoint import CheckpointError
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.layout import FINAL, LAST, MANIFEST
from transformer.run.manifest import Manifest
from transformer.run.upgrade import adopt_legacy


def fork(checkpoints: CheckpointDir, step: int) -> None:
    """Make the state of update `step` the run's last, to resume from it.

    States of later updates (and a later best, and final.pt) move to a subfolder
    `later-than-<step>.<time>/`; nothing is deleted. A folder written before manifests is
    adopted first (`adopt_legacy`).

    Raises:
        CheckpointError: the folder holds no run, or no state of update `step`.
    """
    folder = checkpoints.folder
    if checkpoints.manifest is None:
        if not (folder / LAST).is_file():
            raise CheckpointError(f"{folder} holds no run (no {MANIFEST}, no {LAST}).")
        adopt_legacy(checkpoints)
    old = checkpoints.manifest
    entries = [] if old is None else [*old.kept, old.best, old.last]
    chosen = [entry for entry in entries if entry is not None and entry.step == step]
    if not chosen:
        raise CheckpointError(
            f"{folder} holds no checkpoint of update {step}; it holds updates "
            f"{', '.join(map(str, checkpoints.steps())) or 'none'}."
        )
    assert old is not None
    new = Manifest(
        run_id=old.run_id,
        last=chosen[0],
        best=old.best if old.best is not None and old.best.step <= step else None,
        kept=[entry for entry in old.kept if entry.step <= step],
    )
    later = sorted((old.files() - new.files()) | ({FINAL} if old.final else set()))
    checkpoints.publish(new)
    checkpoints.set_aside_later(step, later)
    checkpoints.sync_links()
