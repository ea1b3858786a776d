"""Ensemble: one member decodes like the model alone; a step is the log of the members' mean
probabilities; beam scores are the ensemble's full-sequence log-probs, with members of
different sizes; members with different vocabularies are refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny import BOS, EOS, PAD, V, random_sources, tiny_model

from transformer.config import ModelConfig
from transformer.decoding.beam import beam_search, gnmt_penalty
from transformer.decoding.ensemble import Ensemble
from transformer.decoding.greedy import greedy_search
from transformer.model import Seq2SeqTransformer, build_model


def other_model(vocab: int = V) -> Seq2SeqTransformer:
    """A member of another shape than `tiny_model` (d_model 16, 1+3 layers), untrained."""
    cfg = ModelConfig(
        d_model=16, n_heads=4, n_encoder_layers=1, n_decoder_layers=3, d_ff=48, dropout=0.0
    )
    return build_model(cfg, vocab, vocab, PAD).eval()


def ensemble_score(
    models: list[Seq2SeqTransformer], src: torch.Tensor, tokens: list[int], alpha: float
) -> float:
    """log of the members' mean p(tokens + EOS | src), teacher-forced, divided by lp(len + 1)."""
    tgt_in, tgt_out = torch.tensor([[BOS, *tokens]]), torch.tensor([*tokens, EOS])
    with torch.no_grad():
        probs = [F.softmax(m.decode(tgt_in, m.encode(src), src)[0], dim=-1) for m in models]
    mean = torch.stack(probs).mean(dim=0)  # (T, V)
    total = mean[torch.arange(len(tokens) + 1), tgt_out].log().sum()
    return float(total) / gnmt_penalty(len(tokens) + 1, alpha)


def test_one_member_decodes_like_the_model(trained_model: Seq2SeqTransformer) -> None:
    src = random_sources([5, 8, 2, 6])
    alone, ensemble = trained_model, Ensemble([trained_model])
    for model in (alone, ensemble):  # same outputs and scores, greedy and beam
        assert greedy_search(model, src, max_len_a=1.0, max_len_b=4) == greedy_search(
            alone, src, max_len_a=1.0, max_len_b=4
        )
    kwargs = dict(beam_size=3, length_penalty=0.6, max_len_a=1.0, max_len_b=4, n_best=3)
    for got, want in zip(
        beam_search(ensemble, src, **kwargs), beam_search(alone, src, **kwargs), strict=True
    ):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


def test_a_step_is_the_log_of_the_members_mean_probabilities(
    trained_model: Seq2SeqTransformer,
) -> None:
    members = [trained_model, other_model()]
    ensemble = Ensemble(members)
    src = random_sources([4, 7])
    bos = torch.full((2, 1), BOS)
    with torch.no_grad():
        got, _ = ensemble.decode_step(bos, ensemble.init_cache(ensemble.encode(src), src))
        probs = [
            F.softmax(m.decode_step(bos, m.init_cache(m.encode(src), src))[0], dim=-1)
            for m in members
        ]
    assert torch.allclose(got.exp(), (probs[0] + probs[1]) / 2, atol=1e-6)
    assert not torch.allclose(probs[0], probs[1], atol=1e-3)  # the members do disagree


def test_beam_scores_are_the_ensembles_log_probs(trained_model: Seq2SeqTransformer) -> None:
    """Through every cache reorder of beam search, each member follows its own beams."""
    members = [trained_model, other_model()]
    src = random_sources([6, 3, 8])
    results = beam_search(
        Ensemble(members), src, beam_size=4, length_penalty=0.6, max_len_a=1.0, max_len_b=4,
        n_best=4,
    )  # fmt: skip
    for row, hyps in enumerate(results):
        sentence = src[row : row + 1, : int((src[row] != PAD).sum())]
        assert len(hyps) == 4
        for hyp in hyps:
            assert hyp.score == pytest.approx(
                ensemble_score(members, sentence, hyp.tokens, 0.6), abs=1e-4
            )


def test_members_must_share_a_vocabulary() -> None:
    with pytest.raises(ValueError, match="member 2 has a target vocabulary of 30"):
        Ensemble([tiny_model(), other_model(vocab=30)])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


def test_positions_are_the_shortest_members() -> None:
    ensemble = Ensemble([tiny_model(max_positions=64), tiny_model(max_positions=20)])
    assert ensemble.max_positions == 20
