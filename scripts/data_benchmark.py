"""Prepare synthetic corpora of 0.1M, 1M and 5M pairs and train a few updates on each, printing
preparation speed, peak memory, time to the first update, tokens/s and resume time
(see transformer/benchmarks/data_scale.py): `python scripts/data_benchmark.py --sizes 0.1M,1M`.
"""

from transformer.commands.data_benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
