"""Corpus BLEU and chrF with sacreBLEU on detokenised text, each with its signature.

BLEU is cased with the 13a tokenizer (sacreBLEU's defaults, the figure to compare across papers).
The Multi30k literature mostly reports lowercased BLEU; it is computed too and labelled as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF


@dataclass
class Metrics:
    """Corpus-level scores (0-100) and the sacreBLEU signatures that make them reproducible."""

    bleu: float
    bleu_signature: str
    bleu_lowercase: float
    chrf: float
    chrf_signature: str
    bleu_lowercase_signature: str

    def to_dict(self) -> dict[str, float | str]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def compute_metrics(hyps: list[str], refs: list[str]) -> Metrics:
    """Score detokenised hypotheses against one reference each.

    Args:
        hyps: system outputs, one per sentence.
        refs: references, aligned with hyps.

    Raises:
        ValueError: hyps and refs differ in length.
    """
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references; they must align.")
    bleu, bleu_lc, chrf = BLEU(tokenize="13a"), BLEU(tokenize="13a", lowercase=True), CHRF()
    bleu_score = bleu.corpus_score(hyps, [refs])
    bleu_lc_score = bleu_lc.corpus_score(hyps, [refs])
    chrf_score = chrf.corpus_score(hyps, [refs])
    return Metrics(
        bleu=bleu_score.score,
        bleu_signature=str(bleu.get_signature()),
        bleu_lowercase=bleu_lc_score.score,
        chrf=chrf_score.score,
        chrf_signature=str(chrf.get_signature()),
        bleu_lowercase_signature=str(bleu_lc.get_signature()),
    )


def format_metrics(metrics: Metrics) -> str:
    """Three report lines: cased BLEU, chrF, lowercased BLEU, each with its signature."""
    return "\n".join(
        [
            f"BLEU = {metrics.bleu:.2f}  ({metrics.bleu_signature})",
            f"chrF = {metrics.chrf:.2f}  ({metrics.chrf_signature})",
            f"BLEU (lowercased, as in the Multi30k literature) = {metrics.bleu_lowercase:.2f}  "
            f"({metrics.bleu_lowercase_signature})",
        ]
    )
