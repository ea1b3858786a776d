"""The model a run reports: checkpoints/final.pt, written at the end of training; its test score.

final.pt is the average of the last `train.average_last` kept checkpoints, unless the best state
scored higher on validation (BLEU, or loss when BLEU is off): a short run's average reaches back
to early, weaker checkpoints. Without averaging it is the best state. Both are the manifest's
(`transformer.run.checkpoint_dir`); a new save makes final.pt stale and removes it.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from transformer.checkpoint import average_checkpoints, load_checkpoint
from transformer.data.corpus import split_name
from transformer.data.special import PAD_ID
from transformer.evaluation.metrics import format_metrics
from transformer.model import build_model
from transformer.run.manifest import Entry
from transformer.training.loop_state import final_state
from transformer.training.session import Run
from transformer.training.validation import evaluate_split, validate

logger = logging.getLogger(__name__)


def _choose_weights(run: Run, model: nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """The best state's weights, or the average of the last kept checkpoints if it validates as
    well (or if there is no best state). Both come from the manifest: the run's own lineage.

    `model` is a scratch model of the run's config, on its device, used to validate the average.
    """
    cfg, checkpoints = run.cfg, run.checkpoints
    kept = checkpoints.kept[-cfg.train.average_last :] if cfg.train.average_last else []
    if checkpoints.best is None:
        # Set aside at a fork from an earlier update, and no validation since has beaten the
        # best score of the updates before the fork.
        kept = kept or checkpoints.kept[-1:]
        description = _describe_average(kept)
        logger.warning(
            "no best checkpoint in %s: final.pt is the %s", checkpoints.folder, description
        )
        return average_checkpoints([checkpoints.path(entry) for entry in kept]), description
    best = load_checkpoint(checkpoints.path(checkpoints.best))
    description = f"best.pt (update {best['step']})"
    if not kept:
        return best["model"], description
    averaged = average_checkpoints([checkpoints.path(entry) for entry in kept])
    model.load_state_dict(averaged)
    report = validate(model, run.prepared, cfg, run.device, run.precision)
    steps = ", ".join(str(entry.step) for entry in kept)
    if report.bleu is not None:
        name, average, best_score = "BLEU", report.bleu.metrics.bleu, run.counters.best_bleu
        average_wins = average >= best_score
    else:
        name, average, best_score = "loss", report.loss.loss, run.counters.best_loss
        average_wins = average <= best_score
    logger.info(
        "final model: validation %s %.4g for the average of updates %s, %.4g for %s",
        name, average, steps, best_score, description,
    )  # fmt: skip
    if not average_wins:
        return best["model"], description
    return averaged, _describe_average(kept)


def _describe_average(kept: list[Entry]) -> str:
    steps = ", ".join(str(entry.step) for entry in kept)
    return f"average of {len(kept)} checkpoints (updates {steps})"


def write_final_model(run: Run) -> tuple[nn.Module, str] | None:
    """Choose the model the run reports, save it as checkpoints/final.pt, and return it with its
    description; None (with a warning) when no validation has written a checkpoint."""
    checkpoints = run.checkpoints
    if checkpoints.best is None and not checkpoints.kept:
        logger.warning(
            "no validated checkpoint in %s: no final model, no test score", checkpoints.folder
        )
        return None
    tokenizer = run.prepared.tokenizer
    model = build_model(run.cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    model.to(run.device)
    weights, description = _choose_weights(run, model)
    model.load_state_dict(weights)
    state = final_state(
        weights,
        step=run.counters.update,
        description=description,
        cfg=run.cfg,
        tokenizer=tokenizer,
        data_sources=run.prepared.sources,
    )
    path = checkpoints.save_final(state, description)
    logger.info("saved %s: %s", path, description)
    return model, description


def evaluate_test(run: Run, model: nn.Module, description: str) -> dict[str, float]:
    """Decode the test split with the final model; log and return its scores."""
    if "test" not in run.prepared.splits:
        return {}
    metrics = evaluate_split(
        model, run.prepared.tokenizer, run.cfg.decode, run.device, run.prepared.splits["test"]
    )
    scores = {"bleu": metrics.bleu, "bleu_lowercase": metrics.bleu_lowercase, "chrf": metrics.chrf}
    run.log.scalars({f"test/{key}": value for key, value in scores.items()}, run.counters.update)
    name = split_name(run.cfg.data, "test")  # data.test_split names a corpus' own split only
    fields = {"split": name, "checkpoint": description, **metrics.to_dict()}
    run.log.event("test", run.counters.update, fields)
    logger.info("test (%s, %s):\n%s", name, description, format_metrics(metrics))
    return {f"test_{key}": value for key, value in scores.items()}
