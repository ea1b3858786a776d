"""`train.budget_minutes=N`: a run planned, in updates, to be the best it can be in N minutes.

N minutes of wall time count from the command's start to its exit. After the data and the model
are ready, the session times a few updates and a decode (`budget_timing`), then fixes a plan in
updates and follows it: the number of updates, warmup, peak rate, a linear decay to 0 at the
end, late dropout (only for plans long enough to overfit), the validation points, and the
averaging. The time left for the final validation, the final model and the test decode is set
aside first. The plan is written to the run folder (budget_plan.json) and to metrics.jsonl.
At each validation before the decay, the planning session re-plans the updates left from the
loop's own pace and the time left (`replan`).

A budgeted run uses pre-norm layers and 1,024-token batches (SETTINGS;
docs/time-to-quality.md). A budget replaces train.max_updates, optim.warmup_steps,
optim.cooldown_updates, optim.lr, optim.schedule, train.late_dropout(_from),
train.validate_every and train.average_last, except those given on the command line. A resumed
run keeps its recorded plan; another N is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path

from transformer.config import TrainRunConfig
from transformer.run.checkpoint_dir import holds_run
from transformer.run.layout import BUDGET_PLAN
from transformer.training.budget_timing import Measurement, Pace, measure, process_start_time
from transformer.training.distributed import broadcast_float
from transformer.training.loop_state import ResumeError
from transformer.training.optim import apply_schedule, schedule_factor
from transformer.training.session import Run, _optimization, _update_step, schedule_settings

logger = logging.getLogger(__name__)

# The plan's rules (docs/time-to-quality.md has the measurements behind them).
# Pre-norm at a peak of 3e-3, warmup 250 and a decay over the last 40% of 850 updates: validation
# BLEU 26.6 at update 425 and 35.8 at 850, where the recipe (post-norm, warmup 1,000 to 4e-3)
# had 12.5 at 500 and 24.2 at 1,000.
PEAK_LR = 3.0e-3
WARMUP_SHARE = 0.3  # of the planned updates,
MAX_WARMUP = 250  # at most the measured run's
DECAY_SHARE = 0.4  # the last 40% fall linearly to 0 (warmup-stable-decay)
MAX_MID_VALIDATIONS = 3  # validations before the last one, for the curve
MID_VALIDATION_SHARE = 0.08  # at most this share of the training time on them
SAFETY_SHARE = 0.02  # of the budget, plus SAFETY_SECONDS, for saves, logging and exit
SAFETY_SECONDS = 5.0
MIN_UPDATES = 10
# The recipe's late dropout starts at update 3,250 of 8,250, of 4,096-token batches: a plan
# that trains as many tokens keeps the share.
RECIPE_LATE_DROPOUT = (3250, 8250)
RECIPE_TOKENS = 4096

# Settings of every budgeted run, unless the command line gives them. They are fixed before the
# set-up (they are part of what is timed); a fine-tuned run keeps its checkpoint's model.
# The plan's schedule over the same 2.9M tokens: validation BLEU 33.7 in 700 updates of 4,096
# tokens, 38.3 in 1,400 of 2,048, 38.6 in 2,800 of 1,024, 36.6 in 5,600 of 512; a token costs
# the same from 1,024 to 2,048 (docs/time-to-quality.md).
SETTINGS: dict[str, object] = {
    "model.norm_placement": "pre",  # takes the plan's high rate early
    "train.max_tokens": 1024,  # four times the recipe's updates for the same tokens
}

# Keys a plan sets, unless the command line gives them.
PLANNED_KEYS = (
    "train.max_updates", "optim.warmup_steps", "optim.cooldown_updates", "optim.lr",
    "optim.schedule", "train.late_dropout", "train.late_dropout_from", "train.validate_every",
    "train.average_last",
)  # fmt: skip


class BudgetError(ValueError):
    """A budget that cannot be planned (too small for what it must pay for)."""


def is_explicit(key: str, command_line: frozenset[str]) -> bool:
    """Whether `section.key` (or its whole section, e.g. `optim=noam`) is on the command line."""
    return key in command_line or key.split(".")[0] in command_line


def _validations(train_seconds: float, valid_seconds: float) -> int:
    """How many validations before the last one the training time affords (the curve)."""
    for n in range(MAX_MID_VALIDATIONS, 0, -1):
        if n * valid_seconds <= MID_VALIDATION_SHARE * train_seconds:
            return n
    return 0


def make_plan(
    budget_minutes: float, m: Measurement, late_dropout: float | None,
    max_tokens: int = RECIPE_TOKENS,
) -> dict:  # fmt: skip
    """The plan in updates for `budget_minutes` from the measurement (pure arithmetic).

    Raises:
        BudgetError: the budget leaves fewer than MIN_UPDATES updates.
    """
    budget = budget_minutes * 60
    final = m.valid_seconds + m.test_seconds  # the last validation, then the test decode
    safety = SAFETY_SHARE * budget + SAFETY_SECONDS
    available = budget - m.prep_seconds - final - safety
    n_mid = _validations(available, m.valid_seconds)
    train_seconds = available - n_mid * m.valid_seconds
    updates = math.floor(train_seconds / m.seconds_per_update) if train_seconds > 0 else 0
    updates -= updates % (n_mid + 1)  # validations split the run evenly, the last at its end
    if updates < MIN_UPDATES:
        raise BudgetError(
            f"train.budget_minutes={budget_minutes:g} leaves time for {max(updates, 0)} updates "
            f"(set-up {m.prep_seconds:.0f} s, {m.seconds_per_update:.2f} s an update, final "
            f"validation and test {final:.0f} s); give a larger budget."
        )
    late_from, recipe_total = RECIPE_LATE_DROPOUT
    late = late_dropout is not None and updates * max_tokens >= late_from * RECIPE_TOKENS
    return {
        "budget_minutes": budget_minutes,
        "max_updates": updates,
        "schedule": "constant",
        "lr": PEAK_LR,
        "warmup_steps": min(MAX_WARMUP, round(WARMUP_SHARE * updates)),
        "cooldown_updates": round(DECAY_SHARE * updates),
        "late_dropout": late_dropout if late else None,
        "late_dropout_from": round(updates * late_from / recipe_total) if late else 0,
        "validate_every": updates // (n_mid + 1),
        "average_last": 0,  # the decay to 0 does what averaging would (docs/results.md)
        "started_at": m.started_at,
        "prep_seconds": round(m.prep_seconds, 2),
        "seconds_per_update": round(m.seconds_per_update, 4),
        "valid_seconds": round(m.valid_seconds, 2),
        "test_seconds": round(m.test_seconds, 2),
        "safety_seconds": round(safety, 2),
        "train_ends_by": round(m.started_at + budget - final - safety, 3),
        "expected_seconds": round(
            m.prep_seconds
            + updates * m.seconds_per_update
            + (n_mid + 1) * m.valid_seconds
            + m.test_seconds,
            1,
        ),  # fmt: skip
    }


def apply_plan(cfg: TrainRunConfig, plan: dict, command_line: frozenset[str]) -> TrainRunConfig:
    """`cfg` with the plan's values, except for keys given on the command line."""
    values = {key: plan[key.split(".")[1]] for key in PLANNED_KEYS}
    return _with_settings(cfg, values, command_line)


