"""Masks: one boolean convention, True = may be attended."""

from __future__ import annotations

import torch

from transformer.model.masks import causal_mask, padding_mask, target_mask

PAD = 0


def test_padding_mask_marks_real_tokens() -> None:
    ids = torch.tensor([[5, 6, 7, PAD], [5, PAD, PAD, PAD]])
    mask = padding_mask(ids, PAD)
    assert mask.shape == (2, 1, 1, 4)
    assert mask.dtype == torch.bool
    expected = torch.tensor([[True, True, True, False], [True, False, False, False]])
    assert torch.equal(mask[:, 0, 0], expected)


def test_causal_mask_is_lower_triangle() -> None:
    mask = causal_mask(5, torch.device("cpu"))
    assert mask.shape == (1, 1, 5, 5)
    for i in range(5):
        for j in range(5):
            assert bool(mask[0, 0, i, j]) == (j <= i)


def test_target_mask_is_causal_and_key_padding() -> None:
    ids = torch.tensor([[2, 8, 9, PAD, PAD], [2, 8, 9, 10, 11]])
    mask = target_mask(ids, PAD)
    assert mask.shape == (2, 1, 5, 5)
    for b in range(2):
        for i in range(5):
            for j in range(5):
                assert bool(mask[b, 0, i, j]) == (j <= i and ids[b, j].item() != PAD)


def test_target_mask_never_masks_a_whole_row() -> None:
    # A fully masked row makes SDPA return NaN; BOS at position 0 keeps every row alive.
    ids = torch.tensor([[2, PAD, PAD, PAD], [2, 7, PAD, PAD]])
    assert target_mask(ids, PAD).any(dim=-1).all()
