"""The Hydra entry point's per-rank settings: under torchrun, rank 0 alone writes the run folder's
.hydra/ and train.log."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tiny import ROOT

from transformer.cli import rank_overrides


def test_only_ranks_above_0_get_overrides() -> None:
    assert rank_overrides({}) == [] and rank_overrides({"RANK": "0"}) == []
    assert rank_overrides({"RANK": "3"}) == ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_hydra_config_of_a_rank_above_0_writes_no_config_copy_and_no_log_file(rank: str) -> None:
    """`--cfg hydra` prints the Hydra config a rank would run with, without training."""
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--cfg", "hydra"]
    env = {**os.environ, "RANK": rank, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    writes_files = rank == "0"
    assert ("output_subdir: .hydra" in done.stdout) == writes_files
    assert ("filename: ${hydra.runtime.output_dir}/${hydra.job.name}.log" in done.stdout) == (
        writes_files
    )
