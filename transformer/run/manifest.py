"""The manifest of a run's checkpoints/ folder: its entries and its JSON form.

`transformer.run.checkpoint_dir` writes and reads it; what it means is described there.
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
        entry = lambda value: None if value is None else Entry(**value)  # noqa: E731
        return cls(
            run_id=raw["run_id"],
            last=entry(raw["last"]),
            best=entry(raw["best"]),
            kept=[Entry(**value) for value in raw["kept"]],
            final=entry(raw["final"]),
            final_description=raw["final_description"],
            unreferenced=list(raw["unreferenced"]),
        )


def new_run_id() -> str:
    """A run id: the start time and a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
