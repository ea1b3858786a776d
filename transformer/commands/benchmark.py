"""`tmt-benchmark [options]` (scripts/benchmark.py): training (and, with --checkpoint, decoding)
speed, printed as figures (`transformer.benchmarks.training_speed`)."""

from __future__ import annotations

from transformer.benchmarks import training_speed
from transformer.commands.edge import guarded


def main(argv: list[str] | None = None) -> int:
    """`tmt-benchmark [options]`; returns the exit status."""
    return guarded(lambda: training_speed.run(argv))
