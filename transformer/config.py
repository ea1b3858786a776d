"""Typed configuration: every key, its single default, and the checks on it (stdlib only).

YAML files under `configs/` only override these defaults. `transformer.commands.hydra_config`
registers the top-level dataclasses with Hydra, so a misspelt key fails at start-up with its
name, and converts the composed config into these dataclasses once; below that, code sees plain
dataclass instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

NORM_PLACEMENTS = ("post", "pre")
ACTIVATIONS = ("relu", "gelu")
POSITIONAL_ENCODINGS = ("sinusoidal", "learned")
CORPUS_SOURCES = ("multi30k", "hf", "files")
FILE_FORMATS = ("parallel", "tsv", "jsonl")
SPM_MODEL_TYPES = ("unigram", "bpe")
SCHEDULES = ("inverse_sqrt", "noam", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


def _check_choice(section: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(
            f"{section}.{key}={value!r} is not one of {', '.join(allowed)}; "
            f"set it to one of those (e.g. {section}.{key}={allowed[0]})."
        )


def _check_finite(section: str, key: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{section}.{key}={value!r} must be a finite number.")


def _check_range(section: str, key: str, value: float, low: float, high: float) -> None:
    """low <= value < high."""
    if not low <= value < high:  # also false for NaN
        bounds = ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in (low, high))
        raise ValueError(f"{section}.{key}={value!r} must be in [{bounds}).")


def _check_positive(section: str, key: str, value: float, allow_zero: bool = False) -> None:
    _check_finite(section, key, value)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{section}.{key}={value!r} must be {bound}.")


@dataclass
class ModelConfig:
    """Encoder-decoder size and architecture switches (the paper's names)."""

    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1  # residual and embedding dropout (the paper's P_drop)
    attn_dropout: float = 0.0  # on attention weights
    ff_dropout: float = 0.0  # after the feed-forward activation
    activation: str = "relu"
    norm_placement: str = "post"  # "post": the paper's Add & Norm; "pre": norm inside the residual
    positional: str = "sinusoidal"
    max_positions: int = 1024  # longest sequence the positional encoding covers
    share_embeddings: bool = True  # one embedding for source and target (needs a joint vocab)
    tie_output: bool = True  # output projection shares the target embedding's weights
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        _check_choice("model", "activation", self.activation, ACTIVATIONS)
        _check_choice("model", "norm_placement", self.norm_placement, NORM_PLACEMENTS)
        _check_choice("model", "positional", self.positional, POSITIONAL_ENCODINGS)
        for key in ("d_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "d_ff"):
            _check_positive("model", key, getattr(self, key))
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}; "
                "choose n_heads that divides d_model."
            )
        for key in ("dropout", "attn_dropout", "ff_dropout"):
            _check_range("model", key, getattr(self, key), 0.0, 1.0)
        _check_positive("model", "layer_norm_eps", self.layer_norm_eps)


@dataclass
class TokenizerConfig:
    """SentencePiece settings; the model is trained on the training split only."""

    model_type: str = "unigram"
    vocab_size: int = 8000
    joint: bool = True  # one model for both languages; False trains one per language
    character_coverage: float = 1.0
    # Sentences sampled (seeded) per model; 0 uses all; None: what the run folder's tokenizer
    # was trained with, else transformer.data.vocabulary.DEFAULT_INPUT_SENTENCE_SIZE.
    input_sentence_size: int | None = None

    def __post_init__(self) -> None:
        _check_choice("tokenizer", "model_type", self.model_type, SPM_MODEL_TYPES)
        if self.vocab_size < 8:
            raise ValueError(f"tokenizer.vocab_size={self.vocab_size} must be at least 8.")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ValueError(
                f"tokenizer.character_coverage={self.character_coverage!r} must be in (0, 1]."
            )
        if self.input_sentence_size is not None:
            _check_positive("tokenizer", "input_sentence_size", self.input_sentence_size, True)


