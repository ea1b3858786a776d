"""Device choice and description, autocast precision, seeding and RNG state capture, and
telling a full disk from other write errors."""

from __future__ import annotations

import contextlib
import errno
import platform
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from transformer.errors import UserError

# How a full disk reads when it is not an OSError with its errno: torch.save's zip writer raises
# RuntimeError ("file write failed", or "unexpected pos N vs M" when a write came up short), and
# pyarrow's OSError may carry the text only.
_DISK_FULL_WORDING = ("write failed", "unexpected pos", "no space left on device")


class DiskFullError(UserError):
    """No space left where a command writes; the message names the folder."""


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` is a write that failed for lack of space (or quota)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    message = str(error).lower()
    return isinstance(error, OSError | RuntimeError) and any(
        words in message for words in _DISK_FULL_WORDING
    )


@contextlib.contextmanager
def disk_full_is_one_line(folder: str | Path, what_to_do: str) -> Iterator[None]:
    """Turn a write that fails for lack of space inside the block into a `DiskFullError` naming
    `folder` and `what_to_do`; other errors pass unchanged."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        if not is_disk_full(error):
            raise
        raise DiskFullError(
            f"no space left on the device of {folder} ({error}); {what_to_do}"
        ) from error


def pick_device(name: str) -> torch.device:
    """Return the device named by `train.device`: "auto" takes CUDA when present.

    Raises:
        ValueError: "cuda" was asked for on a machine without a CUDA device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device=cuda was requested but no CUDA device is available; use device=cpu."
        )
    return torch.device(name)


def describe_hardware(device: torch.device, world_size: int = 1) -> str:
    """What a run trains on, for its log: the GPU's name, or the CPU's and its thread count."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return name if world_size == 1 else f"{world_size} × {name}"
    threads = torch.get_num_threads()
    return f"{cpu_name()}, {threads} thread{'' if threads == 1 else 's'}"


def cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo, or what `platform` knows elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn "auto" into a concrete precision: bf16 on a CUDA device that supports it, else fp32.

    On CPU, bf16 autocast is available but only helps on processors with native bf16 matrix
    instructions, so it is opt-in there (`train.precision=bf16`).
    """
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU.")
        return precision
    # Emulated bf16 (V100, T4) is slower than fp32: count only native support.
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast context for a resolved precision ("fp32" runs without autocast)."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _numpy_state_to_plain(state: tuple) -> list:
    kind, keys, pos, has_gauss, cached = state
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def rng_state() -> dict:
    """Capture every random generator the training loop draws from, for exact resume.

    On CUDA only the current device's generator: the one this rank draws from (DDP sets it).
    Every visible GPU's states would not restore on a machine with fewer GPUs.
    """
    state = {
        "python": random.getstate(),
        # As plain lists so checkpoints load with torch.load(weights_only=True).
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore generators captured by `rng_state`."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):  # older checkpoints: one state per visible GPU
            index = torch.cuda.current_device()
            cuda = cuda[index] if index < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)
