#!/usr/bin/env python
"""Fetch the corpus, train the SentencePiece model and print corpus statistics before training.

Takes the same Hydra overrides as training: `python scripts/prepare_data.py data=multi30k_de_en`.
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
    cli.prepare(cfg)


if __name__ == "__main__":
    main()