def budget_settings(cfg: TrainRunConfig, command_line: frozenset[str]) -> TrainRunConfig:
    """A budgeted run's SETTINGS, except those on the command line (and a fine-tuned run's
    model settings, which are its checkpoint's)."""
    if not cfg.train.budget_minutes:
        return cfg
    fine_tune = cfg.train.init_from is not None
    settings = {k: v for k, v in SETTINGS.items() if not (fine_tune and k.startswith("model."))}
    return _with_settings(cfg, settings, command_line)


def _with_settings(
    cfg: TrainRunConfig, settings: dict[str, object], command_line: frozenset[str]
) -> TrainRunConfig:
    """`cfg` with `settings` ("section.key": value), except those on the command line."""
    sections: dict[str, dict[str, object]] = {}
    for key, value in settings.items():
        section, name = key.split(".")
        if not is_explicit(key, command_line):
            sections.setdefault(section, {})[name] = value
    changed = {k: dataclasses.replace(getattr(cfg, k), **v) for k, v in sections.items()}
    return dataclasses.replace(cfg, **changed)


def _value(cfg: TrainRunConfig, key: str) -> object:
    """The value of "section.key" in `cfg`."""
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def write_plan(run_dir: Path, plan: dict) -> Path:
    """Write budget_plan.json atomically (a temporary file, then a rename)."""
    path = run_dir / BUDGET_PLAN
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def recorded_config(
    cfg: TrainRunConfig, command_line: frozenset[str]
) -> tuple[TrainRunConfig, dict | None]:
    """Before a session is built: a run folder that resumes a budgeted run takes its recorded
    plan (returned with the planned config); else (cfg, None).

    Raises:
        ResumeError: the folder's run was planned for another budget, or trained without one.
    """
    run_dir = Path(cfg.run_dir)
    if not cfg.train.resume or not holds_run(run_dir / "checkpoints"):
        return cfg, None
    path = run_dir / BUDGET_PLAN
    plan = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    recorded = plan["budget_minutes"] if plan else 0.0
    if recorded != cfg.train.budget_minutes:
        given = f"train.budget_minutes={cfg.train.budget_minutes:g}"
        planned = f"planned for {recorded:g} minutes" if plan else "trained without a budget"
        raise ResumeError(
            f"{given}, but the run in {run_dir} was {planned}; resume it with "
            f"train.budget_minutes={recorded:g}, or start another run folder."
        )
    if plan is None:
        return cfg, None
    logger.info("resuming a budgeted run with its plan from %s", path)
    # The settings the run was set up with (SETTINGS may have changed since), then its plan.
    cfg = _with_settings(cfg, plan.get("settings", {}), command_line)
    return apply_plan(cfg, plan, command_line), plan


def _agreed(m: Measurement) -> Measurement:
    """Rank 0's measurement on every rank (one plan for all)."""
    values = [broadcast_float(getattr(m, f.name)) for f in dataclasses.fields(m)]
    return Measurement(*values)


