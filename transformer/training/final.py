"""The model a run reports: checkpoints/final.pt, written at the end of training; its test score.

final.pt is the average of the last `train.average_last` periodic checkpoints, unless best.pt
scored higher on validation (BLEU, or loss when BLEU is off): a short run's average reaches back
to early, weaker checkpoints. Without averaging it is best.pt. New checkpoints make it stale, so
`transformer.training.state.write_checkpoints` removes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from transformer.checkpoint import (
    FINAL_NAME,
    average_checkpoints,
    load_checkpoint,
    periodic_checkpoints,
    periodic_step,
    save_checkpoint,
)
from transformer.data.tokenizer import PAD_ID
from transformer.evaluation.metrics import format_metrics
from transformer.model import build_model
from transformer.training.setup import Run
from transformer.training.state import final_state
from transformer.training.validation import evaluate_split, validate

logger = logging.getLogger(__name__)


def _choose_weights(run: Run, model: nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """best.pt's weights, or the average of the last kept checkpoints if it validates as well
    (or if there is no best.pt).

    `model` is a scratch model of the run's config, on its device, used to validate the average.
    """
    cfg, folder = run.cfg, run.checkpoint_dir
    kept = periodic_checkpoints(folder)[-cfg.train.average_last :] if cfg.train.average_last else []
    if not (folder / "best.pt").is_file():
        # Set aside at a fork from an earlier update, and no validation since has beaten the
        # best score of the updates before the fork.
        kept = kept or periodic_checkpoints(folder)[-1:]
        logger.warning("no best.pt in %s: final.pt is the %s", folder, _describe_average(kept))
        return average_checkpoints(kept), _describe_average(kept)
    best = load_checkpoint(folder / "best.pt")
    description = f"best.pt (update {best['step']})"
    if not kept:
        return best["model"], description
    averaged = average_checkpoints(kept)
    model.load_state_dict(averaged)
    report = validate(model, run.prepared, cfg, run.device, run.precision)
    steps = ", ".join(str(periodic_step(path)) for path in kept)
    if report.bleu is not None:
        name, average, best_score = "BLEU", report.bleu.metrics.bleu, run.progress.best_bleu
        average_wins = average >= best_score
    else:
        name, average, best_score = "loss", report.loss.loss, run.progress.best_loss
        average_wins = average <= best_score
    logger.info(
        "final model: validation %s %.4g for the average of updates %s, %.4g for %s",
        name, average, steps, best_score, description,
    )  # fmt: skip
    if not average_wins:
        return best["model"], description
    return averaged, _describe_average(kept)


def _describe_average(kept: list[Path]) -> str:
    steps = ", ".join(str(periodic_step(path)) for path in kept)
    return f"average of {len(kept)} checkpoints (updates {steps})"


def write_final_model(run: Run) -> tuple[nn.Module, str] | None:
    """Choose the model the run reports, save it as checkpoints/final.pt, and return it with its
    description; None (with a warning) when no validation has written a checkpoint."""
    folder = run.checkpoint_dir
    if not (folder / "best.pt").is_file() and not periodic_checkpoints(folder):
        logger.warning("no best.pt or checkpoint_*.pt in %s: no final model, no test score", folder)
        return None
    tokenizer = run.prepared.tokenizer
    model = build_model(run.cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    model.to(run.device)
    weights, description = _choose_weights(run, model)
    model.load_state_dict(weights)
    state = final_state(
        weights, step=run.progress.step, description=description, cfg=run.cfg, tokenizer=tokenizer
    )
    save_checkpoint(folder / FINAL_NAME, state)
    logger.info("saved %s: %s", folder / FINAL_NAME, description)
    return model, description


def evaluate_test(run: Run, model: nn.Module, description: str) -> dict[str, float]:
    """Decode the test split with the final model; log and return its scores."""
    if "test" not in run.prepared.splits:
        return {}
    metrics = evaluate_split(
        model, run.prepared.tokenizer, run.cfg.decode, run.device, run.prepared.splits["test"]
    )
    scores = {"bleu": metrics.bleu, "bleu_lowercase": metrics.bleu_lowercase, "chrf": metrics.chrf}
    run.log.scalars({f"test/{key}": value for key, value in scores.items()}, run.progress.step)
    logger.info("test (%s, %s):\n%s", run.cfg.data.test_split, description, format_metrics(metrics))
    return {f"test_{key}": value for key, value in scores.items()}
