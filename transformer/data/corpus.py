"""Sentence-pair sources as `datasets` splits of {src, tgt} strings: Multi30k, Hugging Face hub
translation corpora, and a user's own files.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from transformer.config import DataConfig
from transformer.data.multi30k import read_multi30k
from transformer.data.text_files import CorpusError, TextPairs, read_text_split

if TYPE_CHECKING:
    import datasets

__all__ = ["CorpusError", "CorpusSplit", "load_corpus", "load_split", "read_split"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


@dataclass
class CorpusSplit:
    """One split with what `prepare` reports about it.

    Attributes:
        dataset: Columns "src" and "tgt" (str), pairs with an empty side removed.
        n_empty: Pairs dropped because one side was empty.
        origin: Where the pairs came from, for statistics.
        identity: A digest of the split's contents and direction; keys the tokenised cache.
    """

    dataset: datasets.Dataset
    n_empty: int
    origin: str
    identity: str


def _from_pairs(pairs: TextPairs) -> CorpusSplit:
    import datasets

    digest = hashlib.sha256()
    for side in (pairs.src, pairs.tgt):
        digest.update("\n".join(side).encode("utf-8"))
        digest.update(b"\0")
    dataset = datasets.Dataset.from_dict({"src": pairs.src, "tgt": pairs.tgt})
    return CorpusSplit(dataset, pairs.n_empty, pairs.origin, digest.hexdigest())


def _multi30k(cfg: DataConfig, split: str) -> CorpusSplit:
    release = {"train": "train", "validation": cfg.valid_split, "test": cfg.test_split}.get(
        split, split
    )
    pairs = read_multi30k(
        release, cfg.src_lang, cfg.tgt_lang, mirror_dir=cfg.multi30k_dir, cache_dir=cfg.cache_dir
    )
    return _from_pairs(pairs)


def _text_files(cfg: DataConfig, split: str) -> CorpusSplit:
    keys = {"train": "train_path", "validation": "valid_path", "test": "test_path"}
    if split not in keys:
        raise CorpusError(
            f"data.source=files has the splits {', '.join(keys)}, not {split!r}; point "
            "data.test_path at the file to use instead."
        )
    path = getattr(cfg, keys[split])
    if not path:
        raise CorpusError(f"data.source=files needs data.{keys[split]} for the {split} split.")
    pairs = read_text_split(
        path, f"data.{keys[split]}", cfg.file_format, cfg.src_lang, cfg.tgt_lang
    )
    return _from_pairs(pairs)


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
    name = {"validation": cfg.valid_split, "test": cfg.test_split}.get(split, split)
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
