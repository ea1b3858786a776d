"""`python scripts/time_to_bleu.py [overrides] --budgets N ...`: train given time budgets, then a
table and a PNG of validation and test BLEU against wall-clock minutes
(`transformer.benchmarks.time_to_bleu`)."""

from __future__ import annotations

from transformer.benchmarks import time_to_bleu
from transformer.commands.edge import guarded


def main(argv: list[str] | None = None) -> int:
    """The time-to-BLEU benchmark; returns the exit status."""
    return guarded(lambda: time_to_bleu.run(argv))
