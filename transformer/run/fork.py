"""Fork: the next training session of a run resumes from an earlier update; the checkpoints of
later updates are set aside (nothing is deleted). `tmt-fork RUN_DIR --update N` runs it."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from transformer.checkpoint import CheckpointError
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.layout import FINAL, LAST, MANIFEST, checkpoints_dir
from transformer.run.lock import RunFolderBusy, hold_run_folder
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


def fork_main(argv: list[str] | None = None) -> int:
    """`tmt-fork RUN_DIR --update N`: resume RUN_DIR from update N next time."""
    parser = argparse.ArgumentParser(
        description="Make an earlier update's checkpoint the one the next training run resumes "
        "from; the checkpoints of later updates move to checkpoints/later-than-<N>.<time>/."
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holding checkpoints/)")
    parser.add_argument("--update", type=int, required=True, help="the update to fork from")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not args.run_dir.is_dir():
            raise CheckpointError(f"{args.run_dir} is not a run folder.")
        hold_run_folder(args.run_dir, "tmt-fork")
        fork(CheckpointDir(checkpoints_dir(args.run_dir)), args.update)
    except (CheckpointError, OSError, RunFolderBusy) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.run_dir} now resumes from update {args.update}: run the training command again.")
    return 0
