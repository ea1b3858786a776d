"""What a training checkpoint holds, how it is restored, and which run folders may resume.

The keys are listed in `transformer.checkpoint`, which writes and reads the files; "best_loss"
picks best.pt when BLEU is off, and "rng_ranks" lets a DDP run resume exactly too.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from transformer.checkpoint import FORMAT_VERSION, unwrap_model
from transformer.config import TrainRunConfig
from transformer.data.sampler import TokenBatchSampler
from transformer.data.tokenizer import Tokenizer
from transformer.errors import UserError
from transformer.training.optim import restore_schedule

logger = logging.getLogger(__name__)

# Sections whose values define the model, the data or the vocabulary: a checkpoint trained
# with other values cannot continue in this run folder. Paths and worker counts may change.
_DEFINING_SECTIONS = ("model", "data", "tokenizer")
_FREE_KEYS = {"data.cache_dir", "data.multi30k_dir", "data.num_proc", "data.test_split"}
_DEFINING_TRAIN_KEYS = ("max_train_pairs",)
# Loop settings that may change on resume, but that fix the batches and random streams: with a
# new value the resumed run goes on, though no longer as the uninterrupted run would have.
_EXACTNESS_TRAIN_KEYS = ("max_tokens", "seed", "accum_steps")


class ResumeError(UserError, RuntimeError):
    """The run folder's checkpoint belongs to a different model, data or tokenizer config."""


@dataclass
class Progress:
    """Counters of the loop that a checkpoint carries besides the module states."""

    step: int = 0
    best_bleu: float = -math.inf
    best_loss: float = math.inf
    bad_validations: int = 0
    validated_step: int = -1  # the update of the latest validation

    def record(self, bleu: float | None, loss: float) -> bool:
        """Count a validation; return True when it is the best so far (BLEU, else loss)."""
        if bleu is not None:
            improved = bleu > self.best_bleu
            self.best_bleu = max(self.best_bleu, bleu)
        else:
            improved = loss < self.best_loss
        self.best_loss = min(self.best_loss, loss)
        self.bad_validations = 0 if improved else self.bad_validations + 1
        return improved


def _flatten(section: str, values: dict) -> dict[str, object]:
    return {f"{section}.{key}": value for key, value in values.items()}


def _defining_values(config: dict) -> dict[str, object]:
    values: dict[str, object] = {}
    for section in _DEFINING_SECTIONS:
        values.update(_flatten(section, config.get(section, {})))
    for key in _DEFINING_TRAIN_KEYS:
        values[f"train.{key}"] = config.get("train", {}).get(key)
    return {key: value for key, value in values.items() if key not in _FREE_KEYS}


