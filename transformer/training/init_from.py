"""Fine-tuning: a new run that starts from another run's model (`train.init_from=PATH`).

The model and tokenizer configs come from that checkpoint; data, optimizer and schedule from the
new config. A model or tokenizer key given explicitly on the command line that disagrees with
the checkpoint is an error naming it (the dropouts may change); values from the YAML defaults
are replaced silently. The tokenizer files are copied into the new run folder, so no tokenizer
is trained, and `init_from.json` there records where the weights came from. Step, optimizer and
sampler start fresh: this is not a resume (re-running the command resumes the fine-tuned run).
The starting checkpoint is read once (`load_starting_point`), for its configs and its weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from transformer.checkpoint import load_checkpoint, run_config_from_checkpoint
from transformer.config import TrainRunConfig
from transformer.data.tokenizer import META_FILE, Tokenizer
from transformer.run.layout import INIT_FROM_RECORD
from transformer.run.lookup import last_state, resolve_checkpoint

logger = logging.getLogger(__name__)

RECORD_FILE = INIT_FROM_RECORD
MAY_CHANGE = ("dropout", "attn_dropout", "ff_dropout")  # model keys a fine-tune may set anew
_SECTIONS = ("model", "tokenizer")


@dataclass
class StartingPoint:
    """The checkpoint a fine-tune starts from (`train.init_from`, resolved), read once."""

    path: Path
    state: dict


def load_starting_point(init_from: str) -> StartingPoint:
    """Resolve `train.init_from` (a checkpoint or run folder) and read it.

    Raises:
        CheckpointError: it cannot be found or read.
    """
    path = resolve_checkpoint(Path(init_from))
    return StartingPoint(path, load_checkpoint(path))


def command_line_keys(overrides: list[str]) -> set[str]:
    """The config keys that Hydra overrides such as `model.d_model=64`, `model=base` or
    `+tokenizer.x=1` set (group choices name their group)."""
    return {override.split("=", 1)[0].lstrip("+~") for override in overrides if "=" in override}


def _conflicts(cfg: TrainRunConfig, stored: TrainRunConfig, explicit: set[str]) -> list[str]:
    problems = []
    for key in sorted(explicit):
        section, _, name = key.partition(".")
        if section not in _SECTIONS or name in MAY_CHANGE:
            continue
        names = [name] if name else [f.name for f in dataclasses.fields(getattr(cfg, section))]
        for field_name in names:
            if field_name in MAY_CHANGE and section == "model":
                continue
            given = getattr(getattr(cfg, section), field_name)
            wanted = getattr(getattr(stored, section), field_name)
            if given != wanted:
                problems.append(
                    f"{key} sets {section}.{field_name}={given!r}, checkpoint {wanted!r}"
                )
    return problems


def fine_tune_config(
    cfg: TrainRunConfig, explicit: set[str], start: StartingPoint | None = None
) -> TrainRunConfig:
    """`cfg` with the model and tokenizer configs of `cfg.train.init_from`'s checkpoint.

    Args:
        cfg: the composed run config (train.init_from set).
        explicit: config keys given on the command line (`command_line_keys`).
        start: the starting checkpoint, if already read (else it is read here).

    Raises:
        ValueError: an explicit override conflicts with the checkpoint, or the data direction
            differs from the checkpoint's.
        CheckpointError: the checkpoint cannot be read.
    """
    assert cfg.train.init_from is not None
    # A folder that already holds the fine-tuned run resumes from its own last state, whose model
    # and tokenizer are the ones to keep, even after the starting checkpoint is gone.
    own = last_state(cfg.run_dir) if cfg.train.resume else None
    resuming = own is not None
    if own is not None:
        path, state = own, load_checkpoint(own)
    else:
        start = start or load_starting_point(cfg.train.init_from)
        path, state = start.path, start.state
    stored = run_config_from_checkpoint(state)
    if resuming and stored.train.init_from != cfg.train.init_from:
        raise ValueError(
            f"train.init_from={cfg.train.init_from}: the run in {cfg.run_dir} started from "
            f"{stored.train.init_from or 'scratch'}; use another run folder, or "
            "train.resume=false to start this one over."
        )
    problems = _conflicts(cfg, stored, explicit)
    if problems:
        raise ValueError(
            f"train.init_from={cfg.train.init_from}: the model and tokenizer come from {path}, "
            f"but {'; '.join(problems)}. Drop those overrides (dropout may change)."
        )
    direction = (cfg.data.src_lang, cfg.data.tgt_lang)
    if direction != (stored.data.src_lang, stored.data.tgt_lang):
        raise ValueError(
            f"train.init_from={cfg.train.init_from}: {path} translates "
            f"{stored.data.src_lang}->{stored.data.tgt_lang}, the data is {'->'.join(direction)}; "
            "set data.src_lang and data.tgt_lang to the checkpoint's."
        )
    dropouts = {k: getattr(cfg.model, k) for k in MAY_CHANGE if f"model.{k}" in explicit}
    model = dataclasses.replace(stored.model, **dropouts)
    return dataclasses.replace(cfg, model=model, tokenizer=stored.tokenizer)


def keep_start_tokenizer(cfg: TrainRunConfig, start: StartingPoint | None = None) -> None:
    """Put the starting checkpoint's tokenizer in the run folder unless one is there (so that
    `tmt-prepare` encodes with the vocabulary the fine-tune will use; a different one already
    there is refused by the tokenizer checks)."""
    assert cfg.train.init_from is not None
    folder = Path(cfg.run_dir)
    if not (folder / META_FILE).is_file():
        state = (start or load_starting_point(cfg.train.init_from)).state
        Tokenizer.from_state_dict(state["tokenizer"]).save(folder)


def start_fine_tune(cfg: TrainRunConfig, write: bool, start: StartingPoint | None = None) -> dict:
    """The starting checkpoint's weights; when `write` (rank 0), its tokenizer is copied into
    the run folder (unless there) and `init_from.json` records the checkpoint.

    Args:
        start: the starting checkpoint, if already read (else it is read here); its state is
            released here, once its weights are handed over.

    Returns:
        The model state dict to load.
    """
    assert cfg.train.init_from is not None
    start = start or load_starting_point(cfg.train.init_from)
    path, state = start.path, start.state
    start.state = {}
    if write:
        folder = Path(cfg.run_dir)
        Tokenizer.from_state_dict(state["tokenizer"]).save(folder)
        record = {"checkpoint": str(path.resolve()), "step": state.get("step")}
        (folder / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    logger.info("fine-tuning from %s (update %s)", path, state.get("step"))
    return state["model"]
