"""tmt-serve without a server: the command's edges (help without the extra, bad paths), the
batcher's grouping, and the request fields. Fast: no model, no HTTP."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

from transformer.commands import serve as command
from transformer.serve.batching import Batcher, BatchLimits, Job
from transformer.serve.requests import ApiError, bool_field, number_field, texts

EXTRA = (
    "fastapi",
    "uvicorn",
    "prometheus_client",
    "transformer.serve.app",
    "transformer.serve.server",
)


def _without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXTRA:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError


def test_help_works_without_the_serve_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _without_extra(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        command.main(["--help"])
    assert exit_.value.code == 0
    assert "--max-chars" in capsys.readouterr().out


def test_serving_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    _without_extra(monkeypatch)
    assert command.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and '".[serve]"' in err


def test_a_bad_model_path_fails_in_one_line_with_status_2(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    assert command.main([str(tmp_path / "missing.pt"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.pt" in err and "\n" not in err


@pytest.mark.parametrize("flag", ["--max-chars=0", "--timeout=0", "--port=70000"])
def test_bad_limits_fail_with_status_2(flag: str, capsys: pytest.CaptureFixture) -> None:
    assert command.main(["model.pt", flag]) == 2
    assert capsys.readouterr().err.startswith("error: --")


def _run_batches(limits: BatchLimits, jobs: list[tuple[object, list[str], int]]) -> list[list[str]]:
    """Queue the jobs at once and return the batches the batcher decoded (their sentences)."""
    batches: list[list[str]] = []

    def decode(sentences: list[str]) -> list[str]:
        batches.append(sentences)
        return [s.upper() for s in sentences]

    async def main() -> list[list[str]]:
        batcher = Batcher(limits)
        batcher.start()
        made = [Job(key, sentences, cost, decode) for key, sentences, cost in jobs]
        results = await asyncio.gather(*(batcher.submit(job) for job in made))
        await batcher.stop()
        assert results == [[s.upper() for s in sentences] for _, sentences, _ in jobs]
        return batches

    return asyncio.run(main())


def test_jobs_with_the_same_key_share_a_batch_within_the_budget() -> None:
    limits = BatchLimits(max_wait=0.05, max_tokens=30, max_sentences=10)
    jobs = [("a", ["1"], 10), ("b", ["2"], 10), ("a", ["3", "4"], 10), ("a", ["5"], 10)]
    assert _run_batches(limits, jobs) == [["1", "3", "4", "5"], ["2"]]
    tight = BatchLimits(max_wait=0.05, max_tokens=20, max_sentences=10)
    assert _run_batches(tight, jobs) == [["1", "3", "4"], ["2"], ["5"]]
    few = BatchLimits(max_wait=0.05, max_tokens=100, max_sentences=2)
    assert _run_batches(few, jobs) == [["1"], ["2"], ["3", "4"], ["5"]]


def test_no_batching_and_unbatchable_jobs_are_decoded_alone() -> None:
    jobs = [("a", ["1"], 1), ("a", ["2"], 1), (None, ["3"], 1), (None, ["4"], 1)]
    alone = BatchLimits(max_wait=0.05, one_request=True)
    assert _run_batches(alone, jobs) == [["1"], ["2"], ["3"], ["4"]]
    assert _run_batches(BatchLimits(max_wait=0.05), jobs) == [["1", "2"], ["3"], ["4"]]


def test_form_fields_are_converted_and_wrong_types_refused() -> None:
    assert number_field({"alternatives": "3"}, "alternatives", int) == 3
    assert number_field({"length_penalty": 1}, "length_penalty", float) == 1.0
    assert bool_field({"sample": "true"}, "sample") is True
    assert texts({"q": ["a", "b"]}, "q") == ["a", "b"]
    for fields, read in [
        ({"alternatives": True}, lambda f: number_field(f, "alternatives", int)),
        ({"alternatives": "x"}, lambda f: number_field(f, "alternatives", int)),
        ({"sample": "maybe"}, lambda f: bool_field(f, "sample")),
        ({"q": [1]}, lambda f: texts(f, "q")),
        ({"q": []}, lambda f: texts(f, "q")),
    ]:
        with pytest.raises(ApiError) as error:
            read(fields)
        assert error.value.status == 400


def test_decoding_runs_off_the_event_loop() -> None:
    """While a batch decodes (blocked here), the loop keeps answering other work (/health)."""
    started, release = threading.Event(), threading.Event()

    def decode(sentences: list[str]) -> list[str]:
        started.set()
        assert release.wait(10)
        return sentences

    async def main() -> None:
        batcher = Batcher(BatchLimits(max_wait=0))
        batcher.start()
        answer = asyncio.create_task(batcher.submit(Job("a", ["x"], 1, decode)))
        assert await asyncio.to_thread(started.wait, 10)
        for _ in range(3):
            await asyncio.sleep(0.01)  # the loop runs while the worker thread decodes
        assert not answer.done()
        release.set()
        assert await answer == ["x"]
        await batcher.stop()

    asyncio.run(main())
