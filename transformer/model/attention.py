"""Scaled dot-product attention (paper section 3.2.1) and multi-head attention (section 3.2.2).

The fused `F.scaled_dot_product_attention` is the default path; `reference_attention` spells out
softmax(Q K^T / sqrt(Dh)) V and also returns the weights (tests, attention plots).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """Fused attention (PyTorch SDPA).

    Args:
        q: (B, H, Tq, Dh) queries.
        k: (B, H, Tk, Dh) keys.
        v: (B, H, Tk, Dh) values.
        mask: bool, broadcastable to (B, H, Tq, Tk), True = may attend; None attends everywhere.
        dropout_p: dropout on the attention weights.
        is_causal: apply a causal mask instead of `mask` (which must then be None).

    Returns:
        (B, H, Tq, Dh) attended values.
    """
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
    )


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(Dh)) V written out, returning the weights too.

    Args:
        q: (B, H, Tq, Dh) queries.
        k: (B, H, Tk, Dh) keys.
        v: (B, H, Tk, Dh) values.
        mask: bool, broadcastable to (B, H, Tq, Tk), True = may attend; None attends everywhere.
        dropout_p: dropout on the attention weights (applied only if > 0).

    Returns:
        (B, H, Tq, Dh) attended values and (B, H, Tq, Tk) attention weights (before dropout).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights  # (B, H, Tq, Dh)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with one fused input projection.

    `qkv_proj` holds [W_q; W_k; W_v] as rows of one (3D, D) Linear, the layout of
    `nn.MultiheadAttention.in_proj_weight`: self-attention projects Q, K and V with one matmul,
    cross-attention projects Q from the decoder and K, V from the memory with row slices (views,
    no copy). Separate methods serve each use, so the cache can hold projected K/V:
    `project_qkv` (self), `project_query` + `project_kv` (cross), then `attend`.

    Args:
        d_model: model width D.
        n_heads: number of heads H (must divide D).
        attn_dropout: dropout on attention weights (training only).
    """

    def __init__(self, d_model: int, n_heads: int, *, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}.")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.attn_dropout = attn_dropout
        self.qkv_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
        """(B, L, n*D) -> n tensors (B, H, L, Dh), as strided views."""
        B, L, _ = x.shape
        x = x.view(B, L, n * self.n_heads, self.head_dim)  # (B, L, n*H, Dh)
        # split + transpose: its backward is one cat, measured faster on CPU than unbind's stack.
        return tuple(t.transpose(1, 2) for t in x.split(self.n_heads, dim=2))  # n x (B, H, L, Dh)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention projections: (B, L, D) -> q, k, v each (B, H, L, Dh)."""
        q, k, v = self._split(self.qkv_proj(x), 3)  # (B, L, 3D) -> 3 x (B, H, L, Dh)
        return q, k, v

    def project_query(self, x: torch.Tensor) -> torch.Tensor:
        """Query projection for cross-attention: (B, T, D) -> (B, H, T, Dh)."""
        D = self.d_model
        q = F.linear(x, self.qkv_proj.weight[:D], self.qkv_proj.bias[:D])  # (B, T, D)
        return self._split(q, 1)[0]  # (B, H, T, Dh)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Key/value projections for cross-attention: (B, S, D) -> k, v each (B, H, S, Dh)."""
        D = self.d_model
        kv = F.linear(memory, self.qkv_proj.weight[D:], self.qkv_proj.bias[D:])  # (B, S, 2D)
        k, v = self._split(kv, 2)  # 2 x (B, H, S, Dh)
        return k, v

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, Tq, Dh) -> output projection (B, Tq, D)."""
        B, _, Tq, _ = x.shape
        x = x.transpose(1, 2).reshape(B, Tq, self.d_model)  # (B, H, Tq, Dh) -> (B, Tq, D)
        return self.out_proj(x)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Fused attention over projected heads, then the output projection.

        Args:
            q: (B, H, Tq, Dh); k, v: (B, H, Tk, Dh).
            mask: bool broadcastable to (B, H, Tq, Tk), True = may attend, or None.
            is_causal: causal attention without an explicit mask (mask must be None).

        Returns:
            (B, Tq, D).
        """
        p = self.attn_dropout if self.training else 0.0
        out = scaled_dot_product_attention(q, k, v, mask, dropout_p=p, is_causal=is_causal)
        return self._merge(out)

    def attend_with_weights(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference-path `attend` that also returns the (B, H, Tq, Tk) attention weights."""
        p = self.attn_dropout if self.training else 0.0
        out, weights = reference_attention(q, k, v, mask, dropout_p=p)
        return self._merge(out), weights

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, *, is_causal: bool = False
    ) -> torch.Tensor:
        """Self-attention over all positions of x.

        Args:
            x: (B, L, D) input.
            mask: bool broadcastable to (B, H, L, L), True = may attend, or None.
            is_causal: causal attention without an explicit mask.

        Returns:
            (B, L, D).
        """
        q, k, v = self.project_qkv(x)
        return self.attend(q, k, v, mask, is_causal=is_causal)
