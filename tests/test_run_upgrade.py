"""A run folder written before manifests (last.pt, best.pt, final.pt and checkpoint_<N>.pt by
name, states without run ids) still loads for inference, and training or a fork adopts it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transformer.checkpoint import load_checkpoint
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.fork import fork
from transformer.run.lookup import averaging_candidates, resolve_checkpoint
from transformer.run.recovery import open_session


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((2,), float(step))}, "step": step, "config": {},
            "tokenizer": {}, "format_version": 1}  # fmt: skip


@pytest.fixture
def old_folder(tmp_path: Path) -> Path:
    """checkpoints/ of an old run: periodic states at 5, 10, 15; best.pt is 10, last.pt 15."""
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for step in (5, 10, 15):
        torch.save(_state(step), folder / f"checkpoint_{step:08d}.pt")
    torch.save(_state(10), folder / "best.pt")
    torch.save(_state(15), folder / "last.pt")
    return folder


def test_an_old_folder_is_read_by_name_for_inference_and_left_unchanged(old_folder: Path) -> None:
    before = sorted(p.name for p in old_folder.iterdir())
    assert resolve_checkpoint(old_folder.parent) == old_folder / "best.pt"
    torch.save(_state(15), old_folder / "final.pt")
    assert resolve_checkpoint(old_folder.parent) == old_folder / "final.pt"
    found = averaging_candidates(old_folder, 2)
    assert [p.name for p in found] == ["checkpoint_00000010.pt", "checkpoint_00000015.pt"]
    assert sorted(p.name for p in old_folder.iterdir()) == sorted([*before, "final.pt"])


def test_a_training_session_adopts_an_old_folder(old_folder: Path) -> None:
    checkpoints = CheckpointDir(old_folder)
    assert open_session(checkpoints) is None
    adopted = CheckpointDir(old_folder)
    assert adopted.run_id.startswith("adopted-")
    assert adopted.last.step == 15 and adopted.best.step == 10
    assert [entry.step for entry in adopted.kept] == [5, 10, 15]
    assert load_checkpoint(adopted.path(adopted.last))["step"] == 15


def test_a_fork_adopts_an_old_folder_and_sets_later_updates_aside(old_folder: Path) -> None:
    checkpoints = CheckpointDir(old_folder)
    fork(checkpoints, 10)
    assert checkpoints.last.step == 10 and checkpoints.best.step == 10
    assert load_checkpoint(old_folder / "last.pt")["step"] == 10
    (aside,) = old_folder.glob("later-than-10.*")
    # last.pt was a copy, not a link, of checkpoint_00000015.pt: adopted as state_00000015.pt
    assert sorted(p.name for p in aside.iterdir()) == [
        "checkpoint_00000015.pt",
        "state_00000015.pt",
    ]
