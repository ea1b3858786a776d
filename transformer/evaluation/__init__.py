"""Scoring translations: sacreBLEU metrics, and decoding a corpus split with a checkpoint."""

from __future__ import annotations

from transformer.evaluation.metrics import Metrics, compute_metrics, format_metrics

__all__ = ["Metrics", "compute_metrics", "format_metrics"]