def config_differences(stored: dict, current: TrainRunConfig) -> list[str]:
    """Model/data/tokenizer keys whose values differ: "key: stored (checkpoint) != now (run)"."""
    old = _defining_values(stored)
    new = _defining_values(dataclasses.asdict(current))
    return [
        f"{key}: {old.get(key)!r} (checkpoint) != {new.get(key)!r} (now)"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def _inexact_values(config: dict) -> dict[str, object]:
    train = config.get("train", {})
    values = {f"train.{key}": train.get(key) for key in _EXACTNESS_TRAIN_KEYS}
    return values | _flatten("optim", config.get("optim", {}))


def _warn_inexact(stored: dict, current: TrainRunConfig, path: Path) -> None:
    old, new = _inexact_values(stored), _inexact_values(dataclasses.asdict(current))
    changed = [
        f"{key}: {old.get(key)!r} -> {value!r}"
        for key, value in new.items()
        if old.get(key) != value
    ]
    if changed:
        logger.warning(
            "resuming from %s with changed loop settings (%s): training continues, but the "
            "resumed run will not be bit-identical to an uninterrupted one",
            path,
            ", ".join(changed),
        )


def check_resumable(stored: dict, current: TrainRunConfig, path: Path) -> None:
    """Refuse to resume from a checkpoint of another model, data or tokenizer config.

    Changed loop settings that break exact resumption (`train.max_tokens`, `seed`,
    `accum_steps`, any `optim.*`) are allowed, with a warning naming each; the run goes on
    with the new values.

    Raises:
        ResumeError: naming every differing key and the ways out.
    """
    _warn_inexact(stored, current, path)
    differences = config_differences(stored, current)
    if differences:
        raise ResumeError(
            f"{path} was trained with a different config, so this run cannot resume from it: "
            + "; ".join(differences)
            + ". Use another run folder (name=... or hydra.run.dir=...), restore those values, "
            "or start over in this folder with train.resume=false."
        )


def checkpoint_state(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    sampler: TokenBatchSampler,
    progress: Progress,
    rng_ranks: list[dict],
    cfg: TrainRunConfig,
    tokenizer: Tokenizer,
) -> dict:
    """Everything needed to resume training or to use the model alone (rank 0's view)."""
    sampler_state = sampler.state_dict()
    return {
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "step": progress.step,
        "epoch": sampler_state["epoch"],
        "sampler": sampler_state,
        "rng": rng_ranks[0],
        "rng_ranks": rng_ranks,
        "best_bleu": progress.best_bleu,
        "best_loss": progress.best_loss,
        "bad_validations": progress.bad_validations,
        "validated_step": progress.validated_step,
        "config": dataclasses.asdict(cfg),
        "tokenizer": tokenizer.state_dict(),
        "tokenizer_sha256": tokenizer.fingerprint,
        "format_version": FORMAT_VERSION,
    }


def final_state(
    weights: dict[str, torch.Tensor],
    *,
    step: int,
    description: str,
    cfg: TrainRunConfig,
    tokenizer: Tokenizer,
) -> dict:
    """The checkpoint of the model a run reports (checkpoints/final.pt): weights, config and
    vocabulary for evaluation and translation, nothing for resuming."""
    return {
        "model": weights,
        "step": step,
        "description": description,
        "config": dataclasses.asdict(cfg),
        "tokenizer": tokenizer.state_dict(),
        "tokenizer_sha256": tokenizer.fingerprint,
        "format_version": FORMAT_VERSION,
    }


def check_vocabulary(state: dict, tokenizer: Tokenizer, path: Path, run_dir: Path) -> None:
    """Refuse to resume a checkpoint trained on another SentencePiece model than the run
    folder's; a byte-identical model (retrained on the same corpus and settings) is the same.

    Raises:
        ResumeError: naming both models' hashes and the ways out.
    """
    stored = state.get("tokenizer_sha256")
    if stored is None:
        logger.warning(
            "%s was written before checkpoints recorded their vocabulary: resuming without "
            "checking that %s's SentencePiece model is the one it was trained with", path, run_dir,
        )  # fmt: skip
    elif stored != tokenizer.fingerprint:
        raise ResumeError(
            f"{path} was trained with the SentencePiece model sha256 {stored[:16]}, but "
            f"{run_dir} now holds sha256 {tokenizer.fingerprint[:16]} (retrained, or replaced): "
            "its weights would go on with another vocabulary. Put the run's own tokenizer.json "
            "and spm*.model back (a train.resume=false start keeps old ones in "
            "tokenizer.replaced-*/), start over with train.resume=false, or use another run "
            "folder (name=... or hydra.run.dir=...)."
        )


def restore_state(
    state: dict,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    sampler: TokenBatchSampler,
    rank: int,
    world_size: int,
) -> tuple[Progress, dict]:
    """Load module, optimizer and data states; return the counters and this rank's RNG state.

    Call before wrapping the model in DDP or torch.compile.
    """
    unwrap_model(model).load_state_dict(state["model"])
    _load_optimizer_state(optimizer, state["optimizer"])
    restore_schedule(scheduler, state["scheduler"])  # this run's schedule, maybe changed
    if state["scaler"] is not None and scaler.is_enabled():
        scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    rng_ranks = state["rng_ranks"]
    if world_size != len(rng_ranks):
        logger.warning(
            "resuming %d ranks from a checkpoint of %d: training continues, but not exactly as "
            "an uninterrupted run would (other batches per rank, other random streams)",
            world_size,
            len(rng_ranks),
        )
    progress = Progress(
        step=state["step"],
        best_bleu=state["best_bleu"],
        best_loss=state["best_loss"],
        bad_validations=state["bad_validations"],
        validated_step=state.get("validated_step", -1),  # absent before final.pt existed
    )
    return progress, rng_ranks[rank % len(rng_ranks)]


def _load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Adam's moments from the checkpoint; its settings (betas, eps, ...) from this run's config.

    `load_state_dict` would bring back the saved run's group settings too, so that a resume
    with a new `optim.adam_beta2` (say) silently kept the old one.
    """
    settings = [
        {k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups
    ]
    optimizer.load_state_dict(saved)
    for group, own in zip(optimizer.param_groups, settings, strict=True):
        group.update(own)
        _place_steps(optimizer, group)


def _place_steps(optimizer: torch.optim.Optimizer, group: dict) -> None:
    # load_state_dict places `step` by the *saved* group's flags: a CPU run's (fused=None) left
    # it a CPU tensor, which this run's fused (or capturable) CUDA Adam refuses. Those kernels
    # want it as float32 on the parameter's device.
    if not (group.get("fused") or group.get("capturable")):
        return
    for param in group["params"]:
        state = optimizer.state.get(param, {})
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].to(device=param.device, dtype=torch.float32)
