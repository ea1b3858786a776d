#!/usr/bin/env python
"""Decoding speed and BLEU, ours against CTranslate2: `python scripts/decoding_benchmark.py RUN`."""

import sys

from transformer.benchmarks.decoding import main

if __name__ == "__main__":
    sys.exit(main())
