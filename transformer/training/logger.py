"""TensorBoard and console output of the training loop, on rank 0 only.

The only module that imports TensorBoard. Other ranks get a `TrainLogger` that does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from types import TracebackType

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from transformer.training.distributed import all_reduce_sum

logger = logging.getLogger(__name__)

HParamValue = int | float | str | bool


class TrainLogger:
    """Scalars, text and hyperparameters to TensorBoard; a progress bar on the console.

    Use as a context manager: while open, console log lines are written through tqdm so they do
    not break the progress bar; closing flushes the event file.

    Args:
        log_dir: folder of the TensorBoard event files (created when enabled).
        enabled: False on ranks other than 0: every method is then a no-op.
        total_updates: length of the progress bar (None when the run stops on epochs or time).
        initial_update: where a resumed run starts the bar.
    """

    def __init__(
        self, log_dir: Path, *, enabled: bool, total_updates: int | None, initial_update: int
    ) -> None:
        self.enabled = enabled
        # A resumed run hides what an earlier session logged after its last checkpoint.
        purge_step = initial_update + 1 if initial_update > 0 else None
        self._writer = SummaryWriter(str(log_dir), purge_step=purge_step) if enabled else None
        self._bar = tqdm(
            total=total_updates,
            initial=initial_update,
            disable=not enabled,
            unit="upd",
            dynamic_ncols=True,
            mininterval=1.0,
        )
        self._redirect = contextlib.ExitStack()

    def __enter__(self) -> TrainLogger:
        if self.enabled:
            self._redirect.enter_context(logging_redirect_tqdm())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the progress bar and flush and close the event file."""
        self._bar.close()
        self._redirect.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Write each `tag: value` (tags such as "train/loss") at update `step`."""
        if self._writer is None:
            return
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        """Write a Markdown text entry (sample translations, the config)."""
        if self._writer is not None:
            self._writer.add_text(tag, text, step)

    def hparams(self, values: dict[str, HParamValue], metric_tags: list[str]) -> None:
        """Record hyperparameters in the same event file as the scalars named in `metric_tags`.

        `SummaryWriter.add_hparams` would open a second run folder; writing the three summaries
        directly keeps the HPARAMS tab linked to the training curves of this run.
        """
        if self._writer is None:
            return
        experiment, start, end = hparams_summary(values, dict.fromkeys(metric_tags, 0.0))
        file_writer = self._writer.file_writer
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)

    def progress(self, updates: int, postfix: dict[str, str] | None = None) -> None:
        """Advance the bar by `updates`; `postfix` replaces the figures shown after it."""
        if postfix is not None:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(updates)


class Meter:
    """Training sums since the last report, kept on the device so updates never wait on it.

    `summary` reads them once (one device sync and, under DDP, one all-reduce) per report.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self._sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, nll, tokens
        self._tokens = 0
        self._start = time.perf_counter()

    def add(self, loss: torch.Tensor, nll: torch.Tensor, n_tokens: int) -> None:
        """Add one update's summed losses (device scalars) and its target-token count."""
        self._sums[0] += loss
        self._sums[1] += nll
        self._tokens += n_tokens

    def summary(self) -> dict[str, float]:
        """Per-token loss and perplexity, and target tokens per second, over all ranks."""
        self._sums[2] = self._tokens
        loss, nll, tokens = all_reduce_sum(self._sums).tolist()
        elapsed = time.perf_counter() - self._start
        self._reset()
        tokens = max(tokens, 1.0)
        return {
            "loss": loss / tokens,
            "ppl": math.exp(min(nll / tokens, 50.0)),
            "tokens_per_s": tokens / max(elapsed, 1e-9),
        }


def flat_hparams(config: dict, prefix: str = "") -> dict[str, HParamValue]:
    """Flatten a nested config dict into "section.key" -> value (None becomes "None")."""
    flat: dict[str, HParamValue] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, prefix=f"{name}."))
        else:
            flat[name] = value if isinstance(value, int | float | str | bool) else str(value)
    return flat


def read_scalars(folder: Path, tag: str) -> list[tuple[float, int, float]]:
    """(wall time, update, value) of every `tag` scalar in a run's TensorBoard folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(event.wall_time, event.step, event.value) for event in events.Scalars(tag)]
