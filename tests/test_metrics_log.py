"""metrics_log: events appended as JSON lines and read back as the run's current history
(started over, forked, killed after its last checkpoint, torn last line)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from transformer.config import TrainConfig, TrainRunConfig
from transformer.run.metrics_log import (
    MetricsLog,
    config_hash,
    read_events,
    sessions,
    summarize,
    validation_curve,
)


def _write(log: MetricsLog, *events: tuple[str, int, dict]) -> None:
    for event, update, fields in events:
        log.write(event, update, fields)


def test_events_are_json_lines_with_time_and_update_and_nan_as_null(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    _write(log, ("start", 0, {"hardware": "cpu"}), ("train", 10, {"loss": 3.5, "gnorm": 1e400}))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(e["event"], e["update"]) for e in lines] == [("start", 0), ("train", 10)]
    assert lines[1]["loss"] == 3.5 and lines[1]["gnorm"] is None  # infinity is not JSON
    assert lines[0]["time"] <= lines[1]["time"]
    MetricsLog(None).write("train", 1, {})  # ranks above 0: nothing, and no error


def test_a_restart_from_zero_drops_the_old_run_and_a_resume_drops_later_updates(
    tmp_path: Path,
) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    _write(
        log,
        ("start", 0, {"hardware": "old"}), ("validation", 4, {"valid_bleu": 1.0}),
        ("start", 0, {"hardware": "a"}), ("validation", 4, {"valid_bleu": 2.0}),
        ("validation", 8, {"valid_bleu": 3.0}), ("train", 9, {}),  # killed after update 9
        ("start", 4, {"hardware": "b"}),  # forked (or resumed) from update 4's checkpoint
        ("validation", 8, {"valid_bleu": 5.0}), ("stop", 8, {"reason": "max_updates"}),
    )  # fmt: skip
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"event": "train", "upd')  # a crash while writing
    events = read_events(tmp_path)
    assert [session.start["hardware"] for session in sessions(events)] == ["a", "b"]
    assert validation_curve(events, "bleu") == {4: 2.0, 8: 5.0}
    summary = summarize(events)
    assert summary.update == 8 and summary.reason == "max_updates"
    assert summary.hardware == ["a", "b"]


def test_config_hash_ignores_the_run_folder_and_sees_any_other_key() -> None:
    cfg = TrainRunConfig(run_dir="runs/a")
    assert config_hash(cfg) == config_hash(dataclasses.replace(cfg, run_dir="runs/copy"))
    other = dataclasses.replace(cfg, train=TrainConfig(seed=2))
    assert config_hash(other) != config_hash(cfg)
    assert len(config_hash(cfg)) == 16


def test_a_torn_line_before_the_last_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"event": "st\n{"event": "stop"}\n')
    with pytest.raises(json.JSONDecodeError):
        read_events(tmp_path)
