"""The training loop: updates, logging, validation, checkpoints, early stopping, stop signals.

`train(cfg)` is the entry point (called by `transformer.commands.train` after Hydra
composition). Re-running it into a run folder that holds checkpoints/last.pt continues from there
(`train.resume`).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import signal
import threading
import time
from types import FrameType, TracebackType

from transformer.config import TrainRunConfig
from transformer.run.metrics_log import config_hash
from transformer.runtime import describe_hardware, disk_full_is_one_line, pick_device, rng_state
from transformer.training import budget
from transformer.training.budget_timing import Pace
from transformer.training.distributed import (
    all_gather_objects,
    broadcast_float,
    destroy_distributed,
    env_from_torchrun,
    init_distributed,
    max_over_ranks,
)
from transformer.training.divergence import DivergenceError, NonFiniteGuard
from transformer.training.final_model import evaluate_test, write_final_model
from transformer.training.init_from import StartingPoint
from transformer.training.logger import Meter, flat_hparams
from transformer.training.loop_state import checkpoint_state
from transformer.training.session import Run, build_run
from transformer.training.step import StepResult
from transformer.training.validation import format_samples, validate

logger = logging.getLogger(__name__)
_DISK_FULL = (
    "the last saved checkpoint is intact. Free some space, then run the same command again to "
    "resume."
)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """While open, Ctrl-C or SIGTERM ask the loop to stop after the current update.

    The loop then saves checkpoints/last.pt and returns; a second signal stops at once, with
    exit status 128 + its number.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            for sig in _STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:  # the folder keeps its last complete save
            logger.error("second %s: stopping at once, without saving", name)
            raise SystemExit(128 + signum)
        self.requested, self.signum = name, signum
        logger.warning("%s: saving a checkpoint after this update, then stopping", name)


def save(run: Run, *, is_best: bool, periodic: bool) -> None:
    """Gather every rank's RNG state; rank 0 writes last.pt (and best.pt, checkpoint_<step>)."""
    rng_ranks = all_gather_objects(rng_state())
    if not run.env.is_main:
        return
    state = checkpoint_state(
        model=run.model,
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        scaler=run.scaler,
        sampler=run.sampler,
        counters=run.counters,
        rng_ranks=rng_ranks,
        cfg=run.cfg,
        tokenizer=run.prepared.tokenizer,
        data_sources=run.prepared.sources,
    )
    run.checkpoints.save(
        state, is_best=is_best, periodic=periodic, keep_last=run.cfg.train.keep_last
    )


def validate_and_save(run: Run) -> dict[str, float]:
    """Validate (loss, perplexity, BLEU), log it, update best/patience, save checkpoints."""
    cfg, step = run.cfg, run.counters.update
    # Only rank 0 decodes for BLEU: its score is the one every rank uses.
    report = validate(
        run.model, run.prepared, cfg, run.device, run.precision, decode_bleu=run.env.is_main
    )
    # Rank 0's scores decide for every rank, so best.pt and early stopping agree; every rank
    # joins each broadcast (the condition below is the config's, the same on all ranks).
    loss = broadcast_float(report.loss.loss)
    metrics = {"valid_loss": loss, "valid_ppl": report.ppl}
    bleu = None
    if cfg.train.validate_bleu:
        bleu = broadcast_float(report.bleu.metrics.bleu if report.bleu else math.nan)
        metrics["valid_bleu"] = bleu
    if report.bleu is not None:
        run.log.text("valid/samples", format_samples(report.bleu.samples), step)
        signature = report.bleu.metrics.bleu_signature
        run.log.text("valid/bleu_signature", signature, step)
        logger.info("validation BLEU signature: %s", signature)
    is_best = run.counters.record(bleu, loss)
    run.log.scalars({f"valid/{k.removeprefix('valid_')}": v for k, v in metrics.items()}, step)
    logger.info(
        "validation at update %d: %s%s",
        step,
        " | ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
        " (best)" if is_best else f" ({run.counters.bad_validations} without gain)",
    )
    run.log.event("validation", step, {**metrics, "best": is_best})
    run.counters.validated_update, run.last_metrics = step, metrics
    save(run, is_best=is_best, periodic=True)
    return metrics


