"""`scripts/data_benchmark.py` end to end on a tiny generated corpus, so that it cannot rot: it
prepares, trains, resumes mid-epoch, and prints and saves every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import ONE_THREAD, ROOT

from transformer.benchmarks import data_scale


@pytest.mark.slow  # scripts/data_benchmark.py as a process: prepares, trains, resumes
def test_data_benchmark_runs_on_a_tiny_corpus(
    tiny_parallel_corpus: dict[str, Path], tmp_path: Path
) -> None:
    command = [
        sys.executable, str(ROOT / "scripts" / "data_benchmark.py"), "--sizes", "300",
        "--source", f"{tiny_parallel_corpus['dir']}/train.{{lang}}", "--work-dir",
        str(tmp_path / "work"), "--vocab-size", "64", "--updates", "4", "--valid-pairs", "30",
        "--max-tokens", "128", "--rounds", "1", "--round-updates", "3",
        "--json", str(tmp_path / "figures.json"),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CPU: " in done.stdout and "| 300 |" in done.stdout
    (figures,) = json.loads((tmp_path / "figures.json").read_text())["sizes"]
    assert figures["pairs"] == 300 and figures["prepare_pairs_per_s"] > 0
    for stage in ("prepare", "train", "resume"):
        assert figures[f"{stage}_peak_rss"] >= figures[f"{stage}_peak_anon"] > 0
    assert 0 < figures["first_update_s"] < figures["train_seconds"]
    assert 0 < figures["resume_s"] < figures["resume_seconds"] and figures["tokens_per_s"] > 0
    assert figures["interleaved_tokens_per_s"] > 0 and "(interleaved rounds)" in done.stdout
    assert figures["collate_tokens_per_s"] > 0 and "Arrow collate (no model)" in done.stdout
    resumed = (tmp_path / "work" / "pairs-300" / "resume.log").read_text()
    assert "resuming from" in resumed and "update 5 |" in resumed


def test_growth_between_sizes_is_per_million_pairs() -> None:
    def result(pairs: int, rss_gib: float, tok_s: float) -> data_scale.SizeResult:
        usage = data_scale.Usage(10.0, int(rss_gib * data_scale.GIB), data_scale.GIB // 2)
        return data_scale.SizeResult(pairs, 1.0, usage, usage, usage, 5.0, tok_s, 6.0)

    text = data_scale.format_results([result(1_000_000, 1.0, 100.0), result(5_000_000, 1.4, 97.0)])
    assert "grows +0.100 GiB per million pairs" in text and "ratio 0.970" in text
