"""The CUDA path: mixed precision and compiled steps, decoding, checkpoints across devices, DDP.

Marked `gpu` and skipped without a CUDA device; `scripts/gpu_check.sh` runs them (`pytest -m gpu`).
"""

from __future__ import annotations

import copy
import dataclasses
import socket
from pathlib import Path

import pytest
import torch
from tiny import PAD, random_sources, tiny_run_config, write_tiny_parallel_corpus

from transformer.checkpoint import load_checkpoint, load_for_inference
from transformer.config import ModelConfig, TrainConfig
from transformer.data.batching import Batch, collate
from transformer.decoding.greedy import greedy_search
from transformer.model import Seq2SeqTransformer, build_model
from transformer.training.compiling import compile_for_training
from transformer.training.optim import build_optimizer
from transformer.training.step import UpdateStep

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")
V = 40


def _full_fp32() -> None:
    # The trainer turns TF32 on for the whole process; comparisons here want plain float32.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def _reversal_batches(n: int, seed: int = 0) -> list[Batch]:
    """Batches of another shape each: the target is the source reversed."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(n):
        length = 4 + i % 7
        src = torch.randint(4, V, (16 + i % 5, length), generator=generator).tolist()
        batches.append(collate(src, [s[::-1] for s in src], list(range(len(src))), PAD))
    return batches


def _model(seed: int = 0) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        d_model=64, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=128, dropout=0.0
    )
    return build_model(cfg, V, V, PAD).to(CUDA).train()


def _train(model: torch.nn.Module, precision: str, *, compiled: bool) -> list[float]:
    """Per-token losses of 30 updates with the trainer's step (fused Adam, clipping)."""
    _full_fp32()
    optimizer = build_optimizer(
        model, lr=2e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=True
    )
    wrapped = compile_for_training(model, CUDA) if compiled else model
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    step = UpdateStep(
        wrapped, optimizer, scaler, smoothing=0.1, pad_id=PAD, device=CUDA,
        precision=precision, clip_norm=1.0, world_size=1,
    )  # fmt: skip
    losses = []
    for batch in _reversal_batches(30):
        result = step([batch], want_grad_norm=False)
        losses.append(result.loss.item() / result.n_tokens)
    if precision == "fp16":
        assert 0 < scaler.get_scale() < float("inf")
    return losses


@pytest.fixture(scope="module")
def fp32_losses() -> list[float]:
    return _train(_model(), "fp32", compiled=False)


def test_bf16_compiled_training_tracks_fp32(fp32_losses: list[float]) -> None:
    losses = _train(_model(), "bf16", compiled=True)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(fp32_losses), rtol=0.03, atol=0)
    assert losses[-1] < 0.8 * losses[0]  # and it learns


def test_fp16_with_the_gradient_scaler_tracks_fp32(fp32_losses: list[float]) -> None:
    losses = _train(_model(), "fp16", compiled=False)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(fp32_losses), rtol=0.03, atol=0)


def test_greedy_on_cuda_equals_greedy_on_cpu(trained_model: Seq2SeqTransformer) -> None:
    _full_fp32()
    src_ids = random_sources([7, 3, 9, 5])  # (B, S)
    on_cuda = copy.deepcopy(trained_model).to(CUDA)
    cpu = greedy_search(trained_model, src_ids, max_len_a=1.0, max_len_b=5)
    cuda = greedy_search(on_cuda, src_ids.to(CUDA), max_len_a=1.0, max_len_b=5)
    assert cuda == cpu


def _train_run(corpus_dir: Path, run_dir: Path, device: str, max_updates: int) -> dict:
    from transformer.training.trainer import train

    cfg = tiny_run_config(corpus_dir)
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, cache_dir=str(run_dir.parent / "cache")),
        train=TrainConfig(
            device=device, max_updates=max_updates, max_tokens=96, validate_every=2,
            valid_max_sentences=4, keep_last=2, evaluate_test=False,
        ),
        run_dir=str(run_dir),
    )  # fmt: skip
    return train(cfg)


@pytest.mark.parametrize("first, then", [("cpu", "cuda"), ("cuda", "cpu")])
def test_a_run_resumes_on_the_other_device(first: str, then: str, tmp_path: Path) -> None:
    # CUDA trains with fused Adam, bf16 autocast and torch.compile (the defaults there).
    corpus = write_tiny_parallel_corpus(tmp_path / "corpus")
    run_dir = tmp_path / "run"
    assert _train_run(corpus["dir"], run_dir, first, max_updates=4)["step"] == 4
    assert _train_run(corpus["dir"], run_dir, then, max_updates=8)["step"] == 8
    last = run_dir / "checkpoints" / "last.pt"
    step = load_checkpoint(last)["optimizer"]["state"][0]["step"]
    assert int(step) == 8  # Adam's count went on from the first device's
    _full_fp32()
    src_ids = torch.randint(4, 12, (2, 6))  # ids every tiny vocabulary has
    on_cpu = load_for_inference(last, torch.device("cpu"))[0]
    on_cuda = load_for_inference(last, CUDA)[0]
    logits = on_cuda(src_ids.to(CUDA), src_ids.to(CUDA)).cpu()  # (B, T, V)
    torch.testing.assert_close(logits, on_cpu(src_ids, src_ids), rtol=1e-4, atol=1e-4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_with_nccl_at_world_size_one_trains_like_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1)
    _full_fp32()
    try:
        total = torch.full((), 3.0, device=CUDA)
        dist.all_reduce(total)
        assert total.item() == 3.0
        model, alone = _model(), _model()
        ddp = DistributedDataParallel(model, device_ids=[CUDA.index or 0])
        for net, params in ((ddp, model), (alone, alone)):
            optimizer = build_optimizer(
                params, lr=2e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=True
            )
            step = UpdateStep(
                net, optimizer, torch.amp.GradScaler("cuda", enabled=False), smoothing=0.1,
                pad_id=PAD, device=CUDA, precision="fp32", clip_norm=0.0, world_size=1,
            )  # fmt: skip
            batches = _reversal_batches(4)
            for i in range(0, 4, 2):  # two micro-batches per update: no_sync on the first
                step(batches[i : i + 2], want_grad_norm=False)
        for a, b in zip(model.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(a, b)
    finally:
        dist.destroy_process_group()
