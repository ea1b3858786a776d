"""The exported folder: CTranslate2's model files, our tokenizer, and the run config.

Layout of OUT_DIR: `model.bin`, `config.json` and the vocabulary files (written by CTranslate2),
`spm.model` (or one model per language) and `tokenizer.json` (our tokenizer, as a run folder
holds them), and `export.json` (the run config, the quantization, and the checkpoint it came
from), so that the folder is usable on its own: `evaluate.py OUT_DIR` scores the same default
test split as the checkpoint would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
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
from transformer.export.swap import new_folder, recover, swap_in

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
QUANTIZATIONS = ("int8", "int8_float32", "int16", "float16", "float32")
# What an export from before file hashes may hold (later ones list their files in export.json).
_EXPORT_NAMES = {
    EXPORT_FILE, "model.bin", "config.json", "tokenizer.json", "shared_vocabulary.json",
    "source_vocabulary.json", "target_vocabulary.json", "shared_vocabulary.txt",
    "source_vocabulary.txt", "target_vocabulary.txt",
}  # fmt: skip
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
    """Convert a checkpoint into a CTranslate2 folder at `out_dir` (an earlier export there is
    replaced; any other non-empty folder is refused).

    Raises:
        ExportError: unknown quantization, ctranslate2 missing, a model it cannot express, or an
            `out_dir` that is not free for an export.
        CheckpointError: the checkpoint cannot be read.
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(
            f"--quantization {quantization}: choose one of {', '.join(QUANTIZATIONS)}."
        )
    given, out_dir = out_dir, Path(os.path.abspath(out_dir))  # `.`, `a/..`, `out/` have names
    if not out_dir.name:
        raise ExportError(f"{given}: give a folder to write the export into, not /.")
    recover(out_dir, _complete)
    _check_free(out_dir)
    state = load_checkpoint(checkpoint)
    step = state.get("step")
    model, tokenizer, cfg = model_from_state(state, checkpoint, torch.device("cpu"))
    del state
    spec = build_spec(model, cfg.model, *vocabularies(tokenizer))
    info = ExportInfo(cfg=cfg, quantization=quantization, checkpoint=str(checkpoint), step=step)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_folder(out_dir)
    try:
        spec.validate()
        spec.optimize(quantization=quantization)
        spec.save(str(tmp))
        tokenizer.save(tmp)
        files = {path.name: _sha256(path) for path in sorted(tmp.iterdir())}
        record = {"format_version": EXPORT_FORMAT, **dataclasses.asdict(info), "files": files}
        (tmp / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
        swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported %s to %s (%s)", checkpoint, out_dir, quantization)
    return info


def _check_free(out_dir: Path) -> None:
    """Refuse an `out_dir` that holds anything but an earlier export."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file: give a new or empty folder for the export.")
    names = {path.name for path in out_dir.iterdir()}
    if names and not is_exported(out_dir):
        raise ExportError(
            f"{out_dir} exists and is not an exported model: give a new or empty folder "
            "(an earlier export there is replaced)."
        )
    foreign = sorted(name for name in names if not _is_export_file(out_dir, name))
    if foreign:
        raise ExportError(
            f"{out_dir} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, "
            "which the export there did not write: move them away or give another folder "
            "(replacing the export would delete them)."
        )


def _is_export_file(folder: Path, name: str) -> bool:
    try:
        listed = json.loads((folder / EXPORT_FILE).read_text("utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        listed = None
    if isinstance(listed, dict):
        return name == EXPORT_FILE or name in listed
    return name in _EXPORT_NAMES or (name.startswith("spm.") and name.endswith(".model"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _complete(folder: Path) -> bool:
    """Whether `folder` holds a complete export (every file it lists, unchanged)."""
    try:
        check_files(folder, json.loads((folder / EXPORT_FILE).read_text("utf-8")))
    except (OSError, ValueError, CheckpointError):
        return False
    return True


def check_files(folder: Path, record: dict[str, Any]) -> None:
    """Check that each file export.json lists is present and unchanged (older exports list none).

    Raises:
        CheckpointError: naming the first missing or changed file.
    """
    listed = record.get("files")
    if listed is None:
        return
    if not isinstance(listed, dict):
        raise CheckpointError(f"{folder / EXPORT_FILE}: 'files' is not a mapping.")
    for name, expected in listed.items():
        path = folder / name
        if Path(name).name != name:
            raise CheckpointError(f"{folder / EXPORT_FILE} lists {name!r}, not a file name.")
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: export the checkpoint again (tmt-export).")
        if _sha256(path) != expected:
            raise CheckpointError(
                f"{path} is not the file that was exported (truncated, changed or swapped: its "
                "SHA-256 differs from export.json's): export the checkpoint again (tmt-export)."
            )


def read_export(folder: Path) -> tuple[ExportInfo, Tokenizer]:
    """The run config, export record and tokenizer of an exported folder.

    Raises:
        CheckpointError: export.json or the tokenizer is missing or unreadable.
    """
    try:
        record: dict[str, Any] = json.loads((folder / EXPORT_FILE).read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder / EXPORT_FILE}: not readable ({error}).") from error
    if not isinstance(record, dict) or record.get("format_version") != EXPORT_FORMAT:
        version = record.get("format_version") if isinstance(record, dict) else None
        raise CheckpointError(
            f"{folder / EXPORT_FILE}: format {version!r}, expected "
            f"{EXPORT_FORMAT}; export the checkpoint again with this version."
        )
    check_files(folder, record)
    try:
        tokenizer = Tokenizer.load(folder)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: not a usable exported folder ({error}).") from error
    cfg = run_config_from_checkpoint({"config": record["cfg"]})
    info = ExportInfo(cfg, record["quantization"], record["checkpoint"], record["step"])
    return info, tokenizer


def recover_export(folder: Path) -> None:
    """Finish or undo an export into `folder` that a kill interrupted (see `swap`)."""
    folder = Path(os.path.abspath(folder))
    if folder.name:
        recover(folder, _complete)


__all__ = [
    "DEFAULT_QUANTIZATION",
    "QUANTIZATIONS",
    "ExportError",
    "ExportInfo",
    "check_files",
    "export_checkpoint",
    "is_exported",
    "read_export",
    "recover_export",
]
