#!/usr/bin/env python
"""Translate with a checkpoint: sentences as arguments, `--input FILE`, or standard input.

python scripts/translate.py CKPT "A man rides a bike."
echo "Ein Mann fährt Fahrrad." | python scripts/translate.py CKPT
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformer.inference_cli import translate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(translate_main())
