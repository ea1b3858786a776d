"""Sentence-pair sources as `datasets` splits of {src, tgt} strings: Multi30k, Hugging Face hub
translation corpora, and a user's own files.

A user's files are streamed once into an Arrow file under `<cache_dir>/pairs/` (keyed by the
sha256 of their bytes, so an edit that keeps size and modification time is seen) and
memory-mapped from there, like the hub's own cache: no split of any size is held in Python lists.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from transformer.config import DataConfig
from transformer.data.multi30k import read_multi30k
from transformer.data.text_files import (
    CorpusError,
    TextPairs,
    check_file,
    split_files,
    stream_text_split,
    strip_pairs,
)

if TYPE_CHECKING:
    import datasets

__all__ = [
    "CorpusError",
    "CorpusSplit",
    "load_corpus",
    "load_split",
    "read_split",
    "source_record",
    "split_name",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# The config key naming each split's file(s) for data.source=files.
PATH_KEYS = {"train": "train_path", "validation": "valid_path", "test": "test_path"}
PAIRS_SCHEMA = pa.schema([("src", pa.string()), ("tgt", pa.string())])
PAIR_SLICE = 50_000  # rows joined at a time when hashing an Arrow table
PAIRS_VERSION = 2  # part of the key of the cached pairs of text files: bump when reading changes
HASH_BLOCK = 1 << 22  # bytes read at a time when hashing a file


def split_name(cfg: DataConfig, split: str) -> str:
    """The corpus' own name of a split: "validation" is data.valid_split and "test" is
    data.test_split for Multi30k and hub corpora; other names (and every name of a user's files,
    whose splits are data.*_path) pass through."""
    if cfg.source == "files":
        return split
    return {"validation": cfg.valid_split, "test": cfg.test_split}.get(split, split)


@dataclass
class CorpusSplit:
    """One split with what `prepare` reports about it.

    Attributes:
        dataset: Columns "src" and "tgt" (str), pairs with an empty side removed.
        n_empty: Pairs dropped because one side was empty.
        origin: Where the pairs came from, for statistics.
        identity: A digest of the split's contents and direction; keys the tokenised cache.
        files: For a user's files, each path as the config gives it -> sha256 of its bytes.
    """

    dataset: datasets.Dataset
    n_empty: int
    origin: str
    identity: str
    files: dict[str, str] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read a block at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def source_record(split: CorpusSplit) -> dict[str, Any]:
    """What a split was read from, as checkpoints record it: origin, identity of the pairs, and
    each file's path (as the config gives it) with the sha256 of its bytes."""
    return {"origin": split.origin, "identity": split.identity, "files": dict(split.files)}


def changed_data(recorded: dict, current: dict) -> list[str]:
    """How a split's data differs from what was recorded ([] when it is the same, or when
    nothing was recorded): each changed file with both sha256, or both identities."""
    if not recorded:
        return []
    old_files, new_files = recorded.get("files") or {}, current.get("files") or {}
    changed = [
        f"{path} has sha256 {new_files.get(path, 'missing')[:16]} but had {sha[:16]}"
        for path, sha in old_files.items()
        if new_files.get(path) != sha
    ]
    if changed or recorded["identity"] == current["identity"]:
        return changed
    return [
        f"{current['origin']} has identity {current['identity'][:16]} but had "
        f"{recorded['identity'][:16]}"
    ]


def _from_pairs(pairs: TextPairs) -> CorpusSplit:
    import datasets

    digest = hashlib.sha256()
    for side in (pairs.src, pairs.tgt):
        digest.update("\n".join(side).encode("utf-8"))
        digest.update(b"\0")
    dataset = datasets.Dataset.from_dict({"src": pairs.src, "tgt": pairs.tgt})
    return CorpusSplit(dataset, pairs.n_empty, pairs.origin, digest.hexdigest())


def _multi30k(cfg: DataConfig, split: str) -> CorpusSplit:
    pairs = read_multi30k(
        split_name(cfg, split),
        cfg.src_lang,
        cfg.tgt_lang,
        mirror_dir=cfg.multi30k_dir,
        cache_dir=cfg.cache_dir,
    )
    return _from_pairs(pairs)


