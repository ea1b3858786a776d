"""Where the time of one training update goes, at a model and vocabulary size on this CPU.

Times the phases of real updates on Multi30k batches (the CPU runs each op to completion, so
wall-clock marks split an update exactly): the encoder and decoder layers, the output projection
with the label-smoothed loss (the vocabulary's share), the backward pass of each of those two,
and the Adam step. Then lists the top operators of one update from `torch.profiler`.

    python -m transformer.benchmarks.update_profile --threads 2
    python -m transformer.benchmarks.update_profile --threads 2 --vocab-size 4000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from transformer.benchmarks.training_speed import fixed_batches
from transformer.config import DataConfig, ModelConfig, TokenizerConfig, TrainRunConfig
from transformer.data.batching import Batch
from transformer.data.special import PAD_ID
from transformer.model import build_model
from transformer.model.masks import padding_mask, target_mask
from transformer.runtime import describe_hardware
from transformer.training.loss import label_smoothed_cross_entropy

PHASES = ("layers forward", "output+loss forward", "output+loss backward", "layers backward",
          "optimizer")  # fmt: skip


def _timed_update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> dict:
    """One update, split at the hidden states: (phase -> seconds)."""
    marks = [time.perf_counter()]
    memory = model.encode(batch.src_ids)  # (B, S, D)
    hidden = model.decoder(  # (B, T, D), what the output projection sees
        model.tgt_embed(batch.tgt_in_ids),
        memory,
        *_masks(model, batch),
    )
    marks.append(time.perf_counter())
    cut = hidden.detach().requires_grad_()
    logits = model.output_proj(cut)  # (B, T, V)
    loss = label_smoothed_cross_entropy(logits, batch.tgt_out_ids, 0.1, PAD_ID).loss
    marks.append(time.perf_counter())
    (loss / batch.n_tgt_tokens).backward()
    marks.append(time.perf_counter())
    hidden.backward(cut.grad)
    marks.append(time.perf_counter())
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    marks.append(time.perf_counter())
    return {name: b - a for name, a, b in zip(PHASES, marks, marks[1:], strict=False)}


def _masks(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return target_mask(batch.tgt_in_ids, PAD_ID), padding_mask(batch.src_ids, PAD_ID)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    cfg = TrainRunConfig(
        model=ModelConfig(d_model=args.d_model, n_heads=4, n_encoder_layers=args.layers,
                          n_decoder_layers=args.layers, d_ff=args.d_ff, dropout=0.1),
        data=DataConfig(src_lang="de", tgt_lang="en"),
        tokenizer=TokenizerConfig(vocab_size=args.vocab_size),
        run_dir=f"data/update-profile-{args.vocab_size}",  # its tokenizer lands there
    )  # fmt: skip
    batches, vocab = fixed_batches(cfg, args.warmup + args.updates, args.max_tokens)
    model = build_model(cfg.model, vocab, vocab, PAD_ID).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    times = [_timed_update(model, optimizer, batch) for batch in batches]
    times = times[args.warmup :]
    total = statistics.mean(sum(t.values()) for t in times)
    print(f"# One update: {describe_hardware(torch.device('cpu'))}")
    print(
        f"# d_model {args.d_model}, {args.layers}+{args.layers} layers, d_ff {args.d_ff}, "
        f"vocabulary {vocab}, {args.max_tokens}-token batches, {len(times)} updates timed\n"
    )
    print("| phase | ms | share |\n|---|---|---|")
    for name in PHASES:
        ms = statistics.mean(t[name] for t in times) * 1000
        print(f"| {name} | {ms:.0f} | {ms / 10 / total:.0f}% |")
    print(f"| update | {total * 1000:.0f} | 100% |\n")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _timed_update(model, optimizer, batches[-1])
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=256)
    parser.add_argument("--vocab-size", type=int, default=8000, help="joint unigram vocabulary")
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    parser.add_argument("--updates", type=int, default=10, help="timed updates")
    parser.add_argument("--top", type=int, default=15, help="operators listed")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
