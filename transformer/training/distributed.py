"""torchrun environment, process-group setup and teardown, rank-0 checks, metric all-reduce.

`torchrun` sets RANK, LOCAL_RANK and WORLD_SIZE (and the rendezvous address) for every process;
a plain `python` run has none of them and is a world of one, with no process group at all.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# The gloo group beside an NCCL default group, filled by init_distributed (empty at import).
_CPU_GROUP: dict[str, dist.ProcessGroup] = {}


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (a world of one without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes checkpoints and TensorBoard files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_from_torchrun() -> DistEnv:
    """Read the variables torchrun sets; without them this is a single process."""
    return DistEnv(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
    )


def init_distributed(env: DistEnv, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU) and return this rank's device.

    On CUDA each process drives the GPU numbered by its LOCAL_RANK. A no-op for a world of one.
    """
    if device.type == "cuda" and env.enabled:
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if env.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        logger.info("rank %d/%d joined the %s group", env.rank, env.world_size, backend)
        if backend != "gloo":
            # Control messages (stop flags, RNG states) travel over the CPU and never wait on
            # the GPU stream; new_group is collective, so every rank creates it here.
            _CPU_GROUP["group"] = dist.new_group(backend="gloo")
    return device


def destroy_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
    _CPU_GROUP.clear()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place and return it (unchanged in a world of one)."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def max_over_ranks(value: int) -> int:
    """The largest `value` of all ranks, on every rank (stop requests, time limits).

    Runs over the CPU with gloo when the main group is NCCL, so it never waits on the GPU.
    """
    if not _active():
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_cpu_group())
    return int(tensor.item())


def broadcast_float(value: float) -> float:
    """Rank 0's `value` on every rank (keeps decisions such as early stopping identical)."""
    if not _active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(tensor, src=0, group=_cpu_group())
    return float(tensor.item())


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (small picklable values such as RNG states)."""
    if not _active():
        return [obj]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj, group=_cpu_group())
    return gathered


def barrier() -> None:
    """Wait for every rank (a no-op in a world of one)."""
    if _active():
        dist.barrier(group=_cpu_group())


def _cpu_group() -> dist.ProcessGroup | None:
    # None is the default group, which is already gloo on CPU.
    return _CPU_GROUP.get("group")
