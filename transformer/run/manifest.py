"""The manifest of a run's checkpoints/ folder: its entries and its JSON form.

`transformer.run.checkpoint_dir` writes and reads it; what it means is described there.
A manifest is data, never a list of paths: every name in it is a bare file name of its own
folder, and one that is not (`../x`, `/x`, `a/b`) makes the whole manifest unreadable.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from dataclasses import dataclass, field

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One state file of the run and the update it holds."""

    file: str
    step: int


@dataclass
class Manifest:
    """What the folder holds for the run `run_id` (see the module docstring)."""

    run_id: str
    last: Entry | None = None
    best: Entry | None = None
    kept: list[Entry] = field(default_factory=list)
    final: Entry | None = None
    final_description: str | None = None
    # Files of this run no longer named above, deleted after the manifest is published (again at
    # the next start if a crash came first).
    unreferenced: list[str] = field(default_factory=list)

    def files(self) -> set[str]:
        """The names of every file the manifest refers to."""
        entries = [self.last, self.best, self.final, *self.kept]
        return {entry.file for entry in entries if entry is not None}

    def to_json(self) -> str:
        return json.dumps(
            {"format_version": MANIFEST_VERSION, **dataclasses.asdict(self)}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if raw.pop("format_version", None) != MANIFEST_VERSION:
            raise ValueError(f"not a manifest of format {MANIFEST_VERSION}")
        return cls(
            run_id=raw["run_id"],
            last=_entry(raw["last"]),
            best=_entry(raw["best"]),
            kept=[Entry(check_name(value["file"]), int(value["step"])) for value in raw["kept"]],
            final=_entry(raw["final"]),
            final_description=raw["final_description"],
            unreferenced=[check_name(name) for name in raw["unreferenced"]],
        )


def check_name(name: object) -> str:
    """`name` if it is a bare file name (no folder part, not "." or "..").

    Raises:
        ValueError: naming it.
    """
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(
            f"it names {name!r}, which is not a file of its own folder (a manifest names files "
            "of checkpoints/ only)"
        )
    return name


def _entry(value: dict | None) -> Entry | None:
    return None if value is None else Entry(check_name(value["file"]), int(value["step"]))


def new_run_id() -> str:
    """A run id: the start time and a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
