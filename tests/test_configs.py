"""Every YAML composes into the typed schema; bad keys and values fail at start-up by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from transformer.commands.hydra_config import ConfigError, register_configs, to_run_config
from transformer.config import (
    DecodeConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    TrainRunConfig,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
GROUPS = ("model", "data", "tokenizer", "optim", "train", "decode", "experiment")


def _compose(overrides: list[str]) -> TrainRunConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return to_run_config(cfg, run_dir="unused")


def _group_options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert _group_options(group), f"configs/{group}/ holds no YAML file"


@pytest.mark.parametrize(
    ("group", "option"),
    [(group, option) for group in GROUPS for option in _group_options(group)],
)
def test_every_yaml_composes_into_dataclasses(group: str, option: str) -> None:
    run_cfg = _compose([f"{group}={option}"])
    assert isinstance(run_cfg, TrainRunConfig)
    assert isinstance(run_cfg.model, ModelConfig)
    assert isinstance(run_cfg.train, TrainConfig)
    # Each value the file sets reached the dataclass (experiment files set nested sections).
    values = yaml.safe_load((CONFIGS / group / f"{option}.yaml").read_text()) or {}
    values.pop("defaults", None)
    sections = values if group == "experiment" else {group: values}
    for section, keys in sections.items():
        if not isinstance(keys, dict):
            assert getattr(run_cfg, section) == keys, section
            continue
        for key, value in keys.items():
            assert getattr(getattr(run_cfg, section), key) == value, f"{section}.{key}"


def test_group_file_values_override_defaults() -> None:
    tiny = _compose(["model=tiny"]).model
    base = _compose(["model=base"]).model
    assert tiny.d_model < base.d_model
    assert (base.d_model, base.n_heads, base.d_ff) == (512, 8, 2048)


def test_command_line_override_reaches_the_dataclass() -> None:
    run_cfg = _compose(["model.d_model=64", "model.n_heads=2", "train.max_updates=7"])
    assert (run_cfg.model.d_model, run_cfg.model.n_heads, run_cfg.train.max_updates) == (64, 2, 7)


def test_misspelt_key_on_the_command_line_fails_with_its_name() -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="d_modle"):
        _compose(["model.d_modle=64"])


def test_wrong_type_fails_with_the_key() -> None:
    with pytest.raises(ConfigCompositionException, match="max_tokens"):
        _compose(["train.max_tokens=lots"])


def test_bad_choice_fails_naming_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError) as error:
        _compose(["model.norm_placement=middle"])
    assert "model.norm_placement='middle' is not one of post, pre" in str(error.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=inf", "optim.lr=inf must be a finite number"),
        ("optim.lr=nan", "optim.lr=nan must be a finite number"),
        ("optim.noam_factor=-1", "optim.noam_factor=-1.0 must be > 0"),
        ("optim.adam_beta2=1.0", "optim.adam_beta2=1.0 must be in [0, 1)"),
        ("optim.eps=0", "optim.eps=0.0 must be > 0"),
        ("train.seed=-1", "train.seed=-1 must be in [0, 4294967296)"),
        ("train.max_time_minutes=inf", "train.max_time_minutes=inf must be a finite number"),
        ("train.max_nonfinite_updates=0", "train.max_nonfinite_updates=0 must be > 0"),
        ("data.num_proc=-3", "data.num_proc=-3 must be >= 1"),
        ("+train.some_key=1", "unknown key(s) train.some_key"),
        ("+some_key=1", "unknown key(s) some_key"),
    ],
)
def test_non_finite_out_of_range_and_added_keys_fail_naming_the_key(
    override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        _compose([override])
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: ModelConfig(d_model=30, n_heads=4), "not divisible"),
        (lambda: ModelConfig(dropout=1.5), "dropout"),
        (lambda: DecodeConfig(beam_size=2, n_best=3), "n_best"),
        (lambda: DecodeConfig(beam_size=0), "beam_size"),
        (lambda: TrainConfig(precision="fp8"), "precision"),
        (lambda: TrainConfig(keep_last=2, average_last=3), "raise keep_last or lower average"),
        (lambda: TrainConfig(late_dropout=1.0, late_dropout_from=10), "late_dropout"),
        (lambda: TrainConfig(late_dropout=0.3), "late_dropout_from"),
        (lambda: OptimConfig(cooldown_updates=-1), "cooldown_updates"),
        (
            lambda: TrainRunConfig(optim=OptimConfig(cooldown_updates=500)),
            r"cooldown_updates=500 .* train.max_updates, which is 0 \(no limit\)",
        ),
    ],
)
def test_cross_field_checks(build, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build()


@pytest.mark.slow  # scripts/train.py as a process (test_cli checks it in-process)
def test_train_script_rejects_a_misspelt_key_before_doing_work(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            "train.max_updatse=3",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
    )
    assert result.returncode == 2, result.stderr[-2000:]  # a user error, not a crash (1)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "max_updatse" in result.stderr
    assert not (tmp_path / "checkpoints").exists()
