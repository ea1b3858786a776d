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

from transformer.commands.edge import guarded
from transformer.errors import UserError
from transformer.run.layout import EVAL, METRICS_FILE, checkpoints_dir
from transformer.run.metrics_log import read_events, summarize


def rows(run: Path) -> list[dict]:
    """One row per evaluation report of the run, test sets in name order."""
    trained = summarize(read_events(run))
    training = f"{trained.wall} ({trained.update:,} updates, {trained.reason})"
    trained_on = " + ".join(trained.hardware) or "not logged"
    out = []
    for report_path in sorted((checkpoints_dir(run) / EVAL).glob("*.json")):
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    return parser


def _run(args: argparse.Namespace) -> int:
    missing = [str(run) for run in args.runs if not (run / METRICS_FILE).is_file()]
    if missing:
        raise UserError(f"no {METRICS_FILE} in {', '.join(missing)}: give tmt-train's run folders.")
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


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return guarded(lambda: _run(_parser().parse_args(argv)))
