"""Tiny models, tokenizers and checkpoints shared by the tests."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import torch

from transformer.checkpoint import FORMAT_VERSION, save_checkpoint
from transformer.config import (
    DataConfig,
    DecodeConfig,
    ModelConfig,
    OptimConfig,
    TokenizerConfig,
    TrainConfig,
    TrainRunConfig,
)
from transformer.data import tokenizer as tok
from transformer.data.tokenizer import Tokenizer, train_tokenizer
from transformer.model import Seq2SeqTransformer, build_model

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
ONE_THREAD = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
}  # environment for scripts run on a tiny model: faster, and kind to a busy machine

V = 24
PAD, BOS, EOS = tok.PAD_ID, tok.BOS_ID, tok.EOS_ID

SENTENCES = [
    "A man runs on the street.",
    "Dog.",
    "The big red cat sits on the green blue small park street.",
    "A woman walks.",
    "The small dog runs in the park with a cat.",
]


def tiny_model(
    max_positions: int = 64, tie_output: bool = True, vocab: int = V
) -> Seq2SeqTransformer:
    """An untrained 2+2-layer model (d_model 32, dropout 0) in eval mode, `vocab` ids per side."""
    cfg = ModelConfig(
        d_model=32,
        n_heads=2,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=64,
        dropout=0.0,
        max_positions=max_positions,
        tie_output=tie_output,
    )
    return build_model(cfg, vocab, vocab, PAD).eval()


def reversal_batch(n: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """src (n, S) pieces + EOS; tgt_in (n, T) BOS + reversed pieces; tgt_out reversed + EOS."""
    lens = torch.randint(1, max_len + 1, (n,))
    pos, rows = torch.arange(max_len + 1), torch.arange(n)
    pieces = torch.randint(4, V, (n, max_len + 1))
    src = torch.where(pos < lens[:, None], pieces, PAD)
    src[rows, lens] = EOS
    tgt_out = torch.where(
        pos < lens[:, None], pieces.gather(1, (lens[:, None] - 1 - pos).abs()), PAD
    )
    tgt_out[rows, lens] = EOS
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt_out[:, :-1]], dim=1)
    return src, tgt_in.masked_fill(tgt_in == EOS, PAD), tgt_out


def random_sources(lengths: list[int]) -> torch.Tensor:
    """(B, S) pieces drawn from the non-special ids, EOS-terminated, right-padded."""
    src = torch.full((len(lengths), max(lengths) + 1), PAD)
    for row, n in enumerate(lengths):
        src[row, :n] = torch.randint(4, V, (n,))
        src[row, n] = EOS
    return src


_WORDS_EN = (
    "a man woman dog cat runs walks sits on the red blue green big small street park".split()
)
_WORDS_XX = (
    "ein mann frau hund katze rennt geht sitzt auf der rot blau grun gross klein weg park".split()
)


def _make_pairs(n: int, rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(n):
        idx = [rng.randrange(len(_WORDS_EN)) for _ in range(rng.randint(2, 8))]
        src = " ".join(_WORDS_EN[i] for i in idx).capitalize() + "."
        tgt = " ".join(_WORDS_XX[i] for i in idx).capitalize() + "."
        pairs.append((src, tgt))
    return pairs


def write_tiny_parallel_corpus(folder: Path) -> dict[str, Path]:
    """Line-aligned en/de text files in `folder` for train (400 pairs), valid and test (40 each).

    The "German" side is a word-for-word substitution of the English side, so a tiny model can
    learn it. Keys: "train.en", "train.de", "valid.en", ..., and "dir" (the folder).
    """
    rng = random.Random(1234)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"dir": folder}
    for split, n in (("train", 400), ("valid", 40), ("test", 40)):
        pairs = _make_pairs(n, rng)
        for lang, column in (("en", 0), ("de", 1)):
            path = folder / f"{split}.{lang}"
            path.write_text("".join(p[column] + "\n" for p in pairs), encoding="utf-8")
            paths[f"{split}.{lang}"] = path
    return paths


def tiny_run_config(corpus_dir: Path) -> TrainRunConfig:
    """A tiny model over the `tiny_parallel_corpus` files (data.source=files, en -> de)."""
    path = str(corpus_dir / "{split}.{{lang}}")
    return TrainRunConfig(
        model=ModelConfig(
            d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=2, d_ff=64, dropout=0.0,
            max_positions=64,
        ),
        data=DataConfig(
            source="files", src_lang="en", tgt_lang="de", train_path=path.format(split="train"),
            valid_path=path.format(split="valid"), test_path=path.format(split="test"),
            max_tokens_per_side=60,
        ),
        tokenizer=TokenizerConfig(vocab_size=64),
        decode=DecodeConfig(beam_size=3, max_len_a=1.0, max_len_b=5, max_tokens=200),
    )  # fmt: skip


def tiny_assets(corpus: dict[str, Path]) -> tuple[Seq2SeqTransformer, Tokenizer, TrainRunConfig]:
    """An untrained tiny model, a SentencePiece tokenizer trained on the corpus, their config."""
    cfg = tiny_run_config(corpus["dir"])
    tokenizer = train_tokenizer(
        corpus["train.en"].read_text("utf-8").splitlines(),
        corpus["train.de"].read_text("utf-8").splitlines(),
        src_lang="en", tgt_lang="de", model_type="unigram", vocab_size=64, joint=True,
        character_coverage=1.0, input_sentence_size=0,
    )  # fmt: skip
    model = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD)
    return model.eval(), tokenizer, cfg


def write_checkpoint(
    path: Path, model: Seq2SeqTransformer, tokenizer: Tokenizer, cfg: TrainRunConfig
) -> Path:
    """A checkpoint in the documented format (no optimizer state: nothing was trained)."""
    state = {
        "model": model.state_dict(), "optimizer": None, "scheduler": None, "scaler": None,
        "step": 0, "epoch": 0, "sampler": None, "rng": None, "best_bleu": None,
        "bad_validations": 0, "config": dataclasses.asdict(cfg),
        "tokenizer": tokenizer.state_dict(), "format_version": FORMAT_VERSION,
    }  # fmt: skip
    save_checkpoint(path, state)
    return path


def tiny_train_config(corpus_dir: Path, run_dir: Path, **train: object) -> TrainRunConfig:
    """A tiny run on the generated corpus (`write_tiny_parallel_corpus`): 48 pairs, batches of ~96
    tokens, 2 micro-batches per update, dropout on, one thread, no test decode."""
    settings = dict(
        max_tokens=96, accum_steps=2, validate_every=5, log_every=1, valid_max_sentences=8,
        max_train_pairs=48, keep_last=2, device="cpu", cpu_threads=1, evaluate_test=False,
    )  # fmt: skip
    settings.update(train)
    return TrainRunConfig(
        model=ModelConfig(
            d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.1
        ),
        data=DataConfig(
            source="files",
            train_path=str(corpus_dir / "train.{lang}"),
            valid_path=str(corpus_dir / "valid.{lang}"),
            test_path=str(corpus_dir / "test.{lang}"),
            cache_dir=str(run_dir.parent / "cache"),
        ),
        tokenizer=TokenizerConfig(vocab_size=48),
        optim=OptimConfig(lr=3e-3, warmup_steps=4),
        train=TrainConfig(**settings),
        decode=DecodeConfig(beam_size=1, max_len_a=1.0, max_len_b=5),
        run_dir=str(run_dir),
    )
