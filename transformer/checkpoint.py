"""Checkpoint contents, atomic save, safe load, and rebuilding a model from a checkpoint alone.

A checkpoint is a dict: "model" (the unwrapped module's state, so never DDP's `module.` or
torch.compile's `_orig_mod.` prefixes), "config" (`dataclasses.asdict` of the TrainRunConfig),
"tokenizer" (`Tokenizer.state_dict()`), "tokenizer_sha256" (its fingerprint), "run_id" (the run
that wrote it), "format_version", and for resuming "optimizer", "scheduler", "scaler", "step",
"epoch", "sampler", "rng", "rng_ranks", "best_bleu", "best_loss", "bad_validations",
"validated_step" (assembled in `transformer.training.loop_state`). A run's final.pt holds "model",
"config", "tokenizer", "tokenizer_sha256", "run_id", "format_version", "step" and a
"description" of the model, and nothing for resuming. A checkpoint holds only tensors and plain
values, so it loads with `torch.load(weights_only=True)`. File names and the run folder's
layout belong to `transformer.run`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from transformer.config import (
    DataConfig,
    DecodeConfig,
    ModelConfig,
    OptimConfig,
    TokenizerConfig,
    TrainConfig,
    TrainRunConfig,
)
from transformer.data.special import PAD_ID
from transformer.data.tokenizer import Tokenizer
from transformer.errors import UserError
from transformer.model import Seq2SeqTransformer, build_model

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
REQUIRED_KEYS = ("model", "config", "tokenizer", "format_version")
_SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "decode": DecodeConfig,
}
# Keys that older versions stored and this one dropped (they did nothing): ignored on load.
_REMOVED_KEYS = {"train": ("num_workers",)}


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or lacks what is needed to use it."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` to `path` atomically: a temporary file in the same folder, then a rename.

    A crash while writing leaves the previous file at `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint onto the CPU.

    Raises:
        CheckpointError: the file is missing, is not a checkpoint, or lacks required keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; give the path of a .pt file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise _unreadable(path, error) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict.")
    missing = [key for key in REQUIRED_KEYS if state.get(key) is None]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}; it cannot be used on its own "
            "(was it written by this project's trainer?)."
        )
    return state


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    """One line for a checkpoint torch.load refused (torch's own text is several lines, and
    advises weights_only=False for a refused object: never ours to give)."""
    text = str(error)
    blocked = re.search(r"unsupported GLOBAL:? (?:GLOBAL )?(\S+)", text, flags=re.IGNORECASE)
    if isinstance(error, pickle.UnpicklingError) and blocked:
        return CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain values ({blocked[1]}); "
            "it was not written by this project and is refused, since loading it could run code."
        )
    advice = ("Weights only load failed", "Check the documentation", "Please file an issue")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if not line.startswith(advice)), "")
    return CheckpointError(
        f"checkpoint {path} could not be read ({type(error).__name__}: {reason}); "
        "the file is corrupt or not a checkpoint written by this project."
    )


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DistributedDataParallel (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _without_removed_keys(section: str, values: dict) -> dict:
    removed = [key for key in _REMOVED_KEYS.get(section, ()) if key in values]
    if removed:
        logger.warning(
            "checkpoint config: ignoring %s (no longer a setting)",
            ", ".join(f"{section}.{key}" for key in removed),
        )
    return {key: value for key, value in values.items() if key not in removed}


def run_config_from_checkpoint(state: dict) -> TrainRunConfig:
    """Rebuild the typed run config stored in a checkpoint."""
    stored = dict(state["config"])
    sections = {}
    for name, cls in _SECTIONS.items():
        values = _without_removed_keys(name, stored.pop(name, {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CheckpointError(
                f"checkpoint config section {name!r} has keys this version does not know: "
                f"{', '.join(unknown)}; use the project version that wrote it."
            )
        try:
            sections[name] = cls(**values)
        except ValueError as error:
            raise CheckpointError(f"checkpoint config section {name!r}: {error}") from error
    try:
        return TrainRunConfig(**sections, **stored)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint config does not fit this version: {error}") from error


def load_for_inference(
    path: str | Path, device: torch.device
) -> tuple[Seq2SeqTransformer, Tokenizer, TrainRunConfig]:
    """Rebuild model (eval mode, on `device`), tokenizer and config from one checkpoint file."""
    return model_from_state(load_checkpoint(path), path, device)


def model_from_state(
    state: dict, path: str | Path, device: torch.device
) -> tuple[Seq2SeqTransformer, Tokenizer, TrainRunConfig]:
    """`load_for_inference` for a checkpoint already loaded (`path` names it in errors)."""
    cfg = run_config_from_checkpoint(state)
    try:
        tokenizer = Tokenizer.from_state_dict(state["tokenizer"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path} holds an unusable vocabulary: {error}") from error
    model = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit the model its config describes ({error})"
        ) from error
    return model.to(device).eval(), tokenizer, cfg


def average_checkpoints(
    paths: list[str | Path], check: Callable[[Path, dict], None] | None = None
) -> dict[str, torch.Tensor]:
    """Average the model weights of several checkpoints of the same run (float32 accumulation).

    Args:
        paths: the checkpoints.
        check: called with each path and its loaded state before its weights count (it raises
            to refuse a checkpoint, e.g. one of another vocabulary).

    Raises:
        CheckpointError: no paths, or the checkpoints hold different parameter sets.
    """
    if not paths:
        raise CheckpointError("no checkpoints to average.")
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        state = load_checkpoint(path)
        if check is not None:
            check(Path(path), state)
        weights = state["model"]
        if total and weights.keys() != total.keys():
            raise CheckpointError(f"{path} holds different parameters from {paths[0]}.")
        for key, value in weights.items():
            dtypes.setdefault(key, value.dtype)
            if value.is_floating_point():
                total[key] = total[key] + value.float() if key in total else value.float()
            else:
                total.setdefault(key, value)  # integer buffers are copied, not averaged
    return {
        key: (value / len(paths)).to(dtypes[key]) if value.is_floating_point() else value
        for key, value in total.items()
    }
