"""Decoder cache for incremental decoding: growing self-attention K/V, cross K/V computed once."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LayerCache:
    """One decoder layer's cached projections.

    Attributes:
        self_k: (B, H, t, Dh) keys of the t target positions decoded so far.
        self_v: (B, H, t, Dh) their values.
        cross_k: (B, H, S, Dh) keys projected from the encoder memory (once per sentence).
        cross_v: (B, H, S, Dh) values projected from the encoder memory.
    """

    self_k: torch.Tensor
    self_v: torch.Tensor
    cross_k: torch.Tensor
    cross_v: torch.Tensor

    def reorder(self, index: torch.Tensor, *, same_sources: bool = False) -> LayerCache:
        """Select batch rows: index (B',) int64 -> LayerCache with batch B'.

        With same_sources, the cross K/V (equal on rows of one source) are kept as they are.
        """
        cross_k, cross_v = self.cross_k, self.cross_v
        if not same_sources:
            cross_k, cross_v = cross_k.index_select(0, index), cross_v.index_select(0, index)
        return LayerCache(
            self.self_k.index_select(0, index), self.self_v.index_select(0, index), cross_k, cross_v
        )


@dataclass
class DecoderCache:
    """Everything `Seq2SeqTransformer.decode_step` needs besides the newest token.

    Attributes:
        layers: one LayerCache per decoder layer.
        src_mask: (B, 1, 1, S) bool source padding mask, True = real token.
        step: number of target positions already decoded (position of the next token).
    """

    layers: list[LayerCache]
    src_mask: torch.Tensor
    step: int

    def reorder(self, index: torch.Tensor, *, same_sources: bool = False) -> DecoderCache:
        """Reorder or drop batch rows (beam search), index_select on the batch dim.

        Args:
            index: (B',) int64 rows of the current batch to keep, in their new order.
            same_sources: the caller's promise that row i of the result was taken from a row with
                the same source sentence as row i has now (beams reordered within each sentence,
                none dropped): the cross-attention K/V and the source mask, identical across a
                sentence's rows, are then kept without a copy (~5% of beam search's CPU time).

        Returns:
            A new DecoderCache with batch B' and the same step.
        """
        return DecoderCache(
            layers=[layer.reorder(index, same_sources=same_sources) for layer in self.layers],
            src_mask=self.src_mask if same_sources else self.src_mask.index_select(0, index),
            step=self.step,
        )
