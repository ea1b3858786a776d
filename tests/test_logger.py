"""TrainLogger's progress: a bar on a terminal; on a file, log lines instead of bar redraws."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from transformer.training.logger import TrainLogger


def _advance(tmp_path: Path, *, terminal: bool, total: int | None) -> None:
    log = TrainLogger(
        tmp_path / "tensorboard", enabled=True, total_updates=total, initial_update=10,
        terminal=terminal, progress_seconds=0.0,
    )  # fmt: skip
    with log:
        for _ in range(3):
            log.progress(1, {"loss": "2.000"})


def test_on_a_file_progress_is_a_log_line_not_a_bar(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="transformer.training.logger"):
        _advance(tmp_path, terminal=False, total=20)
    assert capsys.readouterr().err == ""  # no bar written
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert len(lines) == 3 and lines[-1].startswith("progress: update 13/20 (65%), ")
    assert lines[-1].endswith(" left")


def test_without_a_last_update_progress_lines_give_no_share(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="transformer.training.logger"):
        _advance(tmp_path, terminal=False, total=None)
    assert caplog.records[-1].getMessage().startswith("progress: update 13, ")


def test_on_a_terminal_progress_is_the_bar_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="transformer.training.logger"):
        _advance(tmp_path, terminal=True, total=20)
    assert "13/20" in capsys.readouterr().err
    assert not [r for r in caplog.records if r.getMessage().startswith("progress")]
