"""Training speed on synthetic batches: target tokens/s, model FLOPs and MFU, and a matmul peak.

Each measured step is the trainer's own `UpdateStep` (autocast, our loss, fused Adam on CUDA,
torch.compile through `compile_for_training`), on batches already on the device, so the figure
is the model's speed without the data loader. MFU divides the model's FLOPs per second (the
matrix products a training step must do, below) by a measured dense matmul rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from transformer.config import ModelConfig
from transformer.data.batching import Batch, collate
from transformer.data.special import PAD_ID
from transformer.model import build_model
from transformer.training.compiling import compile_for_training, graphs_compiled
from transformer.training.optim import build_optimizer
from transformer.training.step import UpdateStep

# (S, T) pairs, pieces with EOS/BOS, around the lengths of WMT news sentences; each batch has
# another shape, as the trainer's token-budget batches do.
SHAPES = [(27, 29), (33, 31), (22, 25), (38, 36), (30, 30), (25, 33)]


def forward_flops(cfg: ModelConfig, vocab: int, B: int, S: int, T: int) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of one forward pass over a (B, S) -> (B, T) batch.

    Counts the matrix products: projections, feed-forward, attention scores and weighted sums
    (masked positions included, as the kernels compute them), and the output projection.
    Embedding lookups, norms, softmax and the loss are left out.
    """
    D, F = cfg.d_model, cfg.d_ff
    encoder = 2 * S * (4 * D * D + 2 * D * F) + 4 * S * S * D
    decoder = (
        2 * T * (4 * D * D + 2 * D * D + 2 * D * F)  # self-attention, cross q/out, feed-forward
        + 2 * S * 2 * D * D  # cross-attention keys and values of the memory
        + 4 * T * T * D  # self-attention scores and sums
        + 4 * T * S * D  # cross-attention scores and sums
    )
    output = 2 * T * D * vocab
    return B * (cfg.n_encoder_layers * encoder + cfg.n_decoder_layers * decoder + output)


def training_flops(cfg: ModelConfig, vocab: int, B: int, S: int, T: int) -> int:
    """One training step's FLOPs: the backward pass costs twice the forward."""
    return 3 * forward_flops(cfg, vocab, B, S, T)


def synthetic_batches(
    vocab: int, max_tokens: int, shapes: list[tuple[int, int]], device: torch.device, seed: int = 0
) -> list[Batch]:
    """One unpadded batch per (S, T): max_tokens // max(S, T) sentences of random pieces."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for S, T in shapes:
        B = max(1, max_tokens // max(S, T))
        src = torch.randint(4, vocab, (B, S - 1), generator=generator).tolist()  # + EOS
        tgt = torch.randint(4, vocab, (B, T - 1), generator=generator).tolist()  # + BOS / EOS
        batches.append(collate(src, tgt, list(range(B)), PAD_ID).to(device))
    return batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, dtype: torch.dtype, repeats: int = 20) -> float:
    """FLOP/s of an (n, n) @ (n, n) product on random data (mean over `repeats`, after 3)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


@dataclass
class SpeedResult:
    """One (model, precision, compiled) training speed measurement."""

    tokens_per_s: float  # target tokens
    flops_per_s: float
    warmup_s: float  # the first pass over every shape: compiling, allocator, Adam state
    graphs: int  # graphs torch.compile built (0 eager)
    steps: int


def time_training(
    cfg: ModelConfig,
    *,
    vocab: int,
    batches: list[Batch],
    device: torch.device,
    precision: str,
    compiled: bool,
    steps: int,
    compile_backend: str = "inductor",
    max_seconds: float = 30.0,
) -> SpeedResult:
    """Time `steps` updates (fewer if `max_seconds` runs out) cycling through `batches`."""
    model = build_model(cfg, vocab, vocab, PAD_ID).to(device).train()
    optimizer = build_optimizer(
        model, lr=1e-4, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=device.type == "cuda"
    )
    wrapped = model
    if compiled:
        torch._dynamo.reset()  # each model its own graphs, well under the recompile limit
        wrapped = compile_for_training(model, device, backend=compile_backend)
    step = UpdateStep(
        wrapped, optimizer, torch.amp.GradScaler(device.type, enabled=False),
        smoothing=0.1, pad_id=PAD_ID, device=device, precision=precision, clip_norm=0.0,
        world_size=1,
    )  # fmt: skip
    graphs_before = graphs_compiled()
    start = time.perf_counter()
    for batch in batches:
        step([batch], want_grad_norm=False)
    _sync(device)
    warmup = time.perf_counter() - start
    tokens = flops = done = 0
    start = time.perf_counter()
    while done < steps and time.perf_counter() - start < max_seconds:
        batch = batches[done % len(batches)]
        step([batch], want_grad_norm=False)
        B, S = batch.src_ids.shape
        tokens += batch.n_tgt_tokens
        flops += training_flops(cfg, vocab, B, S, batch.tgt_in_ids.size(1))
        done += 1
    _sync(device)
    elapsed = time.perf_counter() - start
    return SpeedResult(
        tokens_per_s=tokens / elapsed,
        flops_per_s=flops / elapsed,
        warmup_s=warmup,
        graphs=graphs_compiled() - graphs_before,
        steps=done,
    )
