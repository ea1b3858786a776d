"""Feed-forward block, residual + layer norm placement, encoder layer and decoder layer.

Paper section 3.1/3.3: each sublayer is LayerNorm(x + Dropout(Sublayer(x))) ("post" norm). The
"pre" placement computes x + Dropout(Sublayer(LayerNorm(x))) and needs a final LayerNorm on each
stack (added by the stacks in `transformer.py`).
"""

from __future__ import annotations

import torch
from torch import nn

from transformer.model.attention import MultiHeadAttention
from transformer.model.cache import LayerCache

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class FeedForward(nn.Module):
    """Position-wise FFN(x) = W2 dropout(act(W1 x + b1)) + b2 (paper eq. 2).

    Args:
        d_model: D.
        d_ff: hidden width F.
        activation: "relu" (paper) or "gelu".
        ff_dropout: dropout after the activation.
    """

    def __init__(
        self, d_model: int, d_ff: int, *, activation: str = "relu", ff_dropout: float = 0.0
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not one of {', '.join(_ACTIVATIONS)}.")
        self.fc1 = nn.Linear(d_model, d_ff)
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(ff_dropout)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D)."""
        h = self.dropout(self.activation(self.fc1(x)))  # (B, L, F)
        return self.fc2(h)  # (B, L, D)


class _ResidualLayer(nn.Module):
    """Shared residual/norm placement for the encoder and decoder layers."""

    def __init__(self, dropout: float, norm_first: bool) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.dropout = nn.Dropout(dropout)

    def _sublayer_input(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        """What the sublayer sees: LayerNorm(x) for pre-norm, x for post-norm."""
        return norm(x) if self.norm_first else x

    def _add(self, x: torch.Tensor, y: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        """Residual add of the dropped-out sublayer output y, then LayerNorm for post-norm."""
        x = x + self.dropout(y)
        return x if self.norm_first else norm(x)

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self._add(x, self.ff(self._sublayer_input(x, self.ff_norm)), self.ff_norm)


class EncoderLayer(_ResidualLayer):
    """Self-attention and feed-forward sublayers.

    Args:
        d_model: D.
        n_heads: H.
        d_ff: F.
        dropout: residual dropout (P_drop).
        attn_dropout: dropout on attention weights.
        ff_dropout: dropout after the feed-forward activation.
        activation: "relu" or "gelu".
        norm_first: True for pre-norm, False for the paper's post-norm.
        layer_norm_eps: LayerNorm epsilon.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__(dropout, norm_first)
        self.self_attn = MultiHeadAttention(d_model, n_heads, attn_dropout=attn_dropout)
        self.self_attn_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.ff = FeedForward(d_model, d_ff, activation=activation, ff_dropout=ff_dropout)
        self.ff_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor | None) -> torch.Tensor:
        """Encode.

        Args:
            x: (B, S, D) input.
            src_mask: (B, 1, 1, S) bool key padding mask (True = real token), or None.

        Returns:
            (B, S, D).
        """
        h = self._sublayer_input(x, self.self_attn_norm)
        x = self._add(x, self.self_attn(h, src_mask), self.self_attn_norm)
        return self._ff_block(x)


class DecoderLayer(_ResidualLayer):
    """Causal self-attention, cross-attention over the memory, and feed-forward sublayers.

    `forward` processes all target positions; `step` processes one new position with the cache;
    `forward_with_cross_weights` is `forward` with reference cross-attention returning weights.
    Arguments as for EncoderLayer.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__(dropout, norm_first)
        self.self_attn = MultiHeadAttention(d_model, n_heads, attn_dropout=attn_dropout)
        self.self_attn_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attn_dropout=attn_dropout)
        self.cross_attn_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.ff = FeedForward(d_model, d_ff, activation=activation, ff_dropout=ff_dropout)
        self.ff_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)

    def _cross_block(
        self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, src_mask: torch.Tensor | None
    ) -> torch.Tensor:
        q = self.cross_attn.project_query(self._sublayer_input(x, self.cross_attn_norm))
        return self._add(x, self.cross_attn.attend(q, k, v, src_mask), self.cross_attn_norm)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None,
        src_mask: torch.Tensor | None,
        *,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Decode all target positions.

        Args:
            x: (B, T, D) target-side input.
            memory: (B, S, D) encoder output.
            tgt_mask: (B, 1, T, T) bool causal+padding mask, or None with is_causal=True.
            src_mask: (B, 1, 1, S) bool source padding mask, or None.
            is_causal: use SDPA's built-in causal mask (tgt_mask must be None).

        Returns:
            (B, T, D).
        """
        h = self._sublayer_input(x, self.self_attn_norm)
        x = self._add(x, self.self_attn(h, tgt_mask, is_causal=is_causal), self.self_attn_norm)
        k, v = self.cross_attn.project_kv(memory)  # 2 x (B, H, S, Dh)
        x = self._cross_block(x, k, v, src_mask)
        return self._ff_block(x)

    def init_cache(self, memory: torch.Tensor) -> LayerCache:
        """Project the memory (B, S, D) to cross K/V once; empty self K/V (B, H, 0, Dh)."""
        k, v = self.cross_attn.project_kv(memory)  # 2 x (B, H, S, Dh)
        empty = k.new_zeros(k.size(0), k.size(1), 0, k.size(3))  # (B, H, 0, Dh)
        return LayerCache(empty, empty, k, v)

    def step(
        self, x: torch.Tensor, cache: LayerCache, src_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, LayerCache]:
        """Decode one new position given the cache.

        Args:
            x: (B, 1, D) input at the newest position.
            cache: this layer's cache with t previous positions.
            src_mask: (B, 1, 1, S) bool source padding mask, or None.

        Returns:
            (B, 1, D) output and the cache with t+1 self-attention positions.
        """
        h = self._sublayer_input(x, self.self_attn_norm)
        q, k, v = self.self_attn.project_qkv(h)  # 3 x (B, H, 1, Dh)
        k = torch.cat([cache.self_k, k], dim=2)  # (B, H, t+1, Dh)
        v = torch.cat([cache.self_v, v], dim=2)  # (B, H, t+1, Dh)
        # All t+1 cached positions precede or are the query: no mask needed.
        x = self._add(x, self.self_attn.attend(q, k, v), self.self_attn_norm)
        x = self._cross_block(x, cache.cross_k, cache.cross_v, src_mask)
        return self._ff_block(x), LayerCache(k, v, cache.cross_k, cache.cross_v)

    def forward_with_cross_weights(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor,
        src_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` on the reference attention path, also returning cross-attention weights.

        Returns:
            (B, T, D) output and (B, H, T, S) cross-attention weights.
        """
        h = self._sublayer_input(x, self.self_attn_norm)
        y, _ = self.self_attn.attend_with_weights(*self.self_attn.project_qkv(h), tgt_mask)
        x = self._add(x, y, self.self_attn_norm)
        k, v = self.cross_attn.project_kv(memory)  # 2 x (B, H, S, Dh)
        q = self.cross_attn.project_query(self._sublayer_input(x, self.cross_attn_norm))
        y, weights = self.cross_attn.attend_with_weights(q, k, v, src_mask)  # (B, H, T, S)
        x = self._add(x, y, self.cross_attn_norm)
        return self._ff_block(x), weights
