"""A full disk is a user's problem, not a bug: saving a checkpoint (ENOSPC, or PyTorch's wording),
preparing data and writing an evaluation report each end in one line naming the folder, exit 2,
with the previous files intact and no partial file left."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from tiny import tiny_assets, tiny_train_config, write_checkpoint

from transformer.checkpoint import CheckpointError, load_checkpoint
from transformer.commands.edge import guarded
from transformer.commands.evaluate import main as evaluate_main
from transformer.data import corpus
from transformer.data.prepare import prepare_data
from transformer.evaluation import evaluate
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.runtime import DiskFullError
from transformer.training import trainer

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")
TORCH_WORDING = RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((2,), float(step))}, "step": step, "config": {},
            "tokenizer": {}, "format_version": 1}  # fmt: skip


@pytest.mark.parametrize("error", [NO_SPACE, TORCH_WORDING], ids=["ENOSPC", "unexpected pos"])
def test_a_checkpoint_save_on_a_full_disk_is_one_line_and_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    checkpoints = CheckpointDir(tmp_path)
    checkpoints.save(_state(5), is_best=True, periodic=True, keep_last=2)
    before = sorted(p.name for p in tmp_path.iterdir())

    def full(obj: object, handle: object) -> None:
        raise error

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match=f"no space left on the device of {tmp_path}"):
        checkpoints.save(_state(10), is_best=True, periodic=True, keep_last=2)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 5


def test_tmt_prepare_on_a_full_disk_is_one_line_and_exit_2(
    tiny_parallel_corpus: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    cfg = tiny_train_config(tiny_parallel_corpus["dir"], tmp_path / "run")

    def full(*args: object) -> None:
        raise OSError("[Errno 28] Error writing bytes to file. Detail: No space left on device")

    monkeypatch.setattr(corpus, "_write_pairs", full)  # pyarrow's wording: no errno
    assert guarded(lambda: prepare_data(cfg)) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "no space left on the device of" in line and cfg.data.cache_dir in line


def test_evaluate_on_a_full_disk_leaves_no_empty_report(
    tiny_parallel_corpus: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    ckpt = write_checkpoint(tmp_path / "ckpts" / "last.pt", model, tokenizer, cfg)
    out = tmp_path / "eval"

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(evaluate.os, "fsync", full)
    files = [
        "--src",
        str(tiny_parallel_corpus["test.en"]),
        "--ref",
        str(tiny_parallel_corpus["test.de"]),
    ]
    argv = [str(ckpt), *files, "--max-sentences", "2", "--out-dir", str(out)]
    assert evaluate_main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"no space left on the device of {out}" in line
    assert list(out.iterdir()) == []  # no 0-byte report, no temporary file


def test_training_on_a_full_disk_names_the_run_folder(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_train_config(tiny_parallel_corpus["dir"], tmp_path / "run")

    def full(*args: object) -> None:  # as TensorBoard's first event file on a full disk
        raise NO_SPACE

    monkeypatch.setattr(trainer, "build_run", full)
    with pytest.raises(DiskFullError, match=f"no space left on the device of {cfg.run_dir}"):
        trainer.train(cfg)
