"""SentencePiece vocabularies (one joint model, or one per language), trained with the special ids
of `transformer.data.special` (re-exported here) on a seeded sample of the training sentences.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import sentencepiece as spm

from transformer.data.special import BOS_ID, EOS_ID, PAD_ID, UNK_ID

logger = logging.getLogger(__name__)

STATE_VERSION = 1
SAMPLE_SEED = 1234  # fixed: the sample, and so the model, depends only on the corpus and settings
READ_SLICE = 10_000  # sentences turned into Python strings at a time
META_FILE = "tokenizer.json"


def train_spm(
    sentences: Iterable[str], *, model_type: str, vocab_size: int, character_coverage: float
) -> bytes:
    """Trains a SentencePiece model with our special ids on every sentence given, in order, and
    returns its serialized proto (the same sentences and settings give the same bytes).

    The vocabulary limit is soft: on a corpus too small for `vocab_size` the model is smaller
    rather than failing, and the size actually reached is logged.
    """
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type=model_type,
        vocab_size=vocab_size,
        character_coverage=character_coverage,
        input_sentence_size=0,  # the sample is drawn by `sample_rows`: SentencePiece's is unseeded
        shuffle_input_sentence=False,
        hard_vocab_limit=False,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=2,  # the trained model depends on the thread count: fixed, so runs reproduce
        minloglevel=2,
    )
    return model.getvalue()


def sample_rows(n_rows: int, size: int, seed: int = SAMPLE_SEED) -> np.ndarray | None:
    """Ascending indices of `size` of `n_rows` rows drawn without replacement by a seeded RNG, or
    None for all rows (size 0, or no more rows than size)."""
    if size == 0 or n_rows <= size:
        return None
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.sort(rng.choice(n_rows, size=size, replace=False))  # (size,) int64


def _sentences(column: pa.ChunkedArray, rows: np.ndarray | None) -> Iterator[str]:
    """The strings of `column` at ascending `rows` (all rows when None), read a slice at a time,
    each chunk taking only its own rows (a take on the whole column could copy it)."""
    start = 0
    for chunk in column.chunks:
        end = start + len(chunk)
        if rows is None:
            local = np.arange(len(chunk))
        else:
            local = rows[np.searchsorted(rows, start) : np.searchsorted(rows, end)] - start
        for first in range(0, len(local), READ_SLICE):
            yield from chunk.take(pa.array(local[first : first + READ_SLICE])).to_pylist()
        start = end


def _as_column(sentences: Sequence[str] | pa.ChunkedArray) -> pa.ChunkedArray:
    if isinstance(sentences, pa.ChunkedArray):
        return sentences
    return pa.chunked_array([pa.array(list(sentences), type=pa.string())])


def _processor(proto: bytes) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_proto=proto)


class TokenizerError(ValueError):
    """A tokenizer folder whose files are missing or damaged; the message names the file."""


_RESTORE = (
    "restore it (in a run folder, train.resume=false starts over and sets the old files aside)"
)


def read_meta(meta_path: Path) -> dict[str, Any]:
    """A tokenizer.json: languages and settings.

    Raises:
        TokenizerError: it is unreadable (empty, truncated, not ours), naming it.
    """
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["src_lang"], meta["tgt_lang"], meta["settings"]["joint"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as error:
        raise TokenizerError(
            f"{meta_path} is damaged ({type(error).__name__}: {error}): {_RESTORE}."
        ) from error
    return meta


def _read_model(path: Path, meta_path: Path) -> bytes:
    """The bytes of a SentencePiece model file, checked to load.

    Raises:
        TokenizerError: the file is missing, empty, truncated or not a SentencePiece model.
    """
    if not path.is_file():
        raise TokenizerError(f"{path} is missing; {meta_path} refers to it: {_RESTORE}.")
    proto = path.read_bytes()
    try:
        pieces = _processor(proto).get_piece_size()
    except RuntimeError as error:
        raise TokenizerError(f"{path} is damaged ({str(error).strip()}): {_RESTORE}.") from error
    if pieces == 0:
        raise TokenizerError(f"{path} is empty or truncated: {_RESTORE}.")
    return proto


class Tokenizer:
    """Source and target SentencePiece models (the same one when joint) and their settings.

    Ids from `encode_*` carry no BOS/EOS; batching adds them (src + EOS, BOS + tgt, tgt + EOS).
    """

    def __init__(
        self,
        src_model: bytes,
        tgt_model: bytes | None,
        *,
        src_lang: str,
        tgt_lang: str,
        settings: dict[str, Any],
    ) -> None:
        """Builds a tokenizer from serialized models.

        Args:
            src_model: Serialized SentencePiece model for the source (the joint model if joint).
            tgt_model: Serialized target model, or None for a joint vocabulary.
            src_lang: Source language code.
            tgt_lang: Target language code.
            settings: How the models were trained (model_type, vocab_size, joint, ...).
        """
        self.src_lang = src_lang
        self.tgt_lang = tgt_lang
        self.settings = dict(settings)
        self._src_model = src_model
        self._tgt_model = tgt_model
        self._src = _processor(src_model)
        self._tgt = self._src if tgt_model is None else _processor(tgt_model)

    @property
    def joint(self) -> bool:
        """Whether source and target share one vocabulary."""
        return self._tgt_model is None

    @property
    def src_vocab_size(self) -> int:
        return self._src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self._tgt.get_piece_size()

    @property
    def fingerprint(self) -> str:
        """A digest of the model bytes: equal fingerprints encode identically."""
        digest = hashlib.sha256(self._src_model)
        digest.update(self._tgt_model or b"")
        return digest.hexdigest()

    def encode_src(self, texts: list[str]) -> list[list[int]]:
        """Source sentences to piece ids, without EOS."""
        return self._src.encode(texts, out_type=int)

    def encode_tgt(self, texts: list[str]) -> list[list[int]]:
        """Target sentences to piece ids, without BOS/EOS."""
        return self._tgt.encode(texts, out_type=int)

    def decode_tgt(self, ids: Sequence[int]) -> str:
        """Target ids to text: stops at the first EOS and drops PAD and BOS (UNK shows as ⁇)."""
        pieces = []
        for token in ids:
            token = int(token)
            if token == EOS_ID:
                break
            if token not in (PAD_ID, BOS_ID):
                pieces.append(token)
        return self._tgt.decode(pieces)

    def src_pieces(self, text: str) -> list[str]:
        """The source pieces of one sentence, as `encode_src` splits it (no EOS)."""
        return self._src.encode(text, out_type=str)

    def src_id_to_piece(self, ids: Sequence[int]) -> list[str]:
        """Source ids to their pieces, special ids included."""
        return [self._src.id_to_piece(int(token)) for token in ids]

    def tgt_id_to_piece(self, ids: Sequence[int]) -> list[str]:
        """Target ids to their pieces, special ids included ("<s>", "</s>", "<pad>", "<unk>")."""
        return [self._tgt.id_to_piece(int(token)) for token in ids]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the tokenizer: serialized models, languages, settings."""
        return {
            "format_version": STATE_VERSION,
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
            "settings": dict(self.settings),
            "src_model": self._src_model,
            "tgt_model": self._tgt_model,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Tokenizer:
        """Rebuilds a tokenizer from `state_dict()` output.

        Raises:
            ValueError: The dict lacks keys or has an unknown format version.
        """
        needed = ("format_version", "src_lang", "tgt_lang", "settings", "src_model", "tgt_model")
        missing = [key for key in needed if key not in state]
        if missing or state["format_version"] != STATE_VERSION:
            raise ValueError(
                f"Not a tokenizer state (format {STATE_VERSION}): missing {missing}, version "
                f"{state.get('format_version')!r}; it must come from Tokenizer.state_dict()."
            )
        return cls(
            state["src_model"],
            state["tgt_model"],
            src_lang=state["src_lang"],
            tgt_lang=state["tgt_lang"],
            settings=state["settings"],
        )

    def model_files(self) -> dict[str, bytes]:
        """File name -> bytes: spm.model if joint, else spm.<src>.model and spm.<tgt>.model."""
        if self._tgt_model is None:
            return {"spm.model": self._src_model}
        return {
            f"spm.{self.src_lang}.model": self._src_model,
            f"spm.{self.tgt_lang}.model": self._tgt_model,
        }

    def save(self, folder: str | Path) -> None:
        """Writes the model file(s) and tokenizer.json (languages, settings) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"src_lang": self.src_lang, "tgt_lang": self.tgt_lang, "settings": self.settings}
        files = {**self.model_files(), META_FILE: json.dumps(meta, indent=2).encode("utf-8")}
        for name, content in files.items():  # the meta file last: it marks a complete save
            tmp = folder / f"{name}.tmp"
            tmp.write_bytes(content)
            tmp.replace(folder / name)

    @classmethod
    def load(cls, folder: str | Path) -> Tokenizer:
        """Reads a tokenizer written by `save`.

        Raises:
            TokenizerError: tokenizer.json or a model file is missing or damaged, naming it.
        """
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise TokenizerError(
                f"No tokenizer in {folder}: {meta_path} is missing (it is written next to "
                "spm.model by prepare_data / Tokenizer.save)."
            )
        meta = read_meta(meta_path)
        src, tgt, joint = meta["src_lang"], meta["tgt_lang"], meta["settings"]["joint"]
        names = ["spm.model"] if joint else [f"spm.{src}.model", f"spm.{tgt}.model"]
        models = [_read_model(folder / name, meta_path) for name in names]
        tgt_model = models[1] if len(models) == 2 else None
        return cls(models[0], tgt_model, src_lang=src, tgt_lang=tgt, settings=meta["settings"])


def _joint_sample(src: pa.ChunkedArray, tgt: pa.ChunkedArray, size: int) -> Iterator[str]:
    """`size` sentences drawn from the sources followed by the targets (one pool of 2N)."""
    rows = sample_rows(len(src) + len(tgt), size)
    if rows is None:
        yield from _sentences(src, None)
        yield from _sentences(tgt, None)
        return
    split = int(np.searchsorted(rows, len(src)))
    yield from _sentences(src, rows[:split])
    yield from _sentences(tgt, rows[split:] - len(src))


def train_tokenizer(
    src: Sequence[str] | pa.ChunkedArray,
    tgt: Sequence[str] | pa.ChunkedArray,
    *,
    src_lang: str,
    tgt_lang: str,
    model_type: str,
    vocab_size: int,
    joint: bool,
    character_coverage: float,
    input_sentence_size: int,
    train_corpus: str | None = None,
) -> Tokenizer:
    """Trains the SentencePiece model(s) on training sentences: one on both sides when `joint`.

    At most `input_sentence_size` sentences per model are drawn by `sample_rows` (seeded), so the
    same sentences and settings always give the same model bytes. Only a slice of the columns is
    turned into Python strings at a time.

    Args:
        src: Source sentences of the training split (a list, or an Arrow column read lazily).
        tgt: Target sentences, aligned with `src`.
        src_lang: Source language code.
        tgt_lang: Target language code.
        model_type: "unigram" or "bpe".
        vocab_size: Pieces per model (a soft limit).
        joint: One model for both languages, else one per language.
        character_coverage: Share of characters the model must cover (1.0 for small alphabets).
        input_sentence_size: Sentences sampled per model (joint: from both sides); 0 uses all.
        train_corpus: Digest of the training split, kept as settings["train_corpus"].
    """
    settings = {
        "model_type": model_type,
        "vocab_size": vocab_size,
        "joint": joint,
        "character_coverage": character_coverage,
        "input_sentence_size": input_sentence_size,
    }
    if train_corpus is not None:
        settings["train_corpus"] = train_corpus
    fit = functools.partial(
        train_spm,
        model_type=model_type,
        vocab_size=vocab_size,
        character_coverage=character_coverage,
    )
    src, tgt = _as_column(src), _as_column(tgt)
    if joint:
        src_model, tgt_model = fit(_joint_sample(src, tgt, input_sentence_size)), None
    else:
        rows = sample_rows(len(src), input_sentence_size)  # the same pairs on both sides
        src_model, tgt_model = fit(_sentences(src, rows)), fit(_sentences(tgt, rows))
    tokenizer = Tokenizer(
        src_model, tgt_model, src_lang=src_lang, tgt_lang=tgt_lang, settings=settings
    )
    sizes = f"{tokenizer.src_vocab_size} / {tokenizer.tgt_vocab_size} (asked for {vocab_size})"
    logger.info("Trained SentencePiece %s, joint=%s: vocab %s", model_type, joint, sizes)
    return tokenizer
