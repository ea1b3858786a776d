"""The GPU check's CPU mode: every part but the GPU tests at tiny sizes (so it cannot rot)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transformer.benchmarks import gpu_check
from transformer.commands.gpu_check import main


@pytest.mark.slow  # every part of the check: compiling, training, real Multi30k
def test_cpu_mode_runs_every_part_and_reports_its_figures(
    tmp_path: Path, multi30k_dir: Path
) -> None:
    out = tmp_path / "out"
    assert main(["--cpu", "--out", str(out), "--multi30k-dir", str(multi30k_dir)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["peak_tflops"] > 0
    rows = {(r["precision"], r["mode"]): r for r in results["throughput"]}
    assert set(rows) == {(p, m) for p in ("fp32", "bf16") for m in ("eager", "compiled")}
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] for r in rows.values())
    # Six batch shapes, one graph: torch.compile does not recompile per shape.
    assert [rows[p, "compiled"]["graphs"] for p in ("fp32", "bf16")] == [1, 1]
    train = results["train"]
    assert train["step"] == 6 and [p["update"] for p in train["curve"]] == [3, 6]
    assert results["decode"][0]["sentences_per_s"] > 0
    report = (out / "report.txt").read_text()
    assert "validation BLEU (cased) against wall time" in report and "every part ran" in report
    assert not (out / "work").exists()  # checkpoints and caches go; the figures stay


def test_the_throughput_plan_times_each_setting_once_most_wanted_first(tmp_path: Path) -> None:
    """Every model in bf16 and fp32, compiled and eager, once each; bf16 compiled of the two
    largest first. `--cpu` leaves out the CUDA tests and compiles without code generation."""
    args = gpu_check.parse_args(["--out", str(tmp_path), "--models", "big,base,small"])
    plan = gpu_check._throughput_plan(args)
    every = {(m, p, c) for m in ("big", "base", "small") for p in ("bf16", "fp32") for c in (1, 0)}
    assert len(plan) == len(set(plan)) == 12 and set(plan) == every
    assert plan[:2] == [("big", "bf16", True), ("base", "bf16", True)]
    cpu = gpu_check.parse_args(["--cpu", "--out", str(tmp_path)])
    assert "tests" not in cpu.parts and cpu.compile_backend == "eager" and cpu.models == ["tiny"]
