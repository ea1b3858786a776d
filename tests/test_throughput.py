"""Training speed figures: the FLOPs behind MFU, and the synthetic batches they are counted on."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from transformer.benchmarks.throughput import synthetic_batches, training_flops
from transformer.config import ModelConfig
from transformer.data.special import PAD_ID
from transformer.model import build_model


def test_training_flops_match_pytorchs_count_of_a_step() -> None:
    cfg = ModelConfig(
        d_model=16, n_heads=2, n_encoder_layers=2, n_decoder_layers=1, d_ff=24, dropout=0.0
    )
    model = build_model(cfg, 30, 30, PAD_ID).train()
    src, tgt = torch.randint(4, 30, (3, 5)), torch.randint(4, 30, (3, 7))
    # The math backend spells attention out in matrix products, which the counter sees.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(src, tgt).sum().backward()
    assert counter.get_total_flops() == training_flops(cfg, 30, B=3, S=5, T=7)


def test_synthetic_batches_fill_the_budget_without_padding() -> None:
    batches = synthetic_batches(50, 100, [(9, 11), (20, 7)], torch.device("cpu"))
    assert [tuple(b.src_ids.shape) + (b.tgt_in_ids.size(1),) for b in batches] == [
        (9, 9, 11),
        (5, 20, 7),
    ]
    for batch in batches:
        assert batch.n_src_tokens == batch.src_ids.numel()
        assert batch.n_tgt_tokens == batch.tgt_out_ids.numel()
        assert batch.src_ids[:, :-1].min() >= 4  # no special ids inside the sentences
