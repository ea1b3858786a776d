"""`scripts/train.py experiment=smoke` on real Multi30k: BLEU rises, checkpoints, TensorBoard
files and metrics.jsonl appear, re-running the command resumes from the saved update, and the
table scripts read the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from transformer.runtime import cpu_name

ROOT = Path(__file__).resolve().parents[1]
N_UPDATES, MORE_UPDATES = 300, 320
# The smoke model (1 layer, 64 wide) reaches about 5-6 BLEU on the first 100 validation sentences
# after 300 updates of 1024 tokens (greedy search); at update 100 it scores about 2.
BLEU_FLOOR = 3.0


def _train(run_dir: Path, multi30k: Path, cache: Path, *overrides: str) -> str:
    command = [
        sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=smoke",
        f"hydra.run.dir={run_dir}", f"data.cache_dir={cache}", "train.validate_every=100",
        "train.log_every=50", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "MULTI30K_DIR": str(multi30k), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return (run_dir / "train.log").read_text()


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


@pytest.mark.slow
def test_smoke_training_learns_checkpoints_logs_and_resumes(
    multi30k_dir: Path, tmp_path: Path
) -> None:
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    log = _train(run_dir, multi30k_dir, cache, f"train.max_updates={N_UPDATES}")

    bleu = _scalars(run_dir, "valid/bleu")
    assert [step for step, _ in bleu] == [100, 200, 300]
    assert bleu[-1][1] > bleu[0][1] and bleu[-1][1] > BLEU_FLOOR, bleu
    assert "validation BLEU signature: nrefs:1|case:mixed" in log
    assert f"hardware: {cpu_name()}, 1 thread\n" in log  # OMP_NUM_THREADS=1
    assert "BLEU = " in log and "BLEU (lowercased" in log and "chrF = " in log  # final test
    for tag in ("test/bleu", "test/bleu_lowercase", "test/chrf"):
        assert _scalars(run_dir, tag), tag
    for tag in ("train/loss", "train/ppl", "train/lr", "train/grad_norm", "train/tokens_per_s"):
        assert _scalars(run_dir, tag), tag
    losses = [value for _, value in _scalars(run_dir, "train/loss")]
    assert losses[-1] < losses[0] - 1.0
    checkpoints = run_dir / "checkpoints"
    assert {
        "last.pt",
        "best.pt",
        "checkpoint_00000200.pt",
        "checkpoint_00000300.pt",
        "final.pt",
    } == {path.name for path in checkpoints.glob("*.pt")}  # keep_last=2 of the periodic ones
    assert "saved " + str(checkpoints / "final.pt") in log
    assert (run_dir / "spm.model").is_file() and (run_dir / ".hydra" / "config.yaml").is_file()

    # The same command with a larger budget continues from update 300.
    log = _train(
        run_dir, multi30k_dir, cache, f"train.max_updates={MORE_UPDATES}",
        "train.log_every=5", "train.evaluate_test=false",
    )  # fmt: skip
    assert f"resuming from {checkpoints / 'last.pt'} (update {N_UPDATES})" in log
    new_steps = [step for step, _ in _scalars(run_dir, "train/loss") if step > N_UPDATES]
    assert new_steps[0] == N_UPDATES + 5 and new_steps[-1] == MORE_UPDATES
    state = torch.load(checkpoints / "last.pt", weights_only=True)
    assert state["step"] == MORE_UPDATES

    # metrics.jsonl holds both sessions as data; the table scripts read it.
    curve = _script("validation_curves.py", run_dir)
    assert curve.splitlines()[0] == "| bleu at update | 100 | 200 | 300 | 320 |"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(run_dir), "--max-sentences",
         "20"], env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True,
    )  # fmt: skip
    row = _script("results_table.py", run_dir).splitlines()[2].split(" | ")
    assert row[5].endswith(f"({MORE_UPDATES} updates, max_updates)")
    assert row[6] == f"{cpu_name()}, 1 thread"


def _script(name: str, run_dir: Path) -> str:
    command = [sys.executable, str(ROOT / "scripts" / name), str(run_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout
