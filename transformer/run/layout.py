"""The names of the files and folders in a run folder, and the paths built from them.

A run folder (Hydra's output folder, `cfg.run_dir`) holds:
- `checkpoints/`: the states named by `checkpoints/manifest.json` (`checkpoint_dir.py`), the
  links `last.pt` and `best.pt`, `final.pt`, and `eval/` (reports of `tmt-evaluate`);
- `metrics.jsonl` (`metrics_log.py`), `tensorboard/`, `train.log` and `.hydra/` (Hydra's);
- the tokenizer (`tokenizer.json`, `spm*.model`: `transformer.data.tokenizer` names them) and,
  for a fine-tune, `init_from.json`;
- `.lock`, which the one process writing the folder holds (`lock.py`).
"""

from __future__ import annotations

from pathlib import Path

from transformer.checkpoint import CheckpointError

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
LAST, BEST, FINAL = "last.pt", "best.pt", "final.pt"
EVAL = "eval"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD = "tensorboard"
TRAIN_LOG = "train.log"
INIT_FROM_RECORD = "init_from.json"
BUDGET_PLAN = "budget_plan.json"  # a budgeted run's plan (`training/budget.py`)
LOCK = ".lock"  # held by the one process writing the folder (`lock.py`)
# Folders saved before manifests named their periodic states by update: checkpoint_<update>.pt.
LEGACY_PERIODIC = "checkpoint_*.pt"


def confined(folder: Path, name: str, source: Path) -> Path:
    """`folder / name`, resolved, if it stays inside `folder` (what `source` names is data).

    Raises:
        CheckpointError: the path leads outside `folder` (`..`, an absolute path, a symlink).
    """
    inside = folder.resolve()
    path = (folder / name).resolve()
    if path.parent != inside:
        raise CheckpointError(
            f"{source} names {name!r}, which leads outside {folder} ({path}); nothing was "
            "changed. A run folder from elsewhere may be crafted: fix or delete that file."
        )
    return folder / name


def checkpoints_dir(run_dir: str | Path) -> Path:
    """The run's checkpoints/ folder."""
    return Path(run_dir) / CHECKPOINTS


def metrics_path(run_dir: str | Path) -> Path:
    """The run's metrics.jsonl."""
    return Path(run_dir) / METRICS_FILE


def tensorboard_dir(run_dir: str | Path) -> Path:
    """The folder of the run's TensorBoard event files."""
    return Path(run_dir) / TENSORBOARD


def eval_dir(checkpoint: Path) -> Path:
    """Where `tmt-evaluate` writes the reports of a checkpoint file: eval/ beside it."""
    return checkpoint.parent / EVAL
