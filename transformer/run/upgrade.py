"""Folders written before checkpoints/ had a manifest: the one place that knows their layout.

Such a folder named its files by convention: `last.pt`, `best.pt`, `final.pt` and the periodic
`checkpoint_<update>.pt`. Training adopts it (writes a manifest for it) before resuming or
forking; the inference commands read it by those names without changing it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from transformer.checkpoint import load_checkpoint
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.layout import BEST, FINAL, LAST, LEGACY_PERIODIC, MANIFEST
from transformer.run.manifest import Entry, Manifest, new_run_id

logger = logging.getLogger(__name__)


def is_legacy(checkpoints: CheckpointDir) -> bool:
    """A folder saved before manifests: no manifest, and a last.pt that records no run id."""
    last = checkpoints.folder / LAST
    return checkpoints.manifest is None and last.is_file() and "run_id" not in load_checkpoint(last)


def _adopt_file(checkpoints: CheckpointDir, name: str, step: int, known: list[Entry]) -> Entry:
    folder = checkpoints.folder
    for entry in known:
        if os.path.samefile(folder / entry.file, folder / name):
            return entry
    fresh = checkpoints.fresh_name(f"state_{step:08d}")
    os.link(folder / name, folder / fresh)
    return Entry(fresh, step)


def adopt_legacy(checkpoints: CheckpointDir) -> None:
    """Write a manifest for a folder saved before manifests existed (last.pt, best.pt,
    checkpoint_<update>.pt by name). Files of updates after last.pt's (a fork made by copying
    an earlier checkpoint over last.pt) are set aside."""
    folder = checkpoints.folder
    last_step = load_checkpoint(folder / LAST)["step"]
    manifest = Manifest(run_id=f"adopted-{new_run_id()}")
    checkpoints.manifest, checkpoints.run_id = manifest, manifest.run_id
    later: list[str] = []
    for path in sorted(folder.glob(LEGACY_PERIODIC)):
        step = int(path.stem.removeprefix("checkpoint_"))
        if step <= last_step:
            manifest.kept.append(Entry(path.name, step))
        else:
            later.append(path.name)
    manifest.last = _adopt_file(checkpoints, LAST, last_step, manifest.kept)
    if (folder / BEST).is_file():
        best_step = load_checkpoint(folder / BEST)["step"]
        if best_step <= last_step:
            known = [*manifest.kept, manifest.last]
            manifest.best = _adopt_file(checkpoints, BEST, best_step, known)
        else:
            later.append(BEST)
    final = folder / FINAL
    if final.is_file() and load_checkpoint(final)["step"] > last_step:
        later.append(FINAL)
    checkpoints.set_aside_later(last_step, later)
    checkpoints.publish(manifest)
    logger.warning(
        "%s was written before manifests: adopted last.pt (update %d)%s and %d periodic "
        "checkpoint(s) as the run's", folder, last_step,
        ", best.pt" if manifest.best else "", len(manifest.kept),
    )  # fmt: skip


def legacy_reported(folder: Path) -> Path | None:
    """In a folder without a manifest: final.pt, else best.pt, else last.pt, by name."""
    if (folder / MANIFEST).is_file():
        return None
    return next((folder / name for name in (FINAL, BEST, LAST) if (folder / name).is_file()), None)


def legacy_last(folder: Path) -> Path | None:
    """In a folder without a manifest: last.pt, the state a session resumes from (once adopted)."""
    last = folder / LAST
    return last if not (folder / MANIFEST).is_file() and last.is_file() else None


def legacy_periodic(folder: Path, k: int) -> list[Path]:
    """In a folder without a manifest: the newest `k` checkpoint_<update>.pt files by name."""
    found = sorted(folder.glob(LEGACY_PERIODIC))[-k:]
    if found:
        logger.warning("%s has no manifest: averaging checkpoint_*.pt files by name", folder)
    return found
