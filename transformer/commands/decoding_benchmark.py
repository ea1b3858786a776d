"""`python scripts/decoding_benchmark.py RUN_OR_CKPT`: our beam search against CTranslate2,
speed and BLEU (`transformer.benchmarks.decoding`)."""

from __future__ import annotations

from transformer.benchmarks import decoding
from transformer.commands.edge import guarded


def main(argv: list[str] | None = None) -> int:
    """`scripts/decoding_benchmark.py RUN_OR_CKPT [options]`; returns the exit status."""
    return guarded(lambda: decoding.run(argv))
