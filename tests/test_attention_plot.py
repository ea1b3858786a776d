"""The attention heatmap: a PNG of bounded size whatever the sentence length, labels checked."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch

from transformer.evaluation.attention_plot import MAX_INCHES, plot_attention

DPI = 120  # what plot_attention saves at


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_short_sentence_gets_a_cell_per_piece(tmp_path: Path) -> None:
    weights = torch.softmax(torch.randn(4, 6), dim=-1)
    path = plot_attention(weights, list("abcdef"), list("wxyz"), tmp_path / "a.png")
    width, height = png_size(path)
    assert width > height  # 6 source columns, 4 output rows
    assert width < MAX_INCHES * DPI


@pytest.mark.slow  # renders a very large figure
def test_very_long_sentence_keeps_the_image_bounded(tmp_path: Path) -> None:
    n = 511  # the longest a truncated input can be
    weights = torch.softmax(torch.randn(n, n), dim=-1)
    pieces = [f"p{i}" for i in range(n)]
    path = plot_attention(weights, pieces, pieces, tmp_path / "long.png")
    width, height = png_size(path)
    assert width <= MAX_INCHES * DPI + 1 and height <= MAX_INCHES * DPI + 1


def test_labels_must_match_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not match 2 target and 3 source labels"):
        plot_attention(torch.zeros(3, 2), list("abc"), list("xy"), tmp_path / "bad.png")
