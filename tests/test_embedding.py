"""Embeddings: sqrt(D) scaling, fairseq-style init, sinusoidal and learned positions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from transformer.model.embedding import (
    InputEmbedding,
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    sinusoid_table,
)

PAD = 0


def test_sinusoid_at_position_zero_is_zero_one_alternating() -> None:
    table = sinusoid_table(4, 10)
    assert_close(table[0], torch.tensor([0.0, 1.0] * 5), atol=0, rtol=0)


def test_sinusoid_matches_paper_formula() -> None:
    d_model = 6
    table = sinusoid_table(20, d_model)
    for pos in (1, 7, 19):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert math.isclose(table[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-5)
            assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-5)


def test_sinusoidal_encoding_is_not_a_parameter_nor_checkpointed() -> None:
    pe = SinusoidalPositionalEncoding(16, 8)
    assert list(pe.parameters()) == []
    assert "table" not in pe.state_dict()
    assert_close(pe(3, offset=5), sinusoid_table(16, 8)[5:8], atol=0, rtol=0)


def test_token_embedding_is_scaled_with_zero_pad_row() -> None:
    d_model = 16
    emb = TokenEmbedding(2000, d_model, PAD)
    ids = torch.tensor([[3, 7, PAD]])
    out = emb(ids)
    assert_close(out, emb.weight[ids] * math.sqrt(d_model), atol=0, rtol=0)
    assert (out[0, 2] == 0).all()
    # normal(0, D^-0.5) init makes the scaled embedding unit-variance, like the positions.
    assert abs(emb(torch.arange(1, 2000)).std().item() - 1.0) < 0.05


def test_pad_row_gets_no_gradient() -> None:
    emb = TokenEmbedding(10, 4, PAD)
    emb(torch.tensor([[PAD, 3]])).sum().backward()
    assert (emb.weight.grad[PAD] == 0).all()
    assert (emb.weight.grad[3] != 0).all()


def test_learned_positions_train_and_respect_offset() -> None:
    pe = LearnedPositionalEmbedding(16, 8)
    assert_close(pe(2, offset=3), pe.weight[3:5], atol=0, rtol=0)
    pe(4).sum().backward()
    assert (pe.weight.grad[:4] != 0).all()
    assert (pe.weight.grad[4:] == 0).all()


@pytest.mark.parametrize(
    "positions_cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding]
)
def test_input_embedding_at_offset_equals_slice_of_full(positions_cls: type) -> None:
    layer = InputEmbedding(TokenEmbedding(30, 8, PAD), positions_cls(16, 8), dropout=0.0)
    ids = torch.randint(1, 30, (2, 6))
    full = layer(ids)
    assert_close(layer(ids[:, 4:5], offset=4), full[:, 4:5], atol=0, rtol=0)
    assert_close(full - layer.tokens(ids), layer.positions(6).expand(2, 6, 8), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "positions_cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding]
)
def test_too_long_input_names_max_positions(positions_cls: type) -> None:
    pe = positions_cls(8, 4)
    with pytest.raises(ValueError, match="max_positions"):
        pe(5, offset=4)
