"""The exported folder: CTranslate2's model files, our tokenizer, and the run config.

Layout of OUT_DIR: `model.bin`, `config.json` and the vocabulary files (written by CTranslate2),
`spm.model` (or one model per language) and `tokenizer.json` (our tokenizer, as a run folder
holds them), and `export.json` (the run config, the quantization, and the checkpoint it came
from), so that the folder is usable on its own: `evaluate.py OUT_DIR` scores the same default
test split as the checkpoint would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transformer.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_state,
    run_config_from_checkpoint,
)
from transformer.config import TrainRunConfig
from transformer.data.tokenizer import Tokenizer
from transformer.export.ct2_spec import ExportError, build_spec

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
QUANTIZATIONS = ("int8", "int8_float32", "int16", "float16", "float32")
# Chosen from docs/finetune-export.md's benchmark: see DEFAULT_QUANTIZATION's note there.
DEFAULT_QUANTIZATION = "int8_float32"


@dataclass
class ExportInfo:
    """What `export.json` records."""

    cfg: TrainRunConfig
    quantization: str
    checkpoint: str
    step: int | None


def is_exported(path: Path) -> bool:
    """Whether `path` is a folder written by `export_checkpoint`."""
    return (path / EXPORT_FILE).is_file()


def vocabularies(tokenizer: Tokenizer) -> tuple[list[str], list[str]]:
    """Source and target pieces in id order (CTranslate2 maps pieces to ids by position)."""
    return (
        tokenizer.src_id_to_piece(range(tokenizer.src_vocab_size)),
        tokenizer.tgt_id_to_piece(range(tokenizer.tgt_vocab_size)),
    )


def export_checkpoint(checkpoint: Path, out_dir: Path, quantization: str) -> ExportInfo:
    """Convert a checkpoint into a CTranslate2 folder at `out_dir` (replaced if it exists).

    Raises:
        ExportError: unknown quantization, ctranslate2 missing, or a model it cannot express.
        CheckpointError: the checkpoint cannot be read.
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(
            f"--quantization {quantization}: choose one of {', '.join(QUANTIZATIONS)}."
        )
    state = load_checkpoint(checkpoint)
    step = state.get("step")
    model, tokenizer, cfg = model_from_state(state, checkpoint, torch.device("cpu"))
    del state
    spec = build_spec(model, cfg.model, *vocabularies(tokenizer))
    info = ExportInfo(cfg=cfg, quantization=quantization, checkpoint=str(checkpoint), step=step)
    if out_dir.exists() and not is_exported(out_dir) and any(out_dir.iterdir()):
        raise ExportError(
            f"{out_dir} exists and is not an exported model: give a new or empty folder "
            "(an earlier export there is replaced)."
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Written beside OUT_DIR, then renamed into place: a failed export leaves no half folder.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        spec.validate()
        spec.optimize(quantization=quantization)
        spec.save(str(tmp))
        tokenizer.save(tmp)
        record = {"format_version": EXPORT_FORMAT, **dataclasses.asdict(info)}
        (tmp / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported %s to %s (%s)", checkpoint, out_dir, quantization)
    return info


def read_export(folder: Path) -> tuple[ExportInfo, Tokenizer]:
    """The run config, export record and tokenizer of an exported folder.

    Raises:
        CheckpointError: export.json or the tokenizer is missing or unreadable.
    """
    try:
        record: dict[str, Any] = json.loads((folder / EXPORT_FILE).read_text("utf-8"))
        tokenizer = Tokenizer.load(folder)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: not a usable exported folder ({error}).") from error
    if record.get("format_version") != EXPORT_FORMAT:
        raise CheckpointError(
            f"{folder / EXPORT_FILE}: format {record.get('format_version')!r}, expected "
            f"{EXPORT_FORMAT}; export the checkpoint again with this version."
        )
    cfg = run_config_from_checkpoint({"config": record["cfg"]})
    info = ExportInfo(cfg, record["quantization"], record["checkpoint"], record["step"])
    return info, tokenizer


__all__ = [
    "DEFAULT_QUANTIZATION",
    "QUANTIZATIONS",
    "ExportError",
    "ExportInfo",
    "export_checkpoint",
    "is_exported",
    "read_export",
]
