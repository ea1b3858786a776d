"""Boolean attention masks, one convention: True = this position may be attended (as in SDPA).

Shapes broadcast to (B, H, Tq, Tk): source padding (B, 1, 1, S), target causal+padding (B, 1, T, T).
"""

from __future__ import annotations

import torch


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Key padding mask.

    Args:
        ids: (B, L) int64 token ids.
        pad_id: id of the padding token.

    Returns:
        (B, 1, 1, L) bool, True where the token is not padding.
    """
    return (ids != pad_id)[:, None, None, :]  # (B, L) -> (B, 1, 1, L)


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Causal mask: query position i may attend to key positions j <= i.

    Args:
        length: sequence length T.
        device: device of the mask.

    Returns:
        (1, 1, T, T) bool, lower triangle (diagonal included) True.
    """
    ones = torch.ones(length, length, dtype=torch.bool, device=device)
    return torch.tril(ones)[None, None]  # (T, T) -> (1, 1, T, T)


def target_mask(tgt_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Decoder self-attention mask: causal and key padding.

    Padding masks keys only and position 0 (BOS) is never padding, so every query row keeps at
    least one key: SDPA would return NaN for a fully masked row.

    Args:
        tgt_ids: (B, T) int64 target input ids.
        pad_id: id of the padding token.

    Returns:
        (B, 1, T, T) bool.
    """
    causal = causal_mask(tgt_ids.size(1), tgt_ids.device)  # (1, 1, T, T)
    return causal & padding_mask(tgt_ids, pad_id)  # (B, 1, T, T)
