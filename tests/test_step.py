"""One optimizer update (transformer.training.step): accumulation equals one large batch, mixed
precision tracks fp32, and clipping bounds the gradient while reporting its true norm."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transformer.config import ModelConfig
from transformer.data.batching import collate
from transformer.data.special import PAD_ID
from transformer.model import build_model
from transformer.training.loss import label_smoothed_cross_entropy
from transformer.training.step import UpdateStep


def test_accumulated_micro_batches_equal_one_large_batch() -> None:
    """2 micro-batches of B sentences per update give the update of one batch of 2B."""
    cfg = ModelConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
    cfg = dataclasses.replace(cfg, dropout=0.0)
    generator = torch.Generator().manual_seed(0)
    sentences = [
        torch.randint(4, 30, (int(n),), generator=generator).tolist() for n in range(3, 11)
    ]
    src, tgt = sentences, sentences[::-1]
    whole = collate(src, tgt, list(range(8)), PAD_ID)
    halves = [
        collate(src[i : i + 4], tgt[i : i + 4], list(range(i, i + 4)), PAD_ID) for i in (0, 4)
    ]
    models, losses = [], []
    for batches in ([whole], halves):
        torch.manual_seed(0)
        model = build_model(cfg, 30, 30, PAD_ID)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)  # weights compare gradients
        step = UpdateStep(
            model, optimizer, torch.amp.GradScaler("cpu", enabled=False), smoothing=0.1,
            pad_id=PAD_ID, device=torch.device("cpu"), precision="fp32", clip_norm=1.0,
            world_size=1,
        )  # fmt: skip
        losses.append([step(batches, want_grad_norm=True).loss.item() for _ in range(3)])
        models.append(model)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (name, a), b in zip(
        models[0].state_dict().items(), models[1].state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step_tracks_fp32(precision: str) -> None:
    """bf16 autocast, and fp16 with a gradient scaler (on CPU here), follow the fp32 losses: the
    forward pass really runs in the low precision (its logits come out in it, and the losses are
    not the fp32 ones), and stays close to fp32."""
    cfg = ModelConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
    cfg = dataclasses.replace(cfg, dropout=0.0)
    generator = torch.Generator().manual_seed(1)
    src = [torch.randint(4, 30, (int(n),), generator=generator).tolist() for n in range(3, 9)]
    batch = collate(src, src, list(range(len(src))), PAD_ID)  # a copy task
    runs = {}
    for mode in ("fp32", precision):
        torch.manual_seed(0)
        model = build_model(cfg, 30, 30, PAD_ID)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        scaler = torch.amp.GradScaler("cpu", enabled=mode == "fp16")
        step = UpdateStep(
            model, optimizer, scaler, smoothing=0.0, pad_id=PAD_ID, device=torch.device("cpu"),
            precision=mode, clip_norm=1.0, world_size=1,
        )  # fmt: skip
        dtypes: list[torch.dtype] = []
        hook = model.register_forward_hook(lambda _m, _i, out, seen=dtypes: seen.append(out.dtype))
        runs[mode] = [step([batch], want_grad_norm=True).loss.item() for _ in range(5)]
        hook.remove()
        assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
        expected = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]
        assert dtypes == [expected] * 5  # the logits (B, T, V) of each forward pass
    assert runs[precision] == pytest.approx(runs["fp32"], rel=3e-2)
    assert runs[precision] != pytest.approx(runs["fp32"], rel=1e-6)  # rounding did happen
    assert runs[precision][-1] < runs[precision][0]


class RecordingSGD(torch.optim.SGD):
    """SGD that records the total gradient norm it is asked to apply."""

    def step(self, closure: object = None) -> object:
        grads = [
            p.grad for group in self.param_groups for p in group["params"] if p.grad is not None
        ]
        self.applied_norm = torch.nn.utils.get_total_norm(grads).item()
        return super().step(closure)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_clipping_bounds_the_applied_gradient_and_reports_the_true_norm(precision: str) -> None:
    cfg = ModelConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
    cfg = dataclasses.replace(cfg, dropout=0.0)
    generator = torch.Generator().manual_seed(2)
    src = [torch.randint(4, 30, (int(n),), generator=generator).tolist() for n in range(3, 9)]
    batch = collate(src, src[::-1], list(range(len(src))), PAD_ID)
    torch.manual_seed(0)
    reference = build_model(cfg, 30, 30, PAD_ID)
    logits = reference(batch.src_ids, batch.tgt_in_ids)  # (B, T, V)
    sums = label_smoothed_cross_entropy(logits, batch.tgt_out_ids, 0.1, PAD_ID)
    (sums.loss / batch.n_tgt_tokens).backward()
    true_norm = torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()]).item()
    clip_norm = true_norm / 4  # well below the norm, so clipping acts
    torch.manual_seed(0)
    model = build_model(cfg, 30, 30, PAD_ID)
    optimizer = RecordingSGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=precision == "fp16", init_scale=2.0**8)
    step = UpdateStep(
        model, optimizer, scaler, smoothing=0.1, pad_id=PAD_ID, device=torch.device("cpu"),
        precision=precision, clip_norm=clip_norm, world_size=1,
    )  # fmt: skip
    result = step([batch], want_grad_norm=False)
    rel = 1e-5 if precision == "fp32" else 3e-2
    assert result.grad_norm is not None
    assert result.grad_norm.item() == pytest.approx(true_norm, rel=rel)  # before clipping
    assert optimizer.applied_norm <= clip_norm * (1 + 1e-5)
    assert optimizer.applied_norm == pytest.approx(clip_norm, rel=1e-3)


@pytest.mark.parametrize("fused", [False, True])
def test_an_update_with_a_non_finite_loss_is_skipped_and_reported(fused: bool) -> None:
    """Weights and Adam's moments and step count stay as they were; `finite` says so. The fused
    optimizer skips on the device (found_inf), the others after reading the flag."""
    cfg = ModelConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg, dropout=0.0), 30, 30, PAD_ID)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    step = UpdateStep(
        model, optimizer, torch.amp.GradScaler("cpu", enabled=False), smoothing=0.1,
        pad_id=PAD_ID, device=torch.device("cpu"), precision="fp32", clip_norm=0.0, world_size=1,
    )  # fmt: skip
    batch = collate([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]], [0, 1], PAD_ID)
    assert bool(step([batch], want_grad_norm=False).finite)  # one good update first
    moments = {k: {n: t.clone() for n, t in s.items()} for k, s in optimizer.state.items()}
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))  # the forward pass now gives a NaN loss
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = step([batch], want_grad_norm=False)
    assert not bool(result.finite) and result.grad_norm is None
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], equal_nan=True, rtol=0, atol=0)
    for param, state in optimizer.state.items():
        for name, value in state.items():
            assert torch.equal(value, moments[param][name]), name
