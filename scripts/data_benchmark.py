#!/usr/bin/env python
"""Prepare synthetic corpora of 0.1M, 1M and 5M pairs and train a few updates on each, printing
preparation speed, peak memory, time to the first update, tokens/s and resume time
(see transformer/benchmarks/data_scale.py): `python scripts/data_benchmark.py --sizes 0.1M,1M`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformer.benchmarks.data_scale import main  # noqa: E402

if __name__ == "__main__":
    main()
