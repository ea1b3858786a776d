"""`tmt-fork RUN_DIR --update N` (scripts/fork_run.py): the next training run in RUN_DIR resumes
from update N; the checkpoints of later updates are set aside (`transformer.run.fork`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from transformer.commands.edge import guarded
from transformer.run.checkpoint_dir import CheckpointDir
from transformer.run.fork import fork
from transformer.run.layout import checkpoints_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tmt-fork",
        description="Make an earlier update's checkpoint the one the next training run resumes "
        "from; the checkpoints of later updates move to checkpoints/later-than-<N>.<time>/.",
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holding checkpoints/)")
    parser.add_argument("--update", type=int, required=True, help="the update to fork from")
    return parser


def _fork(args: argparse.Namespace) -> int:
    fork(CheckpointDir(checkpoints_dir(args.run_dir)), args.update)
    print(f"{args.run_dir} now resumes from update {args.update}: run tmt-train again.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`tmt-fork RUN_DIR --update N`; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return guarded(lambda: _fork(_parser().parse_args(argv)))
