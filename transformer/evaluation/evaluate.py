"""Decode a split (or a pair of text files) with a model, write the hypotheses, report metrics."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transformer.config import DataConfig
from transformer.data.corpus import (
    CorpusError,
    CorpusSplit,
    changed_data,
    load_split,
    read_split,
    source_record,
)
from transformer.data.corpus import split_name as split_name  # for the inference commands
from transformer.data.text_files import read_lines
from transformer.decoding.translator import Translator
from transformer.evaluation.metrics import Metrics, compute_metrics
from transformer.runtime import disk_full_is_one_line

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Hypotheses of one decoded set, their scores, and the decoding time."""

    hyps: list[str]
    metrics: Metrics
    seconds: float

    @property
    def sentences_per_second(self) -> float:
        return len(self.hyps) / max(self.seconds, 1e-9)


def text_lines(path: Path) -> list[str]:
    """A UTF-8 file's lines, one sentence each: split at "\\n" only, so that a U+2028 or form feed
    inside a line (which `str.splitlines` would split at) cannot misalign sources and references,
    and without a final "\\r".

    Raises:
        CorpusError: the file is missing or is not UTF-8 (naming the line).
    """
    return [line.removesuffix("\r") for line in read_lines(path)]


def split_texts(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """Sources and references of a corpus split ("test", "validation" or a corpus name).

    Raises:
        CorpusError: the split cannot be read (see `transformer.data.corpus.read_split`).
    """
    dataset = load_split(cfg, split)
    return list(dataset["src"]), list(dataset["tgt"])


def read_recorded_split(
    cfg: DataConfig, split: str, recorded: dict[str, dict], model: str
) -> tuple[CorpusSplit, dict[str, str]]:
    """A corpus split, checked against what the run that trained `model` read for it, and the
    files read ({absolute path: sha256}) for the report.

    A run's relative data paths resolve against the current folder: from another folder they may
    name other files, which are refused rather than scored.

    Raises:
        CorpusError: the split cannot be read, or its files differ from the recorded ones.
    """
    read = read_split(cfg, split)
    # A user's files only: a hub corpus' identity is its `datasets` fingerprint, not its bytes.
    changed = changed_data(recorded.get(split, {}), source_record(read)) if read.files else []
    if changed:
        raise CorpusError(
            f"{'; '.join(changed)} when {model} was trained (paths resolve against {Path.cwd()}): "
            "run from the folder the run was trained in, or give the files with --src and --ref."
        )
    return read, {str(Path(path).resolve()): sha for path, sha in read.files.items()}


def check_aligned(sources: list[str], refs: list[str], src_name: str, ref_name: str) -> None:
    """Check that sources and references are non-empty and align line by line (on the whole
    input: a cut to the first N sentences would hide a mismatch).

    Raises:
        ValueError: naming the empty or mismatched inputs.
    """
    empty = [name for name, lines in ((src_name, sources), (ref_name, refs)) if not lines]
    if empty:
        raise ValueError(
            f"{' and '.join(empty)}: no sentences to score; give files with one sentence a line."
        )
    if len(sources) != len(refs):
        raise ValueError(
            f"{src_name} has {len(sources)} lines but {ref_name} has {len(refs)}; sources and "
            "references must align line by line."
        )


def evaluate(translator: Translator, sources: list[str], refs: list[str]) -> EvalResult:
    """Translate `sources` and score them against `refs` (aligned, one reference each)."""
    if len(sources) != len(refs):
        raise ValueError(f"{len(sources)} sources but {len(refs)} references; they must align.")
    start = time.perf_counter()
    hyps = translator.translate(sources)
    if translator.device.type == "cuda":
        torch.cuda.synchronize(translator.device)
    seconds = time.perf_counter() - start
    result = EvalResult(hyps=hyps, metrics=compute_metrics(hyps, refs), seconds=seconds)
    logger.info(
        "decoded %d sentences in %.1f s (%.1f sentences/s)",
        len(hyps),
        seconds,
        result.sentences_per_second,
    )
    return result


def write_outputs(
    result: EvalResult, hyp_path: Path, report_path: Path, info: dict[str, Any]
) -> dict[str, Any]:
    """Write the hypotheses (one a line) and a JSON report of `info` plus metrics and timing.

    Returns:
        The report as written.
    """
    report = {
        **info,
        "n_sentences": len(result.hyps),
        "metrics": result.metrics.to_dict(),
        "seconds": round(result.seconds, 3),
        "sentences_per_second": round(result.sentences_per_second, 2),
        "hypotheses": str(hyp_path),
    }
    _write_text(hyp_path, "".join(h + "\n" for h in result.hyps))
    _write_text(report_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _write_text(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a temporary file beside it, synced, then renamed.

    Raises:
        DiskFullError: no space left, naming the folder (no partial file is left).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with disk_full_is_one_line(path.parent, f"{path.name} was not written: free some space "
                                   "and run the command again."):  # fmt: skip
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
