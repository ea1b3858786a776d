"""The only Hydra/OmegaConf code: schema registration, DictConfig -> dataclasses, run folder,
and the Hydra commands `tmt-train` and `tmt-prepare` (scripts/train.py, scripts/prepare_data.py).

User errors end the Hydra commands with one line on stderr and exit status 2 (HYDRA_FULL_ERROR=1
shows the traceback instead); a training run stopped by signal N exits 128 + N after saving.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from transformer.checkpoint import CheckpointError
from transformer.config import TrainRunConfig

logger = logging.getLogger(__name__)

# The checkout's configs/, found from this file rather than from the working directory or the
# calling script, so an installed command (`pip install -e`) runs from any folder.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

T = TypeVar("T")


def _user_errors() -> tuple[type[BaseException], ...]:
    # Imported here: the entry points import this module before anything heavy.
    from transformer.checkpoint import CheckpointError
    from transformer.training.divergence import DivergenceError
    from transformer.training.state import ResumeError

    return CheckpointError, ResumeError, DivergenceError, ValueError  # CorpusError is a ValueError


def _fail(message: str) -> NoReturn:
    """Print one line and exit 2 (raising, so that HYDRA_FULL_ERROR=1 keeps the traceback)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def guarded(job: Callable[[], T]) -> T:
    """Run `job`; our user errors become one line on stderr and exit status 2."""
    try:
        return job()
    except _user_errors() as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(str(error))


def _unknown_keys(cfg: DictConfig) -> list[str]:
    """Keys the schema does not have: Hydra's `+section.key=...` adds them to a typed config."""
    unknown = []
    for schema_field in dataclasses.fields(TrainRunConfig):
        if schema_field.default_factory is dataclasses.MISSING or schema_field.name not in cfg:
            continue
        known = {f.name for f in dataclasses.fields(schema_field.default_factory())}
        section = cfg[schema_field.name]
        unknown += [f"{schema_field.name}.{key}" for key in section if key not in known]
    top = {f.name for f in dataclasses.fields(TrainRunConfig)}
    return unknown + [str(key) for key in cfg if key not in top]


def register_configs() -> None:
    """Register the typed schema that `configs/train.yaml` lists first as `base_config`.

    With the schema in place, a misspelt key in a YAML file or on the command line fails at
    start-up with its name. Call this before the `@hydra.main` function runs.
    """
    ConfigStore.instance().store(name="base_config", node=TrainRunConfig)


def to_run_config(cfg: DictConfig, run_dir: str) -> TrainRunConfig:
    """Convert the composed config to dataclasses (running their checks) and set the run folder.

    Raises:
        SystemExit: (status 2) a value failed its check, or a key is unknown; the message names
            the key and the fix.
    """
    if unknown := _unknown_keys(cfg):
        _fail(
            f"config error: unknown key(s) {', '.join(unknown)}; check the spelling against "
            "transformer/config.py (a + before a key does not make it known)."
        )
    try:
        run_cfg = OmegaConf.to_object(cfg)
    except ValueError as error:
        _fail(f"config error: {error}")
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
    """The job of `tmt-train`: convert the config, then train.

    Raises:
        SystemExit: 2 for a user error (one line on stderr); 128 + N after a stop by signal N.
    """
    from transformer.training.init_from import command_line_keys, fine_tune_config
    from transformer.training.trainer import train as run_training

    _quiet_other_ranks()
    hydra_cfg = HydraConfig.get()
    run_cfg = to_run_config(cfg, hydra_cfg.runtime.output_dir)
    given = frozenset(command_line_keys(list(hydra_cfg.overrides.task)))
    if run_cfg.train.init_from is not None:  # model and tokenizer configs of the checkpoint
        try:
            run_cfg = fine_tune_config(run_cfg, set(given))
        except (ValueError, CheckpointError) as error:
            _fail(f"config error: {error}")
    logger.info("run folder: %s", run_cfg.run_dir)
    result = guarded(lambda: run_training(run_cfg, given))
    if result["stop_signal"] is not None:  # so that `train && evaluate` and schedulers can tell
        raise SystemExit(128 + result["stop_signal"])
    return result


def prepare(cfg: DictConfig) -> None:
    """The job of `tmt-prepare`: fetch, tokenise, and print corpus statistics."""
    from transformer.data.prepare import format_stats, prepare_data

    run_cfg = to_run_config(cfg, HydraConfig.get().runtime.output_dir)
    prepared = guarded(lambda: prepare_data(run_cfg))
    print(format_stats(prepared.stats))


def _check_overrides(argv: list[str]) -> None:
    """Compose the config once before Hydra runs the job, so that a misspelt key or a bad value
    is one line and exit status 2 rather than Hydra's multi-line report and status 1.

    A command line with Hydra's own flags (`-m`, `--cfg job`, ...) is left to Hydra.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(arg.startswith("-") for arg in argv):
        return
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            compose(config_name="train", overrides=argv)
    except (HydraException, OmegaConfBaseException) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(_override_message(error))


def _override_message(error: Exception) -> str:
    # Hydra's message names the override; its cause (if any) names the key or the value's type.
    # Its advice to append with `+` is dropped: keys the schema lacks are refused either way.
    first, *rest = [line.strip() for line in str(error).splitlines() if line.strip()]
    if rest and rest[0].startswith("Available options"):  # a config group's choices
        options = [line for line in rest[1:] if not line.startswith(("Config search", "provider"))]
        return f"{first}; {rest[0]} {', '.join(options)}"
    cause = error.__cause__
    if cause is not None:
        first = f"{first.rstrip('.')}: {str(cause).splitlines()[0]}"
    return f"{first} (see transformer/config.py and configs/ for the keys and their types)"


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
    _check_overrides(sys.argv[1:])
    sys.argv += [f"hydra.job.name={job_name}", *rank_overrides()]
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")(job)()


def train_main() -> None:
    """`tmt-train [key=value ...]`: train, or resume the run in the run folder."""
    _run_hydra(train, "train")


def prepare_main() -> None:
    """`tmt-prepare [key=value ...]`: fetch the corpus, train the tokenizer, print statistics."""
    _run_hydra(prepare, "prepare_data")
