"""The only Hydra/OmegaConf code: schema registration, DictConfig -> dataclasses, run folder,
and the Hydra commands `tmt-train` and `tmt-prepare` (scripts/train.py, scripts/prepare_data.py)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from transformer.config import TrainRunConfig

logger = logging.getLogger(__name__)

# The checkout's configs/, found from this file rather than from the working directory or the
# calling script, so an installed command (`pip install -e`) runs from any folder.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def register_configs() -> None:
    """Register the typed schema that `configs/train.yaml` lists first as `base_config`.

    With the schema in place, a misspelt key in a YAML file or on the command line fails at
    start-up with its name. Call this before the `@hydra.main` function runs.
    """
    ConfigStore.instance().store(name="base_config", node=TrainRunConfig)


def to_run_config(cfg: DictConfig, run_dir: str) -> TrainRunConfig:
    """Convert the composed config to dataclasses (running their checks) and set the run folder.

    Raises:
        SystemExit: a value failed its check; the message names the key and the fix.
    """
    try:
        run_cfg = OmegaConf.to_object(cfg)
    except ValueError as error:
        raise SystemExit(f"config error: {error}") from None
    assert isinstance(run_cfg, TrainRunConfig), type(run_cfg)
    run_cfg.run_dir = run_dir
    return run_cfg


def compose_run_config(overrides: list[str], run_dir: str) -> TrainRunConfig:
    """configs/train.yaml with Hydra overrides, as `scripts/train.py` composes it, outside a
    Hydra job (for programs that train or build models from the presets themselves)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_run_config(compose(config_name="train", overrides=overrides), run_dir)


def rank_overrides(environ: dict[str, str] | None = None) -> list[str]:
    """Hydra overrides for a torchrun worker of rank >= 1 (none for rank 0 or a single process).

    Every rank runs Hydra in the same run folder; rank 0 alone writes `.hydra/` and `train.log`,
    so the other ranks keep no config copy and log to their console.
    """
    environ = os.environ if environ is None else environ
    if int(environ.get("RANK", "0")) == 0:
        return []
    return ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


def _quiet_other_ranks() -> None:
    # torchrun starts one Hydra job per process; only rank 0 speaks (and writes the log file).
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)


def train(cfg: DictConfig) -> dict:
    """The job of `tmt-train`: convert the config, then train."""
    from transformer.training.trainer import train as run_training

    _quiet_other_ranks()
    run_cfg = to_run_config(cfg, HydraConfig.get().runtime.output_dir)
    logger.info("run folder: %s", run_cfg.run_dir)
    return run_training(run_cfg)


def prepare(cfg: DictConfig) -> None:
    """The job of `tmt-prepare`: fetch, tokenise, and print corpus statistics."""
    from transformer.data.prepare import format_stats, prepare_data

    run_cfg = to_run_config(cfg, HydraConfig.get().runtime.output_dir)
    prepared = prepare_data(run_cfg)
    print(format_stats(prepared.stats))


def _run_hydra(job: Callable[[DictConfig], object], job_name: str) -> None:
    """Run `job` as a Hydra job over configs/train.yaml, with the overrides in sys.argv.

    Hydra names the job, and so its log file, after the module that holds `job`: this one, for
    every command. `job_name` names it instead (train: train.log).
    """
    if not (CONFIG_DIR / "train.yaml").is_file():
        print(
            f"error: no configs/train.yaml in {CONFIG_DIR.parent}; install the project from its "
            "checkout (pip install -e .), which keeps configs/ beside the package.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    register_configs()
    sys.argv += [f"hydra.job.name={job_name}", *rank_overrides()]
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")(job)()


def train_main() -> None:
    """`tmt-train [key=value ...]`: train, or resume the run in the run folder."""
    _run_hydra(train, "train")


def prepare_main() -> None:
    """`tmt-prepare [key=value ...]`: fetch the corpus, train the tokenizer, print statistics."""
    _run_hydra(prepare, "prepare_data")
