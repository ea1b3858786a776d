#!/usr/bin/env python
"""Fork a run from an earlier update: `python scripts/fork_run.py RUN_DIR --update N`.

The next training command in RUN_DIR then resumes from update N; the checkpoints of later
updates move to RUN_DIR/checkpoints/later-than-N.<time>/ (nothing is deleted).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformer.training.fork import fork_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(fork_main())
