"""Progress of a long decode: a bar on a terminal, a log line every few seconds elsewhere.

A log file or a pipe gets no bar redraws (each redraw would be a line of the file), only
`"<what>: <done>/<total> sentences (<pct>%), <rate> sentences/s"` every `every` seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

logger = logging.getLogger(__name__)


class DecodeProgress:
    """Count decoded sentences; call it with each batch's size (the Translator's `progress`).

    Args:
        total: sentences to decode.
        what: what is decoded, e.g. "test_2016_flickr".
        every: seconds between log lines when `stream` is not a terminal.
        stream: where the bar goes (default: standard error).
    """

    def __init__(
        self, total: int, what: str, *, every: float = 30.0, stream: TextIO | None = None
    ) -> None:
        self.total = total
        self.what = what
        self.every = every
        self.done = 0
        stream = sys.stderr if stream is None else stream
        self._bar = (
            tqdm(total=total, desc=what, unit="sent", file=stream, leave=False)
            if stream.isatty()
            else None
        )
        self._start = self._last = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every and self.done < self.total:
            self._last = now
            logger.info(
                "%s: %d/%d sentences (%.0f%%), %.1f sentences/s",
                self.what,
                self.done,
                self.total,
                100.0 * self.done / max(self.total, 1),
                self.done / max(now - self._start, 1e-9),
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> DecodeProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