@dataclass
class DataConfig:
    """Which corpus, which direction, and how pairs are filtered."""

    source: str = "multi30k"
    src_lang: str = "en"
    tgt_lang: str = "de"
    # Where downloads and tokenised caches land (git-ignored).
    cache_dir: str = "data"
    # Multi30k: a local mirror folder of the release's gzipped files; None falls back to the
    # MULTI30K_DIR environment variable, then to downloading into cache_dir.
    multi30k_dir: str | None = None
    valid_split: str = "val"
    test_split: str = "test_2016_flickr"
    # Hugging Face hub: datasets.load_dataset(hf_path, hf_name) with {"translation": {lang: text}}.
    hf_path: str | None = None
    hf_name: str | None = None
    # A user's own files: paths for each split. "parallel" takes a source and a target file per
    # split ("{lang}" in the path is replaced by src_lang / tgt_lang); "tsv" and "jsonl" one file.
    file_format: str = "parallel"
    train_path: str | None = None
    valid_path: str | None = None
    test_path: str | None = None
    # Length filtering, in SentencePiece pieces (training split only).
    max_tokens_per_side: int = 256
    max_length_ratio: float = 3.0
    num_proc: int = 1  # worker processes for datasets.map

    def __post_init__(self) -> None:
        _check_choice("data", "source", self.source, CORPUS_SOURCES)
        _check_choice("data", "file_format", self.file_format, FILE_FORMATS)
        if self.src_lang == self.tgt_lang:
            raise ValueError(
                f"data.src_lang and data.tgt_lang are both {self.src_lang!r}; "
                "translation needs two different languages."
            )
        if self.source == "hf" and not self.hf_path:
            raise ValueError("data.source=hf needs data.hf_path (e.g. data.hf_path=wmt16).")
        if self.source == "files" and not self.train_path:
            raise ValueError("data.source=files needs data.train_path (and valid_path).")
        if self.num_proc < 1:
            raise ValueError(
                f"data.num_proc={self.num_proc} must be >= 1 (1 encodes in this process)."
            )
        _check_positive("data", "max_tokens_per_side", self.max_tokens_per_side)
        _check_positive("data", "max_length_ratio", self.max_length_ratio)


@dataclass
class OptimConfig:
    """Adam and the learning-rate schedule (paper section 5.3)."""

    lr: float = 5e-4  # peak learning rate for inverse_sqrt and constant
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    eps: float = 1e-9
    weight_decay: float = 0.0
    schedule: str = "inverse_sqrt"  # "noam" is the paper's d_model^-0.5 * min(...) formula
    warmup_steps: int = 4000
    noam_factor: float = 1.0  # scales the noam formula
    clip_norm: float = 0.0  # 0 disables gradient clipping
    # The last cooldown_updates updates up to train.max_updates (all of them in a shorter run)
    # take the scheduled rate linearly towards 0 (as in warmup-stable-decay schedules). 0: off.
    cooldown_updates: int = 0

    def __post_init__(self) -> None:
        _check_choice("optim", "schedule", self.schedule, SCHEDULES)
        _check_positive("optim", "cooldown_updates", self.cooldown_updates, allow_zero=True)
        _check_positive("optim", "lr", self.lr)
        _check_positive("optim", "warmup_steps", self.warmup_steps, allow_zero=True)
        _check_positive("optim", "clip_norm", self.clip_norm, allow_zero=True)
        _check_positive("optim", "eps", self.eps)
        _check_positive("optim", "weight_decay", self.weight_decay, allow_zero=True)
        _check_positive("optim", "noam_factor", self.noam_factor)
        for key in ("adam_beta1", "adam_beta2"):
            _check_range("optim", key, getattr(self, key), 0.0, 1.0)


@dataclass
class DecodeConfig:
    """Search settings, shared by validation BLEU, evaluate and translate."""

    beam_size: int = 5  # 1 is greedy search
    length_penalty: float = 0.6  # GNMT alpha; 0 disables
    max_len_a: float = 1.2  # maximum output length a * |src| + b
    max_len_b: int = 10
    n_best: int = 1
    max_tokens: int = 8192  # token budget of a decoding batch (source tokens x beam)

    def __post_init__(self) -> None:
        _check_positive("decode", "beam_size", self.beam_size)
        _check_positive("decode", "n_best", self.n_best)
        _check_positive("decode", "max_tokens", self.max_tokens)
        _check_positive("decode", "max_len_a", self.max_len_a, allow_zero=True)
        _check_positive("decode", "length_penalty", self.length_penalty, allow_zero=True)
        _check_positive("decode", "max_len_b", self.max_len_b, allow_zero=True)
        if self.n_best > self.beam_size:
            raise ValueError(
                f"decode.n_best={self.n_best} exceeds decode.beam_size={self.beam_size}; "
                "raise beam_size or lower n_best."
            )


