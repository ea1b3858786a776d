"""Reading sentence pairs from a user's own files: line-aligned parallel text, TSV or JSONL.

Plain or gzipped, decoded strictly as UTF-8, and streamed: the readers yield batches of pairs, so
a corpus of millions of lines never sits in Python lists. Pairs with an empty side are dropped,
counted and reported; everything else that is wrong with a file stops with an error naming file
and line.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from transformer.errors import UserError

logger = logging.getLogger(__name__)


class CorpusError(UserError, ValueError):
    """A corpus that cannot be read as asked; the message names the file, line or key and a fix."""


@dataclass
class TextPairs:
    """Sentence pairs after dropping pairs with an empty side.

    Attributes:
        src: Source sentences, stripped.
        tgt: Target sentences, stripped, aligned with `src`.
        n_empty: Pairs dropped because one side was empty.
        origin: Where the pairs came from (file names), for messages and statistics.
    """

    src: list[str]
    tgt: list[str]
    n_empty: int
    origin: str


BLOCK_BYTES = 1 << 22  # read files 4 MiB at a time, cut at the last newline
PAIR_BATCH = 10_000  # pairs per batch handed on by the streaming readers


def check_file(path: Path, key: str = "") -> None:
    """Raises CorpusError naming `path` (and the config key) when the file does not exist."""
    if not path.is_file():
        hint = f" (from {key})" if key else ""
        raise CorpusError(f"Corpus file {path}{hint} does not exist; check the path.")


def _decode(raw: bytes, path: Path, offset: int, line: int) -> str:
    """Strict UTF-8 of a block of whole lines that starts at byte `offset`, after `line` lines."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line += raw.count(b"\n", 0, error.start) + 1
        raise CorpusError(
            f"{path}, line {line}: invalid UTF-8 ({error.reason} at byte {offset + error.start}); "
            "re-encode the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)."
        ) from error


def iter_lines(path: Path, key: str = "") -> Iterator[list[str]]:
    """Streams a text file (gzipped when the name ends in .gz) as strict UTF-8, in blocks of lines.

    Lines are split on "\\n" only, so the other Unicode line breaks that `str.splitlines` honours
    cannot shift the alignment of a parallel corpus. A leading byte-order mark is removed. Only
    one block (a few MiB) is held at a time.

    Args:
        path: The file.
        key: The config key that named the file, quoted in the error when it is missing.

    Raises:
        CorpusError: The file is missing, is not valid gzip, or is not valid UTF-8 (with the
            1-based line number of the first bad byte).
    """
    check_file(path, key)
    opener = gzip.open if path.suffix == ".gz" else open
    offset = line = 0
    rest = b""
    try:
        with opener(path, "rb") as file:
            while block := file.read(BLOCK_BYTES):
                block = rest + block
                cut = block.rfind(b"\n") + 1
                rest = block[cut:]
                if cut:
                    lines = _decode(block[:cut], path, offset, line).split("\n")
                    lines.pop()  # the newline ends the block's last line
                    yield _without_bom(lines, first=line == 0)
                    offset, line = offset + cut, line + len(lines)
    except (OSError, EOFError) as error:
        raise CorpusError(f"{path} is not a valid gzip file ({error}); re-download it.") from error
    if rest:  # a last line without a final newline
        yield _without_bom([_decode(rest, path, offset, line)], first=line == 0)


def _without_bom(lines: list[str], *, first: bool) -> list[str]:
    if first and lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    return lines


def read_lines(path: Path, key: str = "") -> list[str]:
    """All lines of a text file as `iter_lines` reads them (for small files such as Multi30k)."""
    return [line for block in iter_lines(path, key) for line in block]


def strip_pairs(src: list[str], tgt: list[str]) -> tuple[list[str], list[str], int]:
    """Both sides stripped, without the pairs where either side is empty, and their count."""
    kept = [
        (s, t) for s, t in zip(map(str.strip, src), map(str.strip, tgt), strict=True) if s and t
    ]
    return [s for s, _ in kept], [t for _, t in kept], len(src) - len(kept)


def drop_empty(src: list[str], tgt: list[str], origin: str) -> TextPairs:
    """Strips both sides and drops pairs where either side is empty, warning with the count."""
    src, tgt, n_empty = strip_pairs(src, tgt)
    if n_empty:
        total = len(src) + n_empty
        logger.warning("Dropped %d of %d pairs with an empty side in %s", n_empty, total, origin)
    return TextPairs(src, tgt, n_empty, origin)


def _collect(batches: Iterator[tuple[list[str], list[str]]], origin: str) -> TextPairs:
    src: list[str] = []
    tgt: list[str] = []
    for s, t in batches:
        src += s
        tgt += t
    return drop_empty(src, tgt, origin)


def _count(lines: Iterator[str]) -> int:
    return sum(1 for _ in lines)


