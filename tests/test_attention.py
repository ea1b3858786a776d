"""Attention: fused vs reference path, analytic cases, and nn.MultiheadAttention equivalence."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from transformer.model.attention import (
    MultiHeadAttention,
    reference_attention,
    scaled_dot_product_attention,
)
from transformer.model.masks import causal_mask, padding_mask, target_mask

B, H, T, Dh = 3, 2, 6, 8
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _ids_with_padding() -> torch.Tensor:
    ids = torch.randint(4, 20, (B, T))
    ids[0, 4:] = 0
    ids[2, 2:] = 0
    return ids


def _mask(kind: str) -> torch.Tensor | None:
    ids = _ids_with_padding()
    return {
        "none": None,
        "padding": padding_mask(ids, 0),
        "causal": causal_mask(T),
        "both": target_mask(ids, 0),
    }[kind]


@pytest.mark.parametrize("kind", ["none", "padding", "causal", "both"])
def test_fused_matches_reference(kind: str) -> None:
    q, k, v = (torch.randn(B, H, T, Dh) for _ in range(3))
    mask = _mask(kind)
    fused = scaled_dot_product_attention(q, k, v, mask)
    ref, weights = reference_attention(q, k, v, mask)
    assert_close(fused, ref, **TOL)
    assert not torch.isnan(fused).any()
    assert_close(weights.sum(-1), torch.ones(B, H, T), **TOL)
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


def test_is_causal_equals_explicit_causal_mask() -> None:
    q, k, v = (torch.randn(B, H, T, Dh) for _ in range(3))
    ref, _ = reference_attention(q, k, v, causal_mask(T))
    assert_close(scaled_dot_product_attention(q, k, v, is_causal=True), ref, **TOL)


def test_equal_keys_give_uniform_weights_over_allowed_positions() -> None:
    q = torch.randn(1, 1, 3, Dh)
    k = torch.randn(1, 1, 1, Dh).expand(1, 1, 5, Dh)
    v = torch.randn(1, 1, 5, Dh)
    mask = torch.tensor([True, True, False, True, False])[None, None, None]
    out, weights = reference_attention(q, k, v, mask)
    expected = mask.float().expand(1, 1, 3, 5) / 3
    assert_close(weights, expected, **TOL)
    assert_close(out, v[:, :, [0, 1, 3]].mean(2, keepdim=True).expand(1, 1, 3, Dh), **TOL)


def _copied_torch_mha(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    theirs = nn.MultiheadAttention(ours.d_model, ours.n_heads, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv_proj.weight)
        theirs.in_proj_bias.copy_(ours.qkv_proj.bias)
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    return theirs.eval()


def _randomise(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)


def test_self_attention_matches_torch_multihead_attention() -> None:
    ours = MultiHeadAttention(32, 4).eval()
    _randomise(ours)
    theirs = _copied_torch_mha(ours)
    x = torch.randn(B, T, 32)
    ids = _ids_with_padding()
    mask = target_mask(ids, 0)  # (B, 1, T, T)
    # nn.MultiheadAttention's boolean masks mean the opposite: True = may NOT attend.
    expected, _ = theirs(
        x, x, x, attn_mask=~causal_mask(T)[0, 0], key_padding_mask=ids == 0, need_weights=False
    )
    assert_close(ours(x, mask), expected, **TOL)


def test_cross_attention_matches_torch_multihead_attention() -> None:
    ours = MultiHeadAttention(32, 4).eval()
    _randomise(ours)
    theirs = _copied_torch_mha(ours)
    x, memory = torch.randn(B, 5, 32), torch.randn(B, T, 32)
    src_ids = _ids_with_padding()
    k, v = ours.project_kv(memory)
    out = ours.attend(ours.project_query(x), k, v, padding_mask(src_ids, 0))
    expected, expected_weights = theirs(
        x, memory, memory, key_padding_mask=src_ids == 0, average_attn_weights=False
    )
    assert_close(out, expected, **TOL)
    out_ref, weights = ours.attend_with_weights(
        ours.project_query(x), k, v, padding_mask(src_ids, 0)
    )
    assert_close(out_ref, expected, **TOL)
    assert_close(weights, expected_weights, **TOL)


def test_attention_dropout_only_in_training() -> None:
    mha = MultiHeadAttention(16, 2, attn_dropout=0.5)
    x = torch.randn(2, T, 16)
    mha.eval()
    assert_close(mha(x), mha(x), atol=0, rtol=0)
    mha.train()
    assert not torch.allclose(mha(x), mha(x))


def test_rejects_heads_not_dividing_d_model() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)
