"""torch.compile for training: dynamic shapes, a check for what the compiler needs, clear errors.

Token-budget batches change (B, S, T) at almost every update. Compiled with `dynamic=True`, the
first graph already has symbolic sizes, so new shapes reuse it; a static first graph would be
compiled again at the second batch. A graph compiled on a batch with S == T assumes S == T (size
symbols of equal values are shared), so the first batch with S != T compiles one more. Changing
the dropout rate (`train.late_dropout`) compiles one more too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from transformer.errors import UserError

logger = logging.getLogger(__name__)

_FIX = "install it, or train without compiling: train.compile=false"


class CompileError(UserError, RuntimeError):
    """torch.compile cannot work on this machine; the message names what is missing."""


def missing_for_compile(device: torch.device) -> list[str]:
    """What Inductor lacks here to compile for `device` (empty when nothing is missing).

    Inductor builds C++ (CPU) or Triton kernels (CUDA); Triton builds its launcher with a C
    compiler and the Python headers, so both devices need those.
    """
    missing = []
    compilers = [os.environ.get("CC"), os.environ.get("CXX"), "cc", "gcc", "c++", "clang"]
    if not any(name and shutil.which(name) for name in compilers):
        missing.append("a C/C++ compiler (cc, gcc or clang on the PATH)")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        missing.append(f"the Python headers (Python.h in {sysconfig.get_paths()['include']})")
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            missing.append("Triton (the triton package, for CUDA kernels)")
    return missing


def uses_compile(compile_setting: bool | None, device: torch.device) -> bool:
    """Whether training compiles: `train.compile`, or by default where a CUDA device is."""
    return compile_setting if compile_setting is not None else device.type == "cuda"


def check_compiler(device: torch.device) -> None:
    """Check that Inductor can compile for `device` here (before anything is written).

    Raises:
        CompileError: a compiler, the Python headers or Triton is missing (named).
    """
    if missing := missing_for_compile(device):
        raise CompileError(
            f"train.compile: torch.compile needs {', and '.join(missing)} on this machine; {_FIX}."
        )


def compile_for_training(
    module: nn.Module, device: torch.device, *, backend: str = "inductor"
) -> nn.Module:
    """`torch.compile(module, dynamic=True)`, after checking that the compiler can work here.

    Args:
        module: the model, possibly wrapped in DDP.
        device: where it trains.
        backend: torch.compile's backend; tests use "aot_eager", which traces and guards the
            same graphs as Inductor (same recompilations) without generating code.

    Raises:
        CompileError: Inductor lacks a compiler, the Python headers or Triton.
    """
    if backend == "inductor":
        check_compiler(device)
    logger.info("torch.compile (dynamic shapes): the first update compiles the model")
    return torch.compile(module, dynamic=True, backend=backend)


@contextlib.contextmanager
def compile_errors() -> Iterator[None]:
    """Turn a compiler failure inside a compiled model's call into a `CompileError`."""
    try:
        yield
    except torch._dynamo.exc.BackendCompilerFailed as error:
        cause = str(error.inner_exception).strip().splitlines() or [type(error).__name__]
        raise CompileError(
            f"train.compile: torch.compile failed ({type(error.inner_exception).__name__}: "
            f"{cause[0]}); fix the compiler setup, or train without compiling: "
            "train.compile=false."
        ) from error


def graphs_compiled() -> int:
    """Graphs TorchDynamo has compiled in this process (a first compile plus recompilations)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]
