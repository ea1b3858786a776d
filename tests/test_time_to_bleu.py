"""The time-to-BLEU benchmark: reading budgeted runs' metrics.jsonl into a table and a PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import ROOT

from transformer.benchmarks import time_to_bleu

T0 = 1_700_000_000.0
SIGNATURE = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


def write_run(
    folder: Path, budget: float, valid: list[tuple[float, float]], test: float, replanned: int = 0
) -> None:
    """A budgeted run's events: its start, plan, a re-plan to `replanned` updates if given,
    validations (minutes, BLEU) and test score."""
    folder.mkdir(parents=True)
    events = [
        {"event": "start", "time": T0 + 20, "update": 0, "hardware": "Some CPU, 2 threads"},
        {"event": "budget_plan", "time": T0 + 30, "update": 0, "started_at": T0,
         "max_updates": 100 * budget, "budget_minutes": budget},
        *[{"event": "budget_replan", "time": T0 + 90, "update": 1, "max_updates": replanned}
          for _ in range(bool(replanned))],
        *[{"event": "validation", "time": T0 + 60 * m, "update": 1, "valid_bleu": b}
          for m, b in valid],
        {"event": "test", "time": T0 + 60 * budget - 3, "update": 100, "split": "test_2016_flickr",
         "checkpoint": "best.pt (update 100)", "bleu": test, "bleu_signature": SIGNATURE,
         "bleu_lowercase": test + 0.5, "chrf": 50.0},
    ]  # fmt: skip
    text = "".join(json.dumps(event) + "\n" for event in events)
    (folder / "metrics.jsonl").write_text(text, encoding="utf-8")


def test_table_and_png_from_the_runs_metrics(tmp_path: Path) -> None:
    out = tmp_path / "ttb"
    write_run(out / "multi30k_de_en" / "5min", 5, [(2.0, 10.0), (4.5, 20.0)], 21.0)
    write_run(out / "multi30k_de_en" / "10min", 10, [(5.0, 25.0), (9.0, 33.0)], 34.25, 900)
    time_to_bleu.run(["--no-train", "--budgets", "5", "10", "--out", str(out)])
    md = (out / "multi30k_de_en" / "time_to_bleu.md").read_text()
    assert "Some CPU, 2 threads" in md and "flags:" in md
    row = (
        "| 10 min | 100 of 900 | 9.95 min | 33.00 | 34.25 | 34.75 | 50.00 | best.pt (update 100) |"
    )
    assert row in md
    assert SIGNATURE in md
    png = (out / "multi30k_de_en" / "time_to_bleu.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_a_folder_without_a_plan_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "multi30k_de_en" / "5min"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text('{"event": "start", "time": 1, "update": 0}\n')
    with pytest.raises(ValueError, match="5min: no budget_plan event"):
        time_to_bleu.read_run(5, folder)


@pytest.mark.slow
def test_script_trains_a_budget_and_plots_it(tmp_path: Path) -> None:
    """A 2.5-minute budget of the smoke experiment, end to end (needs MULTI30K_DIR)."""
    out = tmp_path / "ttb"
    command = [sys.executable, str(ROOT / "scripts" / "time_to_bleu.py"), "experiment=smoke",
               "train.cpu_threads=1", "--budgets", "2.5", "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, cwd=tmp_path)
    run = time_to_bleu.read_run(2.5, out / "multi30k_de_en" / "2.5min")
    assert run.test is not None and run.valid and run.updates >= 10
    assert run.wall_minutes <= 2.5 + 1.0  # the command's wall time, measured from outside
    assert (out / "multi30k_de_en" / "time_to_bleu.png").is_file()
