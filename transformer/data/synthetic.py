"""A synthetic parallel corpus of any size from a small real one: each pair joins `join` pairs of
the source corpus drawn at random (seeded), so lengths stay realistic and tests and benchmarks
reach millions of pairs without downloads.

    python scripts/make_corpus.py --pairs 1000000 --out corpora/big/train.{lang}

(`transformer.commands.make_corpus` is that command.)
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path
from typing import IO

import numpy as np

from transformer.data.text_files import read_parallel

CHUNK_PAIRS = 100_000  # pairs generated and written at a time


def _open(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=1)
    return path.open("w", encoding="utf-8")


def write_synthetic_corpus(
    src_source: Path,
    tgt_source: Path,
    src_out: Path,
    tgt_out: Path,
    n_pairs: int,
    *,
    join: int = 2,
    seed: int = 0,
) -> None:
    """Writes `n_pairs` line-aligned pairs, each `join` random source pairs joined by spaces.

    The same sources, n_pairs, join and seed always give the same files; an output ending in
    .gz is gzipped.

    Args:
        src_source: Source side of the small corpus (plain or .gz, one sentence per line).
        tgt_source: Its target side, line-aligned.
        src_out: Where the synthetic source side goes.
        tgt_out: Where the synthetic target side goes.
        n_pairs: Pairs to write.
        join: Source pairs per synthetic pair.
        seed: Seeds the draw.
    """
    pairs = read_parallel(src_source, tgt_source)
    src = np.array(pairs.src, dtype=object)  # (M,)
    tgt = np.array(pairs.tgt, dtype=object)  # (M,)
    rng = np.random.Generator(np.random.PCG64(seed))
    with _open(src_out) as src_file, _open(tgt_out) as tgt_file:
        for start in range(0, n_pairs, CHUNK_PAIRS):
            rows = rng.integers(0, len(src), size=(min(CHUNK_PAIRS, n_pairs - start), join))
            for side, file in ((src, src_file), (tgt, tgt_file)):
                joined = side[rows[:, 0]]  # (C,) object: elementwise string concatenation
                for k in range(1, join):
                    joined = joined + " " + side[rows[:, k]]
                file.write("\n".join(joined.tolist()) + "\n")


def parse_count(text: str) -> int:
    """ "0.1M" -> 100000, "50k" -> 50000, "1234" -> 1234."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    number = text[:-1] if scale > 1 else text
    try:
        return round(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count such as 5000, 50k or 0.1M"
        ) from None


def default_source() -> str:
    """The Multi30k training split of the mirror named by $MULTI30K_DIR (or "" without it)."""
    folder = os.environ.get("MULTI30K_DIR")
    return f"{folder}/train.{{lang}}.gz" if folder else ""

