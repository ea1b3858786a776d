"""Scaled token embeddings and positional encodings (paper section 3.4 and 3.5)."""

from __future__ import annotations

import math

import torch
from torch import nn


class TokenEmbedding(nn.Module):
    """Token embedding multiplied by sqrt(D).

    Initialised normal(0, D^-0.5) with the padding row zero (fairseq), so the scaled embedding has
    unit-variance entries, the same scale as the positional encoding it is added to.

    Args:
        vocab_size: V.
        d_model: D.
        pad_id: id of the padding token (its row stays zero and gets no gradient).
    """

    def __init__(self, vocab_size: int, d_model: int, pad_id: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.scale = math.sqrt(d_model)
        self.reset_parameters()

    @property
    def weight(self) -> nn.Parameter:
        """(V, D) embedding matrix (shared with the output projection when tied)."""
        return self.embedding.weight

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, mean=0.0, std=self.embedding.embedding_dim**-0.5)
        with torch.no_grad():
            self.embedding.weight[self.embedding.padding_idx].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 -> (B, L, D)."""
        return self.embedding(ids) * self.scale


def sinusoid_table(n_positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(...): (n_positions, D) fp32."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    angles = position * inv_freq  # (P, ceil(D/2))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table


def _check_length(end: int, max_positions: int) -> None:
    if end > max_positions:
        raise ValueError(
            f"position {end - 1} is beyond the positional encoding (model.max_positions="
            f"{max_positions}); raise model.max_positions or shorten the inputs."
        )


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoidal positions, a non-persistent buffer (recomputed, not checkpointed).

    Args:
        max_positions: longest sequence covered.
        d_model: D.
    """

    def __init__(self, max_positions: int, d_model: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.register_buffer("table", sinusoid_table(max_positions, d_model), persistent=False)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        """Encodings of positions offset .. offset+length-1: (length, D)."""
        _check_length(offset + length, self.max_positions)
        return self.table[offset : offset + length]


class LearnedPositionalEmbedding(nn.Module):
    """Learned absolute positions (the paper's section 3.5 alternative), normal(0, D^-0.5).

    Args:
        max_positions: longest sequence covered.
        d_model: D.
    """

    def __init__(self, max_positions: int, d_model: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.weight = nn.Parameter(torch.empty(max_positions, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=self.weight.size(1) ** -0.5)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        """Embeddings of positions offset .. offset+length-1: (length, D)."""
        _check_length(offset + length, self.max_positions)
        return self.weight[offset : offset + length]


class InputEmbedding(nn.Module):
    """dropout(token_embedding * sqrt(D) + position): the input to a stack.

    Args:
        tokens: the token embedding (possibly shared between source and target).
        positions: a SinusoidalPositionalEncoding or LearnedPositionalEmbedding.
        dropout: dropout on the sum (the paper's P_drop).
    """

    def __init__(
        self,
        tokens: TokenEmbedding,
        positions: SinusoidalPositionalEncoding | LearnedPositionalEmbedding,
        dropout: float,
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self.positions = positions
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Embed ids (B, L) int64 at positions offset.. -> (B, L, D)."""
        x = self.tokens(ids) + self.positions(ids.size(1), offset)  # (B, L, D)
        return self.dropout(x)
