"""A cache folder (`data.cache_dir`) shared by several processes: each holds a shared lock on its
`.lock` file while it prepares data, and one that finds no other holder first removes the
temporary files a killed process left behind (an interrupted `datasets.map` leaves `tmp*`)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
SWEPT = ("pairs", "encoded")  # our subfolders; the hub's own cache (hf/) is left to `datasets`
TEMP_PATTERNS = ("tmp*", ".*.tmp")  # datasets' NamedTemporaryFile names, and ours


def _remove_leftovers(folder: Path) -> None:
    leftovers = [
        path
        for name in SWEPT
        for pattern in TEMP_PATTERNS
        for path in (folder / name).glob(pattern)
        if path.is_file()
    ]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        logger.info("removed %d temporary files left in %s by a stopped run", len(leftovers), folder)


@contextlib.contextmanager
def cache_in_use(cache_dir: str | Path) -> Iterator[Path]:
    """Hold the cache folder (shared with other processes) for the duration of the block.

    The kernel drops the lock when the process ends, kill -9 included, so nothing goes stale.
    """
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process is preparing: its temporary files are live
            pass
        else:
            _remove_leftovers(folder)
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield folder
