#!/usr/bin/env python
"""Training and decoding speed, as `tmt-benchmark` (`--help` lists the options)."""

from transformer.benchmarks.training_speed import main

if __name__ == "__main__":
    main()
