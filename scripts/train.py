#!/usr/bin/env python
"""Train a Transformer: `python scripts/train.py [key=value ...]` (Hydra overrides).

Re-running the same command resumes from the run folder's checkpoints/last.pt.
Distributed: `torchrun --nproc_per_node=N scripts/train.py [key=value ...]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from transformer import cli  # noqa: E402

cli.register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    cli.train(cfg)


if __name__ == "__main__":
    sys.argv += cli.rank_overrides()  # under torchrun, rank 0 alone writes .hydra/ and train.log
    main()
