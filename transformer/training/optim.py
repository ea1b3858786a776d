"""Adam with parameter groups, and the learning-rate schedules (paper section 5.3) with an
optional linear cooldown to 0 at the end of the run."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

_NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.RMSNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group and one without weight decay.

    Norm weights, biases (any parameter with fewer than two dims) and embeddings are not
    decayed: shrinking them towards zero does not regularise the function the model computes.
    A parameter shared by several modules (tied embeddings) appears once, in the group of the
    first module that owns it.

    Returns:
        `[{"params": decayed, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0}]`.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            is_embedding = isinstance(module, nn.Embedding) or "embed" in f"{module_name}.{name}"
            if param.ndim < 2 or is_embedding or isinstance(module, _NO_DECAY_MODULES):
                no_decay.append(param)
            else:
                decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    fused: bool,
) -> torch.optim.AdamW:
    """Adam with decoupled weight decay (identical to plain Adam when `weight_decay` is 0).

    Args:
        fused: use the fused CUDA kernel (all parameters must be on a CUDA device).
    """
    return torch.optim.AdamW(
        param_groups(model, weight_decay),
        lr=lr,
        betas=betas,
        eps=eps,
        fused=fused or None,
    )


def inverse_sqrt(update: int, warmup_steps: int) -> float:
    """Factor of the peak rate: linear warmup to 1, then decay with 1/sqrt(update)."""
    if update < warmup_steps:
        return update / warmup_steps
    return math.sqrt(max(warmup_steps, 1) / update)


def noam(update: int, warmup_steps: int, d_model: int, factor: float) -> float:
    """The paper's rate: factor * d_model^-0.5 * min(update^-0.5, update * warmup^-1.5)."""
    warmup = update * warmup_steps**-1.5 if warmup_steps > 0 else math.inf
    return factor * d_model**-0.5 * min(update**-0.5, warmup)


def constant(update: int, warmup_steps: int) -> float:
    """Factor of the peak rate: linear warmup to 1, then 1."""
    return min(1.0, update / warmup_steps) if warmup_steps > 0 else 1.0


def cooldown(update: int, last_update: int, n_updates: int) -> float:
    """Factor of the scheduled rate: 1, then over the last `n_updates` up to `last_update` (all
    of them if fewer) a linear fall towards 0, reached one update after the last.
    `n_updates` 0: always 1."""
    n_updates = min(n_updates, last_update)
    if n_updates == 0:
        return 1.0
    return min(1.0, max(0.0, (last_update + 1 - update) / (n_updates + 1)))


def lr_at(
    update: int, *, schedule: str, lr: float, warmup_steps: int, d_model: int, noam_factor: float
) -> float:
    """The learning rate of update number `update` (counted from 1).

    `lr` is the peak rate for "inverse_sqrt" and "constant"; "noam" ignores it.
    """
    if schedule == "inverse_sqrt":
        return lr * inverse_sqrt(update, warmup_steps)
    if schedule == "constant":
        return lr * constant(update, warmup_steps)
    if schedule == "noam":
        return noam(update, warmup_steps, d_model, noam_factor)
    raise ValueError(f"optim.schedule={schedule!r} is not one of inverse_sqrt, noam, constant.")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    lr: float,
    warmup_steps: int,
    d_model: int,
    noam_factor: float,
    cooldown_updates: int = 0,
    last_update: int = 0,
) -> LambdaLR:
    """A `LambdaLR` that sets the rate of each update to `lr_at(update, ...)`, times
    `cooldown(update, last_update, cooldown_updates)`.

    `LambdaLR` scales the optimizer's initial rate (`lr`) and counts its steps from 0 for the
    first update, hence the `step + 1` and the division by `lr`.
    """

    factor = schedule_factor(
        schedule=schedule, lr=lr, warmup_steps=warmup_steps, d_model=d_model,
        noam_factor=noam_factor, cooldown_updates=cooldown_updates, last_update=last_update,
    )  # fmt: skip
    return LambdaLR(optimizer, factor)


def schedule_factor(
    *, schedule: str, lr: float, warmup_steps: int, d_model: int, noam_factor: float,
    cooldown_updates: int, last_update: int,
) -> Callable[[int], float]:  # fmt: skip
    """The factor of `lr` for `LambdaLR`'s step (0 for the first update)."""

    def lr_factor(step: int) -> float:
        rate = lr_at(
            step + 1,
            schedule=schedule,
            lr=lr,
            warmup_steps=warmup_steps,
            d_model=d_model,
            noam_factor=noam_factor,
        )
        return rate / lr * cooldown(step + 1, last_update, cooldown_updates)

    return lr_factor


def restore_schedule(scheduler: LambdaLR, state: dict) -> None:
    """Resume a saved schedule's position (its update count) under this run's own schedule.

    `load_state_dict` brings back the saved run's base rates (its `optim.lr`) along with the
    count: a run resumed with a new `optim.lr` would keep the old peak (and the noam schedule,
    which divides by `lr`, would be rescaled). The base rates the scheduler was built with are
    put back, then the rate of the next update set from them.
    """
    base_lrs = list(scheduler.base_lrs)  # this run's optim.lr, one per parameter group
    scheduler.load_state_dict(state)
    scheduler.base_lrs = base_lrs
    apply_schedule(scheduler)


def apply_schedule(scheduler: LambdaLR) -> None:
    """Set each parameter group's rate for the next update from the scheduler's own schedule.

    After `load_state_dict`, the optimizer still holds the rate the saved run's schedule gave;
    a run resumed with another schedule (e.g. a new `optim.cooldown_updates`) takes its own from
    the first update on. With the same schedule the rate is the same value.
    """
    rates = [
        base * factor(scheduler.last_epoch)
        for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)
    ]
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    scheduler._last_lr = rates  # what get_last_lr() reports
