"""metrics.jsonl: a run's events as data, one JSON object a line, and reading them back.

The trainer (rank 0) appends an event at each start of a session (a run may stop and resume
many times), each training log line, each validation and each stop. Every event has "event",
"time" (Unix seconds) and "update"; besides:
- "start": "hardware", "world_size", "precision", "config_hash" (equal configs, equal hashes;
  the run folder aside), "setup_seconds" (data and model set-up before the event);
- "train": "epoch", "loss", "ppl", "lr", "grad_norm" (when measured), "tokens_per_s";
- "validation": "valid_loss", "valid_ppl", "valid_bleu" (when decoded), "best";
- "stop": "reason" (max_updates, max_epochs, max_time_minutes, budget_minutes, early stopping,
  signal, diverged) and "wall_seconds" (the session's, set-up included);
- "budget_plan": a budgeted run's plan (`transformer.training.budget`), as in budget_plan.json;
- "test": the final model's test scores: "split", "checkpoint" (which model: final.pt's
  description), "bleu", "bleu_lowercase", "chrf" and each one's "..._signature".
A figure that is not finite is written as null (JSON has no NaN). The log file is for people and
may change its wording; scripts read this file.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from transformer.config import TrainRunConfig
from transformer.run.layout import METRICS_FILE

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends events to a run's metrics.jsonl; with `path` None (ranks above 0), does nothing.

    Each event is written and closed at once, so a crash loses at most the line being written;
    the next event starts on a new line all the same (never glued to a torn one).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, event: str, update: int, fields: dict[str, object]) -> None:
        """Append one event at update `update` with `fields` (plain values: numbers, strings)."""
        if self.path is None:
            return
        record = {"event": event, "time": round(time.time(), 3), "update": update}
        for key, value in fields.items():
            finite = not isinstance(value, float) or math.isfinite(value)
            record[key] = value if finite else None
        line = (json.dumps(record) + "\n").encode("utf-8")
        with self.path.open("a+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size and handle.seek(size - 1) >= 0 and handle.read(1) != b"\n":
                line = b"\n" + line  # a kill tore the last line: start a new one
            handle.write(line)


def config_hash(cfg: TrainRunConfig) -> str:
    """16 hex digits of the SHA-256 of the config without its run folder (a copied run keeps it)."""
    values = dataclasses.asdict(cfg)
    values.pop("run_dir")
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_events(run_dir: Path) -> list[dict]:
    """The events of the run in `run_dir` that led to its current state, oldest first.

    A session that starts from update 0 begins the run anew (`train.resume=false`, or no
    checkpoint yet), so it drops every earlier event. One that resumes from update N drops the
    earlier events of updates after N: a fork from an earlier checkpoint, or updates a killed
    session made after its last checkpoint. A torn line (a crash while writing) is skipped with
    a warning; an event that an older version glued onto it is still read.

    Raises:
        FileNotFoundError: `run_dir` has no metrics.jsonl.
    """
    kept: list[dict] = []
    path = run_dir / METRICS_FILE
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        event = _parse(line)
        if event is None and line.strip():
            logger.warning(
                "%s, line %d: not a complete event (a torn write): skipped", path, number
            )
        if event is None:
            continue
        if event["event"] == "start":
            resumed_from = event["update"]
            kept = [old for old in kept if resumed_from and old["update"] <= resumed_from]
        kept.append(event)
    return kept


def _parse(line: str) -> dict | None:
    """The event on `line`, else the one glued after a torn event, else None."""
    for start in (0, line.rfind('{"event"')):
        try:
            event = json.loads(line[max(start, 0) :])
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and {"event", "update", "time"} <= event.keys():
            return event
    return None


@dataclass
class Session:
    """One start of training and the events after it, up to the next start."""

    start: dict
    events: list[dict]

    @property
    def wall_seconds(self) -> float:
        """From the session's start (set-up included) to its last event: its stop, or the last
        line a killed session wrote."""
        end = self.events[-1]["time"] if self.events else self.start["time"]
        return end - self.start["time"] + self.start.get("setup_seconds", 0.0)

    @property
    def stop(self) -> dict | None:
        return next((e for e in reversed(self.events) if e["event"] == "stop"), None)


def sessions(events: list[dict]) -> list[Session]:
    """Group `read_events` output by session (events before the first start are ignored)."""
    grouped: list[Session] = []
    for event in events:
        if event["event"] == "start":
            grouped.append(Session(event, []))
        elif grouped:
            grouped[-1].events.append(event)
    return grouped


@dataclass
class TrainingSummary:
    """What a results table says about a run's training."""

    wall: datetime.timedelta  # the sessions' wall time, summed
    update: int  # the last update
    reason: str  # why it stopped: the last session that trained decides ("not stopped")
    hardware: list[str]  # what the sessions trained on, each kind once, in order


def summarize(events: list[dict]) -> TrainingSummary:
    """Sum a run's sessions: wall time, last update, stop reason and hardware.

    A session that made no update (one that only wrote final.pt) adds its time but keeps the
    earlier stop reason.
    """
    seconds, reason, reason_known, hardware = 0.0, "not stopped", False, []
    for session in sessions(events):
        seconds += session.wall_seconds
        if session.start["hardware"] not in hardware:
            hardware.append(session.start["hardware"])
        stop = session.stop
        if stop is not None and (stop["update"] > session.start["update"] or not reason_known):
            reason, reason_known = stop["reason"], True
    update = events[-1]["update"] if events else 0
    return TrainingSummary(datetime.timedelta(seconds=round(seconds)), update, reason, hardware)


def validation_curve(events: list[dict], metric: str) -> dict[int, float]:
    """Update -> `valid_<metric>` (loss, ppl, bleu) of each validation; the latest one wins."""
    return {
        event["update"]: event[f"valid_{metric}"]
        for event in events
        if event["event"] == "validation" and event.get(f"valid_{metric}") is not None
    }
