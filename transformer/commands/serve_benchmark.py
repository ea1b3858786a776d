"""`python scripts/serve_benchmark.py MODEL [options]`: load on tmt-serve at 1 to 128 clients,
batched against unbatched, with a soak (`transformer.benchmarks.serve_load`)."""

from __future__ import annotations

from transformer.benchmarks import serve_load
from transformer.commands.edge import guarded


def main(argv: list[str] | None = None) -> int:
    """The serving load benchmark; returns the exit status (1 if a request failed)."""
    return guarded(lambda: serve_load.run(argv))
