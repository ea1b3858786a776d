"""Progress of long work, one convention: a bar on a terminal, a log line every N seconds
elsewhere (a log file or a pipe gets no bar redraws: each redraw would be a line of the file).

Decoding reports `"<what>: <done>/<total> sentences (<pct>%), <rate> sentences/s"`; training
gives its own line (updates, time per update, time left).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

logger = logging.getLogger(__name__)


class ProgressDisplay:
    """Count units of work; a tqdm bar on a terminal, else a log line at most every `every` s.

    Args:
        total: units to do (None when unknown).
        line: the log line for (done, total, seconds per unit since the start), or None to
            write none.
        initial: units done before (a resumed run).
        every: the least time between two log lines.
        unit: the bar's unit ("sent", "upd").
        desc: the bar's label.
        leave: keep the bar on the screen once closed.
        terminal: whether `stream` is a terminal; None asks it.
        stream: where the bar goes (default: standard error).
        log: the logger that writes the lines (the caller's).
        enabled: False shows nothing (ranks other than 0).
    """

    def __init__(
        self,
        total: int | None,
        line: Callable[[int, int | None, float], str | None],
        *,
        initial: int = 0,
        every: float = 30.0,
        unit: str = "it",
        desc: str | None = None,
        leave: bool = True,
        terminal: bool | None = None,
        stream: TextIO | None = None,
        log: logging.Logger = logger,
        enabled: bool = True,
    ) -> None:
        self.total, self.done, self.every = total, initial, every
        self._line, self._log, self._initial = line, log, initial
        stream = sys.stderr if stream is None else stream
        terminal = stream.isatty() if terminal is None else terminal
        self.bar = tqdm(
            total=total, initial=initial, desc=desc, unit=unit, file=stream, leave=leave,
            disable=not (enabled and terminal), dynamic_ncols=True, mininterval=0.5,
        )  # fmt: skip
        self._lines = enabled and not terminal
        self._start = self._last = time.monotonic()

    def advance(self, n: int, postfix: dict[str, str] | None = None) -> None:
        """Count `n` more units; `postfix` is shown beside the bar."""
        self.done += n
        if not self._lines:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        per_unit = (now - self._start) / max(self.done - self._initial, 1)
        text = self._line(self.done, self.total, per_unit)
        if text is not None:
            self._log.info("%s", text)

    __call__ = advance  # the Translator's `progress` callback

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decode_progress(
    total: int, what: str, *, every: float = 30.0, stream: TextIO | None = None
) -> ProgressDisplay:
    """Progress of decoding `total` sentences of `what` (e.g. "test_2016_flickr"); call it with
    each batch's size. The end is not logged: the caller reports it."""

    def line(done: int, total: int | None, per_sentence: float) -> str | None:
        assert total is not None
        if done >= total:
            return None
        share = 100.0 * done / max(total, 1)
        rate = 1.0 / max(per_sentence, 1e-9)
        return f"{what}: {done}/{total} sentences ({share:.0f}%), {rate:.1f} sentences/s"

    return ProgressDisplay(
        total, line, every=every, unit="sent", desc=what, leave=False, stream=stream, log=logger
    )
