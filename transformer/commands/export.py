"""`tmt-export CHECKPOINT OUT_DIR [--quantization ...]` (scripts/export.py): a checkpoint as a
CTranslate2 folder.

OUT_DIR holds everything needed to translate without the checkpoint: `tmt-translate OUT_DIR` and
`tmt-evaluate OUT_DIR` decode it with CTranslate2 (`pip install ".[ct2]"`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from transformer.commands.arguments import setup_logging
from transformer.commands.edge import guarded
from transformer.export.folder import DEFAULT_QUANTIZATION, QUANTIZATIONS, export_checkpoint
from transformer.run.lookup import resolve_checkpoint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tmt-export",
        description="Convert a checkpoint into a CTranslate2 folder that tmt-translate and "
        "tmt-evaluate decode in its place.",
    )
    parser.add_argument("checkpoint", type=Path, help="a .pt checkpoint or a run folder")
    parser.add_argument("out_dir", type=Path, help="the folder to write (replaced if present)")
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default=DEFAULT_QUANTIZATION,
        help=f"weight type of the exported model (default {DEFAULT_QUANTIZATION}: at no BLEU "
        "cost, the fastest at base size in docs/finetune-export.md; int8 is faster for small "
        "models)",
    )
    return parser


def _export(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.checkpoint)
    info = export_checkpoint(checkpoint, args.out_dir, args.quantization)
    step = f", update {info.step}" if info.step is not None else ""
    print(f"exported {checkpoint}{step} to {args.out_dir} ({info.quantization})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`tmt-export CHECKPOINT OUT_DIR`; returns the exit status."""
    setup_logging(logging.WARNING)
    return guarded(lambda: _export(_parser().parse_args(argv)))
