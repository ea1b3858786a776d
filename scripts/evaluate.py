#!/usr/bin/env python
"""Decode a test set with a checkpoint and report sacreBLEU/chrF: `python scripts/evaluate.py CKPT`.

Options: --split test_2017_flickr, --src FILE --ref FILE, --beam-size, --average-last K, ...
(`--help` lists them).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformer.inference_cli import evaluate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(evaluate_main())
