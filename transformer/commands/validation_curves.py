"""Print runs' validation curves side by side: `python scripts/validation_curves.py RUN ...`.

Reads the validation events of each RUN/metrics.jsonl and prints a Markdown table with a row per
run and a column per update. A resumed run's later session wins where it validated an update
again, and a run started over (`train.resume=false`) has only its new curve, as training
itself does. An update a run did not validate stays blank.

    python scripts/validation_curves.py runs/a/en-de runs/b/en-de --metric ppl --every 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transformer.commands.edge import guarded
from transformer.errors import UserError
from transformer.run.layout import METRICS_FILE
from transformer.run.metrics_log import read_events, validation_curve

METRICS = ("bleu", "loss", "ppl")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", help=f"run folders (each with {METRICS_FILE})"
    )
    parser.add_argument("--metric", choices=METRICS, default="bleu")
    parser.add_argument("--every", type=int, default=0, help="only updates divisible by N")
    parser.add_argument("--from", dest="first", type=int, default=0, help="first update shown")
    parser.add_argument("--to", dest="last", type=int, default=0, help="last update (0: all)")
    return parser


def _run(args: argparse.Namespace) -> int:
    missing = [str(run) for run in args.runs if not (run / METRICS_FILE).is_file()]
    if missing:
        raise UserError(f"no {METRICS_FILE} in {', '.join(missing)}: give tmt-train's run folders.")
    curves = {str(run): validation_curve(read_events(run), args.metric) for run in args.runs}
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


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return guarded(lambda: _run(_parser().parse_args(argv)))
