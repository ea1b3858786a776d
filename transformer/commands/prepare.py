"""`tmt-prepare [key=value ...]` (scripts/prepare_data.py): fetch the corpus, train the
tokenizer, fill the caches and print corpus statistics; the same overrides as `tmt-train`."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from transformer.commands.edge import guarded
from transformer.commands.hydra_config import run_hydra, to_run_config
from transformer.run.lock import hold_as_rank_0


def _prepare(cfg: DictConfig) -> int:
    from transformer.data.prepare import format_stats, prepare_data
    from transformer.training.init_from import (
        command_line_keys,
        fine_tune_config,
        keep_start_tokenizer,
        load_starting_point,
    )

    hydra_cfg = HydraConfig.get()
    run_cfg = to_run_config(cfg, hydra_cfg.runtime.output_dir)
    hold_as_rank_0(run_cfg.run_dir, "tmt-prepare")  # held already, unless a sweep
    if run_cfg.train.init_from is not None:  # encoded with the vocabulary the fine-tune keeps
        start = load_starting_point(run_cfg.train.init_from)
        keys = command_line_keys(list(hydra_cfg.overrides.task))
        run_cfg = fine_tune_config(run_cfg, keys, start)
        keep_start_tokenizer(run_cfg, start)
    print(format_stats(prepare_data(run_cfg).stats))
    return 0


def _job(cfg: DictConfig) -> None:
    if status := guarded(lambda: _prepare(cfg)):
        raise SystemExit(status)


def main(argv: list[str] | None = None) -> int:
    """`tmt-prepare [key=value ...]`; returns the exit status."""
    return guarded(lambda: run_hydra(_job, "prepare_data", "tmt-prepare", argv))
