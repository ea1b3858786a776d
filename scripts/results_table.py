#!/usr/bin/env python
"""Print the README's results table from finished runs: `python scripts/results_table.py RUN ...`.

Each RUN is a run folder (e.g. runs/multi30k/en-de). A row per JSON report that
`scripts/evaluate.py` wrote under RUN/checkpoints/eval/, with cased and lowercased BLEU and chrF,
and the run's training wall time: the sum, over the sessions in RUN/train.log, of the time from
a session's first line to its "stopped at update" line (so a resumed run counts every session),
and the hardware those sessions logged. An ensemble's row names its other members, whose
training is not counted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\]")
SESSION_START = "- run folder: "
SESSION_RESUMED = re.compile(r"- resuming from .* \(update (\d+)\)")
SESSION_STOP = re.compile(r"- stopped at update (\d+): ([^(\n]+)")
STARTING_OVER = "train.resume=false: starting over"
HARDWARE = re.compile(r"- hardware: (.+)$")


def training_time(log: Path) -> tuple[datetime.timedelta, int, str]:
    """(wall time over all sessions, last update, why training stopped) from a run's train.log.

    A session that made no update (one that only wrote final.pt) adds its time but keeps the
    earlier stop reason; a session killed before its "stopped" line adds the time up to its last
    line; `train.resume=false` starts the count again.
    """
    total, start, first_step = datetime.timedelta(), None, 0
    step, reason = 0, "not stopped"
    when = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        stamp = STAMP.match(line)
        if stamp is None:
            continue
        previous, when = when, datetime.datetime.fromisoformat(stamp.group(1))
        if SESSION_START in line:
            if start is not None:  # the previous session ended without a "stopped" line
                total += previous - start
            start, first_step = when, 0
        elif resumed := SESSION_RESUMED.search(line):
            first_step = int(resumed.group(1))
        elif STARTING_OVER in line:
            total, step, reason = datetime.timedelta(), 0, "not stopped"
        elif (stop := SESSION_STOP.search(line)) and start is not None:
            total += when - start
            if int(stop.group(1)) != first_step or reason == "not stopped":
                step, reason = int(stop.group(1)), stop.group(2).strip()
            start = None
    return total, step, reason


def hardware(log: Path) -> str:
    """The hardware the run's sessions logged, each kind once, in order ("not logged" if none)."""
    seen: list[str] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if STARTING_OVER in line:
            seen = []
        elif (match := HARDWARE.search(line)) and match.group(1) not in seen:
            seen.append(match.group(1))
    return " + ".join(seen) or "not logged"


def rows(run: Path) -> list[dict]:
    """One row per evaluation report of the run, test sets in name order."""
    wall, step, reason = training_time(run / "train.log")
    trained_on = hardware(run / "train.log")
    out = []
    for report_path in sorted((run / "checkpoints" / "eval").glob("*.json")):
        report = json.loads(report_path.read_text(encoding="utf-8"))
        metrics = report["metrics"]
        model = Path(report["checkpoint"]).name
        if report.get("description"):  # final.pt says which model it is
            model = f"{model}: {report['description']}"
        if report["averaged"]:
            model = f"average of {len(report['averaged'])} checkpoints"
        if report.get("ensemble"):  # the training column is this run's alone
            model = f"ensemble of {model} and {', '.join(report['ensemble'])}"
        out.append(
            {
                "direction": report["direction"].replace("-", "→"),
                "test set": report["data"] if isinstance(report["data"], str) else "files",
                "BLEU": f"{metrics['bleu']:.1f}",
                "BLEU (lowercased)": f"{metrics['bleu_lowercase']:.1f}",
                "chrF": f"{metrics['chrf']:.1f}",
                "training": f"{wall} ({step:,} updates, {reason})",
                "hardware": trained_on,
                "model": f"{model}, beam {report['decode']['beam_size']}",
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    args = parser.parse_args()
    table = [row for run in args.runs for row in rows(run)]
    if not table:
        print("no evaluation reports found (run scripts/evaluate.py first)", file=sys.stderr)
        return 1
    header = list(table[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row[key] for key in header) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
