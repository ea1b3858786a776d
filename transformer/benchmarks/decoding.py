"""Decoding speed and BLEU: our beam search against CTranslate2 (float32, int8_float32, int8).

In one process, a test split is decoded with the same beam settings and the same number of
intra-op threads (CTranslate2: inter_threads=1) by each engine, after a warm-up on a few
sentences; each prints sentences/s, its ratio to ours, and cased BLEU. The checkpoint is
exported once at float32; CTranslate2 converts the weights to each compute type at load.
`--base` adds an untrained model of the paper's base size (d_model 512, 6+6 layers) with the
checkpoint's vocabulary, timed on `--base-sentences` sentences (its BLEU means nothing).

    python scripts/decoding_benchmark.py RUN_OR_CKPT --threads 2 --base
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from transformer.checkpoint import FORMAT_VERSION
from transformer.config import DecodeConfig, ModelConfig, TrainRunConfig
from transformer.data.special import PAD_ID
from transformer.data.tokenizer import Tokenizer
from transformer.decoding.translator import Translator
from transformer.evaluation.evaluate import split_name, split_texts
from transformer.evaluation.metrics import compute_metrics
from transformer.export.ct2_translator import CT2Translator
from transformer.export.folder import export_checkpoint
from transformer.loading import load_model
from transformer.model import Seq2SeqTransformer, build_model
from transformer.run.lookup import resolve_checkpoint
from transformer.runtime import cpu_name

CPU = torch.device("cpu")
COMPUTE_TYPES = ("float32", "int8_float32", "int8")


@dataclasses.dataclass
class Figure:
    """One engine's result on one model."""

    model: str
    engine: str
    sentences_per_second: float
    bleu: float
    pieces: float  # mean output length in target pieces: equal work needs equal lengths


def _timed(translate, sources: list[str]) -> tuple[list[str], float]:  # noqa: ANN001
    translate(sources[:20])  # warm-up: allocations, OpenMP threads, CTranslate2's conversion
    start = time.perf_counter()
    hyps = translate(sources)
    return hyps, len(sources) / (time.perf_counter() - start)


def _run_model(
    label: str,
    model: Seq2SeqTransformer,
    tokenizer: Tokenizer,
    cfg: TrainRunConfig,
    decode: DecodeConfig,
    texts: tuple[list[str], list[str]],
    threads: int,
) -> list[Figure]:
    """Export `model` once, then time ours and each compute type on the same sentences."""
    sources, refs = texts
    figures = []
    hyps, speed = _timed(Translator(model, tokenizer, decode, CPU).translate, sources)
    figures.append(
        Figure(label, "ours", speed, compute_metrics(hyps, refs).bleu, _mean(hyps, tokenizer))
    )
    _print(figures[-1], figures[0])
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pt"
        torch.save(_checkpoint(model, tokenizer, cfg), ckpt)
        export_checkpoint(ckpt, Path(tmp) / "ct2", "float32")
        for compute_type in COMPUTE_TYPES:
            translator = CT2Translator(
                Path(tmp) / "ct2", tokenizer, decode, max_positions=cfg.model.max_positions,
                device=CPU, compute_type=compute_type, threads=threads,
            )  # fmt: skip
            hyps, speed = _timed(translator.translate, sources)
            bleu, pieces = compute_metrics(hyps, refs).bleu, _mean(hyps, tokenizer)
            figures.append(Figure(label, f"ctranslate2 {compute_type}", speed, bleu, pieces))
            _print(figures[-1], figures[0])
    return figures


def _checkpoint(model: Seq2SeqTransformer, tokenizer: Tokenizer, cfg: TrainRunConfig) -> dict:
    return {
        "model": model.state_dict(),
        "config": dataclasses.asdict(cfg),
        "tokenizer": tokenizer.state_dict(),
        "format_version": FORMAT_VERSION,
    }


def _mean(hyps: list[str], tokenizer: Tokenizer) -> float:
    return sum(map(len, tokenizer.encode_tgt(hyps))) / max(len(hyps), 1)


def _print(figure: Figure, ours: Figure) -> None:
    ratio = figure.sentences_per_second / ours.sentences_per_second
    print(
        f"{figure.model:<8} {figure.engine:<26} {figure.sentences_per_second:8.1f} sent/s "
        f"{ratio:5.2f}x ours   BLEU {figure.bleu:6.2f}   {figure.pieces:5.1f} pieces/sentence",
        flush=True,
    )


def _base_model(
    cfg: TrainRunConfig, tokenizer: Tokenizer
) -> tuple[Seq2SeqTransformer, TrainRunConfig]:
    """An untrained model of the paper's base size with the checkpoint's vocabulary."""
    base = ModelConfig(max_positions=cfg.model.max_positions, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(base, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    return model.eval(), dataclasses.replace(cfg, model=base)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a trained checkpoint or run folder")
    parser.add_argument("--split", default="test", help="default: the corpus' test split")
    parser.add_argument("--multi30k-dir", help="Multi30k mirror folder (overrides the stored one)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads, all engines")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--length-penalty", type=float, default=0.6, help="GNMT / length^alpha")
    parser.add_argument("--max-sentences", type=int, default=0, help="0: the whole split")
    parser.add_argument("--base", action="store_true", help="also time an untrained base model")
    parser.add_argument("--base-sentences", type=int, default=200)
    return parser


def run(argv: list[str] | None = None) -> int:
    """Time our decoder and CTranslate2 on a split; print the figures."""
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_model(resolve_checkpoint(args.checkpoint), device="cpu")
    assert isinstance(loaded.model, Seq2SeqTransformer)
    cfg = loaded.cfg
    data = cfg.data
    if args.multi30k_dir:
        data = dataclasses.replace(data, multi30k_dir=args.multi30k_dir)
    sources, refs = split_texts(data, args.split)
    if args.max_sentences:
        sources, refs = sources[: args.max_sentences], refs[: args.max_sentences]
    decode = dataclasses.replace(
        cfg.decode, beam_size=args.beam_size, length_penalty=args.length_penalty, n_best=1
    )
    print(
        f"{split_name(data, args.split)}: {len(sources)} sentences, beam {decode.beam_size}, "
        f"length penalty {decode.length_penalty} (ours GNMT, CTranslate2 length^alpha), "
        f"{cpu_name()}, {args.threads} threads each\n{loaded.source}",
        flush=True,
    )
    texts = (sources, refs)
    _run_model("recipe", loaded.model, loaded.tokenizer, cfg, decode, texts, args.threads)
    if args.base:
        model, base_cfg = _base_model(cfg, loaded.tokenizer)
        n = args.base_sentences
        _run_model(
            "base", model, loaded.tokenizer, base_cfg, decode, (sources[:n], refs[:n]), args.threads
        )
    return 0
