"""Greedy search: cached search equals recomputing every prefix, batching changes nothing,
length limits hold, and special ids agree with the tokenizer's."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import BOS, EOS, PAD, random_sources, tiny_model

from transformer.data import tokenizer as tok
from transformer.decoding import greedy
from transformer.decoding.greedy import greedy_search, max_output_lengths
from transformer.model import Seq2SeqTransformer


def reference_greedy(model: Seq2SeqTransformer, src: torch.Tensor, limit: int) -> list[int]:
    """One sentence (1, S), re-running the full causal decoder on the whole prefix each step."""
    with torch.no_grad():
        memory = model.encode(src)
        out = [BOS]
        for step in range(limit + 1):
            logits = model.decode(torch.tensor([out]), memory, src)[0, -1]  # (V,)
            logits[[PAD, BOS] if step else [PAD, BOS, EOS]] = -math.inf
            token = EOS if step == limit else int(logits.argmax())
            if token == EOS:
                break
            out.append(token)
    return out[1:]


def test_special_ids_match_the_tokenizer() -> None:
    assert (greedy.BOS_ID, greedy.EOS_ID) == (tok.BOS_ID, tok.EOS_ID)


def test_cached_greedy_equals_recomputing_each_prefix(trained_model: Seq2SeqTransformer) -> None:
    model = trained_model
    src = random_sources([5, 9, 2, 7])
    hyps = greedy_search(model, src, max_len_a=1.0, max_len_b=4)
    limits = max_output_lengths(src, PAD, 1.0, 4, 64).tolist()
    for row, hyp in enumerate(hyps):
        n = int((src[row] != PAD).sum())
        assert hyp == reference_greedy(model, src[row : row + 1, :n], limits[row])


def test_batched_greedy_equals_one_sentence_at_a_time(trained_model: Seq2SeqTransformer) -> None:
    model = trained_model
    src = random_sources([3, 11, 6, 1])
    batched = greedy_search(model, src, max_len_a=1.5, max_len_b=5)
    for row, hyp in enumerate(batched):
        n = int((src[row] != PAD).sum())
        alone = greedy_search(model, src[row : row + 1, :n], max_len_a=1.5, max_len_b=5)
        assert hyp == alone[0]
    assert all(PAD not in h and BOS not in h and EOS not in h for h in batched)
    assert len({len(h) for h in batched}) > 1  # sentences stop at different steps


def _never_eos(model: Seq2SeqTransformer) -> Seq2SeqTransformer:
    with torch.no_grad():
        model.output_proj.bias[EOS] = -1e4
    return model


@pytest.mark.parametrize(("a", "b"), [(0.5, 2), (0.0, 3), (1.2, 1)])
def test_output_stops_at_the_length_limit(a: float, b: int) -> None:
    model = _never_eos(tiny_model(tie_output=False))
    lengths = [1, 4, 7]
    hyps = greedy_search(model, random_sources(lengths), max_len_a=a, max_len_b=b)
    assert [len(h) for h in hyps] == [max(1, math.floor(a * (n + 1) + b)) for n in lengths]


def test_length_limit_is_capped_by_the_positional_table() -> None:
    model = _never_eos(tiny_model(max_positions=8, tie_output=False))
    hyps = greedy_search(model, random_sources([2, 6]), max_len_a=3.0, max_len_b=10)
    assert [len(h) for h in hyps] == [7, 7]
