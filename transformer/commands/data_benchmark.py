"""`python scripts/data_benchmark.py [--sizes ...]`: preparation and training at growing corpus
sizes (`transformer.benchmarks.data_scale`)."""

from __future__ import annotations

from transformer.benchmarks import data_scale
from transformer.commands.edge import guarded


def main(argv: list[str] | None = None) -> int:
    """`scripts/data_benchmark.py [options]`; returns the exit status."""
    return guarded(lambda: data_scale.run(argv))
