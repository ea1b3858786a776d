"""`python scripts/gpu_check.py [--cpu] [--out DIR]`: the GPU check, its speed and time to BLEU
(`transformer.benchmarks.gpu_check`); exit 1 when a part failed."""

from __future__ import annotations

from transformer.benchmarks import gpu_check
from transformer.commands.edge import guarded


def main(argv: list[str] | None = None) -> int:
    """`scripts/gpu_check.py [options]`; returns the exit status."""
    return guarded(lambda: gpu_check.run(argv))
