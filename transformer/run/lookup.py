"""Which checkpoint a run folder stands for, and which it averages, read through its manifest
(`checkpoint_dir.py`; folders without one by `upgrade.py`), for the inference commands."""

from __future__ import annotations

from pathlib import Path

from transformer.checkpoint import CheckpointError
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.layout import CHECKPOINTS, MANIFEST, checkpoints_dir
from transformer.run.upgrade import legacy_last, legacy_periodic, legacy_reported


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, or the one a run folder (or its checkpoints/ folder) reports: final.pt,
    else the best state, else the last (by the manifest; by name in a folder without one).

    Raises:
        CheckpointError: a folder that holds none of them.
    """
    if not path.is_dir():
        return path
    for folder in (path / CHECKPOINTS, path):
        if (folder / MANIFEST).is_file() and (found := CheckpointDir(folder).reported()):
            return found
        if found := legacy_reported(folder):
            return found
    raise CheckpointError(
        f"{path} is a folder without final.pt, best.pt or last.pt (nor a checkpoints/ folder "
        "holding one); give a run folder or the path of a .pt file."
    )


def averaging_candidates(folder: Path, k: int) -> list[Path]:
    """The newest `k` kept checkpoints of a checkpoints/ folder, by its manifest (in a folder
    written before manifests: the newest checkpoint_<update>.pt files, with a warning).

    Raises:
        CheckpointError: fewer than `k` are kept.
    """
    if (folder / MANIFEST).is_file():
        checkpoints = CheckpointDir(folder)
        found = [checkpoints.path(entry) for entry in checkpoints.kept[-k:]]
    else:
        found = legacy_periodic(folder, k)
    if len(found) < k:
        raise CheckpointError(
            f"--average-last {k}: {folder} keeps {len(found)} checkpoint(s); lower K or list "
            "the files with --average."
        )
    return found


def last_state(run_dir: str | Path) -> Path | None:
    """The state a run folder's next training session resumes from, or None: the manifest's
    last (None when last.pt was deleted to start over), or in a folder written before manifests,
    last.pt."""
    folder = checkpoints_dir(run_dir)
    if not (folder / MANIFEST).is_file():
        return legacy_last(folder)
    checkpoints = CheckpointDir(folder)
    if checkpoints.last is None or checkpoints.last_was_deleted():
        return None
    return checkpoints.path(checkpoints.last)
