#!/usr/bin/env python
"""Decode a test set with a checkpoint and report sacreBLEU/chrF, as `tmt-evaluate`.

`python scripts/evaluate.py CKPT [--split test_2017_flickr] [--src FILE --ref FILE] ...`
(`--help` lists the options).
"""

import sys

from transformer.inference_cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
