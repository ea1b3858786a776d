"""The run folder's SentencePiece model: trained once on the training split, and reused only for
the same settings, languages and training corpus (whose identity tokenizer.json records).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from transformer.config import TrainRunConfig
from transformer.data.corpus import CorpusSplit
from transformer.data.tokenizer import META_FILE, Tokenizer, read_meta, train_tokenizer

logger = logging.getLogger(__name__)

# Sentences sampled per SentencePiece model when tokenizer.input_sentence_size is null: all of
# Multi30k, and a sample that trains in a few minutes on 2 CPU cores for WMT-sized corpora.
DEFAULT_INPUT_SENTENCE_SIZE = 300_000


def _check_corpus(tokenizer: Tokenizer, train: CorpusSplit, folder: Path) -> None:
    stored = tokenizer.settings.get("train_corpus")
    if stored is None:  # written before the identity was recorded: cannot tell
        logger.warning("%s does not record its training corpus; reusing it unchecked", folder)
    elif stored != train.identity:
        raise ValueError(
            f"The SentencePiece model in {folder} was trained on another training corpus "
            f"(identity {stored[:16]}), but the training split {train.origin} now has identity "
            f"{train.identity[:16]}: its vocabulary would not fit the data. Use another run "
            f"folder (e.g. name=...), or delete {folder / META_FILE} and the spm*.model files "
            "there (train.resume=false sets them aside when the folder holds a checkpoint)."
        )


def resolve_tokenizer_config(cfg: TrainRunConfig) -> TrainRunConfig:
    """`cfg` with tokenizer.input_sentence_size set when it is None (the default): to the value
    the run folder's tokenizer.json records, else to DEFAULT_INPUT_SENTENCE_SIZE.

    So a folder keeps the setting it was trained with (folders made before the default existed
    record 0), and its checkpoints keep resuming under a newer default.
    """
    if cfg.tokenizer.input_sentence_size is not None:
        return cfg
    meta = Path(cfg.run_dir) / META_FILE
    settings = read_meta(meta)["settings"] if meta.is_file() else {}
    size = settings.get("input_sentence_size", DEFAULT_INPUT_SENTENCE_SIZE)
    tokenizer = dataclasses.replace(cfg.tokenizer, input_sentence_size=size)
    return dataclasses.replace(cfg, tokenizer=tokenizer)


def _check_reused(tokenizer: Tokenizer, cfg: TrainRunConfig, folder: Path) -> None:
    wanted = dataclasses.asdict(cfg.tokenizer)
    wanted = {key: wanted[key] for key in tokenizer.settings if key in wanted}
    found = {key: tokenizer.settings[key] for key in wanted}
    langs = (tokenizer.src_lang, tokenizer.tgt_lang) == (cfg.data.src_lang, cfg.data.tgt_lang)
    if found != wanted or not langs:
        raise ValueError(
            f"The SentencePiece model in {folder} was trained for "
            f"{tokenizer.src_lang}-{tokenizer.tgt_lang} with {found}, but the config asks for "
            f"{cfg.data.src_lang}-{cfg.data.tgt_lang} with {wanted}; use another run folder "
            f"(e.g. name=...) or delete {folder / META_FILE} and the spm*.model files there."
        )


def load_or_train_tokenizer(cfg: TrainRunConfig, train: CorpusSplit) -> tuple[Tokenizer, bool]:
    """The run folder's tokenizer if it has one, else one trained on `train` and saved there.

    Returns:
        The tokenizer and whether it was reused.

    Raises:
        ValueError: The run folder's tokenizer was trained with other settings or languages,
            or on another training corpus.
    """
    cfg = resolve_tokenizer_config(cfg)
    folder = Path(cfg.run_dir)
    if (folder / META_FILE).is_file():
        tokenizer = Tokenizer.load(folder)
        _check_reused(tokenizer, cfg, folder)
        if cfg.train.init_from is None:  # a fine-tune keeps a vocabulary of another corpus
            _check_corpus(tokenizer, train, folder)
        logger.info("Reusing the SentencePiece model in %s", folder)
        return tokenizer, True
    tok = cfg.tokenizer
    assert tok.input_sentence_size is not None  # resolved above
    table = train.dataset.with_format("arrow")[:]  # memory-mapped: no copy
    tokenizer = train_tokenizer(
        table.column("src"),
        table.column("tgt"),
        src_lang=cfg.data.src_lang,
        tgt_lang=cfg.data.tgt_lang,
        model_type=tok.model_type,
        vocab_size=tok.vocab_size,
        joint=tok.joint,
        character_coverage=tok.character_coverage,
        input_sentence_size=tok.input_sentence_size,
        train_corpus=train.identity,
    )
    tokenizer.save(folder)
    logger.info("Saved the SentencePiece model to %s", folder)
    return tokenizer, False
