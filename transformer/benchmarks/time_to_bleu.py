"""Time to quality: train one run per time budget, then tabulate and plot BLEU against minutes.

Each budget N runs `tmt-train train.budget_minutes=N` (plus the given overrides) in its own run
folder, timed from outside from the command's start to its exit. Then each run's metrics.jsonl
gives its plan, its validation BLEU at each validation (minutes since the command's start) and
its final test scores. Writes a Markdown table and a PNG of validation and test BLEU against
wall-clock minutes, both naming the CPU (model, AVX-512 and BF16 flags) and the thread count.

    python scripts/time_to_bleu.py --budgets 5 10 20 --data multi30k_de_en
    python scripts/time_to_bleu.py --no-train --budgets 5 10 20 --data multi30k_de_en  # re-plot
    python scripts/time_to_bleu.py experiment=smoke --budgets 2  # Hydra overrides come first

A budget whose run folder already holds a test score is not trained again (delete the folder,
or use another --out, to measure it again).

Time budgets mean something only on a machine with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformer.run.metrics_log import read_events
from transformer.runtime import cpu_name

WALL_FILE = "wall_seconds.json"  # the command's wall time measured from outside
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


@dataclass
class BudgetRun:
    """What one budgeted run's metrics.jsonl says."""

    budget: float
    folder: Path
    hardware: str = ""
    updates: int = 0  # planned
    done: int | None = None  # trained, when the test score came (a slow machine stops early)
    wall_minutes: float | None = None
    valid: list[tuple[float, float]] = field(default_factory=list)  # (minutes, BLEU)
    test: dict | None = None


def cpu_flags() -> str:
    """The CPU's vector and bf16 flags among FLAGS, from /proc/cpuinfo ("" elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return ""
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return " ".join(flag for flag in FLAGS if flag in present)
    return ""


def train_budget(budget: float, folder: Path, data: str, overrides: list[str]) -> None:
    """Run the budgeted training command; record its wall time from outside."""
    train = "from transformer.commands.train import main; raise SystemExit(main())"
    command = [
        sys.executable, "-c", train,
        f"data={data}", f"train.budget_minutes={budget:g}", f"hydra.run.dir={folder}", *overrides,
    ]  # fmt: skip
    print("$", " ".join(command[3:]), flush=True)
    began = time.time()
    status = subprocess.run(command).returncode
    if status != 0:  # the command printed why
        print(f"error: the {budget:g}-minute run exited with status {status}", file=sys.stderr)
        raise SystemExit(status)
    wall = {"command": command[3:], "wall_seconds": round(time.time() - began, 1)}
    (folder / WALL_FILE).write_text(json.dumps(wall) + "\n", encoding="utf-8")


def read_run(budget: float, folder: Path) -> BudgetRun:
    """The plan, validations and test scores of one run folder (its latest plan)."""
    run = BudgetRun(budget, folder)
    events = read_events(folder)
    plans = [e for e in events if e["event"] == "budget_plan"]
    if not plans:
        raise ValueError(f"{folder}: no budget_plan event in metrics.jsonl; not a budgeted run.")
    started = plans[-1]["started_at"]
    replans = [e for e in events if e["event"] == "budget_replan" and e["time"] >= started]
    run.updates = (replans or plans)[-1]["max_updates"]
    starts = [e for e in events if e["event"] == "start"]
    run.hardware = starts[-1]["hardware"] if starts else ""
    for event in events:
        if event["time"] < started:  # an earlier run in the folder
            continue
        if event["event"] == "validation" and event.get("valid_bleu") is not None:
            run.valid.append(((event["time"] - started) / 60, event["valid_bleu"]))
        elif event["event"] == "test":
            run.test = event
            run.done = event["update"]
            run.wall_minutes = (event["time"] - started) / 60
    wall = folder / WALL_FILE
    if wall.is_file():
        run.wall_minutes = json.loads(wall.read_text())["wall_seconds"] / 60
    return run


def machine_line(runs: list[BudgetRun]) -> str:
    """The CPU and threads the runs trained on (their start events), with the CPU's flags."""
    hardware = sorted({run.hardware for run in runs if run.hardware}) or [cpu_name()]
    return f"{'; '.join(hardware)} (flags: {cpu_flags() or 'unknown'})"


def table(runs: list[BudgetRun]) -> str:
    """Markdown: one row per budget."""
    lines = [
        f"Hardware: {machine_line(runs)}",
        "",
        "| budget | updates (of the plan) | command's wall time | last valid BLEU | test BLEU | "
        "test BLEU (lc) | chrF | model scored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        wall = f"{run.wall_minutes:.2f} min" if run.wall_minutes is not None else "—"
        valid = f"{run.valid[-1][1]:.2f}" if run.valid else "—"
        test = run.test or {}
        scores = [
            f"{test[k]:.2f}" if k in test else "—" for k in ("bleu", "bleu_lowercase", "chrf")
        ]
        lines.append(
            f"| {run.budget:g} min | {_updates(run)} | {wall} | {valid} | {' | '.join(scores)} | "
            f"{test.get('checkpoint', '—')} |"
        )
    if runs and runs[-1].test:
        lines += [
            "",
            f"Test split {runs[-1].test['split']}; BLEU {runs[-1].test['bleu_signature']}",
        ]
    return "\n".join(lines) + "\n"


def _updates(run: BudgetRun) -> str:
    if run.done is None or run.done == run.updates:
        return str(run.updates)
    return f"{run.done} of {run.updates}"


def plot(runs: list[BudgetRun], path: Path) -> None:
    """Validation BLEU curves and test BLEU points against minutes since each command's start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        (line,) = ax.plot(
            *zip(*run.valid, strict=True), marker="o", label=f"{run.budget:g} min: valid"
        )
        if run.test is not None and run.wall_minutes is not None:
            ax.plot(run.wall_minutes, run.test["bleu"], marker="*", markersize=14, ls="",
                    color=line.get_color(), label=f"{run.budget:g} min: test")  # fmt: skip
        ax.axvline(run.budget, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("wall-clock minutes since the command's start")
    ax.set_ylabel("BLEU (sacreBLEU 13a, cased)")
    ax.set_title(f"Time to BLEU\n{machine_line(runs)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", required=True, help="minutes")
    parser.add_argument("--data", default="multi30k_de_en", help="data config (direction)")
    parser.add_argument("--out", type=Path, default=Path("runs/time_to_bleu"),
                        help="run folders, the table and the PNG go here")  # fmt: skip
    parser.add_argument("--no-train", action="store_true", help="only read the run folders")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides for every run, before the options"
    )
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    """Train the budgets not yet run, then write the table and the PNG; returns the exit status."""
    args = parse_args(argv)
    runs = []
    for budget in args.budgets:
        folder = args.out / args.data / f"{budget:g}min"
        if not args.no_train and not _has_test(folder):
            train_budget(budget, folder, args.data, args.overrides)
        runs.append(read_run(budget, folder))
    stem = args.out / args.data / "time_to_bleu"
    text = table(runs)
    Path(f"{stem}.md").write_text(text, encoding="utf-8")
    plot(runs, Path(f"{stem}.png"))
    print(text)
    print(f"wrote {stem}.md and {stem}.png")
    return 0


def _has_test(folder: Path) -> bool:
    """Whether the folder's run already finished with its test score (re-running skips it)."""
    if not (folder / "metrics.jsonl").is_file():
        return False
    return any(event["event"] == "test" for event in read_events(folder))
