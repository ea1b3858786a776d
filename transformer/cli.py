"""The only Hydra/OmegaConf code: schema registration, DictConfig -> dataclasses, run folder."""

from __future__ import annotations

import logging
import os

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from transformer.checkpoint import CheckpointError
from transformer.config import TrainRunConfig

logger = logging.getLogger(__name__)


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
    """Entry point of `scripts/train.py`."""
    from transformer.training.init_from import command_line_keys, fine_tune_config
    from transformer.training.trainer import train as run_training

    _quiet_other_ranks()
    hydra_cfg = HydraConfig.get()
    run_cfg = to_run_config(cfg, hydra_cfg.runtime.output_dir)
    if run_cfg.train.init_from is not None:  # model and tokenizer configs of the checkpoint
        try:
            run_cfg = fine_tune_config(run_cfg, command_line_keys(list(hydra_cfg.overrides.task)))
        except (ValueError, CheckpointError) as error:
            raise SystemExit(f"config error: {error}") from None
    logger.info("run folder: %s", run_cfg.run_dir)
    return run_training(run_cfg)


def prepare(cfg: DictConfig) -> None:
    """Entry point of `scripts/prepare_data.py`: fetch, tokenise, and print corpus statistics."""
    from transformer.data.prepare import format_stats, prepare_data

    run_cfg = to_run_config(cfg, HydraConfig.get().runtime.output_dir)
    prepared = prepare_data(run_cfg)
    print(format_stats(prepared.stats))
