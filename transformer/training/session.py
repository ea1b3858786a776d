"""Assembling a training session: data, model, optimizer, schedule, sampler, wrappers, resume.

`build_run` returns a `Run` holding everything the loop in `trainer.py` works with; when the run
folder holds checkpoints/last.pt (and `train.resume`), every state is restored from it first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from transformer.config import TrainRunConfig
from transformer.data.batching import Batch, EncodedPairs
from transformer.data.prepare import PreparedData, format_stats, prepare_data
from transformer.data.sampler import TokenBatchSampler
from transformer.data.special import PAD_ID
from transformer.data.vocabulary import resolve_tokenizer_config
from transformer.model import build_model
from transformer.run.checkpoint_dir import CheckpointDir, holds_run
from transformer.run.layout import checkpoints_dir, metrics_path, tensorboard_dir
from transformer.run.recovery import open_session, set_aside_run
from transformer.runtime import (
    describe_hardware,
    resolve_precision,
    seed_everything,
    set_rng_state,
)
from transformer.training.compiling import compile_for_training, uses_compile
from transformer.training.distributed import DistEnv, barrier
from transformer.training.init_from import StartingPoint, start_fine_tune
from transformer.training.logger import TrainLogger
from transformer.training.loop_state import (
    LoopCounters,
    check_data,
    check_resumable,
    check_vocabulary,
    restore_state,
)
from transformer.training.optim import build_optimizer, build_scheduler
from transformer.training.step import UpdateStep

logger = logging.getLogger(__name__)


class BatchStream:
    """Training batches, epoch after epoch, drawn from a resumable `TokenBatchSampler`.

    Args:
        pairs: the encoded training split, left in Arrow; one batch is read out at a time.
        sampler: yields lists of row indices; its state is the data position.
        pad_id: padding id for `collate`.
        max_epochs: stop after this many epochs; 0 never stops.
    """

    def __init__(
        self,
        pairs: EncodedPairs,
        sampler: TokenBatchSampler,
        pad_id: int,
        max_epochs: int,
    ) -> None:
        if len(sampler) == 0:
            raise ValueError("the training split gives no batches; check the data config.")
        self.pairs = pairs
        self.sampler = sampler
        self.pad_id = pad_id
        self.max_epochs = max_epochs
        self.epoch = sampler.state_dict()["epoch"]
        self._batches = iter(sampler)

    def take(self, n: int) -> list[Batch]:
        """The next `n` batches (fewer, or none, once `max_epochs` epochs are done)."""
        batches: list[Batch] = []
        while len(batches) < n:
            # A run that stopped on max_epochs saved the sampler at {epoch: max_epochs}: a
            # re-run must not draw from that extra epoch.
            if self.max_epochs and self.epoch >= self.max_epochs:
                break
            indices = next(self._batches, None)
            if indices is None:
                if self.max_epochs and self.epoch + 1 >= self.max_epochs:
                    break
                self.epoch += 1
                self.sampler.set_epoch(self.epoch)
                self._batches = iter(self.sampler)
                continue
            batches.append(self.pairs.collate(indices, self.pad_id))
        return batches


@dataclass
class Run:
    """Everything one training session works with."""

    cfg: TrainRunConfig
    env: DistEnv
    device: torch.device
    precision: str
    prepared: PreparedData
    model: nn.Module  # unwrapped: checkpoints, validation and decoding use it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: TokenBatchSampler
    stream: BatchStream
    update_step: UpdateStep  # holds the DDP/compiled wrapper that training steps run through
    counters: LoopCounters
    log: TrainLogger
    checkpoints: CheckpointDir  # the run folder's checkpoints/, written by rank 0 alone
    started: float = field(default_factory=time.monotonic)
    last_metrics: dict[str, float] = field(default_factory=dict)  # of the latest validation


def _resume_state(
    cfg: TrainRunConfig, env: DistEnv
) -> tuple[TrainRunConfig, CheckpointDir, dict | None]:
    """The config with the folder's tokenizer sample size resolved, the run's checkpoints/
    folder (readied by rank 0 first), and the state to resume from."""
    run_dir = Path(cfg.run_dir)
    if env.is_main:
        if not cfg.train.resume and holds_run(checkpoints_dir(run_dir)):
            set_aside_run(run_dir, "train.resume=false")
        elif start_over := open_session(CheckpointDir(checkpoints_dir(run_dir))):
            set_aside_run(run_dir, start_over)
    barrier()  # the other ranks read the folder as rank 0 left it
    # After a folder is set aside (its tokenizer.json with it), before the resume check.
    cfg = resolve_tokenizer_config(cfg)
    checkpoints = CheckpointDir(checkpoints_dir(run_dir))
    state = checkpoints.load_last()
    if state is not None:
        path = checkpoints.last_path
        check_resumable(state["config"], cfg, path)
        logger.info("resuming from %s (update %d)", path, state["step"])
    return cfg, checkpoints, state


def _prepare(cfg: TrainRunConfig, env: DistEnv) -> PreparedData:
    # Rank 0 trains the tokenizer and fills the caches; the other ranks then reuse them.
    if not env.is_main:
        barrier()
    prepared = prepare_data(cfg)
    if env.is_main:
        barrier()
        logger.info("data:\n%s", format_stats(prepared.stats))
    limit = cfg.train.max_train_pairs
    if limit and limit < len(prepared.splits["train"]):
        prepared.splits["train"] = prepared.splits["train"].select(range(limit))
        if "train" in prepared.lengths:
            src, tgt = prepared.lengths["train"]
            prepared.lengths["train"] = (src[:limit], tgt[:limit])
    return prepared


def _optimization(
    model: nn.Module, cfg: TrainRunConfig, device: torch.device
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optim = cfg.optim
    optimizer = build_optimizer(
        model,
        lr=optim.lr,
        betas=(optim.adam_beta1, optim.adam_beta2),
        eps=optim.eps,
        weight_decay=optim.weight_decay,
        fused=device.type == "cuda",
    )
    return optimizer, build_scheduler(optimizer, **schedule_settings(cfg))


def schedule_settings(cfg: TrainRunConfig) -> dict[str, object]:
    """The learning-rate schedule's arguments (`optim.build_scheduler`) from the config."""
    optim = cfg.optim
    return {
        "schedule": optim.schedule,
        "lr": optim.lr,
        "warmup_steps": optim.warmup_steps,
        "d_model": cfg.model.d_model,
        "noam_factor": optim.noam_factor,
        "cooldown_updates": optim.cooldown_updates,
        "last_update": cfg.train.max_updates,
    }


