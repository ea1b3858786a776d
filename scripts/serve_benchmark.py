"""Load on tmt-serve, batched and not: `python scripts/serve_benchmark.py RUN --threads 2`."""

from transformer.commands.serve_benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
