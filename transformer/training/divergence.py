"""The divergence guard: updates with a non-finite loss or gradient norm are skipped (by
`transformer.training.step`) and counted here; too many in a row stop the run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from transformer.errors import UserError
from transformer.training.distributed import max_over_ranks

if TYPE_CHECKING:
    from transformer.training.setup import Run

logger = logging.getLogger(__name__)


class DivergenceError(UserError, RuntimeError):
    """Too many updates in a row had a non-finite loss or gradient norm."""


class NonFiniteGuard:
    """Counts updates skipped for a non-finite loss or gradient norm, on the device.

    `add` keeps its counters on the device (no host sync per update); `check` reads them, where
    the loop syncs anyway (logging, validation), and stops the run after `limit` in a row.
    """

    def __init__(self, limit: int, device: torch.device) -> None:
        self.limit = limit
        self.streak = torch.zeros((), dtype=torch.int64, device=device)  # skipped in a row now
        self.longest = torch.zeros((), dtype=torch.int64, device=device)
        self.skipped = torch.zeros((), dtype=torch.int64, device=device)
        self._reported = 0

    def add(self, finite: torch.Tensor) -> None:
        bad = (~finite).long()
        self.streak = (self.streak + 1) * bad
        self.longest = torch.maximum(self.longest, self.streak)
        self.skipped += bad

    def check(self, run: Run) -> None:
        """Warn about newly skipped updates; stop after `limit` in a row.

        Raises:
            DivergenceError: naming the last good checkpoint and what to change.
        """
        skipped = int(self.skipped.item())
        # Every rank checks at the same update; under fp16 each counts its own loss, so the ranks
        # agree on the longest streak before one of them stops.
        longest = max_over_ranks(int(self.longest.item()))
        if skipped > self._reported:
            logger.warning(
                "%d update(s) skipped so far (non-finite loss or gradient norm), by update %d",
                skipped, run.progress.step,
            )  # fmt: skip
            self._reported = skipped
        if longest < self.limit:
            return
        last = run.checkpoints.last
        kept = (
            f"the last good checkpoint, {run.checkpoints.last_path} (update {last.step}), is kept"
            if last is not None
            else "no checkpoint had been saved"
        )
        raise DivergenceError(
            f"training diverged: {longest} updates in a row had a non-finite loss or gradient "
            f"norm (train.max_nonfinite_updates={self.limit}), by update {run.progress.step}; "
            f"{kept}. Lower optim.lr (now {run.cfg.optim.lr:g}) or set optim.clip_norm, then "
            "run again (it resumes from that checkpoint)."
        )
