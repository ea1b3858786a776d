"""Metrics: our scores are sacreBLEU's corpus scores on the same text, perfect output scores 100,
case matters to BLEU but not to the lowercased BLEU, and the signatures say so."""

from __future__ import annotations

import math

import pytest
import sacrebleu

from transformer.evaluation.metrics import compute_metrics, format_metrics

REFS = [
    "A man in a blue shirt is riding a bicycle down the street.",
    "Two dogs play in the snow.",
    "A woman sells vegetables at a market, smiling.",
]
HYPS = [
    "a man in a blue shirt rides a bike down the street.",
    "Two dogs are playing in snow.",
    "A woman is selling fruit at the market.",
]


def test_scores_equal_sacrebleus_corpus_scores() -> None:
    metrics = compute_metrics(HYPS, REFS)
    assert math.isclose(metrics.bleu, sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    lowercase = sacrebleu.corpus_bleu(HYPS, [REFS], lowercase=True).score
    assert math.isclose(metrics.bleu_lowercase, lowercase)
    assert math.isclose(metrics.chrf, sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert 0 < metrics.bleu < metrics.bleu_lowercase < 100  # "a man" vs "A man" costs cased BLEU


def test_perfect_output_scores_100() -> None:
    metrics = compute_metrics(REFS, REFS)
    assert metrics.bleu == pytest.approx(100.0)
    assert metrics.bleu_lowercase == pytest.approx(100.0)
    assert metrics.chrf == pytest.approx(100.0)


def test_only_lowercased_bleu_ignores_case() -> None:
    metrics = compute_metrics([r.upper() for r in REFS], REFS)
    assert metrics.bleu_lowercase == pytest.approx(100.0)
    assert metrics.bleu < 10.0


def test_signatures_name_case_and_tokenizer() -> None:
    metrics = compute_metrics(HYPS, REFS)
    assert "case:mixed" in metrics.bleu_signature and "tok:13a" in metrics.bleu_signature
    assert "case:lc" in metrics.bleu_lowercase_signature
    assert f"version:{sacrebleu.__version__}" in metrics.chrf_signature
    report = format_metrics(metrics)
    assert metrics.bleu_signature in report and "lowercased" in report
    assert f"{metrics.bleu:.2f}" in report


def test_misaligned_inputs_are_an_error() -> None:
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        compute_metrics(HYPS[:2], REFS)
