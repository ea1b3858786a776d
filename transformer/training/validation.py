"""Validation: loss and perplexity over a split, and sacreBLEU of its decoded sources.

BLEU decodes with `Translator` and `cfg.decode`, the same search that evaluation uses, on
detokenised, cased text.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from transformer.config import DecodeConfig, TrainRunConfig
from transformer.data.batching import EncodedPairs
from transformer.data.prepare import PreparedData
from transformer.data.sampler import TokenBatchSampler
from transformer.data.special import PAD_ID
from transformer.data.tokenizer import Tokenizer
from transformer.decoding.translator import Translator
from transformer.evaluation.metrics import Metrics, compute_metrics
from transformer.progress import decode_progress
from transformer.runtime import autocast
from transformer.training.loss import label_smoothed_cross_entropy

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)


@dataclass
class LossReport:
    """Per-token means over a split."""

    loss: float  # label-smoothed cross-entropy, as in training
    nll: float  # plain negative log-likelihood; perplexity is exp(nll)
    n_tokens: int


@dataclass
class BleuReport:
    """sacreBLEU of a decoded split and a few examples."""

    metrics: Metrics
    samples: list[tuple[str, str, str]]  # (source, reference, hypothesis)


def _fitting(src_lens: np.ndarray, tgt_lens: np.ndarray, max_positions: int) -> np.ndarray:
    """(M,) the rows whose source + EOS and BOS + target fit the model's positions (with a
    warning counting the others: only the training split is length-filtered)."""
    keep = np.flatnonzero(np.maximum(src_lens, tgt_lens) <= max_positions)
    if len(keep) < len(src_lens):
        logger.warning(
            "validation loss skips %d of %d pairs longer than model.max_positions=%d "
            "(with EOS/BOS)",
            len(src_lens) - len(keep),
            len(src_lens),
            max_positions,
        )
    return keep


@torch.no_grad()
def validation_loss(
    model: nn.Module,
    pairs: EncodedPairs,
    *,
    max_tokens: int,
    max_positions: int,
    smoothing: float,
    pad_id: int,
    device: torch.device,
    precision: str,
) -> LossReport:
    """Mean loss per target token over the pairs the model can take, batched by the token budget.

    Only the training split is length-filtered, so pairs whose source + EOS or BOS + target is
    longer than `max_positions` are skipped here, with a warning that counts them.

    Args:
        model: the unwrapped model; put in eval mode here (the caller restores train mode).
        pairs: the encoded split (sources without EOS, targets without BOS/EOS).
        max_positions: the model's longest sequence (positional encoding length).
    """
    model.eval()
    src_lens, tgt_lens = pairs.collated_lengths()
    rows = _fitting(src_lens, tgt_lens, max_positions)  # (M,)
    sampler = TokenBatchSampler(src_lens[rows], tgt_lens[rows], max_tokens, seed=0, shuffle=False)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss, nll, tokens
    for indices in sampler:
        batch = pairs.collate(rows[indices], pad_id).to(device)
        with autocast(device, precision):
            logits = model(batch.src_ids, batch.tgt_in_ids)  # (B, T, V)
        sums = label_smoothed_cross_entropy(logits, batch.tgt_out_ids, smoothing, pad_id)
        totals += torch.stack([sums.loss, sums.nll, sums.n_tokens.float()]).double()
    loss, nll, n_tokens = totals.tolist()
    n_tokens = max(n_tokens, 1.0)
    return LossReport(loss=loss / n_tokens, nll=nll / n_tokens, n_tokens=int(n_tokens))


@torch.no_grad()
def validation_bleu(
    model: nn.Module,
    tokenizer: Tokenizer,
    decode_cfg: DecodeConfig,
    device: torch.device,
    sources: list[str],
    references: list[str],
    n_samples: int,
    what: str = "validation BLEU",
) -> BleuReport:
    """Translate `sources` with the evaluation search settings and score against `references`.

    Decoding runs in float32 (no autocast), as evaluation does, so validation BLEU and the
    BLEU of `scripts/evaluate.py` on the same checkpoint agree.
    """
    model.eval()
    with decode_progress(len(sources), what) as progress:  # a bar, or a log line every 30 s
        translator = Translator(model, tokenizer, decode_cfg, device, progress=progress)
        hypotheses = translator.translate(sources)
    metrics = compute_metrics(hypotheses, references)
    samples = list(zip(sources, references, hypotheses, strict=True))[:n_samples]
    return BleuReport(metrics=metrics, samples=samples)


def format_samples(samples: list[tuple[str, str, str]]) -> str:
    """Markdown for TensorBoard's text tab: one block per sample."""
    blocks = [
        f"**source:** {src}  \n**reference:** {ref}  \n**hypothesis:** {hyp}"
        for src, ref, hyp in samples
    ]
    return "\n\n---\n\n".join(blocks)


@dataclass
class ValidationReport:
    """Loss over the whole validation split; BLEU over its first `valid_max_sentences`."""

    loss: LossReport
    bleu: BleuReport | None  # None when `train.validate_bleu` is off

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss.nll, 50.0))


def validate(
    model: nn.Module,
    prepared: PreparedData,
    cfg: TrainRunConfig,
    device: torch.device,
    precision: str,
    *,
    decode_bleu: bool = True,
) -> ValidationReport:
    """Validation loss, perplexity and (if `train.validate_bleu`) BLEU of the unwrapped model.

    Args:
        decode_bleu: decode for BLEU here; under DDP only rank 0 does (its score is broadcast),
            and the other ranks get `bleu=None`.
    """
    split = prepared.splits["validation"]
    loss = validation_loss(
        model,
        EncodedPairs.from_dataset(split, prepared.lengths.get("validation")),
        max_tokens=cfg.train.max_tokens,
        max_positions=cfg.model.max_positions,
        smoothing=cfg.train.label_smoothing,
        pad_id=PAD_ID,
        device=device,
        precision=precision,
    )
    bleu = None
    if cfg.train.validate_bleu and decode_bleu:
        n = min(cfg.train.valid_max_sentences or len(split), len(split))
        subset = split.select(range(n))
        bleu = validation_bleu(
            model,
            prepared.tokenizer,
            cfg.decode,
            device,
            list(subset["src"]),
            list(subset["tgt"]),
            cfg.train.n_samples,
        )
    return ValidationReport(loss=loss, bleu=bleu)


@torch.no_grad()
def evaluate_split(
    model: nn.Module,
    tokenizer: Tokenizer,
    decode_cfg: DecodeConfig,
    device: torch.device,
    split: datasets.Dataset,
) -> Metrics:
    """BLEU and chrF of a whole split (columns "src", "tgt") decoded with `decode_cfg`."""
    return validation_bleu(
        model, tokenizer, decode_cfg, device, list(split["src"]), list(split["tgt"]), 0, "test"
    ).metrics
