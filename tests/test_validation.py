"""Validation: the loss skips pairs longer than the model takes, and only rank 0 decodes for BLEU
while every rank joins the same broadcasts."""

from __future__ import annotations

import dataclasses
import math
import types
from pathlib import Path

import pytest
import torch
from tiny import CPU, PAD, tiny_model, tiny_run_config, write_tiny_parallel_corpus

from transformer.data.batching import EncodedPairs
from transformer.data.prepare import prepare_data
from transformer.model import build_model
from transformer.training import trainer, validation
from transformer.training.distributed import DistEnv
from transformer.training.logger import TrainLogger
from transformer.training.loop_state import LoopCounters
from transformer.training.validation import validation_loss


def _loss(model: torch.nn.Module, src: list[list[int]], tgt: list[list[int]]) -> float:
    return validation_loss(
        model, EncodedPairs.from_lists(src, tgt), max_tokens=64, max_positions=8, smoothing=0.1,
        pad_id=PAD, device=CPU, precision="fp32",
    ).loss  # fmt: skip


def test_validation_loss_skips_pairs_longer_than_max_positions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = tiny_model(max_positions=8)
    short_src, short_tgt = [[5, 6, 7], [8, 9], [4] * 7], [[6, 7], [9, 8, 7], [5] * 7]
    long_src, long_tgt = [[5] * 8, [6, 7]], [[7, 8], [9] * 12]  # + EOS/BOS: 9 and 13 > 8
    mixed = _loss(model, short_src + long_src, short_tgt + long_tgt)
    assert mixed == pytest.approx(_loss(model, short_src, short_tgt), rel=1e-6)
    assert "skips 2 of 5 pairs longer than model.max_positions=8" in caplog.text


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    folder = tmp_path_factory.mktemp("validation")
    corpus = write_tiny_parallel_corpus(folder / "corpus")
    cfg = tiny_run_config(corpus["dir"])
    cfg.run_dir, cfg.data.cache_dir = str(folder / "run"), str(folder / "cache")
    cfg.train = dataclasses.replace(cfg.train, valid_max_sentences=4, max_tokens=200)
    prepared = prepare_data(cfg)
    tokenizer = prepared.tokenizer
    model = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD)
    return cfg, prepared, model


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank0_decodes_bleu_and_every_rank_joins_the_broadcasts(
    prepared_run: tuple, rank: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg, prepared, model = prepared_run
    decoded, broadcasts = [], []
    translator = validation.Translator

    def counting_translator(*args: object, **kwargs: object) -> object:
        decoded.append(1)
        return translator(*args, **kwargs)

    def broadcast(value: float) -> float:
        broadcasts.append(value)
        return 7.0 if math.isnan(value) else value  # rank 0's score reaches every rank

    monkeypatch.setattr(validation, "Translator", counting_translator)
    monkeypatch.setattr(trainer, "broadcast_float", broadcast)
    monkeypatch.setattr(trainer, "save", lambda run, **kwargs: None)
    log = TrainLogger(tmp_path, enabled=False, total_updates=None, initial_update=0)
    run = types.SimpleNamespace(
        cfg=cfg, counters=LoopCounters(update=5), model=model, prepared=prepared, device=CPU,
        precision="fp32", env=DistEnv(rank=rank, world_size=2), log=log,
    )  # fmt: skip
    metrics = trainer.validate_and_save(run)
    assert len(decoded) == (1 if rank == 0 else 0)
    assert len(broadcasts) == 2  # loss and BLEU, on every rank alike
    assert "valid_bleu" in metrics and math.isfinite(metrics["valid_bleu"])