def _text_files(cfg: DataConfig, split: str) -> CorpusSplit:
    if split not in PATH_KEYS:
        raise CorpusError(
            f"data.source=files has the splits {', '.join(PATH_KEYS)}, not {split!r}; point "
            "data.test_path at the file to use instead."
        )
    key = f"data.{PATH_KEYS[split]}"
    path = getattr(cfg, PATH_KEYS[split])
    if not path:
        raise CorpusError(f"data.source=files needs {key} for the {split} split.")
    files = split_files(path, cfg.file_format, cfg.src_lang, cfg.tgt_lang)
    for file in files:
        check_file(file, key)
    hashes = {str(file): file_sha256(file) for file in files}
    settings = [PAIRS_VERSION, cfg.file_format, cfg.src_lang, cfg.tgt_lang, list(hashes.values())]
    digest = hashlib.sha256(json.dumps(settings).encode("utf-8")).hexdigest()[:16]
    cache = Path(cfg.cache_dir) / "pairs" / f"files-{digest}.arrow"
    split = _cached_pairs(cache)
    if split is None:
        origin, batches = stream_text_split(path, key, cfg.file_format, cfg.src_lang, cfg.tgt_lang)
        _write_pairs(batches, cache, origin)
        split = _cached_pairs(cache)
        assert split is not None, cache  # just written
    split.files = hashes
    return split