def _report(run: Run, meter: Meter, result: StepResult, lr: float) -> None:
    values = meter.summary()
    values["lr"] = lr
    if result.grad_norm is not None:
        values["grad_norm"] = result.grad_norm.item()
    run.log.scalars({f"train/{key}": value for key, value in values.items()}, run.counters.update)
    run.log.event("train", run.counters.update, {"epoch": run.stream.epoch + 1, **values})
    run.log.progress(0, {"loss": f"{values['loss']:.3f}", "tok/s": f"{values['tokens_per_s']:.0f}"})
    logger.info(
        "update %d | epoch %d | loss %.3f | ppl %.2f | lr %.3g | gnorm %.3f | %.0f tok/s",
        run.counters.update,
        run.stream.epoch + 1,
        values["loss"],
        values["ppl"],
        lr,
        values.get("grad_norm", float("nan")),
        values["tokens_per_s"],
    )


def _stop_reason(run: Run, stop: StopOnSignal, train_ends_by: float | None) -> str | None:
    cfg = run.cfg.train
    if cfg.max_updates and run.counters.update >= cfg.max_updates:
        return "max_updates"
    if cfg.patience and run.counters.bad_validations >= cfg.patience:
        return "early stopping"
    out_of_time = cfg.max_time_minutes > 0 and (
        time.monotonic() - run.started > cfg.max_time_minutes * 60
    )
    # A budget's planning session also stops when its updates ran slower than timed.
    out_of_budget = budget.out_of_budget(train_ends_by)
    # Every rank must stop at the same update: 3 = a signal somewhere, 1/2 = out of time.
    flag = 3 if stop.requested is not None else 2 if out_of_budget else int(out_of_time)
    flag = max_over_ranks(flag)
    return {0: None, 1: "max_time_minutes", 2: "budget_minutes", 3: "signal"}[flag]


def _late_dropout(run: Run, *, session_start: bool = False) -> None:
    """Switch to train.late_dropout once update train.late_dropout_from is done (checked after
    each update, and at the start of a session that resumes past it)."""
    cfg, step = run.cfg.train, run.counters.update
    if cfg.late_dropout is None:
        return
    if step == cfg.late_dropout_from:
        run.model.set_dropout(cfg.late_dropout)
        logger.info("from update %d on: dropout %g (train.late_dropout)", step, cfg.late_dropout)
    elif session_start and step > cfg.late_dropout_from:
        run.model.set_dropout(cfg.late_dropout)
        logger.info(
            "dropout %g since update %d (train.late_dropout)", cfg.late_dropout,
            cfg.late_dropout_from,
        )  # fmt: skip


def _loop(run: Run, stop: StopOnSignal, guard: NonFiniteGuard, plan: dict | None) -> str:
    """Train until a stop; `plan` is a budget's in the session that planned it (re-planned at
    each validation), else None."""
    meter, pace = Meter(run.device), Pace()
    _late_dropout(run, session_start=True)
    train_ends_by = plan["train_ends_by"] if plan else None
    while (reason := _stop_reason(run, stop, train_ends_by)) is None:
        cfg = run.cfg.train  # a re-plan changes max_updates
        batches = run.stream.take(cfg.accum_steps)
        if not batches:
            break
        log_now = (run.counters.update + 1) % cfg.log_every == 0
        lr = run.optimizer.param_groups[0]["lr"]
        result = run.update_step(batches, want_grad_norm=log_now)
        guard.add(result.finite)
        run.scheduler.step()
        run.counters.update += 1
        _late_dropout(run)
        meter.add(result.loss, result.nll, result.n_tokens)
        pace.tick()
        run.log.progress(1)
        if log_now:
            guard.check(run)  # the report below syncs anyway
            _report(run, meter, result, lr)
        if run.counters.update % cfg.validate_every == 0:
            guard.check(run)  # never save weights of a divergence
            if plan is not None:
                budget.replan(run, plan, pace)  # before the save: a resume follows it
            validate_and_save(run)
            pace.restart()
    guard.check(run)
    return reason or "max_epochs"


def _log_stop(run: Run, reason: str, began: float) -> None:
    wall = round(time.monotonic() - began, 1)
    run.log.event("stop", run.counters.update, {"reason": reason, "wall_seconds": wall})


