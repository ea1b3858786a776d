"""Shared fixtures: seeding, the Multi30k mirror, and a tiny generated parallel corpus."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

MULTI30K_ENV = "MULTI30K_DIR"


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
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


_WORDS_EN = (
    "a man woman dog cat runs walks sits on the red blue green big small street park".split()
)
_WORDS_XX = (
    "ein mann frau hund katze rennt geht sitzt auf der rot blau grun gross klein weg park".split()
)


def _make_pairs(n: int, rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(n):
        idx = [rng.randrange(len(_WORDS_EN)) for _ in range(rng.randint(2, 8))]
        src = " ".join(_WORDS_EN[i] for i in idx).capitalize() + "."
        tgt = " ".join(_WORDS_XX[i] for i in idx).capitalize() + "."
        pairs.append((src, tgt))
    return pairs


@pytest.fixture
def tiny_parallel_corpus(tmp_path: Path) -> dict[str, Path]:
    """Line-aligned en/de text files for train (400 pairs), valid and test (40 each).

    The "German" side is a word-for-word substitution of the English side, so a tiny model can
    learn it. Keys: "train.en", "train.de", "valid.en", ..., and "dir" (the folder).
    """
    rng = random.Random(1234)
    folder = tmp_path / "corpus"
    folder.mkdir()
    paths: dict[str, Path] = {"dir": folder}
    for split, n in (("train", 400), ("valid", 40), ("test", 40)):
        pairs = _make_pairs(n, rng)
        for lang, column in (("en", 0), ("de", 1)):
            path = folder / f"{split}.{lang}"
            path.write_text("".join(p[column] + "\n" for p in pairs), encoding="utf-8")
            paths[f"{split}.{lang}"] = path
    return paths