def _temp_beside(path: Path) -> Path:
    """A new, uniquely named temporary file in `path`'s folder: processes sharing a cache folder
    never write to one another's temporary files."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def _write_pairs(batches: Iterator[tuple[list[str], list[str]]], cache: Path, origin: str) -> None:
    """Streams pair batches into an Arrow file, then records its identity and counts beside it.

    Both files are written under unique temporary names and renamed into place, the .json file
    last, so an interrupted write is redone rather than reused, and two processes filling the
    same cache each publish a complete copy.
    """
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(cache)
    try:
        n_empty = 0
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, PAIRS_SCHEMA) as writer:
            for src, tgt in batches:
                src, tgt, dropped = strip_pairs(src, tgt)
                n_empty += dropped
                writer.write_batch(pa.record_batch([src, tgt], schema=PAIRS_SCHEMA))
        with pa.memory_map(str(tmp)) as source:
            table = pa.ipc.open_stream(source).read_all()
            meta = {"origin": origin, "n_empty": n_empty, "identity": _identity(table)}
        meta["arrow_bytes"] = tmp.stat().st_size  # a truncated file reads without an error
        tmp.replace(cache)
        tmp = _temp_beside(cache.with_suffix(".json"))
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        tmp.replace(cache.with_suffix(".json"))
    finally:
        tmp.unlink(missing_ok=True)


def _identity(table: pa.Table) -> str:
    """sha256 of the sources joined by newlines, NUL, the targets likewise, NUL: the digest that
    `_from_pairs` computes from lists, here joined by Arrow a slice at a time."""
    digest = hashlib.sha256()
    for name in ("src", "tgt"):
        separator = b""
        for start in range(0, table.num_rows, PAIR_SLICE):
            for chunk in table.column(name).slice(start, PAIR_SLICE).chunks:
                if len(chunk) == 0:
                    continue
                one_list = pa.ListArray.from_arrays(pa.array([0, len(chunk)], pa.int32()), chunk)
                joined = pc.binary_join(one_list, "\n")[0].as_buffer()
                digest.update(separator)
                digest.update(joined)
                separator = b"\n"
        digest.update(b"\0")
    return digest.hexdigest()


def _cached_pairs(cache: Path) -> CorpusSplit | None:
    """The pairs written by `_write_pairs`, memory-mapped from the Arrow file; None when the
    cache is absent, or damaged (a file deleted, truncated or emptied), so it is written again."""
    import datasets

    meta_path = cache.with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        dataset = datasets.Dataset.from_file(str(cache))
        counts = (meta["n_empty"], meta["origin"], meta["identity"])
        if cache.stat().st_size != meta["arrow_bytes"]:
            raise ValueError(f"{cache.stat().st_size} bytes, not {meta['arrow_bytes']}")
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as error:
        logger.warning("%s is damaged (%s); reading the corpus files again", cache, error)
        meta_path.unlink(missing_ok=True)
        return None
    if counts[0]:
        logger.warning(
            "Dropped %d of %d pairs with an empty side in %s", counts[0], counts[0] + len(dataset),
            counts[1],
        )  # fmt: skip
    return CorpusSplit(dataset, *counts)


def _load_hf(cfg: DataConfig) -> datasets.DatasetDict:
    assert cfg.hf_path is not None  # DataConfig checks it for source=hf
    return _load_hf_once(cfg.hf_path, cfg.hf_name, str(Path(cfg.cache_dir) / "hf"))


@functools.lru_cache(maxsize=2)  # the splits of one corpus are read one after another
def _load_hf_once(path: str, name: str | None, cache_dir: str) -> datasets.DatasetDict:
    import datasets

    try:
        if (Path(path) / "dataset_dict.json").is_file():  # a save_to_disk folder
            return datasets.load_from_disk(path)
        return datasets.load_dataset(path, name, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        raise CorpusError(
            f"Could not load data.hf_path={path!r}, data.hf_name={name!r}: {error}"
        ) from error


def _check_translation(raw: datasets.Dataset, cfg: DataConfig, origin: str) -> None:
    import datasets

    feature = raw.features.get("translation")
    if isinstance(feature, datasets.Translation):
        langs = list(feature.languages)
    elif isinstance(feature, dict):
        langs = list(feature)
    else:
        raise CorpusError(
            f"{origin} has columns {raw.column_names}, not the translation schema "
            '{"translation": {lang: text}}; use data.source=files for other layouts.'
        )
    missing = [lang for lang in (cfg.src_lang, cfg.tgt_lang) if lang not in langs]
    if missing:
        raise CorpusError(
            f"{origin} has no language {', '.join(missing)}; it has {', '.join(langs)} "
            "(set data.src_lang / data.tgt_lang, or data.hf_name for another language pair)."
        )


def _flatten(batch: dict[str, list], src_lang: str, tgt_lang: str) -> dict[str, list[str]]:
    # A row without one of the languages reads as None: counted as empty like a blank side.
    pairs = [
        ((t[src_lang] or "").strip(), (t[tgt_lang] or "").strip()) for t in batch["translation"]
    ]
    kept = [(s, t) for s, t in pairs if s and t]
    return {"src": [s for s, _ in kept], "tgt": [t for _, t in kept]}


def _hub(cfg: DataConfig, split: str) -> CorpusSplit:
    name = split_name(cfg, split)
    corpus = _load_hf(cfg)
    origin = f"{cfg.hf_path}" + (f" ({cfg.hf_name})" if cfg.hf_name else "") + f", split {name}"
    if name not in corpus:
        raise CorpusError(
            f"{cfg.hf_path} has no split {name!r}; it has {', '.join(corpus)} "
            "(set data.valid_split / data.test_split)."
        )
    raw = corpus[name]
    _check_translation(raw, cfg, origin)
    identity = hashlib.sha256(f"{raw._fingerprint}:{cfg.src_lang}-{cfg.tgt_lang}".encode())
    cache = Path(cfg.cache_dir) / "pairs" / f"{name}-{identity.hexdigest()[:16]}.arrow"
    cache.parent.mkdir(parents=True, exist_ok=True)
    dataset = raw.map(
        _flatten,
        batched=True,
        remove_columns=raw.column_names,
        fn_kwargs={"src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang},
        cache_file_name=str(cache),
        load_from_cache_file=True,
        new_fingerprint=identity.hexdigest()[:16],
        desc=f"Reading {name}",
    )
    n_empty = len(raw) - len(dataset)
    if n_empty:
        logger.warning("Dropped %d of %d pairs with an empty side in %s", n_empty, len(raw), origin)
    return CorpusSplit(dataset, n_empty, origin, identity.hexdigest())


def read_split(cfg: DataConfig, split: str) -> CorpusSplit:
    """Reads one split with its provenance and the count of dropped empty pairs.

    Args:
        cfg: The data config.
        split: "train", "validation" (data.valid_split), "test" (data.test_split), or a name of
            the corpus itself (Multi30k: "val", "test_2016_flickr", "test_2017_flickr"; hub: any).

    Raises:
        CorpusError: Unknown split or language, missing or malformed files, failed download.
    """
    if cfg.source == "multi30k":
        return _multi30k(cfg, split)
    if cfg.source == "hf":
        return _hub(cfg, split)
    return _text_files(cfg, split)


def load_split(cfg: DataConfig, split: str) -> datasets.Dataset:
    """One split as a Dataset with columns "src" and "tgt" (see `read_split`)."""
    return read_split(cfg, split).dataset


def corpus_splits(cfg: DataConfig) -> tuple[str, ...]:
    """The splits `load_corpus` returns: all three, without "test" for files lacking a test_path."""
    if cfg.source == "files" and not cfg.test_path:
        return ("train", "validation")
    return SPLITS


def load_corpus(cfg: DataConfig) -> datasets.DatasetDict:
    """The corpus as a DatasetDict with splits "train", "validation" and "test" of {src, tgt}.

    For data.source=files without data.test_path there is no "test" split.
    """
    import datasets

    return datasets.DatasetDict({split: load_split(cfg, split) for split in corpus_splits(cfg)})
