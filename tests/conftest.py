"""Shared fixtures: seeding, one intra-op thread, the Multi30k mirror, a tiny generated parallel
corpus, and a tiny model briefly trained to reverse its input."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny import PAD, reversal_batch, tiny_model, write_tiny_parallel_corpus

from transformer.model import Seq2SeqTransformer

MULTI30K_ENV = "MULTI30K_DIR"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI (CI=true) a skipped test fails, unless it is marked `gpu`: CI runs everything else,
    so a skip there would hide a test that never ran."""
    outcome = yield
    report = outcome.get_result()
    if (
        os.environ.get("CI") == "true"
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("gpu") is None
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where only `gpu` tests may skip: {report.longrepr}"


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """Tiny tensors run faster on one intra-op thread, and far faster on a busy shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def multi30k_dir() -> Path:
    """The Multi30k mirror named by MULTI30K_DIR; in CI its absence fails the test, never skips."""
    value = os.environ.get(MULTI30K_ENV)
    path = Path(value) if value else None
    if path is None or not (path / "train.en.gz").is_file():
        message = f"{MULTI30K_ENV} does not name a Multi30k mirror (got {value!r})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must provide the corpus (see .ci/run).")
        pytest.skip(message)
    return path


@pytest.fixture
def tiny_parallel_corpus(tmp_path: Path) -> dict[str, Path]:
    """Line-aligned en/de files for train, valid and test: see `tiny.write_tiny_parallel_corpus`."""
    return write_tiny_parallel_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def trained_model() -> Seq2SeqTransformer:
    """Briefly trained to reverse its input: uncertain enough for search to matter, and it stops."""
    torch.manual_seed(0)
    model = tiny_model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        src, tgt_in, tgt_out = reversal_batch(32, 8)
        logits = model(src, tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