@dataclass
class TrainConfig:
    """The loop: batches, stopping, validation, checkpoints, precision."""

    seed: int = 1
    max_tokens: int = 4096  # token budget per batch and rank, padding included
    accum_steps: int = 1  # batches per update
    label_smoothing: float = 0.1
    # "Late dropout" (Liu et al., 2023): model.dropout until update late_dropout_from, then
    # late_dropout, for runs that learn fastest with little dropout but overfit later. None: off.
    late_dropout: float | None = None
    late_dropout_from: int = 0
    max_updates: int = 0  # 0: no limit
    max_epochs: int = 0  # 0: no limit
    max_time_minutes: float = 0.0  # wall-time limit of one session; 0: no limit
    # Plan the whole run for N minutes from the command's start to its exit, test decode
    # included (transformer.training.budget); 0: no budget.
    budget_minutes: float = 0.0
    validate_every: int = 1000  # updates
    validate_bleu: bool = True
    valid_max_sentences: int = 0  # decode only the first N validation sentences; 0: all
    max_train_pairs: int = 0  # train on the first N training pairs only (smoke runs); 0: all
    patience: int = 0  # validations without a BLEU gain before stopping; 0 disables
    keep_last: int = 5  # periodic checkpoints kept besides last.pt and best.pt
    average_last: int = 0  # final.pt: the average of this many checkpoints, or best.pt if better
    log_every: int = 50  # updates
    n_samples: int = 3  # sample translations written to TensorBoard at each validation
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 on CUDA with bf16 support, else fp32
    compile: bool | None = None  # None: on where a CUDA device is present
    cpu_threads: int = 0  # torch.set_num_threads on CPU (1 is fastest for tiny models); 0: default
    resume: bool = True  # re-running into an existing run folder continues from last.pt
    # Updates with a non-finite loss or gradient norm are skipped; this many in a row stop the
    # run (its last checkpoint kept).
    max_nonfinite_updates: int = 3
    # Fine-tune: start from this checkpoint's (or run folder's) weights, model and tokenizer
    # (transformer.training.init_from); None trains from scratch.
    init_from: str | None = None
    evaluate_test: bool = True  # decode the test split with final.pt at the end

    def __post_init__(self) -> None:
        _check_choice("train", "device", self.device, DEVICES)
        _check_choice("train", "precision", self.precision, PRECISIONS)
        _check_positive("train", "max_tokens", self.max_tokens)
        _check_positive("train", "accum_steps", self.accum_steps)
        _check_positive("train", "validate_every", self.validate_every)
        _check_positive("train", "log_every", self.log_every)
        for key in ("max_updates", "max_epochs", "max_time_minutes", "budget_minutes"):
            _check_positive("train", key, getattr(self, key), allow_zero=True)
        for key in ("patience", "keep_last"):
            _check_positive("train", key, getattr(self, key), allow_zero=True)
        for key in ("average_last", "valid_max_sentences", "n_samples"):
            _check_positive("train", key, getattr(self, key), allow_zero=True)
        _check_positive("train", "max_train_pairs", self.max_train_pairs, allow_zero=True)
        _check_positive("train", "cpu_threads", self.cpu_threads, allow_zero=True)
        _check_positive("train", "max_nonfinite_updates", self.max_nonfinite_updates)
        _check_range("train", "seed", self.seed, 0, 2**32)  # numpy's seeds are 32-bit
        _check_range("train", "label_smoothing", self.label_smoothing, 0.0, 1.0)
        if self.late_dropout is not None:
            _check_range("train", "late_dropout", self.late_dropout, 0.0, 1.0)
            _check_positive("train", "late_dropout_from", self.late_dropout_from)
        if self.average_last > self.keep_last:
            raise ValueError(
                f"train.average_last={self.average_last} averages more checkpoints than "
                f"train.keep_last={self.keep_last} keeps; raise keep_last or lower average_last."
            )


@dataclass
class TrainRunConfig:
    """Everything `scripts/train.py` takes; stored in every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    # Names the run folder, runs/<name>/<src>-<tgt>, so re-running a command finds its run.
    name: str = "multi30k"
    # The run folder (Hydra's output folder); filled in by transformer.commands.
    run_dir: str = "."

    def __post_init__(self) -> None:
        budgeted = self.train.budget_minutes > 0  # the plan sets train.max_updates
        if self.optim.cooldown_updates and not self.train.max_updates and not budgeted:
            raise ValueError(
                f"optim.cooldown_updates={self.optim.cooldown_updates} ends the rate at the run's "
                "last update, train.max_updates, which is 0 (no limit); set train.max_updates, "
                "or optim.cooldown_updates=0."
            )
        # Sources get EOS and targets BOS added: the longest kept pair needs one more position.
        if self.data.max_tokens_per_side + 1 > self.model.max_positions:
            raise ValueError(
                f"data.max_tokens_per_side={self.data.max_tokens_per_side} needs "
                f"model.max_positions >= {self.data.max_tokens_per_side + 1} (it is "
                f"{self.model.max_positions}); lower the first or raise the second."
            )
        if self.model.share_embeddings and not self.tokenizer.joint:
            raise ValueError(
                "model.share_embeddings=true needs one joint vocabulary (tokenizer.joint=true); "
                "set tokenizer.joint=true or model.share_embeddings=false."
            )
