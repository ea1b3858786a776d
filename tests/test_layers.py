"""Layers: feed-forward, residual/norm placement, equivalence with torch's Transformer layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from transformer.model.layers import DecoderLayer, EncoderLayer, FeedForward
from transformer.model.masks import causal_mask, padding_mask, target_mask

D, H, FF, B, S, T = 16, 4, 32, 3, 7, 5
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _randomise(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)


def _copy_attention(ours: nn.Module, theirs: nn.MultiheadAttention) -> None:
    theirs.in_proj_weight.copy_(ours.qkv_proj.weight)
    theirs.in_proj_bias.copy_(ours.qkv_proj.bias)
    theirs.out_proj.load_state_dict(ours.out_proj.state_dict())


def _copy_common(ours: nn.Module, theirs: nn.Module) -> None:
    _copy_attention(ours.self_attn, theirs.self_attn)
    theirs.linear1.load_state_dict(ours.ff.fc1.state_dict())
    theirs.linear2.load_state_dict(ours.ff.fc2.state_dict())
    theirs.norm1.load_state_dict(ours.self_attn_norm.state_dict())


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_formula(activation: str) -> None:
    ff = FeedForward(D, FF, activation=activation).eval()
    x = torch.randn(B, S, D)
    act = F.relu if activation == "relu" else F.gelu
    expected = act(x @ ff.fc1.weight.T + ff.fc1.bias) @ ff.fc2.weight.T + ff.fc2.bias
    assert_close(ff(x), expected, **TOL)


def test_feed_forward_rejects_unknown_activation() -> None:
    with pytest.raises(ValueError, match="activation"):
        FeedForward(D, FF, activation="swish")


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(norm_first: bool) -> None:
    ours = EncoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first).eval()
    _randomise(ours)
    theirs = nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    with torch.no_grad():
        _copy_common(ours, theirs)
        theirs.norm2.load_state_dict(ours.ff_norm.state_dict())
    x, ids = torch.randn(B, S, D), torch.randint(1, 9, (B, S))
    ids[1, 4:] = 0
    # Grad mode keeps torch off its fast path, which zeroes padded rows.
    expected = theirs(x, src_key_padding_mask=ids == 0)
    assert_close(ours(x, padding_mask(ids, 0)), expected, **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first: bool) -> None:
    ours = DecoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first).eval()
    _randomise(ours)
    theirs = nn.TransformerDecoderLayer(
        D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    with torch.no_grad():
        _copy_common(ours, theirs)
        _copy_attention(ours.cross_attn, theirs.multihead_attn)
        theirs.norm2.load_state_dict(ours.cross_attn_norm.state_dict())
        theirs.norm3.load_state_dict(ours.ff_norm.state_dict())
    x, memory = torch.randn(B, T, D), torch.randn(B, S, D)
    src_ids, tgt_ids = torch.randint(1, 9, (B, S)), torch.randint(1, 9, (B, T))
    src_ids[0, 3:] = 0
    tgt_ids[2, 3:] = 0
    expected = theirs(
        x,
        memory,
        tgt_mask=~causal_mask(T)[0, 0],
        tgt_key_padding_mask=tgt_ids == 0,
        memory_key_padding_mask=src_ids == 0,
    )
    out = ours(x, memory, target_mask(tgt_ids, 0), padding_mask(src_ids, 0))
    assert_close(out, expected, **TOL)
    out_weights, _ = ours.forward_with_cross_weights(
        x, memory, target_mask(tgt_ids, 0), padding_mask(src_ids, 0)
    )
    assert_close(out_weights, expected, **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_step_matches_forward(norm_first: bool) -> None:
    layer = DecoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first).eval()
    x, memory = torch.randn(B, T, D), torch.randn(B, S, D)
    src_mask = padding_mask(torch.randint(0, 3, (B, S)), 0) | (torch.arange(S) == 0)
    full = layer(x, memory, None, src_mask, is_causal=True)
    cache = layer.init_cache(memory)
    for t in range(T):
        out, cache = layer.step(x[:, t : t + 1], cache, src_mask)
        assert_close(out, full[:, t : t + 1], **TOL)
    assert cache.self_k.shape == (B, H, T, D // H)


@pytest.mark.parametrize("norm_first", [False, True])
def test_residual_dropout_is_active_in_training_only(norm_first: bool) -> None:
    layer = EncoderLayer(D, H, FF, dropout=0.5, norm_first=norm_first)
    x = torch.randn(B, S, D)
    assert not torch.allclose(layer(x, None), layer(x, None))
    layer.eval()
    assert_close(layer(x, None), layer(x, None), atol=0, rtol=0)


def test_post_norm_output_is_normalised_and_pre_norm_is_not() -> None:
    x = 5 * torch.randn(B, S, D)
    post = EncoderLayer(D, H, FF, dropout=0.0, norm_first=False).eval()(x, None)
    pre = EncoderLayer(D, H, FF, dropout=0.0, norm_first=True).eval()(x, None)
    assert_close(post.mean(-1), torch.zeros(B, S), atol=1e-5, rtol=0)
    assert_close(post.std(-1, unbiased=False), torch.ones(B, S), atol=1e-3, rtol=0)
    assert pre.std(-1).mean() > 2  # the residual stream keeps x's scale
