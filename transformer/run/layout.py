"""The names of the files and folders in a run folder, and the paths built from them.

A run folder (Hydra's output folder, `cfg.run_dir`) holds:
- `checkpoints/`: the states named by `checkpoints/manifest.json` (`checkpoint_dir.py`), the
  links `last.pt` and `best.pt`, `final.pt`, and `eval/` (reports of `tmt-evaluate`);
- `metrics.jsonl` (`metrics_log.py`), `tensorboard/`, `train.log` and `.hydra/` (Hydra's);
- the tokenizer (`tokenizer.json`, `spm*.model`: `transformer.data.tokenizer` names them) and,
  for a fine-tune, `init_from.json`.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
LAST, BEST, FINAL = "last.pt", "best.pt", "final.pt"
EVAL = "eval"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD = "tensorboard"
TRAIN_LOG = "train.log"
INIT_FROM_RECORD = "init_from.json"
# Folders saved before manifests named their periodic states by update: checkpoint_<update>.pt.
LEGACY_PERIODIC = "checkpoint_*.pt"


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
