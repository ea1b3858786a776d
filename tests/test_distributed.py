"""DDP on CPU (gloo): 2 ranks x B tokens per update follow 1 process x 2B tokens, and
`torchrun scripts/train.py` trains with rank 0 alone writing."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from transformer.checkpoint import unwrap_model
from transformer.config import ModelConfig, TrainConfig, TrainRunConfig
from transformer.data.batching import Batch, collate
from transformer.data.special import PAD_ID
from transformer.model import build_model
from transformer.training.distributed import (
    DistEnv,
    all_reduce_sum,
    destroy_distributed,
    env_from_torchrun,
    init_distributed,
    max_over_ranks,
)
from transformer.training.setup import _wrap
from transformer.training.step import UpdateStep

ROOT = Path(__file__).resolve().parents[1]
VOCAB, N_UPDATES, WORLD = 40, 3, 2
# Same data and initial weights, different summation order of the gradients: float32 round-off.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
MODEL = ModelConfig(
    d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.0
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sentences(seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 10, (8,), generator=generator).tolist()
    return [torch.randint(4, VOCAB, (n,), generator=generator).tolist() for n in lengths]


def _batches(rank: int, world_size: int) -> list[list[Batch]]:
    """Per update, this rank's share (one micro-batch) of a fixed 8-sentence batch."""
    updates = []
    for update in range(N_UPDATES):
        src, tgt = _sentences(2 * update), _sentences(2 * update + 1)
        rows = list(range(rank, len(src), world_size))  # uneven lengths: ranks differ in tokens
        updates.append([collate([src[i] for i in rows], [tgt[i] for i in rows], rows, PAD_ID)])
    return updates


def _train(rank: int, world_size: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    """N_UPDATES updates; returns the global per-token loss of each and the final weights."""
    torch.manual_seed(0)
    model = build_model(MODEL, VOCAB, VOCAB, PAD_ID)
    # SGD: the weights then compare the gradients themselves. (Adam divides the float noise of
    # zero-gradient parameters, such as the key bias, by its own tiny running norm.)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    wrapped = DistributedDataParallel(model) if world_size > 1 else model
    step = UpdateStep(
        wrapped, optimizer, torch.amp.GradScaler("cpu", enabled=False), smoothing=0.1,
        pad_id=PAD_ID, device=torch.device("cpu"), precision="fp32", clip_norm=1.0,
        world_size=world_size,
    )  # fmt: skip
    losses = []
    for batches in _batches(rank, world_size):
        result = step(batches, want_grad_norm=False)
        sums = all_reduce_sum(torch.stack([result.loss, torch.tensor(float(result.n_tokens))]))
        losses.append((sums[0] / sums[1]).item())
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)
    env = env_from_torchrun()
    init_distributed(env, torch.device("cpu"))
    try:
        assert max_over_ranks(rank) == WORLD - 1
        losses, weights = _train(rank, WORLD)
        torch.save({"losses": losses, "weights": weights}, f"{out}.{rank}")
    finally:
        destroy_distributed()


def test_two_ranks_follow_one_process_with_the_whole_batch(tmp_path: Path) -> None:
    # fork: the workers inherit the imported modules instead of importing torch again.
    mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path / "rank")), nprocs=WORLD, start_method="fork"
    )
    ranks = [torch.load(tmp_path / f"rank.{r}", weights_only=True) for r in range(WORLD)]
    single_losses, single_weights = _train(rank=0, world_size=1)
    for result in ranks:
        assert result["losses"] == pytest.approx(single_losses, rel=1e-5)
        for name, value in single_weights.items():
            torch.testing.assert_close(result["weights"][name], value, **TOLERANCE, msg=name)
    # The weights moved: the comparison is not between two untouched initialisations.
    torch.manual_seed(0)
    initial = build_model(MODEL, VOCAB, VOCAB, PAD_ID).state_dict()
    assert any(not torch.allclose(initial[k], single_weights[k]) for k in initial)


def test_world_of_one_needs_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    env = env_from_torchrun()
    assert (env.rank, env.world_size, env.is_main, env.enabled) == (0, 1, True, False)
    assert init_distributed(env, torch.device("cpu")) == torch.device("cpu")
    assert not torch.distributed.is_initialized()
    assert max_over_ranks(1) == 1
    tensor = torch.tensor([2.0])
    assert all_reduce_sum(tensor) is tensor and tensor.item() == 2.0


def test_compile_wraps_ddp_and_accumulation_still_skips_the_sync(tmp_path: Path) -> None:
    """compile(DDP(model)) lets DDPOptimizer overlap; no_sync must still reach the DDP inside."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model = build_model(MODEL, VOCAB, VOCAB, PAD_ID)
        cfg = TrainRunConfig(train=TrainConfig(compile=True))
        wrapped = _wrap(model, cfg, DistEnv(rank=0, world_size=2), torch.device("cpu"))
        assert isinstance(wrapped._orig_mod, DistributedDataParallel)  # compile outermost
        assert unwrap_model(wrapped) is model  # checkpoints keep the plain module
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        step = UpdateStep(
            wrapped, optimizer, torch.amp.GradScaler("cpu", enabled=False), smoothing=0.0,
            pad_id=PAD_ID, device=torch.device("cpu"), precision="fp32", clip_norm=0.0,
            world_size=1,
        )  # fmt: skip
        assert not isinstance(step._sync_context(is_last=False), contextlib.nullcontext)
        assert isinstance(step._sync_context(is_last=True), contextlib.nullcontext)
    finally:
        destroy_distributed()


@pytest.mark.slow
def test_torchrun_trains_with_two_ranks_and_rank0_writes(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    corpus = tiny_parallel_corpus["dir"]
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", str(ROOT / "scripts" / "train.py"),
        "data=text_files", f"data.train_path='{corpus}/train.{{lang}}'",
        f"data.valid_path='{corpus}/valid.{{lang}}'", "data.test_path=null",
        f"data.cache_dir={tmp_path / 'cache'}", "model=tiny", "decode=greedy",
        "tokenizer.vocab_size=48", "train.max_tokens=128", "train.max_updates=6",
        "train.validate_every=3", "train.valid_max_sentences=4", "train.log_every=2",
        "train.device=cpu", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["step"] == 6
    assert len(checkpoint["rng_ranks"]) == 2  # both ranks' generators, for an exact resume
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert "validation at update 6" in (run_dir / "train.log").read_text()
