#!/usr/bin/env python
"""Write a synthetic parallel corpus of N pairs from a small one (by default Multi30k's training
split from $MULTI30K_DIR): `python scripts/make_corpus.py --pairs 1M --out corpora/big/train`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformer.data.synthetic import main  # noqa: E402

if __name__ == "__main__":
    main()
