"""`tmt-fork RUN_DIR --update N` (scripts/fork_run.py): the next training run in RUN_DIR resumes
from update N; the checkpoints of later updates are set aside (`CheckpointDir.fork`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from transformer.checkpoint import CheckpointError
from transformer.training.checkpoint_dir import CheckpointDir


def fork_main(argv: list[str] | None = None) -> int:
    """`scripts/fork_run.py RUN_DIR --update N`: resume RUN_DIR from update N next time."""
    parser = argparse.ArgumentParser(
        description="Make an earlier update's checkpoint the one the next training run resumes "
        "from; the checkpoints of later updates move to checkpoints/later-than-<N>.<time>/."
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holding checkpoints/)")
    parser.add_argument("--update", type=int, required=True, help="the update to fork from")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        CheckpointDir(args.run_dir / "checkpoints").fork(args.update)
    except (CheckpointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.run_dir} now resumes from update {args.update}: run the training command again.")
    return 0
