"""Batched beam search with a GNMT length penalty on a flattened B*K batch.

Layout: the K beams of the sentences still running are flattened into rows, row b*K + k is beam k
of running sentence b; the model and its cache only ever see (B*K, ...) tensors, and each step
makes one `cache.reorder` call that both follows the surviving beams and drops finished sentences.
Step 0 runs one row per sentence (all K beams would be copies of BOS); its reorder fans out to K.

A step (fairseq's scheme): every beam proposes V continuations, scored by the sum of log-probs;
the best 2K of the K*V candidates of a sentence are taken; an EOS candidate among the first K of
those ends a hypothesis (it is stored with its length-normalised score), and the best K non-EOS
candidates become the next beams. Scores are sums of log-probs; hypotheses are ranked by
score / lp(len) with lp(len) = ((5 + len) / 6) ** alpha (Wu et al., 2016), len = pieces + EOS.

Stopping: a sentence is done once it has K finished hypotheses (fairseq's criterion: a longer
hypothesis that the length penalty would have favoured may be missed), or when it reaches its
length limit (EOS is forced at step max_len, see `greedy.max_output_lengths`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from transformer.data.special import BOS_ID, EOS_ID
from transformer.decoding.ensemble import Ensemble, EnsembleCache
from transformer.decoding.greedy import ban_special, max_output_lengths
from transformer.model import DecoderCache, Seq2SeqTransformer


@dataclass
class Hypothesis:
    """A finished translation: target ids without BOS/EOS, and its length-normalised score."""

    tokens: list[int]
    score: float  # sum of log-probs (EOS included) / lp(len)


def gnmt_penalty(length: int, alpha: float) -> float:
    """GNMT lp(len) = ((5 + len) / 6) ** alpha; 1 when alpha is 0."""
    return ((5.0 + length) / 6.0) ** alpha


@dataclass
class _Beams:
    """The running part of the search; A sentences still running, K beams each."""

    sents: torch.Tensor  # (A,) index of each running sentence in the input batch
    limits: torch.Tensor  # (A,) max output pieces
    scores: torch.Tensor  # (A, K) summed log-probs of each beam (K = 1 at step 0)
    history: torch.Tensor  # (A*K, t) ids generated so far
    last: torch.Tensor  # (A*K, 1) newest id (BOS at step 0)
    cache: DecoderCache | EnsembleCache


@torch.inference_mode()
def beam_search(
    model: Seq2SeqTransformer | Ensemble,
    src_ids: torch.Tensor,
    *,
    beam_size: int,
    length_penalty: float,
    max_len_a: float,
    max_len_b: int,
    n_best: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> list[list[Hypothesis]]:
    """Beam search for a batch of sentences at once.

    Args:
        model: the seq2seq model or an Ensemble (eval mode is the caller's choice).
        src_ids: (B, S) int64 source ids (pieces + EOS, padded with model.pad_id).
        beam_size: K.
        length_penalty: GNMT alpha; 0 ranks by summed log-probs.
        max_len_a: output length limit a * |src| + b.
        max_len_b: the b.
        n_best: hypotheses returned per sentence (<= K).
        bos_id: id that starts every target.
        eos_id: id that ends it.

    Returns:
        Per sentence, in input order, its n_best hypotheses, best first (at least one: an empty
        hypothesis scored -inf when no candidate had a finite score).
    """
    k = beam_size
    finished: list[list[Hypothesis]] = [[] for _ in range(src_ids.size(0))]
    n_finished = torch.zeros(src_ids.size(0), dtype=torch.long, device=src_ids.device)  # (B,)
    beams = _start(model, src_ids, max_len_a, max_len_b, bos_id)
    step = 0
    while beams.sents.numel() > 0:
        logits, beams.cache = model.decode_step(beams.last, beams.cache)  # (A*K, V)
        lprobs = _log_probs(logits, beams.limits, step, model.pad_id, bos_id, eos_id)
        cand = (beams.scores.view(-1, 1) + lprobs).view(beams.sents.numel(), -1)  # (A, K*V)
        top_scores, top_idx = cand.topk(min(2 * k, cand.size(1)), dim=1)  # (A, 2K)
        origin, tokens = top_idx // lprobs.size(1), top_idx % lprobs.size(1)  # (A, 2K)
        is_eos = tokens == eos_id  # (A, 2K)
        ended = is_eos & torch.isfinite(top_scores)
        ended[:, k:] = False  # only EOS among the best K candidates ends a hypothesis
        _collect(beams, ended, top_scores, origin, step, length_penalty, finished)
        n_finished.index_add_(0, beams.sents, ended.sum(dim=1))
        open_scores = top_scores.masked_fill(is_eos, -math.inf)  # (A, 2K) EOS cannot go on
        beams = _advance(beams, open_scores, origin, tokens, n_finished, step, k)
        step += 1
    return [_best(hyps, n_best) for hyps in finished]


def _best(hyps: list[Hypothesis], n_best: int) -> list[Hypothesis]:
    """The n_best of a sentence's hypotheses, or an empty one (score -inf) if it has none: when
    every candidate is -inf (e.g. a degenerate vocabulary), the search ends with nothing."""
    return sorted(hyps, key=lambda h: -h.score)[:n_best] or [Hypothesis(tokens=[], score=-math.inf)]


def _start(
    model: Seq2SeqTransformer | Ensemble,
    src_ids: torch.Tensor,
    max_len_a: float,
    max_len_b: int,
    bos_id: int,
) -> _Beams:
    """Encode once; one beam per sentence (BOS, score 0) until the first step fans out."""
    batch, device = src_ids.size(0), src_ids.device
    limits = max_output_lengths(
        src_ids, model.pad_id, max_len_a, max_len_b, model.max_positions
    )  # (B,)
    return _Beams(
        sents=torch.arange(batch, device=device),
        limits=limits,
        scores=torch.zeros((batch, 1), device=device),  # (B, 1)
        history=torch.empty((batch, 0), dtype=torch.long, device=device),  # (B, 0)
        last=torch.full((batch, 1), bos_id, dtype=torch.long, device=device),  # (B, 1)
        cache=model.init_cache(model.encode(src_ids), src_ids),
    )


def _log_probs(
    logits: torch.Tensor,
    limits: torch.Tensor,
    step: int,
    pad_id: int,
    bos_id: int,
    eos_id: int,
) -> torch.Tensor:
    """Log-probs (A*K, V), special ids banned (see `ban_special`), only EOS at the limit."""
    lprobs = F.log_softmax(logits.float(), dim=-1)  # (A*K, V)
    lprobs = ban_special(lprobs, step, pad_id, bos_id, eos_id)
    at_limit = step >= limits  # (A,)
    if bool(at_limit.any()):
        rows = at_limit.repeat_interleave(lprobs.size(0) // limits.size(0))  # (A*K,)
        eos_lprobs = lprobs[rows, eos_id]
        lprobs[rows] = -math.inf
        lprobs[rows, eos_id] = eos_lprobs
    return lprobs


def _collect(
    beams: _Beams,
    ended: torch.Tensor,
    top_scores: torch.Tensor,
    origin: torch.Tensor,
    step: int,
    alpha: float,
    finished: list[list[Hypothesis]],
) -> None:
    """Store the hypotheses that chose EOS this step (ended: (A, 2K) bool)."""
    where = ended.nonzero()  # (N, 2) running-sentence index, candidate rank
    if where.numel() == 0:
        return
    sent, rank = where[:, 0], where[:, 1]
    rows = sent * beams.scores.size(1) + origin[sent, rank]  # (N,) rows of the flattened batch
    penalty = gnmt_penalty(step + 1, alpha)
    scores = (top_scores[sent, rank] / penalty).tolist()
    sents, histories = beams.sents[sent].tolist(), beams.history[rows].tolist()
    for s, tokens, score in zip(sents, histories, scores, strict=True):
        finished[s].append(Hypothesis(tokens=tokens, score=score))


def _advance(
    beams: _Beams,
    open_scores: torch.Tensor,
    origin: torch.Tensor,
    tokens: torch.Tensor,
    n_finished: torch.Tensor,
    step: int,
    k: int,
) -> _Beams:
    """Keep the best K non-EOS candidates (open_scores (A, 2K), EOS -inf); drop done sentences."""
    scores, pick = open_scores.topk(min(k, open_scores.size(1)), dim=1)  # (A, K)
    done = (
        (n_finished[beams.sents] >= k) | (step >= beams.limits) | ~torch.isfinite(scores).any(dim=1)
    )  # (A,)
    keep = (~done).nonzero().squeeze(1)  # (A',)
    origin, tokens = origin.gather(1, pick)[keep], tokens.gather(1, pick)[keep]  # (A', K)
    rows = (keep * beams.scores.size(1)).unsqueeze(1) + origin  # (A', K) rows of this step
    rows, tokens = rows.view(-1), tokens.reshape(-1, 1)  # (A'*K,), (A'*K, 1)
    # No sentence dropped and as many beams as before: rows only move among a sentence's beams.
    same_sources = keep.numel() == beams.sents.numel() and rows.numel() == beams.last.size(0)
    return _Beams(
        sents=beams.sents[keep],
        limits=beams.limits[keep],
        scores=scores[keep],
        history=torch.cat([beams.history[rows], tokens], dim=1),  # (A'*K, t+1)
        last=tokens,
        cache=beams.cache.reorder(rows, same_sources=same_sources),
    )
