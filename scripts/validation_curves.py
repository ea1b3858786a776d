#!/usr/bin/env python
"""Print runs' validation curves side by side: `python scripts/validation_curves.py RUN ...`.

Reads the "validation at update N: ..." lines of each RUN/train.log and prints a Markdown table
with a row per run and a column per update. A resumed run's later session wins where it
validated an update again, and `train.resume=false` starts the run's curve over, as training
itself does. An update a run did not validate stays blank.

    python scripts/validation_curves.py runs/a/en-de runs/b/en-de --metric ppl --every 500
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

VALIDATION = re.compile(
    r"- validation at update (\d+): valid_loss ([\d.]+) \| valid_ppl ([\d.]+)"
    r"(?: \| valid_bleu ([\d.]+))?"
)
STARTING_OVER = "train.resume=false: starting over"
METRICS = {"loss": 2, "ppl": 3, "bleu": 4}  # regex group of each metric


def curve(log: Path, metric: str) -> dict[int, float]:
    """Update -> metric from a run's train.log (the last value logged for each update)."""
    points: dict[int, float] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if STARTING_OVER in line:
            points = {}
        elif (match := VALIDATION.search(line)) and match.group(METRICS[metric]) is not None:
            points[int(match.group(1))] = float(match.group(METRICS[metric]))
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (each with a train.log)")
    parser.add_argument("--metric", choices=sorted(METRICS), default="bleu")
    parser.add_argument("--every", type=int, default=0, help="only updates divisible by N")
    parser.add_argument("--from", dest="first", type=int, default=0, help="first update shown")
    parser.add_argument("--to", dest="last", type=int, default=0, help="last update (0: all)")
    args = parser.parse_args()
    missing = [str(run) for run in args.runs if not (run / "train.log").is_file()]
    if missing:
        print(f"error: no train.log in {', '.join(missing)}", file=sys.stderr)
        return 2
    curves = {str(run): curve(run / "train.log", args.metric) for run in args.runs}
    updates = sorted(
        u
        for u in set().union(*curves.values())
        if u >= args.first
        and (not args.last or u <= args.last)
        and (not args.every or u % args.every == 0)
    )
    if not updates:
        print(f"no validation {args.metric} in the given range", file=sys.stderr)
        return 1
    print(f"| {args.metric} at update | " + " | ".join(f"{u:,}" for u in updates) + " |")
    print("|---|" + "---|" * len(updates))
    for name, points in curves.items():
        cells = [f"{points[u]:g}" if u in points else "" for u in updates]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
