"""Heatmap of one sentence's cross-attention (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

from pathlib import Path

import torch

# A long sentence still gives an image of sane size: past this many inches a side, the cells and
# their labels shrink instead of the figure growing (511 pieces at full size is ~30k pixels).
MAX_INCHES = 24.0
LABEL_POINTS = 10.0


def plot_attention(
    weights: torch.Tensor,
    src_pieces: list[str],
    tgt_pieces: list[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Save a heatmap: output pieces down the side, source pieces along the top.

    Args:
        weights: (T, S) attention of each output piece over the source pieces.
        src_pieces: S column labels.
        tgt_pieces: T row labels.
        path: image file to write (the format follows the suffix, e.g. .png).
        title: figure title.

    Returns:
        The path written.

    Raises:
        ValueError: the labels do not match the weights' shape.
    """
    if tuple(weights.shape) != (len(tgt_pieces), len(src_pieces)):
        raise ValueError(
            f"attention of shape {tuple(weights.shape)} does not match {len(tgt_pieces)} target "
            f"and {len(src_pieces)} source labels."
        )
    # The Agg canvas directly, not pyplot: no global backend switch, no window, no GUI toolkit.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = weights.shape
    width, height = 1.5 + 0.45 * n_cols, 1.5 + 0.4 * n_rows
    shrink = min(1.0, MAX_INCHES / width, MAX_INCHES / height)
    figure = Figure(figsize=(min(width, MAX_INCHES), min(height, MAX_INCHES)))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(weights.float().numpy(), cmap="viridis", vmin=0.0, aspect="auto")
    axes.set_xticks(range(n_cols), src_pieces, rotation=90, fontsize=LABEL_POINTS * shrink)
    axes.set_yticks(range(n_rows), tgt_pieces, fontsize=LABEL_POINTS * shrink)
    axes.xaxis.tick_top()
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    if title:
        axes.set_title(title, pad=12)
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
