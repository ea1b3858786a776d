#!/usr/bin/env python
"""Load on tmt-serve, batched and not: `python scripts/serve_benchmark.py RUN --threads 2`."""

import sys

from transformer.benchmarks.serve_load import main

if __name__ == "__main__":
    sys.exit(main())
