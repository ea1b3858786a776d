"""Label-smoothed cross-entropy: equal to PyTorch's, blind to padding, exact sums."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from transformer.training.loss import label_smoothed_cross_entropy

PAD = 0


def _batch(b: int = 3, t: int = 5, v: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.randn(b, t, v)
    target = torch.randint(1, v, (b, t))
    target[0, 3:] = PAD
    target[2, 1:] = PAD
    return logits, target


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_matches_torch_cross_entropy_with_label_smoothing(smoothing: float) -> None:
    logits, target = _batch()
    out = label_smoothed_cross_entropy(logits, target, smoothing, PAD)
    flat_logits, flat_target = logits.view(-1, logits.size(-1)), target.view(-1)
    expected = F.cross_entropy(
        flat_logits, flat_target, ignore_index=PAD, label_smoothing=smoothing, reduction="sum"
    )
    expected_nll = F.cross_entropy(flat_logits, flat_target, ignore_index=PAD, reduction="sum")
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.nll, expected_nll, rtol=1e-5, atol=1e-5)
    assert out.n_tokens.item() == int((target != PAD).sum())


def test_padding_positions_add_nothing() -> None:
    logits, target = _batch()
    out = label_smoothed_cross_entropy(logits, target, 0.1, PAD)
    # Changing the logits at padded positions (even to huge values) leaves every sum unchanged.
    noisy = logits.clone()
    noisy[target == PAD] = torch.randn_like(noisy[target == PAD]) * 1e4
    noisy_out = label_smoothed_cross_entropy(noisy, target, 0.1, PAD)
    torch.testing.assert_close(out.loss, noisy_out.loss)
    torch.testing.assert_close(out.nll, noisy_out.nll)
    # Padding the batch with extra pad columns changes nothing either.
    wider_logits = torch.cat([logits, torch.randn(3, 4, logits.size(-1))], dim=1)
    wider_target = torch.cat([target, torch.full((3, 4), PAD)], dim=1)
    wider = label_smoothed_cross_entropy(wider_logits, wider_target, 0.1, PAD)
    torch.testing.assert_close(out.loss, wider.loss)


def test_sums_split_over_batches_add_up() -> None:
    # The loss normalisation of the trainer relies on sums adding over micro-batches.
    logits, target = _batch(b=4)
    whole = label_smoothed_cross_entropy(logits, target, 0.1, PAD)
    parts = [
        label_smoothed_cross_entropy(logits[i : i + 2], target[i : i + 2], 0.1, PAD) for i in (0, 2)
    ]
    torch.testing.assert_close(whole.loss, parts[0].loss + parts[1].loss)
    assert whole.n_tokens == parts[0].n_tokens + parts[1].n_tokens


def test_uniform_logits_give_log_vocab_size() -> None:
    # From analysis: uniform predictions cost log(V) per token, with or without smoothing.
    v = 7
    target = torch.tensor([[1, 2, 3, PAD]])
    out = label_smoothed_cross_entropy(torch.zeros(1, 4, v), target, 0.2, PAD)
    assert out.loss.item() == pytest.approx(3 * math.log(v), rel=1e-6)
    assert out.nll.item() == pytest.approx(3 * math.log(v), rel=1e-6)


def test_bf16_logits_are_computed_in_float32() -> None:
    logits, target = _batch()
    out = label_smoothed_cross_entropy(logits.bfloat16(), target, 0.1, PAD)
    reference = label_smoothed_cross_entropy(logits.bfloat16().float(), target, 0.1, PAD)
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss, reference.loss)


def test_gradient_flows_only_to_real_tokens() -> None:
    logits, target = _batch()
    logits.requires_grad_(True)
    label_smoothed_cross_entropy(logits, target, 0.1, PAD).loss.backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[target == PAD] == 0)
    assert torch.all(logits.grad[target != PAD].abs().sum(-1) > 0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_gradient_equals_autograd_through_torch_cross_entropy(smoothing: float) -> None:
    # The hand-written backward against autograd's chain through F.cross_entropy.
    logits, target = _batch()
    ours = logits.clone().requires_grad_(True)
    (label_smoothed_cross_entropy(ours, target, smoothing, PAD).loss * 0.37).backward()
    reference = logits.clone().requires_grad_(True)
    expected = F.cross_entropy(
        reference.view(-1, logits.size(-1)),
        target.view(-1),
        ignore_index=PAD,
        label_smoothing=smoothing,
        reduction="sum",
    )
    (expected * 0.37).backward()
    torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-5, atol=1e-7)


def test_gradcheck_of_both_sums_in_float64() -> None:
    # Both outputs, with any weights on each, through the finite-difference checker.
    logits, target = _batch(b=3, t=4, v=6)
    logits = logits.double().requires_grad_(True)

    def weighted_sums(x: torch.Tensor) -> torch.Tensor:
        sums = label_smoothed_cross_entropy(x, target, 0.2, PAD)
        return 0.7 * sums.loss + 1.9 * sums.nll

    def nll_only(x: torch.Tensor) -> torch.Tensor:
        return label_smoothed_cross_entropy(x, target, 0.2, PAD).nll

    assert torch.autograd.gradcheck(weighted_sums, (logits,))
    assert torch.autograd.gradcheck(nll_only, (logits,))


def test_bf16_logits_get_a_bf16_gradient() -> None:
    logits, target = _batch()
    logits = logits.bfloat16().requires_grad_(True)
    label_smoothed_cross_entropy(logits, target, 0.1, PAD).loss.backward()
    assert logits.grad is not None and logits.grad.dtype == torch.bfloat16


def test_non_contiguous_logits_are_accepted() -> None:
    logits, target = _batch()
    swapped = logits.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not swapped.is_contiguous()
    out = label_smoothed_cross_entropy(swapped, target, 0.1, PAD)
    torch.testing.assert_close(
        out.loss, label_smoothed_cross_entropy(logits, target, 0.1, PAD).loss
    )
