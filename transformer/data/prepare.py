"""Tokenised, length-filtered splits ready for batching: trains or reuses the SentencePiece model in
the run folder, encodes through cached `datasets.map`, and gathers corpus statistics.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transformer.config import DataConfig, TrainRunConfig
from transformer.data.batching import EncodedPairs, collated_lengths
from transformer.data.cache_folder import cache_in_use
from transformer.data.corpus import (
    PATH_KEYS,
    CorpusError,
    CorpusSplit,
    corpus_splits,
    read_split,
    source_record,
)
from transformer.data.sampler import TokenBatchSampler
from transformer.data.tokenizer import Tokenizer
from transformer.data.vocabulary import load_or_train_tokenizer
from transformer.data.workers import die_with_parent, workers_die_with_parent
from transformer.runtime import disk_full_is_one_line

logger = logging.getLogger(__name__)

ID_COLUMNS = ("src_ids", "tgt_ids")
# Rows per record batch of the encoded cache: opening a memory-mapped file reads each batch's
# header, and the kernel maps pages around every one, so fewer, larger batches stay lighter.
WRITER_BATCH = 10_000
ENCODE_VERSION = 2  # part of the cache key: bump it when `_encode_batch` changes
# Declared rather than inferred: int32 halves the cache, and an empty result keeps its columns.
ENCODED_FEATURES = datasets.Features(
    {
        "src": datasets.Value("string"),
        "tgt": datasets.Value("string"),
        "src_ids": datasets.List(datasets.Value("int32")),
        "tgt_ids": datasets.List(datasets.Value("int32")),
    }
)


@dataclass
class SplitStats:
    """Counts and lengths (in pieces, without BOS/EOS) of one encoded split."""

    pairs: int
    dropped_empty: int
    dropped_length: int
    src_tokens: int
    tgt_tokens: int
    src_len_mean: float
    src_len_max: int
    tgt_len_mean: float
    tgt_len_max: int


@dataclass
class CorpusStats:
    """What `prepare_data` found: per-split statistics, vocabulary, and train batching."""

    corpus: str
    origins: dict[str, str]
    splits: dict[str, SplitStats]
    tokenizer: str
    src_vocab_size: int
    tgt_vocab_size: int
    max_tokens: int
    train_batches: int
    train_padding: float  # share of padding among the src + tgt tokens of the train batches


@dataclass
class PreparedData:
    """The tokenizer, the encoded splits (src, tgt, src_ids, tgt_ids), their statistics, the
    (src, tgt) piece counts of each split's rows as int32 arrays, and what each split was read
    from (`data_sources`, which checkpoints record)."""

    tokenizer: Tokenizer
    splits: dict[str, datasets.Dataset]
    stats: CorpusStats
    lengths: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)


def data_sources(raw: dict[str, CorpusSplit]) -> dict[str, dict[str, Any]]:
    """Per split, what it was read from (`transformer.data.corpus.source_record`)."""
    return {name: source_record(split) for name, split in raw.items()}


def _encode_batch(
    batch: dict[str, list[str]],
    tokenizer: Tokenizer,
    max_len: int,
    max_ratio: float,
    main_pid: int,
) -> dict[str, list[Any]]:
    """Encodes a batch of pairs, dropping those over max_len or max_ratio (max_len=0: none)."""
    if os.getpid() != main_pid:  # a pool worker: it must not outlive the main process
        die_with_parent()
    src_ids, tgt_ids = tokenizer.encode_src(batch["src"]), tokenizer.encode_tgt(batch["tgt"])
    keep = range(len(src_ids))
    if max_len:
        keep = [
            i
            for i, (s, t) in enumerate(zip(src_ids, tgt_ids, strict=True))
            if len(s) <= max_len
            and len(t) <= max_len
            and max(len(s), len(t)) <= max_ratio * max(min(len(s), len(t)), 1)
        ]
    return {
        "src": [batch["src"][i] for i in keep],
        "tgt": [batch["tgt"][i] for i in keep],
        "src_ids": [src_ids[i] for i in keep],
        "tgt_ids": [tgt_ids[i] for i in keep],
    }


def encode_split(
    split: CorpusSplit,
    tokenizer: Tokenizer,
    *,
    name: str,
    cache_dir: str,
    num_proc: int,
    max_len: int = 0,
    max_ratio: float = 0.0,
) -> datasets.Dataset:
    """Encodes a split with a cached, batched `datasets.map`, filtering by length if max_len > 0.

    The Arrow cache lives in `<cache_dir>/encoded/`, keyed by the split's contents, the tokenizer
    model bytes and the filter settings, so an unchanged configuration is read back, not encoded.
    """
    settings = [split.identity, tokenizer.fingerprint, max_len, max_ratio, ENCODE_VERSION]
    key = hashlib.sha256(json.dumps(settings).encode("utf-8")).hexdigest()[:16]
    cache = Path(cache_dir) / "encoded" / f"{name}-{key}.arrow"
    cache.parent.mkdir(parents=True, exist_ok=True)
    settings = {"tokenizer": tokenizer, "max_len": max_len, "max_ratio": max_ratio}
    encode = functools.partial(
        split.dataset.map,
        _encode_batch,
        batched=True,
        fn_kwargs={**settings, "main_pid": os.getpid()},
        num_proc=num_proc if num_proc > 1 else None,
        features=ENCODED_FEATURES,
        cache_file_name=str(cache),
        new_fingerprint=key,
        desc=f"Encoding {name}",
        writer_batch_size=WRITER_BATCH,
    )
    with workers_die_with_parent():
        try:
            return encode(load_from_cache_file=True)
        except (OSError, ValueError, pa.ArrowException) as error:  # a cache file cut short
            logger.warning("%s is damaged (%s); encoding %s again", cache, error, name)
            for stale in cache.parent.glob(f"{cache.stem}*"):
                stale.unlink()
            return encode(load_from_cache_file=False)


def _file_lengths(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Piece counts of the rows of one encoded Arrow file, kept beside it in <file>.lengths.npy.

    The first call reads the file a record batch at a time with plain reads: taking the lengths
    through the memory map would fault in (and keep resident) pages of every record batch.
    """
    sidecar = Path(f"{path}.lengths.npy")
    lengths = _read_lengths(sidecar)
    if lengths is None:
        parts = []
        with pa.OSFile(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                parts.append(
                    [pc.list_value_length(batch.column(name)).to_numpy() for name in ID_COLUMNS]
                )
        lengths = (np.concatenate(parts, axis=1) if parts else np.zeros((2, 0))).astype(np.int32)
        fd, tmp = tempfile.mkstemp(prefix=f".{sidecar.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                np.save(file, lengths)
            os.replace(tmp, sidecar)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return lengths[0], lengths[1]


def _read_lengths(sidecar: Path) -> np.ndarray | None:
    """The (2, N) lengths of a .lengths.npy file; None when it is absent or damaged."""
    if not sidecar.is_file():
        return None
    try:
        lengths = np.load(sidecar)
    except (OSError, ValueError, EOFError) as error:
        logger.warning("%s is damaged (%s); counting the lengths again", sidecar, error)
        return None
    return lengths if lengths.ndim == 2 and lengths.shape[0] == 2 else None


def pair_lengths(dataset: datasets.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int32 piece counts (no BOS/EOS) of each row's src_ids and tgt_ids.

    For a split read whole from its cache file(s), from the .lengths.npy file beside each;
    otherwise (a selection of rows) from the Arrow offsets.
    """
    files = [Path(f["filename"]) for f in dataset.cache_files]
    if files and dataset._indices is None:  # (datasets has no public test for an indices map)
        parts = [_file_lengths(path) for path in files]
        src, tgt = (np.concatenate([part[side] for part in parts]) for side in (0, 1))
        if len(src) == len(dataset):
            return src, tgt
    return EncodedPairs.from_dataset(dataset).piece_lengths()


def _split_stats(
    lengths: tuple[np.ndarray, np.ndarray], dropped_empty: int, dropped_length: int
) -> SplitStats:
    src, tgt = (lens.astype(np.int64) for lens in lengths)
    n = max(len(src), 1)
    return SplitStats(
        pairs=len(src),
        dropped_empty=dropped_empty,
        dropped_length=dropped_length,
        src_tokens=int(src.sum()),
        tgt_tokens=int(tgt.sum()),
        src_len_mean=float(src.sum()) / n,
        src_len_max=int(src.max(initial=0)),
        tgt_len_mean=float(tgt.sum()) / n,
        tgt_len_max=int(tgt.max(initial=0)),
    )


def _train_padding(
    lengths: tuple[np.ndarray, np.ndarray], max_tokens: int, seed: int
) -> tuple[int, float]:
    src, tgt = collated_lengths(lengths)
    sampler = TokenBatchSampler(src, tgt, max_tokens, seed=seed)
    real, total = sampler.padding(src, tgt)
    return len(sampler), 1.0 - real / max(total, 1)


def _describe(cfg: TrainRunConfig, tokenizer: Tokenizer, reused: bool) -> str:
    tok = tokenizer.settings
    kind = "joint" if tokenizer.joint else "per language"
    action = "reused from" if reused else "trained, saved to"
    return f"SentencePiece {tok['model_type']} ({kind}), {action} {cfg.run_dir}"


def _encode_all(
    raw: dict[str, CorpusSplit], tokenizer: Tokenizer, data: DataConfig
) -> tuple[
    dict[str, datasets.Dataset], dict[str, SplitStats], dict[str, tuple[np.ndarray, np.ndarray]]
]:
    """Encodes every split (length-filtering train only); gathers their statistics and lengths."""
    splits, stats, lengths = {}, {}, {}
    for name, split in raw.items():
        limits = (data.max_tokens_per_side, data.max_length_ratio) if name == "train" else (0, 0.0)
        splits[name] = encode_split(
            split,
            tokenizer,
            name=name,
            cache_dir=data.cache_dir,
            num_proc=data.num_proc,
            max_len=limits[0],
            max_ratio=limits[1],
        )
        dropped = len(split.dataset) - len(splits[name])
        if dropped:
            logger.info(
                "Length filter dropped %d of %d %s pairs", dropped, len(split.dataset), name
            )
        lengths[name] = pair_lengths(splits[name])
        stats[name] = _split_stats(lengths[name], split.n_empty, dropped)
    return splits, stats, lengths


def prepare_data(cfg: TrainRunConfig) -> PreparedData:
    """Reads the corpus, trains or reuses the tokenizer, encodes and length-filters the splits.

    The tokenizer is trained on the training split only and saved in cfg.run_dir; encodings are
    cached under cfg.data.cache_dir. Only the training split is filtered by length.

    Raises:
        DiskFullError: No space left for the caches or the tokenizer, naming both folders.
        CorpusError: The corpus cannot be read (see `transformer.data.corpus`), a split has no
            pairs, or no training pair is left.
        ValueError: The run folder holds a tokenizer trained with other settings or on another
            training corpus.
    """
    folders = f"{cfg.data.cache_dir} or {cfg.run_dir}"
    what_to_do = "free some space, then run the same command again (nothing half-written is reused)."
    with disk_full_is_one_line(folders, what_to_do), cache_in_use(cfg.data.cache_dir):
        return _prepare(cfg)


def _prepare(cfg: TrainRunConfig) -> PreparedData:
    data = cfg.data
    raw = {name: read_split(data, name) for name in corpus_splits(data)}
    for name, split in raw.items():
        if len(split.dataset) == 0:
            key = f"data.{PATH_KEYS[name]}" if data.source == "files" else f"data.source={data.source}"
            raise CorpusError(
                f"The {name} split ({split.origin}) has no sentence pairs; point {key} at a "
                "corpus with some."
            )
    tokenizer, reused = load_or_train_tokenizer(cfg, raw["train"])
    splits, stats, lengths = _encode_all(raw, tokenizer, data)
    if len(splits["train"]) == 0:
        raise CorpusError(
            f"The length filter dropped all {len(raw['train'].dataset)} training pairs; raise "
            "data.max_tokens_per_side or data.max_length_ratio."
        )
    n_batches, padding = _train_padding(lengths["train"], cfg.train.max_tokens, cfg.train.seed)
    corpus_stats = CorpusStats(
        corpus=f"{data.source} {data.src_lang}->{data.tgt_lang}",
        origins={name: split.origin for name, split in raw.items()},
        splits=stats,
        tokenizer=_describe(cfg, tokenizer, reused),
        src_vocab_size=tokenizer.src_vocab_size,
        tgt_vocab_size=tokenizer.tgt_vocab_size,
        max_tokens=cfg.train.max_tokens,
        train_batches=n_batches,
        train_padding=padding,
    )
    return PreparedData(tokenizer, splits, corpus_stats, lengths, data_sources(raw))


def format_stats(stats: CorpusStats) -> str:
    """A printable table of `CorpusStats` (lengths in pieces, without BOS/EOS)."""
    lines = [f"Corpus: {stats.corpus}"]
    lines += [f"  {name:<10} {origin}" for name, origin in stats.origins.items()]
    lines.append(
        f"Tokenizer: {stats.tokenizer}; vocab {stats.src_vocab_size} src / "
        f"{stats.tgt_vocab_size} tgt"
    )
    header = "split pairs empty too_long src_tokens tgt_tokens src_len tgt_len".split()
    lines.append("{:<10} {:>8} {:>6} {:>8} {:>11} {:>11} {:>12} {:>12}".format(*header))
    for name, s in stats.splits.items():
        lines.append(
            f"{name:<10} {s.pairs:>8,} {s.dropped_empty:>6,} {s.dropped_length:>8,} "
            f"{s.src_tokens:>11,} {s.tgt_tokens:>11,} "
            f"{f'{s.src_len_mean:.1f} / {s.src_len_max}':>12} "
            f"{f'{s.tgt_len_mean:.1f} / {s.tgt_len_max}':>12}"
        )
    lines.append("(empty: pairs dropped for an empty side; too_long: dropped by the length filter;")
    lines.append(" len: mean / max pieces per sentence)")
    lines.append(
        f"Train batches at max_tokens={stats.max_tokens}: {stats.train_batches:,} per epoch, "
        f"padding {stats.train_padding:.1%} of src+tgt tokens"
    )
    return "\n".join(lines)
