"""Which checkpoint a run folder stands for, and which it averages, read through its manifest
(`transformer.training.checkpoint_dir`), for evaluate.py and translate.py."""

from __future__ import annotations

import logging
from pathlib import Path

from transformer.checkpoint import CheckpointError
from transformer.training.checkpoint_dir import BEST, FINAL, LAST, LEGACY_PERIODIC, CheckpointDir
from transformer.training.manifest import MANIFEST

logger = logging.getLogger(__name__)


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, or the one a run folder (or its checkpoints/ folder) reports: final.pt,
    else the best state, else the last (by the manifest; by name in a folder without one).

    Raises:
        CheckpointError: a folder that holds none of them.
    """
    if not path.is_dir():
        return path
    for folder in (path / "checkpoints", path):
        if (folder / MANIFEST).is_file() and (found := CheckpointDir(folder).reported()):
            return found
        for name in (FINAL, BEST, LAST):
            if not (folder / MANIFEST).is_file() and (folder / name).is_file():
                return folder / name
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
        found = sorted(folder.glob(LEGACY_PERIODIC))[-k:]
        if found:
            logger.warning("%s has no manifest: averaging checkpoint_*.pt files by name", folder)
    if len(found) < k:
        raise CheckpointError(
            f"--average-last {k}: {folder} keeps {len(found)} checkpoint(s); lower K or list "
            "the files with --average."
        )
    return found
