"""Several models decoded as one: the next-token distribution is the mean of theirs.

`Ensemble` offers what greedy and beam search call on a model (`encode`, `init_cache`,
`decode_step`, `pad_id`, `max_positions`), so both searches run on it unchanged. Each member
keeps its own encoder memory and decoder cache; a step averages the members' probabilities
(fairseq's ensemble: log of the mean, not the mean of the logs) and returns them as log-probs,
which the searches treat as logits (log_softmax leaves log-probs unchanged). The members may
differ in size and depth; they must share one vocabulary, which the caller checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from transformer.model import DecoderCache, Seq2SeqTransformer


@dataclass
class EnsembleCache:
    """One DecoderCache per member, reordered together."""

    caches: list[DecoderCache]

    def reorder(self, index: torch.Tensor, *, same_sources: bool = False) -> EnsembleCache:
        """See `DecoderCache.reorder`; index (B',) int64 applies to every member."""
        return EnsembleCache([c.reorder(index, same_sources=same_sources) for c in self.caches])


class Ensemble(nn.Module):
    """Models with one vocabulary, decoded together.

    Args:
        models: the members (at least one), on one device.

    Raises:
        ValueError: no models, or members with different vocabulary sizes or padding ids.
    """

    def __init__(self, models: list[Seq2SeqTransformer]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model.")
        first = models[0]
        for i, model in enumerate(models[1:], start=2):
            if (model.tgt_vocab_size, model.pad_id) != (first.tgt_vocab_size, first.pad_id):
                raise ValueError(
                    f"ensemble member {i} has a target vocabulary of {model.tgt_vocab_size} "
                    f"(pad id {model.pad_id}), member 1 of {first.tgt_vocab_size} "
                    f"(pad id {first.pad_id}); the members must share one vocabulary."
                )
        self.members = nn.ModuleList(models)
        self.pad_id = first.pad_id

    @property
    def max_positions(self) -> int:
        """The longest sequence every member covers."""
        return min(model.max_positions for model in self._models())

    def encode(self, src_ids: torch.Tensor) -> list[torch.Tensor]:
        """Source ids (B, S) -> one memory (B, S, D_m) per member."""
        return [model.encode(src_ids) for model in self._models()]

    def init_cache(self, memory: list[torch.Tensor], src_ids: torch.Tensor) -> EnsembleCache:
        """Each member's cache at step 0, from its own memory."""
        return EnsembleCache(
            [model.init_cache(m, src_ids) for model, m in zip(self._models(), memory, strict=True)]
        )

    def decode_step(
        self, tgt_ids: torch.Tensor, cache: EnsembleCache
    ) -> tuple[torch.Tensor, EnsembleCache]:
        """Decode one position with every member.

        Args:
            tgt_ids: (B, 1) int64 newest target token.
            cache: the EnsembleCache from init_cache or the previous step.

        Returns:
            (B, V) log of the members' mean next-token probabilities, and the grown cache.
        """
        lprobs, caches = [], []
        for model, member_cache in zip(self._models(), cache.caches, strict=True):
            logits, member_cache = model.decode_step(tgt_ids, member_cache)  # (B, V)
            lprobs.append(F.log_softmax(logits.float(), dim=-1))
            caches.append(member_cache)
        stacked = torch.stack(lprobs)  # (M, B, V)
        mean = torch.logsumexp(stacked, dim=0) - math.log(len(lprobs))  # (B, V)
        return mean, EnsembleCache(caches)

    def _models(self) -> list[Seq2SeqTransformer]:
        return list(self.members)  # type: ignore[arg-type]
