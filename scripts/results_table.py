#!/usr/bin/env python
"""Print the results table from finished runs: `python scripts/results_table.py RUN ...`.

Each RUN is a run folder (e.g. runs/multi30k/en-de). A row per JSON report that
`tmt-evaluate` (scripts/evaluate.py) wrote under RUN/checkpoints/eval/, with cased and
lowercased BLEU and chrF, and from RUN/metrics.jsonl the run's training: the wall time of its
sessions, summed (so a resumed run counts every session, but not the updates a killed session
made after its last checkpoint), the update and reason it stopped at, and the hardware those
sessions trained on. An ensemble's row names its other members, whose
training is not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from transformer.run.layout import METRICS_FILE
from transformer.run.metrics_log import read_events, summarize


def rows(run: Path) -> list[dict]:
    """One row per evaluation report of the run, test sets in name order."""
    trained = summarize(read_events(run))
    training = f"{trained.wall} ({trained.update:,} updates, {trained.reason})"
    trained_on = " + ".join(trained.hardware) or "not logged"
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
                "training": training,
                "hardware": trained_on,
                "model": f"{model}, beam {report['decode']['beam_size']}",
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    args = parser.parse_args()
    missing = [str(run) for run in args.runs if not (run / METRICS_FILE).is_file()]
    if missing:
        print(f"error: no {METRICS_FILE} in {', '.join(missing)}", file=sys.stderr)
        return 2
    table = [row for run in args.runs for row in rows(run)]
    if not table:
        print("no evaluation reports found (run tmt-evaluate first)", file=sys.stderr)
        return 1
    header = list(table[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row[key] for key in header) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
