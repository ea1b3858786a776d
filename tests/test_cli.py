"""The Hydra entry point's per-rank settings (under torchrun, rank 0 alone writes the run folder's
.hydra/ and train.log), and its message when configs/ is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import ROOT

from transformer.commands import hydra_config, train
from transformer.commands.hydra_config import rank_overrides


def test_only_ranks_above_0_get_overrides() -> None:
    assert rank_overrides({}) == [] and rank_overrides({"RANK": "0"}) == []
    assert rank_overrides({"RANK": "3"}) == ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


@pytest.mark.slow  # scripts/train.py as a process
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


def test_a_command_without_configs_says_how_to_install_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A non-editable install has no configs/ beside the package: one line, exit code 2."""
    monkeypatch.setattr(hydra_config, "CONFIG_DIR", tmp_path / "configs")
    assert train.main([]) == 2
    assert capsys.readouterr().err == (
        f"error: no configs/train.yaml in {tmp_path}; install the project from its checkout "
        "(pip install -e .), which keeps configs/ beside the package.\n"
    )


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("train.max_update=5", "Could not override 'train.max_update': Key 'max_update' not in"),
        ("model.d_model=wide", "Value 'wide' of type 'str' could not be converted to Integer"),
        ("data=nope", "Could not find 'data/nope'; Available options in 'data': hf,"),
    ],
)
def test_a_misspelt_key_or_bad_value_is_one_line_and_exit_2(
    override: str, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Checked before Hydra runs the job: its own report would be several lines and status 1."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert train.main([override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err


def test_hydra_full_error_keeps_the_traceback_of_a_misspelt_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hydra.errors import ConfigCompositionException

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigCompositionException):
        train.main(["train.max_update=5"])
