"""Replacing a folder so that a kill at any moment leaves the old or the new one in place.

The new folder is written beside the target as `.NAME.tmt-export-PID-TOKEN.new`. The swap then
renames the old folder aside (`….old`, same PID and TOKEN), renames the new one in, and removes
the old one. A kill between the two renames leaves no folder at NAME, but both halves beside
it: `recover` (run by the next export, and before a load) finishes the swap with the complete new
folder (or puts the old one back) and removes what a dead process left. Folders of a process
that is still running are never touched.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

_MARK = ".tmt-export-"


def new_folder(target: Path) -> Path:
    """Create an empty folder beside `target` (readable like any new folder: umask applies)."""
    path = target.parent / f".{target.name}{_MARK}{os.getpid()}-{secrets.token_hex(4)}.new"
    path.mkdir()
    return path


def swap_in(new: Path, target: Path) -> None:
    """Put `new` (from `new_folder`) at `target`, replacing the folder there, if any."""
    old = new.with_suffix(".old")
    had_old = target.exists()
    if had_old:
        target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if had_old:
            old.rename(target)
        raise
    if had_old:
        shutil.rmtree(old)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _leftovers(target: Path) -> dict[str, dict[str, Path]]:
    """Halves left beside `target` by dead processes: {token: {"new"/"old": path}}."""
    pattern = re.compile(rf"\.{re.escape(target.name)}{re.escape(_MARK)}(\d+)-(\w+)\.(new|old)")
    found: dict[str, dict[str, Path]] = {}
    if not target.parent.is_dir():
        return found
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not _alive(int(match[1])):
            found.setdefault(f"{match[1]}-{match[2]}", {})[match[3]] = path
    return found


def recover(target: Path, complete: Callable[[Path], bool]) -> None:
    """Finish or undo swaps into `target` that a killed process left, and remove their halves.

    Args:
        target: the folder the swaps were replacing.
        complete: whether a new folder was completely written (it is put in place only then).
    """
    for halves in _leftovers(target).values():
        if not target.exists():
            new, old = halves.get("new"), halves.get("old")
            if new is not None and complete(new):
                new.rename(target)
                logger.warning("%s: completed an export that was interrupted", target)
            elif old is not None:
                old.rename(target)
                logger.warning("%s: put back the export an interrupted one replaced", target)
        for path in halves.values():
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