def plan_session(run: Run, command_line: frozenset[str]) -> dict:
    """Measure, plan, and rebuild the run's schedule (and everything the plan sets) in place.

    Called on a fresh run before its first update; the plan is fixed before any save, so a run
    stopped later resumes with it (`recorded_config`).
    """
    cfg = run.cfg
    m = _agreed(measure(run, process_start_time()))
    plan = make_plan(cfg.train.budget_minutes, m, cfg.train.late_dropout, cfg.train.max_tokens)
    cfg = apply_plan(cfg, plan, command_line)
    for key in PLANNED_KEYS:  # the values this run follows, given or planned
        plan[key.split(".")[1]] = _value(cfg, key)
    plan["command_line"] = sorted(k for k in PLANNED_KEYS if is_explicit(k, command_line))
    plan["settings"] = {key: _value(cfg, key) for key in SETTINGS}  # given or SETTINGS
    run.cfg = cfg
    run.optimizer, run.scheduler = _optimization(run.model, cfg, run.device)
    run.update_step = _update_step(
        run.model, run.optimizer, run.scaler, cfg, run.env, run.device, run.precision
    )
    if run.env.is_main:
        write_plan(Path(cfg.run_dir), plan)
    run.log.set_total(cfg.train.max_updates)
    run.log.event("budget_plan", run.counters.update, plan)
    logger.info("%s", describe(plan))
    return plan


def replan(run: Run, plan: dict, pace: Pace) -> None:
    """At a validation of the planning session, before the decay: fit the updates left to the
    time left, at the loop's own pace since the last validation.

    Six timed updates misjudge the loop's speed by 10% either way, and a machine's speed drifts;
    re-planned here, the decay ends inside the budget instead of being cut by the guard. The rate
    of every update so far does not depend on the number of updates (warmup, then the peak), and
    the plan is written before this validation's save, so a resumed run follows one plan.
    Kept as planned where the command line gave the updates or the decay.
    """
    cfg, update = run.cfg, run.counters.update
    given = {"train.max_updates", "optim.cooldown_updates"} & set(plan["command_line"])
    if given or update >= cfg.train.max_updates - cfg.optim.cooldown_updates or not pace.updates:
        return
    seconds = broadcast_float(pace.seconds_per_update())  # rank 0's pace and clock
    left = broadcast_float(seconds_left(plan["train_ends_by"]))
    every, valid = cfg.train.validate_every, plan["valid_seconds"]
    updates = 0
    for _ in range(3):  # the validations on the way depend on the updates, and back
        validations = 1 + (update + max(updates, 1) - 1) // every - update // every
        updates = max(0, math.floor((left - validations * valid) / seconds))
    max_updates = update + updates
    # Where fewer updates are left than the decay wants, it starts with the next update.
    cooldown = min(round(DECAY_SHARE * max_updates), updates)
    if max_updates == cfg.train.max_updates or updates == 0:
        return  # as planned, or out of time (the guard stops the run)
    plan.setdefault("replans", []).append(
        {"update": update, "seconds_per_update": round(seconds, 4), "max_updates": max_updates}
    )
    plan["max_updates"], plan["cooldown_updates"] = max_updates, cooldown
    train = dataclasses.replace(cfg.train, max_updates=max_updates)
    optim = dataclasses.replace(cfg.optim, cooldown_updates=cooldown)
    run.cfg = cfg = dataclasses.replace(cfg, train=train, optim=optim)
    factor = schedule_factor(**schedule_settings(cfg))
    run.scheduler.lr_lambdas = [factor] * len(run.scheduler.lr_lambdas)
    apply_schedule(run.scheduler)  # the same rate now: the decay starts later
    if run.env.is_main:
        write_plan(Path(cfg.run_dir), plan)
    run.log.set_total(max_updates)
    run.log.event("budget_replan", update, plan["replans"][-1])
    logger.info(
        "budget re-planned at update %d from the loop's %.3f s an update: %d updates, "
        "linear decay to 0 over the last %d", update, seconds, max_updates, cooldown,
    )  # fmt: skip


def seconds_left(ends_by: float) -> float:
    """Seconds from now to `ends_by` (Unix time)."""
    return ends_by - time.time()


def out_of_budget(train_ends_by: float | None) -> bool:
    """Whether the planning session has used the time its plan gave to updates."""
    return train_ends_by is not None and time.time() > train_ends_by


def describe(plan: dict) -> str:
    """One log line."""
    return (
        f"budget {plan['budget_minutes']:g} min: {plan['max_updates']} updates "
        f"({plan['seconds_per_update']:.2f} s each), warmup {plan['warmup_steps']}, peak lr "
        f"{plan['lr']:g}, linear decay to 0 over the last {plan['cooldown_updates']}, validation "
        f"every {plan['validate_every']}; set-up {plan['prep_seconds']:.0f} s, final validation "
        f"and test {plan['valid_seconds'] + plan['test_seconds']:.0f} s; expected end "
        f"{plan['expected_seconds'] / 60:.1f} min after the start"
    )
