"""The Hydra side of `tmt-train` and `tmt-prepare`: the typed schema registered, the command line
checked before Hydra writes anything, the composed config converted to dataclasses, and the Hydra
job run. With `commands/train.py` and `commands/prepare.py`, the only Hydra/OmegaConf code.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

from transformer.commands.edge import debug
from transformer.config import TrainRunConfig
from transformer.errors import UserError

# The checkout's configs/, found from this file rather than from the working directory or the
# calling script, so an installed command (`pip install -e`) runs from any folder.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
_KEYS_HELP = "see transformer/config.py and configs/ for the keys and their types"


class ConfigError(UserError):
    """A command line or config that does not compose or convert; the message names the key."""


def register_configs() -> None:
    """Register the typed schema that `configs/train.yaml` lists first as `base_config`.

    With the schema in place, a misspelt key in a YAML file or on the command line fails at
    start-up with its name. Call this before the `@hydra.main` function runs.
    """
    ConfigStore.instance().store(name="base_config", node=TrainRunConfig)


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


def to_run_config(cfg: DictConfig, run_dir: str) -> TrainRunConfig:
    """Convert the composed config to dataclasses (running their checks) and set the run folder.

    Raises:
        ConfigError: a value failed its check, or a key is unknown; the message names the key
            and the fix.
    """
    if unknown := _unknown_keys(cfg):
        raise ConfigError(
            f"config error: unknown key(s) {', '.join(unknown)}; check the spelling against "
            "transformer/config.py (a + before a key does not make it known)."
        )
    try:
        run_cfg = OmegaConf.to_object(cfg)
    except ValueError as error:
        raise ConfigError(f"config error: {error}") from error
    assert isinstance(run_cfg, TrainRunConfig), type(run_cfg)
    run_cfg.run_dir = run_dir
    return run_cfg


def compose_run_config(overrides: list[str], run_dir: str) -> TrainRunConfig:
    """configs/train.yaml with Hydra overrides, as `tmt-train` composes it, outside a Hydra job
    (for programs that train or build models from the presets themselves)."""
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
    return f"{first} ({_KEYS_HELP})"


def _split_command_line(argv: list[str], command: str) -> tuple[object, list[str]]:
    """Hydra's own flags (parsed by Hydra's parser) and the overrides of a command line.

    Raises:
        ConfigError: an argument that starts with `-` and is none of Hydra's flags.
    """
    from hydra._internal.utils import get_args_parser

    flags, unknown = get_args_parser().parse_known_intermixed_args(argv)
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: not an option of {command}; settings are key=value overrides (e.g. "
            f"optim.lr=0.001, {_KEYS_HELP}), and `{command} --help` lists Hydra's options."
        )
    return flags, list(flags.overrides)


def _compose(overrides: list[str], config_name: str) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        if debug():
            raise
        raise ConfigError(_override_message(error)) from error


def check_command_line(argv: list[str], command: str) -> TrainRunConfig | None:
    """Compose and convert the config of `argv` as Hydra will, before it writes anything, so a
    misspelt key, a bad value or an unknown option is one line and exit 2 (not Hydra's report,
    status 1, and a run folder left behind).

    Returns:
        The run config, with its run folder; None for a sweep (`-m`: each job converts its own)
        or when `--config-path`/`--config-dir` point to other configs (left to Hydra).

    Raises:
        ConfigError: the command line or config does not compose or convert.
    """
    flags, overrides = _split_command_line(argv, command)
    if flags.multirun or flags.config_path or flags.config_dir:
        return None
    cfg = _compose(overrides, flags.config_name or "train")
    run_dir = str(Path(OmegaConf.select(cfg, "hydra.run.dir")).absolute())
    with open_dict(cfg):
        del cfg["hydra"]
    return to_run_config(cfg, run_dir)


def run_hydra(
    job: Callable[[DictConfig], object],
    job_name: str,
    command: str,
    argv: list[str] | None,
    check: Callable[[TrainRunConfig], None] | None = None,
) -> None:
    """Check the command line, then run `job` as a Hydra job over configs/train.yaml.

    Hydra names the job, and so its log file, after the module that holds `job`. `job_name`
    names it instead (train: train.log).

    Args:
        check: more checks of the converted config, run before Hydra writes anything.
    """
    if not (CONFIG_DIR / "train.yaml").is_file():
        raise ConfigError(
            f"no configs/train.yaml in {CONFIG_DIR.parent}; install the project from its "
            "checkout (pip install -e .), which keeps configs/ beside the package."
        )
    argv = sys.argv[1:] if argv is None else list(argv)
    register_configs()
    checked = check_command_line(argv, command)
    if checked is not None and check is not None:
        check(checked)
    _, overrides = _split_command_line(argv, command)
    flag_args = list(argv)
    for override in overrides:  # Hydra's parser takes the overrides in one group, after flags
        flag_args.remove(override)
    saved = sys.argv
    sys.argv = [command, *flag_args, f"hydra.job.name={job_name}", *rank_overrides(), *overrides]
    try:
        hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")(job)()
    finally:
        sys.argv = saved
