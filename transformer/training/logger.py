"""TensorBoard, metrics.jsonl and console output of the training loop, on rank 0 only.

The only module that imports TensorBoard. Other ranks get a `TrainLogger` that does nothing.
Progress is a bar on a terminal, and a log line every so often when the output goes to a file.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import time
from pathlib import Path
from types import TracebackType

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary
from tqdm.contrib.logging import logging_redirect_tqdm

from transformer.progress import ProgressDisplay
from transformer.run.metrics_log import MetricsLog
from transformer.training.distributed import all_reduce_sum

logger = logging.getLogger(__name__)

HParamValue = int | float | str | bool
PROGRESS_SECONDS = 60.0  # between progress lines when the output is not a terminal


def _progress_line(update: int, total: int | None, per_update: float) -> str:
    if total is None:
        return f"progress: update {update}, {per_update:.2f} s/update"
    left = datetime.timedelta(seconds=round(per_update * max(total - update, 0)))
    return (
        f"progress: update {update}/{total} ({100 * update / total:.0f}%), "
        f"{per_update:.2f} s/update, {left} left"
    )


class TrainLogger:
    """Scalars, text and hyperparameters to TensorBoard; events to metrics.jsonl; progress on
    the console: a bar on a terminal, else a log line every `progress_seconds`.

    Use as a context manager: while open, console log lines are written through tqdm so they do
    not break the progress bar; closing flushes the event file.

    Args:
        log_dir: folder of the TensorBoard event files (created when enabled).
        enabled: False on ranks other than 0: every method is then a no-op.
        total_updates: length of the progress bar (None when the run stops on epochs or time).
        initial_update: where a resumed run starts the bar.
        metrics_path: the run's metrics.jsonl (None writes none).
        terminal: whether progress goes to a terminal; None asks standard error.
        progress_seconds: the least time between progress lines when it does not.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        enabled: bool,
        total_updates: int | None,
        initial_update: int,
        metrics_path: Path | None = None,
        terminal: bool | None = None,
        progress_seconds: float = PROGRESS_SECONDS,
    ) -> None:
        self.enabled = enabled
        # A resumed run hides what an earlier session logged after its last checkpoint.
        purge_step = initial_update + 1 if initial_update > 0 else None
        self._writer = SummaryWriter(str(log_dir), purge_step=purge_step) if enabled else None
        self._metrics = MetricsLog(metrics_path if enabled else None)
        self._progress = ProgressDisplay(
            total_updates, _progress_line, initial=initial_update, every=progress_seconds,
            unit="upd", terminal=terminal, log=logger, enabled=enabled,
        )  # fmt: skip
        self._redirect = contextlib.ExitStack()

    def __enter__(self) -> TrainLogger:
        if not self._progress.bar.disable:
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
        self._progress.close()
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

    def event(self, name: str, update: int, fields: dict[str, object]) -> None:
        """Append an event to metrics.jsonl (`transformer.run.metrics_log` lists them)."""
        self._metrics.write(name, update, fields)

    def set_total(self, total_updates: int) -> None:
        """The update the run stops at, once known (a time budget's plan)."""
        self._progress.total = total_updates
        self._progress.bar.total = total_updates

    def progress(self, updates: int, postfix: dict[str, str] | None = None) -> None:
        """Advance the bar by `updates`; `postfix` replaces the figures shown after it."""
        self._progress.advance(updates, postfix)


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
