"""Training and decoding speed on Multi30k, printed as figures anyone can re-run.

Training: target tokens per second over full update steps (forward, backward, Adam step) of our
model and of a plain `torch.nn.Transformer` of the same size, on the same batches, interleaved
round by round in one process so that machine noise hits both alike; the ratio is the figure to
quote. The baseline uses `F.cross_entropy`; ours is timed with it too and with our own loss
(whose gradient is written out), so the loss's share of the gain shows on its own.
Decoding: sentences per second on test_2016_flickr, greedy and beam 5, for a checkpoint.

    tmt-benchmark                        # training throughput, default model size
    tmt-benchmark --checkpoint CKPT      # plus decoding speed of a trained model

(`python scripts/benchmark.py` is the same program.)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from transformer.config import (
    DataConfig,
    DecodeConfig,
    ModelConfig,
    TokenizerConfig,
    TrainRunConfig,
)
from transformer.data.batching import Batch, collate
from transformer.data.prepare import prepare_data
from transformer.data.sampler import TokenBatchSampler
from transformer.data.special import PAD_ID
from transformer.model import build_model
from transformer.model.embedding import sinusoid_table
from transformer.training.loss import label_smoothed_cross_entropy


class TorchTransformerMT(nn.Module):
    """The baseline: `nn.Transformer` with the same embeddings, positions and tied output."""

    def __init__(self, vocab_size: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.d_model = cfg.d_model
        self.embed = nn.Embedding(vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.register_buffer("positions", sinusoid_table(cfg.max_positions, cfg.d_model))
        self.dropout = nn.Dropout(cfg.dropout)
        self.core = nn.Transformer(
            d_model=cfg.d_model,
            nhead=cfg.n_heads,
            num_encoder_layers=cfg.n_encoder_layers,
            num_decoder_layers=cfg.n_decoder_layers,
            dim_feedforward=cfg.d_ff,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=cfg.norm_placement == "pre",
        )

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) * math.sqrt(self.d_model) + self.positions[: ids.size(1)]
        return self.dropout(x)

    def forward(self, src_ids: torch.Tensor, tgt_in_ids: torch.Tensor) -> torch.Tensor:
        T = tgt_in_ids.size(1)
        # nn.Transformer's boolean masks mean True = ignore: the upper triangle is the future.
        future = torch.ones(T, T, dtype=torch.bool, device=tgt_in_ids.device).triu(1)
        src_pad = src_ids == PAD_ID
        hidden = self.core(
            self._embed(src_ids),
            self._embed(tgt_in_ids),
            tgt_mask=future,
            src_key_padding_mask=src_pad,
            tgt_key_padding_mask=tgt_in_ids == PAD_ID,
            memory_key_padding_mask=src_pad,
            tgt_is_causal=True,
        )  # (B, T, D)
        return hidden @ self.embed.weight.t()  # (B, T, V)


def fixed_batches(cfg: TrainRunConfig, n_batches: int, max_tokens: int) -> tuple[list[Batch], int]:
    """The first `n_batches` token-budget batches of epoch 0 of the training split."""
    prepared = prepare_data(cfg)
    train = prepared.splits["train"]
    src, tgt = train["src_ids"][:], train["tgt_ids"][:]
    sampler = TokenBatchSampler(
        [len(s) + 1 for s in src], [len(t) + 1 for t in tgt], max_tokens, seed=cfg.train.seed
    )
    sampler.set_epoch(0)
    batches = []
    for indices in sampler:
        batches.append(
            collate([src[i] for i in indices], [tgt[i] for i in indices], indices, PAD_ID)
        )
        if len(batches) == n_batches:
            break
    return batches, prepared.tokenizer.tgt_vocab_size


# Above this bf16/float32 matmul time ratio, timing bf16 training would take hours for nothing.
MAX_BF16_SLOWDOWN = 2.0


def make_step(model: nn.Module, precision: str, loss: str) -> Callable[[Batch], None]:
    """One full update: forward, label-smoothed loss, backward, Adam step.

    `loss` is "torch" (`F.cross_entropy(label_smoothing=0.1)`, what a plain PyTorch loop uses)
    or "ours" (`label_smoothed_cross_entropy`, what our trainer uses).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step(batch: Batch) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            logits = model(batch.src_ids, batch.tgt_in_ids)  # (B, T, V)
        if loss == "ours":
            summed = label_smoothed_cross_entropy(logits, batch.tgt_out_ids, 0.1, PAD_ID).loss
        else:
            summed = F.cross_entropy(
                logits.float().flatten(0, 1),
                batch.tgt_out_ids.flatten(),
                ignore_index=PAD_ID,
                label_smoothing=0.1,
                reduction="sum",
            )
        (summed / batch.n_tgt_tokens).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def bf16_matmul_slowdown(d_model: int, rounds: int = 7) -> float:
    """How many times longer a bf16 matrix product takes than a float32 one on this CPU.

    The shape is an output projection's: (512 tokens, d_model) @ (d_model, 2048). CPUs without
    native bf16 (AVX-512 BF16 or AMX) emulate it, many times slower than float32. Each dtype's
    time is its best of `rounds`, interleaved: a busy machine only ever adds time, so a single
    interrupted float32 timing cannot make bf16 look ten times faster than it is.
    """
    a, b = torch.randn(512, d_model), torch.randn(d_model, 2048)
    operands = {dtype: (a.to(dtype), b.to(dtype)) for dtype in (torch.float32, torch.bfloat16)}
    best = dict.fromkeys(operands, math.inf)
    for _ in range(rounds + 1):  # the first round warms up (kernel choice, allocation)
        for dtype, (x, y) in operands.items():
            start = time.perf_counter()
            x @ y
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.bfloat16] / best[torch.float32]


