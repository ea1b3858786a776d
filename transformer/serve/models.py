"""The served models: one per direction, loaded with `transformer.loading`, decoded on demand.

Nothing here knows HTTP: `ServedModel.nbest` and `ServedModel.attention` run in the server's
decoding thread and return plain values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from transformer.checkpoint import CheckpointError
from transformer.config import DecodeConfig, TrainRunConfig
from transformer.decoding.sampling import Sampling
from transformer.decoding.translator import Translator
from transformer.export.ct2_spec import import_ctranslate2
from transformer.loading import LoadedModel, load_model

Hypotheses = list[tuple[str, float]]  # (translation, score), best first

LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "fi": "Finnish", "fr": "French", "hu": "Hungarian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "tr": "Turkish",
    "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip


def config_hash(cfg: TrainRunConfig) -> str:
    """16 hex digits of the config without its run folder: the `config_hash` of metrics.jsonl."""
    values = dataclasses.asdict(cfg)
    values.pop("run_dir")
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ServedModel:
    """One loaded model and the search it runs by default.

    Args:
        loaded: the model as `load_model` returns it.
        threads: intra-op threads for CTranslate2 (0: its default); PyTorch's are set globally.
    """

    def __init__(self, loaded: LoadedModel, threads: int = 0) -> None:
        self.loaded = loaded
        self.source = loaded.tokenizer.src_lang
        self.target = loaded.tokenizer.tgt_lang
        self.threads = threads
        self.hash = config_hash(loaded.cfg)
        # CTranslate2 loads its weights when the translator is built: build it once.
        self._ct2 = (
            None if loaded.model is not None else loaded.translator(self.decode, threads=threads)
        )

    @property
    def direction(self) -> str:
        return f"{self.source}-{self.target}"

    @property
    def decode(self) -> DecodeConfig:
        """The search the model was trained to be decoded with (its config's decode section)."""
        return self.loaded.cfg.decode

    @property
    def has_attention(self) -> bool:
        """Attention maps come from our PyTorch model, not from an exported folder."""
        return self.loaded.model is not None

    @property
    def max_pieces(self) -> int:
        """The longest source the positional table covers (pieces, EOS not counted)."""
        return self.loaded.cfg.model.max_positions - 1

    def pieces(self, sentences: Sequence[str]) -> list[int]:
        """Source pieces per sentence (no EOS)."""
        return [len(ids) for ids in self.loaded.tokenizer.encode_src(list(sentences))]

    def nbest(
        self, sentences: list[str], decode: DecodeConfig, sampling: Sampling | None = None
    ) -> list[Hypotheses]:
        """Up to decode.n_best (translation, score) pairs per sentence, as `tmt-translate` does.

        Runs in one thread at a time (the server's decoding thread).
        """
        if self._ct2 is None:
            translator = self.loaded.translator(decode, sampling=sampling)
        else:  # the same engine, with this request's settings
            translator = self._ct2
            translator.cfg, translator.sampling = decode, sampling
            if sampling is not None:
                import_ctranslate2().set_random_seed(sampling.seed)
        return translator.translate_nbest(sentences)

    def attention(self, sentence: str, decode: DecodeConfig, layer: int) -> dict:
        """The cross-attention (mean over heads) of one sentence's best translation.

        Raises:
            ValueError: an exported model (no attention weights), or a layer it does not have.
        """
        model = self.loaded.model
        if model is None:
            raise ValueError(
                f"{self.direction} is served from an exported CTranslate2 folder, which gives no "
                "attention weights; serve the checkpoint for attention maps."
            )
        translator = self.loaded.translator(decode)
        assert isinstance(translator, Translator)
        layers = model.n_decoder_layers
        if not -layers <= layer < layers:
            raise ValueError(f"layer {layer}: the model has {layers} decoder layers.")
        result = translator.attention(sentence, layer=layer)
        return {
            "layer": layer % layers,
            "src_pieces": result.src_pieces,
            "tgt_pieces": result.tgt_pieces,
            "weights": [[round(float(w), 4) for w in row] for row in result.weights],  # (T, S)
            "translation": result.translation,
        }

    def describe(self) -> dict:
        """What `/models` says about this model."""
        loaded = self.loaded
        exported = loaded.exported
        return {
            "direction": self.direction,
            "source": self.source,
            "target": self.target,
            "path": str(loaded.source),
            "engine": f"ctranslate2 ({exported.quantization})" if exported else "pytorch",
            "checkpoint": exported.checkpoint if exported else str(loaded.source),
            "description": loaded.description,
            "config_hash": self.hash,
            "device": str(loaded.device),
            "threads": self.threads if exported else torch.get_num_threads(),
            "decode": dataclasses.asdict(self.decode),
            "max_pieces": self.max_pieces,
            "attention": self.has_attention,
        }


def check_paths(paths: Sequence[Path]) -> None:
    """Fail before anything starts on a model path that does not exist.

    Raises:
        CheckpointError: naming the path.
    """
    for path in paths:
        if not path.exists():
            raise CheckpointError(
                f"{path}: no such checkpoint, run folder or exported folder; give a .pt file, "
                "a run folder (runs/...), or a folder written by tmt-export."
            )


def load_models(paths: Sequence[Path], device: str, threads: int) -> dict[str, ServedModel]:
    """Each path's model, by direction ("en-de").

    Raises:
        CheckpointError: a path cannot be loaded.
        ValueError: two models serve the same direction.
    """
    models: dict[str, ServedModel] = {}
    for path in paths:
        served = ServedModel(load_model(path, device=device), threads)
        if served.direction in models:
            first = models[served.direction].loaded.source
            raise ValueError(
                f"{path} and {first} both translate {served.direction}: serve one model per "
                "direction."
            )
        models[served.direction] = served
    return models


def languages(models: dict[str, ServedModel]) -> list[dict]:
    """LibreTranslate's `/languages`: every language served, with the targets it translates to."""
    codes = sorted({m.source for m in models.values()} | {m.target for m in models.values()})
    return [
        {
            "code": code,
            "name": LANGUAGE_NAMES.get(code, code),
            "targets": sorted(m.target for m in models.values() if m.source == code),
        }
        for code in codes
    ]
