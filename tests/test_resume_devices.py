"""Optimizer state saved by one kind of Adam (plain, on the CPU) restored into another (fused)."""

from __future__ import annotations

import copy

import torch

from transformer.training.loop_state import _load_optimizer_state


def _trained_adam(fused: bool | None) -> tuple[torch.nn.Linear, torch.optim.Adam]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2, fused=fused)
    for _ in range(3):
        layer(torch.randn(5, 4)).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    return layer, optimizer


def test_fused_adam_gets_float32_steps_on_the_parameters_device() -> None:
    _, plain = _trained_adam(fused=None)
    saved = plain.state_dict()
    for state in saved["state"].values():  # not where a fused kernel wants it
        state["step"] = state["step"].to(torch.float64)
    layer, fused = _trained_adam(fused=True)
    _load_optimizer_state(fused, saved)
    assert fused.param_groups[0]["fused"] is True
    for param in layer.parameters():
        step = fused.state[param]["step"]
        assert (step.device, step.dtype, step.item()) == (param.device, torch.float32, 3.0)


def test_plain_adam_resumed_as_fused_takes_the_same_step() -> None:
    layer, plain = _trained_adam(fused=None)
    saved = copy.deepcopy(plain.state_dict())  # a checkpoint's copy, not plain's own tensors
    twin, fused = _trained_adam(fused=True)
    twin.load_state_dict(layer.state_dict())
    _load_optimizer_state(fused, saved)
    x = torch.randn(5, 4)
    for model, optimizer in ((layer, plain), (twin, fused)):
        model(x).square().sum().backward()
        optimizer.step()
    torch.testing.assert_close(twin.weight, layer.weight)
