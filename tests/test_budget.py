"""train.budget_minutes: the plan's arithmetic, the keys it keeps, exact resume with the recorded
plan, refusing another budget; and the default recipe without a budget, pinned."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny import tiny_train_config, write_tiny_parallel_corpus

from transformer.checkpoint import load_checkpoint
from transformer.commands.hydra_config import compose_run_config
from transformer.model import build_model
from transformer.run.layout import BUDGET_PLAN
from transformer.run.metrics_log import read_events
from transformer.training import budget, trainer
from transformer.training.budget_timing import Measurement, Pace
from transformer.training.loop_state import ResumeError
from transformer.training.session import _optimization
from transformer.training.step import UpdateStep

# A pinned measurement: 5 s of set-up, 10 s an update, 0.5 s per validation and test decode.
# With 3 minutes: 180 - 5 - 1 (final) - 8.6 (safety) = 165.4 s; 3 validations before the last
# (1.5 s <= 8% of it); 163.9 s buy 16 updates, a multiple of 4.
SECONDS = {"seconds_per_update": 10.0, "valid_seconds": 0.5, "test_seconds": 0.5}
BUDGET = 3.0
PLANNED_UPDATES = 16
REPLANNED = 18  # at the first validation, from the loop's pace (the resume test)


def pinned(run: object, started_at: float) -> Measurement:
    """The same measurement in every run (the real one times this machine at this moment)."""
    now = time.time()
    return Measurement(started_at=now - 5.0, planned_at=now, **SECONDS)


def test_plan_fits_the_budget_and_splits_it_evenly() -> None:
    now = time.time()
    m = Measurement(now - 30.0, now, 0.7, 40.0, 40.0)  # the recipe's size on 2 idle cores
    plan = budget.make_plan(10, m, late_dropout=0.3)
    n_validations = plan["max_updates"] // plan["validate_every"]
    assert plan["max_updates"] % plan["validate_every"] == 0
    assert plan["expected_seconds"] <= 600 - plan["safety_seconds"] + 1e-6
    assert plan["max_updates"] * 0.7 + n_validations * 40 + 40 + 30 <= 600
    assert plan["warmup_steps"] == round(budget.WARMUP_SHARE * plan["max_updates"]) < 250
    assert plan["cooldown_updates"] == round(budget.DECAY_SHARE * plan["max_updates"])
    assert plan["late_dropout"] is None  # a short plan does not overfit
    assert plan["train_ends_by"] == pytest.approx(m.started_at + 600 - 80 - 17)
    with pytest.raises(budget.BudgetError, match="train.budget_minutes=1 leaves"):
        budget.make_plan(1, m, late_dropout=None)


def test_a_long_plan_keeps_late_dropout_at_the_recipes_share() -> None:
    now = time.time()
    plan = budget.make_plan(120, Measurement(now, now, 0.7, 40.0, 40.0), late_dropout=0.3)
    assert plan["late_dropout"] == 0.3 and plan["warmup_steps"] == budget.MAX_WARMUP
    assert plan["late_dropout_from"] == round(plan["max_updates"] * 3250 / 8250)
    # The same updates of 1,024-token batches train a quarter of the recipe's tokens: none.
    small = budget.make_plan(120, Measurement(now, now, 0.7, 40.0, 40.0), 0.3, max_tokens=1024)
    assert small["max_updates"] == plan["max_updates"] and small["late_dropout"] is None


def test_keys_on_the_command_line_stay(tmp_path: Path) -> None:
    cfg = tiny_train_config(tmp_path, tmp_path / "run", budget_minutes=BUDGET)
    now = time.time()
    plan = budget.make_plan(BUDGET, Measurement(now - 5, now, **SECONDS), None)
    given = frozenset({"optim.lr", "train.validate_every"})
    planned = budget.apply_plan(cfg, plan, given)
    assert planned.optim.lr == cfg.optim.lr and planned.train.validate_every == 5
    assert planned.train.max_updates == PLANNED_UPDATES
    assert planned.optim.cooldown_updates == plan["cooldown_updates"] == 6
    assert planned.optim.schedule == "constant" != cfg.optim.schedule
    whole_group = budget.apply_plan(cfg, plan, frozenset({"optim"}))  # e.g. optim=noam
    assert whole_group.optim == cfg.optim
    budgeted = budget.budget_settings(cfg, frozenset())
    assert budgeted.model.norm_placement == "pre" != cfg.model.norm_placement
    assert budgeted.train.max_tokens == budget.SETTINGS["train.max_tokens"] != cfg.train.max_tokens
    kept = budget.budget_settings(cfg, frozenset({"model.norm_placement", "train.max_tokens"}))
    assert kept == cfg
    fine_tune = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_from="x.pt"))
    fine_tuned = budget.budget_settings(fine_tune, frozenset())
    assert (
        fine_tuned.model == cfg.model and fine_tuned.train.max_tokens == budgeted.train.max_tokens
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_parallel_corpus(tmp_path_factory.mktemp("corpus"))


def _config(corpus: dict[str, Path], run_dir: Path, **train: object) -> object:
    settings = {"budget_minutes": BUDGET, "evaluate_test": True, **train}
    return tiny_train_config(corpus["dir"], run_dir, **settings)


def test_budgeted_run_stopped_and_resumed_ends_where_an_uninterrupted_one_does(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "measure", pinned)
    tokens = budget.SETTINGS["train.max_tokens"]
    # The loop's pace is pinned at the timed 10 s an update, and the time left at 4 validations
    # (update 4) is 145 s: 14 more updates (4 validations of 0.5 s on the way), 2 more than
    # planned. At update 8, 105 s: 10 more, no change. From update 11 on, the decay.
    monkeypatch.setattr(Pace, "seconds_per_update", lambda self: 10.0)
    left = iter([145.0, 105.0])
    monkeypatch.setattr(budget, "seconds_left", lambda ends_by: next(left))
    whole = trainer.train(_config(corpus, tmp_path / "whole"))
    assert whole["step"] == REPLANNED and whole["stop_reason"] == "max_updates"
    assert next(left, None) is None  # re-planned at updates 4 and 8 only

    original_call = UpdateStep.__call__
    calls = []

    def call_then_terminate(self: UpdateStep, *args: object, **kwargs: object) -> object:
        result = original_call(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 6:  # after the plan, past the first validation (update 4)
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(UpdateStep, "__call__", call_then_terminate)
    left = iter([145.0])  # the stopped session re-plans at update 4 as the whole run did
    stopped = trainer.train(_config(corpus, tmp_path / "stopped"))
    assert stopped["stop_reason"] == "signal" and stopped["step"] == 6
    monkeypatch.setattr(UpdateStep, "__call__", original_call)
    monkeypatch.setattr(budget, "measure", lambda *a: pytest.fail("a resumed run re-planned"))
    monkeypatch.setitem(budget.SETTINGS, "train.max_tokens", 1024)  # the run keeps its own
    resumed = trainer.train(_config(corpus, tmp_path / "stopped"))  # seconds_left not called
    assert resumed["step"] == REPLANNED

    ref = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    got = load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")
    for name, value in ref["model"].items():
        assert torch.equal(got["model"][name], value), name
    plan = json.loads((tmp_path / "whole" / BUDGET_PLAN).read_text())
    assert plan["max_updates"] == REPLANNED and plan["validate_every"] == 4
    assert plan["replans"] == [{"update": 4, "seconds_per_update": 10.0, "max_updates": 18}]
    assert plan["cooldown_updates"] == ref["config"]["optim"]["cooldown_updates"] == 7
    assert ref["config"]["train"]["max_updates"] == REPLANNED
    assert ref["config"]["optim"]["warmup_steps"] == plan["warmup_steps"] == 5
    assert ref["config"]["model"]["norm_placement"] == "pre"  # budget.SETTINGS
    assert ref["config"]["train"]["max_tokens"] == plan["settings"]["train.max_tokens"] == tokens
    assert got["config"]["train"]["max_tokens"] == tokens  # its own, not today's SETTINGS

    events = read_events(tmp_path / "whole")
    assert [e["max_updates"] for e in events if e["event"] == "budget_plan"] == [16]
    assert [e["max_updates"] for e in events if e["event"] == "budget_replan"] == [18]
    (test,) = [e for e in events if e["event"] == "test"]
    assert test["checkpoint"].startswith("best.pt") and test["update"] == REPLANNED
    assert "case:lc" in test["bleu_lowercase_signature"] and math.isfinite(test["chrf"])
    assert test["bleu"] == whole["test_bleu"]


def test_resuming_with_another_budget_is_refused(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "measure", pinned)
    run_dir = tmp_path / "run"
    given = frozenset({"train.max_updates"})  # kept by the plan: the run stops early
    trainer.train(_config(corpus, run_dir, max_updates=4, evaluate_test=False), command_line=given)
    assert json.loads((run_dir / BUDGET_PLAN).read_text())["max_updates"] == 4
    with pytest.raises(ResumeError, match=r"budget_minutes=5, but .* planned for 3 minutes"):
        trainer.train(_config(corpus, run_dir, budget_minutes=5.0))
    with pytest.raises(ResumeError, match=r"budget_minutes=0, but .* planned for 3 minutes"):
        trainer.train(_config(corpus, run_dir, budget_minutes=0.0, max_updates=20))


# The default recipe, from its definition (docs/results.md, configs/train/default.yaml).
RECIPE = {
    "model": {"d_model": 128, "n_heads": 4, "n_encoder_layers": 4, "n_decoder_layers": 4,
              "d_ff": 256, "dropout": 0.1, "attn_dropout": 0.0, "ff_dropout": 0.0,
              "norm_placement": "post", "share_embeddings": True, "tie_output": True},
    "tokenizer": {"model_type": "unigram", "vocab_size": 8000, "joint": True},
    "optim": {"schedule": "inverse_sqrt", "lr": 4e-3, "warmup_steps": 1000, "adam_beta1": 0.9,
              "adam_beta2": 0.98, "eps": 1e-9, "weight_decay": 0.0, "clip_norm": 0.0,
              "cooldown_updates": 0},
    "train": {"max_tokens": 4096, "accum_steps": 1, "label_smoothing": 0.1,
              "late_dropout": 0.3, "late_dropout_from": 3250, "max_updates": 8250,
              "max_epochs": 0, "max_time_minutes": 0.0, "budget_minutes": 0.0,
              "validate_every": 250, "patience": 10, "keep_last": 5, "average_last": 5,
              "seed": 1, "precision": "auto"},
    "decode": {"beam_size": 5, "length_penalty": 0.6, "max_len_a": 1.2, "max_len_b": 10},
}  # fmt: skip


@pytest.mark.parametrize("direction", [[], ["data=multi30k_de_en"]])
def test_default_recipe_config_and_schedule_are_unchanged(
    direction: list[str], tmp_path: Path
) -> None:
    cfg = compose_run_config(direction, str(tmp_path))
    for section, values in RECIPE.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"{section}.{key}"
    model = build_model(cfg.model, 16, 16, 0)
    optimizer, scheduler = _optimization(model, cfg, torch.device("cpu"))
    rates = {}
    for update in range(1, 8251):  # the rate each update runs with
        rates[update] = optimizer.param_groups[0]["lr"]
        scheduler.step()
    for update in (1, 2, 250, 999, 1000, 1001, 3250, 5000, 8250):
        # Linear warmup to 4e-3 over 1,000 updates, then 4e-3 * sqrt(1000 / update).
        expected = 4e-3 * (update / 1000 if update < 1000 else math.sqrt(1000 / update))
        assert rates[update] == pytest.approx(expected, rel=1e-12), update


def test_updates_slower_than_timed_stop_in_time_for_the_final_model_and_test(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_fast(run: object, started_at: float) -> Measurement:
        # 1 ms an update: the plan asks for thousands, and its time for updates ends 2 s on.
        now = time.time()
        return Measurement(now - 5.0, now, 0.001, 0.5, 0.5)

    monkeypatch.setattr(budget, "measure", too_fast)
    minutes = (2 + 5 + 1 + budget.SAFETY_SECONDS) / (1 - budget.SAFETY_SHARE) / 60
    result = trainer.train(_config(corpus, tmp_path / "slow", budget_minutes=minutes))
    plan = json.loads((tmp_path / "slow" / BUDGET_PLAN).read_text())
    assert result["stop_reason"] == "budget_minutes" and result["step"] < plan["max_updates"]
    events = read_events(tmp_path / "slow")
    (test,) = [e for e in events if e["event"] == "test"]
    assert test["update"] == result["step"]
    assert test["time"] >= plan["train_ends_by"]


def test_a_replan_short_of_time_starts_the_decay_with_the_next_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_train_config(tmp_path, tmp_path / "run", budget_minutes=BUDGET)
    train = dataclasses.replace(cfg.train, max_updates=100, validate_every=25)
    optim = dataclasses.replace(
        cfg.optim, schedule="constant", lr=1e-3, warmup_steps=5, cooldown_updates=40
    )
    cfg = dataclasses.replace(cfg, train=train, optim=optim)
    optimizer, scheduler = _optimization(torch.nn.Linear(2, 2), cfg, torch.device("cpu"))
    for _ in range(25):  # 25 updates at the peak's side of the plan
        optimizer.step()
        scheduler.step()
    events: list[tuple] = []
    log = SimpleNamespace(set_total=lambda total: None, event=lambda *e: events.append(e))
    run = SimpleNamespace(
        cfg=cfg, counters=SimpleNamespace(update=25), scheduler=scheduler,
        env=SimpleNamespace(is_main=False), log=log,
    )  # fmt: skip
    pace = Pace()
    pace.updates = 25
    monkeypatch.setattr(Pace, "seconds_per_update", lambda self: 1.0)
    monkeypatch.setattr(budget, "seconds_left", lambda ends_by: 10.0)  # 10 updates left
    plan = {"command_line": [], "train_ends_by": 0.0, "valid_seconds": 0.0}
    budget.replan(run, plan, pace)
    # 40% of 35 updates is 14, more than the 10 left: all 10 decay, from the next one on.
    assert (run.cfg.train.max_updates, run.cfg.optim.cooldown_updates) == (35, 10)
    assert plan["replans"] == [{"update": 25, "seconds_per_update": 1.0, "max_updates": 35}]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 10 / 11)  # update 26
    assert [e[0] for e in events] == ["budget_replan"]