def _wrap(model: nn.Module, cfg: TrainRunConfig, env: DistEnv, device: torch.device) -> nn.Module:
    """DDP first, then torch.compile: compile(DDP(model)) lets DDPOptimizer split the graph at
    bucket boundaries so gradient all-reduces overlap the backward pass."""
    wrapped = model
    if env.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = DistributedDataParallel(wrapped, device_ids=device_ids)
    return (
        compile_for_training(wrapped, device)
        if uses_compile(cfg.train.compile, device)
        else wrapped
    )


def _sampler(pairs: EncodedPairs, cfg: TrainRunConfig, env: DistEnv) -> TokenBatchSampler:
    return TokenBatchSampler(
        *pairs.collated_lengths(),
        cfg.train.max_tokens,
        seed=cfg.train.seed,
        shuffle=True,
        rank=env.rank,
        world_size=env.world_size,
    )


def _update_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: TrainRunConfig,
    env: DistEnv,
    device: torch.device,
    precision: str,
) -> UpdateStep:
    return UpdateStep(
        _wrap(model, cfg, env, device),
        optimizer,
        scaler,
        smoothing=cfg.train.label_smoothing,
        pad_id=PAD_ID,
        device=device,
        precision=precision,
        clip_norm=cfg.optim.clip_norm,
        world_size=env.world_size,
    )


def build_run(
    cfg: TrainRunConfig, env: DistEnv, device: torch.device, start: StartingPoint | None = None
) -> Run:
    """Prepare data, build and (when resuming) restore every state, wrap for DDP/compile.

    `start` is a fine-tune's starting checkpoint when the caller has read it already.
    """
    cfg, checkpoints, resume = _resume_state(cfg, env)
    fine_tune = cfg.train.init_from is not None and resume is None
    initial = start_fine_tune(cfg, env.is_main, start) if fine_tune else None  # before _prepare
    seed_everything(cfg.train.seed + env.rank)  # ranks draw different dropout masks
    precision = resolve_precision(cfg.train.precision, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    elif cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    prepared = _prepare(cfg, env)
    tokenizer = prepared.tokenizer
    model = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    if initial is not None:
        model.load_state_dict(initial)
    model.to(device)
    optimizer, scheduler = _optimization(model, cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    pairs = EncodedPairs.from_dataset(prepared.splits["train"], prepared.lengths.get("train"))
    sampler = _sampler(pairs, cfg, env)
    counters = LoopCounters()
    if resume is not None:
        check_vocabulary(resume, tokenizer, checkpoints.last_path, Path(cfg.run_dir))
        check_data(resume, prepared.sources, checkpoints.last_path)
        counters, rng = restore_state(
            resume, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
            sampler=sampler, rank=env.rank, world_size=env.world_size,
        )  # fmt: skip
        set_rng_state(rng)  # last: nothing below draws random numbers before training
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %.2fM parameters, %s on %s", n_params / 1e6, precision, device)
    logger.info("hardware: %s", describe_hardware(device, env.world_size))
    return Run(
        cfg=cfg,
        env=env,
        device=device,
        precision=precision,
        prepared=prepared,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        sampler=sampler,
        stream=BatchStream(pairs, sampler, PAD_ID, cfg.train.max_epochs),
        update_step=_update_step(model, optimizer, scaler, cfg, env, device, precision),
        counters=counters,
        log=TrainLogger(
            tensorboard_dir(cfg.run_dir),
            enabled=env.is_main,
            total_updates=cfg.train.max_updates or None,
            initial_update=counters.update,
            metrics_path=metrics_path(cfg.run_dir),
        ),
        checkpoints=checkpoints,
    )
