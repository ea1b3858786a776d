"""Reading sentence pairs from a user's own files: line-aligned parallel text, TSV or JSONL.

Plain or gzipped, decoded strictly as UTF-8. Pairs with an empty side are dropped, counted and
reported; everything else that is wrong with a file stops with an error naming file and line.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class CorpusError(ValueError):
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


def read_lines(path: Path, key: str = "") -> list[str]:
    """Reads a text file (gzipped when the name ends in .gz) as strict UTF-8, one entry per line.

    Lines are split on "\\n" only, so the other Unicode line breaks that `str.splitlines` honours
    cannot shift the alignment of a parallel corpus. A leading byte-order mark is removed.

    Args:
        path: The file.
        key: The config key that named the file, quoted in the error when it is missing.

    Raises:
        CorpusError: The file is missing, is not valid gzip, or is not valid UTF-8 (with the
            1-based line number of the first bad byte).
    """
    if not path.is_file():
        hint = f" (from {key})" if key else ""
        raise CorpusError(f"Corpus file {path}{hint} does not exist; check the path.")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise CorpusError(f"{path} is not a valid gzip file ({error}); re-download it.") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise CorpusError(
            f"{path}, line {line}: invalid UTF-8 ({error.reason} at byte {error.start}); "
            "re-encode the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)."
        ) from error
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line rather than starting an empty one
    return lines


def drop_empty(src: list[str], tgt: list[str], origin: str) -> TextPairs:
    """Strips both sides and drops pairs where either side is empty, warning with the count."""
    pairs = [(s.strip(), t.strip()) for s, t in zip(src, tgt, strict=True)]
    kept = [(s, t) for s, t in pairs if s and t]
    n_empty = len(pairs) - len(kept)
    if n_empty:
        logger.warning(
            "Dropped %d of %d pairs with an empty side in %s", n_empty, len(pairs), origin
        )
    return TextPairs([s for s, _ in kept], [t for _, t in kept], n_empty, origin)


def read_parallel(src_path: Path, tgt_path: Path, key: str = "") -> TextPairs:
    """Reads two line-aligned files, one sentence per line.

    Raises:
        CorpusError: A file is unreadable, or the two files have different line counts.
    """
    src, tgt = read_lines(src_path, key), read_lines(tgt_path, key)
    if len(src) != len(tgt):
        raise CorpusError(
            f"Parallel files are not aligned: {src_path} has {len(src)} lines but {tgt_path} has "
            f"{len(tgt)}; each line of one must translate the same line of the other."
        )
    return drop_empty(src, tgt, f"{src_path} + {tgt_path}")


def read_tsv(path: Path, key: str = "") -> TextPairs:
    """Reads a TSV file whose lines hold a source and a target sentence separated by one tab.

    Raises:
        CorpusError: A line does not have exactly two tab-separated fields.
    """
    src, tgt = [], []
    for number, line in enumerate(read_lines(path, key), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise CorpusError(
                f"{path}, line {number}: expected 2 tab-separated fields (source, target), "
                f"found {len(fields)}; remove stray tabs or fix the line."
            )
        src.append(fields[0])
        tgt.append(fields[1])
    return drop_empty(src, tgt, str(path))


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


def read_jsonl(path: Path, src_lang: str, tgt_lang: str, key: str = "") -> TextPairs:
    """Reads JSON lines, each {src_lang: text, tgt_lang: text} or {"translation": {...}}.

    Blank lines are skipped. Raises CorpusError for invalid JSON or a missing language field.
    """
    src, tgt = [], []
    for number, line in enumerate(read_lines(path, key), start=1):
        if line.strip():
            s, t = _jsonl_pair(line, path, number, (src_lang, tgt_lang))
            src.append(s)
            tgt.append(t)
    return drop_empty(src, tgt, str(path))


def lang_path(path: str, lang: str) -> Path:
    """The file of one language: "{lang}" in `path` is replaced, otherwise ".<lang>" is appended."""
    return Path(path.replace("{lang}", lang) if "{lang}" in path else f"{path}.{lang}")


def read_text_split(
    path: str, key: str, file_format: str, src_lang: str, tgt_lang: str
) -> TextPairs:
    """Reads one split of a user's corpus in the configured format.

    Args:
        path: The split's path from the config; for "parallel", a pattern with "{lang}" or a prefix.
        key: The config key it came from (e.g. "data.train_path"), for error messages.
        file_format: "parallel", "tsv" or "jsonl".
        src_lang: Source language code.
        tgt_lang: Target language code.
    """
    if file_format == "parallel":
        return read_parallel(lang_path(path, src_lang), lang_path(path, tgt_lang), key)
    if file_format == "tsv":
        return read_tsv(Path(path), key)
    if file_format == "jsonl":
        return read_jsonl(Path(path), src_lang, tgt_lang, key)
    raise CorpusError(f"data.file_format={file_format!r} is not one of parallel, tsv, jsonl.")
