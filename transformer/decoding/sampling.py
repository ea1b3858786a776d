"""Random sampling for decoding: temperature, top-k and top-p (nucleus) filters, and a token
chooser that greedy search's loop runs with in place of argmax (batched, on the decoder cache).

With n samples per sentence, the source rows are repeated n times, `(B*N, S)` with row
`b*N + n` (the flattened layout beam search uses), and each row draws its own tokens from one
seeded `torch.Generator`, so a given seed reproduces the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """Sampling settings.

    Attributes:
        top_k: draw from the k most probable tokens only; 0 keeps all.
        top_p: draw from the smallest set of tokens whose probability reaches p; 1 keeps all.
        temperature: divides the logits before the filters (below 1 sharpens, above flattens).
        seed: seeds the generator, so one seed gives one output (0 to 2**32 - 1, the range
            CTranslate2 takes too).
    """

    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError(f"--top-k {self.top_k} must be >= 0 (0 keeps every token).")
        if not 0.0 < self.top_p <= 1.0:  # False for nan too
            raise ValueError(f"--top-p {self.top_p} must be in (0, 1].")
        if not (math.isfinite(self.temperature) and self.temperature > 0.0):
            raise ValueError(f"--temperature {self.temperature} must be a finite number > 0.")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed {self.seed} must be in 0 .. 2**32 - 1.")


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (N, V) with all but the k largest per row set to -inf (k=0: unchanged)."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = logits.topk(k, dim=-1).values[:, -1:]  # (N, 1)
    return logits.masked_fill(logits < kth, -math.inf)


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Logits (N, V) keeping, per row, the smallest set of most probable tokens whose total
    probability reaches p (at least one token); the others become -inf."""
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # (N, V) mass of the more probable tokens
    drop_sorted = before >= p  # the set already reached p without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, -math.inf)


def sampler(
    settings: Sampling, generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A chooser for `greedy_search`: logits (N, V) -> (N,) int64 drawn tokens."""

    def choose(logits: torch.Tensor) -> torch.Tensor:
        logits = logits / settings.temperature
        logits = filter_top_p(filter_top_k(logits, settings.top_k), settings.top_p)
        probs = logits.softmax(dim=-1)  # (N, V)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (N,)

    return choose