def bench_training(args: argparse.Namespace, cfg: TrainRunConfig) -> None:
    batches, vocab_size = fixed_batches(cfg, args.batches, args.max_tokens)
    n_tokens = sum(b.n_tgt_tokens for b in batches)
    n_real = sum(b.n_src_tokens + b.n_tgt_tokens for b in batches)
    n_padded = sum(b.src_ids.numel() + b.tgt_out_ids.numel() for b in batches)
    print(f"{len(batches)} batches, {n_tokens} target tokens, padding {1 - n_real / n_padded:.1%}")
    ours = build_model(cfg.model, vocab_size, vocab_size, PAD_ID).train()
    plain = TorchTransformerMT(vocab_size, cfg.model).train()
    print(
        f"parameters: ours {sum(p.numel() for p in ours.parameters()):,}, "
        f"nn.Transformer {sum(p.numel() for p in plain.parameters()):,}"
    )
    contenders = {
        "nn.Transformer fp32": make_step(plain, "fp32", loss="torch"),
        "ours fp32, torch loss": make_step(ours, "fp32", loss="torch"),
        "ours fp32": make_step(ours, "fp32", loss="ours"),
    }
    if args.compile:
        # A twin with the same weights: torch.compile with dynamic shapes, as batches vary.
        twin = build_model(cfg.model, vocab_size, vocab_size, PAD_ID).train()
        twin.load_state_dict(ours.state_dict())
        compiled = torch.compile(twin, dynamic=True, backend=args.compile_backend)
        contenders["ours fp32, compiled"] = make_step(compiled, "fp32", loss="ours")
    if args.bf16:
        slowdown = bf16_matmul_slowdown(cfg.model.d_model)
        print(f"bf16 matrix product: x{slowdown:.1f} the time of float32 on this CPU")
        if slowdown < MAX_BF16_SLOWDOWN:
            contenders["ours bf16 autocast"] = make_step(ours, "bf16", loss="ours")
        else:
            print("  (no native bf16 here: bf16 autocast training is not timed)")
    for name, step in contenders.items():  # warm-up: allocator, kernels, Adam state, compiling
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        print(f"warm-up of {name}: {time.perf_counter() - start:.1f} s")
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(args.rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            for batch in batches:
                step(batch)
            rates[name].append(n_tokens / (time.perf_counter() - start))
        print(
            f"round {round_index + 1}: " + ", ".join(f"{n} {r[-1]:,.0f}" for n, r in rates.items())
        )
    baseline = statistics.median(rates["nn.Transformer fp32"])
    print("\ntraining throughput (target tokens/s, median of rounds):")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"  {name:24s} {median:8,.0f}   x{median / baseline:.2f} vs nn.Transformer")


def bench_decoding(args: argparse.Namespace) -> None:
    from transformer.checkpoint import load_for_inference
    from transformer.data.corpus import load_split
    from transformer.decoding.translator import Translator

    device = torch.device("cpu")
    model, tokenizer, cfg = load_for_inference(args.checkpoint, device)
    sentences = list(load_split(cfg.data, "test_2016_flickr")["src"])
    sentences = sentences[: args.decode_sentences or len(sentences)]
    print(f"\ndecoding test_2016_flickr ({len(sentences)} sentences) with {args.checkpoint}:")
    for beam in (1, 5):
        decode = DecodeConfig(
            beam_size=beam,
            length_penalty=cfg.decode.length_penalty,
            max_len_a=cfg.decode.max_len_a,
            max_len_b=cfg.decode.max_len_b,
            max_tokens=args.decode_max_tokens,
        )
        translator = Translator(model, tokenizer, decode, device)
        translator.translate(sentences[:32])  # warm-up
        start = time.perf_counter()
        translator.translate(sentences)
        elapsed = time.perf_counter() - start
        name = "greedy" if beam == 1 else f"beam {beam}"
        print(f"  {name:8s} {len(sentences) / elapsed:7.1f} sentences/s ({elapsed:.1f} s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tmt-benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--src-lang", default="en")
    parser.add_argument("--tgt-lang", default="de")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--vocab-size", type=int, default=8000, help="shared SentencePiece vocab")
    parser.add_argument("--max-tokens", type=int, default=4096, help="token budget per batch")
    parser.add_argument("--batches", type=int, default=20, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also time ours under bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="also time ours torch.compile'd")
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (eager: no codegen)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--checkpoint", help="a trained checkpoint, to time decoding")
    parser.add_argument("--decode-max-tokens", type=int, default=8192)
    parser.add_argument(
        "--decode-sentences", type=int, default=0, help="decode the first N (0: all 1,000)"
    )
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument(
        "--run-dir", default="runs/benchmark", help="where the SentencePiece model goes"
    )
    parser.add_argument("--cache-dir", default="data", help="corpus download and encoding cache")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    """`tmt-benchmark [options]`: print training (and, with --checkpoint, decoding) speed."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    cfg = TrainRunConfig(
        model=ModelConfig(
            d_model=args.d_model,
            n_heads=args.heads,
            n_encoder_layers=args.layers,
            n_decoder_layers=args.layers,
            d_ff=args.d_ff,
        ),
        data=DataConfig(src_lang=args.src_lang, tgt_lang=args.tgt_lang, cache_dir=args.cache_dir),
        tokenizer=TokenizerConfig(vocab_size=args.vocab_size),
        run_dir=f"{args.run_dir}/{args.src_lang}-{args.tgt_lang}-{args.vocab_size}",
    )
    if not args.skip_training:
        bench_training(args, cfg)
    if args.checkpoint:
        bench_decoding(args)
