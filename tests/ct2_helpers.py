"""What the CTranslate2 tests share: the optional import (skip, or fail in CI) and a tiny model
trained for a few seconds on the tiny parallel corpus."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny import PAD

from transformer.data.batching import collate
from transformer.data.tokenizer import Tokenizer
from transformer.model import Seq2SeqTransformer


def require_ctranslate2():  # noqa: ANN201 (the module)
    """ctranslate2, or a skip; in CI (CI=true) its absence fails: the dev extra installs it."""
    try:
        import ctranslate2
    except ImportError:
        message = 'ctranslate2 is not installed (pip install ".[ct2]")'
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI installs the dev extra, which includes it.")
        pytest.skip(message)
    return ctranslate2


def train_briefly(
    model: Seq2SeqTransformer, tokenizer: Tokenizer, corpus: dict[str, Path], updates: int = 200
) -> Seq2SeqTransformer:
    """A few hundred Adam updates on the corpus' training pairs (batches of 32), in eval mode."""
    src = tokenizer.encode_src(corpus["train.en"].read_text("utf-8").splitlines())
    tgt = tokenizer.encode_tgt(corpus["train.de"].read_text("utf-8").splitlines())
    rng = random.Random(0)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(updates):
        rows = rng.sample(range(len(src)), 32)
        batch = collate([src[i] for i in rows], [tgt[i] for i in rows], rows, PAD)
        logits = model(batch.src_ids, batch.tgt_in_ids)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.tgt_out_ids.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
