"""load_model: one typed result for a checkpoint, a run folder, an average, an ensemble and an
exported folder, from plain arguments; combinations that cannot work are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ct2_helpers import require_ctranslate2
from tiny import tiny_assets, write_checkpoint

from transformer.decoding.ensemble import Ensemble
from transformer.export.folder import export_checkpoint
from transformer.loading import LoadedModel, load_model
from transformer.model import Seq2SeqTransformer


@pytest.fixture
def ckpt(tiny_parallel_corpus: dict[str, Path], tmp_path: Path) -> Path:
    return write_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.pt", *tiny_assets(tiny_parallel_corpus)
    )


def test_a_run_folder_loads_its_checkpoint(ckpt: Path) -> None:
    loaded = load_model(ckpt.parents[1], device="cpu")
    assert isinstance(loaded, LoadedModel) and loaded.source == ckpt
    assert isinstance(loaded.model, Seq2SeqTransformer) and not loaded.model.training
    assert loaded.averaged == [] and loaded.ensemble == [] and loaded.exported is None
    assert loaded.device == torch.device("cpu") and loaded.cfg.data.source == "files"


def test_average_and_ensemble(ckpt: Path) -> None:
    averaged = load_model(ckpt, device="cpu", average=[ckpt.parents[1]])  # a run folder
    assert averaged.averaged == [ckpt, ckpt]
    ensemble = load_model(ckpt, device="cpu", ensemble=[ckpt])
    assert isinstance(ensemble.model, Ensemble) and ensemble.ensemble == [ckpt]
    with pytest.raises(ValueError, match="--ensemble does not combine"):
        load_model(ckpt, ensemble=[ckpt], average_last=1)


def test_an_exported_folder_loads_without_the_checkpoint(ckpt: Path, tmp_path: Path) -> None:
    require_ctranslate2()
    export_checkpoint(ckpt, tmp_path / "ct2", "int8")
    ckpt.unlink()
    loaded = load_model(tmp_path / "ct2", device="cpu")
    assert loaded.model is None and loaded.exported is not None
    assert loaded.exported.quantization == "int8" and loaded.cfg.data.source == "files"
    assert loaded.tokenizer.src_vocab_size > 0
    with pytest.raises(ValueError, match="exported folder: averaging and ensembles"):
        load_model(tmp_path / "ct2", average_last=2)
