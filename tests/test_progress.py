"""Decode progress: a bar on a terminal; elsewhere (a log file, a pipe) a log line every N
seconds and no bar redraws; the Translator reports every sentence, blank ones included."""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path

import pytest
from tiny import CPU, SENTENCES, tiny_assets

from transformer.decoding.translator import Translator
from transformer.progress import decode_progress as DecodeProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_no_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = _Terminal()
    with caplog.at_level(logging.INFO), DecodeProgress(10, "test", every=0.0, stream=stream) as p:
        p(4)
        p(6)
    assert "test:" in stream.getvalue() and "/10 [" in stream.getvalue()  # tqdm's bar
    assert not caplog.records


def test_a_file_gets_log_lines_every_n_seconds_and_no_redraws(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.INFO):
        with DecodeProgress(10, "test", every=0.0, stream=stream) as progress:
            progress(4)
            progress(6)  # finished: the caller reports the end itself
        with DecodeProgress(10, "slow", every=3600.0, stream=stream) as progress:
            progress(4)
    assert stream.getvalue() == ""
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["test: 4/10 sentences (40%)"]


def test_the_translator_reports_every_sentence(tiny_parallel_corpus: dict[str, Path]) -> None:
    model, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    decode = dataclasses.replace(cfg.decode, beam_size=2, n_best=1, max_tokens=40)
    reported: list[int] = []
    sentences = [*SENTENCES, "", "  "]
    Translator(model, tokenizer, decode, CPU, progress=reported.append).translate(sentences)
    assert sum(reported) == len(sentences) and len(reported) > 2
