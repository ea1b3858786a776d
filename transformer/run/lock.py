"""One writer per run folder: `tmt-train`, `tmt-prepare` and `tmt-fork` hold an advisory lock
(`fcntl.flock` on the folder's `.lock`) for their whole session; under torchrun rank 0 holds it
for every rank. Readers (evaluate, translate, export) take none. The kernel drops the lock when
its process ends, kill -9 included, so it never goes stale; the file keeps the holder's pid for
the message a second writer gets.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from transformer.errors import UserError
from transformer.run.layout import LOCK

# Held locks of this process by folder: the lock lives as long as the process (or `release`).
_held: dict[Path, int] = {}


class RunFolderBusy(UserError):
    """Another process is writing the run folder."""


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    pid = os.read(fd, 32).decode("ascii", "replace").strip()
    return f"process {pid}" if pid.isdigit() else "another process"


def hold_run_folder(run_dir: str | Path, command: str) -> None:
    """Take the run folder's lock for this process (again: nothing to do), creating the folder.

    Args:
        run_dir: the run folder.
        command: the command taking it, for the message (e.g. "tmt-train").

    Raises:
        RunFolderBusy: another process holds it; the message names its pid.
    """
    folder = Path(run_dir).resolve()
    if folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunFolderBusy(
            f"{folder} is in use by {holder} (a tmt-train, tmt-prepare or tmt-fork); {command} "
            "writes a run folder only when nothing else does: wait for it to end, or use "
            "another run folder (name=... or hydra.run.dir=...)."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    _held[folder] = fd


def hold_as_rank_0(run_dir: str | Path, command: str) -> None:
    """`hold_run_folder` in a single process or torchrun's rank 0, which holds it for all ranks
    (the others start after it and would find it held)."""
    if int(os.environ.get("RANK", "0")) == 0:
        hold_run_folder(run_dir, command)


def release(run_dir: str | Path) -> None:
    """Let go of the run folder's lock (a process ending does the same)."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def release_all() -> None:
    """Let go of every run folder this process holds (a command called in-process has ended)."""
    for folder in list(_held):
        release(folder)
