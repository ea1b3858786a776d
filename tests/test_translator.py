"""Translator: text in and out in input order, batching and sorting change nothing, blank and
over-long inputs are handled, n-best lists and attention maps are consistent."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import pytest
import torch
from tiny import CPU, SENTENCES, tiny_assets

from transformer.config import TrainRunConfig
from transformer.data.special import BOS_ID, EOS_ID, PAD_ID
from transformer.data.tokenizer import Tokenizer
from transformer.decoding.greedy import greedy_search
from transformer.decoding.translator import Translator, budget_batches
from transformer.model import Seq2SeqTransformer


@pytest.fixture
def assets(
    tiny_parallel_corpus: dict[str, Path],
) -> tuple[Seq2SeqTransformer, Tokenizer, TrainRunConfig]:
    return tiny_assets(tiny_parallel_corpus)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_batched_and_sorted_equals_one_at_a_time(assets: tuple, beam_size: int) -> None:
    model, tokenizer, cfg = assets
    budget = 30 * beam_size  # a few sentences per batch
    decode = dataclasses.replace(cfg.decode, beam_size=beam_size, n_best=1, max_tokens=budget)
    translator = Translator(model, tokenizer, decode, CPU)
    encoded = translator._encode(SENTENCES)
    order = sorted(range(len(SENTENCES)), key=lambda i: -len(encoded[i]))
    batches = list(budget_batches(order, encoded, beam_size, budget))
    assert 1 < len(batches) < len(SENTENCES)
    for batch in batches:  # within budget, unless one sentence alone exceeds it
        assert len(batch) == 1 or len(batch) * (len(encoded[batch[0]]) + 1) * beam_size <= budget
    together = translator.translate(SENTENCES)
    assert together == [translator.translate([s])[0] for s in SENTENCES]
    assert len(set(together)) > 1


def test_greedy_translator_matches_greedy_search(assets: tuple) -> None:
    model, tokenizer, cfg = assets
    translator = Translator(
        model, tokenizer, dataclasses.replace(cfg.decode, beam_size=1, n_best=1), CPU
    )
    ids = [tokenizer.encode_src([s])[0] + [3] for s in SENTENCES]
    expected = [
        tokenizer.decode_tgt(
            greedy_search(model, torch.tensor([row]), max_len_a=1.0, max_len_b=5)[0]
        )
        for row in ids
    ]
    assert translator.translate(SENTENCES) == expected


def test_blank_inputs_give_empty_outputs(assets: tuple) -> None:
    model, tokenizer, cfg = assets
    translator = Translator(model, tokenizer, cfg.decode, CPU)
    out = translator.translate(["", SENTENCES[0], "   ", SENTENCES[1]])
    assert out[0] == "" and out[2] == ""
    assert out[1::2] == translator.translate(SENTENCES[:2])
    assert translator.translate([]) == []


def test_overlong_input_is_truncated_with_a_warning(
    assets: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    model, tokenizer, cfg = assets
    translator = Translator(model, tokenizer, cfg.decode, CPU)
    long_line = " ".join(["the big red dog runs on the street"] * 40)  # >> 64 positions
    with caplog.at_level(logging.WARNING):
        out = translator.translate([long_line, SENTENCES[1]])
    assert "truncated" in caplog.text
    assert len(out) == 2 and out[1] == translator.translate([SENTENCES[1]])[0]


def test_nbest_lists_are_sorted_and_start_with_the_best(assets: tuple) -> None:
    model, tokenizer, cfg = assets
    decode = dataclasses.replace(cfg.decode, beam_size=4, n_best=3)
    translator = Translator(model, tokenizer, decode, CPU)
    nbest = translator.translate_nbest(SENTENCES)
    assert [len(h) for h in nbest] == [3] * len(SENTENCES)
    for hyps in nbest:
        scores = [score for _, score in hyps]
        assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
    assert [h[0][0] for h in nbest] == translator.translate(SENTENCES)


def test_impossible_continuations_translate_to_empty_outputs(assets: tuple) -> None:
    """All ids but PAD/BOS/EOS at -inf: beam search finishes no hypothesis; "" is the output."""
    model, tokenizer, cfg = assets
    possible = torch.zeros(model.tgt_vocab_size, dtype=torch.bool)
    possible[[PAD_ID, BOS_ID, EOS_ID]] = True
    model.output_proj.register_forward_hook(
        lambda module, inputs, logits: logits.masked_fill(~possible, -math.inf)
    )
    translator = Translator(model, tokenizer, dataclasses.replace(cfg.decode, n_best=2), CPU)
    assert translator.translate(SENTENCES[:2]) == ["", ""]
    assert translator.translate_nbest(SENTENCES[:1]) == [[("", -math.inf)]]


def test_training_mode_is_restored(assets: tuple) -> None:
    model, tokenizer, cfg = assets
    model.train()
    Translator(model, tokenizer, cfg.decode, CPU).translate(SENTENCES[:2])
    assert model.training


def test_attention_rows_are_distributions_over_the_source(assets: tuple) -> None:
    model, tokenizer, cfg = assets
    translator = Translator(model, tokenizer, cfg.decode, CPU)
    attention = translator.attention(SENTENCES[0], layer=0)
    assert attention.translation == translator.translate([SENTENCES[0]])[0]
    assert attention.src_pieces[:-1] == tokenizer.src_pieces(SENTENCES[0])
    assert attention.weights.shape == (len(attention.tgt_pieces), len(attention.src_pieces))
    torch.testing.assert_close(attention.weights.sum(dim=1), torch.ones(len(attention.tgt_pieces)))
