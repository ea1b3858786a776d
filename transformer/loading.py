"""Loading a model for inference: a checkpoint, a run folder, an average of checkpoints, an
ensemble, or an exported CTranslate2 folder, as one typed result that builds its translator.

The commands in `transformer/commands/` call `load_model` with plain values; so can any program.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from transformer.checkpoint import (
    CheckpointError,
    average_checkpoints,
    load_checkpoint,
    model_from_state,
)
from transformer.config import DecodeConfig, TrainRunConfig
from transformer.data.tokenizer import Tokenizer
from transformer.decoding.ensemble import Ensemble
from transformer.decoding.sampling import Sampling
from transformer.decoding.translator import Translator
from transformer.export.ct2_translator import CT2Translator
from transformer.export.folder import ExportInfo, is_exported, read_export, recover_export
from transformer.model import Seq2SeqTransformer
from transformer.run.lookup import averaging_candidates, resolve_checkpoint
from transformer.runtime import pick_device

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready to translate, with what it was rebuilt from.

    Attributes:
        source: the checkpoint file (a run folder resolved to its final/best/last.pt), or the
            exported folder.
        tokenizer: the model's tokenizer.
        cfg: the run config stored with the model (its decode section gives the defaults).
        device: where decoding runs.
        model: the PyTorch model, an Ensemble, or None for an exported folder.
        exported: the export record when `source` is an exported folder, else None.
        averaged: the checkpoints averaged into `model` ([] for `source` as it is).
        ensemble: the checkpoints decoded together with `source`.
        description: the checkpoint's own account of its weights (final.pt has one).
        data_sources: what the run read each split from (files with their sha256), if recorded.
    """

    source: Path
    tokenizer: Tokenizer
    cfg: TrainRunConfig
    device: torch.device
    model: Seq2SeqTransformer | Ensemble | None
    exported: ExportInfo | None = None
    averaged: list[Path] = field(default_factory=list)
    ensemble: list[Path] = field(default_factory=list)
    description: str | None = None
    data_sources: dict = field(default_factory=dict)

    def translator(
        self,
        decode: DecodeConfig,
        *,
        sampling: Sampling | None = None,
        progress: Callable[[int], None] | None = None,
        threads: int = 0,
    ) -> Translator | CT2Translator:
        """A translator with these search settings: ours, or CTranslate2 for an exported folder.

        Args:
            threads: CTranslate2's intra-op threads (0: its default); PyTorch's are set globally.
        """
        if self.model is not None:
            return Translator(
                self.model,
                self.tokenizer,
                decode,
                self.device,
                sampling=sampling,
                progress=progress,
            )
        return CT2Translator(
            self.source,
            self.tokenizer,
            decode,
            max_positions=self.cfg.model.max_positions,
            device=self.device,
            threads=threads,
            sampling=sampling,
            progress=progress,
        )


def checkpoints_to_average(checkpoint: Path, average: Sequence[Path], last: int) -> list[Path]:
    """[] for no averaging; `checkpoint` and the `average` files; or the `last` K.

    `last` takes the K newest checkpoints the manifest of the checkpoint's folder keeps (the
    trainer's periodic checkpoints); the checkpoint then only supplies config and vocabulary.
    """
    if average:  # run folders stand for their reported checkpoint, as CHECKPOINT does
        return [checkpoint, *(resolve_checkpoint(Path(path)) for path in average)]
    return averaging_candidates(checkpoint.parent, last) if last else []


def _load_exported(folder: Path, device: torch.device, combined: bool) -> LoadedModel:
    if combined:
        raise ValueError(
            f"{folder} is an exported folder: averaging and ensembles need the checkpoints."
        )
    info, tokenizer = read_export(folder)
    return LoadedModel(folder, tokenizer, info.cfg, device, None, exported=info)


def check_same_tokenizer(path: Path, state: dict, tokenizer: Tokenizer, source: Path) -> None:
    """Refuse a checkpoint (`state`, read from `path`) to combine with `source`'s model unless
    it has the same vocabulary and direction: ensemble members and averaged weights alike.

    Raises:
        CheckpointError: naming both directions.
    """
    if state["tokenizer"] == tokenizer.state_dict():
        return
    src, tgt = state["tokenizer"].get("src_lang"), state["tokenizer"].get("tgt_lang")
    raise CheckpointError(
        f"{path}: its vocabulary or direction ({src}-{tgt}) differs from {source}'s "
        f"({tokenizer.src_lang}-{tokenizer.tgt_lang}); models decoded or averaged together "
        "need the same tokenizer."
    )


def _ensemble(
    first: Seq2SeqTransformer,
    tokenizer: Tokenizer,
    source: Path,
    paths: list[Path],
    device: torch.device,
) -> Ensemble:
    """`first` and the models of `paths`, which must have `first`'s tokenizer."""
    members = [first]
    for path in paths:
        state = load_checkpoint(path)
        check_same_tokenizer(path, state, tokenizer, source)
        members.append(model_from_state(state, path, device)[0])
    logger.info("ensemble of %d models: %s", len(members), ", ".join(map(str, paths)))
    return Ensemble(members)


def load_model(
    path: Path,
    *,
    device: str = "auto",
    average: Sequence[Path] = (),
    average_last: int = 0,
    ensemble: Sequence[Path] = (),
) -> LoadedModel:
    """Rebuild a model for inference.

    Args:
        path: a checkpoint, a run folder (its final.pt, else best.pt, else last.pt), or a folder
            written by `transformer.export.folder.export_checkpoint`.
        device: "auto" (CUDA if present), "cpu" or "cuda".
        average: average `path` with these checkpoints.
        average_last: average the last K periodic checkpoints of `path`'s folder instead.
        ensemble: decode with these checkpoints too (same tokenizer), averaging probabilities.

    Raises:
        CheckpointError: a checkpoint or folder is missing, unreadable, or does not fit.
        ValueError: averaging combined with an ensemble, or either with an exported folder.
    """
    torch_device = pick_device(device)
    if ensemble and (average or average_last):
        raise ValueError("--ensemble does not combine with --average or --average-last.")
    if not path.is_file():
        recover_export(path)  # an export a kill interrupted: finished (or undone) first
    if path.is_dir() and is_exported(path):
        return _load_exported(path, torch_device, bool(average or average_last or ensemble))
    checkpoint = resolve_checkpoint(path)
    members = [resolve_checkpoint(p) for p in ensemble]
    averaged = checkpoints_to_average(checkpoint, average, average_last)
    state = load_checkpoint(checkpoint)
    description = state.get("description")
    data_sources = state.get("data_sources") or {}
    model, tokenizer, cfg = model_from_state(state, checkpoint, torch_device)
    del state  # its weights are in the model now
    if averaged:
        try:
            weights = average_checkpoints(
                averaged, check=lambda p, s: check_same_tokenizer(p, s, tokenizer, checkpoint)
            )
            model.load_state_dict(weights)
        except RuntimeError as error:  # weights that do not fit the config
            raise CheckpointError(
                f"{checkpoint}: the averaged weights do not fit its model config: {error}"
            ) from error
        logger.info("averaged %s", ", ".join(map(str, averaged)))
    combined = _ensemble(model, tokenizer, checkpoint, members, torch_device) if members else model
    return LoadedModel(
        checkpoint,
        tokenizer,
        cfg,
        torch_device,
        combined,
        averaged=averaged,
        ensemble=members,
        description=description,
        data_sources=data_sources,
    )