def _finish(run: Run, reason: str, stop: StopOnSignal) -> dict[str, float]:
    if reason == "signal":
        if run.counters.validated_update != run.counters.update:  # else saved by that validation
            save(run, is_best=False, periodic=False)
        logger.warning(
            "stopped by %s at update %d after saving %s; run the same command again to resume",
            stop.requested, run.counters.update, run.checkpoints.last_path,
        )  # fmt: skip
        return {}
    # Also after a signal stop: re-running with train.max_updates at its update finishes the run.
    if run.counters.update > 0 and run.counters.validated_update != run.counters.update:
        validate_and_save(run)
    metrics = dict(run.last_metrics)
    if run.env.is_main and (final := write_final_model(run)) is not None:
        if run.cfg.train.evaluate_test:
            metrics.update(evaluate_test(run, *final))
    return metrics


def _session_start(run: Run, setup_seconds: float) -> dict[str, object]:
    return {
        "hardware": describe_hardware(run.device, run.env.world_size),
        "world_size": run.env.world_size,
        "precision": run.precision,
        "config_hash": config_hash(run.cfg),
        "setup_seconds": round(setup_seconds, 1),
    }


def train(
    cfg: TrainRunConfig,
    start: StartingPoint | None = None,
    command_line: frozenset[str] = frozenset(),
) -> dict:
    """Train (or resume) the run in `cfg.run_dir`; return the final metrics.

    `start` is a fine-tune's starting checkpoint (`train.init_from`) when the caller has read it
    already (it is read once). With `train.budget_minutes`, a fresh run is planned for its budget
    after the set-up (`transformer.training.budget`); `command_line` names the keys the user
    gave, which the plan keeps (e.g. "optim.lr", or "optim" for a whole group).

    Stops at `train.max_updates`, `max_epochs`, `max_time_minutes` (this session's wall time),
    after `patience` validations without a gain in BLEU, or on Ctrl-C/SIGTERM, which first save
    checkpoints/last.pt. Under torchrun each process trains one DDP rank and rank 0 alone writes.

    An update whose loss or gradient norm is not finite is skipped; after
    `train.max_nonfinite_updates` in a row the run stops with `DivergenceError`, keeping the last
    checkpoint it saved.

    Returns:
        "step", "epoch", "stop_reason", "stop_signal" (the signal's number after a signal stop,
        else None), "best_bleu", "best_loss", and the last validation's
        "valid_loss", "valid_ppl", "valid_bleu" and "test_bleu", "test_bleu_lowercase",
        "test_chrf" when computed.
    """
    with disk_full_is_one_line(cfg.run_dir, _DISK_FULL):  # a log, event or metrics file
        return _session(cfg, start, command_line)


def _session(
    cfg: TrainRunConfig, start: StartingPoint | None, command_line: frozenset[str]
) -> dict:
    """`train` (a full disk aside)."""
    began = time.monotonic()
    env = env_from_torchrun()
    device = init_distributed(env, pick_device(cfg.train.device))
    try:
        cfg = budget.budget_settings(cfg, command_line)
        cfg, recorded = budget.recorded_config(cfg, command_line)  # a budgeted run's plan
        run = build_run(cfg, env, device, start)
        with run.log:
            run.log.event("start", run.counters.update, _session_start(run, run.started - began))
            plan = None
            if cfg.train.budget_minutes and recorded is None:
                plan = budget.plan_session(run, command_line)
            cfg = run.cfg
            run.log.hparams(flat_hparams(dataclasses.asdict(cfg)), ["valid/bleu", "valid/loss"])
            with StopOnSignal() as stop:
                try:
                    guard = NonFiniteGuard(cfg.train.max_nonfinite_updates, device)
                    reason = _loop(run, stop, guard, plan)
                except DivergenceError:
                    wall = round(time.monotonic() - began, 1)
                    run.log.event(
                        "stop", run.counters.update, {"reason": "diverged", "wall_seconds": wall}
                    )
                    raise
            # Outside the handler: Ctrl-C during the final validation and test decode stops it.
            elapsed = datetime.timedelta(seconds=round(time.monotonic() - run.started))
            logger.info(
                "stopped at update %d: %s (%s in this session)",
                run.counters.update,
                reason,
                elapsed,
            )
            _log_stop(run, reason, began)
            metrics = _finish(run, reason, stop)
        return {
            "step": run.counters.update,
            "epoch": run.stream.epoch,
            "stop_reason": reason,
            "stop_signal": stop.signum if reason == "signal" else None,
            "best_bleu": run.counters.best_bleu,
            "best_loss": run.counters.best_loss,
            **metrics,
        }
    finally:
        destroy_distributed()
