"""Precision choice and RNG capture on CUDA, checked on the CPU with torch.cuda's calls faked."""

from __future__ import annotations

import pytest
import torch

from transformer import runtime


def test_auto_precision_ignores_emulated_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    # A V100 or T4: bf16 works only through emulation, slower than fp32.
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert runtime.resolve_precision("auto", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert runtime.resolve_precision("auto", torch.device("cuda")) == "bf16"


class FakeCuda:
    """The generator calls of torch.cuda on a machine with `n_gpus`, current device `current`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n_gpus: int, current: int) -> None:
        self.states = [torch.full((4,), i, dtype=torch.uint8) for i in range(n_gpus)]
        self.current = current
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self._get)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self._set)
        for name in ("get_rng_state_all", "set_rng_state_all"):
            monkeypatch.setattr(torch.cuda, name, self._refuse)

    def _get(self, device: str = "cuda") -> torch.Tensor:
        return self.states[self.current].clone()

    def _set(self, state: torch.Tensor, device: str = "cuda") -> None:
        self.states[self.current] = state.clone()

    def _refuse(self, *args: object) -> None:
        raise AssertionError("only the current device's generator may be read or set")


def test_rng_state_keeps_only_this_ranks_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(monkeypatch, n_gpus=4, current=2)
    state = runtime.rng_state()
    assert torch.equal(state["cuda"], torch.full((4,), 2, dtype=torch.uint8))
    # Resumed as rank 0 of a one-GPU machine: that GPU gets the saved generator.
    fake = FakeCuda(monkeypatch, n_gpus=1, current=0)
    runtime.set_rng_state(state)
    assert torch.equal(fake.states[0], state["cuda"])


def test_old_checkpoints_with_every_gpus_state_restore_on_fewer_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Saved on 4 GPUs by get_rng_state_all(); set_rng_state_all raised IndexError on fewer.
    saved = runtime.rng_state() | {"cuda": [torch.full((4,), 10 + i) for i in range(4)]}
    fake = FakeCuda(monkeypatch, n_gpus=2, current=1)
    runtime.set_rng_state(saved)
    assert torch.equal(fake.states[1], saved["cuda"][1])
    assert torch.equal(fake.states[0], torch.zeros(4, dtype=torch.uint8))
