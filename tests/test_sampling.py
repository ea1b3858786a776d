"""Sampling: top-k 1 is greedy search, a seed reproduces the output, the first token's observed
frequencies follow the model's (filtered, tempered) softmax, and top-p keeps the smallest set
of tokens whose probability reaches p."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from tiny import (
    BOS,
    CPU,
    EOS,
    PAD,
    SENTENCES,
    random_sources,
    tiny_assets,
    tiny_model,
    write_checkpoint,
)

from transformer.commands.translate import main as translate_main
from transformer.decoding.greedy import ban_special, greedy_search
from transformer.decoding.sampling import Sampling, filter_top_p, sampler
from transformer.decoding.translator import Translator


def _sample(model, src_ids: torch.Tensor, settings: Sampling, **limits: float) -> list:  # noqa: ANN001
    generator = torch.Generator().manual_seed(settings.seed)
    limits = {"max_len_a": 1.5, "max_len_b": 3, **limits}
    return greedy_search(model, src_ids, **limits, choose=sampler(settings, generator))


def test_top_k_1_is_greedy_search(trained_model: torch.nn.Module) -> None:
    src = random_sources([8, 3, 6, 1, 7, 5])
    greedy = greedy_search(trained_model, src, max_len_a=1.5, max_len_b=3)
    for temperature in (1.0, 5.0):  # one candidate: temperature cannot matter
        sampled = _sample(trained_model, src, Sampling(top_k=1, temperature=temperature, seed=7))
        assert sampled == greedy


def test_a_seed_reproduces_the_output(tiny_parallel_corpus: dict[str, Path]) -> None:
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)  # untrained: many choices
    decode = dataclasses.replace(cfg.decode, beam_size=3, n_best=3)

    def draw(seed: int) -> list[list[str]]:
        sampling = Sampling(top_p=0.95, temperature=1.2, seed=seed)
        translator = Translator(model, tokenizer, decode, CPU, sampling=sampling)
        return [[text for text, _ in samples] for samples in translator.translate_nbest(SENTENCES)]

    first = draw(3)
    assert draw(3) == first
    assert draw(4) != first
    assert all(len(samples) == 3 for samples in first)
    assert len({text for samples in first for text in samples}) > len(SENTENCES)


def _reference_distribution(logits: list[float], top_k: int, top_p: float) -> torch.Tensor:
    """What sampling should draw from, written out without the project's filters: the softmax,
    the k most probable tokens kept (0: all), then of those the smallest set whose renormalized
    probability reaches p, renormalized again."""
    finite = [i for i, x in enumerate(logits) if x != -math.inf]
    top = max(logits[i] for i in finite)
    weights = {i: math.exp(logits[i] - top) for i in finite}
    kept = sorted(weights, key=lambda i: -weights[i])[: top_k or len(weights)]
    total = sum(weights[i] for i in kept)
    probs = [weights[i] / total if i in kept else 0.0 for i in range(len(logits))]
    kept = _smallest_reaching(probs, top_p)
    total = sum(probs[i] for i in kept)
    return torch.tensor([probs[i] / total if i in kept else 0.0 for i in range(len(logits))])


@pytest.mark.parametrize(
    "settings",
    [
        Sampling(),
        Sampling(top_k=5, temperature=0.7),
        Sampling(top_p=0.6),
        Sampling(top_k=8, top_p=0.7),
    ],
)
def test_first_token_frequencies_match_the_softmax(settings: Sampling) -> None:
    torch.manual_seed(1)
    model = tiny_model()
    with torch.no_grad():  # spread the untrained model's distribution over many tokens
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    n = 10000
    src = random_sources([5]).repeat(n, 1)  # (n, S): one sentence, n draws
    with torch.no_grad():
        logits, _ = model.decode_step(
            torch.full((1, 1), BOS), model.init_cache(model.encode(src[:1]), src[:1])
        )  # (1, V)
    logits = ban_special(logits.float(), 0, PAD, BOS, EOS) / settings.temperature
    expected = _reference_distribution(logits[0].tolist(), settings.top_k, settings.top_p)
    first = [ids[0] for ids in _sample(model, src, settings, max_len_a=0.0, max_len_b=1)]
    observed = torch.bincount(torch.tensor(first), minlength=expected.numel()).double() / n
    sigma = (expected.double() * (1 - expected.double()) / n).sqrt()
    assert (observed - expected.double()).abs().le(5 * sigma + 1e-9).all(), (observed, expected)
    # The model spreads its mass (the filters then have something to cut); filtered-out tokens
    # have sigma 0, so a single draw of one fails the test.
    assert (logits.softmax(-1) > 0.02).sum() >= 3


def _smallest_reaching(probs: list[float], p: float) -> set[int]:
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return kept


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = [0.05, 0.5, 0.15, 0.3]  # most probable first: 1, 3, 2, 0
    logits = torch.tensor([probs]).log()
    for p, kept in ((0.49, {1}), (0.79, {1, 3}), (0.81, {1, 3, 2}), (1.0, {0, 1, 2, 3})):
        assert set(filter_top_p(logits, p).isfinite().nonzero()[:, 1].tolist()) == kept
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        logits = torch.randn(1, 12, generator=generator) * 2
        p = float(torch.rand(1, generator=generator))
        kept = set(filter_top_p(logits, p).isfinite().nonzero()[:, 1].tolist())
        assert kept == _smallest_reaching(logits.softmax(-1)[0].tolist(), p)


def test_translate_sample_prints_n_samples(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = write_checkpoint(tmp_path / "last.pt", *tiny_assets(tiny_parallel_corpus))
    argv = [str(ckpt), "--sample", "--n-best", "4", "--seed", "5", "--top-p", "0.9", "Dog."]
    assert translate_main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["0"] * 4
    assert all(-math.inf < float(line.split("\t")[1]) < 0 for line in lines)  # log-probabilities
    assert len({line.split("\t")[2] for line in lines}) > 1  # an untrained model: four draws
    assert translate_main(argv) == 0 and capsys.readouterr().out.splitlines() == lines
    assert translate_main([*argv[:-1], "--temperature", "0", "Dog."]) == 2
    assert "--temperature 0.0 must be a finite number > 0" in capsys.readouterr().err
