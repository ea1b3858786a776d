"""`tmt-train [key=value ...]` (scripts/train.py): train, or resume the run in the run folder.

Before Hydra writes anything, the command line is composed and converted (`hydra_config.py`),
a fine-tune's starting checkpoint is read (once: its weights are the ones trained) and checked
against it, and the compiler is looked for when the run compiles: a refused command leaves no
run folder. A run stopped by signal N exits
128 + N after saving.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from transformer.commands.edge import guarded
from transformer.commands.hydra_config import run_hydra, to_run_config
from transformer.config import TrainRunConfig
from transformer.run.lock import hold_as_rank_0
from transformer.run.lookup import last_state
from transformer.runtime import pick_device
from transformer.training.compiling import check_compiler, uses_compile
from transformer.training.init_from import (
    StartingPoint,
    command_line_keys,
    fine_tune_config,
    load_starting_point,
)

logger = logging.getLogger(__name__)
COMMAND = "tmt-train"


@dataclass
class _Checked:
    """The pre-checked run config (None for a sweep: each job converts its own) and a
    fine-tune's starting checkpoint, read once."""

    cfg: TrainRunConfig | None = None
    start: StartingPoint | None = None


def _fine_tune(cfg: TrainRunConfig, overrides: list[str], checked: _Checked) -> TrainRunConfig:
    """The config with a fine-tune's model and tokenizer (`train.init_from`), or `cfg`."""
    if cfg.train.init_from is None:
        return cfg
    resuming = cfg.train.resume and last_state(cfg.run_dir) is not None  # its own state
    if not resuming and checked.start is None:
        checked.start = load_starting_point(cfg.train.init_from)
    return fine_tune_config(cfg, command_line_keys(overrides), checked.start)


def _check(cfg: TrainRunConfig, overrides: list[str], checked: _Checked) -> None:
    """What can be checked before anything is written, besides the config itself."""
    cfg = _fine_tune(cfg, overrides, checked)
    device = pick_device(cfg.train.device)
    if uses_compile(cfg.train.compile, device):
        check_compiler(device)
    checked.cfg = cfg


def _train(cfg: DictConfig, checked: _Checked) -> int:
    from transformer.training.trainer import train as run_training

    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: only rank 0 speaks (and logs to file)
        logging.getLogger().setLevel(logging.WARNING)
    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    if checked.cfg is not None:
        run_cfg = dataclasses.replace(checked.cfg, run_dir=run_dir)
    else:
        run_cfg = _fine_tune(to_run_config(cfg, run_dir), list(hydra_cfg.overrides.task), checked)
    hold_as_rank_0(run_cfg.run_dir, COMMAND)  # the folder Hydra made (held already, unless a sweep)
    logger.info("run folder: %s", run_cfg.run_dir)
    given = frozenset(command_line_keys(list(hydra_cfg.overrides.task)))  # a budget keeps them
    result = run_training(run_cfg, checked.start, given)
    if result["stop_signal"] is not None:  # so that `train && evaluate` and schedulers can tell
        return 128 + result["stop_signal"]
    return 0


def main(argv: list[str] | None = None) -> int:
    """`tmt-train [key=value ...]`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    overrides = [arg for arg in argv if not arg.startswith("-")]
    checked = _Checked()

    def job(cfg: DictConfig) -> None:
        # Inside Hydra's job only an exit status gets through Hydra's own report.
        if status := guarded(lambda: _train(cfg, checked)):
            raise SystemExit(status)

    return guarded(
        lambda: run_hydra(job, "train", COMMAND, argv, lambda cfg: _check(cfg, overrides, checked))
    )
