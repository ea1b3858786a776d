"""Batched greedy search with the decoder cache; also the length limit both searches share.

Output length: a sentence whose source row has |src| non-pad tokens (its pieces plus EOS) gets at
most max_len = floor(max_len_a * |src| + max_len_b) target pieces, capped so that the decoder's
positions stay inside the model's positional table; at step max_len EOS is forced. PAD and BOS
are never generated, nor EOS at step 0: a non-empty source gets a non-empty output (fairseq's
min_len=1; blank inputs are the Translator's business). Rows of finished sentences are dropped
from the batch (`cache.reorder`), so the cost of a step follows the sentences still running.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from transformer.data.special import BOS_ID, EOS_ID
from transformer.decoding.ensemble import Ensemble
from transformer.model import Seq2SeqTransformer


def max_output_lengths(
    src_ids: torch.Tensor, pad_id: int, max_len_a: float, max_len_b: int, max_positions: int
) -> torch.Tensor:
    """Per-sentence limit on generated pieces (EOS excluded).

    Args:
        src_ids: (B, S) int64 source ids, padded with pad_id.
        pad_id: padding id.
        max_len_a: the a of a * |src| + b.
        max_len_b: the b.
        max_positions: positions the decoder covers; BOS plus max_len pieces must fit.

    Returns:
        (B,) int64 limits, at least 1 and at most max_positions - 1.
    """
    src_lens = (src_ids != pad_id).sum(dim=1).double()  # (B,)
    limits = torch.floor(max_len_a * src_lens + max_len_b + 1e-6).long()
    return limits.clamp(min=1, max=max_positions - 1)


def ban_special(
    scores: torch.Tensor, step: int, pad_id: int, bos_id: int, eos_id: int
) -> torch.Tensor:
    """Scores (N, V) with PAD and BOS (and EOS at step 0) set to -inf, in place."""
    scores[:, pad_id] = -math.inf
    scores[:, bos_id] = -math.inf
    if step == 0:
        scores[:, eos_id] = -math.inf
    return scores


@torch.inference_mode()
def greedy_search(
    model: Seq2SeqTransformer | Ensemble,
    src_ids: torch.Tensor,
    *,
    max_len_a: float,
    max_len_b: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    choose: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[list[int]]:
    """Pick the most probable token at each step, for a batch of sentences at once.

    Args:
        model: the seq2seq model or an Ensemble (eval mode is the caller's choice).
        src_ids: (B, S) int64 source ids (pieces + EOS, padded with model.pad_id).
        max_len_a: output length limit a * |src| + b (see the module docstring).
        max_len_b: the b.
        bos_id: id that starts every target.
        eos_id: id that ends it.
        choose: picks the tokens (N,) from the logits (N, V) in place of argmax (sampling:
            `transformer.decoding.sampling.sampler`).

    Returns:
        One list of target ids per sentence, without BOS and EOS, in input order.
    """
    ids, _ = scored_greedy_search(
        model, src_ids, max_len_a=max_len_a, max_len_b=max_len_b, bos_id=bos_id,
        eos_id=eos_id, choose=choose, with_scores=False,
    )  # fmt: skip
    return ids


@torch.inference_mode()
def scored_greedy_search(
    model: Seq2SeqTransformer | Ensemble,
    src_ids: torch.Tensor,
    *,
    max_len_a: float,
    max_len_b: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    choose: Callable[[torch.Tensor], torch.Tensor] | None = None,
    with_scores: bool = True,
) -> tuple[list[list[int]], list[float]]:
    """`greedy_search`, with each output's log-probability under the model (EOS included; the
    probabilities exclude PAD and BOS, as the search does). Scores are 0.0 without_scores."""
    batch = src_ids.size(0)
    limits = max_output_lengths(
        src_ids, model.pad_id, max_len_a, max_len_b, model.max_positions
    )  # (B,)
    device = src_ids.device
    out = torch.full((batch, int(limits.max()) + 1), eos_id, dtype=torch.long, device=device)
    scores = torch.zeros(batch, dtype=torch.float64, device=device)  # (B,)
    cache = model.init_cache(model.encode(src_ids), src_ids)
    rows = torch.arange(batch, device=device)  # sentence of each running row
    tokens = torch.full((batch, 1), bos_id, dtype=torch.long, device=device)  # (B, 1)
    limits = limits.to(device)
    step = 0
    while rows.numel() > 0:
        logits, cache = model.decode_step(tokens, cache)  # (B', V)
        logits = ban_special(logits.float(), step, model.pad_id, bos_id, eos_id)  # (B', V)
        best = logits.argmax(dim=-1) if choose is None else choose(logits)  # (B',)
        best = torch.where(step >= limits[rows], torch.full_like(best, eos_id), best)
        if with_scores:
            scores[rows] += logits.log_softmax(dim=-1).gather(1, best[:, None])[:, 0].double()
        out[rows, step] = best  # out: (B, T)
        running = best != eos_id  # (B',)
        if not bool(running.all()):
            keep = running.nonzero().squeeze(1)  # (B'',)
            cache, rows, best = cache.reorder(keep), rows[keep], best[keep]
        tokens = best.unsqueeze(1)  # (B'', 1)
        step += 1
    return [_strip(seq, eos_id) for seq in out.tolist()], scores.tolist()


def _strip(seq: list[int], eos_id: int) -> list[int]:
    """The ids before the first EOS."""
    return seq[: seq.index(eos_id)] if eos_id in seq else seq
