"""Parameter groups and learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from transformer.training.optim import (
    apply_schedule,
    build_optimizer,
    build_scheduler,
    cooldown,
    lr_at,
    param_groups,
    restore_schedule,
)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 10, bias=False)
        self.out.weight = self.embedding.weight  # tied, as the model ties its output layer


def test_param_groups_exclude_norms_biases_and_embeddings_from_decay() -> None:
    model = _Toy()
    decay, no_decay = param_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(model.proj.weight)]
    expected = {id(model.embedding.weight), id(model.proj.bias), id(model.norm.weight)}
    expected.add(id(model.norm.bias))
    assert {id(p) for p in no_decay["params"]} == expected
    # Every trainable parameter is in exactly one group, the tied one once.
    all_ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert sorted(all_ids) == sorted({id(p) for p in model.parameters()})


def test_weight_decay_leaves_no_decay_params_alone() -> None:
    model = _Toy()
    optimizer = build_optimizer(
        model, lr=0.1, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.5, fused=False
    )
    before_norm = model.norm.weight.detach().clone()
    before_proj = model.proj.weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradients: only weight decay can move a parameter
    optimizer.step()
    torch.testing.assert_close(model.norm.weight, before_norm)
    torch.testing.assert_close(model.proj.weight, before_proj * (1 - 0.1 * 0.5))


def test_optimizer_is_adam_with_the_papers_settings() -> None:
    optimizer = build_optimizer(
        _Toy(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=False
    )
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9


def test_inverse_sqrt_warms_up_linearly_then_decays() -> None:
    rates = [
        lr_at(n, schedule="inverse_sqrt", lr=1.0, warmup_steps=4, d_model=8, noam_factor=1)
        for n in range(1, 17)
    ]
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[15] == pytest.approx(math.sqrt(4 / 16))
    assert max(rates) == pytest.approx(1.0)


def test_noam_matches_the_paper_formula_and_peaks_at_warmup() -> None:
    d_model, warmup = 512, 4000
    for n in (1, 100, 4000, 10_000):
        expected = d_model**-0.5 * min(n**-0.5, n * warmup**-1.5)
        got = lr_at(
            n, schedule="noam", lr=123.0, warmup_steps=warmup, d_model=d_model, noam_factor=1.0
        )
        assert got == pytest.approx(expected)
    rates = [
        lr_at(n, schedule="noam", lr=1.0, warmup_steps=50, d_model=16, noam_factor=2.0)
        for n in range(1, 200)
    ]
    assert rates.index(max(rates)) + 1 == 50


def test_constant_schedule_warms_up_then_stays() -> None:
    rates = [
        lr_at(n, schedule="constant", lr=0.5, warmup_steps=2, d_model=8, noam_factor=1)
        for n in range(1, 6)
    ]
    assert rates == pytest.approx([0.25, 0.5, 0.5, 0.5, 0.5])


@pytest.mark.parametrize("schedule", ["inverse_sqrt", "noam", "constant"])
def test_scheduler_applies_the_rate_of_each_update(schedule: str) -> None:
    model = _Toy()
    optimizer = build_optimizer(
        model, lr=2e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=False
    )
    scheduler = build_scheduler(
        optimizer, schedule=schedule, lr=2e-3, warmup_steps=3, d_model=8, noam_factor=1.0
    )
    for update in range(1, 8):
        expected = lr_at(
            update, schedule=schedule, lr=2e-3, warmup_steps=3, d_model=8, noam_factor=1.0
        )
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
        optimizer.step()
        scheduler.step()


def test_cooldown_takes_the_last_updates_linearly_towards_zero() -> None:
    factors = [cooldown(update, last_update=10, n_updates=4) for update in range(1, 12)]
    assert factors == pytest.approx([1.0] * 6 + [0.8, 0.6, 0.4, 0.2, 0.0])
    assert [cooldown(u, last_update=10, n_updates=0) for u in (1, 10, 20)] == [1.0, 1.0, 1.0]
    optimizer = build_optimizer(
        _Toy(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=False
    )
    scheduler = build_scheduler(
        optimizer, schedule="inverse_sqrt", lr=1e-3, warmup_steps=2, d_model=8, noam_factor=1.0,
        cooldown_updates=4, last_update=10,
    )  # fmt: skip
    for update in range(1, 11):
        scheduled = lr_at(
            update, schedule="inverse_sqrt", lr=1e-3, warmup_steps=2, d_model=8, noam_factor=1.0
        )
        assert optimizer.param_groups[0]["lr"] == pytest.approx(scheduled * factors[update - 1])
        optimizer.step()
        scheduler.step()


def test_scheduler_state_round_trip_resumes_the_schedule() -> None:
    def make() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        opt = build_optimizer(
            _Toy(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=False
        )
        return opt, build_scheduler(
            opt, schedule="inverse_sqrt", lr=1e-3, warmup_steps=4, d_model=8, noam_factor=1.0
        )

    opt, sched = make()
    for _ in range(6):
        opt.step()
        sched.step()
    opt2, sched2 = make()
    sched2.load_state_dict(sched.state_dict())
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())
    assert sched2.last_epoch == 6


def test_a_schedule_changed_at_resume_sets_the_rate_of_the_next_update() -> None:
    def make(cooldown_updates: int) -> tuple[torch.optim.Optimizer, LambdaLR]:
        opt = build_optimizer(
            _Toy(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=False
        )
        return opt, build_scheduler(
            opt, schedule="inverse_sqrt", lr=1e-3, warmup_steps=4, d_model=8, noam_factor=1.0,
            cooldown_updates=cooldown_updates, last_update=10,
        )  # fmt: skip

    opt, sched = make(cooldown_updates=0)
    for _ in range(6):
        opt.step()
        sched.step()
    resumed_opt, resumed = make(cooldown_updates=4)
    resumed_opt.load_state_dict(opt.state_dict())
    resumed.load_state_dict(sched.state_dict())
    assert resumed_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]  # the old schedule's
    apply_schedule(resumed)
    update_7 = lr_at(7, schedule="inverse_sqrt", lr=1e-3, warmup_steps=4, d_model=8, noam_factor=1)
    assert resumed_opt.param_groups[0]["lr"] == pytest.approx(update_7 * 0.8)  # 4/5: cooldown
    assert resumed.get_last_lr() == [pytest.approx(update_7 * 0.8)] * 2
    apply_schedule(sched)  # the same schedule: the same rate
    assert opt.param_groups[0]["lr"] == pytest.approx(update_7)


@pytest.mark.parametrize("schedule", ["inverse_sqrt", "noam"])
def test_a_new_lr_at_resume_is_the_one_the_schedule_scales(schedule: str) -> None:
    def make(lr: float) -> tuple[torch.optim.Optimizer, LambdaLR]:
        opt = build_optimizer(
            _Toy(), lr=lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, fused=False
        )
        return opt, build_scheduler(
            opt, schedule=schedule, lr=lr, warmup_steps=4, d_model=8, noam_factor=1.0
        )

    opt, sched = make(lr=1e-3)
    for _ in range(6):
        opt.step()
        sched.step()
    resumed_opt, resumed = make(lr=3e-3)
    resumed_opt.load_state_dict(opt.state_dict())
    restore_schedule(resumed, sched.state_dict())
    assert resumed.last_epoch == 6
    for update in (7, 8):
        # noam ignores lr; inverse_sqrt peaks at the new one.
        expected = lr_at(
            update, schedule=schedule, lr=3e-3, warmup_steps=4, d_model=8, noam_factor=1.0
        )
        assert resumed_opt.param_groups[0]["lr"] == pytest.approx(expected)
        resumed_opt.step()
        resumed.step()