def stream_parallel(
    src_path: Path, tgt_path: Path, key: str = ""
) -> Iterator[tuple[list[str], list[str]]]:
    """Streams two line-aligned files as batches of (source lines, target lines), unstripped.

    Raises:
        CorpusError: A file is unreadable, or the two files have different line counts.
    """
    check_file(src_path, key)
    check_file(tgt_path, key)
    src_lines = itertools.chain.from_iterable(iter_lines(src_path, key))
    tgt_lines = itertools.chain.from_iterable(iter_lines(tgt_path, key))
    pairs = itertools.zip_longest(src_lines, tgt_lines)  # lines are str, never None
    n_read = 0
    while batch := list(itertools.islice(pairs, PAIR_BATCH)):
        src, tgt = map(list, zip(*batch, strict=True))
        if src[-1] is None or tgt[-1] is None:
            n_src = n_read + sum(s is not None for s in src) + _count(src_lines)
            n_tgt = n_read + sum(t is not None for t in tgt) + _count(tgt_lines)
            raise CorpusError(
                f"Parallel files are not aligned: {src_path} has {n_src} lines but {tgt_path} "
                f"has {n_tgt}; each line of one must translate the same line of the other."
            )
        n_read += len(batch)
        yield src, tgt


def read_parallel(src_path: Path, tgt_path: Path, key: str = "") -> TextPairs:
    """Reads two line-aligned files, one sentence per line (see `stream_parallel`)."""
    return _collect(stream_parallel(src_path, tgt_path, key), f"{src_path} + {tgt_path}")


def _numbered_lines(path: Path, key: str) -> Iterator[tuple[int, str]]:
    return enumerate(itertools.chain.from_iterable(iter_lines(path, key)), start=1)


def _batched_pairs(pairs: Iterator[tuple[str, str]]) -> Iterator[tuple[list[str], list[str]]]:
    while batch := list(itertools.islice(pairs, PAIR_BATCH)):
        src, tgt = zip(*batch, strict=True)
        yield list(src), list(tgt)


def _tsv_pairs(path: Path, key: str) -> Iterator[tuple[str, str]]:
    for number, line in _numbered_lines(path, key):
        fields = line.split("\t")
        if len(fields) != 2:
            raise CorpusError(
                f"{path}, line {number}: expected 2 tab-separated fields (source, target), "
                f"found {len(fields)}; remove stray tabs or fix the line."
            )
        yield fields[0], fields[1]


def stream_tsv(path: Path, key: str = "") -> Iterator[tuple[list[str], list[str]]]:
    """Streams a TSV file whose lines hold a source and a target sentence separated by one tab.

    Raises:
        CorpusError: A line does not have exactly two tab-separated fields.
    """
    return _batched_pairs(_tsv_pairs(path, key))


def _jsonl_pair(line: str, path: Path, number: int, langs: tuple[str, str]) -> tuple[str, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{path}, line {number}: invalid JSON ({error.msg}).") from error
    if isinstance(record, dict) and isinstance(record.get("translation"), dict):
        record = record["translation"]  # the Hugging Face translation schema
    if not isinstance(record, dict) or not all(isinstance(record.get(lang), str) for lang in langs):
        found = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise CorpusError(
            f"{path}, line {number}: expected an object with string fields {langs[0]!r} and "
            f"{langs[1]!r} (or {{'translation': {{...}}}}), found {found}."
        )
    return record[langs[0]], record[langs[1]]


def stream_jsonl(
    path: Path, src_lang: str, tgt_lang: str, key: str = ""
) -> Iterator[tuple[list[str], list[str]]]:
    """Streams JSON lines, each {src_lang: text, tgt_lang: text} or {"translation": {...}}.

    Blank lines are skipped. Raises CorpusError for invalid JSON or a missing language field.
    """
    langs = (src_lang, tgt_lang)
    pairs = (
        _jsonl_pair(line, path, number, langs)
        for number, line in _numbered_lines(path, key)
        if line.strip()
    )
    return _batched_pairs(pairs)


def lang_path(path: str, lang: str) -> Path:
    """The file of one language: "{lang}" in `path` is replaced, otherwise ".<lang>" is appended."""
    return Path(path.replace("{lang}", lang) if "{lang}" in path else f"{path}.{lang}")


def split_files(path: str, file_format: str, src_lang: str, tgt_lang: str) -> list[Path]:
    """The files one split of a user's corpus reads: two for "parallel", one otherwise."""
    if file_format == "parallel":
        return [lang_path(path, src_lang), lang_path(path, tgt_lang)]
    return [Path(path)]


def stream_text_split(
    path: str, key: str, file_format: str, src_lang: str, tgt_lang: str
) -> tuple[str, Iterator[tuple[list[str], list[str]]]]:
    """Streams one split of a user's corpus in the configured format.

    Args:
        path: The split's path from the config; for "parallel", a pattern with "{lang}" or a prefix.
        key: The config key it came from (e.g. "data.train_path"), for error messages.
        file_format: "parallel", "tsv" or "jsonl".
        src_lang: Source language code.
        tgt_lang: Target language code.

    Returns:
        The origin (file names) and batches of (sources, targets), unstripped, empty sides kept.
    """
    files = split_files(path, file_format, src_lang, tgt_lang)
    origin = " + ".join(map(str, files))
    if file_format == "parallel":
        return origin, stream_parallel(files[0], files[1], key)
    if file_format == "tsv":
        return origin, stream_tsv(files[0], key)
    if file_format == "jsonl":
        return origin, stream_jsonl(files[0], src_lang, tgt_lang, key)
    raise CorpusError(f"data.file_format={file_format!r} is not one of parallel, tsv, jsonl.")

