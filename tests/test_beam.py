"""Beam search: K=1 is greedy, batching changes nothing, scores are the full decoder's
length-normalised log-probs, a beam as wide as a tiny vocabulary is exact, limits hold."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from tiny import BOS, EOS, PAD, random_sources, tiny_model

from transformer.decoding.beam import Hypothesis, beam_search, gnmt_penalty
from transformer.decoding.greedy import greedy_search, max_output_lengths
from transformer.model import DecoderCache, Seq2SeqTransformer


def full_decoder_score(
    model: Seq2SeqTransformer, src: torch.Tensor, tokens: list[int], alpha: float
) -> float:
    """log p(tokens + EOS | src) from one causal pass of `decode`, divided by lp(len + 1)."""
    with torch.no_grad():
        logits = model.decode(torch.tensor([[BOS, *tokens]]), model.encode(src), src)[0]
    lprobs = F.log_softmax(logits.float(), dim=-1)  # (T, V)
    total = lprobs[torch.arange(len(tokens) + 1), torch.tensor([*tokens, EOS])].sum()
    return float(total) / gnmt_penalty(len(tokens) + 1, alpha)


def sentence(src: torch.Tensor, row: int) -> torch.Tensor:
    """Row `row` of a padded batch, without its padding: (1, S_row)."""
    return src[row : row + 1, : int((src[row] != PAD).sum())]


def search(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    k: int,
    alpha: float = 0.6,
    a: float = 1.0,
    b: int = 4,
    n_best: int = 1,
) -> list[list[Hypothesis]]:
    return beam_search(
        model, src, beam_size=k, length_penalty=alpha, max_len_a=a, max_len_b=b, n_best=n_best
    )


def test_beam_size_one_equals_greedy(trained_model: Seq2SeqTransformer) -> None:
    src = random_sources([4, 8, 1, 6, 3])
    beams = search(trained_model, src, k=1)
    assert [h[0].tokens for h in beams] == greedy_search(
        trained_model, src, max_len_a=1.0, max_len_b=4
    )


def test_batched_beam_equals_one_sentence_at_a_time(trained_model: Seq2SeqTransformer) -> None:
    src = random_sources([2, 8, 5, 1, 7])
    batched = search(trained_model, src, k=4, n_best=4)
    for row, hyps in enumerate(batched):
        alone = search(trained_model, sentence(src, row), k=4, n_best=4)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        torch.testing.assert_close(
            [h.score for h in hyps], [h.score for h in alone], atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_scores_are_the_full_decoders_normalised_log_probs(
    trained_model: Seq2SeqTransformer,
    alpha: float,
) -> None:
    src = random_sources([3, 7, 5])
    for row, hyps in enumerate(search(trained_model, src, k=4, alpha=alpha, n_best=4)):
        assert len(hyps) == 4 and len({tuple(h.tokens) for h in hyps}) == 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        expected = [
            full_decoder_score(trained_model, sentence(src, row), h.tokens, alpha) for h in hyps
        ]
        torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_as_wide_as_the_vocabulary_finds_the_exhaustive_best(alpha: float) -> None:
    """V = 5 leaves two ids besides PAD/BOS/EOS, and outputs of 1 or 2 pieces + EOS: with K = V
    every live prefix stays in the beam (2, then 4 <= K), and an EOS candidate that misses the
    top K can only be the worse of two same-length ones, so beam search is exact here."""
    vocab, free = 5, [1, 4]
    model = tiny_model(vocab=vocab)
    src = torch.tensor([[4, 1, 4, EOS], [1, EOS, PAD, PAD], [4, 4, 4, EOS]])
    beams = beam_search(
        model, src, beam_size=vocab, length_penalty=alpha, max_len_a=0.0, max_len_b=2, n_best=vocab
    )
    outputs = [list(p) for n in (1, 2) for p in itertools.product(free, repeat=n)]
    for row, hyps in enumerate(beams):
        scored = [(full_decoder_score(model, sentence(src, row), o, alpha), o) for o in outputs]
        best_score, best = max(scored)
        assert hyps[0].tokens == best
        assert math.isclose(hyps[0].score, best_score, rel_tol=1e-4, abs_tol=1e-5)


def test_output_stops_at_the_length_limit() -> None:
    model = tiny_model(tie_output=False)
    with torch.no_grad():
        model.output_proj.bias[EOS] = -1e4  # EOS only when forced
    src = random_sources([1, 5, 9])
    limits = max_output_lengths(src, PAD, 0.5, 2, 64).tolist()
    for hyps, limit in zip(search(model, src, k=3, a=0.5, b=2, n_best=3), limits, strict=True):
        assert [len(h.tokens) for h in hyps] == [limit] * 3


def test_output_is_never_empty() -> None:
    model = tiny_model(tie_output=False)
    with torch.no_grad():
        model.output_proj.bias[EOS] = 1e4  # EOS whenever it is allowed
    src = random_sources([1, 5, 9])
    assert [len(h) for h in greedy_search(model, src, max_len_a=1.0, max_len_b=4)] == [1, 1, 1]
    assert [[len(h.tokens) for h in hyps] for hyps in search(model, src, k=3, n_best=3)] == [
        [1, 1, 1]
    ] * 3


def test_impossible_continuations_give_an_empty_hypothesis() -> None:
    """Every non-special id at -inf: no candidate is finite at step 0 (EOS is banned there)."""
    model = tiny_model(tie_output=False)
    with torch.no_grad():
        model.output_proj.bias[EOS + 1 :] = -math.inf
        model.output_proj.bias[1] = -math.inf  # UNK
    hyps = search(model, random_sources([1, 5]), k=3, n_best=3)
    assert [[(h.tokens, h.score) for h in sentence] for sentence in hyps] == [[([], -math.inf)]] * 2


def test_keeping_cross_attention_rows_changes_nothing(
    trained_model: Seq2SeqTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps that only reorder beams within sentences skip copying cross K/V: same results."""
    src = random_sources([2, 8, 5, 1, 7])
    fast = search(trained_model, src, k=4, n_best=4)
    reorder = DecoderCache.reorder
    monkeypatch.setattr(DecoderCache, "reorder", lambda cache, index, **_: reorder(cache, index))
    full = search(trained_model, src, k=4, n_best=4)
    assert [[(h.tokens, h.score) for h in hyps] for hyps in fast] == [
        [(h.tokens, h.score) for h in hyps] for hyps in full
    ]
